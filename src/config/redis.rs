//! The `redis:` block of the configuration file ([`RawRedisConfig`]), its
//! environment-variable fallbacks, and its validation into
//! [`CacheSettings`](crate::cache::CacheSettings).
//!
//! Owns: the traefikoidc-compatible key names (camelCase) plus oidcgate's
//! additions (`addresses`, `mode`, `sentinelMaster`, `tlsCACert`, `tlsCert`,
//! `tlsKey`), and the error text naming the offending key. Must not: open
//! connections, read the TLS files (the cache module does when it connects),
//! or print the password.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::cache::{
    BreakerSettings, CacheMode, CacheSettings, DEFAULT_BREAKER_FAILURE_THRESHOLD,
    DEFAULT_BREAKER_RECOVERY_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_HEALTH_CHECK_INTERVAL,
    DEFAULT_KEY_PREFIX, DEFAULT_POOL_SIZE, DEFAULT_RESPONSE_TIMEOUT, MAX_POOL_SIZE, MemoryBudget,
    Namespace, RedisAddress, RedisSettings, RedisTls, RedisTopology,
};

/// An invalid `redis:` setting; the text starts with the key path
/// (for example `redis.cacheMode: ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfigError(pub String);

impl fmt::Display for RedisConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RedisConfigError {}

fn err(key: &str, msg: impl fmt::Display) -> RedisConfigError {
    RedisConfigError(format!("redis.{key}: {msg}"))
}

