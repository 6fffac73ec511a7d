//! Two gate replicas sharing one real Redis (hybrid caches): a session made on
//! one works on the other, a logout on one ends the session on the other, and
//! a refresh on one is reused by the other without a second grant.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test support: a failed unwrap is a failed test"
)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use oidcgate::clock::SystemClock;
use oidcgate::config::Config;
use testkit::redis::RedisServer;
use testkit::upstream::EchoUpstream;
use testkit::{IdpConfig, TestIdp};

struct Replica {
    base: String,
    gate: oidcgate::gate::Gate,
    _served: testkit::served::Served,
}

async fn replica(idp: &TestIdp, upstream: &EchoUpstream, redis: &RedisServer) -> Replica {
    replica_with(idp, upstream, redis, "").await
}

async fn replica_with(
    idp: &TestIdp,
    upstream: &EchoUpstream,
    redis: &RedisServer,
    extra: &str,
) -> Replica {
    replica_with_redis(
        idp,
        upstream,
        extra,
        &format!("  address: {}\n", redis.address()),
    )
    .await
}

/// A replica whose `redis:` block holds `redis_block` (indented lines) plus
/// `enabled` and hybrid mode.
async fn replica_with_redis(
    idp: &TestIdp,
    upstream: &EchoUpstream,
    extra: &str,
    redis_block: &str,
) -> Replica {
    replica_on_clock(idp, upstream, extra, redis_block, Arc::new(SystemClock)).await
}

/// As [`replica_with_redis`], with the gate reading time from `clock`.
async fn replica_on_clock(
    idp: &TestIdp,
    upstream: &EchoUpstream,
    extra: &str,
    redis_block: &str,
    clock: oidcgate::clock::SharedClock,
) -> Replica {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let yaml = format!(
        "providerURL: {}\nclientID: {}\nclientSecret: {}\n\
         sessionEncryptionKey: replica-shared-key-0123456789abcdef0123\n\
         listen: 127.0.0.1:{port}\nupstream: {}\nrefreshGracePeriodSeconds: 60\n\
         {extra}redis:\n  enabled: true\n{redis_block}  cacheMode: hybrid\n",
        idp.issuer(),
        idp.client_id(),
        idp.client_secret(),
        upstream.url(),
    );
    let cfg = Config::from_yaml(&yaml, &|_| None).unwrap();
    let gate = oidcgate::build(&cfg, clock).await.unwrap();
    let (engine, app) = (gate.clone(), cfg.app.clone());
    let served = testkit::served::Served::on(listener, |listener, stop| {
        oidcgate::run(engine, app, listener, stop)
    });
    Replica {
        base: served.url(),
        gate,
        _served: served,
    }
}

/// A cookie jar of the gate's cookies only (the provider shares the host).
#[derive(Clone, Default)]
struct Jar(BTreeMap<String, String>);

