//! The Redis tier: connections (standalone, Sentinel, Cluster; AUTH, ACL user,
//! db, TLS), the key layout `<keyPrefix><namespace prefix>:<key>`, and a
//! circuit breaker so that a dead Redis fails fast.
//!
//! Owns: every Redis command the cache sends. Must not: log keys or values,
//! apply a namespace's failure policy (the backends above do), or retry a
//! command by itself (the connection manager reconnects; the health check
//! re-resolves Sentinel masters and reconnects clusters).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use futures_util::future::join_all;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    Client, ClientTlsConfig, Cmd, ConnectionAddr, ErrorKind, FromRedisValue, IntoConnectionInfo,
    Pipeline, RedisConnectionInfo, RedisError, RedisResult, TlsCertificates, TlsMode, Value,
};

use super::key::CacheKey;
use super::namespace::Namespace;
use super::settings::{MAX_POOL_SIZE, RedisAddress, RedisSettings, RedisTopology};
use super::stats::Counters;
use crate::breaker::{Breaker, BreakerState};

/// Keys fetched per `SCAN` step when clearing a namespace.
pub const DEFAULT_SCAN_COUNT: usize = 500;
/// Reconnection attempts the connection manager makes per failed command
/// before it reports the failure (the breaker and health check take over).
pub const DEFAULT_RECONNECT_RETRIES: usize = 1;
/// First back-off delay of the connection manager's reconnection.
pub const DEFAULT_RECONNECT_MIN_DELAY: Duration = Duration::from_millis(50);
/// Shortest time between two health checks. A failed call wakes the health
/// check early (so a Sentinel fail-over is followed at once, not at the next
/// interval); this spacing keeps a dead Redis from being probed in a loop.
pub const DEFAULT_HEALTH_RECHECK_SPACING: Duration = Duration::from_millis(200);

/// Why a Redis call did not produce an answer.
#[derive(Debug, Clone)]
pub(crate) enum L2Error {
    /// Refused without a network call: breaker open or not connected.
    Rejected,
    /// The call timed out.
    Timeout,
    /// Redis or the connection returned an error.
    Failed(RedisError),
}

impl std::fmt::Display for L2Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            L2Error::Rejected => f.write_str("redis unavailable (circuit open or not connected)"),
            L2Error::Timeout => f.write_str("redis call timed out"),
            L2Error::Failed(e) => write!(f, "redis error ({:?})", e.kind()),
        }
    }
}

/// TLS material read from files at construction.
#[derive(Clone)]
struct LoadedTls {
    certs: TlsCertificates,
    insecure: bool,
}

/// How to reach Redis again.
enum Connector {
    Single(Client),
    Sentinel(tokio::sync::Mutex<SentinelClient>),
    Cluster {
        client: ClusterClient,
        seeds: Vec<RedisAddress>,
    },
}

/// Live connections.
enum Conn {
    Pool {
        /// `host:port` the pool is connected to (Sentinel compares it with the
        /// current master).
        addr: String,
        managers: Vec<ConnectionManager>,
    },
    Cluster(ClusterConnection),
}

impl Conn {
    async fn cmd<T: FromRedisValue>(&self, cmd: &Cmd, idx: usize) -> RedisResult<T> {
        match self {
            Conn::Pool { managers, .. } => {
                let mut m = managers[idx % managers.len()].clone();
                cmd.query_async(&mut m).await
            }
            Conn::Cluster(c) => cmd.query_async(&mut c.clone()).await,
        }
    }

    async fn pipe<T: FromRedisValue>(&self, pipe: &Pipeline, idx: usize) -> RedisResult<T> {
        match self {
            Conn::Pool { managers, .. } => {
                let mut m = managers[idx % managers.len()].clone();
                pipe.query_async(&mut m).await
            }
            Conn::Cluster(c) => pipe.query_async(&mut c.clone()).await,
        }
    }
}

struct Shared {
    settings: RedisSettings,
    tls: Option<LoadedTls>,
    connector: Connector,
    conn: ArcSwapOption<Conn>,
    next: AtomicUsize,
    breaker: Breaker,
    counters: Arc<Counters>,
    healthy: AtomicBool,
    reconnect: tokio::sync::Mutex<()>,
    /// Wakes the health check before its interval (a call failed).
    wake: tokio::sync::Notify,
    op_deadline: Duration,
    channel: String,
}

