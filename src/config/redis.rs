//! The `redis:` block ([`RawRedisConfig`]), its environment-variable
//! fallbacks, and its validation into [`CacheSettings`].
//!
//! Owns: the traefikoidc spellings (the settings reference and the Redis
//! guide's: `dialTimeout`, `tls: {...}`, `clusterMode`, pool keys) plus
//! oidcgate's additions (`addresses`, `mode`, `sentinelMaster`, `tlsCACert`,
//! `tlsCert`, `tlsKey`), the `REDIS_*` variables of both documents, and the
//! refusals naming `redis.<key>`. Two spellings of one setting map to the
//! same field; giving both with different values is refused. Keys of the Go
//! client's connection pool have no counterpart (oidcgate multiplexes
//! `poolSize` connections) and are accepted with a warning. Must not: open
//! connections, read the TLS files (the cache module does when it connects),
//! or print the password.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::Report;
use super::raw::field_names;
use crate::cache::{
    BreakerSettings, CacheMode, CacheSettings, DEFAULT_BREAKER_FAILURE_THRESHOLD,
    DEFAULT_BREAKER_RECOVERY_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_HEALTH_CHECK_INTERVAL,
    DEFAULT_KEY_PREFIX, DEFAULT_POOL_SIZE, DEFAULT_RESPONSE_TIMEOUT, MAX_POOL_SIZE, MemoryBudget,
    Namespace, RedisAddress, RedisSettings, RedisTls, RedisTopology,
};

/// The concern's one top-level key.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct Raw {
    /// The `redis:` block.
    #[serde(rename = "redis")]
    pub(super) redis: Option<RawRedisConfig>,
}

