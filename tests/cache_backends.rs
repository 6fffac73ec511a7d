//! Every namespace on every backend (memory, Redis, hybrid) against a real
//! `redis-server` started by the test: set, get, overwrite, delete, exists,
//! set_if_absent, get_many / set_many, clear, TTL expiry, and the Redis key
//! layout; and Redis over TLS with an ACL user (certificates made by the
//! test kit with the `openssl` command).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use oidcgate::cache::{
    BreakerSettings, CacheKey, CacheMode, CacheSettings, Caches, Namespace, RedisAddress,
    RedisSettings, RedisTls,
};
use serde::{Deserialize, Serialize};
use testkit::redis::RedisServer;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Value {
    n: u64,
    s: String,
}

fn v(n: u64) -> Value {
    Value {
        n,
        s: format!("value-{n}"),
    }
}

fn key(s: &str) -> CacheKey {
    CacheKey::new(s).unwrap()
}

fn redis_settings(server: &RedisServer) -> RedisSettings {
    let mut s = RedisSettings::standalone(RedisAddress::parse(&server.address()).unwrap());
    s.key_prefix = "test:".to_owned();
    s.health_check_interval = Duration::from_millis(200);
    s.breaker = Some(BreakerSettings {
        failure_threshold: 3,
        recovery_timeout: Duration::from_millis(300),
    });
    s
}

async fn build(mode: CacheMode, server: &RedisServer) -> Caches {
    match mode {
        CacheMode::Memory => Caches::memory(),
        CacheMode::Redis => Caches::new(CacheSettings::redis(redis_settings(server)))
            .await
            .unwrap(),
        CacheMode::Hybrid => Caches::new(CacheSettings::hybrid(redis_settings(server)))
            .await
            .unwrap(),
    }
}

async fn check_operations(mode: CacheMode, caches: &Caches) {
    let ttl = Duration::from_secs(60);
    for ns in Namespace::ALL {
        let ctx = format!("{mode:?}/{ns}");
        let k = key(&format!("k-{ns}"));
        assert_eq!(
            caches.get::<Value>(ns, &k).await.unwrap(),
            None,
            "{ctx}: empty"
        );
        assert!(!caches.exists(ns, &k).await.unwrap(), "{ctx}");

        caches.set(ns, &k, &v(1), ttl).await.unwrap();
        assert_eq!(caches.get(ns, &k).await.unwrap(), Some(v(1)), "{ctx}: set");
        assert!(caches.exists(ns, &k).await.unwrap(), "{ctx}: exists");

        caches.set(ns, &k, &v(2), ttl).await.unwrap();
        assert_eq!(
            caches.get(ns, &k).await.unwrap(),
            Some(v(2)),
            "{ctx}: overwrite"
        );

        assert!(
            !caches.set_if_absent(ns, &k, &v(3), ttl).await.unwrap(),
            "{ctx}: set_if_absent on present key"
        );
        assert_eq!(caches.get(ns, &k).await.unwrap(), Some(v(2)), "{ctx}");

        assert!(caches.delete(ns, &k).await.unwrap(), "{ctx}: delete");
        assert_eq!(
            caches.get::<Value>(ns, &k).await.unwrap(),
            None,
            "{ctx}: deleted"
        );
        assert!(!caches.delete(ns, &k).await.unwrap(), "{ctx}: delete twice");

        assert!(
            caches.set_if_absent(ns, &k, &v(4), ttl).await.unwrap(),
            "{ctx}: set_if_absent on absent key"
        );
        assert_eq!(caches.get(ns, &k).await.unwrap(), Some(v(4)), "{ctx}");

        let keys: Vec<CacheKey> = (0..5).map(|i| key(&format!("many-{ns}-{i}"))).collect();
        let entries: Vec<(CacheKey, Value)> = keys
            .iter()
            .take(3)
            .enumerate()
            .map(|(i, k)| (k.clone(), v(i as u64)))
            .collect();
        caches.set_many(ns, &entries, ttl).await.unwrap();
        let got = caches.get_many::<Value>(ns, &keys).await.unwrap();
        assert_eq!(
            got,
            vec![Some(v(0)), Some(v(1)), Some(v(2)), None, None],
            "{ctx}: get_many"
        );
    }
    // Namespaces are separate: the same key text in two namespaces.
    let shared = key("same-key");
    caches
        .set(Namespace::VerifiedClaims, &shared, &v(10), ttl)
        .await
        .unwrap();
    caches
        .set(Namespace::Revoked, &shared, &v(11), ttl)
        .await
        .unwrap();
    assert_eq!(
        caches
            .get(Namespace::VerifiedClaims, &shared)
            .await
            .unwrap(),
        Some(v(10))
    );
    caches.delete(Namespace::Revoked, &shared).await.unwrap();
    assert_eq!(
        caches
            .get(Namespace::VerifiedClaims, &shared)
            .await
            .unwrap(),
        Some(v(10)),
        "{mode:?}: delete in one namespace leaves the other"
    );

    // clear touches only its namespace.
    caches.clear(Namespace::Introspection).await.unwrap();
    assert_eq!(
        caches
            .get::<Value>(Namespace::Introspection, &key("many-introspection-0"))
            .await
            .unwrap(),
        None,
        "{mode:?}: clear"
    );
    assert_eq!(
        caches
            .get(Namespace::VerifiedClaims, &key("many-claims-0"))
            .await
            .unwrap(),
        Some(v(0)),
        "{mode:?}: clear left other namespaces"
    );
}

