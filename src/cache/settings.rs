//! [`CacheSettings`]: the plain-data description of which backend to build.
//!
//! Owns: the cache module's settings types and their defaults. Must not: read
//! files, environment variables or YAML (the `config` module turns the file
//! into these values), or open connections.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::memory::MemoryBudget;
use crate::breaker::BreakerSettings;

/// Largest value accepted by a write, in bytes (after serialization).
pub const DEFAULT_MAX_VALUE_BYTES: usize = 1024 * 1024;
/// Capacity of the hybrid tier's queue of Async-class writes.
pub const DEFAULT_ASYNC_QUEUE_CAPACITY: usize = 4096;
/// Key prefix put in front of every Redis key and the invalidation channel.
pub const DEFAULT_KEY_PREFIX: &str = "oidcgate:";
/// Time allowed to open a TCP (and TLS) connection to Redis.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for Redis to answer one command.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(3);
/// Multiplexed connections to a standalone or Sentinel-managed Redis.
pub const DEFAULT_POOL_SIZE: usize = 2;
/// Upper bound on [`RedisSettings::pool_size`].
pub const MAX_POOL_SIZE: usize = 32;
/// Interval of the health check that pings Redis and reconnects.
pub const DEFAULT_HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(5);
/// Default Redis port, used when an address has none.
pub const DEFAULT_REDIS_PORT: u16 = 6379;

/// Which store backs the caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheMode {
    /// In-process only; nothing is shared between replicas.
    #[default]
    Memory,
    /// Every operation goes to Redis.
    Redis,
    /// An in-process tier in front of Redis, kept coherent by invalidation
    /// messages.
    Hybrid,
}

/// One `host:port` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisAddress {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl RedisAddress {
    /// Parses `host`, `host:port`, `[v6]` or `[v6]:port`; a missing port is
    /// [`DEFAULT_REDIS_PORT`].
    pub fn parse(s: &str) -> Result<RedisAddress, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty address".to_owned());
        }
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("missing ']' in {s:?}"))?;
            match after.strip_prefix(':') {
                Some(p) => (host, Some(p)),
                None if after.is_empty() => (host, None),
                None => return Err(format!("unexpected text after ']' in {s:?}")),
            }
        } else {
            match s.rsplit_once(':') {
                Some((h, _)) if h.contains(':') => {
                    return Err(format!("IPv6 address must be in brackets: {s:?}"));
                }
                Some((h, p)) => (h, Some(p)),
                None => (s, None),
            }
        };
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == '/') {
            return Err(format!("bad host in {s:?}"));
        }
        let port = match port {
            None => DEFAULT_REDIS_PORT,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| format!("bad port in {s:?}"))?,
        };
        Ok(RedisAddress {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for RedisAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// How the Redis deployment is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTopology {
    /// One server.
    Standalone(RedisAddress),
    /// A master found through Sentinel.
    Sentinel {
        /// Sentinel addresses.
        sentinels: Vec<RedisAddress>,
        /// The monitored master's name.
        master_name: String,
    },
    /// A Redis Cluster, reached through any of these seed nodes.
    Cluster(Vec<RedisAddress>),
}

/// TLS to Redis. Certificates are verified against the system roots or
/// `ca_file` unless `insecure_skip_verify` is set.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct RedisTls {
    /// PEM file with the CA certificates to trust instead of the system roots.
    pub ca_file: Option<PathBuf>,
    /// PEM file with the client certificate chain (mutual TLS).
    pub client_cert_file: Option<PathBuf>,
    /// PEM file with the client private key (mutual TLS).
    pub client_key_file: Option<PathBuf>,
    /// Insecure: accept any server certificate. Only for test setups; set only
    /// when the configuration asks for it explicitly.
    pub insecure_skip_verify: bool,
}

impl fmt::Debug for RedisTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTls")
            .field("ca_file", &self.ca_file)
            .field("client_cert_file", &self.client_cert_file)
            .field(
                "client_key_file",
                &self.client_key_file.as_ref().map(|_| "[set]"),
            )
            .field("insecure_skip_verify", &self.insecure_skip_verify)
            .finish()
    }
}

