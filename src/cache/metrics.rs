//! The cache layer's metrics, read from its counters at scrape time.
//!
//! Owns the cache metric families (reads per namespace and tier, Redis
//! latency and errors, breaker state, write queue, invalidations). Must not:
//! add work to a cache operation (everything here reads atomics the
//! operations update anyway).

use std::fmt;

use super::namespace::Namespace;
use super::{Backend, Caches};
use crate::breaker::BreakerState;
use crate::telemetry::metrics::{BreakerName, CacheResult, Label, Labels, Sink, Source, Tier};

/// The `circuit_breaker_state` value of a breaker state (0 closed,
/// 1 half-open, 2 open).
pub fn breaker_gauge(state: BreakerState) -> f64 {
    match state {
        BreakerState::Closed => 0.0,
        BreakerState::HalfOpen => 1.0,
        BreakerState::Open => 2.0,
    }
}

#[allow(clippy::cast_precision_loss, reason = "gauges are exported as f64")]
fn f(v: u64) -> f64 {
    v as f64
}

impl Source for Caches {
    fn collect(&self, sink: &mut Sink<'_>) -> Result<(), fmt::Error> {
        let stats = self.stats();
        let counters = self.backend().counters();
        let mut requests: Vec<(Labels, u64)> = Vec::new();
        let mut hits: Vec<(Labels, u64)> = Vec::new();
        for ns in Namespace::ALL {
            for tier in Tier::ALL {
                let h = counters.reads.get(ns, *tier, CacheResult::Hit);
                let m = counters.reads.get(ns, *tier, CacheResult::Miss);
                if h + m == 0 {
                    continue;
                }
                let base = vec![("namespace", ns.prefix()), (Tier::NAME, tier.as_str())];
                for (result, n) in [(CacheResult::Hit, h), (CacheResult::Miss, m)] {
                    let mut l = base.clone();
                    l.push((CacheResult::NAME, result.as_str()));
                    requests.push((l, n));
                }
                hits.push((base, h));
            }
        }
        sink.counter(
            "cache_requests",
            "Cache reads, by namespace, tier and result.",
            &requests,
        )?;
        sink.counter(
            "cache_hits",
            "Cache reads that found a value, by namespace and tier.",
            &hits,
        )?;
        sink.gauge(
            "cache_entries",
            "Entries in the memory tier.",
            &[(Vec::new(), f(stats.memory_entries))],
        )?;
        sink.gauge(
            "cache_memory_bytes",
            "Weighted bytes in the memory tier.",
            &[(Vec::new(), f(stats.memory_bytes))],
        )?;
        sink.histogram(
            "redis_operation_duration_seconds",
            "Latency of Redis calls.",
            &[(Vec::new(), &counters.redis_latency.0)],
        )?;
        sink.counter(
            "redis_errors",
            "Redis calls that failed or timed out.",
            &[(Vec::new(), stats.redis_errors)],
        )?;
        sink.counter(
            "redis_breaker_rejections",
            "Redis calls refused at once by the open circuit breaker.",
            &[(Vec::new(), stats.breaker_rejections)],
        )?;
        sink.gauge(
            "circuit_breaker_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
            &[(
                vec![(BreakerName::NAME, BreakerName::Redis.as_str())],
                breaker_gauge(stats.breaker),
            )],
        )?;
        sink.counter(
            "cache_degraded_operations",
            "Cache operations answered locally or dropped because Redis was unavailable.",
            &[(Vec::new(), stats.degraded_operations)],
        )?;
        sink.gauge(
            "cache_async_queue_depth",
            "Async-class writes waiting for Redis.",
            &[(
                Vec::new(),
                f(match self.backend() {
                    Backend::Hybrid(h) => h.queue_depth(),
                    _ => 0,
                }),
            )],
        )?;
        sink.counter(
            "cache_async_writes_dropped",
            "Async-class writes dropped because the queue was full.",
            &[(Vec::new(), stats.async_dropped)],
        )?;
        sink.counter(
            "cache_invalidations_published",
            "Invalidation messages sent to other replicas.",
            &[(Vec::new(), stats.invalidations_published)],
        )?;
        sink.counter(
            "cache_invalidations_received",
            "Invalidation messages received from other replicas.",
            &[(Vec::new(), stats.invalidations_received)],
        )?;
        sink.counter(
            "cache_subscription_losses",
            "Times the invalidation subscription was lost (each is followed by a reconnect).",
            &[(Vec::new(), stats.subscription_losses)],
        )?;
        sink.gauge(
            "redis_up",
            "1 when Redis answered the last call or health check.",
            &[(Vec::new(), if stats.redis_healthy { 1.0 } else { 0.0 })],
        )
    }
}
