//! The cache layer: one async store of typed values under declared
//! namespaces, backed by memory, Redis, or both (hybrid).
//!
//! Owns: [`Namespace`] (each named cache's prefix, TTL, write class, failure
//! policy and memory bounds), [`CacheKey`], the [`Backend`] enum (memory,
//! Redis, hybrid) and [`Caches`], the handle the gate builds once and passes
//! down. Must not: know anything about OIDC (values are opaque serde types),
//! use a raw token as a key, log keys or values, or keep global state (every
//! `Caches` is independent; its background tasks stop when the last clone is
//! dropped).
//!
//! # Failure policy (Redis unreachable, timed out, or circuit open)
//!
//! | namespace policy | read | write / delete | `set_if_absent` |
//! |---|---|---|---|
//! | [`FailurePolicy::Degrade`] | local hit (hybrid) or miss | applied locally (hybrid) or dropped; `Ok` | hybrid: local only; redis: `Err` |
//! | [`FailurePolicy::Report`] | local hit (hybrid), else [`Error::Unavailable`] | applied locally (hybrid), then [`Error::Unavailable`] | [`Error::Unavailable`] |
//!
//! Every degraded operation is counted in [`CacheStats::degraded_operations`].
//! In hybrid mode, a local "absent" answer for a Sync-class namespace is
//! trusted only while the invalidation subscription is up; otherwise the read
//! goes to Redis (see the `hybrid` module for the coherence rules).

mod backend;
mod hybrid;
mod integrity;
mod key;
mod memory;
mod metrics;
mod namespace;
mod redis;
mod report;
mod settings;
mod stats;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;

pub use crate::breaker::{
    BreakerSettings, BreakerState, DEFAULT_BREAKER_FAILURE_THRESHOLD,
    DEFAULT_BREAKER_RECOVERY_TIMEOUT,
};
pub use backend::Backend;
pub use hybrid::{
    DEFAULT_RESUBSCRIBE_DELAY, DEFAULT_RESUBSCRIBE_MAX_DELAY, DEFAULT_TOMBSTONE_TTL, HybridStore,
    MAX_PUSHED_VALUE_BYTES,
};
pub use integrity::{IntegrityKey, TAG_LEN};
pub use key::{CacheKey, KeyError, MAX_KEY_BYTES};
pub use memory::{ENTRY_OVERHEAD_BYTES, MemoryBudget, MemoryStore};
pub use metrics::breaker_gauge;
pub use namespace::{
    DEFAULT_CLIENT_REGISTRATION_TTL, DEFAULT_INTROSPECTION_TTL, DEFAULT_PROVIDER_SESSION_TTL,
    DEFAULT_REFRESH_LOCK_TTL, DEFAULT_REFRESH_RESULT_TTL, DEFAULT_REPLAY_MARK_TTL,
    DEFAULT_REVOKED_TTL, DEFAULT_SESSION_INVALIDATION_TTL, DEFAULT_SESSION_TTL,
    DEFAULT_VERIFIED_CLAIMS_TTL, FailurePolicy, Namespace, WriteClass,
};
pub use redis::{
    DEFAULT_HEALTH_RECHECK_SPACING, DEFAULT_RECONNECT_MIN_DELAY, DEFAULT_RECONNECT_RETRIES,
    DEFAULT_SCAN_COUNT, RedisStore,
};
pub use report::RedisReport;
pub use settings::{
    CacheMode, CacheSettings, DEFAULT_ASYNC_QUEUE_CAPACITY, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_HEALTH_CHECK_INTERVAL, DEFAULT_KEY_PREFIX, DEFAULT_MAX_VALUE_BYTES, DEFAULT_POOL_SIZE,
    DEFAULT_REDIS_PORT, DEFAULT_RESPONSE_TIMEOUT, MAX_POOL_SIZE, RedisAddress, RedisSettings,
    RedisTls, RedisTopology,
};
pub use stats::CacheStats;

/// Shortest TTL a write accepts; shorter TTLs are raised to it.
pub const MIN_TTL: Duration = Duration::from_millis(1);
/// Longest TTL a write accepts; longer TTLs are lowered to it.
pub const MAX_TTL: Duration = Duration::from_secs(90 * 24 * 60 * 60);

