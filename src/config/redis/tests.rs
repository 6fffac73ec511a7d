//! The `redis:` block: both documents' spellings, environment fallbacks and
//! the table of refusals.

use std::collections::HashMap;

use super::*;
use crate::config::tests::{BASE, load};
use crate::config::{Config, ConfigErrors};

/// The whole configuration with `block` as its `redis:` block.
fn with_env(block: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigErrors> {
    let indented: String = block.lines().map(|l| format!("  {l}\n")).collect();
    Config::from_yaml(&format!("{BASE}redis:\n{indented}"), env)
}

fn settings(block: &str) -> Result<CacheSettings, ConfigErrors> {
    with_env(block, &|_| None).map(|c| c.cache)
}

fn warned(block: &str) -> Vec<String> {
    with_env(block, &|_| None)
        .unwrap()
        .warnings
        .into_iter()
        .map(|w| w.key)
        .collect()
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
fn the_redis_guide_block_maps_to_the_same_settings() {
    let guide = r#"
enabled: true
address: "redis.example.com:6379"
password: "pw"
db: 0
keyPrefix: "traefikoidc"
cacheMode: "hybrid"
maxRetries: 3
poolSize: 64
minIdleConns: 5
maxConnAge: 3600
poolTimeout: 4
idleTimeout: 900
dialTimeout: 5
readTimeout: 3
writeTimeout: 3
circuitBreakerThreshold: 5
circuitBreakerTimeout: 60
tls:
  enabled: true
  certFile: "/path/to/cert.pem"
  keyFile: "/path/to/key.pem"
  caFile: "/path/to/ca.pem"
  insecureSkipVerify: false
"#;
    let reference = r#"
enabled: true
address: "redis.example.com:6379"
password: "pw"
keyPrefix: "traefikoidc"
cacheMode: "hybrid"
poolSize: 32
connectTimeout: 5
readTimeout: 3
writeTimeout: 3
circuitBreakerThreshold: 5
circuitBreakerTimeout: 60
enableTLS: true
tlsCert: "/path/to/cert.pem"
tlsKey: "/path/to/key.pem"
tlsCACert: "/path/to/ca.pem"
"#;
    assert_eq!(settings(guide).unwrap(), settings(reference).unwrap());
    let w = warned(guide);
    for key in [
        "redis.maxRetries",
        "redis.minIdleConns",
        "redis.maxConnAge",
        "redis.poolTimeout",
        "redis.idleTimeout",
        "redis.poolSize",
    ] {
        assert_eq!(w.iter().filter(|k| *k == key).count(), 1, "{key}: {w:?}");
    }
    assert!(warned(reference).is_empty());
}

#[test]
fn the_guide_cluster_block_is_cluster_mode() {
    let s = settings(
        "enabled: true\naddress: \"c1:6379,c2:6379,c3:6379\"\ncacheMode: redis\nclusterMode: true\n\
         maxRedirects: 3\nreadOnly: false\nrouteByLatency: true\nrouteRandomly: false\n",
    )
    .unwrap();
    match s.redis.unwrap().topology {
        RedisTopology::Cluster(nodes) => assert_eq!(nodes.len(), 3),
        t => panic!("{t:?}"),
    }
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
    assert_eq!(load("").unwrap().cache, CacheSettings::memory());
}

#[test]
fn topologies() {
    let s =
        settings("enabled: true\nmode: cluster\naddress: a:7000, b:7001\naddresses: [c:7002]\n")
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
fn sentinel_access_keys() {
    let block = "enabled: true\nmode: sentinel\naddress: s1:26379\nsentinelMaster: m\n\
                 enableTLS: true\n";
    let s = settings(block).unwrap().redis.unwrap();
    assert_eq!(
        (s.sentinel_username, s.sentinel_password, s.sentinel_tls),
        (None, None, None),
        "unset: no sentinel AUTH, TLS as the data nodes"
    );
    let s = settings(&format!(
        "{block}sentinelUsername: watcher\nsentinelPassword: pw\nsentinelTLS: false\n"
    ))
    .unwrap()
    .redis
    .unwrap();
    assert_eq!(s.sentinel_username.as_deref(), Some("watcher"));
    assert_eq!(s.sentinel_password.as_deref(), Some("pw"));
    assert_eq!(s.sentinel_tls, Some(false));
    let env = |name: &str| match name {
        "REDIS_SENTINEL_USERNAME" => Some("from-env".to_owned()),
        "REDIS_SENTINEL_PASSWORD" => Some("env-pw".to_owned()),
        _ => None,
    };
    let s = with_env(block, &env).unwrap().cache.redis.unwrap();
    assert_eq!(s.sentinel_username.as_deref(), Some("from-env"));
    assert_eq!(s.sentinel_password.as_deref(), Some("env-pw"));
}

#[test]
fn refusals_name_their_key() {
    let cases: &[(&str, &[&str])] = &[
        (
            "enabled: true\naddress: a:1\ncacheMode: foo\n",
            &["redis.cacheMode"],
        ),
        ("enabled: true\n", &["redis.address"]),
        ("enabled: true\naddress: a:1,b:2\n", &["redis.address"]),
        ("enabled: true\naddress: 'a:x'\n", &["redis.address"]),
        ("enabled: true\naddress: a:1\nmode: ring\n", &["redis.mode"]),
        (
            "enabled: true\naddress: a:1\nmode: sentinel\n",
            &["redis.sentinelMaster"],
        ),
        (
            "enabled: true\naddress: a:1\nmode: cluster\ndb: 1\n",
            &["redis.db"],
        ),
        ("enabled: true\naddress: a:1\ndb: -1\n", &["redis.db"]),
        (
            "enabled: true\naddress: a:1\nreadTimeout: -3\n",
            &["redis.readTimeout"],
        ),
        (
            "enabled: true\naddress: a:1\ntlsSkipVerify: true\n",
            &["redis.tlsSkipVerify"],
        ),
        (
            "enabled: true\naddress: a:1\ntlsCACert: /ca.pem\n",
            &["redis.tlsCACert"],
        ),
        (
            "enabled: true\naddress: a:1\nenableTLS: true\ntlsCert: /c.pem\n",
            &["redis.tlsKey"],
        ),
        (
            "enabled: true\naddress: a:1\ncircuitBreakerThreshold: -1\n",
            &["redis.circuitBreakerThreshold"],
        ),
        (
            "enabled: true\naddress: a:1\ncacheMode: hybrid\nhybridL1Size: -5\n",
            &["redis.hybridL1Size"],
        ),
        (
            "enabled: true\naddress: a:1\nconnectTimeout: 2\ndialTimeout: 3\n",
            &["redis.dialTimeout"],
        ),
        (
            "enabled: true\naddress: a:1\nenableTLS: true\ntlsCACert: /a.pem\ntls: {caFile: /b.pem}\n",
            &["redis.tls.caFile"],
        ),
        (
            "enabled: true\naddress: a:1\nmode: sentinel\nsentinelMaster: m\nclusterMode: true\n",
            &["redis.clusterMode"],
        ),
        (
            "enabled: true\naddress: a:1\nsentinelPassword: pw\nsentinelUsername: u\n",
            &["redis.sentinelPassword", "redis.sentinelUsername"],
        ),
        (
            "enabled: true\naddress: a:1\nmode: sentinel\nsentinelMaster: m\nsentinelTLS: true\n",
            &["redis.sentinelTLS"],
        ),
        (
            "enabled: true\naddress: a:1\nmaxRetries: many\n",
            &["redis.maxRetries"],
        ),
        (
            "enabled: true\naddress: a:1\ntls: {enabeld: true}\n",
            &["redis.tls.enabeld"],
        ),
        (
            "enabled: true\nadress: a:1\n",
            &["redis.address", "redis.adress"],
        ),
        (
            "enabled: true\naddress: a:1\npoolSize: x\ndb: y\nmode: ring\n",
            &["redis.db", "redis.poolSize", "redis.mode"],
        ),
    ];
    for (block, keys) in cases {
        let mut got = settings(block)
            .unwrap_err()
            .keys()
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>();
        let mut want: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{block}");
    }
    let e = settings("enabled: true\naddress: a:1\nmaxRetris: 3\n").unwrap_err();
    assert!(e.0[0].message.contains("did you mean `maxRetries`"), "{e}");
}

#[test]
fn breaker_can_be_turned_off_and_skip_verify_needs_tls() {
    let s = settings("enabled: true\naddress: a:1\nenableCircuitBreaker: false\n").unwrap();
    assert_eq!(s.redis.unwrap().breaker, None);
    let s = settings(
        "enabled: true\naddress: a:1\nenableTLS: true\ntlsSkipVerify: true\ntlsCACert: /ca.pem\n\
         tlsCert: /c.pem\ntlsKey: /k.pem\n",
    )
    .unwrap();
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

    let mut raw = RawRedisConfig {
        address: "file:1".into(),
        password: "filepw".into(),
        db: 1,
        key_prefix: "f:".into(),
        cache_mode: "redis".into(),
        pool_size: 5,
        ..RawRedisConfig::default()
    };
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
fn the_guide_environment_maps_to_the_same_settings() {
    let guide: HashMap<&str, &str> = [
        ("REDIS_ENABLED", "true"),
        ("REDIS_ADDRESS", "redis:6379"),
        ("REDIS_DIAL_TIMEOUT", "7"),
        ("REDIS_TLS_ENABLED", "true"),
        ("REDIS_TLS_CA_FILE", "/ca.pem"),
        ("REDIS_TLS_CERT_FILE", "/c.pem"),
        ("REDIS_TLS_KEY_FILE", "/k.pem"),
        ("REDIS_TLS_INSECURE_SKIP_VERIFY", "true"),
        ("REDIS_CIRCUIT_BREAKER_THRESHOLD", "9"),
        ("REDIS_CIRCUIT_BREAKER_TIMEOUT", "11"),
        ("REDIS_MAX_RETRIES", "3"),
        ("REDIS_MIN_IDLE_CONNS", "5"),
    ]
    .into_iter()
    .collect();
    let c = with_env("{}", &|k| guide.get(k).map(|v| (*v).to_owned())).unwrap();
    let reference = settings(
        "enabled: true\naddress: redis:6379\nconnectTimeout: 7\nenableTLS: true\n\
         tlsCACert: /ca.pem\ntlsCert: /c.pem\ntlsKey: /k.pem\ntlsSkipVerify: true\n\
         circuitBreakerThreshold: 9\ncircuitBreakerTimeout: 11\n",
    )
    .unwrap();
    assert_eq!(c.cache, reference);
    let w: Vec<&str> = c.warnings.iter().map(|w| w.key.as_str()).collect();
    assert_eq!(w, ["redis.maxRetries", "redis.minIdleConns"]);
}

#[test]
fn debug_hides_the_password() {
    let raw = RawRedisConfig {
        password: "hunter2".into(),
        ..RawRedisConfig::default()
    };
    assert!(!format!("{raw:?}").contains("hunter2"));
}