impl Jar {
    fn absorb(&mut self, resp: &reqwest::Response) {
        for v in resp.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let (pair, attrs) = v.split_once(';').unwrap_or((v, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if !name.starts_with("_oidcgate_") {
                continue;
            }
            if attrs.contains("Max-Age=0") {
                self.0.remove(name);
            } else {
                self.0.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn get(c: &reqwest::Client, url: &str, jar: &mut Jar) -> reqwest::Response {
    let r = c
        .get(url)
        .header("accept", "text/html")
        .header("cookie", jar.header())
        .send()
        .await
        .unwrap();
    jar.absorb(&r);
    r
}

/// Logs in on `r` and stops right after the callback set the session.
async fn login(c: &reqwest::Client, r: &Replica) -> Jar {
    let mut jar = Jar::default();
    let start = get(c, &format!("{}/app", r.base), &mut jar).await;
    assert_eq!(start.status(), 302);
    let authorize = start.headers()["location"].to_str().unwrap().to_owned();
    let idp = c.get(&authorize).send().await.unwrap();
    assert_eq!(idp.status(), 302);
    let callback = idp.headers()["location"].to_str().unwrap().to_owned();
    let back = get(c, &callback, &mut jar).await;
    assert_eq!(back.status(), 302, "callback");
    assert!(jar.0.contains_key("_oidcgate_s_0"));
    jar
}

async fn user_seen(c: &reqwest::Client, r: &Replica, jar: &mut Jar) -> Option<String> {
    let resp = get(c, &format!("{}/app", r.base), jar).await;
    if resp.status() != 200 {
        return None;
    }
    let body: serde_json::Value = resp.json().await.unwrap();
    body["headers"]["x-forwarded-user"]
        .as_str()
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_from_one_replica_works_on_the_other_and_logout_reaches_both() {
    let redis = RedisServer::start().expect("redis-server (run `cargo xtask setup`)");
    let idp = TestIdp::start(IdpConfig::default()).await;
    let up = EchoUpstream::start().await;
    let a = replica(&idp, &up, &redis).await;
    let b = replica(&idp, &up, &redis).await;
    let c = client();

    let jar = login(&c, &a).await;
    assert_eq!(
        user_seen(&c, &b, &mut jar.clone()).await.as_deref(),
        Some("demo@example.com")
    );

    // Logout on B; the copy of the cookie kept by the client must stop
    // working on A promptly.
    let kept = jar.clone();
    let out = get(
        &c,
        &format!("{}/oauth2/callback/logout", b.base),
        &mut jar.clone(),
    )
    .await;
    assert_eq!(out.status(), 302);
    eventually(PROPAGATION_BOUND, "logout on B enforced on A", || async {
        user_seen(&c, &a, &mut kept.clone()).await.is_none()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_on_one_replica_is_reused_by_the_other() {
    let redis = RedisServer::start().expect("redis-server (run `cargo xtask setup`)");
    // Access tokens shorter than the refresh grace: every session is due.
    let idp = TestIdp::start(IdpConfig {
        access_token_ttl: Duration::from_secs(30),
        id_token_ttl: Duration::from_secs(30),
        rotate_refresh_tokens: true,
        ..IdpConfig::default()
    })
    .await;
    let up = EchoUpstream::start().await;
    let a = replica(&idp, &up, &redis).await;
    let b = replica(&idp, &up, &redis).await;
    let c = client();

    let old = login(&c, &a).await;
    let before = idp.counters().refresh_grants;
    assert!(
        user_seen(&c, &a, &mut old.clone()).await.is_some(),
        "refresh on A"
    );
    assert_eq!(idp.counters().refresh_grants, before + 1);
    // B sees the same old cookie: it must reuse A's result, not present the
    // rotated refresh token (which the provider would refuse).
    let mut on_b = old.clone();
    assert_eq!(
        user_seen(&c, &b, &mut on_b).await.as_deref(),
        Some("demo@example.com")
    );
    assert_eq!(
        idp.counters().refresh_grants,
        before + 1,
        "B sent a second grant"
    );
    assert_eq!(idp.counters().failed_grants, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_sessions_keep_tokens_out_of_the_cookie_and_the_store() {
    let redis = RedisServer::start().expect("redis-server (run `cargo xtask setup`)");
    let mut user = testkit::TestUser::new("u-1", "big@example.com");
    // A large group list: far beyond one cookie in cookie mode.
    user.groups = (0..400)
        .map(|i| format!("group-with-a-long-name-{i:04}"))
        .collect();
    let idp = TestIdp::start(IdpConfig {
        user,
        ..IdpConfig::default()
    })
    .await;
    let up = EchoUpstream::start().await;
    let a = replica_with(&idp, &up, &redis, "sessionStore: redis\n").await;
    let b = replica_with(&idp, &up, &redis, "sessionStore: redis\n").await;
    let c = client();

    let jar = login(&c, &a).await;
    assert_eq!(
        jar.0.len(),
        2,
        "one session cookie plus the login counter: {:?}",
        jar.0.keys()
    );
    assert!(
        jar.0["_oidcgate_s_0"].len() < 400,
        "reference cookie stays small"
    );
    assert_eq!(
        user_seen(&c, &b, &mut jar.clone()).await.as_deref(),
        Some("big@example.com")
    );

    // The store holds the session sealed: no token, no e-mail, no group.
    let cli = |args: &[&str]| {
        let out = std::process::Command::new("redis-cli")
            .arg("-p")
            .arg(redis.port().to_string())
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let keys = cli(&["--scan"]);
    let session_key = keys
        .lines()
        .find(|k| k.contains("session") && k.contains("sid:"))
        .expect("a stored session")
        .to_owned();
    let dump = cli(&["GET", &session_key]);
    assert!(dump.len() > 100, "sealed session stored");
    // Long needles: a short one could appear by chance in the base64 text.
    for needle in ["eyJhbGciOi", "big@example.com", "group-with-a-long-name"] {
        assert!(!dump.contains(needle), "store leaks {needle}");
    }

    // Logout on B deletes it: the kept cookie is worthless everywhere.
    let kept = jar.clone();
    get(
        &c,
        &format!("{}/oauth2/callback/logout", b.base),
        &mut jar.clone(),
    )
    .await;
    assert!(ended_soon(&c, &a, &kept).await);
    assert_eq!(cli(&["EXISTS", &session_key]).trim(), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bearer_revocation_on_one_replica_is_enforced_on_the_other() {
    let redis = RedisServer::start().expect("redis-server (run `cargo xtask setup`)");
    let idp = TestIdp::start(IdpConfig::default()).await;
    let up = EchoUpstream::start().await;
    let extra = "enableBearerAuth: true\naudience: api://default\n";
    let a = replica_with(&idp, &up, &redis, extra).await;
    let b = replica_with(&idp, &up, &redis, extra).await;
    let c = client();
    let token = idp.client_credentials_token("api://default");
    let call = |base: String| {
        let c = c.clone();
        let token = token.clone();
        async move {
            c.get(format!("{base}/api"))
                .bearer_auth(token)
                .header("accept", "application/json")
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    // Warm A's claims cache first: the revocation must beat a cached "valid".
    assert_eq!(call(a.base.clone()).await, 200);
    assert_eq!(call(b.base.clone()).await, 200);
    b.gate.revoke_token(&token).await.unwrap();
    eventually(
        PROPAGATION_BOUND,
        "revocation on B enforced on A",
        || async { call(a.base.clone()).await == 401 },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_keep_working_while_redis_is_down_and_after_it_returns() {
    let mut redis = RedisServer::start().expect("redis-server (run `cargo xtask setup`)");
    let idp = TestIdp::start(IdpConfig::default()).await;
    let up = EchoUpstream::start().await;
    let a = replica(&idp, &up, &redis).await;
    let c = client();
    let jar = login(&c, &a).await;
    assert!(user_seen(&c, &a, &mut jar.clone()).await.is_some());

    redis.stop();
    // Every request that passed with Redis up passes with it down (the
    // documented outage policy: a session check that cannot be answered
    // does not end sessions).
    for _ in 0..50 {
        assert_eq!(
            user_seen(&c, &a, &mut jar.clone()).await.as_deref(),
            Some("demo@example.com")
        );
    }
    redis.restart().expect("redis restarts on the same port");
    // After the restart a logout is shared again: wait (bounded) until the
    // health check has reconnected, then log out and check the kept cookie.
    let kept = jar.clone();
    eventually(Duration::from_secs(20), "cache reconnected", || async {
        a.gate.caches().ping().await.is_ok()
    })
    .await;
    get(
        &c,
        &format!("{}/oauth2/callback/logout", a.base),
        &mut jar.clone(),
    )
    .await;
    assert!(user_seen(&c, &a, &mut kept.clone()).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_that_cannot_be_recorded_is_a_503_and_can_be_repeated() {
    let mut redis = RedisServer::start().expect("redis-server (run `cargo xtask setup`)");
    let idp = TestIdp::start(IdpConfig::default()).await;
    let up = EchoUpstream::start().await;
    let a = replica(&idp, &up, &redis).await;
    let b = replica(&idp, &up, &redis).await;
    let c = client();
    let jar = login(&c, &a).await;
    assert!(user_seen(&c, &b, &mut jar.clone()).await.is_some());

    redis.stop();
    let mut during = jar.clone();
    let refused = get(
        &c,
        &format!("{}/oauth2/callback/logout", a.base),
        &mut during,
    )
    .await;
    assert_eq!(
        refused.status(),
        503,
        "a logout the other replicas cannot learn of is not a sign-out"
    );
    assert_eq!(
        during.header(),
        jar.header(),
        "the browser keeps its cookie to try again"
    );

    redis.restart().expect("redis restarts on the same port");
    for r in [&a, &b] {
        eventually(Duration::from_secs(20), "replica reconnects", || async {
            r.gate.caches().ping().await.is_ok()
        })
        .await;
    }
    log_out(&c, &a, &jar).await;
    assert!(
        ended_soon(&c, &b, &jar).await,
        "the repeated logout is enforced on the other replica"
    );
}

// ---- provider-initiated logout (back-channel and front-channel) ----------

const CHANNELS: &str = "enableBackchannelLogout: true\nenableFrontchannelLogout: true\n";

async fn post_logout_token(c: &reqwest::Client, r: &Replica, token: &str) -> reqwest::StatusCode {
    c.post(format!("{}/oauth2/backchannel-logout", r.base))
        .form(&[("logout_token", token)])
        .send()
        .await
        .unwrap()
        .status()
}

/// How long a test waits for one replica to enforce another's write. Replicas
/// learn of it through pub/sub within milliseconds; the bound is generous so
/// a busy machine cannot fail the test (speed is the benchmarks' job).
const PROPAGATION_BOUND: Duration = Duration::from_secs(2);

/// Polls (bounded by [`PROPAGATION_BOUND`]) until `jar` no longer opens a
/// session on `r`.
async fn ended_soon(c: &reqwest::Client, r: &Replica, jar: &Jar) -> bool {
    testkit::wait::eventually(PROPAGATION_BOUND, || async {
        user_seen(c, r, &mut jar.clone()).await.is_none()
    })
    .await
}

/// The provider's session id inside the gate's session cookie.
fn provider_sid(jar: &Jar) -> String {
    use oidcgate::session::{SecretString, SessionCodec, SessionSettings};
    let codec = SessionCodec::new(SessionSettings::with_keys(vec![SecretString::new(
        "replica-shared-key-0123456789abcdef0123",
    )]))
    .unwrap();
    let mut h = http::HeaderMap::new();
    h.insert("cookie", jar.header().parse().unwrap());
    codec
        .load(&h, oidcgate::clock::Clock::now(&SystemClock))
        .unwrap()
        .idp_sid
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_back_channel_logout_on_one_replica_ends_the_session_on_the_other() {
    let redis = RedisServer::start().expect("redis-server (run `cargo xtask setup`)");
    let idp = TestIdp::start(IdpConfig::default()).await;
    let up = EchoUpstream::start().await;
    // Both replicas read one manual clock: "later" is a step of it, not a
    // sleep past a whole second.
    let clock = oidcgate::clock::ManualClock::starting_now();
    let block = format!("  address: {}\n", redis.address());
    let a = replica_on_clock(&idp, &up, CHANNELS, &block, clock.clone()).await;
    let b = replica_on_clock(&idp, &up, CHANNELS, &block, clock.clone()).await;
    let c = client();

    // By provider session id.
    let jar = login(&c, &a).await;
    let sid = provider_sid(&jar);
    let token = idp.logout_token(Some(&sid), None);
    assert_eq!(post_logout_token(&c, &b, &token).await, 200);
    assert!(ended_soon(&c, &a, &jar).await, "session by sid ended");
    // The same token again is a replay, on either replica.
    assert_eq!(post_logout_token(&c, &a, &token).await, 400);
    assert_eq!(post_logout_token(&c, &b, &token).await, 400);

    // By subject: ends sessions that began before the logout (or in its
    // second: the rule is inclusive), not later ones.
    let older = login(&c, &a).await;
    assert_eq!(
        post_logout_token(&c, &b, &idp.logout_token(None, Some("demo-user-1"))).await,
        200
    );
    assert!(ended_soon(&c, &a, &older).await, "session by sub ended");
    clock.advance(1);
    let newer = login(&c, &a).await;
    assert!(
        user_seen(&c, &a, &mut newer.clone()).await.is_some(),
        "a later login is not ended"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_channel_logout_refuses_bad_tokens_and_methods() {
    let redis = RedisServer::start().expect("redis-server (run `cargo xtask setup`)");
    let idp = TestIdp::start(IdpConfig::default()).await;
    let up = EchoUpstream::start().await;
    let a = replica_with(&idp, &up, &redis, CHANNELS).await;
    let c = client();
    let jar = login(&c, &a).await;
    let now = oidcgate::clock::Clock::now(&SystemClock);
    let good = |extra: serde_json::Value| {
        let mut claims = serde_json::json!({
            "iss": idp.issuer(), "aud": idp.client_id(), "iat": now, "jti": format!("j-{extra}"),
            "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
            "sub": "demo-user-1",
        });
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        claims
    };
    let mint = |claims: serde_json::Value, key: testkit::KeyChoice| {
        idp.mint(testkit::Mint {
            header: serde_json::json!({"typ": "logout+jwt"}),
            claims,
            key,
            raw_signature: None,
        })
    };
    let cases = [
        (
            "wrong aud",
            mint(
                good(serde_json::json!({"aud": "someone-else"})),
                testkit::KeyChoice::Current,
            ),
        ),
        (
            "wrong iss",
            mint(
                good(serde_json::json!({"iss": "https://evil.example"})),
                testkit::KeyChoice::Current,
            ),
        ),
        (
            "nonce present",
            mint(
                good(serde_json::json!({"nonce": "n"})),
                testkit::KeyChoice::Current,
            ),
        ),
        (
            "no event",
            mint(
                good(serde_json::json!({"events": {}})),
                testkit::KeyChoice::Current,
            ),
        ),
        (
            "too old",
            mint(
                good(serde_json::json!({"iat": now - 3600})),
                testkit::KeyChoice::Current,
            ),
        ),
        (
            "no sid nor sub",
            mint(
                good(serde_json::json!({"sub": null})),
                testkit::KeyChoice::Current,
            ),
        ),
        (
            "unpublished key",
            mint(good(serde_json::json!({})), testkit::KeyChoice::Unpublished),
        ),
        (
            "alg none",
            mint(good(serde_json::json!({})), testkit::KeyChoice::None),
        ),
        ("an ID token", idp.id_token(serde_json::json!({}))),
        ("junk", "not-a-token".to_owned()),
    ];
    for (name, token) in &cases {
        assert_eq!(post_logout_token(&c, &a, token).await, 400, "{name}");
    }
    assert!(
        user_seen(&c, &a, &mut jar.clone()).await.is_some(),
        "no bad token ended the session"
    );
    let get = c
        .get(format!("{}/oauth2/backchannel-logout", a.base))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn front_channel_logout_ends_the_provider_session() {
    let redis = RedisServer::start().expect("redis-server (run `cargo xtask setup`)");
    let idp = TestIdp::start(IdpConfig::default()).await;
    let up = EchoUpstream::start().await;
    let a = replica_with(&idp, &up, &redis, CHANNELS).await;
    let c = client();
    let jar = login(&c, &a).await;
    let sid = provider_sid(&jar);
    let url = format!("{}/oauth2/frontchannel-logout", a.base);
    let q = |iss: &str| {
        let enc = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
        format!("{url}?iss={}&sid={}", enc(iss), enc(&sid))
    };
    let wrong_iss = c.get(q("https://evil.example")).send().await.unwrap();
    assert_eq!(wrong_iss.status(), 400);
    assert_eq!(
        c.get(&url).send().await.unwrap().status(),
        400,
        "sid is required"
    );
    assert!(user_seen(&c, &a, &mut jar.clone()).await.is_some());
    let ok = c.get(q(&idp.issuer())).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(
        ok.headers().get("x-frame-options").is_none(),
        "the page can be framed"
    );
    assert_eq!(ok.headers()["cache-control"], "no-store");
    assert!(
        user_seen(&c, &a, &mut jar.clone()).await.is_none(),
        "session ended"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_back_channel_logout_is_recorded_before_its_jti_is_used_and_an_outage_is_a_503() {
    let mut redis = RedisServer::start().expect("redis-server (run `cargo xtask setup`)");
    // The gate's ACL user may first write replay marks only: the logout
    // record fails after the replay check would have passed.
    assert_eq!(
        redis
            .command("ACL SETUSER gate on >gate-pw ~oidcgate:replay:* &* +@all")
            .unwrap(),
        "+OK"
    );
    let idp = TestIdp::start(IdpConfig::default()).await;
    let up = EchoUpstream::start().await;
    let a = replica_with_redis(
        &idp,
        &up,
        CHANNELS,
        &format!(
            "  address: {}\n  username: gate\n  password: gate-pw\n",
            redis.address()
        ),
    )
    .await;
    let c = client();

    let token = idp.logout_token(None, Some("demo-user-1"));
    assert_eq!(
        post_logout_token(&c, &a, &token).await,
        503,
        "the logout could not be recorded: our fault, retry later"
    );
    assert_eq!(
        redis.command("ACL SETUSER gate ~*").unwrap(),
        "+OK",
        "the store recovers"
    );
    assert_eq!(
        post_logout_token(&c, &a, &token).await,
        200,
        "the provider's retry is not a replay"
    );
    assert_eq!(post_logout_token(&c, &a, &token).await, 400, "now it is");

    // The store down: a valid token is answered 503, never 400.
    redis.stop();
    let fresh = idp.logout_token(None, Some("demo-user-1"));
    assert_eq!(post_logout_token(&c, &a, &fresh).await, 503);
}

// ---- outages and fail-over (issue: logout not enforced after an outage) ----

/// Breaker and health check slow enough that only the behaviour under test
/// (the subscription closing the breaker, a prompt re-resolution) can make a
/// replica recover within the test's bounds.
const SLOW_RECOVERY: &str = "  healthCheckInterval: 30\n  circuitBreakerTimeout: 30\n";

/// Asserts `check` holds within `bound` (polled by [`testkit::wait::eventually`]).
async fn eventually<F, Fut>(bound: Duration, what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    assert!(
        testkit::wait::eventually(bound, check).await,
        "{what}: not within {bound:?}"
    );
}

async fn log_out(c: &reqwest::Client, r: &Replica, jar: &Jar) {
    let out = get(
        c,
        &format!("{}/oauth2/callback/logout", r.base),
        &mut jar.clone(),
    )
    .await;
    assert_eq!(out.status(), 302);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_redis_restart_the_subscription_closes_the_breaker_and_logout_is_enforced() {
    let mut redis = RedisServer::start().expect("redis-server (run `cargo xtask setup`)");
    let idp = TestIdp::start(IdpConfig::default()).await;
    let up = EchoUpstream::start().await;
    let block = format!("  address: {}\n{SLOW_RECOVERY}", redis.address());
    let a = replica_with_redis(&idp, &up, "", &block).await;
    let b = replica_with_redis(&idp, &up, "", &block).await;
    let c = client();
    let jar = login(&c, &a).await;

    redis.stop();
    // Traffic during the outage opens A's breaker.
    for _ in 0..20 {
        assert!(user_seen(&c, &a, &mut jar.clone()).await.is_some());
    }
    assert_eq!(
        a.gate.caches().stats().breaker,
        oidcgate::cache::BreakerState::Open
    );
    redis.restart().expect("redis restarts on the same port");
    eventually(Duration::from_secs(10), "A subscribed again", || async {
        a.gate.caches().stats().subscription_healthy
    })
    .await;
    eventually(Duration::from_secs(10), "B reaches Redis", || async {
        b.gate.caches().ping().await.is_ok()
    })
    .await;
    log_out(&c, &b, &jar).await;
    assert!(
        ended_soon(&c, &a, &jar).await,
        "logout on B not enforced on A after the outage: {:?}",
        a.gate.caches().stats()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_logout_is_enforced_from_memory_when_redis_reads_fail() {
    let redis = RedisServer::start().expect("redis-server (run `cargo xtask setup`)");
    // A may subscribe and write, but every read fails (NOPERM).
    assert_eq!(
        redis
            .command("ACL SETUSER reader-less on >pw ~* &* +@all -get -mget -pttl -exists")
            .unwrap(),
        "+OK"
    );
    let idp = TestIdp::start(IdpConfig::default()).await;
    let up = EchoUpstream::start().await;
    let a = replica_with_redis(
        &idp,
        &up,
        "",
        &format!(
            "  address: {}\n  username: reader-less\n  password: pw\n",
            redis.address()
        ),
    )
    .await;
    let b = replica(&idp, &up, &redis).await;
    let c = client();
    let jar = login(&c, &b).await;
    eventually(Duration::from_secs(10), "A subscribed", || async {
        a.gate.caches().stats().subscription_healthy
    })
    .await;
    assert!(
        user_seen(&c, &a, &mut jar.clone()).await.is_some(),
        "an unanswerable check does not end a session (outage policy open)"
    );
    log_out(&c, &b, &jar).await;
    assert!(
        ended_soon(&c, &a, &jar).await,
        "the logout pushed to A is not enforced: {:?}",
        a.gate.caches().stats()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_sentinel_failover_a_logout_on_one_replica_ends_the_server_side_session_on_the_other()
 {
    let mut set = testkit::redis::RedisSentinel::start().expect("redis sentinel");
    let idp = TestIdp::start(IdpConfig::default()).await;
    let up = EchoUpstream::start().await;
    let block = format!(
        "  mode: sentinel\n  address: {}\n  sentinelMaster: {}\n{SLOW_RECOVERY}",
        set.sentinel_address(),
        testkit::redis::RedisSentinel::MASTER_NAME
    );
    let a = replica_with_redis(&idp, &up, "sessionStore: redis\n", &block).await;
    let b = replica_with_redis(&idp, &up, "sessionStore: redis\n", &block).await;
    for r in [&a, &b] {
        eventually(
            Duration::from_secs(10),
            "replica reaches the master",
            || async { r.gate.caches().ping().await.is_ok() },
        )
        .await;
    }
    let c = client();
    let jar = login(&c, &a).await;
    assert!(user_seen(&c, &b, &mut jar.clone()).await.is_some());

    // `fail_over` waits until the replica holds every write, the session
    // included.
    tokio::task::block_in_place(|| set.fail_over()).expect("sentinel fail-over");
    // Bounds well under the 30 s breaker and health-check periods: only a
    // prompt re-resolution of the master meets them.
    eventually(
        Duration::from_secs(10),
        "B follows the new master",
        || async { b.gate.caches().ping().await.is_ok() },
    )
    .await;
    assert!(
        user_seen(&c, &b, &mut jar.clone()).await.is_some(),
        "no session lost in the fail-over"
    );
    log_out(&c, &b, &jar).await;
    eventually(
        Duration::from_secs(10),
        "logout on B enforced on A after the fail-over",
        || async { user_seen(&c, &a, &mut jar.clone()).await.is_none() },
    )
    .await;
    eventually(
        Duration::from_secs(10),
        "A's subscription on the new master",
        || async { a.gate.caches().stats().subscription_healthy },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_outage_policy_closed_an_unanswerable_logout_check_is_a_503() {
    let redis = RedisServer::start().expect("redis-server (run `cargo xtask setup`)");
    assert_eq!(
        redis
            .command("ACL SETUSER reader-less on >pw ~* &* +@all -get -mget -pttl -exists")
            .unwrap(),
        "+OK"
    );
    let idp = TestIdp::start(IdpConfig::default()).await;
    let up = EchoUpstream::start().await;
    let a = replica_with_redis(
        &idp,
        &up,
        "securityOutagePolicy: closed\n",
        &format!(
            "  address: {}\n  username: reader-less\n  password: pw\n",
            redis.address()
        ),
    )
    .await;
    let b = replica(&idp, &up, &redis).await;
    let c = client();
    let jar = login(&c, &b).await;
    let r = get(&c, &format!("{}/app", a.base), &mut jar.clone()).await;
    assert_eq!(r.status(), 503);
    assert!(
        user_seen(&c, &b, &mut jar.clone()).await.is_some(),
        "the replica that can read Redis serves the session"
    );
}

// ---- shared-cache values are authenticated --------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claims_entry_forged_in_redis_is_not_honoured() {
    use base64::Engine as _;
    let redis = RedisServer::start().expect("redis-server (run `cargo xtask setup`)");
    let idp = TestIdp::start(IdpConfig::default()).await;
    let up = EchoUpstream::start().await;
    let extra = "enableBearerAuth: true\naudience: api://default\n";
    let a = replica_with(&idp, &up, &redis, extra).await;
    let c = client();
    let token = idp.client_credentials_token("api://default");
    let who = |base: String| {
        let c = c.clone();
        let token = token.clone();
        async move {
            let r = c
                .get(format!("{base}/api"))
                .bearer_auth(token)
                .header("accept", "application/json")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let body: serde_json::Value = r.json().await.unwrap();
            body["headers"]["x-forwarded-user"]
                .as_str()
                .map(str::to_owned)
        }
    };
    let real = who(a.base.clone()).await.expect("an identity");
    a.gate.caches().flush().await;
    let cli = |args: &[&str]| {
        let out = std::process::Command::new("redis-cli")
            .arg("-p")
            .arg(redis.port().to_string())
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let stored = cli(&["--scan", "--pattern", "oidcgate:claims:*"]);
    assert_eq!(stored.lines().count(), 1, "one cached claims entry");
    // Whoever can write to Redis writes the token's claims with another
    // subject, in the shape the gate stores.
    let payload = token.split('.').nth(1).unwrap();
    let mut claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["sub"] = "mallory".into();
    let forged = serde_json::json!({"typ": "at+jwt", "claims": claims}).to_string();
    assert_eq!(cli(&["SET", &stored, &forged, "PX", "600000"]), "OK");
    let forged_jwt = serde_json::json!({"typ": "JWT", "claims": claims}).to_string();

    // A replica that has not seen the token reads the entry from Redis.
    let b = replica_with(&idp, &up, &redis, extra).await;
    assert_eq!(who(b.base.clone()).await.as_deref(), Some(real.as_str()));
    assert_eq!(cli(&["SET", &stored, &forged_jwt, "PX", "600000"]), "OK");
    let b2 = replica_with(&idp, &up, &redis, extra).await;
    assert_eq!(who(b2.base.clone()).await.as_deref(), Some(real.as_str()));
    assert!(
        b.gate.caches().stats().integrity_failures + b2.gate.caches().stats().integrity_failures
            >= 2,
        "forged values counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn front_channel_logout_writes_only_for_issued_sessions_and_is_throttled() {
    let redis = RedisServer::start().expect("redis-server (run `cargo xtask setup`)");
    let idp = TestIdp::start(IdpConfig::default()).await;
    let up = EchoUpstream::start().await;
    let a = replica_with(&idp, &up, &redis, CHANNELS).await;
    let c = client();
    let url = format!("{}/oauth2/frontchannel-logout", a.base);
    let marks = || {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &redis.port().to_string(), "--scan", "--pattern"])
            .arg("oidcgate:sessioninvalidation:*")
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    // Made-up provider session ids: the same page, nothing written.
    for i in 0..20 {
        let r = c
            .get(format!("{url}?sid=made-up-{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(marks(), 0, "a flood of unknown sids wrote logout marks");
    // One source cannot go on for ever.
    let mut throttled = false;
    for i in 0..40 {
        let r = c.get(format!("{url}?sid=more-{i}")).send().await.unwrap();
        if r.status() == 429 {
            assert!(r.headers().contains_key("retry-after"));
            throttled = true;
            break;
        }
    }
    assert!(
        throttled,
        "front-channel requests from one address not throttled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn front_channel_logout_requires_iss_when_the_provider_sends_it() {
    let redis = RedisServer::start().expect("redis-server (run `cargo xtask setup`)");
    let idp = TestIdp::start(IdpConfig {
        frontchannel_logout_session: true,
        ..IdpConfig::default()
    })
    .await;
    let up = EchoUpstream::start().await;
    let a = replica_with(&idp, &up, &redis, CHANNELS).await;
    let c = client();
    let jar = login(&c, &a).await;
    let sid = provider_sid(&jar);
    let url = format!("{}/oauth2/frontchannel-logout", a.base);
    let enc = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
    let no_iss = c
        .get(format!("{url}?sid={}", enc(&sid)))
        .send()
        .await
        .unwrap();
    assert_eq!(no_iss.status(), 400);
    assert!(user_seen(&c, &a, &mut jar.clone()).await.is_some());
    let ok = c
        .get(format!(
            "{url}?iss={}&sid={}",
            enc(&idp.issuer()),
            enc(&sid)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(user_seen(&c, &a, &mut jar.clone()).await.is_none());
}

/// What one request of the load loop got.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// 200 with the session's own user upstream.
    Own,
    /// 5xx: the store or the shared caches could not answer (allowed while
    /// the master moves, see the outage policy in docs/security.md).
    Unavailable(u16),
    /// Anything else: a login redirect, a 401, or another user's identity.
    Wrong(u16, Option<String>),
}

/// Requests `/app` with `jar`, expecting `user` upstream.
async fn seen_as(c: &reqwest::Client, base: &str, user: &str, jar: &Jar) -> Seen {
    let resp = get(c, &format!("{base}/app"), &mut jar.clone()).await;
    let status = resp.status().as_u16();
    if status >= 500 {
        return Seen::Unavailable(status);
    }
    let seen = if status == 200 {
        let body: serde_json::Value = resp.json().await.unwrap();
        body["headers"]["x-forwarded-user"]
            .as_str()
            .map(str::to_owned)
    } else {
        None
    };
    if status == 200 && seen.as_deref() == Some(user) {
        Seen::Own
    } else {
        Seen::Wrong(status, seen)
    }
}

/// Most requests one load loop sends (it normally stops long before).
const LOAD_BOUND: usize = 20_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_failover_over_tls_during_traffic_loses_no_server_side_session() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use testkit::redis::{
        RedisSentinel, SENTINEL_PASSWORD, SENTINEL_USER, TLS_CLIENT_PASSWORD, TLS_CLIENT_USER,
    };
    const USERS: usize = 20;

    let certs = testkit::tls::TestCertificates::make().expect("openssl");
    let mut set =
        tokio::task::block_in_place(|| RedisSentinel::start_tls(&certs)).expect("redis sentinel");
    let idp = TestIdp::start(IdpConfig::default()).await;
    let up = EchoUpstream::start().await;
    let block = format!(
        "  mode: sentinel\n  addresses: [{}]\n  sentinelMaster: {}\n\
         \x20 username: {TLS_CLIENT_USER}\n  password: {TLS_CLIENT_PASSWORD}\n\
         \x20 sentinelUsername: {SENTINEL_USER}\n  sentinelPassword: {SENTINEL_PASSWORD}\n\
         \x20 enableTLS: true\n  tlsCACert: {}\n  tlsCert: {}\n  tlsKey: {}\n{SLOW_RECOVERY}",
        set.sentinel_addresses().join(", "),
        RedisSentinel::MASTER_NAME,
        certs.ca().display(),
        certs.client_cert().display(),
        certs.client_key().display(),
    );
    let a = replica_with_redis(&idp, &up, "sessionStore: redis\n", &block).await;
    let b = replica_with_redis(&idp, &up, "sessionStore: redis\n", &block).await;
    for r in [&a, &b] {
        eventually(
            Duration::from_secs(10),
            "replica reaches the master over TLS",
            || async { r.gate.caches().ping().await.is_ok() },
        )
        .await;
    }
    let c = client();
    let mut users = Vec::new();
    for i in 0..USERS {
        let email = format!("user{i}@example.com");
        idp.set_user(testkit::TestUser::new(&format!("sub-{i}"), &email));
        let on = if i % 2 == 0 { &a } else { &b };
        users.push((email, login(&c, on).await));
    }
    for (user, jar) in &users {
        for r in [&a, &b] {
            assert_eq!(seen_as(&c, &r.base, user, jar).await, Seen::Own);
        }
    }
    // Every session is on the replica before the master goes: read on the
    // replica itself (a WAIT on a fresh connection would wait for nothing).
    let pattern = "oidcgate:session:*";
    let on_master = tokio::task::block_in_place(|| set.master_keys(pattern));
    assert_eq!(on_master.len(), USERS, "one stored session per user");
    eventually(Duration::from_secs(10), "sessions replicated", || async {
        let on_replica = tokio::task::block_in_place(|| set.replica_keys(pattern));
        on_master.iter().all(|k| on_replica.contains(k))
    })
    .await;

    // Authenticated traffic on both replicas while the master is killed and
    // the replica promoted.
    let users = Arc::new(users);
    let stop = Arc::new(AtomicBool::new(false));
    let load = [a.base.clone(), b.base.clone()].map(|base| {
        let (users, stop, c) = (users.clone(), stop.clone(), c.clone());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            for n in 0..LOAD_BOUND {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let (user, jar) = &users[n % users.len()];
                seen.push((
                    tokio::time::Instant::now(),
                    seen_as(&c, &base, user, jar).await,
                ));
            }
            seen
        })
    });
    let kill = tokio::time::Instant::now();
    let new_master =
        tokio::task::block_in_place(|| set.kill_master_and_promote()).expect("sentinel fail-over");
    assert_eq!(set.master_port(), Some(new_master));
    let promoted = tokio::time::Instant::now();
    // Bounds well under the 30 s breaker and health-check periods: only a
    // prompt re-resolution of the master meets them.
    for r in [&a, &b] {
        eventually(
            Duration::from_secs(15),
            "replica follows the new master over TLS",
            || async { r.gate.caches().ping().await.is_ok() },
        )
        .await;
    }
    eventually(
        Duration::from_secs(15),
        "every session works on both replicas after the fail-over",
        || async {
            for (user, jar) in users.iter() {
                for r in [&a, &b] {
                    if seen_as(&c, &r.base, user, jar).await != Seen::Own {
                        return false;
                    }
                }
            }
            true
        },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let mut during = 0;
    let mut unavailable = 0;
    for task in load {
        for (at, seen) in task.await.unwrap() {
            assert!(
                !matches!(seen, Seen::Wrong(..)),
                "during the fail-over a request got {seen:?}"
            );
            if at >= kill && at <= promoted {
                during += 1;
            }
            if matches!(seen, Seen::Unavailable(_)) {
                unavailable += 1;
            }
        }
    }
    assert!(during > 0, "no request was sent while the master moved");
    eprintln!("{during} requests while the master moved, {unavailable} answered 5xx");

    // A logout after the fail-over is enforced on the other replica.
    let (user, jar) = &users[0];
    log_out(&c, &b, jar).await;
    let last = std::sync::Mutex::new(None);
    let ended = testkit::wait::eventually(Duration::from_secs(10), || async {
        let seen = seen_as(&c, &a.base, user, jar).await;
        let ended = seen == Seen::Wrong(302, None);
        *last.lock().unwrap() = Some(seen);
        ended
    })
    .await;
    assert!(
        ended,
        "logout on B not enforced on A after the fail-over: last {:?}, A {:?}, B {:?}",
        last.lock().unwrap(),
        a.gate.caches().stats(),
        b.gate.caches().stats()
    );
    let (user, jar) = &users[1];
    assert_eq!(seen_as(&c, &a.base, user, jar).await, Seen::Own);
}
