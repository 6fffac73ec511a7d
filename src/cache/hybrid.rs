//! The hybrid tier: the memory tier (L1) in front of Redis (L2), kept coherent
//! across replicas by invalidation messages on `<keyPrefix>invalidate`.
//!
//! Owns: read-through with back-fill, the two write classes, the bounded
//! Async-class write queue and its single worker, the invalidation
//! subscriber, and the health task. Must not: spawn a task per operation, let
//! a full queue grow or block a caller, or trust a local "absent" answer for a
//! Sync-class namespace while the subscription is down.
//!
//! # Coherence rules
//!
//! * Every delete, every `clear`, and every write of a [`WriteClass::Sync`]
//!   namespace publishes `<replica>:<op>:<namespace>:<key>`; other replicas
//!   drop their L1 entry (op `d`) or the whole namespace (op `c`). Messages
//!   carry keys only, except for marker namespaces
//!   ([`Namespace::is_marker`]: small, non-secret values that are only ever
//!   added), whose writes publish `<replica>:s:<namespace>:<ttl ms>:<key>
//!   <value>` so every replica holds the marker in L1 and enforces it even
//!   when its own Redis reads fail.
//! * While the subscription is up, L1 answers for Sync-class namespaces are
//!   authoritative, including "known absent" (a tombstone stored after an L2
//!   miss, living at most [`DEFAULT_TOMBSTONE_TTL`]): any write on any replica
//!   evicts it.
//! * While the subscription is down, Sync-class reads go to L2 and are not
//!   back-filled into L1. When it comes back, L1 entries of Sync-class
//!   namespaces are dropped (messages may have been missed) before local
//!   answers are trusted again, except marker values: they are kept, and
//!   asked of L2 first until a read refreshes them. A marker L1 holds is
//!   never answered "absent" because L2 lost it or cannot answer.
//! * A working subscription closes the Redis circuit breaker; a dropped one
//!   wakes the health check (a Sentinel master may have moved).
//! * A back-fill from L2 is undone when an invalidation or a local write of
//!   the same namespace happened while it was in flight (per-namespace epoch),
//!   so a back-fill never resurrects a value another write replaced.
//! * Async-class namespaces hold ordinary cache data: L1 hits are served
//!   without L2, deletes are propagated, overwrites are not (staleness is
//!   bounded by the entry's TTL).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::Error;
use super::key::CacheKey;
use super::memory::MemoryStore;
use super::namespace::{FailurePolicy, Namespace, WriteClass};
use super::redis::{L2Error, RedisStore};
use super::stats::Counters;
use crate::telemetry::metrics::Tier;

/// Lifetime of a "known absent" L1 entry of a Sync-class namespace.
pub const DEFAULT_TOMBSTONE_TTL: Duration = Duration::from_secs(60);
/// First delay before re-subscribing after the subscription dropped; doubles
/// up to [`DEFAULT_RESUBSCRIBE_MAX_DELAY`].
pub const DEFAULT_RESUBSCRIBE_DELAY: Duration = Duration::from_millis(100);
/// Longest delay between two subscription attempts: a replica follows a
/// restarted Redis or a new Sentinel master within about this time.
pub const DEFAULT_RESUBSCRIBE_MAX_DELAY: Duration = Duration::from_secs(1);
/// Largest marker value carried in an invalidation message; a larger one
/// is announced by key only.
pub const MAX_PUSHED_VALUE_BYTES: usize = 256;

enum Job {
    Set {
        ns: Namespace,
        key: CacheKey,
        value: Bytes,
        ttl: Duration,
    },
    SetMany {
        ns: Namespace,
        entries: Vec<(CacheKey, Bytes)>,
        ttl: Duration,
    },
    Delete {
        ns: Namespace,
        key: CacheKey,
        notify: Vec<u8>,
        done: oneshot::Sender<Result<bool, L2Error>>,
    },
    Clear {
        ns: Namespace,
        notify: Vec<u8>,
        done: oneshot::Sender<Result<(), L2Error>>,
    },
    Flush(oneshot::Sender<()>),
}