/// The nested blocks of this concern, with their keys.
pub(super) fn nested_blocks() -> Vec<(&'static str, &'static [&'static str])> {
    vec![
        ("redis", field_names::<RawRedisConfig>()),
        ("redis.tls", field_names::<RawRedisTls>()),
    ]
}

/// The `redis:` block as written. Integer durations are seconds; zero or
/// absent means "use the default".
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct RawRedisConfig {
    /// Turns Redis on; without it the caches are memory-only.
    pub(super) enabled: bool,
    /// `host:port`, or a comma-separated list (Sentinel / Cluster).
    pub(super) address: String,
    /// Additional addresses, as a list.
    pub(super) addresses: Vec<String>,
    /// `AUTH` password.
    pub(super) password: String,
    /// ACL user name.
    pub(super) username: String,
    /// Database number.
    pub(super) db: i64,
    /// Prefix of every key (default `oidcgate:`).
    pub(super) key_prefix: String,
    /// `memory`, `redis` (default when enabled) or `hybrid`.
    pub(super) cache_mode: String,
    /// Multiplexed connections.
    pub(super) pool_size: i64,
    /// Connect timeout, seconds.
    pub(super) connect_timeout: i64,
    /// The Redis guide's name of `connectTimeout`.
    pub(super) dial_timeout: i64,
    /// Read timeout, seconds (the command timeout is the larger of read and
    /// write).
    pub(super) read_timeout: i64,
    /// Write timeout, seconds.
    pub(super) write_timeout: i64,
    /// Use TLS.
    #[serde(rename = "enableTLS")]
    pub(super) enable_tls: bool,
    /// Insecure: accept any server certificate.
    #[serde(rename = "tlsSkipVerify")]
    pub(super) tls_skip_verify: bool,
    /// PEM file of CA certificates to trust.
    #[serde(rename = "tlsCACert")]
    pub(super) tls_ca_cert: String,
    /// PEM file of the client certificate (mutual TLS).
    #[serde(rename = "tlsCert")]
    pub(super) tls_cert: String,
    /// PEM file of the client key (mutual TLS).
    #[serde(rename = "tlsKey")]
    pub(super) tls_key: String,
    /// The Redis guide's TLS block (same settings as the flat keys).
    pub(super) tls: Option<RawRedisTls>,
    /// Circuit breaker in front of Redis; on unless set to `false`.
    pub(super) enable_circuit_breaker: Option<bool>,
    /// Consecutive failures that open the breaker.
    pub(super) circuit_breaker_threshold: i64,
    /// Seconds the breaker stays open before a probe.
    pub(super) circuit_breaker_timeout: i64,
    /// Accepted for compatibility: the health check always runs, because
    /// reconnection and Sentinel fail-over depend on it.
    pub(super) enable_health_check: Option<bool>,
    /// Seconds between health checks.
    pub(super) health_check_interval: i64,
    /// Hybrid mode: total entries of the memory tier.
    #[serde(rename = "hybridL1Size")]
    pub(super) hybrid_l1_size: i64,
    /// Hybrid mode: total megabytes of the memory tier.
    #[serde(rename = "hybridL1MemoryMB")]
    pub(super) hybrid_l1_memory_mb: i64,
    /// `standalone` (default), `sentinel` or `cluster`.
    pub(super) mode: String,
    /// The Redis guide's switch for `mode: cluster`.
    pub(super) cluster_mode: bool,
    /// Sentinel mode: the monitored master's name.
    pub(super) sentinel_master: String,
    /// Sentinel mode: ACL user name for the sentinels.
    pub(super) sentinel_username: String,
    /// Sentinel mode: the sentinels' password.
    pub(super) sentinel_password: String,
    /// Sentinel mode: TLS to the sentinels (default: as `enableTLS`).
    #[serde(rename = "sentinelTLS")]
    pub(super) sentinel_tls: Option<bool>,
    /// Go client pool keys of the Redis guide (no counterpart here).
    pub(super) max_retries: i64,
    /// See `max_retries`.
    pub(super) min_idle_conns: i64,
    /// See `max_retries`.
    pub(super) max_conn_age: i64,
    /// See `max_retries`.
    pub(super) pool_timeout: i64,
    /// See `max_retries`.
    pub(super) idle_timeout: i64,
    /// Go cluster-client keys of the Redis guide (no counterpart here).
    pub(super) max_redirects: i64,
    /// See `max_redirects`.
    pub(super) read_only: bool,
    /// See `max_redirects`.
    pub(super) route_by_latency: bool,
    /// See `max_redirects`.
    pub(super) route_randomly: bool,
}

/// The Redis guide's `tls:` block.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct RawRedisTls {
    /// Use TLS (as `enableTLS`).
    pub(super) enabled: bool,
    /// Client certificate file (as `tlsCert`).
    pub(super) cert_file: String,
    /// Client key file (as `tlsKey`).
    pub(super) key_file: String,
    /// CA file (as `tlsCACert`).
    pub(super) ca_file: String,
    /// Accept any server certificate (as `tlsSkipVerify`).
    pub(super) insecure_skip_verify: bool,
}

impl fmt::Debug for RawRedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawRedisConfig")
            .field("enabled", &self.enabled)
            .field("address", &self.address)
            .field("addresses", &self.addresses)
            .field(
                "password",
                &if self.password.is_empty() {
                    ""
                } else {
                    "[redacted]"
                },
            )
            .field("username", &self.username)
            .field("db", &self.db)
            .field("key_prefix", &self.key_prefix)
            .field("cache_mode", &self.cache_mode)
            .field("mode", &self.mode)
            .field("enable_tls", &self.enable_tls)
            .field("tls_skip_verify", &self.tls_skip_verify)
            .finish_non_exhaustive()
    }
}

/// `redis.<key>`.
fn k(key: &str) -> String {
    format!("redis.{key}")
}

fn truthy(v: &str) -> bool {
    matches!(v.trim(), "true" | "1")
}

fn positive(v: &str) -> Option<i64> {
    v.trim().parse::<i64>().ok().filter(|&n| n > 0)
}

fn seconds(key: &str, v: i64, default: Duration, r: &mut Report) -> Duration {
    match v {
        0 => default,
        n if n < 0 => {
            r.error(&k(key), format!("must be >= 0, got {n}"));
            default
        }
        n => Duration::from_secs(n.unsigned_abs()),
    }
}

fn non_negative(key: &str, v: i64, r: &mut Report) -> u64 {
    u64::try_from(v).unwrap_or_else(|_| {
        r.error(&k(key), format!("must be >= 0, got {v}"));
        0
    })
}