/// Connection settings for Redis.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// Where Redis is.
    pub topology: RedisTopology,
    /// ACL user name.
    pub username: Option<String>,
    /// Password (`AUTH`). Never printed.
    pub password: Option<String>,
    /// Database number (standalone and Sentinel; Cluster has only 0).
    pub db: i64,
    /// Prefix of every key and of the invalidation channel.
    pub key_prefix: String,
    /// TLS, when enabled.
    pub tls: Option<RedisTls>,
    /// Multiplexed connections (standalone and Sentinel), 1..=[`MAX_POOL_SIZE`].
    pub pool_size: usize,
    /// Time allowed to connect.
    pub connect_timeout: Duration,
    /// Time allowed for one command's answer.
    pub response_timeout: Duration,
    /// Circuit breaker; `None` disables it.
    pub breaker: Option<BreakerSettings>,
    /// Interval of the background health check.
    pub health_check_interval: Duration,
    /// Sentinel mode: the ACL user the gate authenticates as to the
    /// sentinels (the data nodes use [`username`](Self::username)).
    pub sentinel_username: Option<String>,
    /// Sentinel mode: the sentinels' password (`AUTH`). Never printed.
    pub sentinel_password: Option<String>,
    /// Sentinel mode: whether the sentinels are reached over TLS (with the
    /// same CA and client certificate as the data nodes); `None` follows
    /// [`tls`](Self::tls).
    pub sentinel_tls: Option<bool>,
}

impl RedisSettings {
    /// Settings for one standalone server with every default.
    pub fn standalone(address: RedisAddress) -> RedisSettings {
        RedisSettings {
            topology: RedisTopology::Standalone(address),
            username: None,
            password: None,
            db: 0,
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
            tls: None,
            pool_size: DEFAULT_POOL_SIZE,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            breaker: Some(BreakerSettings::default()),
            health_check_interval: DEFAULT_HEALTH_CHECK_INTERVAL,
            sentinel_username: None,
            sentinel_password: None,
            sentinel_tls: None,
        }
    }

    /// The same settings with another topology.
    pub fn with_topology(mut self, topology: RedisTopology) -> RedisSettings {
        self.topology = topology;
        self
    }
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSettings")
            .field("topology", &self.topology)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("db", &self.db)
            .field("key_prefix", &self.key_prefix)
            .field("tls", &self.tls)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("breaker", &self.breaker)
            .field("health_check_interval", &self.health_check_interval)
            .field("sentinel_username", &self.sentinel_username)
            .field(
                "sentinel_password",
                &self.sentinel_password.as_ref().map(|_| "[redacted]"),
            )
            .field("sentinel_tls", &self.sentinel_tls)
            .finish()
    }
}

/// Everything needed to build [`Caches`](super::Caches).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSettings {
    /// Which backend.
    pub mode: CacheMode,
    /// Redis connection; required for [`CacheMode::Redis`] and
    /// [`CacheMode::Hybrid`].
    pub redis: Option<RedisSettings>,
    /// Total memory-tier budget; `None` uses each namespace's declared limits.
    pub memory_budget: Option<MemoryBudget>,
    /// Largest value a write accepts.
    pub max_value_bytes: usize,
    /// Capacity of the hybrid Async-class write queue.
    pub async_queue_capacity: usize,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            mode: CacheMode::Memory,
            redis: None,
            memory_budget: None,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            async_queue_capacity: DEFAULT_ASYNC_QUEUE_CAPACITY,
        }
    }
}

impl CacheSettings {
    /// Memory-only settings.
    pub fn memory() -> CacheSettings {
        CacheSettings::default()
    }

    /// Redis-only settings.
    pub fn redis(redis: RedisSettings) -> CacheSettings {
        CacheSettings {
            mode: CacheMode::Redis,
            redis: Some(redis),
            ..CacheSettings::default()
        }
    }

    /// Hybrid settings.
    pub fn hybrid(redis: RedisSettings) -> CacheSettings {
        CacheSettings {
            mode: CacheMode::Hybrid,
            redis: Some(redis),
            ..CacheSettings::default()
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn address_parsing() {
        let ok = |s: &str, h: &str, p: u16| {
            assert_eq!(
                RedisAddress::parse(s),
                Ok(RedisAddress {
                    host: h.to_owned(),
                    port: p
                }),
                "{s}"
            )
        };
        ok("127.0.0.1:6380", "127.0.0.1", 6380);
        ok("redis", "redis", DEFAULT_REDIS_PORT);
        ok("[::1]:7000", "::1", 7000);
        ok("[::1]", "::1", DEFAULT_REDIS_PORT);
        for bad in ["", "h:0", "h:x", "::1:7000", "[::1", "a b:1", "h:70000"] {
            assert!(RedisAddress::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            RedisAddress::parse("[::1]:7000").unwrap().to_string(),
            "[::1]:7000"
        );
    }

    #[test]
    fn debug_redacts_password() {
        let mut s = RedisSettings::standalone(RedisAddress::parse("h:1").unwrap());
        s.password = Some("hunter2".to_owned());
        s.sentinel_password = Some("hunter3".to_owned());
        let printed = format!("{s:?}");
        assert!(!printed.contains("hunter2") && !printed.contains("hunter3"));
    }
}