struct Inner {
    l1: MemoryStore,
    l2: RedisStore,
    counters: Arc<Counters>,
    replica: String,
    queue: mpsc::Sender<Job>,
    subscribed: AtomicBool,
    epochs: [AtomicU64; Namespace::COUNT],
}

/// The hybrid tier. Cloning is cheap.
#[derive(Clone)]
pub struct HybridStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for HybridStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HybridStore")
            .field("l1", &self.inner.l1)
            .field("l2", &self.inner.l2)
            .field("subscribed", &self.inner.subscribed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

fn replica_id() -> String {
    let mut b = [0u8; 8];
    if aws_lc_rs::rand::fill(&mut b).is_err() {
        // Only uniqueness matters; fall back to the process id and time.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        b = (u64::from(std::process::id()) ^ (t as u64)).to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unavailable(ns: Namespace, e: &L2Error) -> Error {
    match e {
        L2Error::Failed(e) if !e.is_io_error() && !e.is_timeout() => Error::Redis {
            namespace: ns,
            detail: format!("{:?}", e.kind()),
        },
        _ => Error::Unavailable { namespace: ns },
    }
}

impl HybridStore {
    /// Builds the tier and starts its three background tasks (queue worker,
    /// subscriber, health check); their handles are returned for the owner to
    /// stop.
    pub(crate) fn start(
        l1: MemoryStore,
        l2: RedisStore,
        counters: Arc<Counters>,
        queue_capacity: usize,
    ) -> (HybridStore, Vec<JoinHandle<()>>) {
        let (tx, rx) = mpsc::channel(queue_capacity.max(1));
        let store = HybridStore {
            inner: Arc::new(Inner {
                l1,
                l2,
                counters,
                replica: replica_id(),
                queue: tx,
                subscribed: AtomicBool::new(false),
                epochs: std::array::from_fn(|_| AtomicU64::new(0)),
            }),
        };
        let tasks = vec![
            tokio::spawn(store.clone().run_worker(rx)),
            tokio::spawn(store.clone().run_subscriber()),
            tokio::spawn(store.inner.l2.clone().run_health()),
        ];
        (store, tasks)
    }

    pub(crate) fn l1(&self) -> &MemoryStore {
        &self.inner.l1
    }

    pub(crate) fn l2(&self) -> &RedisStore {
        &self.inner.l2
    }

    /// Async-class writes waiting in the queue.
    pub(crate) fn queue_depth(&self) -> u64 {
        let q = &self.inner.queue;
        (q.max_capacity() - q.capacity()) as u64
    }

    /// Whether the invalidation subscription is up.
    pub(crate) fn subscribed(&self) -> bool {
        self.inner.subscribed.load(Ordering::Acquire)
    }

    fn epoch(&self, ns: Namespace) -> u64 {
        self.inner.epochs[ns.index()].load(Ordering::Acquire)
    }

    fn bump(&self, ns: Namespace) {
        self.inner.epochs[ns.index()].fetch_add(1, Ordering::AcqRel);
    }

    fn message(&self, op: char, ns: Namespace, key: Option<&CacheKey>) -> Vec<u8> {
        let key = key.map_or("", CacheKey::as_str);
        format!("{}:{op}:{}:{key}", self.inner.replica, ns.prefix()).into_bytes()
    }

    /// The message announcing a write of `key`: for a marker namespace it
    /// carries the value and TTL (`<replica>:s:<ns>:<ttl ms>:<key> <value>`,
    /// keys hold no whitespace), so that every replica knows the marker
    /// without reading Redis; otherwise it only evicts (`d`).
    fn write_message(&self, ns: Namespace, key: &CacheKey, value: &[u8], ttl: Duration) -> Vec<u8> {
        if !ns.is_marker() || value.len() > MAX_PUSHED_VALUE_BYTES {
            return self.message('d', ns, Some(key));
        }
        let mut m = format!(
            "{}:s:{}:{}:{} ",
            self.inner.replica,
            ns.prefix(),
            ttl.as_millis(),
            key.as_str()
        )
        .into_bytes();
        m.extend_from_slice(value);
        m
    }

    fn degraded(&self) {
        Counters::bump(&self.inner.counters.degraded_operations);
    }

    /// Back-fills L1 unless an invalidation or local write of `ns` happened
    /// since `epoch0` was read. Markers are filled unless a marker is
    /// already there (see [`MemoryStore::fill`]).
    fn backfill(
        &self,
        ns: Namespace,
        key: &CacheKey,
        value: Option<Bytes>,
        ttl: Duration,
        epoch0: u64,
    ) {
        if ns.is_marker() {
            // Markers are only ever added: a fill cannot resurrect anything,
            // and must not replace a marker pushed while the read was out.
            self.inner.l1.fill(ns, key, value, ttl);
            Counters::bump(&self.inner.counters.l2_backfills);
            return;
        }
        self.inner.l1.put(ns, key, value, ttl);
        if self.epoch(ns) != epoch0 {
            self.inner.l1.remove(ns, key);
        } else {
            Counters::bump(&self.inner.counters.l2_backfills);
        }
    }

    /// Back-fills a value L2 returned, for the lifetime it has left there
    /// (`None`: no expiry in L2, the namespace's default here). A value that
    /// expired as it was read is not kept: L1 must not outlive L2.
    fn backfill_found(
        &self,
        ns: Namespace,
        key: &CacheKey,
        value: &Bytes,
        ttl: Option<Duration>,
        epoch0: u64,
    ) {
        let ttl = ttl.unwrap_or_else(|| ns.default_ttl());
        if !ttl.is_zero() {
            self.backfill(ns, key, Some(value.clone()), ttl, epoch0);
        }
    }

    // ----- reads -----

    pub(crate) async fn get(&self, ns: Namespace, key: &CacheKey) -> Result<Option<Bytes>, Error> {
        let sync = ns.write_class() == WriteClass::Sync;
        let trusted = !sync || self.subscribed();
        let local = self.inner.l1.lookup(ns, key);
        if trusted
            && let Some(entry) = &local
            && !entry.kept
        {
            self.inner
                .counters
                .read(ns, Tier::L1, entry.value.is_some());
            return Ok(entry.value.clone());
        }
        self.inner.counters.read(ns, Tier::L1, false);
        let local = local.and_then(|e| e.value);
        let epoch0 = self.epoch(ns);
        let l2 = self.inner.l2.get_with_ttl(ns, key).await;
        if let Ok(found) = &l2 {
            self.inner.counters.read(ns, Tier::L2, found.is_some());
        }
        match l2 {
            Ok(Some((value, ttl))) => {
                if trusted {
                    self.backfill_found(ns, key, &value, ttl, epoch0);
                }
                Ok(Some(value))
            }
            Ok(None) => {
                if ns.is_marker() && local.is_some() {
                    // Redis lost a marker this replica saw: it stays known.
                    return Ok(local);
                }
                if sync && trusted {
                    self.backfill(ns, key, None, DEFAULT_TOMBSTONE_TTL, epoch0);
                }
                Ok(None)
            }
            Err(e) => self.read_failed(ns, local, &e),
        }
    }

    fn read_failed(
        &self,
        ns: Namespace,
        local: Option<Bytes>,
        e: &L2Error,
    ) -> Result<Option<Bytes>, Error> {
        self.degraded();
        match (ns.failure_policy(), local) {
            (_, Some(v)) => Ok(Some(v)),
            (FailurePolicy::Degrade, None) => Ok(None),
            (FailurePolicy::Report, None) => Err(unavailable(ns, e)),
        }
    }

    pub(crate) async fn get_many(
        &self,
        ns: Namespace,
        keys: &[CacheKey],
    ) -> Result<Vec<Option<Bytes>>, Error> {
        let sync = ns.write_class() == WriteClass::Sync;
        let trusted = !sync || self.subscribed();
        let mut out: Vec<Option<Bytes>> = Vec::with_capacity(keys.len());
        let mut missing: Vec<(usize, CacheKey, Option<Bytes>)> = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            match self.inner.l1.lookup(ns, key) {
                Some(entry) if trusted && !entry.kept => out.push(entry.value),
                other => {
                    out.push(None);
                    missing.push((i, key.clone(), other.and_then(|e| e.value)));
                }
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }
        let epoch0 = self.epoch(ns);
        let miss_keys: Vec<CacheKey> = missing.iter().map(|(_, k, _)| k.clone()).collect();
        match self.inner.l2.get_many_with_ttl(ns, &miss_keys).await {
            Ok(found) => {
                for ((i, key, local), got) in missing.into_iter().zip(found) {
                    match got {
                        Some((value, ttl)) => {
                            if trusted {
                                self.backfill_found(ns, &key, &value, ttl, epoch0);
                            }
                            out[i] = Some(value);
                        }
                        None if ns.is_marker() && local.is_some() => out[i] = local,
                        None => {
                            if sync && trusted {
                                self.backfill(ns, &key, None, DEFAULT_TOMBSTONE_TTL, epoch0);
                            }
                        }
                    }
                }
                Ok(out)
            }
            Err(e) => {
                for (i, _, local) in missing {
                    out[i] = self.read_failed(ns, local, &e)?;
                }
                Ok(out)
            }
        }
    }

    // ----- writes -----

    pub(crate) async fn set(
        &self,
        ns: Namespace,
        key: &CacheKey,
        value: Bytes,
        ttl: Duration,
    ) -> Result<(), Error> {
        self.bump(ns);
        self.inner.l1.put(ns, key, Some(value.clone()), ttl);
        match ns.write_class() {
            WriteClass::Async => {
                self.enqueue(Job::Set {
                    ns,
                    key: key.clone(),
                    value,
                    ttl,
                });
                Ok(())
            }
            WriteClass::Sync => {
                let msg = self.write_message(ns, key, &value, ttl);
                let r = self.inner.l2.set(ns, key, &value, ttl, Some(&msg)).await;
                self.bump(ns);
                self.inner.l1.put(ns, key, Some(value), ttl);
                match r {
                    Ok(()) => {
                        Counters::bump(&self.inner.counters.invalidations_published);
                        Ok(())
                    }
                    Err(e) => self.write_failed(ns, &e),
                }
            }
        }
    }

    fn write_failed(&self, ns: Namespace, e: &L2Error) -> Result<(), Error> {
        self.degraded();
        match ns.failure_policy() {
            FailurePolicy::Degrade => Ok(()),
            FailurePolicy::Report => Err(unavailable(ns, e)),
        }
    }

    fn enqueue(&self, job: Job) {
        match self.inner.queue.try_send(job) {
            Ok(()) => Counters::bump(&self.inner.counters.async_enqueued),
            Err(_) => Counters::bump(&self.inner.counters.async_dropped),
        }
    }

    pub(crate) async fn set_many(
        &self,
        ns: Namespace,
        entries: &[(CacheKey, Bytes)],
        ttl: Duration,
    ) -> Result<(), Error> {
        match ns.write_class() {
            WriteClass::Async => {
                self.bump(ns);
                for (k, v) in entries {
                    self.inner.l1.put(ns, k, Some(v.clone()), ttl);
                }
                self.enqueue(Job::SetMany {
                    ns,
                    entries: entries.to_vec(),
                    ttl,
                });
                Ok(())
            }
            WriteClass::Sync => {
                let results = futures_util::future::join_all(
                    entries.iter().map(|(k, v)| self.set(ns, k, v.clone(), ttl)),
                )
                .await;
                results.into_iter().collect()
            }
        }
    }

    pub(crate) async fn set_if_absent(
        &self,
        ns: Namespace,
        key: &CacheKey,
        value: Bytes,
        ttl: Duration,
    ) -> Result<bool, Error> {
        if self.inner.l1.get(ns, key).is_some() {
            return Ok(false);
        }
        let msg = self.write_message(ns, key, &value, ttl);
        match self
            .inner
            .l2
            .set_if_absent(ns, key, &value, ttl, Some(&msg))
            .await
        {
            Ok(true) => {
                Counters::bump(&self.inner.counters.invalidations_published);
                self.bump(ns);
                self.inner.l1.put(ns, key, Some(value), ttl);
                Ok(true)
            }
            Ok(false) => Ok(false),
            Err(e) => {
                self.degraded();
                match ns.failure_policy() {
                    FailurePolicy::Degrade => {
                        self.bump(ns);
                        Ok(self.inner.l1.put_if_absent(ns, key, value, ttl))
                    }
                    FailurePolicy::Report => Err(unavailable(ns, &e)),
                }
            }
        }
    }

    /// Runs `job` on the worker, behind the Async-class writes queued before
    /// it, so that a queued write cannot resurrect what the job removes. When
    /// the queue is full the job runs here instead (counted as dropped from
    /// the queue).
    async fn ordered<T>(
        &self,
        ns: Namespace,
        make: impl FnOnce(oneshot::Sender<Result<T, L2Error>>) -> Job,
        direct: impl AsyncFnOnce() -> Result<T, L2Error>,
    ) -> Result<T, L2Error> {
        if ns.write_class() == WriteClass::Async {
            let (tx, rx) = oneshot::channel();
            match self.inner.queue.try_send(make(tx)) {
                Ok(()) => return rx.await.unwrap_or(Err(L2Error::Rejected)),
                Err(_) => Counters::bump(&self.inner.counters.async_dropped),
            }
        }
        direct().await
    }

    pub(crate) async fn delete(&self, ns: Namespace, key: &CacheKey) -> Result<bool, Error> {
        self.bump(ns);
        let local = self.inner.l1.remove(ns, key);
        let msg = self.message('d', ns, Some(key));
        let r = self
            .ordered(
                ns,
                |done| Job::Delete {
                    ns,
                    key: key.clone(),
                    notify: msg.clone(),
                    done,
                },
                async || self.inner.l2.delete(ns, key, Some(&msg)).await,
            )
            .await;
        self.bump(ns);
        self.inner.l1.remove(ns, key);
        match r {
            Ok(removed) => {
                Counters::bump(&self.inner.counters.invalidations_published);
                Ok(removed || local)
            }
            Err(e) => self.write_failed(ns, &e).map(|()| local),
        }
    }

    pub(crate) async fn clear(&self, ns: Namespace) -> Result<(), Error> {
        self.bump(ns);
        self.inner.l1.clear(ns);
        let msg = self.message('c', ns, None);
        let r = self
            .ordered(
                ns,
                |done| Job::Clear {
                    ns,
                    notify: msg.clone(),
                    done,
                },
                async || self.clear_l2(ns, &msg).await,
            )
            .await;
        self.bump(ns);
        self.inner.l1.clear(ns);
        match r {
            Ok(()) => {
                Counters::bump(&self.inner.counters.invalidations_published);
                Ok(())
            }
            Err(e) => self.write_failed(ns, &e),
        }
    }

    async fn clear_l2(&self, ns: Namespace, notify: &[u8]) -> Result<(), L2Error> {
        self.inner.l2.clear(ns).await?;
        self.inner.l2.publish(notify).await
    }

    /// Waits until every Async-class write queued before this call has been
    /// attempted against L2.
    pub(crate) async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.inner.queue.send(Job::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    // ----- background tasks -----

    async fn run_worker(self, mut rx: mpsc::Receiver<Job>) {
        while let Some(job) = rx.recv().await {
            let r = match job {
                Job::Set {
                    ns,
                    key,
                    value,
                    ttl,
                } => self.inner.l2.set(ns, &key, &value, ttl, None).await,
                Job::SetMany { ns, entries, ttl } => {
                    self.inner.l2.set_many(ns, &entries, ttl).await
                }
                Job::Delete {
                    ns,
                    key,
                    notify,
                    done,
                } => {
                    let r = self.inner.l2.delete(ns, &key, Some(&notify)).await;
                    let failed = r.is_err();
                    let _ = done.send(r);
                    if failed {
                        Err(L2Error::Rejected)
                    } else {
                        Ok(())
                    }
                }
                Job::Clear { ns, notify, done } => {
                    let r = self.clear_l2(ns, &notify).await;
                    let failed = r.is_err();
                    let _ = done.send(r);
                    if failed {
                        Err(L2Error::Rejected)
                    } else {
                        Ok(())
                    }
                }
                Job::Flush(done) => {
                    let _ = done.send(());
                    Ok(())
                }
            };
            if r.is_err() {
                Counters::bump(&self.inner.counters.async_failed);
            }
        }
    }

    fn set_subscribed(&self, up: bool) {
        // Bump every epoch first so in-flight back-fills that started under
        // the previous state are undone.
        for ns in Namespace::ALL {
            self.bump(ns);
        }
        if up {
            for ns in Namespace::ALL {
                if ns.is_marker() {
                    // A marker seen before the lapse is never forgotten, but
                    // Redis may hold a newer value: ask it first from now on.
                    self.inner.l1.keep_values_only(ns);
                } else if ns.write_class() == WriteClass::Sync {
                    self.inner.l1.clear(ns);
                }
            }
        }
        self.inner.subscribed.store(up, Ordering::Release);
        if up {
            tracing::info!("cache invalidation subscription up");
        } else {
            Counters::bump(&self.inner.counters.subscription_losses);
            tracing::warn!("cache invalidation subscription down; security caches read from redis");
        }
    }

    fn on_message(&self, payload: &[u8]) {
        let Ok(text) = std::str::from_utf8(payload) else {
            return;
        };
        let mut parts = text.splitn(4, ':');
        let (Some(replica), Some(op), Some(ns), Some(key)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return;
        };
        if replica == self.inner.replica {
            return;
        }
        let Some(ns) = Namespace::from_prefix(ns) else {
            return;
        };
        Counters::bump(&self.inner.counters.invalidations_received);
        self.bump(ns);
        match op {
            "d" => {
                if let Ok(key) = CacheKey::new(key) {
                    self.inner.l1.remove(ns, &key);
                }
            }
            "c" => self.inner.l1.clear(ns),
            "s" => self.on_pushed_marker(ns, key),
            _ => {}
        }
    }

    /// A marker written on another replica: stored in L1 as it is, so it is
    /// enforced here even when Redis reads fail. Anything malformed only
    /// evicts the key (the next read goes to Redis).
    fn on_pushed_marker(&self, ns: Namespace, rest: &str) {
        let Some((ttl, rest)) = rest.split_once(':') else {
            return;
        };
        let (key, value) = rest.split_once(' ').unwrap_or((rest, ""));
        let Ok(key) = CacheKey::new(key) else {
            return;
        };
        match ttl.parse::<u64>() {
            Ok(ms) if ns.is_marker() && !value.is_empty() => {
                let ttl = Duration::from_millis(ms).clamp(super::MIN_TTL, super::MAX_TTL);
                self.inner.l1.put(
                    ns,
                    &key,
                    Some(Bytes::copy_from_slice(value.as_bytes())),
                    ttl,
                );
            }
            _ => {
                self.inner.l1.remove(ns, &key);
            }
        }
    }

    async fn run_subscriber(self) {
        let max_delay = DEFAULT_RESUBSCRIBE_MAX_DELAY;
        let ping_every = self.inner.l2.health_check_interval();
        let ping_timeout = self.inner.l2.connect_timeout();
        let mut delay = DEFAULT_RESUBSCRIBE_DELAY;
        loop {
            if let Ok(mut ps) = self.inner.l2.pubsub().await
                && ps.subscribe(self.inner.l2.channel()).await.is_ok()
            {
                delay = DEFAULT_RESUBSCRIBE_DELAY;
                let (mut sink, mut stream) = ps.split();
                self.set_subscribed(true);
                // Redis answers: the breaker closes now, not after its
                // recovery time.
                self.inner.l2.note_alive();
                loop {
                    tokio::select! {
                        msg = stream.next() => match msg {
                            Some(msg) => self.on_message(msg.get_payload_bytes()),
                            None => break,
                        },
                        () = tokio::time::sleep(ping_every) => {
                            let pong = tokio::time::timeout(ping_timeout, sink.ping::<redis::Value>()).await;
                            if !matches!(pong, Ok(Ok(_))) {
                                break;
                            }
                            self.inner.l2.note_alive();
                        }
                    }
                }
                self.set_subscribed(false);
                // The server went away or the master moved: re-check the
                // connections now.
                self.inner.l2.wake_health();
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(max_delay);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn replica_ids_are_16_hex_and_differ() {
        let a = replica_id();
        let b = replica_id();
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