fn path(s: &str) -> Option<PathBuf> {
    let s = s.trim();
    (!s.is_empty()).then(|| PathBuf::from(s))
}

/// One setting with two spellings: the value of whichever is set; both set
/// and different is refused.
fn either<T: PartialEq + Default>(
    (key, v): (&str, T),
    (alt_key, alt): (&str, T),
    r: &mut Report,
) -> T {
    let unset = T::default();
    if alt == unset {
        v
    } else if v == unset || v == alt {
        alt
    } else {
        r.error(
            &k(alt_key),
            format!("conflicts with redis.{key}: both name the same setting; keep one"),
        );
        v
    }
}

/// Keys of the Go client that oidcgate has no use for, with the reason.
const NO_EFFECT: &str = "accepted without effect";

impl RawRedisConfig {
    /// Fills empty or zero fields from `REDIS_*` environment variables
    /// (`env` looks one up), as the Go plugin does, with both the settings
    /// reference's and the Redis guide's names. Booleans are turned on by
    /// `true` or `1`; numbers must be positive; unparsable values are ignored.
    pub(super) fn apply_env_fallbacks(&mut self, env: &dyn Fn(&str) -> Option<String>) {
        let get = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let flag = |field: &mut bool, names: &[&str]| {
            if !*field && names.iter().any(|n| get(n).is_some_and(|v| truthy(&v))) {
                *field = true;
            }
        };
        flag(&mut self.enabled, &["REDIS_ENABLED"]);
        flag(
            &mut self.enable_tls,
            &["REDIS_ENABLE_TLS", "REDIS_TLS_ENABLED"],
        );
        flag(
            &mut self.tls_skip_verify,
            &["REDIS_TLS_SKIP_VERIFY", "REDIS_TLS_INSECURE_SKIP_VERIFY"],
        );
        if self.address.trim().is_empty()
            && self.addresses.is_empty()
            && let Some(v) = get("REDIS_ADDRESS")
        {
            self.address = v;
        }
        let text = |field: &mut String, name: &str| {
            if field.is_empty()
                && let Some(v) = get(name)
            {
                *field = v;
            }
        };
        text(&mut self.password, "REDIS_PASSWORD");
        text(&mut self.sentinel_username, "REDIS_SENTINEL_USERNAME");
        text(&mut self.sentinel_password, "REDIS_SENTINEL_PASSWORD");
        text(&mut self.key_prefix, "REDIS_KEY_PREFIX");
        text(&mut self.cache_mode, "REDIS_CACHE_MODE");
        text(&mut self.tls_cert, "REDIS_TLS_CERT_FILE");
        text(&mut self.tls_key, "REDIS_TLS_KEY_FILE");
        text(&mut self.tls_ca_cert, "REDIS_TLS_CA_FILE");
        let number = |field: &mut i64, name: &str| {
            if *field == 0
                && let Some(n) = get(name).as_deref().and_then(positive)
            {
                *field = n;
            }
        };
        number(&mut self.db, "REDIS_DB");
        number(&mut self.pool_size, "REDIS_POOL_SIZE");
        if self.dial_timeout == 0 {
            number(&mut self.connect_timeout, "REDIS_CONNECT_TIMEOUT");
            number(&mut self.connect_timeout, "REDIS_DIAL_TIMEOUT");
        }
        number(&mut self.read_timeout, "REDIS_READ_TIMEOUT");
        number(&mut self.write_timeout, "REDIS_WRITE_TIMEOUT");
        number(&mut self.hybrid_l1_size, "REDIS_HYBRID_L1_SIZE");
        number(&mut self.hybrid_l1_memory_mb, "REDIS_HYBRID_L1_MEMORY_MB");
        number(
            &mut self.circuit_breaker_threshold,
            "REDIS_CIRCUIT_BREAKER_THRESHOLD",
        );
        number(
            &mut self.circuit_breaker_timeout,
            "REDIS_CIRCUIT_BREAKER_TIMEOUT",
        );
        number(&mut self.max_retries, "REDIS_MAX_RETRIES");
        number(&mut self.min_idle_conns, "REDIS_MIN_IDLE_CONNS");
        number(&mut self.max_conn_age, "REDIS_MAX_CONN_AGE");
        number(&mut self.pool_timeout, "REDIS_POOL_TIMEOUT");
        number(&mut self.idle_timeout, "REDIS_IDLE_TIMEOUT");
    }

