//! Redis Cluster and Sentinel deployments started by the test: the cache
//! works against a three-master cluster (keys spread over slots, `clear` on
//! every master, invalidation between hybrid replicas) and follows a Sentinel
//! fail-over, in plain TCP and with every process speaking TLS only (client
//! certificates, ACL users on the data nodes and on the sentinels).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use oidcgate::cache::{
    BreakerSettings, CacheKey, CacheSettings, Caches, Namespace, RedisAddress, RedisSettings,
    RedisTls, RedisTopology,
};
use testkit::redis::{RedisCluster, RedisSentinel};
use testkit::wait::eventually;

fn key(s: &str) -> CacheKey {
    CacheKey::new(s).unwrap()
}

fn base(topology: RedisTopology) -> RedisSettings {
    let first = match &topology {
        RedisTopology::Standalone(a) => a.clone(),
        RedisTopology::Cluster(n) => n[0].clone(),
        RedisTopology::Sentinel { sentinels, .. } => sentinels[0].clone(),
    };
    let mut s = RedisSettings::standalone(first).with_topology(topology);
    s.key_prefix = "topo:".to_owned();
    s.health_check_interval = Duration::from_millis(200);
    // Generous: these tests check behaviour, not speed, on a machine that
    // may be busy (a dead server is noticed at once: connections are refused).
    s.connect_timeout = Duration::from_secs(5);
    s.response_timeout = Duration::from_secs(10);
    s.breaker = Some(BreakerSettings {
        failure_threshold: 3,
        recovery_timeout: Duration::from_millis(300),
    });
    s
}

fn cluster_settings(cluster: &RedisCluster) -> RedisSettings {
    base(RedisTopology::Cluster(
        cluster
            .addresses()
            .iter()
            .map(|a| RedisAddress::parse(a).unwrap())
            .collect(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_set_get_many_clear_and_invalidation() {
    let cluster = RedisCluster::start(3).unwrap();
    let caches = Caches::new(CacheSettings::redis(cluster_settings(&cluster)))
        .await
        .unwrap();
    let ttl = Duration::from_secs(60);
    let keys: Vec<CacheKey> = (0..200).map(|i| key(&format!("k{i}"))).collect();
    for (i, k) in keys.iter().enumerate() {
        caches
            .set(Namespace::VerifiedClaims, k, &i, ttl)
            .await
            .unwrap();
    }
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(
            caches
                .get::<usize>(Namespace::VerifiedClaims, k)
                .await
                .unwrap(),
            Some(i)
        );
    }
    let got = caches
        .get_many::<usize>(Namespace::VerifiedClaims, &keys)
        .await
        .unwrap();
    assert_eq!(got, (0..200).map(Some).collect::<Vec<_>>());
    let entries: Vec<(CacheKey, usize)> = (0..50).map(|i| (key(&format!("m{i}")), i)).collect();
    caches
        .set_many(Namespace::Introspection, &entries, ttl)
        .await
        .unwrap();
    assert_eq!(
        caches
            .get::<usize>(Namespace::Introspection, &key("m49"))
            .await
            .unwrap(),
        Some(49)
    );
    assert!(
        caches
            .set_if_absent(Namespace::ReplayMark, &key("jti"), &1, ttl)
            .await
            .unwrap()
    );
    assert!(
        !caches
            .set_if_absent(Namespace::ReplayMark, &key("jti"), &1, ttl)
            .await
            .unwrap()
    );
    // Keys really are spread over the masters.
    let used = cluster
        .ports()
        .iter()
        .filter(|p| {
            let out = std::process::Command::new("redis-cli")
                .args(["-p", &p.to_string(), "DBSIZE"])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).trim() != "0"
        })
        .count();
    assert_eq!(used, 3, "keys on every master");

    caches.clear(Namespace::VerifiedClaims).await.unwrap();
    let got = caches
        .get_many::<usize>(Namespace::VerifiedClaims, &keys)
        .await
        .unwrap();
    assert!(
        got.iter().all(Option::is_none),
        "clear reached every master"
    );
    assert_eq!(
        caches
            .get::<usize>(Namespace::Introspection, &key("m0"))
            .await
            .unwrap(),
        Some(0)
    );

    // Hybrid replicas on the cluster see each other's revocations.
    let a = Caches::new(CacheSettings::hybrid(cluster_settings(&cluster)))
        .await
        .unwrap();
    let b = Caches::new(CacheSettings::hybrid(cluster_settings(&cluster)))
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async {
            a.stats().subscription_healthy && b.stats().subscription_healthy
        })
        .await,
        "subscriptions up"
    );
    let t = CacheKey::hashed("token");
    assert_eq!(a.get::<bool>(Namespace::Revoked, &t).await.unwrap(), None);
    b.set(Namespace::Revoked, &t, &true, ttl).await.unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async {
            a.get::<bool>(Namespace::Revoked, &t).await.unwrap() == Some(true)
        })
        .await,
        "revocation not visible on A"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_master_is_found_and_followed_after_failover() {
    let mut set = RedisSentinel::start().unwrap();
    let settings = base(RedisTopology::Sentinel {
        sentinels: vec![RedisAddress::parse(&set.sentinel_address()).unwrap()],
        master_name: RedisSentinel::MASTER_NAME.to_owned(),
    });
    let caches = Caches::new(CacheSettings::redis(settings)).await.unwrap();
    let ttl = Duration::from_secs(60);
    caches
        .set(Namespace::Revoked, &key("before"), &true, ttl)
        .await
        .unwrap();
    assert_eq!(
        caches
            .get::<bool>(Namespace::Revoked, &key("before"))
            .await
            .unwrap(),
        Some(true)
    );
    let old_master = set.master().port();
    let new_master = tokio::task::block_in_place(|| set.fail_over()).unwrap();
    assert_ne!(new_master, old_master);
    assert!(
        eventually(Duration::from_secs(30), || async {
            caches
                .set(Namespace::Revoked, &key("after"), &true, ttl)
                .await
                .is_ok()
        })
        .await,
        "the cache does not follow the fail-over: {:?}",
        caches.stats()
    );
    assert_eq!(
        caches
            .get::<bool>(Namespace::Revoked, &key("after"))
            .await
            .unwrap(),
        Some(true)
    );
    assert_eq!(
        caches
            .get::<bool>(Namespace::Revoked, &key("before"))
            .await
            .unwrap(),
        Some(true),
        "an entry replicated before the fail-over is on the new master"
    );
}