async fn check_expiry(mode: CacheMode, caches: &Caches) {
    let short = Duration::from_millis(300);
    for ns in Namespace::ALL {
        caches.set(ns, &key("ttl"), &v(1), short).await.unwrap();
        caches
            .set(ns, &key("ttl-long"), &v(2), Duration::from_secs(60))
            .await
            .unwrap();
    }
    caches.flush().await;
    for ns in Namespace::ALL {
        assert_eq!(
            caches.get(ns, &key("ttl")).await.unwrap(),
            Some(v(1)),
            "{mode:?}/{ns}: before expiry"
        );
    }
    // Redis expires keys on its own clock: wait for it, with a bound.
    for ns in Namespace::ALL {
        assert!(
            testkit::wait::eventually(Duration::from_secs(10), || async {
                caches
                    .get::<Value>(ns, &key("ttl"))
                    .await
                    .unwrap()
                    .is_none()
            })
            .await,
            "{mode:?}/{ns}: not expired"
        );
    }
    for ns in Namespace::ALL {
        assert_eq!(
            caches.get::<Value>(ns, &key("ttl")).await.unwrap(),
            None,
            "{mode:?}/{ns}: expired"
        );
        assert_eq!(
            caches.get(ns, &key("ttl-long")).await.unwrap(),
            Some(v(2)),
            "{mode:?}/{ns}: long TTL kept"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_namespace_on_every_backend() {
    let server = RedisServer::start().unwrap();
    for mode in [CacheMode::Memory, CacheMode::Redis, CacheMode::Hybrid] {
        let caches = build(mode, &server).await;
        check_operations(mode, &caches).await;
        check_expiry(mode, &caches).await;
        assert_eq!(caches.stats().async_dropped, 0);
        server.command("FLUSHALL").unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_key_layout_is_prefix_namespace_key_with_ttl() {
    let server = RedisServer::start().unwrap();
    let caches = build(CacheMode::Redis, &server).await;
    let k = CacheKey::hashed("eyJhbGciOi.raw.token");
    caches
        .set(Namespace::Revoked, &k, &true, Duration::from_secs(100))
        .await
        .unwrap();
    let full = format!("test:revoked:{}", k.as_str());
    assert_eq!(server.command(&format!("EXISTS {full}")).unwrap(), ":1");
    let pttl: i64 = server.command(&format!("PTTL {full}")).unwrap()[1..]
        .parse()
        .unwrap();
    assert!(pttl > 90_000 && pttl <= 100_000, "{pttl}");
    assert_eq!(
        server
            .command("EXISTS test:revoked:eyJhbGciOi.raw.token")
            .unwrap(),
        ":0"
    );
    // clear uses SCAN and removes only the namespace's keys.
    caches
        .set(
            Namespace::VerifiedClaims,
            &key("https://idp/jwks"),
            &1,
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    for i in 0..1200 {
        caches
            .set(
                Namespace::Introspection,
                &key(&format!("t{i}")),
                &i,
                Duration::from_secs(60),
            )
            .await
            .unwrap();
    }
    caches.clear(Namespace::Introspection).await.unwrap();
    assert_eq!(server.command("DBSIZE").unwrap(), ":2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_auth_and_db_are_used() {
    let server = RedisServer::start_with(&["--requirepass", "s3cret"]).unwrap();
    let mut settings = redis_settings(&server);
    settings.password = Some("s3cret".to_owned());
    settings.db = 3;
    let caches = Caches::new(CacheSettings::redis(settings.clone()))
        .await
        .unwrap();
    caches
        .set(
            Namespace::VerifiedClaims,
            &key("iss"),
            &v(1),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert_eq!(
        caches
            .get(Namespace::VerifiedClaims, &key("iss"))
            .await
            .unwrap(),
        Some(v(1))
    );
    caches.ping().await.unwrap();

    settings.password = Some("wrong".to_owned());
    let bad = Caches::new(CacheSettings::redis(settings)).await.unwrap();
    assert!(bad.ping().await.is_err());
    // A Report namespace surfaces the failure; a Degrade namespace reads as a miss.
    assert!(
        bad.get::<Value>(Namespace::Revoked, &key("x"))
            .await
            .is_err()
    );
    assert_eq!(
        bad.get::<Value>(Namespace::VerifiedClaims, &key("iss"))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decode_errors_and_oversized_values_are_typed_errors() {
    let caches = Caches::memory();
    caches
        .set(
            Namespace::Session,
            &key("s"),
            &"text",
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    let err = caches
        .get::<Value>(Namespace::Session, &key("s"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, oidcgate::cache::Error::Decode { .. }),
        "{err}"
    );
    let big = "x".repeat(oidcgate::cache::DEFAULT_MAX_VALUE_BYTES + 1);
    let err = caches
        .set(
            Namespace::Session,
            &key("big"),
            &big,
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, oidcgate::cache::Error::ValueTooLarge { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn redis_report_names_version_mode_and_an_evicting_policy() {
    // Table: maxmemory-policy the server runs with, warning expected.
    for (policy, warned) in [
        ("allkeys-lru", true),
        ("volatile-lru", true),
        ("noeviction", false),
    ] {
        let server = RedisServer::start_with(&["--maxmemory-policy", policy]).unwrap();
        let caches = build(CacheMode::Redis, &server).await;
        let report = caches
            .backend()
            .redis_report()
            .await
            .unwrap()
            .expect("a Redis backend reports");
        assert_eq!(report.topology, "standalone");
        assert_eq!(report.maxmemory_policy.as_deref(), Some(policy));
        assert!(report.version.is_some(), "{report}");
        assert_eq!(report.server_mode.as_deref(), Some("standalone"));
        let warning = report.eviction_warning();
        assert_eq!(warning.is_some(), warned, "{policy}: {warning:?}");
        if let Some(w) = warning {
            assert!(w.contains(policy) && w.contains("noeviction"), "{w}");
        }
    }
    assert_eq!(
        Caches::memory().backend().redis_report().await.unwrap(),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_redis_with_an_acl_user_and_password() {
    // TLS only, client certificates required, no `default` user.
    let certs = testkit::tls::TestCertificates::make().unwrap();
    let redis = RedisServer::start_tls(&certs, &[]).unwrap();
    let mut s = RedisSettings::standalone(RedisAddress::parse(&redis.address()).unwrap());
    s.username = Some(testkit::redis::TLS_CLIENT_USER.to_owned());
    s.password = Some(testkit::redis::TLS_CLIENT_PASSWORD.to_owned());
    s.tls = Some(RedisTls {
        ca_file: Some(certs.ca()),
        client_cert_file: Some(certs.client_cert()),
        client_key_file: Some(certs.client_key()),
        insecure_skip_verify: false,
    });
    let caches = Caches::new(CacheSettings::redis(s.clone())).await.unwrap();
    caches
        .set(
            Namespace::Revoked,
            &key("over-tls"),
            &true,
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert_eq!(
        caches
            .get::<bool>(Namespace::Revoked, &key("over-tls"))
            .await
            .unwrap(),
        Some(true)
    );
    // The server certificate is verified: without the test CA it is not
    // trusted.
    let mut untrusted = s.clone();
    untrusted.tls = Some(RedisTls {
        ca_file: None,
        ..s.tls.clone().unwrap()
    });
    let refused = Caches::new(CacheSettings::redis(untrusted)).await;
    assert!(
        refused.is_err() || refused.unwrap().ping().await.is_err(),
        "a certificate from an unknown CA must not be trusted"
    );
    // The server requires a client certificate.
    let mut anonymous = s.clone();
    anonymous.tls = Some(RedisTls {
        client_cert_file: None,
        client_key_file: None,
        ..s.tls.clone().unwrap()
    });
    let refused = Caches::new(CacheSettings::redis(anonymous)).await;
    assert!(
        refused.is_err() || refused.unwrap().ping().await.is_err(),
        "a client without a certificate must not get in"
    );
    // A wrong password is refused, not ignored.
    let mut wrong = s;
    wrong.password = Some("nope".to_owned());
    let refused = Caches::new(CacheSettings::redis(wrong)).await;
    assert!(
        refused.is_err() || refused.unwrap().ping().await.is_err(),
        "a wrong ACL password must not work"
    );
}