/// Errors of the cache layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Redis could not be reached (or the circuit is open) and the namespace's
    /// policy is [`FailurePolicy::Report`], or the operation cannot be
    /// answered without Redis.
    #[error("cache {namespace}: redis unavailable")]
    Unavailable {
        /// The namespace of the failed operation.
        namespace: Namespace,
    },
    /// Redis answered with an error (not an outage).
    #[error("cache {namespace}: redis error {detail}")]
    Redis {
        /// The namespace of the failed operation.
        namespace: Namespace,
        /// The error kind reported by the client.
        detail: String,
    },
    /// The value could not be serialized.
    #[error("cache {namespace}: cannot encode value: {source}")]
    Encode {
        /// The namespace of the failed operation.
        namespace: Namespace,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },
    /// A stored value could not be deserialized into the requested type.
    #[error("cache {namespace}: cannot decode stored value: {source}")]
    Decode {
        /// The namespace of the failed operation.
        namespace: Namespace,
        /// The deserializer's error.
        #[source]
        source: serde_json::Error,
    },
    /// The serialized value is larger than the configured limit.
    #[error("cache {namespace}: value of {size} bytes exceeds the limit of {limit}")]
    ValueTooLarge {
        /// The namespace of the refused write.
        namespace: Namespace,
        /// Size of the value.
        size: usize,
        /// The limit ([`CacheSettings::max_value_bytes`]).
        limit: usize,
    },
    /// Redis did not answer a ping.
    #[error("cache: redis did not answer a ping")]
    PingFailed,
    /// The settings cannot be turned into a backend.
    #[error("cache settings: {0}")]
    Settings(String),
}

/// Stops the background tasks of one [`Caches`] when dropped.
#[derive(Debug, Default)]
struct BackgroundTasks(Vec<JoinHandle<()>>);

impl Drop for BackgroundTasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// The caches of one gate: a [`Backend`] plus the typed API. Build one with
/// [`Caches::new`] (or [`Caches::memory`]) and pass clones down; the
/// background tasks stop when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Caches {
    backend: Backend,
    max_value_bytes: usize,
    integrity: Option<Arc<integrity::Integrity>>,
    _tasks: Arc<BackgroundTasks>,
}

impl Caches {
    /// Builds the backend described by `settings`. Redis and hybrid modes
    /// must be called inside a Tokio runtime (they start background tasks);
    /// a Redis that is down at start is not an error (the health check keeps
    /// trying), but unreadable TLS files or missing Redis settings are.
    pub async fn new(settings: CacheSettings) -> Result<Caches, Error> {
        let (backend, tasks) = Backend::build(&settings).await?;
        Ok(Caches {
            backend,
            max_value_bytes: settings.max_value_bytes,
            integrity: None,
            _tasks: Arc::new(BackgroundTasks(tasks)),
        })
    }

    /// In-memory caches with the declared limits; needs no runtime.
    pub fn memory() -> Caches {
        Caches {
            backend: Backend::memory(None),
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            integrity: None,
            _tasks: Arc::default(),
        }
    }

    /// These caches with values of authenticated namespaces
    /// ([`Namespace::is_authenticated`]) tagged under the first of `keys`
    /// and checked under any of them: a stored value without a right tag
    /// reads as a miss, counted in [`CacheStats::integrity_failures`].
    /// Memory-only caches stay as they are (no one else writes to them).
    pub fn with_integrity_keys(mut self, keys: Vec<IntegrityKey>) -> Caches {
        if !matches!(self.backend, Backend::Memory(_)) {
            self.integrity = integrity::Integrity::new(keys).map(Arc::new);
        }
        self
    }

