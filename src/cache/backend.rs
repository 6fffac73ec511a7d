//! [`Backend`]: the byte-level store, one variant per cache mode, dispatched
//! by `match` (no trait objects).
//!
//! Owns: building the chosen backend from [`CacheSettings`], TTL clamping, and
//! the failure policy of Redis-only mode. Must not: serialize values (the
//! typed layer in `Caches` does) or hold per-request state.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::task::JoinHandle;

use super::hybrid::HybridStore;
use super::key::CacheKey;
use super::memory::{MemoryBudget, MemoryStore};
use super::namespace::{FailurePolicy, Namespace};
use super::redis::{L2Error, RedisStore};
use super::settings::{CacheMode, CacheSettings};
use super::stats::{CacheStats, Counters};
use super::{Error, MAX_TTL, MIN_TTL};
use crate::breaker::BreakerState;
use crate::telemetry::metrics::Tier;

/// The byte-level store behind [`Caches`](super::Caches).
#[derive(Debug, Clone)]
pub enum Backend {
    /// In-process only.
    Memory(MemoryStore),
    /// Every operation goes to Redis.
    Redis(RedisStore),
    /// Memory in front of Redis, with invalidation between replicas.
    Hybrid(HybridStore),
}

fn clamp_ttl(ttl: Duration) -> Duration {
    ttl.clamp(MIN_TTL, MAX_TTL)
}

fn redis_error(ns: Namespace, e: &L2Error) -> Error {
    match e {
        L2Error::Failed(e) if !e.is_io_error() && !e.is_timeout() && !e.is_connection_dropped() => {
            Error::Redis {
                namespace: ns,
                detail: format!("{:?}", e.kind()),
            }
        }
        _ => Error::Unavailable { namespace: ns },
    }
}

impl Backend {
    pub(crate) fn memory(budget: Option<MemoryBudget>) -> Backend {
        Backend::Memory(MemoryStore::new(budget, Arc::default()))
    }

    pub(crate) async fn build(
        settings: &CacheSettings,
    ) -> Result<(Backend, Vec<JoinHandle<()>>), Error> {
        if settings.mode == CacheMode::Memory {
            return Ok((Backend::memory(settings.memory_budget), Vec::new()));
        }
        let redis_settings = settings.redis.clone().ok_or_else(|| {
            Error::Settings("redis settings are required for redis and hybrid modes".to_owned())
        })?;
        let counters = Arc::new(Counters::default());
        let l2 = RedisStore::connect(redis_settings, counters.clone())
            .await
            .map_err(Error::Settings)?;
        tracing::info!(mode = ?settings.mode, healthy = l2.is_healthy(), "Redis cache initialized");
        match settings.mode {
            CacheMode::Redis => {
                let health = tokio::spawn(l2.clone().run_health());
                Ok((Backend::Redis(l2), vec![health]))
            }
            _ => {
                let l1 = MemoryStore::new(settings.memory_budget, counters.clone());
                let (hybrid, tasks) =
                    HybridStore::start(l1, l2, counters, settings.async_queue_capacity);
                Ok((Backend::Hybrid(hybrid), tasks))
            }
        }
    }

    pub(super) fn counters(&self) -> &Counters {
        match self {
            Backend::Memory(m) => m.counters(),
            Backend::Redis(r) => r.counters(),
            Backend::Hybrid(h) => h.l1().counters(),
        }
    }

    pub(crate) fn count_integrity_failure(&self) {
        Counters::bump(&self.counters().integrity_failures);
    }

    fn count_read(&self, hit: bool) {
        let c = self.counters();
        Counters::bump(if hit { &c.hits } else { &c.misses });
    }

    /// Counts a read by tier in the single-tier modes (the hybrid store
    /// counts its own tiers).
    fn count_tier_read(&self, ns: Namespace, hit: bool) {
        match self {
            Backend::Memory(m) => m.counters().read(ns, Tier::L1, hit),
            Backend::Redis(r) => r.counters().read(ns, Tier::L2, hit),
            Backend::Hybrid(_) => {}
        }
    }

    /// Applies the namespace's failure policy in Redis-only mode.
    fn policy<T>(&self, ns: Namespace, r: Result<T, L2Error>, degraded: T) -> Result<T, Error> {
        match r {
            Ok(v) => Ok(v),
            Err(e) => {
                Counters::bump(&self.counters().degraded_operations);
                match ns.failure_policy() {
                    FailurePolicy::Degrade => Ok(degraded),
                    FailurePolicy::Report => Err(redis_error(ns, &e)),
                }
            }
        }
    }

    /// Reads the value under `key`.
    pub async fn get(&self, ns: Namespace, key: &CacheKey) -> Result<Option<Bytes>, Error> {
        let r = match self {
            Backend::Memory(m) => Ok(m.get(ns, key)),
            Backend::Redis(r) => self.policy(ns, r.get(ns, key).await, None),
            Backend::Hybrid(h) => h.get(ns, key).await,
        };
        if let Ok(v) = &r {
            self.count_read(v.is_some());
            self.count_tier_read(ns, v.is_some());
        }
        r
    }

    /// Stores `value` for `ttl`.
    pub async fn set(
        &self,
        ns: Namespace,
        key: &CacheKey,
        value: Bytes,
        ttl: Duration,
    ) -> Result<(), Error> {
        let ttl = clamp_ttl(ttl);
        Counters::bump(&self.counters().writes);
        match self {
            Backend::Memory(m) => {
                m.put(ns, key, Some(value), ttl);
                Ok(())
            }
            Backend::Redis(r) => {
                let res = r.set(ns, key, &value, ttl, None).await;
                self.policy(ns, res, ())
            }
            Backend::Hybrid(h) => h.set(ns, key, value, ttl).await,
        }
    }