/// The `redis:` block as written in the file. Integer durations are seconds;
/// zero or absent means "use the default".
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct RawRedisConfig {
    /// Turns Redis on; without it the caches are memory-only.
    pub enabled: bool,
    /// `host:port`, or a comma-separated list (Sentinel / Cluster).
    pub address: String,
    /// Additional addresses, as a list.
    pub addresses: Vec<String>,
    /// `AUTH` password.
    pub password: String,
    /// ACL user name.
    pub username: String,
    /// Database number.
    pub db: i64,
    /// Prefix of every key (default `oidcgate:`).
    pub key_prefix: String,
    /// `memory`, `redis` (default when enabled) or `hybrid`.
    pub cache_mode: String,
    /// Multiplexed connections.
    pub pool_size: i64,
    /// Connect timeout, seconds.
    pub connect_timeout: i64,
    /// Read timeout, seconds (the command timeout is the larger of read and
    /// write).
    pub read_timeout: i64,
    /// Write timeout, seconds.
    pub write_timeout: i64,
    /// Use TLS.
    #[serde(rename = "enableTLS")]
    pub enable_tls: bool,
    /// Insecure: accept any server certificate.
    #[serde(rename = "tlsSkipVerify")]
    pub tls_skip_verify: bool,
    /// PEM file of CA certificates to trust.
    #[serde(rename = "tlsCACert")]
    pub tls_ca_cert: String,
    /// PEM file of the client certificate (mutual TLS).
    #[serde(rename = "tlsCert")]
    pub tls_cert: String,
    /// PEM file of the client key (mutual TLS).
    #[serde(rename = "tlsKey")]
    pub tls_key: String,
    /// Circuit breaker in front of Redis; on unless set to `false`.
    pub enable_circuit_breaker: Option<bool>,
    /// Consecutive failures that open the breaker.
    pub circuit_breaker_threshold: i64,
    /// Seconds the breaker stays open before a probe.
    pub circuit_breaker_timeout: i64,
    /// Accepted for compatibility: the health check always runs, because
    /// reconnection and Sentinel fail-over depend on it.
    pub enable_health_check: Option<bool>,
    /// Seconds between health checks.
    pub health_check_interval: i64,
    /// Hybrid mode: total entries of the memory tier.
    #[serde(rename = "hybridL1Size")]
    pub hybrid_l1_size: i64,
    /// Hybrid mode: total megabytes of the memory tier.
    #[serde(rename = "hybridL1MemoryMB")]
    pub hybrid_l1_memory_mb: i64,
    /// `standalone` (default), `sentinel` or `cluster`.
    pub mode: String,
    /// Sentinel mode: the monitored master's name.
    pub sentinel_master: String,
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

fn truthy(v: &str) -> bool {
    matches!(v.trim(), "true" | "1")
}

fn positive(v: &str) -> Option<i64> {
    v.trim().parse::<i64>().ok().filter(|&n| n > 0)
}

fn seconds(key: &str, v: i64, default: Duration) -> Result<Duration, RedisConfigError> {
    match v {
        0 => Ok(default),
        n if n < 0 => Err(err(key, format!("must be >= 0, got {n}"))),
        n => Ok(Duration::from_secs(n.unsigned_abs())),
    }
}

fn non_negative(key: &str, v: i64) -> Result<u64, RedisConfigError> {
    u64::try_from(v).map_err(|_| err(key, format!("must be >= 0, got {v}")))
}

fn path(s: &str) -> Option<PathBuf> {
    let s = s.trim();
    (!s.is_empty()).then(|| PathBuf::from(s))
}

impl RawRedisConfig {
    /// Fills empty or zero fields from `REDIS_*` environment variables
    /// (`env` looks one up), as the Go plugin does. Booleans are turned on by
    /// `true` or `1`; numbers must be positive; unparsable values are ignored.
    pub fn apply_env_fallbacks(&mut self, env: &dyn Fn(&str) -> Option<String>) {
        let get = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        if !self.enabled && get("REDIS_ENABLED").is_some_and(|v| truthy(&v)) {
            self.enabled = true;
        }
        if self.address.trim().is_empty()
            && self.addresses.is_empty()
            && let Some(v) = get("REDIS_ADDRESS")
        {
            self.address = v;
        }
        if self.password.is_empty()
            && let Some(v) = get("REDIS_PASSWORD")
        {
            self.password = v;
        }
        let fill = |field: &mut i64, name: &str| {
            if *field == 0
                && let Some(n) = get(name).as_deref().and_then(positive)
            {
                *field = n;
            }
        };
        fill(&mut self.db, "REDIS_DB");
        fill(&mut self.pool_size, "REDIS_POOL_SIZE");
        fill(&mut self.connect_timeout, "REDIS_CONNECT_TIMEOUT");
        fill(&mut self.read_timeout, "REDIS_READ_TIMEOUT");
        fill(&mut self.write_timeout, "REDIS_WRITE_TIMEOUT");
        fill(&mut self.hybrid_l1_size, "REDIS_HYBRID_L1_SIZE");
        fill(&mut self.hybrid_l1_memory_mb, "REDIS_HYBRID_L1_MEMORY_MB");
        if self.key_prefix.is_empty()
            && let Some(v) = get("REDIS_KEY_PREFIX")
        {
            self.key_prefix = v;
        }
        if self.cache_mode.is_empty()
            && let Some(v) = get("REDIS_CACHE_MODE")
        {
            self.cache_mode = v;
        }
        if !self.enable_tls && get("REDIS_ENABLE_TLS").is_some_and(|v| truthy(&v)) {
            self.enable_tls = true;
        }
        if !self.tls_skip_verify && get("REDIS_TLS_SKIP_VERIFY").is_some_and(|v| truthy(&v)) {
            self.tls_skip_verify = true;
        }
    }

    /// Validates the block into cache settings. Disabled Redis (or
    /// `cacheMode: memory`) gives memory-only settings.
    pub fn into_settings(self) -> Result<CacheSettings, RedisConfigError> {
        let mode = match self.cache_mode.trim() {
            "" | "redis" => CacheMode::Redis,
            "hybrid" => CacheMode::Hybrid,
            "memory" => CacheMode::Memory,
            other => {
                return Err(err(
                    "cacheMode",
                    format!("expected memory, redis or hybrid, got {other:?}"),
                ));
            }
        };
        if !self.enabled || mode == CacheMode::Memory {
            return Ok(CacheSettings::memory());
        }

        let mut addresses = Vec::new();
        for (key, list) in [
            ("address", self.address.split(',').collect::<Vec<_>>()),
            (
                "addresses",
                self.addresses.iter().map(String::as_str).collect(),
            ),
        ] {
            for a in list.into_iter().map(str::trim).filter(|a| !a.is_empty()) {
                addresses.push(RedisAddress::parse(a).map_err(|e| err(key, e))?);
            }
        }
        if addresses.is_empty() {
            return Err(err("address", "required when redis is enabled"));
        }
        let topology = match self.mode.trim() {
            "" | "standalone" => {
                if addresses.len() > 1 {
                    return Err(err(
                        "address",
                        format!(
                            "standalone mode takes one address, got {}; set redis.mode to cluster or sentinel",
                            addresses.len()
                        ),
                    ));
                }
                RedisTopology::Standalone(addresses.remove(0))
            }
            "sentinel" => {
                let master = self.sentinel_master.trim();
                if master.is_empty() {
                    return Err(err(
                        "sentinelMaster",
                        "required when redis.mode is sentinel",
                    ));
                }
                RedisTopology::Sentinel {
                    sentinels: addresses,
                    master_name: master.to_owned(),
                }
            }
            "cluster" => {
                if self.db != 0 {
                    return Err(err("db", "must be 0 in cluster mode"));
                }
                RedisTopology::Cluster(addresses)
            }
            other => {
                return Err(err(
                    "mode",
                    format!("expected standalone, sentinel or cluster, got {other:?}"),
                ));
            }
        };

        if self.db < 0 {
            return Err(err("db", format!("must be >= 0, got {}", self.db)));
        }
        let pool_size = match non_negative("poolSize", self.pool_size)? {
            0 => DEFAULT_POOL_SIZE,
            n if n > MAX_POOL_SIZE as u64 => {
                return Err(err(
                    "poolSize",
                    format!("must be at most {MAX_POOL_SIZE}, got {n}"),
                ));
            }
            n => usize::try_from(n).unwrap_or(DEFAULT_POOL_SIZE),
        };
        let connect_timeout = seconds(
            "connectTimeout",
            self.connect_timeout,
            DEFAULT_CONNECT_TIMEOUT,
        )?;
        let read = seconds("readTimeout", self.read_timeout, DEFAULT_RESPONSE_TIMEOUT)?;
        let write = seconds("writeTimeout", self.write_timeout, DEFAULT_RESPONSE_TIMEOUT)?;
        let response_timeout = match (self.read_timeout, self.write_timeout) {
            (0, 0) => DEFAULT_RESPONSE_TIMEOUT,
            (_, 0) => read,
            (0, _) => write,
            _ => read.max(write),
        };

        let tls_files = [
            ("tlsCACert", &self.tls_ca_cert),
            ("tlsCert", &self.tls_cert),
            ("tlsKey", &self.tls_key),
        ];
        let tls = if self.enable_tls {
            let client_cert_file = path(&self.tls_cert);
            let client_key_file = path(&self.tls_key);
            if client_cert_file.is_some() != client_key_file.is_some() {
                let missing = if client_cert_file.is_none() {
                    "tlsCert"
                } else {
                    "tlsKey"
                };
                return Err(err(missing, "tlsCert and tlsKey must be set together"));
            }
            Some(RedisTls {
                ca_file: path(&self.tls_ca_cert),
                client_cert_file,
                client_key_file,
                insecure_skip_verify: self.tls_skip_verify,
            })
        } else {
            if self.tls_skip_verify {
                return Err(err("tlsSkipVerify", "set but redis.enableTLS is false"));
            }
            if let Some((key, _)) = tls_files.iter().find(|(_, v)| !v.trim().is_empty()) {
                return Err(err(key, "set but redis.enableTLS is false"));
            }
            None
        };

        let breaker = if self.enable_circuit_breaker == Some(false) {
            None
        } else {
            let threshold =
                match non_negative("circuitBreakerThreshold", self.circuit_breaker_threshold)? {
                    0 => DEFAULT_BREAKER_FAILURE_THRESHOLD,
                    n => {
                        u32::try_from(n).map_err(|_| err("circuitBreakerThreshold", "too large"))?
                    }
                };
            Some(BreakerSettings {
                failure_threshold: threshold,
                recovery_timeout: seconds(
                    "circuitBreakerTimeout",
                    self.circuit_breaker_timeout,
                    DEFAULT_BREAKER_RECOVERY_TIMEOUT,
                )?,
            })
        };
        let health_check_interval = seconds(
            "healthCheckInterval",
            self.health_check_interval,
            DEFAULT_HEALTH_CHECK_INTERVAL,
        )?;

        let l1_entries = non_negative("hybridL1Size", self.hybrid_l1_size)?;
        let l1_mb = non_negative("hybridL1MemoryMB", self.hybrid_l1_memory_mb)?;
        let memory_budget =
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
            });

        let key_prefix = if self.key_prefix.is_empty() {
            DEFAULT_KEY_PREFIX.to_owned()
        } else {
            self.key_prefix
        };
        let non_empty = |s: String| (!s.is_empty()).then_some(s);
        let redis = RedisSettings {
            topology,
            username: non_empty(self.username),
            password: non_empty(self.password),
            db: self.db,
            key_prefix,
            tls,
            pool_size,
            connect_timeout,
            response_timeout,
            breaker,
            health_check_interval,
        };
        Ok(CacheSettings {
            mode,
            redis: Some(redis),
            memory_budget,
            ..CacheSettings::default()
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(yaml: &str) -> Result<RawRedisConfig, serde_yaml::Error> {
        serde_yaml::from_str(yaml)
    }

    fn settings(yaml: &str) -> Result<CacheSettings, RedisConfigError> {
        parse(yaml).unwrap().into_settings()
    }

    #[test]
    fn traefikoidc_block_is_accepted() {
        let yaml = r#"
enabled: true
address: "redis:6379"
password: "pw"
db: 2
keyPrefix: "myapp:"
cacheMode: hybrid
poolSize: 4
connectTimeout: 2
readTimeout: 1
writeTimeout: 4
enableTLS: true
tlsSkipVerify: false
enableCircuitBreaker: true
circuitBreakerThreshold: 7
circuitBreakerTimeout: 30
enableHealthCheck: true
healthCheckInterval: 15
hybridL1Size: 500
hybridL1MemoryMB: 10
"#;
        let s = settings(yaml).unwrap();
        assert_eq!(s.mode, CacheMode::Hybrid);
        let r = s.redis.unwrap();
        assert_eq!(
            r.topology,
            RedisTopology::Standalone(RedisAddress {
                host: "redis".into(),
                port: 6379
            })
        );
        assert_eq!(r.password.as_deref(), Some("pw"));
        assert_eq!(r.db, 2);
        assert_eq!(r.key_prefix, "myapp:");
        assert_eq!(r.pool_size, 4);
        assert_eq!(r.connect_timeout, Duration::from_secs(2));
        assert_eq!(r.response_timeout, Duration::from_secs(4));
        assert!(r.tls.is_some_and(|t| !t.insecure_skip_verify));
        assert_eq!(
            r.breaker,
            Some(BreakerSettings {
                failure_threshold: 7,
                recovery_timeout: Duration::from_secs(30)
            })
        );
        assert_eq!(r.health_check_interval, Duration::from_secs(15));
        assert_eq!(
            s.memory_budget,
            Some(MemoryBudget {
                max_entries: 500,
                max_bytes: 10 * 1024 * 1024
            })
        );
    }

    #[test]
    fn defaults_when_enabled() {
        let s = settings("enabled: true\naddress: 127.0.0.1:6390\n").unwrap();
        assert_eq!(s.mode, CacheMode::Redis);
        let r = s.redis.unwrap();
        assert_eq!(r.key_prefix, DEFAULT_KEY_PREFIX);
        assert_eq!(r.pool_size, DEFAULT_POOL_SIZE);
        assert_eq!(r.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(r.response_timeout, DEFAULT_RESPONSE_TIMEOUT);
        assert_eq!(r.breaker, Some(BreakerSettings::default()));
        assert_eq!(r.health_check_interval, DEFAULT_HEALTH_CHECK_INTERVAL);
        assert!(r.tls.is_none() && r.password.is_none() && r.username.is_none());
        assert_eq!(s.memory_budget, None);
    }

    #[test]
    fn disabled_or_memory_mode_is_memory_only() {
        assert_eq!(settings("address: x:1\n").unwrap(), CacheSettings::memory());
        assert_eq!(
            settings("enabled: true\ncacheMode: memory\n").unwrap(),
            CacheSettings::memory()
        );
        assert_eq!(
            RawRedisConfig::default().into_settings().unwrap(),
            CacheSettings::memory()
        );
    }

    #[test]
    fn topologies() {
        let s = settings(
            "enabled: true\nmode: cluster\naddress: a:7000, b:7001\naddresses: [c:7002]\n",
        )
        .unwrap();
        match s.redis.unwrap().topology {
            RedisTopology::Cluster(nodes) => assert_eq!(nodes.len(), 3),
            t => panic!("{t:?}"),
        }
        let s = settings(
            "enabled: true\nmode: sentinel\naddress: s1:26379,s2:26379\nsentinelMaster: mymaster\n",
        )
        .unwrap();
        match s.redis.unwrap().topology {
            RedisTopology::Sentinel {
                sentinels,
                master_name,
            } => {
                assert_eq!(sentinels.len(), 2);
                assert_eq!(master_name, "mymaster");
            }
            t => panic!("{t:?}"),
        }
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (
                "enabled: true\naddress: a:1\ncacheMode: foo\n",
                r#"redis.cacheMode: expected memory, redis or hybrid, got "foo""#,
            ),
            ("enabled: true\n", "redis.address: required"),
            (
                "enabled: true\naddress: a:1,b:2\n",
                "redis.address: standalone mode takes one address",
            ),
            ("enabled: true\naddress: 'a:x'\n", "redis.address: bad port"),
            (
                "enabled: true\naddress: a:1\nmode: ring\n",
                "redis.mode: expected standalone",
            ),
            (
                "enabled: true\naddress: a:1\nmode: sentinel\n",
                "redis.sentinelMaster: required",
            ),
            (
                "enabled: true\naddress: a:1\nmode: cluster\ndb: 1\n",
                "redis.db: must be 0",
            ),
            (
                "enabled: true\naddress: a:1\ndb: -1\n",
                "redis.db: must be >= 0",
            ),
            (
                "enabled: true\naddress: a:1\npoolSize: 1000\n",
                "redis.poolSize: must be at most",
            ),
            (
                "enabled: true\naddress: a:1\nreadTimeout: -3\n",
                "redis.readTimeout: must be >= 0",
            ),
            (
                "enabled: true\naddress: a:1\ntlsSkipVerify: true\n",
                "redis.tlsSkipVerify: set but redis.enableTLS is false",
            ),
            (
                "enabled: true\naddress: a:1\ntlsCACert: /ca.pem\n",
                "redis.tlsCACert: set but",
            ),
            (
                "enabled: true\naddress: a:1\nenableTLS: true\ntlsCert: /c.pem\n",
                "redis.tlsKey: tlsCert and tlsKey",
            ),
            (
                "enabled: true\naddress: a:1\ncircuitBreakerThreshold: -1\n",
                "redis.circuitBreakerThreshold",
            ),
            (
                "enabled: true\naddress: a:1\ncacheMode: hybrid\nhybridL1Size: -5\n",
                "redis.hybridL1Size",
            ),
        ];
        for (yaml, want) in cases {
            let got = settings(yaml).unwrap_err().to_string();
            assert!(
                got.starts_with(want),
                "{yaml:?}: got {got:?}, want prefix {want:?}"
            );
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(parse("enabled: true\nadress: a:1\n").is_err());
    }

    #[test]
    fn breaker_can_be_turned_off_and_skip_verify_needs_tls() {
        let s = settings("enabled: true\naddress: a:1\nenableCircuitBreaker: false\n").unwrap();
        assert_eq!(s.redis.unwrap().breaker, None);
        let s = settings("enabled: true\naddress: a:1\nenableTLS: true\ntlsSkipVerify: true\ntlsCACert: /ca.pem\ntlsCert: /c.pem\ntlsKey: /k.pem\n").unwrap();
        let tls = s.redis.unwrap().tls.unwrap();
        assert!(tls.insecure_skip_verify);
        assert_eq!(tls.ca_file, Some(PathBuf::from("/ca.pem")));
    }

    #[test]
    fn env_fallbacks_fill_only_empty_fields() {
        let env: HashMap<&str, &str> = [
            ("REDIS_ENABLED", "1"),
            ("REDIS_ADDRESS", "envhost:6000"),
            ("REDIS_PASSWORD", "envpw"),
            ("REDIS_DB", "4"),
            ("REDIS_KEY_PREFIX", "env:"),
            ("REDIS_CACHE_MODE", "hybrid"),
            ("REDIS_POOL_SIZE", "3"),
            ("REDIS_CONNECT_TIMEOUT", "9"),
            ("REDIS_READ_TIMEOUT", "8"),
            ("REDIS_WRITE_TIMEOUT", "x"),
            ("REDIS_ENABLE_TLS", "true"),
            ("REDIS_TLS_SKIP_VERIFY", "false"),
            ("REDIS_HYBRID_L1_SIZE", "100"),
            ("REDIS_HYBRID_L1_MEMORY_MB", "0"),
        ]
        .into_iter()
        .collect();
        let lookup = |k: &str| env.get(k).map(|v| (*v).to_owned());

        let mut raw = RawRedisConfig::default();
        raw.apply_env_fallbacks(&lookup);
        assert!(raw.enabled && raw.enable_tls && !raw.tls_skip_verify);
        assert_eq!(raw.address, "envhost:6000");
        assert_eq!(raw.password, "envpw");
        assert_eq!((raw.db, raw.pool_size, raw.connect_timeout), (4, 3, 9));
        assert_eq!((raw.read_timeout, raw.write_timeout), (8, 0));
        assert_eq!(raw.key_prefix, "env:");
        assert_eq!(raw.cache_mode, "hybrid");
        assert_eq!((raw.hybrid_l1_size, raw.hybrid_l1_memory_mb), (100, 0));

        let mut raw = parse("address: file:1\npassword: filepw\ndb: 1\nkeyPrefix: \"f:\"\ncacheMode: redis\npoolSize: 5\n").unwrap();
        raw.apply_env_fallbacks(&lookup);
        assert_eq!(raw.address, "file:1");
        assert_eq!(raw.password, "filepw");
        assert_eq!((raw.db, raw.pool_size), (1, 5));
        assert_eq!(raw.key_prefix, "f:");
        assert_eq!(raw.cache_mode, "redis");
        assert!(
            raw.enabled,
            "REDIS_ENABLED turns redis on when the file leaves it off"
        );
    }

    #[test]
    fn debug_hides_the_password() {
        let raw = parse("password: hunter2\n").unwrap();
        assert!(!format!("{raw:?}").contains("hunter2"));
    }
}
