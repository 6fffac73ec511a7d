//! Hybrid mode with real `redis-server` processes: two `Caches` ("replicas")
//! sharing one Redis see each other's revocations and deletes within 100 ms;
//! a Redis outage degrades to the documented policy and recovers after a
//! restart; the Async-class write queue stays bounded under a burst.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use oidcgate::cache::{
    BreakerSettings, BreakerState, CacheKey, CacheSettings, Caches, Error, Namespace, RedisAddress,
    RedisSettings,
};
use testkit::redis::RedisServer;
use tokio::time::Instant;

const PROPAGATION_LIMIT: Duration = Duration::from_millis(100);
const RECOVERY_LIMIT: Duration = Duration::from_secs(10);

fn key(s: &str) -> CacheKey {
    CacheKey::new(s).unwrap()
}

fn redis_settings(port: u16) -> RedisSettings {
    let mut s =
        RedisSettings::standalone(RedisAddress::parse(&format!("127.0.0.1:{port}")).unwrap());
    s.key_prefix = "hy:".to_owned();
    s.health_check_interval = Duration::from_millis(100);
    s.connect_timeout = Duration::from_millis(500);
    s.response_timeout = Duration::from_millis(500);
    s.breaker = Some(BreakerSettings {
        failure_threshold: 2,
        recovery_timeout: Duration::from_millis(200),
    });
    s
}

async fn hybrid(port: u16) -> Caches {
    Caches::new(CacheSettings::hybrid(redis_settings(port)))
        .await
        .unwrap()
}