    /// Folds the guide's spellings into the reference ones.
    fn fold_spellings(&mut self, r: &mut Report) {
        self.connect_timeout = either(
            ("connectTimeout", self.connect_timeout),
            ("dialTimeout", self.dial_timeout),
            r,
        );
        if self.cluster_mode {
            self.mode = either(
                ("mode", std::mem::take(&mut self.mode)),
                ("clusterMode", "cluster".to_owned()),
                r,
            );
        }
        if let Some(tls) = self.tls.take() {
            self.enable_tls |= tls.enabled;
            self.tls_skip_verify |= tls.insecure_skip_verify;
            for (key, field, alt_key, alt) in [
                (
                    "tlsCACert",
                    &mut self.tls_ca_cert,
                    "tls.caFile",
                    tls.ca_file,
                ),
                ("tlsCert", &mut self.tls_cert, "tls.certFile", tls.cert_file),
                ("tlsKey", &mut self.tls_key, "tls.keyFile", tls.key_file),
            ] {
                *field = either((key, std::mem::take(field)), (alt_key, alt), r);
            }
        }
    }

    /// One warning per Go-client key that was set.
    fn warn_no_effect(&self, r: &mut Report) {
        let pool = "oidcgate keeps poolSize multiplexed connections open and reconnects them \
                    itself";
        for (key, set, why) in [
            (
                "maxRetries",
                self.max_retries != 0,
                "a failed command is not retried; it counts towards the circuit breaker",
            ),
            ("minIdleConns", self.min_idle_conns != 0, pool),
            ("maxConnAge", self.max_conn_age != 0, pool),
            ("poolTimeout", self.pool_timeout != 0, pool),
            ("idleTimeout", self.idle_timeout != 0, pool),
            (
                "maxRedirects",
                self.max_redirects != 0,
                "the cluster client follows redirects itself",
            ),
            (
                "readOnly",
                self.read_only,
                "reads go to primaries, so a logout is seen at once",
            ),
            (
                "routeByLatency",
                self.route_by_latency,
                "commands go to the node owning the key",
            ),
            (
                "routeRandomly",
                self.route_randomly,
                "commands go to the node owning the key",
            ),
            (
                "enableHealthCheck",
                self.enable_health_check == Some(false),
                "the health check always runs: reconnection and fail-over depend on it",
            ),
        ] {
            if set {
                r.warn(&k(key), format!("{NO_EFFECT}: {why}"));
            }
        }
    }
}