    /// The byte-level store.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    fn encode<V: Serialize + ?Sized>(
        &self,
        ns: Namespace,
        key: &CacheKey,
        value: &V,
    ) -> Result<Bytes, Error> {
        let mut bytes = serde_json::to_vec(value).map_err(|source| Error::Encode {
            namespace: ns,
            source,
        })?;
        if ns.is_authenticated()
            && let Some(integrity) = &self.integrity
        {
            bytes = integrity.seal(ns, key, &bytes);
        }
        if bytes.len() > self.max_value_bytes {
            return Err(Error::ValueTooLarge {
                namespace: ns,
                size: bytes.len(),
                limit: self.max_value_bytes,
            });
        }
        Ok(Bytes::from(bytes))
    }

    /// The stored value, or `None` when it fails its integrity check.
    fn decode<V: DeserializeOwned>(
        &self,
        ns: Namespace,
        key: &CacheKey,
        bytes: &[u8],
    ) -> Result<Option<V>, Error> {
        let bytes = match &self.integrity {
            Some(integrity) if ns.is_authenticated() => match integrity.open(ns, key, bytes) {
                Some(value) => value,
                None => {
                    self.backend.count_integrity_failure();
                    tracing::warn!(namespace = %ns, "cached value failed its integrity check; ignored");
                    return Ok(None);
                }
            },
            _ => bytes,
        };
        serde_json::from_slice(bytes)
            .map(Some)
            .map_err(|source| Error::Decode {
                namespace: ns,
                source,
            })
    }

    /// Reads and deserializes the value under `key`.
    pub async fn get<V: DeserializeOwned>(
        &self,
        ns: Namespace,
        key: &CacheKey,
    ) -> Result<Option<V>, Error> {
        match self.backend.get(ns, key).await? {
            Some(b) => self.decode(ns, key, &b),
            None => Ok(None),
        }
    }

    /// Serializes and stores `value` for `ttl` (clamped to
    /// [`MIN_TTL`]..=[`MAX_TTL`]).
    pub async fn set<V: Serialize + ?Sized>(
        &self,
        ns: Namespace,
        key: &CacheKey,
        value: &V,
        ttl: Duration,
    ) -> Result<(), Error> {
        let bytes = self.encode(ns, key, value)?;
        self.backend.set(ns, key, bytes, ttl).await
    }

    /// Stores `value` only if `key` is absent, atomically across replicas in
    /// Redis and hybrid modes (`SET NX PX`). Returns whether it was stored.
    pub async fn set_if_absent<V: Serialize + ?Sized>(
        &self,
        ns: Namespace,
        key: &CacheKey,
        value: &V,
        ttl: Duration,
    ) -> Result<bool, Error> {
        let bytes = self.encode(ns, key, value)?;
        self.backend.set_if_absent(ns, key, bytes, ttl).await
    }

    /// Removes `key`; returns whether a value was removed.
    pub async fn delete(&self, ns: Namespace, key: &CacheKey) -> Result<bool, Error> {
        self.backend.delete(ns, key).await
    }

    /// Whether a value is stored under `key`.
    pub async fn exists(&self, ns: Namespace, key: &CacheKey) -> Result<bool, Error> {
        self.backend.exists(ns, key).await
    }

    /// Reads several keys; the result has one slot per key, in order.
    pub async fn get_many<V: DeserializeOwned>(
        &self,
        ns: Namespace,
        keys: &[CacheKey],
    ) -> Result<Vec<Option<V>>, Error> {
        self.backend
            .get_many(ns, keys)
            .await?
            .into_iter()
            .zip(keys)
            .map(|(b, key)| match b {
                Some(b) => self.decode(ns, key, &b),
                None => Ok(None),
            })
            .collect()
    }

    /// Stores several values with one TTL.
    pub async fn set_many<V: Serialize>(
        &self,
        ns: Namespace,
        entries: &[(CacheKey, V)],
        ttl: Duration,
    ) -> Result<(), Error> {
        let encoded = entries
            .iter()
            .map(|(k, v)| Ok((k.clone(), self.encode(ns, k, v)?)))
            .collect::<Result<Vec<_>, Error>>()?;
        self.backend.set_many(ns, &encoded, ttl).await
    }

    /// Removes every entry of `ns` (Redis: `SCAN` + `UNLINK`, never `KEYS`).
    pub async fn clear(&self, ns: Namespace) -> Result<(), Error> {
        self.backend.clear(ns).await
    }

    /// Checks that the shared tier answers (always `Ok` in memory mode).
    pub async fn ping(&self) -> Result<(), Error> {
        self.backend.ping().await
    }

    /// Waits until queued Async-class writes have been attempted (hybrid
    /// mode; returns at once otherwise).
    pub async fn flush(&self) {
        self.backend.flush().await;
    }

    /// Counters and health.
    pub fn stats(&self) -> CacheStats {
        self.backend.stats()
    }
}
