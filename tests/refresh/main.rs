//! Token refresh that survives stampedes, rotation and outages, tested
//! through the gate's HTTP doors against the in-process test provider.
//!
//! Every session here is due for refresh on its next request: the provider's
//! access tokens live [`harness::ACCESS_TTL`], less than the gate's grace
//! period. Waits are bounded polls; nothing asserts on elapsed time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::collections::BTreeSet;
use std::time::Duration;

use http::StatusCode;
use oidcgate::session::Session;
use testkit::{Endpoint, Fault, IdpConfig, TestUser};

use harness::{Door, Env, Jar, Kind, Resp, idp_config, is_login_redirect, now};

/// Requests in one stampede.
const STAMPEDE: usize = 50;
/// Latency of the provider's token endpoint in the concurrency tests, so
/// that concurrent requests overlap with the grant.
const SLOW_TOKEN_ENDPOINT: Duration = Duration::from_millis(200);
/// Upper bound of the poll waiting for the breaker to close.
const BREAKER_POLL_LIMIT: Duration = Duration::from_secs(15);

fn slow_idp() -> IdpConfig {
    IdpConfig {
        token_endpoint_delay: SLOW_TOKEN_ENDPOINT,
        ..idp_config()
    }
}

/// Requests alternate between navigations and scripts.
fn kind_of(i: usize) -> Kind {
    if i % 2 == 0 { Kind::Nav } else { Kind::Xhr }
}

/// `n` requests at once with the same cookies, alternating kinds.
async fn burst(env: &Env, jar: &Jar, n: usize) -> Vec<(Kind, Resp)> {
    let all = (0..n).map(|i| {
        let target = format!("/app/burst/{i}");
        async move { (kind_of(i), env.app(jar, kind_of(i), &target).await) }
    });
    futures_util::future::join_all(all).await
}