/// Settings for `set` over TLS: the test CA, the client certificate, the
/// data nodes' ACL user and the sentinels' ACL user.
fn sentinel_tls_settings(
    set: &RedisSentinel,
    certs: &testkit::tls::TestCertificates,
) -> RedisSettings {
    let mut s = base(RedisTopology::Sentinel {
        sentinels: set
            .sentinel_addresses()
            .iter()
            .map(|a| RedisAddress::parse(a).unwrap())
            .collect(),
        master_name: RedisSentinel::MASTER_NAME.to_owned(),
    });
    s.username = Some(testkit::redis::TLS_CLIENT_USER.to_owned());
    s.password = Some(testkit::redis::TLS_CLIENT_PASSWORD.to_owned());
    s.sentinel_username = Some(testkit::redis::SENTINEL_USER.to_owned());
    s.sentinel_password = Some(testkit::redis::SENTINEL_PASSWORD.to_owned());
    s.tls = Some(RedisTls {
        ca_file: Some(certs.ca()),
        client_cert_file: Some(certs.client_cert()),
        client_key_file: Some(certs.client_key()),
        insecure_skip_verify: false,
    });
    s
}

/// Polls until `b`'s revocation of `what` is seen by `a` (pushed over the
/// invalidation subscription, or read from Redis).
async fn revocation_reaches(a: &Caches, b: &Caches, what: &str) {
    let t = CacheKey::hashed(what);
    let ttl = Duration::from_secs(60);
    assert!(
        eventually(Duration::from_secs(20), || async {
            b.set(Namespace::Revoked, &t, &true, ttl).await.is_ok()
        })
        .await,
        "B cannot write: {:?}",
        b.stats()
    );
    assert!(
        eventually(Duration::from_secs(20), || async {
            a.get::<bool>(Namespace::Revoked, &t).await.ok().flatten() == Some(true)
        })
        .await,
        "{what}: revocation on B not seen on A: {:?}",
        a.stats()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_over_tls_with_acl_users_is_followed_after_failover() {
    let certs = testkit::tls::TestCertificates::make().unwrap();
    let mut set = tokio::task::block_in_place(|| RedisSentinel::start_tls(&certs)).unwrap();
    let settings = sentinel_tls_settings(&set, &certs);

    // Every credential is needed: without the sentinels' password, without
    // the client certificate or without the data nodes' password, Redis
    // cannot be reached.
    let mut no_sentinel_auth = settings.clone();
    no_sentinel_auth.sentinel_password = None;
    let mut no_client_cert = settings.clone();
    no_client_cert.tls = Some(RedisTls {
        ca_file: Some(certs.ca()),
        client_cert_file: None,
        client_key_file: None,
        insecure_skip_verify: false,
    });
    let mut wrong_data_password = settings.clone();
    wrong_data_password.password = Some("wrong".to_owned());
    let mut plain_to_sentinels = settings.clone();
    plain_to_sentinels.sentinel_tls = Some(false);
    for (what, s) in [
        ("no sentinel password", no_sentinel_auth),
        ("no client certificate", no_client_cert),
        ("wrong data-node password", wrong_data_password),
        ("plain TCP to the sentinels", plain_to_sentinels),
    ] {
        let refused = Caches::new(CacheSettings::redis(s)).await;
        assert!(
            refused.is_err() || refused.unwrap().ping().await.is_err(),
            "{what}: Redis must not be reachable"
        );
    }

    let a = Caches::new(CacheSettings::hybrid(settings.clone()))
        .await
        .unwrap();
    let b = Caches::new(CacheSettings::hybrid(settings)).await.unwrap();
    assert!(
        testkit::wait::eventually(Duration::from_secs(10), || async {
            a.stats().subscription_healthy && b.stats().subscription_healthy
        })
        .await,
        "subscriptions over TLS"
    );
    revocation_reaches(&a, &b, "before").await;

    let old_master = set.master().port();
    let new_master = tokio::task::block_in_place(|| set.fail_over()).unwrap();
    assert_ne!(new_master, old_master);
    // The connections and the subscription follow the new master, over TLS.
    revocation_reaches(&a, &b, "after").await;
    assert!(
        testkit::wait::eventually(Duration::from_secs(10), || async {
            a.stats().subscription_healthy
        })
        .await,
        "A subscribed on the new master"
    );
    assert_eq!(
        b.get::<bool>(Namespace::Revoked, &CacheKey::hashed("before"))
            .await
            .unwrap(),
        Some(true),
        "an entry replicated before the fail-over is on the new master"
    );
}