/// Validates the block (after the environment fallbacks) into cache
/// settings. Disabled Redis (or `cacheMode: memory`) gives memory-only
/// settings.
pub(super) fn settings(
    raw: Raw,
    env: &dyn Fn(&str) -> Option<String>,
    r: &mut Report,
) -> CacheSettings {
    let mut raw = raw.redis.unwrap_or_default();
    raw.apply_env_fallbacks(env);
    raw.fold_spellings(r);
    raw.warn_no_effect(r);
    let mode = match raw.cache_mode.trim() {
        "" | "redis" => CacheMode::Redis,
        "hybrid" => CacheMode::Hybrid,
        "memory" => CacheMode::Memory,
        other => {
            r.error(
                &k("cacheMode"),
                format!("expected memory, redis or hybrid, got {other:?}"),
            );
            CacheMode::Redis
        }
    };
    if !raw.enabled || mode == CacheMode::Memory {
        return CacheSettings::memory();
    }
    let topology = topology(&raw, r).unwrap_or_else(|| {
        // Only reached with an error recorded; never used.
        RedisTopology::Standalone(RedisAddress {
            host: "localhost".into(),
            port: 6379,
        })
    });
    let tls = tls(&raw, r);
    let pool_size = pool_size(raw.pool_size, r);
    let connect_timeout = seconds(
        "connectTimeout",
        raw.connect_timeout,
        DEFAULT_CONNECT_TIMEOUT,
        r,
    );
    let response_timeout = response_timeout(&raw, r);
    let breaker = breaker(&raw, r);
    let health_check_interval = seconds(
        "healthCheckInterval",
        raw.health_check_interval,
        DEFAULT_HEALTH_CHECK_INTERVAL,
        r,
    );
    let memory_budget = memory_budget(&raw, mode, r);
    sentinel_access(&raw, r);
    let non_empty = |s: String| (!s.is_empty()).then_some(s);
    let redis = RedisSettings {
        topology,
        username: non_empty(raw.username),
        password: non_empty(raw.password),
        db: raw.db,
        key_prefix: non_empty(raw.key_prefix).unwrap_or_else(|| DEFAULT_KEY_PREFIX.to_owned()),
        tls,
        pool_size,
        connect_timeout,
        response_timeout,
        breaker,
        health_check_interval,
        sentinel_username: non_empty(raw.sentinel_username),
        sentinel_password: non_empty(raw.sentinel_password),
        sentinel_tls: raw.sentinel_tls,
    };
    CacheSettings {
        mode,
        redis: Some(redis),
        memory_budget,
        ..CacheSettings::default()
    }
}

fn topology(raw: &RawRedisConfig, r: &mut Report) -> Option<RedisTopology> {
    let mut addresses = Vec::new();
    let lists: [(&str, Vec<&str>); 2] = [
        ("address", raw.address.split(',').collect()),
        (
            "addresses",
            raw.addresses.iter().map(String::as_str).collect(),
        ),
    ];
    for (key, list) in lists {
        for a in list.into_iter().map(str::trim).filter(|a| !a.is_empty()) {
            match RedisAddress::parse(a) {
                Ok(addr) => addresses.push(addr),
                Err(e) => r.error(&k(key), e),
            }
        }
    }
    if raw.db < 0 {
        r.error(&k("db"), format!("must be >= 0, got {}", raw.db));
    }
    if addresses.is_empty() {
        if raw.address.trim().is_empty() && raw.addresses.is_empty() {
            r.error(&k("address"), "required when redis is enabled");
        }
        return None;
    }
    match raw.mode.trim() {
        "" | "standalone" => {
            if addresses.len() > 1 {
                r.error(
                    &k("address"),
                    format!(
                        "standalone mode takes one address, got {}; set redis.mode to cluster or sentinel",
                        addresses.len()
                    ),
                );
            }
            Some(RedisTopology::Standalone(addresses.remove(0)))
        }
        "sentinel" => {
            let master = raw.sentinel_master.trim();
            if master.is_empty() {
                r.error(&k("sentinelMaster"), "required when redis.mode is sentinel");
            }
            Some(RedisTopology::Sentinel {
                sentinels: addresses,
                master_name: master.to_owned(),
            })
        }
        "cluster" => {
            if raw.db != 0 {
                r.error(&k("db"), "must be 0 in cluster mode");
            }
            Some(RedisTopology::Cluster(addresses))
        }
        other => {
            r.error(
                &k("mode"),
                format!("expected standalone, sentinel or cluster, got {other:?}"),
            );
            None
        }
    }
}

/// The sentinel keys mean something only in Sentinel mode, and TLS to the
/// sentinels only with TLS settings to use.
fn sentinel_access(raw: &RawRedisConfig, r: &mut Report) {
    if raw.mode.trim() != "sentinel" {
        for (key, set) in [
            ("sentinelUsername", !raw.sentinel_username.is_empty()),
            ("sentinelPassword", !raw.sentinel_password.is_empty()),
            ("sentinelTLS", raw.sentinel_tls.is_some()),
        ] {
            if set {
                r.error(&k(key), "set but redis.mode is not sentinel");
            }
        }
    }
    if raw.sentinel_tls == Some(true) && !raw.enable_tls {
        r.error(&k("sentinelTLS"), "set but redis.enableTLS is false");
    }
}

