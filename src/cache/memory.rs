//! The memory tier: one bounded moka cache per namespace, with per-entry TTL.
//!
//! Owns: in-process storage with entry and byte bounds. Must not: block on I/O,
//! spawn tasks, or grow without bound (every namespace has an entry and a byte
//! limit; inserting past them evicts).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use moka::Expiry;
use moka::sync::Cache;

use super::key::CacheKey;
use super::namespace::Namespace;
use super::stats::Counters;

/// Bytes charged for every entry on top of its key and value, covering the
/// map's own bookkeeping.
pub const ENTRY_OVERHEAD_BYTES: u64 = 96;

/// A total memory budget, shared by all namespaces in proportion to their
/// declared limits ([`Namespace::max_entries`], [`Namespace::max_bytes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryBudget {
    /// Total entries over all namespaces.
    pub max_entries: u64,
    /// Total bytes over all namespaces.
    pub max_bytes: u64,
}

/// Bounds of one namespace in the memory tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub(crate) max_entries: u64,
    pub(crate) max_bytes: u64,
}

impl Limits {
    /// The declared limits of `ns`, or its share of `budget`.
    pub(crate) fn for_namespace(ns: Namespace, budget: Option<MemoryBudget>) -> Limits {
        let declared = Limits {
            max_entries: ns.max_entries(),
            max_bytes: ns.max_bytes(),
        };
        let Some(budget) = budget else {
            return declared;
        };
        let total_entries: u64 = Namespace::ALL.iter().map(|n| n.max_entries()).sum();
        let total_bytes: u64 = Namespace::ALL.iter().map(|n| n.max_bytes()).sum();
        let share = |part: u64, whole: u64, total: u64| -> u64 {
            let v = u128::from(total) * u128::from(part) / u128::from(whole.max(1));
            u64::try_from(v).unwrap_or(u64::MAX)
        };
        let max_entries = share(declared.max_entries, total_entries, budget.max_entries).max(1);
        let max_bytes = share(declared.max_bytes, total_bytes, budget.max_bytes)
            .max(max_entries.saturating_mul(ENTRY_OVERHEAD_BYTES));
        Limits {
            max_entries,
            max_bytes,
        }
    }

    /// The weight of one slot: an entry weighs at least this much, so staying
    /// under `max_bytes` also keeps the count under `max_entries`.
    fn slot_weight(self) -> u64 {
        (self.max_bytes / self.max_entries.max(1)).max(1)
    }
}

/// One stored entry. `value: None` is a tombstone: "known absent", used by the
/// hybrid tier for namespaces whose local misses are authoritative.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub(crate) value: Option<Bytes>,
    pub(crate) ttl: Duration,
    /// Kept across a lapse of the invalidation subscription: the hybrid tier
    /// uses it when Redis cannot answer or has lost it, but asks Redis first.
    pub(crate) kept: bool,
}

struct EntryExpiry;

impl Expiry<CacheKey, Entry> for EntryExpiry {
    fn expire_after_create(&self, _: &CacheKey, entry: &Entry, _: Instant) -> Option<Duration> {
        Some(entry.ttl)
    }

    fn expire_after_update(
        &self,
        _: &CacheKey,
        entry: &Entry,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }
}

/// The memory tier: one moka cache per namespace.
#[derive(Clone)]
pub struct MemoryStore {
    caches: Arc<[Cache<CacheKey, Entry>]>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("entries", &self.entry_count())
            .finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// Builds one cache per namespace, bounded by the declared limits or by
    /// each namespace's share of `budget`.
    pub(crate) fn new(budget: Option<MemoryBudget>, counters: Arc<Counters>) -> MemoryStore {
        let caches: Vec<Cache<CacheKey, Entry>> = Namespace::ALL
            .iter()
            .map(|&ns| {
                let limits = Limits::for_namespace(ns, budget);
                let slot = limits.slot_weight();
                Cache::builder()
                    .name(ns.prefix())
                    .max_capacity(limits.max_bytes)
                    .weigher(move |k: &CacheKey, e: &Entry| {
                        let len = k.as_str().len() as u64
                            + e.value.as_ref().map_or(0, |v| v.len() as u64)
                            + ENTRY_OVERHEAD_BYTES;
                        u32::try_from(len.max(slot)).unwrap_or(u32::MAX)
                    })
                    .expire_after(EntryExpiry)
                    .build()
            })
            .collect();
        MemoryStore {
            caches: caches.into(),
            counters,
        }
    }

    fn cache(&self, ns: Namespace) -> &Cache<CacheKey, Entry> {
        // `caches` has one element per namespace, built from `Namespace::ALL`.
        &self.caches[ns.index()]
    }

    /// The raw entry (value or tombstone), if present and not expired.
    pub(crate) fn lookup(&self, ns: Namespace, key: &CacheKey) -> Option<Entry> {
        self.cache(ns).get(key)
    }

    /// The value, if present. Tombstones read as absent.
    pub(crate) fn get(&self, ns: Namespace, key: &CacheKey) -> Option<Bytes> {
        self.lookup(ns, key).and_then(|e| e.value)
    }

    /// Stores a value or a tombstone.
    pub(crate) fn put(&self, ns: Namespace, key: &CacheKey, value: Option<Bytes>, ttl: Duration) {
        self.cache(ns).insert(
            key.clone(),
            Entry {
                value,
                ttl,
                kept: false,
            },
        );
    }

    /// After a lapse of the invalidation subscription: drops the tombstones
    /// of `ns` and marks its values as kept (see [`Entry::kept`]).
    pub(crate) fn keep_values_only(&self, ns: Namespace) {
        let cache = self.cache(ns);
        let entries: Vec<(CacheKey, Entry)> = cache
            .iter()
            .map(|(k, e)| (CacheKey::clone(&k), e))
            .collect();
        for (key, entry) in entries {
            if entry.value.is_some() {
                cache.insert(
                    key,
                    Entry {
                        kept: true,
                        ..entry
                    },
                );
            } else {
                cache.invalidate(&key);
            }
        }
    }