/// Polls `check` until it returns true or `limit` passes; returns the time taken.
async fn within<F, Fut>(limit: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return Some(start.elapsed());
        }
        if start.elapsed() >= limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn subscribed(c: &Caches) {
    within(RECOVERY_LIMIT, || async { c.stats().subscription_healthy })
        .await
        .expect("subscription up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_on_one_replica_is_seen_by_the_other_within_100ms() {
    let server = RedisServer::start().unwrap();
    let a = hybrid(server.port()).await;
    let b = hybrid(server.port()).await;
    subscribed(&a).await;
    subscribed(&b).await;

    let token = CacheKey::hashed("header.payload.signature");
    // A looks first: the negative answer is now held in A's L1.
    assert_eq!(
        a.get::<bool>(Namespace::Revoked, &token).await.unwrap(),
        None
    );
    let l2_reads = a.stats().l2_backfills;
    assert_eq!(
        a.get::<bool>(Namespace::Revoked, &token).await.unwrap(),
        None
    );
    assert_eq!(
        a.stats().l2_backfills,
        l2_reads,
        "second negative read is local"
    );

    b.set(Namespace::Revoked, &token, &true, Duration::from_secs(60))
        .await
        .unwrap();
    let took = within(PROPAGATION_LIMIT, || async {
        a.get::<bool>(Namespace::Revoked, &token).await.unwrap() == Some(true)
    })
    .await;
    assert!(
        took.is_some(),
        "revocation not visible on A within {PROPAGATION_LIMIT:?}"
    );
    assert!(a.stats().invalidations_received >= 1);

    // Un-revoke on B: A's L1 copy is evicted.
    b.delete(Namespace::Revoked, &token).await.unwrap();
    let took = within(PROPAGATION_LIMIT, || async {
        a.get::<bool>(Namespace::Revoked, &token)
            .await
            .unwrap()
            .is_none()
    })
    .await;
    assert!(
        took.is_some(),
        "delete not visible on A within {PROPAGATION_LIMIT:?}"
    );

    // Session invalidation markers behave the same.
    let sid = key("sid-123");
    assert_eq!(
        a.get::<u64>(Namespace::SessionInvalidation, &sid)
            .await
            .unwrap(),
        None
    );
    b.set(
        Namespace::SessionInvalidation,
        &sid,
        &1_700_000_000u64,
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert!(
        within(PROPAGATION_LIMIT, || async {
            a.get::<u64>(Namespace::SessionInvalidation, &sid)
                .await
                .unwrap()
                == Some(1_700_000_000)
        })
        .await
        .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_on_one_replica_evicts_the_others_l1() {
    let server = RedisServer::start().unwrap();
    let a = hybrid(server.port()).await;
    let b = hybrid(server.port()).await;
    subscribed(&a).await;
    subscribed(&b).await;

    let k = CacheKey::hashed("some token");
    a.set(
        Namespace::VerifiedClaims,
        &k,
        &"claims",
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    a.flush().await;
    // B reads it from L2 and keeps it in its L1.
    assert_eq!(
        b.get::<String>(Namespace::VerifiedClaims, &k)
            .await
            .unwrap()
            .as_deref(),
        Some("claims")
    );
    assert!(b.stats().l2_backfills >= 1);
    // A deletes: B's L1 copy goes away.
    assert!(a.delete(Namespace::VerifiedClaims, &k).await.unwrap());
    assert!(
        within(PROPAGATION_LIMIT, || async {
            b.get::<String>(Namespace::VerifiedClaims, &k)
                .await
                .unwrap()
                .is_none()
        })
        .await
        .is_some(),
        "B still serves the deleted entry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_marks_are_claimed_once_across_replicas() {
    let server = RedisServer::start().unwrap();
    let a = hybrid(server.port()).await;
    let b = hybrid(server.port()).await;
    let jti = key("jti-42");
    let ttl = Duration::from_secs(60);
    let (ra, rb) = tokio::join!(
        a.set_if_absent(Namespace::ReplayMark, &jti, &1, ttl),
        b.set_if_absent(Namespace::ReplayMark, &jti, &2, ttl)
    );
    assert!(
        ra.unwrap() ^ rb.unwrap(),
        "exactly one replica claims the jti"
    );
    assert!(
        !a.set_if_absent(Namespace::ReplayMark, &jti, &3, ttl)
            .await
            .unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_degrades_by_policy_and_recovers_after_restart() {
    let mut server = RedisServer::start().unwrap();
    let a = hybrid(server.port()).await;
    subscribed(&a).await;
    let ttl = Duration::from_secs(60);
    let claims = CacheKey::hashed("t1");
    let revoked = CacheKey::hashed("t2");
    a.set(Namespace::VerifiedClaims, &claims, &"c", ttl)
        .await
        .unwrap();
    a.set(Namespace::Revoked, &revoked, &true, ttl)
        .await
        .unwrap();
    a.flush().await;

    server.stop();

    // L1-present values keep being served.
    for _ in 0..20 {
        assert_eq!(
            a.get::<String>(Namespace::VerifiedClaims, &claims)
                .await
                .unwrap()
                .as_deref(),
            Some("c")
        );
        assert_eq!(
            a.get::<bool>(Namespace::Revoked, &revoked).await.unwrap(),
            Some(true)
        );
    }
    // Degrade namespaces: writes succeed locally, misses are misses.
    a.set(Namespace::VerifiedClaims, &key("iss"), &"doc", ttl)
        .await
        .unwrap();
    assert_eq!(
        a.get::<String>(Namespace::VerifiedClaims, &key("iss"))
            .await
            .unwrap()
            .as_deref(),
        Some("doc")
    );
    a.set(Namespace::RefreshResult, &key("rt"), &"tokens", ttl)
        .await
        .unwrap();
    assert_eq!(
        a.get::<String>(Namespace::Introspection, &key("missing"))
            .await
            .unwrap(),
        None
    );
    // Report namespaces: the write is kept locally but reported; a miss is reported.
    let err = a
        .set(Namespace::Revoked, &CacheKey::hashed("t3"), &true, ttl)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");
    assert_eq!(
        a.get::<bool>(Namespace::Revoked, &CacheKey::hashed("t3"))
            .await
            .unwrap(),
        Some(true),
        "the local copy of a reported write is still honoured here"
    );
    assert!(matches!(
        a.get::<bool>(Namespace::Revoked, &CacheKey::hashed("t4"))
            .await,
        Err(Error::Unavailable { .. })
    ));
    assert!(matches!(
        a.set_if_absent(Namespace::ReplayMark, &key("j"), &1, ttl)
            .await,
        Err(Error::Unavailable { .. })
    ));

    // With the breaker open a dead Redis is not asked: reads are refused at
    // once (how fast that is, benches/cache.rs measures).
    assert!(
        within(RECOVERY_LIMIT, || async {
            a.stats().breaker != BreakerState::Closed
        })
        .await
        .is_some()
    );
    let refused_before = a.stats().breaker_rejections;
    for i in 0..100 {
        let _ = a
            .get::<String>(Namespace::Introspection, &key(&format!("m{i}")))
            .await;
    }
    let refused = a.stats().breaker_rejections - refused_before;
    assert!(
        refused >= 99,
        "reads past an open breaker reach Redis: {refused} of 100 refused"
    );
    let stats = a.stats();
    assert!(stats.degraded_operations > 0 && !stats.redis_healthy);

    server.restart().unwrap();
    assert!(
        within(RECOVERY_LIMIT, || async {
            let s = a.stats();
            s.redis_healthy && s.subscription_healthy && s.breaker == BreakerState::Closed
        })
        .await
        .is_some(),
        "did not recover: {:?}",
        a.stats()
    );
    a.set(Namespace::Revoked, &CacheKey::hashed("t5"), &true, ttl)
        .await
        .unwrap();
    assert_eq!(
        server
            .command(&format!(
                "EXISTS hy:revoked:{}",
                CacheKey::hashed("t5").as_str()
            ))
            .unwrap(),
        ":1"
    );
    a.ping().await.unwrap();
}

#[tokio::test]
async fn async_queue_stays_bounded_under_a_burst() {
    let server = RedisServer::start().unwrap();
    let mut settings = CacheSettings::hybrid(redis_settings(server.port()));
    settings.async_queue_capacity = 16;
    let a = Caches::new(settings).await.unwrap();
    // On this single-threaded runtime the worker cannot run during the burst.
    for i in 0..1000 {
        a.set(
            Namespace::Introspection,
            &key(&format!("k{i}")),
            &i,
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    }
    let s = a.stats();
    assert_eq!(s.async_enqueued, 16);
    assert_eq!(s.async_dropped, 1000 - 16);
    a.flush().await;
    assert_eq!(server.command("DBSIZE").unwrap(), ":16");
    // Every write is still served locally.
    assert_eq!(
        a.get::<u32>(Namespace::Introspection, &key("k999"))
            .await
            .unwrap(),
        Some(999)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_tasks_stop_when_caches_are_dropped() {
    let server = RedisServer::start().unwrap();
    let a = hybrid(server.port()).await;
    subscribed(&a).await;
    assert_eq!(pubsub_subscribers(&server), 1);
    drop(a);
    // The subscriber's connection is closed once its task is aborted.
    let gone = within(RECOVERY_LIMIT, || async {
        server.command("PUBSUB NUMSUB hy:invalidate").is_ok() && pubsub_subscribers(&server) == 0
    })
    .await;
    assert!(gone.is_some());
}

fn pubsub_subscribers(server: &RedisServer) -> i64 {
    // `PUBSUB CHANNELS` answers with an array header `*<n>` first.
    let line = server.command("PUBSUB CHANNELS hy:*").unwrap();
    line.trim_start_matches('*').parse().unwrap_or(-1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_marker_once_seen_survives_a_redis_restart_that_lost_it() {
    let mut redis = RedisServer::start().unwrap();
    let a = hybrid(redis.port()).await;
    let b = hybrid(redis.port()).await;
    subscribed(&a).await;
    subscribed(&b).await;
    let ttl = Duration::from_secs(60);
    let written = key("sid:written-on-b");
    b.set(Namespace::SessionInvalidation, &written, &7u64, ttl)
        .await
        .unwrap();
    // A learns it from the push, without reading Redis.
    assert!(
        within(PROPAGATION_LIMIT, || async {
            a.get::<u64>(Namespace::SessionInvalidation, &written)
                .await
                .ok()
                .flatten()
                == Some(7)
        })
        .await
        .is_some(),
        "pushed marker not known on A"
    );
    // Redis restarts empty.
    redis.restart().unwrap();
    assert_eq!(redis.command("DBSIZE").unwrap(), ":0");
    assert!(
        within(RECOVERY_LIMIT, || async {
            a.stats().subscription_healthy && a.ping().await.is_ok()
        })
        .await
        .is_some()
    );
    for c in [&a, &b] {
        assert_eq!(
            c.get::<u64>(Namespace::SessionInvalidation, &written)
                .await
                .unwrap(),
            Some(7),
            "a marker seen before the restart is forgotten"
        );
    }
    // Other Sync-class entries are not kept across the lapse.
    assert_eq!(
        a.get_many::<u64>(Namespace::SessionInvalidation, &[key("never")])
            .await
            .unwrap(),
        vec![None]
    );
}