/// `poolSize` counts multiplexed connections here; the plugin's larger
/// pools are accepted and capped.
fn pool_size(v: i64, r: &mut Report) -> usize {
    match non_negative("poolSize", v, r) {
        0 => DEFAULT_POOL_SIZE,
        n if n > MAX_POOL_SIZE as u64 => {
            r.warn(
                &k("poolSize"),
                format!(
                    "{n} capped at {MAX_POOL_SIZE}: each connection here is multiplexed, so a \
                     few carry the load of a large Go pool"
                ),
            );
            MAX_POOL_SIZE
        }
        n => usize::try_from(n).unwrap_or(DEFAULT_POOL_SIZE),
    }
}

fn response_timeout(raw: &RawRedisConfig, r: &mut Report) -> Duration {
    let read = seconds("readTimeout", raw.read_timeout, DEFAULT_RESPONSE_TIMEOUT, r);
    let write = seconds(
        "writeTimeout",
        raw.write_timeout,
        DEFAULT_RESPONSE_TIMEOUT,
        r,
    );
    match (raw.read_timeout > 0, raw.write_timeout > 0) {
        (false, false) => DEFAULT_RESPONSE_TIMEOUT,
        (true, false) => read,
        (false, true) => write,
        (true, true) => read.max(write),
    }
}

fn tls(raw: &RawRedisConfig, r: &mut Report) -> Option<RedisTls> {
    if !raw.enable_tls {
        if raw.tls_skip_verify {
            r.error(&k("tlsSkipVerify"), "set but redis.enableTLS is false");
        }
        for (key, v) in [
            ("tlsCACert", &raw.tls_ca_cert),
            ("tlsCert", &raw.tls_cert),
            ("tlsKey", &raw.tls_key),
        ] {
            if !v.trim().is_empty() {
                r.error(&k(key), "set but redis.enableTLS is false");
            }
        }
        return None;
    }
    let client_cert_file = path(&raw.tls_cert);
    let client_key_file = path(&raw.tls_key);
    if client_cert_file.is_some() != client_key_file.is_some() {
        let missing = if client_cert_file.is_none() {
            "tlsCert"
        } else {
            "tlsKey"
        };
        r.error(&k(missing), "tlsCert and tlsKey must be set together");
    }
    Some(RedisTls {
        ca_file: path(&raw.tls_ca_cert),
        client_cert_file,
        client_key_file,
        insecure_skip_verify: raw.tls_skip_verify,
    })
}

fn breaker(raw: &RawRedisConfig, r: &mut Report) -> Option<BreakerSettings> {
    if raw.enable_circuit_breaker == Some(false) {
        return None;
    }
    let threshold = match non_negative("circuitBreakerThreshold", raw.circuit_breaker_threshold, r)
    {
        0 => DEFAULT_BREAKER_FAILURE_THRESHOLD,
        n => u32::try_from(n).unwrap_or_else(|_| {
            r.error(&k("circuitBreakerThreshold"), "too large");
            DEFAULT_BREAKER_FAILURE_THRESHOLD
        }),
    };
    Some(BreakerSettings {
        failure_threshold: threshold,
        recovery_timeout: seconds(
            "circuitBreakerTimeout",
            raw.circuit_breaker_timeout,
            DEFAULT_BREAKER_RECOVERY_TIMEOUT,
            r,
        ),
    })
}

fn memory_budget(raw: &RawRedisConfig, mode: CacheMode, r: &mut Report) -> Option<MemoryBudget> {
    let l1_entries = non_negative("hybridL1Size", raw.hybrid_l1_size, r);
    let l1_mb = non_negative("hybridL1MemoryMB", raw.hybrid_l1_memory_mb, r);
    (mode == CacheMode::Hybrid && (l1_entries > 0 || l1_mb > 0)).then(|| MemoryBudget {
        max_entries: if l1_entries > 0 {
            l1_entries
        } else {
            Namespace::ALL.iter().map(|n| n.max_entries()).sum()
        },
        max_bytes: if l1_mb > 0 {
            l1_mb.saturating_mul(1024 * 1024)
        } else {
            Namespace::ALL.iter().map(|n| n.max_bytes()).sum()
        },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