    /// Stores `value` only if no live value is present (a tombstone counts as
    /// absent and is replaced). Returns whether it was stored.
    pub(crate) fn put_if_absent(
        &self,
        ns: Namespace,
        key: &CacheKey,
        value: Bytes,
        ttl: Duration,
    ) -> bool {
        let cache = self.cache(ns);
        let entry = cache.entry(key.clone()).or_insert_with(|| Entry {
            value: Some(value.clone()),
            ttl,
            kept: false,
        });
        if entry.is_fresh() {
            return true;
        }
        if entry.value().value.is_some() {
            return false;
        }
        // A tombstone: replace it only if it is still the current entry.
        let mut stored = false;
        cache.entry(key.clone()).and_compute_with(|current| {
            match current.map(|e| e.into_value()) {
                Some(Entry { value: Some(_), .. }) => moka::ops::compute::Op::Nop,
                _ => {
                    stored = true;
                    moka::ops::compute::Op::Put(Entry {
                        value: Some(value),
                        ttl,
                        kept: false,
                    })
                }
            }
        });
        stored
    }

    /// Stores `value` (or a tombstone) unless a live, not kept value is
    /// present: a fill from Redis never replaces a value written or pushed
    /// meanwhile. Used for markers, which are only ever added.
    pub(crate) fn fill(&self, ns: Namespace, key: &CacheKey, value: Option<Bytes>, ttl: Duration) {
        self.cache(ns)
            .entry(key.clone())
            .and_compute_with(|current| match current.map(|e| e.into_value()) {
                Some(Entry {
                    value: Some(_),
                    kept: false,
                    ..
                }) => moka::ops::compute::Op::Nop,
                _ => moka::ops::compute::Op::Put(Entry {
                    value,
                    ttl,
                    kept: false,
                }),
            });
    }

    /// Removes the entry (value or tombstone).
    pub(crate) fn remove(&self, ns: Namespace, key: &CacheKey) -> bool {
        self.cache(ns)
            .remove(key)
            .is_some_and(|entry| entry.value.is_some())
    }

    /// Removes every entry of `ns`.
    pub(crate) fn clear(&self, ns: Namespace) {
        self.cache(ns).invalidate_all();
    }

    /// Entries over all namespaces (approximate).
    pub(crate) fn entry_count(&self) -> u64 {
        self.caches.iter().map(|c| c.entry_count()).sum()
    }

    /// Weighted bytes over all namespaces (approximate).
    pub(crate) fn weighted_size(&self) -> u64 {
        self.caches.iter().map(|c| c.weighted_size()).sum()
    }

    /// Runs moka's pending housekeeping (evictions) now.
    #[cfg(test)]
    pub(crate) fn run_pending_tasks(&self) {
        for c in self.caches.iter() {
            c.run_pending_tasks();
        }
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn key(s: &str) -> CacheKey {
        CacheKey::new(s).unwrap()
    }

    #[test]
    fn budget_share_keeps_both_bounds() {
        let budget = MemoryBudget {
            max_entries: 500,
            max_bytes: 10 * 1024 * 1024,
        };
        let total: u64 = Namespace::ALL
            .iter()
            .map(|&ns| Limits::for_namespace(ns, Some(budget)).max_entries)
            .sum();
        assert!(total <= 500 + Namespace::COUNT as u64);
        let l = Limits::for_namespace(Namespace::VerifiedClaims, None);
        assert_eq!(l.max_entries, Namespace::VerifiedClaims.max_entries());
    }

    #[test]
    fn entry_bound_holds_with_tiny_values() {
        let store = MemoryStore::new(
            Some(MemoryBudget {
                max_entries: 200,
                max_bytes: 10 * 1024 * 1024,
            }),
            Arc::default(),
        );
        let limit = Limits::for_namespace(
            Namespace::Introspection,
            Some(MemoryBudget {
                max_entries: 200,
                max_bytes: 10 * 1024 * 1024,
            }),
        )
        .max_entries;
        for i in 0..(limit * 4) {
            store.put(
                Namespace::Introspection,
                &key(&format!("k{i}")),
                Some(Bytes::from_static(b"v")),
                Duration::from_secs(60),
            );
        }
        store.run_pending_tasks();
        assert!(store.cache(Namespace::Introspection).entry_count() <= limit);
    }

    #[test]
    fn byte_bound_holds_with_large_values() {
        let store = MemoryStore::new(None, Arc::default());
        let big = Bytes::from(vec![0u8; 256 * 1024]);
        for i in 0..64 {
            store.put(
                Namespace::RefreshLock,
                &key(&format!("k{i}")),
                Some(big.clone()),
                Duration::from_secs(60),
            );
        }
        store.run_pending_tasks();
        assert!(
            store.cache(Namespace::RefreshLock).weighted_size()
                <= Namespace::RefreshLock.max_bytes()
        );
    }

    #[test]
    fn put_if_absent_replaces_tombstones_only() {
        let store = MemoryStore::new(None, Arc::default());
        let k = key("jti-1");
        let ttl = Duration::from_secs(60);
        store.put(Namespace::ReplayMark, &k, None, ttl);
        assert!(store.put_if_absent(Namespace::ReplayMark, &k, Bytes::from_static(b"1"), ttl));
        assert!(!store.put_if_absent(Namespace::ReplayMark, &k, Bytes::from_static(b"2"), ttl));
        assert_eq!(
            store.get(Namespace::ReplayMark, &k),
            Some(Bytes::from_static(b"1"))
        );
    }
}
