//! The gate's health report: what `/healthz` answers in JSON.
//!
//! Owns the report's shape (the one the traefikoidc Redis guide documents:
//! `status`, `cache.mode`, `cache.redis.{connected,latency,pool}`,
//! `cache.memory.{entries,size}`, `cache.circuit_breaker.{state,failures}`,
//! plus `provider`, and `providers` by name when there are several) and the rule that picks the status. Must not: call the
//! network (the report reads state the background health checks keep), or
//! include anything secret.

use std::time::Duration;

use serde::Serialize;

use super::Gate;
use crate::cache::{Backend, BreakerState};

/// Overall status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Everything answers.
    Healthy,
    /// Logins and sessions work, but a dependency is down (Redis, the
    /// invalidation subscription): replicas may disagree, or the gate runs
    /// on its memory tier.
    Degraded,
    /// The provider has not been discovered: no login can be served.
    Unhealthy,
}

/// The health report.
#[derive(Clone, Debug, Serialize)]
pub struct Health {
    /// Overall status.
    pub status: Status,
    /// The cache layer.
    pub cache: CacheHealth,
    /// The identity provider (the top-level, default one).
    pub provider: ProviderHealth,
    /// Each named provider (`providers:`), by name; absent with one provider.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub providers: std::collections::BTreeMap<String, ProviderHealth>,
}

/// The cache layer's part of the report.
#[derive(Clone, Debug, Serialize)]
pub struct CacheHealth {
    /// `memory`, `redis` or `hybrid`.
    pub mode: &'static str,
    /// Redis, when configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisHealth>,
    /// The memory tier, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryHealth>,
    /// The breaker in front of Redis.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<BreakerHealth>,
}

/// Redis as last seen.
#[derive(Clone, Debug, Serialize)]
pub struct RedisHealth {
    /// Whether Redis answered the last call or health check.
    pub connected: bool,
    /// Time the last health-check ping took (`"1.25ms"`), if one answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency: Option<String>,
    /// Connections.
    pub pool: PoolHealth,
    /// Whether the invalidation subscription is up (hybrid mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscribed: Option<bool>,
}

/// The Redis connection pool. Connections are multiplexed, so every open
/// connection counts as active.
#[derive(Clone, Debug, Serialize)]
pub struct PoolHealth {
    /// Open connections.
    pub active: u64,
    /// Idle connections (always 0: connections are multiplexed).
    pub idle: u64,
    /// Open connections.
    pub total: u64,
}

/// The memory tier.
#[derive(Clone, Debug, Serialize)]
pub struct MemoryHealth {
    /// Entries (approximate).
    pub entries: u64,
    /// Weighted size (`"1.5MB"`).
    pub size: String,
}

/// The Redis breaker.
#[derive(Clone, Debug, Serialize)]
pub struct BreakerHealth {
    /// `closed`, `open` or `half-open`.
    pub state: &'static str,
    /// Consecutive failures counted.
    pub failures: u64,
}

/// The provider.
#[derive(Clone, Debug, Serialize)]
pub struct ProviderHealth {
    /// Whether discovery succeeded (logins can be served).
    pub discovered: bool,
    /// Seconds since the key set was last fetched (or a refetch attempted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_age_seconds: Option<u64>,
}

impl Gate {
    /// The current health report (no network call).
    pub fn health(&self) -> Health {
        let caches = &self.inner.caches;
        let stats = caches.stats();
        let (mode, has_memory, has_redis) = match caches.backend() {
            Backend::Memory(_) => ("memory", true, false),
            Backend::Redis(_) => ("redis", false, true),
            Backend::Hybrid(_) => ("hybrid", true, true),
        };
        let hybrid = has_memory && has_redis;
        let redis = has_redis.then(|| RedisHealth {
            connected: stats.redis_healthy,
            latency: stats.redis_ping.map(format_latency),
            pool: PoolHealth {
                active: stats.redis_pool,
                idle: 0,
                total: stats.redis_pool,
            },
            subscribed: hybrid.then_some(stats.subscription_healthy),
        });
        let memory = has_memory.then(|| MemoryHealth {
            entries: stats.memory_entries,
            size: format_bytes(stats.memory_bytes),
        });
        let circuit_breaker = has_redis.then_some(BreakerHealth {
            state: match stats.breaker {
                BreakerState::Closed => "closed",
                BreakerState::Open => "open",
                BreakerState::HalfOpen => "half-open",
            },
            failures: stats.breaker_failures,
        });
        let provider = &self.inner.provider;
        let discovered = provider.is_ready();
        let providers: std::collections::BTreeMap<String, ProviderHealth> = self
            .named
            .iter()
            .map(|n| {
                let p = &n.gate.inner.provider;
                let report = ProviderHealth {
                    discovered: p.is_ready(),
                    jwks_age_seconds: p.jwks_age_ms().map(|ms| ms / 1000),
                };
                (n.name.clone(), report)
            })
            .collect();
        // Any provider that cannot serve logins makes the gate unhealthy.
        let status = if !discovered || providers.values().any(|p| !p.discovered) {
            Status::Unhealthy
        } else if has_redis
            && (!stats.redis_healthy
                || stats.breaker != BreakerState::Closed
                || (hybrid && !stats.subscription_healthy))
        {
            Status::Degraded
        } else {
            Status::Healthy
        };
        Health {
            status,
            cache: CacheHealth {
                mode,
                redis,
                memory,
                circuit_breaker,
            },
            provider: ProviderHealth {
                discovered,
                jwks_age_seconds: provider.jwks_age_ms().map(|ms| ms / 1000),
            },
            providers,
        }
    }
}

/// `1.25ms`, `950µs`, `2s`-style text for a latency.
fn format_latency(d: Duration) -> String {
    let us = d.as_micros();
    if us < 1000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{:.2}ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.2}s", d.as_secs_f64())
    }
}

/// `512B`, `1.5KB`, `50.0MB`-style text for a size (powers of 1024).
fn format_bytes(b: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if b < 1024 {
        return format!("{b}B");
    }
    #[allow(clippy::cast_precision_loss, reason = "display only")]
    let mut v = b as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1}{unit}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_latencies_read_like_the_guide() {
        assert_eq!(format_bytes(512), "512B");
        assert_eq!(format_bytes(1536), "1.5KB");
        assert_eq!(format_bytes(50 * 1024 * 1024), "50.0MB");
        assert_eq!(format_latency(Duration::from_micros(950)), "950µs");
        assert_eq!(format_latency(Duration::from_micros(2000)), "2.00ms");
        assert_eq!(format_latency(Duration::from_millis(1500)), "1.50s");
    }
}
