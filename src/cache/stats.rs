//! Counters kept by the cache backends and the snapshot type they produce.
//!
//! Owns: lock-free counters. Must not: export metrics itself (telemetry reads
//! [`CacheStats`] and publishes it), or hold per-key data.

use std::sync::atomic::{AtomicU64, Ordering};

use super::namespace::Namespace;
use crate::breaker::BreakerState;
use crate::telemetry::metrics::{CacheResult, Histogram, Label, REDIS_BUCKETS, Tier};

/// Live counters shared by the parts of one backend.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) integrity_failures: AtomicU64,
    pub(crate) writes: AtomicU64,
    pub(crate) deletes: AtomicU64,
    pub(crate) redis_errors: AtomicU64,
    pub(crate) breaker_rejections: AtomicU64,
    pub(crate) degraded_operations: AtomicU64,
    pub(crate) async_enqueued: AtomicU64,
    pub(crate) async_dropped: AtomicU64,
    pub(crate) async_failed: AtomicU64,
    pub(crate) invalidations_published: AtomicU64,
    pub(crate) invalidations_received: AtomicU64,
    pub(crate) l2_backfills: AtomicU64,
    /// Reads by namespace, tier and result.
    pub(crate) reads: Reads,
    /// Latency of every Redis call.
    pub(crate) redis_latency: RedisLatency,
    /// Microseconds the last health-check ping took (0: none answered yet).
    pub(crate) last_ping_us: AtomicU64,
    /// Times the invalidation subscription was lost.
    pub(crate) subscription_losses: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one read of `ns` answered by `tier`.
    pub(crate) fn read(&self, ns: Namespace, tier: Tier, hit: bool) {
        let result = if hit {
            CacheResult::Hit
        } else {
            CacheResult::Miss
        };
        if let Some(c) = self.reads.0.get(Reads::index(ns, tier, result)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Read counters, one per namespace × tier × result.
#[derive(Debug)]
pub(crate) struct Reads(Box<[AtomicU64]>);

impl Default for Reads {
    fn default() -> Self {
        let n = Namespace::COUNT * Tier::ALL.len() * CacheResult::ALL.len();
        Self((0..n).map(|_| AtomicU64::new(0)).collect())
    }
}

impl Reads {
    fn index(ns: Namespace, tier: Tier, result: CacheResult) -> usize {
        (ns.index() * Tier::ALL.len() + tier.index()) * CacheResult::ALL.len() + result.index()
    }

    pub(crate) fn get(&self, ns: Namespace, tier: Tier, result: CacheResult) -> u64 {
        self.0
            .get(Self::index(ns, tier, result))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

/// The Redis latency histogram.
#[derive(Debug)]
pub(crate) struct RedisLatency(pub(crate) Histogram);

impl Default for RedisLatency {
    fn default() -> Self {
        Self(Histogram::new(REDIS_BUCKETS))
    }
}

/// A point-in-time copy of a backend's counters and health.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Reads that found a value (in any tier).
    pub hits: u64,
    /// Reads that found nothing.
    pub misses: u64,
    /// Stored values of authenticated namespaces whose tag did not check
    /// (written by someone without the key, or under a retired key); each
    /// was treated as a miss.
    pub integrity_failures: u64,
    /// Accepted writes.
    pub writes: u64,
    /// Accepted deletes.
    pub deletes: u64,
    /// Redis calls that failed (connection, timeout, server error).
    pub redis_errors: u64,
    /// Redis calls refused at once by the open circuit breaker.
    pub breaker_rejections: u64,
    /// Operations answered locally or dropped because Redis was unavailable.
    pub degraded_operations: u64,
    /// Async-class writes handed to the background queue.
    pub async_enqueued: u64,
    /// Async-class writes dropped because the queue was full.
    pub async_dropped: u64,
    /// Async-class writes the worker could not write to Redis.
    pub async_failed: u64,
    /// Invalidation messages published to other replicas.
    pub invalidations_published: u64,
    /// Invalidation messages received from other replicas.
    pub invalidations_received: u64,
    /// Local-tier fills from Redis after a local miss.
    pub l2_backfills: u64,
    /// Entries currently in the memory tier (approximate).
    pub memory_entries: u64,
    /// Weighted bytes currently in the memory tier (approximate).
    pub memory_bytes: u64,
    /// Circuit breaker state (`Closed` when there is no Redis).
    pub breaker: BreakerState,
    /// Whether Redis answered the last health check (false when there is no
    /// Redis).
    pub redis_healthy: bool,
    /// Whether the invalidation subscription is up (hybrid mode only).
    pub subscription_healthy: bool,
    /// How long the last health-check ping took (`None` before one answered,
    /// or without Redis).
    pub redis_ping: Option<std::time::Duration>,
    /// Connections in the Redis pool (0 when not connected or without Redis).
    pub redis_pool: u64,
    /// Times the invalidation subscription was lost.
    pub subscription_losses: u64,
    /// Consecutive Redis failures counted by the breaker.
    pub breaker_failures: u64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> CacheStats {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CacheStats {
            hits: r(&self.hits),
            misses: r(&self.misses),
            integrity_failures: r(&self.integrity_failures),
            writes: r(&self.writes),
            deletes: r(&self.deletes),
            redis_errors: r(&self.redis_errors),
            breaker_rejections: r(&self.breaker_rejections),
            degraded_operations: r(&self.degraded_operations),
            async_enqueued: r(&self.async_enqueued),
            async_dropped: r(&self.async_dropped),
            async_failed: r(&self.async_failed),
            invalidations_published: r(&self.invalidations_published),
            invalidations_received: r(&self.invalidations_received),
            l2_backfills: r(&self.l2_backfills),
            subscription_losses: r(&self.subscription_losses),
            redis_ping: match r(&self.last_ping_us) {
                0 => None,
                us => Some(std::time::Duration::from_micros(us)),
            },
            ..CacheStats::default()
        }
    }
}
