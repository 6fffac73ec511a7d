//! Counters kept by the cache backends and the snapshot type they produce.
//!
//! Owns: lock-free counters. Must not: export metrics itself (telemetry reads
//! [`CacheStats`] and publishes it), or hold per-key data.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters shared by the parts of one backend.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
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
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// State of the circuit breaker in front of Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BreakerState {
    /// Calls go through.
    #[default]
    Closed,
    /// Calls fail at once without touching the network.
    Open,
    /// One probe call is allowed through to test recovery.
    HalfOpen,
}

/// A point-in-time copy of a backend's counters and health.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Reads that found a value (in any tier).
    pub hits: u64,
    /// Reads that found nothing.
    pub misses: u64,
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
}

impl Counters {
    pub(crate) fn snapshot(&self) -> CacheStats {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CacheStats {
            hits: r(&self.hits),
            misses: r(&self.misses),
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
            ..CacheStats::default()
        }
    }
}