    /// Stores `value` only if `key` is absent; returns whether it was stored.
    /// Atomic across replicas in Redis and hybrid modes.
    pub async fn set_if_absent(
        &self,
        ns: Namespace,
        key: &CacheKey,
        value: Bytes,
        ttl: Duration,
    ) -> Result<bool, Error> {
        let ttl = clamp_ttl(ttl);
        let r = match self {
            Backend::Memory(m) => Ok(m.put_if_absent(ns, key, value, ttl)),
            Backend::Redis(r) => r
                .set_if_absent(ns, key, &value, ttl, None)
                .await
                .map_err(|e| {
                    Counters::bump(&self.counters().degraded_operations);
                    redis_error(ns, &e)
                }),
            Backend::Hybrid(h) => h.set_if_absent(ns, key, value, ttl).await,
        };
        if let Ok(true) = r {
            Counters::bump(&self.counters().writes);
        }
        r
    }

    /// Removes `key`; returns whether a value was removed.
    pub async fn delete(&self, ns: Namespace, key: &CacheKey) -> Result<bool, Error> {
        Counters::bump(&self.counters().deletes);
        match self {
            Backend::Memory(m) => Ok(m.remove(ns, key)),
            Backend::Redis(r) => {
                let res = r.delete(ns, key, None).await;
                self.policy(ns, res, false)
            }
            Backend::Hybrid(h) => h.delete(ns, key).await,
        }
    }

    /// Whether a value is stored under `key`.
    pub async fn exists(&self, ns: Namespace, key: &CacheKey) -> Result<bool, Error> {
        match self {
            Backend::Memory(m) => Ok(m.get(ns, key).is_some()),
            Backend::Redis(r) => {
                let res = r.exists(ns, key).await;
                self.policy(ns, res, false)
            }
            Backend::Hybrid(h) => Ok(h.get(ns, key).await?.is_some()),
        }
    }

    /// Reads several keys; one slot per key, in order.
    pub async fn get_many(
        &self,
        ns: Namespace,
        keys: &[CacheKey],
    ) -> Result<Vec<Option<Bytes>>, Error> {
        let r = match self {
            Backend::Memory(m) => Ok(keys.iter().map(|k| m.get(ns, k)).collect()),
            Backend::Redis(r) => {
                let res = r.get_many(ns, keys).await;
                self.policy(ns, res, vec![None; keys.len()])
            }
            Backend::Hybrid(h) => h.get_many(ns, keys).await,
        };
        if let Ok(v) = &r {
            for x in v {
                self.count_read(x.is_some());
                self.count_tier_read(ns, x.is_some());
            }
        }
        r
    }

    /// Stores several values with one TTL.
    pub async fn set_many(
        &self,
        ns: Namespace,
        entries: &[(CacheKey, Bytes)],
        ttl: Duration,
    ) -> Result<(), Error> {
        let ttl = clamp_ttl(ttl);
        let c = self.counters();
        c.writes
            .fetch_add(entries.len() as u64, std::sync::atomic::Ordering::Relaxed);
        match self {
            Backend::Memory(m) => {
                for (k, v) in entries {
                    m.put(ns, k, Some(v.clone()), ttl);
                }
                Ok(())
            }
            Backend::Redis(r) => {
                let res = r.set_many(ns, entries, ttl).await;
                self.policy(ns, res, ())
            }
            Backend::Hybrid(h) => h.set_many(ns, entries, ttl).await,
        }
    }

    /// Removes every entry of `ns`.
    pub async fn clear(&self, ns: Namespace) -> Result<(), Error> {
        match self {
            Backend::Memory(m) => {
                m.clear(ns);
                Ok(())
            }
            Backend::Redis(r) => {
                let res = r.clear(ns).await;
                self.policy(ns, res, ())
            }
            Backend::Hybrid(h) => h.clear(ns).await,
        }
    }

    /// What the Redis server says about itself (`None` without Redis).
    ///
    /// # Errors
    /// [`Error::PingFailed`] when Redis does not answer.
    pub async fn redis_report(&self) -> Result<Option<super::RedisReport>, Error> {
        let r = match self {
            Backend::Memory(_) => return Ok(None),
            Backend::Redis(r) => r,
            Backend::Hybrid(h) => h.l2(),
        };
        let info = r.info().await.map_err(|_| Error::PingFailed)?;
        Ok(Some(super::RedisReport::from_info(
            r.topology_name(),
            &info,
        )))
    }

    /// Checks that the shared tier answers.
    pub async fn ping(&self) -> Result<(), Error> {
        let r = match self {
            Backend::Memory(_) => return Ok(()),
            Backend::Redis(r) => r.ping().await,
            Backend::Hybrid(h) => h.l2().ping().await,
        };
        r.map_err(|_| Error::PingFailed)
    }

    pub(crate) async fn flush(&self) {
        if let Backend::Hybrid(h) = self {
            h.flush().await;
        }
    }

    /// Counters and health.
    pub fn stats(&self) -> CacheStats {
        let mut s = self.counters().snapshot();
        let (memory, redis) = match self {
            Backend::Memory(m) => (Some(m), None),
            Backend::Redis(r) => (None, Some(r)),
            Backend::Hybrid(h) => {
                s.subscription_healthy = h.subscribed();
                (Some(h.l1()), Some(h.l2()))
            }
        };
        if let Some(m) = memory {
            s.memory_entries = m.entry_count();
            s.memory_bytes = m.weighted_size();
        }
        match redis {
            Some(r) => {
                s.breaker = r.breaker_state();
                s.redis_healthy = r.is_healthy();
                s.breaker_failures = r.breaker_failures();
                s.redis_pool = r.pool_size();
            }
            None => s.breaker = BreakerState::Closed,
        }
        s
    }
}
