//! Redis Cluster and Sentinel deployments started by the test: the cache
//! works against a three-master cluster (keys spread over slots, `clear` on
//! every master, invalidation between hybrid replicas) and follows a Sentinel
//! fail-over.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use oidcgate::cache::{
    BreakerSettings, CacheKey, CacheSettings, Caches, Namespace, RedisAddress, RedisSettings,
    RedisTopology,
};
use testkit::redis::{RedisCluster, RedisSentinel};
use tokio::time::Instant;

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
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(a.stats().subscription_healthy && b.stats().subscription_healthy) {
        assert!(Instant::now() < deadline, "subscriptions up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let t = CacheKey::hashed("token");
    assert_eq!(a.get::<bool>(Namespace::Revoked, &t).await.unwrap(), None);
    b.set(Namespace::Revoked, &t, &true, ttl).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.get::<bool>(Namespace::Revoked, &t).await.unwrap() != Some(true) {
        assert!(Instant::now() < deadline, "revocation not visible on A");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
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
    let deadline = Instant::now() + Duration::from_secs(30);
    while caches
        .set(Namespace::Revoked, &key("after"), &true, ttl)
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the cache does not follow the fail-over: {:?}",
            caches.stats()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