/// The Redis tier. Cloning is cheap and shares the connections.
#[derive(Clone)]
pub struct RedisStore {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("topology", &self.shared.settings.topology)
            .field("breaker", &self.shared.breaker.state())
            .finish_non_exhaustive()
    }
}

fn redis_info(s: &RedisSettings) -> RedisConnectionInfo {
    let mut info = RedisConnectionInfo::default().set_db(s.db);
    if let Some(u) = &s.username {
        info = info.set_username(u);
    }
    if let Some(p) = &s.password {
        info = info.set_password(p);
    }
    info
}

fn build_client(
    addr: &RedisAddress,
    s: &RedisSettings,
    tls: Option<&LoadedTls>,
) -> RedisResult<Client> {
    let conn_addr = match tls {
        None => ConnectionAddr::Tcp(addr.host.clone(), addr.port),
        Some(t) => ConnectionAddr::TcpTls {
            host: addr.host.clone(),
            port: addr.port,
            insecure: t.insecure,
            tls_params: None,
        },
    };
    let info = conn_addr
        .into_connection_info()?
        .set_redis_settings(redis_info(s));
    match tls {
        None => Client::open(info),
        Some(t) => Client::build_with_tls(info, t.certs.clone()),
    }
}

fn load_tls(s: &RedisSettings) -> Result<Option<LoadedTls>, String> {
    let Some(tls) = &s.tls else {
        return Ok(None);
    };
    let read = |what: &str, p: &std::path::Path| {
        std::fs::read(p).map_err(|e| format!("cannot read redis TLS {what} {}: {e}", p.display()))
    };
    let root_cert = tls
        .ca_file
        .as_deref()
        .map(|p| read("CA file", p))
        .transpose()?;
    let client_tls = match (&tls.client_cert_file, &tls.client_key_file) {
        (Some(c), Some(k)) => Some(ClientTlsConfig {
            client_cert: read("client certificate", c)?,
            client_key: read("client key", k)?,
        }),
        (None, None) => None,
        _ => return Err("redis TLS client certificate and key must be set together".to_owned()),
    };
    Ok(Some(LoadedTls {
        certs: TlsCertificates {
            client_tls,
            root_cert,
        },
        insecure: tls.insecure_skip_verify,
    }))
}

fn conn_addr(addr: &RedisAddress) -> ConnectionAddr {
    ConnectionAddr::Tcp(addr.host.clone(), addr.port)
}

/// A sentinel's address: over TLS when `tls` is given (the builder then
/// applies its verification mode and certificates).
fn sentinel_addr(addr: &RedisAddress, tls: Option<&LoadedTls>) -> ConnectionAddr {
    match tls {
        None => conn_addr(addr),
        Some(t) => ConnectionAddr::TcpTls {
            host: addr.host.clone(),
            port: addr.port,
            insecure: t.insecure,
            tls_params: None,
        },
    }
}

fn tls_mode(t: &LoadedTls) -> TlsMode {
    if t.insecure {
        TlsMode::Insecure
    } else {
        TlsMode::Secure
    }
}

/// Whether an error means Redis is unreachable or unwell (as opposed to a bad
/// reply to one command).
fn is_outage(e: &RedisError) -> bool {
    !matches!(e.kind(), ErrorKind::UnexpectedReturnType | ErrorKind::Parse)
}

/// Escapes glob metacharacters so a prefix matches literally in `SCAN MATCH`.
/// The first text in a reply: the reply itself, or (a cluster asked every
/// node) the first node's.
fn first_text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Map(kv) => kv.iter().find_map(|(_, v)| first_text(v)),
        Value::Array(a) => a.iter().find_map(first_text),
        _ => None,
    }
}

fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisStore {
    /// Builds the store. Standalone connections are lazy (a down Redis does not
    /// fail start-up); Sentinel and Cluster connect at once and, if that
    /// fails, start disconnected and let the health check retry.
    pub(crate) async fn connect(
        settings: RedisSettings,
        counters: Arc<Counters>,
    ) -> Result<RedisStore, String> {
        let tls = load_tls(&settings)?;
        let connector = match &settings.topology {
            RedisTopology::Standalone(addr) => Connector::Single(
                build_client(addr, &settings, tls.as_ref()).map_err(|e| e.to_string())?,
            ),
            RedisTopology::Sentinel {
                sentinels,
                master_name,
            } => {
                if sentinels.is_empty() {
                    return Err("sentinel mode needs at least one sentinel address".to_owned());
                }
                let sentinel_tls = match settings.sentinel_tls {
                    Some(false) => None,
                    Some(true) | None => tls.as_ref(),
                };
                let mut b = SentinelClientBuilder::new(
                    sentinels.iter().map(|a| sentinel_addr(a, sentinel_tls)),
                    master_name,
                    SentinelServerType::Master,
                )
                .map_err(|e| e.to_string())?
                .set_client_to_redis_db(settings.db);
                if let Some(u) = &settings.sentinel_username {
                    b = b.set_client_to_sentinel_username(u);
                }
                if let Some(p) = &settings.sentinel_password {
                    b = b.set_client_to_sentinel_password(p);
                }
                if let Some(t) = sentinel_tls {
                    b = b
                        .set_client_to_sentinel_tls_mode(tls_mode(t))
                        .set_client_to_sentinel_certificates(t.certs.clone());
                }
                if let Some(u) = &settings.username {
                    b = b.set_client_to_redis_username(u);
                }
                if let Some(p) = &settings.password {
                    b = b.set_client_to_redis_password(p);
                }
                if let Some(t) = &tls {
                    b = b
                        .set_client_to_redis_tls_mode(tls_mode(t))
                        .set_client_to_redis_certificates(t.certs.clone());
                }
                Connector::Sentinel(tokio::sync::Mutex::new(
                    b.build().map_err(|e| e.to_string())?,
                ))
            }
            RedisTopology::Cluster(seeds) => {
                if seeds.is_empty() {
                    return Err("cluster mode needs at least one node address".to_owned());
                }
                let mut b =
                    ClusterClientBuilder::new(seeds.iter().map(conn_addr).collect::<Vec<_>>())
                        .connection_timeout(settings.connect_timeout)
                        .response_timeout(settings.response_timeout)
                        .retries(1);
                if let Some(u) = &settings.username {
                    b = b.username(u);
                }
                if let Some(p) = &settings.password {
                    b = b.password(p);
                }
                if let Some(t) = &tls {
                    b = b.tls(tls_mode(t)).certs(t.certs.clone());
                }
                Connector::Cluster {
                    client: b.build().map_err(|e| e.to_string())?,
                    seeds: seeds.clone(),
                }
            }
        };
        let channel = format!("{}invalidate", settings.key_prefix);
        let op_deadline = settings.connect_timeout + settings.response_timeout;
        let store = RedisStore {
            shared: Arc::new(Shared {
                breaker: Breaker::monotonic(settings.breaker),
                settings,
                tls,
                connector,
                conn: ArcSwapOption::empty(),
                next: AtomicUsize::new(0),
                counters,
                healthy: AtomicBool::new(false),
                reconnect: tokio::sync::Mutex::new(()),
                wake: tokio::sync::Notify::new(),
                op_deadline,
                channel,
            }),
        };
        if let Err(e) = store.reconnect().await {
            tracing::warn!(error = %e, "redis not reachable at start; the health check will retry");
        }
        Ok(store)
    }

    fn manager_config(&self) -> ConnectionManagerConfig {
        let s = &self.shared.settings;
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(s.connect_timeout))
            .set_response_timeout(Some(s.response_timeout))
            .set_number_of_retries(DEFAULT_RECONNECT_RETRIES)
            .set_min_delay(DEFAULT_RECONNECT_MIN_DELAY)
            .set_max_delay(s.connect_timeout)
    }

    fn pool(&self, client: &Client) -> RedisResult<Conn> {
        let n = self.shared.settings.pool_size.clamp(1, MAX_POOL_SIZE);
        let managers = (0..n)
            .map(|_| ConnectionManager::new_lazy_with_config(client.clone(), self.manager_config()))
            .collect::<RedisResult<Vec<_>>>()?;
        Ok(Conn::Pool {
            addr: client.get_connection_info().addr().to_string(),
            managers,
        })
    }

    async fn resolve_master(
        &self,
        sentinel: &tokio::sync::Mutex<SentinelClient>,
    ) -> RedisResult<Client> {
        let deadline = self.shared.op_deadline;
        let mut guard = sentinel.lock().await;
        match tokio::time::timeout(deadline, guard.async_get_client()).await {
            Ok(r) => r,
            Err(_) => Err(RedisError::from((
                ErrorKind::Io,
                "sentinel query timed out",
            ))),
        }
    }

    /// (Re)establishes connections when there are none, or, for Sentinel, when
    /// the master has moved.
    async fn reconnect(&self) -> RedisResult<()> {
        let _one_at_a_time = self.shared.reconnect.lock().await;
        let current = self.shared.conn.load_full();
        match &self.shared.connector {
            Connector::Single(client) => {
                if current.is_none() {
                    self.shared.conn.store(Some(Arc::new(self.pool(client)?)));
                }
            }
            Connector::Sentinel(sentinel) => {
                let client = self.resolve_master(sentinel).await?;
                let addr = client.get_connection_info().addr().to_string();
                let moved = match current.as_deref() {
                    Some(Conn::Pool { addr: old, .. }) => *old != addr,
                    _ => true,
                };
                if moved {
                    tracing::info!(master = %addr, "redis sentinel master selected");
                    self.shared.conn.store(Some(Arc::new(self.pool(&client)?)));
                }
            }
            Connector::Cluster { client, .. } => {
                if current.is_none() {
                    let deadline = self.shared.op_deadline;
                    let conn =
                        match tokio::time::timeout(deadline, client.get_async_connection()).await {
                            Ok(r) => r?,
                            Err(_) => {
                                return Err(RedisError::from((
                                    ErrorKind::Io,
                                    "cluster connect timed out",
                                )));
                            }
                        };
                    self.shared.conn.store(Some(Arc::new(Conn::Cluster(conn))));
                }
            }
        }
        Ok(())
    }

    /// Runs one call through the breaker and the deadline.
    async fn call<T, F, Fut>(&self, f: F) -> Result<T, L2Error>
    where
        F: FnOnce(Arc<Conn>, usize) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let sh = &self.shared;
        if !sh.breaker.allow() {
            Counters::bump(&sh.counters.breaker_rejections);
            // The health check probes outside the breaker and closes it as
            // soon as Redis answers (spaced, so this does not become a loop).
            sh.wake.notify_one();
            return Err(L2Error::Rejected);
        }
        let Some(conn) = sh.conn.load_full() else {
            self.record_failure();
            sh.wake.notify_one();
            return Err(L2Error::Rejected);
        };
        let idx = sh.next.fetch_add(1, Ordering::Relaxed);
        let started = tokio::time::Instant::now();
        let outcome = tokio::time::timeout(sh.op_deadline, f(conn, idx)).await;
        sh.counters.redis_latency.0.observe(started.elapsed());
        match outcome {
            Ok(Ok(v)) => {
                self.record_success();
                Ok(v)
            }
            Ok(Err(e)) => {
                if is_outage(&e) {
                    tracing::debug!(kind = ?e.kind(), "redis call failed");
                    self.record_failure();
                    sh.wake.notify_one();
                } else {
                    self.record_success();
                }
                Counters::bump(&sh.counters.redis_errors);
                Err(L2Error::Failed(e))
            }
            Err(_) => {
                Counters::bump(&sh.counters.redis_errors);
                self.record_failure();
                sh.wake.notify_one();
                Err(L2Error::Timeout)
            }
        }
    }

    /// Reports that Redis answered outside [`call`](Self::call) (the
    /// invalidation subscription is up, received a message or a pong): the
    /// breaker closes, so a replica whose subscription is back also reads
    /// and writes again.
    pub(crate) fn note_alive(&self) {
        self.record_success();
    }

    /// Asks the health check to run now rather than at its next interval
    /// (the subscription dropped: the master may have moved).
    pub(crate) fn wake_health(&self) {
        self.shared.wake.notify_one();
    }

    /// The health task: a check every interval, or soon after a failed call
    /// woke it, never closer together than [`DEFAULT_HEALTH_RECHECK_SPACING`].
    pub(crate) async fn run_health(self) {
        let interval = self.health_check_interval();
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = self.shared.wake.notified() => {}
            }
            self.health_check().await;
            tokio::time::sleep(DEFAULT_HEALTH_RECHECK_SPACING.min(interval)).await;
        }
    }

    fn record_success(&self) {
        let closed = self.shared.breaker.on_success();
        self.shared.healthy.store(true, Ordering::Release);
        if closed {
            tracing::info!("Redis connection restored; circuit breaker closed");
        }
    }

    fn record_failure(&self) {
        let opened = self.shared.breaker.on_failure();
        self.shared.healthy.store(false, Ordering::Release);
        if opened {
            tracing::warn!(
                "Circuit breaker opened: Redis calls fail fast until a health check succeeds"
            );
            tracing::warn!(
                "Falling back to memory cache: the memory tier (hybrid mode) and each cache's outage policy answer until Redis returns"
            );
        }
    }

    /// Pings Redis outside the breaker (this is the recovery probe), first
    /// reconnecting or re-resolving the Sentinel master when needed. Returns
    /// whether Redis answered.
    pub(crate) async fn health_check(&self) -> bool {
        let sh = &self.shared;
        let reconnect_needed =
            matches!(sh.connector, Connector::Sentinel(_)) || sh.conn.load().is_none();
        if reconnect_needed {
            if let Err(e) = self.reconnect().await {
                tracing::debug!(kind = ?e.kind(), "redis reconnect failed");
                self.record_failure();
                return false;
            }
        }
        let Some(conn) = sh.conn.load_full() else {
            return false;
        };
        let ping = redis::cmd("PING");
        let started = tokio::time::Instant::now();
        let ok = match &*conn {
            Conn::Pool { managers, .. } => {
                let all = join_all(managers.iter().map(|m| {
                    let mut m = m.clone();
                    let ping = ping.clone();
                    async move {
                        tokio::time::timeout(sh.op_deadline, ping.query_async::<String>(&mut m))
                            .await
                    }
                }))
                .await;
                all.into_iter().all(|r| matches!(r, Ok(Ok(_))))
            }
            Conn::Cluster(c) => matches!(
                tokio::time::timeout(sh.op_deadline, ping.query_async::<Value>(&mut c.clone()))
                    .await,
                Ok(Ok(_))
            ),
        };
        if ok {
            let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            sh.counters.last_ping_us.store(us.max(1), Ordering::Relaxed);
            self.record_success();
        } else {
            self.record_failure();
        }
        ok
    }

    /// Whether the last call or health check succeeded.
    pub(crate) fn is_healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::Acquire)
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    pub(crate) fn breaker_state(&self) -> BreakerState {
        self.shared.breaker.state()
    }

    /// Consecutive failures the breaker has counted.
    pub(crate) fn breaker_failures(&self) -> u64 {
        u64::from(self.shared.breaker.failures())
    }

    /// Connections currently in the pool (0 when not connected).
    pub(crate) fn pool_size(&self) -> u64 {
        match self.shared.conn.load().as_deref() {
            Some(Conn::Pool { managers, .. }) => managers.len() as u64,
            Some(Conn::Cluster(_)) => 1,
            None => 0,
        }
    }

    pub(crate) fn health_check_interval(&self) -> Duration {
        self.shared.settings.health_check_interval
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        self.shared.settings.connect_timeout
    }

    /// The invalidation channel name, `<keyPrefix>invalidate`.
    pub(crate) fn channel(&self) -> &str {
        &self.shared.channel
    }

    fn is_cluster(&self) -> bool {
        matches!(self.shared.connector, Connector::Cluster { .. })
    }

    /// The full Redis key of `key` in `ns`.
    pub(crate) fn full_key(&self, ns: Namespace, key: &CacheKey) -> String {
        let prefix = &self.shared.settings.key_prefix;
        let mut k =
            String::with_capacity(prefix.len() + ns.prefix().len() + 1 + key.as_str().len());
        k.push_str(prefix);
        k.push_str(ns.prefix());
        k.push(':');
        k.push_str(key.as_str());
        k
    }

    /// Opens a dedicated pub/sub connection subscribed to nothing yet.
    pub(crate) async fn pubsub(&self) -> RedisResult<redis::aio::PubSub> {
        let deadline = self.shared.settings.connect_timeout;
        let timeout = || RedisError::from((ErrorKind::Io, "pub/sub connect timed out"));
        let clients: Vec<Client> = match &self.shared.connector {
            Connector::Single(c) => vec![c.clone()],
            Connector::Sentinel(s) => vec![self.resolve_master(s).await?],
            Connector::Cluster { seeds, .. } => seeds
                .iter()
                .filter_map(|a| {
                    build_client(a, &self.shared.settings, self.shared.tls.as_ref()).ok()
                })
                .collect(),
        };
        let mut last = RedisError::from((ErrorKind::Io, "no redis node to subscribe on"));
        for c in clients {
            match tokio::time::timeout(deadline, c.get_async_pubsub()).await {
                Ok(Ok(p)) => return Ok(p),
                Ok(Err(e)) => last = e,
                Err(_) => last = timeout(),
            }
        }
        Err(last)
    }

    // ----- commands -----

    /// `GET`.
    pub(crate) async fn get(
        &self,
        ns: Namespace,
        key: &CacheKey,
    ) -> Result<Option<Bytes>, L2Error> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.full_key(ns, key));
        let v: Option<Vec<u8>> = self
            .call(|c, i| async move { c.cmd(&cmd, i).await })
            .await?;
        Ok(v.map(Bytes::from))
    }

    /// `GET` and `PTTL` of one key in one round trip.
    pub(crate) async fn get_with_ttl(
        &self,
        ns: Namespace,
        key: &CacheKey,
    ) -> Result<Option<(Bytes, Option<Duration>)>, L2Error> {
        let k = self.full_key(ns, key);
        let mut p = redis::pipe();
        p.cmd("GET").arg(&k).cmd("PTTL").arg(&k);
        let (v, ttl): (Option<Vec<u8>>, i64) =
            self.call(|c, i| async move { c.pipe(&p, i).await }).await?;
        Ok(v.map(|v| (Bytes::from(v), remaining_ttl(ttl))))
    }

    /// `GET` and `PTTL` of several keys.
    pub(crate) async fn get_many_with_ttl(
        &self,
        ns: Namespace,
        keys: &[CacheKey],
    ) -> Result<Vec<Option<(Bytes, Option<Duration>)>>, L2Error> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        if self.is_cluster() {
            return join_all(keys.iter().map(|k| self.get_with_ttl(ns, k)))
                .await
                .into_iter()
                .collect();
        }
        let mut p = redis::pipe();
        for k in keys {
            let k = self.full_key(ns, k);
            p.cmd("GET").arg(&k).cmd("PTTL").arg(&k);
        }
        let raw: Vec<Value> = self.call(|c, i| async move { c.pipe(&p, i).await }).await?;
        let mut out = Vec::with_capacity(keys.len());
        let mut it = raw.into_iter();
        while let (Some(v), Some(t)) = (it.next(), it.next()) {
            let v: Option<Vec<u8>> =
                redis::from_redis_value(v).map_err(|e| L2Error::Failed(e.into()))?;
            let t: i64 = redis::from_redis_value(t).map_err(|e| L2Error::Failed(e.into()))?;
            out.push(v.map(|v| (Bytes::from(v), remaining_ttl(t))));
        }
        Ok(out)
    }

    /// `MGET`.
    pub(crate) async fn get_many(
        &self,
        ns: Namespace,
        keys: &[CacheKey],
    ) -> Result<Vec<Option<Bytes>>, L2Error> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("MGET");
        for k in keys {
            cmd.arg(self.full_key(ns, k));
        }
        let v: Vec<Option<Vec<u8>>> = self
            .call(|c, i| async move { c.cmd(&cmd, i).await })
            .await?;
        Ok(v.into_iter().map(|v| v.map(Bytes::from)).collect())
    }

    /// `SET key value PX ttl`, then `PUBLISH` of `notify` when given (in the
    /// same round trip, except in cluster mode where the two commands route
    /// to different nodes).
    pub(crate) async fn set(
        &self,
        ns: Namespace,
        key: &CacheKey,
        value: &[u8],
        ttl: Duration,
        notify: Option<&[u8]>,
    ) -> Result<(), L2Error> {
        let mut p = redis::pipe();
        p.cmd("SET")
            .arg(self.full_key(ns, key))
            .arg(value)
            .arg("PX")
            .arg(millis(ttl))
            .ignore();
        let notify = match notify {
            Some(msg) if !self.is_cluster() => {
                p.cmd("PUBLISH").arg(&self.shared.channel).arg(msg).ignore();
                None
            }
            other => other,
        };
        self.call(|c, i| async move { c.pipe::<()>(&p, i).await })
            .await?;
        match notify {
            Some(msg) => self.publish(msg).await,
            None => Ok(()),
        }
    }

    /// `SET key value NX PX ttl`; returns whether the key was set. When it
    /// was, `notify` is published.
    pub(crate) async fn set_if_absent(
        &self,
        ns: Namespace,
        key: &CacheKey,
        value: &[u8],
        ttl: Duration,
        notify: Option<&[u8]>,
    ) -> Result<bool, L2Error> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.full_key(ns, key))
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl));
        let set: Option<String> = self
            .call(|c, i| async move { c.cmd(&cmd, i).await })
            .await?;
        let set = set.is_some();
        if set && let Some(msg) = notify {
            self.publish(msg).await?;
        }
        Ok(set)
    }

    /// Several `SET ... PX` in one round trip (one per key in cluster mode).
    pub(crate) async fn set_many(
        &self,
        ns: Namespace,
        entries: &[(CacheKey, Bytes)],
        ttl: Duration,
    ) -> Result<(), L2Error> {
        if entries.is_empty() {
            return Ok(());
        }
        if self.is_cluster() {
            for r in join_all(entries.iter().map(|(k, v)| self.set(ns, k, v, ttl, None))).await {
                r?;
            }
            return Ok(());
        }
        let mut p = redis::pipe();
        for (k, v) in entries {
            p.cmd("SET")
                .arg(self.full_key(ns, k))
                .arg(v.as_ref())
                .arg("PX")
                .arg(millis(ttl))
                .ignore();
        }
        self.call(|c, i| async move { c.pipe::<()>(&p, i).await })
            .await
    }

    /// `DEL`, then `PUBLISH` of `notify` when given (same round trip except
    /// in cluster mode). Returns whether a key was removed.
    pub(crate) async fn delete(
        &self,
        ns: Namespace,
        key: &CacheKey,
        notify: Option<&[u8]>,
    ) -> Result<bool, L2Error> {
        let mut p = redis::pipe();
        p.cmd("DEL").arg(self.full_key(ns, key));
        let notify = match notify {
            Some(msg) if !self.is_cluster() => {
                p.cmd("PUBLISH").arg(&self.shared.channel).arg(msg).ignore();
                None
            }
            other => other,
        };
        let (n,): (i64,) = self.call(|c, i| async move { c.pipe(&p, i).await }).await?;
        if let Some(msg) = notify {
            self.publish(msg).await?;
        }
        Ok(n > 0)
    }

    /// `EXISTS`.
    pub(crate) async fn exists(&self, ns: Namespace, key: &CacheKey) -> Result<bool, L2Error> {
        let mut cmd = redis::cmd("EXISTS");
        cmd.arg(self.full_key(ns, key));
        let n: i64 = self
            .call(|c, i| async move { c.cmd(&cmd, i).await })
            .await?;
        Ok(n > 0)
    }

    /// `PUBLISH` on the invalidation channel.
    pub(crate) async fn publish(&self, msg: &[u8]) -> Result<(), L2Error> {
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(&self.shared.channel).arg(msg);
        self.call(|c, i| async move { c.cmd::<i64>(&cmd, i).await })
            .await
            .map(|_| ())
    }

    /// `PING` through the breaker.
    pub(crate) async fn ping(&self) -> Result<(), L2Error> {
        let cmd = redis::cmd("PING");
        self.call(|c, i| async move { c.cmd::<Value>(&cmd, i).await })
            .await
            .map(|_| ())
    }

    /// The server's `INFO` text (default sections: server, memory, ...),
    /// from the node the next call goes to.
    pub(crate) async fn info(&self) -> Result<String, L2Error> {
        let cmd = redis::cmd("INFO");
        let v: Value = self
            .call(|c, i| async move { c.cmd::<Value>(&cmd, i).await })
            .await?;
        Ok(first_text(&v).unwrap_or_default())
    }

    /// How the gate reaches Redis: `standalone`, `sentinel` or `cluster`.
    pub(crate) fn topology_name(&self) -> &'static str {
        match self.shared.settings.topology {
            RedisTopology::Standalone(_) => "standalone",
            RedisTopology::Sentinel { .. } => "sentinel",
            RedisTopology::Cluster(_) => "cluster",
        }
    }

    /// Removes every key of `ns` with `SCAN MATCH` + `UNLINK` (never `KEYS`),
    /// on every master in cluster mode.
    pub(crate) async fn clear(&self, ns: Namespace) -> Result<(), L2Error> {
        let pattern = format!(
            "{}{}:*",
            glob_escape(&self.shared.settings.key_prefix),
            ns.prefix()
        );
        let conn = self.shared.conn.load_full().ok_or(L2Error::Rejected)?;
        match &*conn {
            Conn::Pool { .. } => self.clear_on(&pattern, None).await,
            Conn::Cluster(_) => {
                for (host, port) in self.cluster_masters().await? {
                    self.clear_on(&pattern, Some((host, port))).await?;
                }
                Ok(())
            }
        }
    }

    async fn cluster_masters(&self) -> Result<Vec<(String, u16)>, L2Error> {
        let cmd = redis::cmd("CLUSTER");
        let mut cmd = cmd;
        cmd.arg("SLOTS");
        let slots: Value = self
            .call(|c, i| async move { c.cmd(&cmd, i).await })
            .await?;
        let mut masters = Vec::new();
        if let Value::Array(ranges) = slots {
            for r in ranges {
                let Value::Array(parts) = r else { continue };
                let Some(Value::Array(node)) = parts.get(2) else {
                    continue;
                };
                let host = node
                    .first()
                    .and_then(|v| redis::from_redis_value::<String>(v.clone()).ok());
                let port = node
                    .get(1)
                    .and_then(|v| redis::from_redis_value::<u16>(v.clone()).ok());
                if let (Some(h), Some(p)) = (host, port)
                    && !masters.contains(&(h.clone(), p))
                {
                    masters.push((h, p));
                }
            }
        }
        Ok(masters)
    }

    async fn clear_on(&self, pattern: &str, node: Option<(String, u16)>) -> Result<(), L2Error> {
        let mut cursor: u64 = 0;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(DEFAULT_SCAN_COUNT);
            let node = node.clone();
            let (next, keys): (u64, Vec<Vec<u8>>) = self
                .call(|c, i| async move {
                    match (&*c, node) {
                        (Conn::Cluster(cc), Some((host, port))) => {
                            let v = cc
                                .clone()
                                .route_command(
                                    scan,
                                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                                        host,
                                        port,
                                    }),
                                )
                                .await?;
                            Ok(redis::from_redis_value(v)?)
                        }
                        _ => c.cmd(&scan, i).await,
                    }
                })
                .await?;
            if !keys.is_empty() {
                if self.is_cluster() {
                    for k in &keys {
                        let mut del = redis::cmd("UNLINK");
                        del.arg(k.as_slice());
                        self.call(|c, i| async move { c.cmd::<i64>(&del, i).await })
                            .await?;
                    }
                } else {
                    let mut del = redis::cmd("UNLINK");
                    for k in &keys {
                        del.arg(k.as_slice());
                    }
                    self.call(|c, i| async move { c.cmd::<i64>(&del, i).await })
                        .await?;
                }
            }
            cursor = next;
            if cursor == 0 {
                return Ok(());
            }
        }
    }
}

/// What a `PTTL` reply (read in the same pipeline as the value) says of
/// the value's remaining lifetime: `None` for no expiry (-1), zero for a key
/// that expired after the `GET` (-2) or has under a millisecond left (0).
fn remaining_ttl(pttl: i64) -> Option<Duration> {
    match pttl {
        -1 => None,
        t => Some(Duration::from_millis(u64::try_from(t).unwrap_or(0))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn a_value_read_as_it_expires_has_no_lifetime_left() {
        assert_eq!(remaining_ttl(-1), None);
        assert_eq!(remaining_ttl(1500), Some(Duration::from_millis(1500)));
        assert_eq!(remaining_ttl(0), Some(Duration::ZERO));
        assert_eq!(remaining_ttl(-2), Some(Duration::ZERO));
    }

    #[test]
    fn glob_escape_escapes_metacharacters() {
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
        assert_eq!(glob_escape("oidcgate:"), "oidcgate:");
    }

    #[test]
    fn bad_replies_are_not_outages() {
        let e = RedisError::from((ErrorKind::UnexpectedReturnType, "x"));
        assert!(!is_outage(&e));
        let e = RedisError::from((ErrorKind::Io, "x"));
        assert!(is_outage(&e));
    }
}