/// The identity the echo upstream (proxy door) or the forward-auth answer
/// carried for an allowed request.
fn forwarded_user(env: &Env, resp: &Resp) -> String {
    match env.door {
        Door::Proxy => {
            let v: serde_json::Value = serde_json::from_str(&resp.body).expect("echo JSON");
            v["headers"]["x-forwarded-user"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        }
        Door::ForwardAuth => resp
            .header("x-forwarded-user")
            .unwrap_or_default()
            .to_owned(),
    }
}

/// A due session whose access token has already expired.
fn expired(env: &Env, jar: &Jar) -> Jar {
    let mut s = env.session_in(jar);
    s.expires_at = now().saturating_sub(5);
    env.jar_with(&s)
}

fn assert_due(s: &Session) {
    assert!(
        s.expires_at <= now() + harness::GRACE_SECS,
        "the test needs a session due for refresh (expires_at {}, now {})",
        s.expires_at,
        now()
    );
}

fn assert_session_over(env: &Env, kind: Kind, r: &Resp) {
    match kind {
        Kind::Nav => assert!(
            is_login_redirect(env, r),
            "navigation must go to the login: {r:?}"
        ),
        Kind::Xhr => {
            assert_eq!(
                r.status,
                StatusCode::UNAUTHORIZED,
                "script must get 401: {r:?}"
            );
            assert!(
                r.header("location").is_none(),
                "no redirect for scripts: {r:?}"
            );
        }
    }
    assert!(
        r.clears_session(),
        "the session cookies must be cleared: {r:?}"
    );
}

async fn stampede_on_one_session(door: Door) {
    let env = Env::start(door, slow_idp(), "").await;
    let jar = env.login().await;
    let old = env.session_in(&jar);
    assert_due(&old);
    let before = env.idp.counters();

    let answers = burst(&env, &jar, STAMPEDE).await;

    let after = env.idp.counters();
    assert_eq!(
        after.refresh_grants - before.refresh_grants,
        1,
        "one grant for the stampede"
    );
    assert_eq!(
        after.failed_grants, before.failed_grants,
        "no refused grant"
    );
    assert_eq!(env.gate.gate.refresh_grants(), 1);
    let mut fresh: Option<Session> = None;
    for (i, (kind, r)) in answers.iter().enumerate() {
        assert_eq!(r.status, StatusCode::OK, "request {i} ({kind:?}): {r:?}");
        assert_eq!(forwarded_user(&env, r), old.identifier, "request {i}");
        let s = env
            .session_set_by(r)
            .unwrap_or_else(|| panic!("request {i} carries no readable session cookie: {r:?}"));
        match &fresh {
            None => fresh = Some(s),
            Some(f) => {
                assert_eq!(
                    s.access_token, f.access_token,
                    "request {i}: another access token"
                );
                assert_eq!(
                    s.refresh_token, f.refresh_token,
                    "request {i}: another refresh token"
                );
            }
        }
    }
    let fresh = fresh.expect("answers");
    assert_ne!(
        fresh.access_token, old.access_token,
        "the access token was renewed"
    );
    assert_ne!(
        fresh.refresh_token, old.refresh_token,
        "the provider rotated the refresh token"
    );
    assert_eq!(
        fresh.created_at, old.created_at,
        "the absolute lifetime counts from login"
    );
    assert_eq!(fresh.sid, old.sid);
    assert_eq!(fresh.subject, old.subject);
    assert!(fresh.expires_at >= old.expires_at);

    // A late request with the pre-refresh cookie gets the winner's tokens
    // instead of presenting the rotated refresh token again.
    for kind in [Kind::Xhr, Kind::Nav] {
        let late = env.app(&jar, kind, "/app/late").await;
        assert_eq!(late.status, StatusCode::OK, "late {kind:?}: {late:?}");
        let s = env
            .session_set_by(&late)
            .expect("late answer carries the session");
        assert_eq!(s.access_token, fresh.access_token);
        assert_eq!(s.refresh_token, fresh.refresh_token);
    }
    let end = env.idp.counters();
    assert_eq!(
        end.refresh_grants, after.refresh_grants,
        "no grant for late arrivals"
    );
    assert_eq!(
        end.failed_grants, before.failed_grants,
        "no invalid_grant for late arrivals"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stampede_on_one_due_session_makes_one_grant_reverse_proxy() {
    stampede_on_one_session(Door::Proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stampede_on_one_due_session_makes_one_grant_forward_auth() {
    stampede_on_one_session(Door::ForwardAuth).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distinct_due_sessions_refresh_in_parallel_without_cross_talk() {
    let env = Env::start(Door::Proxy, slow_idp(), "").await;
    // The provider logs in its current user at /authorize: one user after
    // the other there, then every callback (code exchange) at once.
    let mut pending = Vec::new();
    for i in 0..STAMPEDE {
        env.idp.set_user(TestUser::new(
            &format!("user-{i}"),
            &format!("user{i}@example.com"),
        ));
        pending.push(env.begin_login().await);
    }
    let jars =
        futures_util::future::join_all(pending.into_iter().map(|p| env.finish_login(p))).await;
    let mut sessions = Vec::new();
    for (i, jar) in jars.into_iter().enumerate() {
        let s = env.session_in(&jar);
        assert_eq!(s.subject, format!("user-{i}"));
        assert_due(&s);
        sessions.push((jar, s));
    }
    let before = env.idp.counters();

    let answers = futures_util::future::join_all(
        sessions
            .iter()
            .enumerate()
            .map(|(i, (jar, _))| env.app(jar, kind_of(i), "/app/mine")),
    )
    .await;

    let after = env.idp.counters();
    assert_eq!(
        after.refresh_grants - before.refresh_grants,
        STAMPEDE as u64,
        "one grant per session"
    );
    assert_eq!(after.failed_grants, before.failed_grants);
    let mut access_tokens = BTreeSet::new();
    for (i, ((_, old), r)) in sessions.iter().zip(&answers).enumerate() {
        assert_eq!(r.status, StatusCode::OK, "session {i}: {r:?}");
        assert_eq!(
            forwarded_user(&env, r),
            old.identifier,
            "session {i} reached the upstream as another user"
        );
        let s = env.session_set_by(r).expect("refreshed session");
        assert_eq!(
            s.subject, old.subject,
            "session {i} got another user's session"
        );
        assert_eq!(s.identifier, old.identifier);
        assert_eq!(s.sid, old.sid);
        assert_eq!(s.created_at, old.created_at);
        assert_ne!(s.refresh_token, old.refresh_token);
        assert!(
            access_tokens.insert(s.access_token.clone()),
            "session {i} shares an access token"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_grant_under_concurrency_ends_the_session_with_one_grant() {
    let env = Env::start(Door::Proxy, slow_idp(), "").await;
    let jar = env.login().await;
    assert_due(&env.session_in(&jar));
    env.idp.expire_refresh_tokens();
    let before = env.idp.counters();

    let answers = burst(&env, &jar, 20).await;

    let after = env.idp.counters();
    assert_eq!(
        after.refresh_grants - before.refresh_grants,
        1,
        "one grant for the burst"
    );
    for (kind, r) in &answers {
        assert_session_over(&env, *kind, r);
    }

    // Later requests with the refused cookie are sent to the login as well.
    for kind in [Kind::Xhr, Kind::Nav] {
        let late = env.app(&jar, kind, "/app/late").await;
        assert_session_over(&env, kind, &late);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_grant_in_forward_auth_sends_browsers_to_login() {
    let env = Env::start(Door::ForwardAuth, idp_config(), "").await;
    let jar = env.login().await;
    let rt = env.session_in(&jar).refresh_token.expect("refresh token");
    env.idp.revoke_refresh_token(&rt);
    let nav = env.app(&jar, Kind::Nav, "/app/page").await;
    assert_session_over(&env, Kind::Nav, &nav);
    let xhr = env.app(&jar, Kind::Xhr, "/app/api").await;
    assert_session_over(&env, Kind::Xhr, &xhr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_refresh_on_one_replica_ends_the_session_on_the_other() {
    let env = Env::start(Door::Proxy, idp_config(), "").await;
    let other = env.replica().await;
    let jar = env.login().await;
    let rt = env.session_in(&jar).refresh_token.expect("refresh token");
    env.idp.revoke_refresh_token(&rt);
    let before = env.idp.counters();

    let r = env.app(&jar, Kind::Xhr, "/app/page").await;
    assert_session_over(&env, Kind::Xhr, &r);
    // The other replica asks the provider itself (no result was shared)
    // and gets the same answer.
    for kind in [Kind::Xhr, Kind::Nav] {
        let r = env.app_at(&other, &jar, kind, "/app/page").await;
        assert_session_over(&env, kind, &r);
    }
    let after = env.idp.counters();
    let grants = after.refresh_grants - before.refresh_grants;
    assert!(grants >= 2, "both replicas asked the provider: {grants}");
    assert_eq!(
        after.failed_grants - before.failed_grants,
        grants,
        "every grant was refused"
    );
}

const BREAKER: &str = "refreshBreakerThreshold: 3\nrefreshBreakerOpenSeconds: 2";
/// A breaker that stays closed through one round of [`TRANSIENT`] faults, and
/// a gate that gives up on a silent provider after 1 s.
const BREAKER_SHORT_TIMEOUT: &str =
    "refreshBreakerThreshold: 5\nrefreshBreakerOpenSeconds: 2\nproviderTimeout: 1";
/// Transient token-endpoint faults: a server error, a dropped connection, a
/// body that is not JSON, and no answer at all.
const TRANSIENT: [Fault; 4] = [
    Fault::Status(500),
    Fault::Down,
    Fault::Malformed,
    Fault::Hang,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failure_with_a_valid_token_keeps_the_old_session() {
    let env = Env::start(Door::Proxy, idp_config(), BREAKER_SHORT_TIMEOUT).await;
    for fault in TRANSIENT {
        let jar = env.login().await;
        let before = env.idp.counters();
        env.idp.inject(Endpoint::Token, fault, 1);
        for kind in [Kind::Xhr, Kind::Nav] {
            let r = env.app(&jar, kind, "/app/page").await;
            assert_eq!(r.status, StatusCode::OK, "{fault:?} {kind:?}: {r:?}");
            assert!(r.session_chunks().is_empty(), "no new session: {r:?}");
            assert!(!r.clears_session(), "the session stays: {r:?}");
        }
        let after = env.idp.counters();
        assert_eq!(
            after.failed_grants - before.failed_grants,
            1,
            "{fault:?}: one attempt"
        );
        assert_eq!(
            after.refresh_grants, before.refresh_grants,
            "cooling down: no retry"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failure_with_an_expired_token_answers_503() {
    let env = Env::start(Door::Proxy, idp_config(), BREAKER_SHORT_TIMEOUT).await;
    for fault in TRANSIENT {
        let jar = expired(&env, &env.login().await);
        let before = env.idp.counters();
        env.idp.inject(Endpoint::Token, fault, 1);
        for kind in [Kind::Xhr, Kind::Nav] {
            let r = env.app(&jar, kind, "/app/page").await;
            assert_eq!(
                r.status,
                StatusCode::SERVICE_UNAVAILABLE,
                "{fault:?} {kind:?}: {r:?}"
            );
            assert!(r.header("retry-after").is_some(), "Retry-After: {r:?}");
            assert!(
                !r.clears_session(),
                "an outage does not end the session: {r:?}"
            );
        }
        let after = env.idp.counters();
        assert_eq!(
            after.failed_grants - before.failed_grants,
            1,
            "{fault:?}: one attempt"
        );
        assert_eq!(
            after.refresh_grants, before.refresh_grants,
            "cooling down: no retry"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_opens_after_the_threshold_and_recovers() {
    let env = Env::start(Door::Proxy, idp_config(), BREAKER).await;
    let mut jars = Vec::new();
    for _ in 0..5 {
        jars.push(env.login().await);
    }
    let late_expired = expired(&env, &jars[4]);
    let start = env.idp.counters();

    // Three sessions fail on a broken token endpoint: the breaker opens.
    env.idp.inject(Endpoint::Token, Fault::Status(500), 3);
    for jar in &jars[..3] {
        let r = env.app(jar, Kind::Xhr, "/app/page").await;
        assert_eq!(r.status, StatusCode::OK, "valid token passes: {r:?}");
    }
    let opened = env.idp.counters();
    assert_eq!(opened.failed_grants - start.failed_grants, 3);

    // While open, no grant reaches the provider.
    let r = env.app(&jars[3], Kind::Xhr, "/app/page").await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "valid token passes while open: {r:?}"
    );
    assert!(
        r.session_chunks().is_empty(),
        "not refreshed while open: {r:?}"
    );
    let r = env.app(&late_expired, Kind::Xhr, "/app/page").await;
    assert_eq!(
        r.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "expired token while open: {r:?}"
    );
    assert!(r.header("retry-after").is_some());
    assert_eq!(
        env.idp.counters(),
        opened,
        "the open breaker sent nothing to the provider"
    );

    // After the open period one probe goes through, succeeds, and closes it.
    let deadline = tokio::time::Instant::now() + BREAKER_POLL_LIMIT;
    loop {
        let r = env.app(&jars[3], Kind::Xhr, "/app/page").await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        if env.session_set_by(&r).is_some() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the breaker never closed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let probed = env.idp.counters();
    assert_eq!(
        probed.refresh_grants - opened.refresh_grants,
        1,
        "exactly one probe"
    );
    assert_eq!(probed.failed_grants, opened.failed_grants);

    // Closed: other sessions refresh again.
    let r = env.app(&late_expired, Kind::Xhr, "/app/page").await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert!(
        env.session_set_by(&r).is_some(),
        "refreshed after recovery: {r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_grant_never_opens_the_breaker() {
    // A breaker opened by refused grants would pause refreshes for 60 s.
    let env = Env::start(
        Door::Proxy,
        idp_config(),
        "refreshBreakerThreshold: 2\nrefreshBreakerOpenSeconds: 60",
    )
    .await;
    let mut jars = Vec::new();
    for _ in 0..5 {
        jars.push(env.login().await);
    }
    for jar in &jars[..2] {
        let rt = env.session_in(jar).refresh_token.expect("refresh token");
        env.idp.revoke_refresh_token(&rt);
    }
    env.idp
        .inject(Endpoint::Token, Fault::OAuthError("invalid_grant"), 2);
    let before = env.idp.counters();
    // Sessions 2 and 3 meet the injected refusals, 0 and 1 their revocation.
    for i in [2, 3, 0, 1] {
        let r = env.app(&jars[i], Kind::Xhr, "/app/page").await;
        assert_session_over(&env, Kind::Xhr, &r);
    }
    let refused = env.idp.counters();
    assert_eq!(
        refused.failed_grants - before.failed_grants,
        4,
        "four refused grants"
    );

    let r = env.app(&jars[4], Kind::Xhr, "/app/page").await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert!(
        env.session_set_by(&r).is_some(),
        "another user still refreshes: {r:?}"
    );
    assert_eq!(
        env.idp.counters().refresh_grants - refused.refresh_grants,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_token_age_limit() {
    let env = Env::start(Door::Proxy, idp_config(), "maxRefreshTokenAgeSeconds: 600").await;

    // Within the window: refreshed.
    let jar = env.login().await;
    let before = env.idp.counters();
    let r = env.app(&jar, Kind::Xhr, "/app/page").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        env.session_set_by(&r).is_some(),
        "refreshed within the window: {r:?}"
    );
    assert_eq!(env.idp.counters().refresh_grants - before.refresh_grants, 1);

    // Beyond the window: over at once, without asking the provider.
    let mut s = env.session_in(&env.login().await);
    s.refresh_token_issued_at = Some(now() - 3600);
    let old = env.jar_with(&s);
    let before = env.idp.counters();
    for kind in [Kind::Xhr, Kind::Nav] {
        let r = env.app(&old, kind, "/app/page").await;
        assert_session_over(&env, kind, &r);
    }
    let after = env.idp.counters();
    assert_eq!(
        after.refresh_grants, before.refresh_grants,
        "no grant for a too old token"
    );
    assert_eq!(after.failed_grants, before.failed_grants);

    // A legacy session without issue time gets one attempt, which succeeds
    // here and records the issue time of the new refresh token.
    let mut s = env.session_in(&env.login().await);
    s.refresh_token_issued_at = None;
    let legacy = env.jar_with(&s);
    let before = env.idp.counters();
    let r = env.app(&legacy, Kind::Xhr, "/app/page").await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let fresh = env.session_set_by(&r).expect("legacy session refreshed");
    let issued = fresh.refresh_token_issued_at.expect("issue time recorded");
    assert!(issued + 60 >= now(), "issue time is the refresh: {issued}");
    assert_eq!(env.idp.counters().refresh_grants - before.refresh_grants, 1);

    // A legacy session whose one attempt is refused is over.
    let mut s = env.session_in(&env.login().await);
    s.refresh_token_issued_at = None;
    env.idp
        .revoke_refresh_token(s.refresh_token.as_deref().expect("rt"));
    let legacy = env.jar_with(&s);
    let before = env.idp.counters();
    let r = env.app(&legacy, Kind::Xhr, "/app/page").await;
    assert_session_over(&env, Kind::Xhr, &r);
    assert_eq!(env.idp.counters().refresh_grants - before.refresh_grants, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_token_age_limit_zero_disables_it() {
    let env = Env::start(Door::Proxy, idp_config(), "maxRefreshTokenAgeSeconds: 0").await;
    let mut s = env.session_in(&env.login().await);
    s.refresh_token_issued_at = Some(now() - 30 * 86_400);
    let ancient = env.jar_with(&s);
    let before = env.idp.counters();
    let r = env.app(&ancient, Kind::Xhr, "/app/page").await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert!(env.session_set_by(&r).is_some(), "refreshed: {r:?}");
    assert_eq!(env.idp.counters().refresh_grants - before.refresh_grants, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_keeps_the_absolute_session_lifetime() {
    let env = Env::start(
        Door::Proxy,
        idp_config(),
        "sessionMaxAge: 3600\nsessionAbsoluteMaxAge: 3600",
    )
    .await;
    let mut s = env.session_in(&env.login().await);
    s.created_at = now() - 3500;
    let old = env.jar_with(&s);
    let r = env.app(&old, Kind::Xhr, "/app/page").await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let fresh = env.session_set_by(&r).expect("refreshed");
    assert_eq!(
        fresh.created_at, s.created_at,
        "created_at survives the refresh"
    );
    let max_age = session_max_age(&r);
    assert!(
        max_age <= 100,
        "the cookie lives only for the rest of the session: {max_age}"
    );
}

#[tokio::test]
async fn a_refresh_without_an_id_token_keeps_the_identity() {
    let idp = IdpConfig {
        id_token_on_refresh: false,
        ..idp_config()
    };
    let env = Env::start(Door::Proxy, idp, "").await;
    let jar = env.login().await;
    let before = env.session_in(&jar);
    let r = env.app(&jar, Kind::Xhr, "/app/page").await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let fresh = env.session_set_by(&r).expect("refreshed");
    assert_ne!(fresh.access_token, before.access_token, "new access token");
    assert_ne!(
        fresh.refresh_token, before.refresh_token,
        "rotated refresh token"
    );
    assert_eq!(fresh.identifier, before.identifier);
    assert_eq!(fresh.subject, before.subject);
    assert_eq!(fresh.id_token, before.id_token, "the last ID token is kept");
    assert!(fresh.expires_at > before.expires_at || fresh.expires_at >= now());
    assert_eq!(forwarded_user(&env, &r), before.identifier);
}

/// The `Max-Age` of the first session chunk a response sets.
fn session_max_age(resp: &Resp) -> u64 {
    resp.set_cookies()
        .iter()
        .find(|l| l.starts_with(harness::SESSION_COOKIE))
        .and_then(|l| {
            l.split(';')
                .find_map(|a| a.trim().strip_prefix("Max-Age="))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or_else(|| panic!("no session cookie set: {resp:?}"))
}

#[tokio::test]
async fn a_refresh_extends_the_session_up_to_the_absolute_limit() {
    // (config, Max-Age of the refreshed session's cookie)
    let cases = [
        ("sessionMaxAge: 3600", 3600),
        ("sessionMaxAge: 3600\nsessionAbsoluteMaxAge: 4000", 1000),
    ];
    for (extra, want) in cases {
        let env = Env::start(Door::Proxy, idp_config(), extra).await;
        let jar = env.login().await;
        // Logged in 3000 s ago: 600 s of the sliding lifetime are left.
        let mut old = env.session_in(&jar);
        old.created_at = now() - 3000;
        old.expires_at = now().saturating_sub(5);
        let jar = env.jar_with(&old);
        let before = now();
        let r = env.app(&jar, Kind::Xhr, "/app/slide").await;
        assert_eq!(r.status, StatusCode::OK, "{extra}: {r:?}");
        let fresh = env.session_set_by(&r).expect("refreshed session");
        assert_eq!(fresh.created_at, old.created_at, "the login time stays");
        assert!(
            fresh.renewed_at.is_some_and(|t| t >= before),
            "{extra}: {fresh:?}"
        );
        let max_age = session_max_age(&r);
        // The clock may tick between the login rewrite and the refresh.
        assert!(
            (want - 2..=want).contains(&max_age),
            "{extra}: Max-Age {max_age}, want {want}"
        );
    }
}

#[tokio::test]
async fn a_session_past_its_absolute_limit_logs_in_again_even_if_recently_refreshed() {
    for (extra, allowed) in [
        ("sessionMaxAge: 3600", true),
        ("sessionMaxAge: 3600\nsessionAbsoluteMaxAge: 4000", false),
    ] {
        let env = Env::start(Door::Proxy, idp_config(), extra).await;
        let jar = env.login().await;
        let mut s = env.session_in(&jar);
        s.created_at = now() - 4100;
        s.renewed_at = Some(now() - 100);
        let r = env.app(&env.jar_with(&s), Kind::Nav, "/app/old").await;
        if allowed {
            assert_eq!(r.status, StatusCode::OK, "{extra}: {r:?}");
        } else {
            assert!(is_login_redirect(&env, &r), "{extra}: {r:?}");
        }
    }
}
