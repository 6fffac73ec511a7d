//! The browser login, end to end, through every door.

use http::{Method, StatusCode};
use serde_json::json;
use testkit::TestUser;

use crate::support::*;

/// Asserts the full identity header set of the default user.
fn assert_full_identity(resp: &Resp, door: Door) {
    let id = resp.identity(door);
    assert_eq!(
        id.get("x-forwarded-user").map(String::as_str),
        Some(USER_EMAIL),
        "{id:?}"
    );
    assert_eq!(
        id.get("x-auth-request-user").map(String::as_str),
        Some(USER_EMAIL)
    );
    assert_eq!(
        id.get("x-auth-request-email").map(String::as_str),
        Some(USER_EMAIL)
    );
    assert_eq!(id.get("x-user-groups").map(String::as_str), Some("staff"));
    assert_eq!(id.get("x-user-roles").map(String::as_str), Some("reader"));
}

async fn login_through(door: Door) {
    let h = Harness::start(door, "").await;
    let mut b = h.browser();
    let path = "/app/page?x=1&y=two";
    let trace = b.login(&h, path).await;
    assert_eq!(
        trace.landed.status,
        door.allowed_status(),
        "{:?}",
        trace.landed
    );
    assert_full_identity(&trace.landed, door);
    // No fixation: starting a login deletes any session the browser carries.
    let cleared = trace
        .start_cookies
        .iter()
        .find(|c| cookie_name(c) == SESSION_COOKIE)
        .expect("login start clears the session cookie");
    assert!(is_deletion(cleared), "{cleared}");
    // The provider's answer carries `iss` (RFC 9207) back to the gate.
    assert_eq!(query_map(&trace.callback).get("iss"), Some(&h.idp.issuer()));
    assert_eq!(
        trace.callback_resp.header("cache-control"),
        Some("no-store")
    );
    let expected_first = if door == Door::AuthRequest {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::FOUND
    };
    assert_eq!(trace.first.status, expected_first);
    assert_eq!(trace.authorize.host_str(), Some("127.0.0.1"));
    if door == Door::Proxy {
        let echo = trace.landed.json();
        assert_eq!(echo["path"], "/app/page");
        assert_eq!(echo["query"], "x=1&y=two");
        // The finished login's loop counter is dropped on the first allowed request.
        let cleared = trace
            .landed
            .set_cookie(LOGIN_COOKIE)
            .expect("login cookie cleared");
        assert!(is_deletion(&cleared));
    }
    let counters = h.idp.counters();
    assert_eq!(counters.authorize, 1);
    assert_eq!(counters.code_grants, 1);
    assert_eq!(counters.failed_grants, 0);

    // The session is reused: another protected URL passes without the provider.
    let again = b.get_app("/other").await;
    assert_eq!(again.status, door.allowed_status());
    assert_full_identity(&again, door);
    assert_eq!(h.idp.counters().authorize, 1);
}

#[tokio::test]
async fn login_reverse_proxy() {
    login_through(Door::Proxy).await;
}

#[tokio::test]
async fn login_forward_auth() {
    login_through(Door::ForwardAuth).await;
}

#[tokio::test]
async fn login_auth_request() {
    login_through(Door::AuthRequest).await;
}

#[tokio::test]
async fn force_https_makes_cookies_secure_and_redirect_uri_https() {
    for door in Door::ALL {
        // An explicit prefix keeps the harness's cookie names (the default
        // one becomes `__Host-_oidcgate_`, see hardening.rs).
        let h = Harness::start(door, "forceHTTPS: true\ncookiePrefix: _oidcgate_").await;
        let mut b = h.browser();
        let redirect_uri = h.redirect_uri().replacen("http://", "https://", 1);
        // login_with_redirect_uri asserts Secure on the login and session cookies.
        let trace = b
            .login_with_redirect_uri(&h, "/secure", &redirect_uri)
            .await;
        assert_eq!(trace.landed.status, door.allowed_status(), "{door:?}");
    }
}

#[tokio::test]
async fn forwarded_https_from_trusted_proxy_makes_cookies_secure() {
    for door in [Door::ForwardAuth, Door::AuthRequest] {
        let h = Harness::start(door, "").await;
        let mut b = h.browser();
        b.use_https();
        let trace = b
            .login_with_redirect_uri(&h, "/x", &format!("https://{APP_HOST}/oauth2/callback"))
            .await;
        assert_eq!(trace.landed.status, door.allowed_status(), "{door:?}");
    }
}

#[tokio::test]
async fn user_identifier_claim_sub() {
    for door in Door::ALL {
        let h = Harness::start(door, "userIdentifierClaim: sub").await;
        let mut b = h.browser();
        let trace = b.login(&h, "/").await;
        let id = trace.landed.identity(door);
        assert_eq!(
            id.get("x-forwarded-user").map(String::as_str),
            Some(USER_SUB),
            "{door:?}"
        );
        assert_eq!(
            id.get("x-auth-request-email").map(String::as_str),
            Some(USER_EMAIL)
        );
    }
}

#[tokio::test]
async fn identifier_falls_back_to_sub_when_claim_missing() {
    for door in Door::ALL {
        let h = Harness::start(door, "").await;
        let mut user = TestUser::new("no-mail-user", "unused@example.com");
        user.email = None;
        user.email_verified = None;
        h.idp.set_user(user);
        let mut b = h.browser();
        let trace = b.login(&h, "/").await;
        assert_eq!(trace.landed.status, door.allowed_status());
        let id = trace.landed.identity(door);
        assert_eq!(
            id.get("x-forwarded-user").map(String::as_str),
            Some("no-mail-user"),
            "{door:?}"
        );
        assert_ne!(
            id.get("x-auth-request-email").map(String::as_str),
            Some("unused@example.com")
        );
    }
}

#[tokio::test]
async fn allowed_users_refuses_others_at_the_address_they_asked_for() {
    for door in Door::ALL {
        let h = Harness::start(door, "allowedUsers: [someone.else@example.com]").await;
        let mut b = h.browser();
        let first = b.get_app("/private?x=1").await;
        let start = match b.next_hop(&first) {
            Some(u) if door == Door::AuthRequest => b.get(&u).await,
            _ => first,
        };
        let hops = b.navigate(&start.location().unwrap()).await;
        let last = hops.last().unwrap();
        assert_eq!(last.status, StatusCode::FORBIDDEN, "{door:?}: {last:?}");
        // The address bar shows the page asked for, not the callback and
        // its used code.
        assert_eq!(last.url.path(), "/private", "{door:?}: {}", last.url);
        assert_eq!(last.url.query(), Some("x=1"));
        assert!(
            last.body.contains(USER_EMAIL),
            "{door:?}: names the account"
        );
        assert!(
            hops.iter().all(|r| r.set_cookie(SESSION_COOKIE).is_none()),
            "no session for a refused user"
        );
        assert!(!b.jar.contains_key(SESSION_COOKIE));
        // Once the login is over, the provider is not asked again for the
        // same address: the answer is the same refusal.
        let again = b.get_app("/private?x=1").await;
        assert_eq!(again.status, StatusCode::FORBIDDEN, "{door:?}: {again:?}");
        assert_eq!(h.idp.counters().authorize, 1);
    }
}

#[tokio::test]
async fn logged_in_but_not_allowed_is_403_in_every_door() {
    for door in Door::ALL {
        let h = Harness::start(door, "").await;
        let b = h.logged_in_browser().await;
        let strict = h
            .second_gate("allowedUsers: [someone.else@example.com]")
            .await;
        let mut b2 = b.via(&strict);
        let before = h.upstream.request_count();
        let resp = b2.get_app("/private").await;
        assert_eq!(resp.status, StatusCode::FORBIDDEN, "{door:?}: {resp:?}");
        assert!(resp.location().is_none());
        assert_eq!(
            h.upstream.request_count(),
            before,
            "upstream reached by a refused user"
        );
        // The same session passes the permissive gate.
        let mut b1 = b.via(&h.gate);
        assert_eq!(b1.get_app("/private").await.status, door.allowed_status());
    }
}

#[tokio::test]
async fn allowed_user_domains() {
    for door in Door::ALL {
        let h = Harness::start(door, "allowedUserDomains: [example.com]").await;
        let b = h.logged_in_browser().await;
        let other = h.second_gate("allowedUserDomains: [example.org]").await;
        let resp = b.via(&other).get_app("/").await;
        assert_eq!(resp.status, StatusCode::FORBIDDEN, "{door:?}");
        // A look-alike domain is not the allowed one.
        h.idp
            .set_user(TestUser::new("u2", "eve@example.com.evil.org"));
        let mut eve = h.browser();
        let first = eve.get_app("/").await;
        let start = match eve.next_hop(&first) {
            Some(u) if door == Door::AuthRequest => eve.get(&u).await,
            _ => first,
        };
        let hops = eve.navigate(&start.location().unwrap()).await;
        assert_eq!(
            hops.last().unwrap().status,
            StatusCode::FORBIDDEN,
            "{door:?}"
        );
    }
}

#[tokio::test]
async fn minimal_headers_sends_only_forwarded_user() {
    for door in Door::ALL {
        let h = Harness::start(door, "minimalHeaders: true").await;
        let mut b = h.browser();
        let trace = b.login(&h, "/").await;
        let id = trace.landed.identity(door);
        assert_eq!(
            id.get("x-forwarded-user").map(String::as_str),
            Some(USER_EMAIL),
            "{door:?}"
        );
        for name in SENT_IDENTITY_HEADERS
            .iter()
            .filter(|n| **n != "x-forwarded-user")
        {
            let v = id.get(*name).map(String::as_str).unwrap_or("");
            assert_eq!(
                v, "",
                "{door:?}: {name} must not carry identity with minimalHeaders"
            );
        }
    }
}

#[tokio::test]
async fn oauth2_start_returns_to_rd() {
    for door in Door::ALL {
        let h = Harness::start(door, "").await;
        let mut b = h.browser();
        let start = b.get_app("/oauth2/start?rd=%2Fx%3Fa%3D1").await;
        assert_eq!(start.status, StatusCode::FOUND, "{door:?}: {start:?}");
        let authorize = start.location().unwrap();
        check_authorize(&authorize, &h.idp, &h.redirect_uri());
        let hops = b.navigate(&authorize).await;
        let cb = hops
            .iter()
            .find(|r| r.url.path() == "/oauth2/callback")
            .expect("callback hop");
        assert_eq!(
            cb.raw_location(),
            Some(b.app_url("/x?a=1").as_str()),
            "{door:?}"
        );
        let last = hops.last().unwrap();
        assert_eq!(last.url.path(), "/x");
        assert_eq!(last.status, door.allowed_status(), "{door:?}: {last:?}");
    }
}

#[tokio::test]
async fn wrong_nonce_is_refused() {
    // Listed here as well as in the attack table: the override must not
    // leak into a later, clean login.
    let h = Harness::start(Door::Proxy, "").await;
    h.idp.set_id_token_overrides(json!({ "nonce": "wrong" }));
    let mut b = h.browser();
    let first = b.get_app("/").await;
    let hops = b.navigate(&first.location().unwrap()).await;
    assert_eq!(hops.last().unwrap().status, StatusCode::UNAUTHORIZED);
    h.idp.set_id_token_overrides(serde_json::Value::Null);
    let mut clean = h.browser();
    let trace = clean.login(&h, "/").await;
    assert_eq!(trace.landed.status, StatusCode::OK);
}

/// A browser whose requests come from `ip` through the trusted local hop.
fn browser_from(h: &Harness, gate: &GateServer, ip: &str) -> Browser {
    let mut b = h.browser().via(gate);
    b.extra_headers = vec![("x-forwarded-for".into(), ip.into())];
    b
}

#[tokio::test]
async fn new_logins_are_limited_per_source_address() {
    let h = Harness::start(Door::Proxy, "").await;
    let clock = oidcgate::clock::ManualClock::starting_now();
    let yaml = gate_yaml(
        &h.idp,
        Some(&h.upstream.url()),
        "trustedProxies: [127.0.0.1/32]\nperSourceLoginRateLimit: 2",
    );
    let gate = GateServer::start_with_clock(&yaml, clock.clone()).await;

    // A whole login is two events (start and callback): the next start is
    // over the limit, with Retry-After (60 s / 2 per event).
    let mut b = browser_from(&h, &gate, "203.0.113.7");
    b.login_with_redirect_uri(&h, "/", &format!("{}/oauth2/callback", gate.url()))
        .await;
    let mut other = browser_from(&h, &gate, "203.0.113.7");
    let r = other.get_app("/app").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{r:?}");
    assert_eq!(r.header("retry-after"), Some("30"));
    let url = other.app_url("/oauth2/start?rd=/");
    let api = other
        .request(Method::GET, &url, &[("accept", "application/json")], None)
        .await;
    assert_eq!(api.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(api.json()["status_code"], 429, "JSON for API clients");
    // The logged-in browser is not affected: only new logins count.
    assert_eq!(b.get_app("/app").await.status, StatusCode::OK);
    // Other and internal sources have their own buckets or none.
    let r = browser_from(&h, &gate, "203.0.113.8").get_app("/app").await;
    assert_eq!(r.status, StatusCode::FOUND, "{r:?}");
    for _ in 0..5 {
        let r = browser_from(&h, &gate, "10.1.2.3").get_app("/app").await;
        assert_eq!(r.status, StatusCode::FOUND, "internal sources: {r:?}");
    }
    // The bucket refills: one event per 30 s.
    clock.advance(30);
    assert_eq!(other.get_app("/app").await.status, StatusCode::FOUND);
    assert_eq!(
        other.get_app("/app").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn rate_limit_covers_the_gates_own_endpoints() {
    let h = Harness::start(Door::Proxy, "").await;
    let clock = oidcgate::clock::ManualClock::starting_now();
    let yaml = gate_yaml(
        &h.idp,
        Some(&h.upstream.url()),
        "trustedProxies: [127.0.0.1/32]\nrateLimit: 10\nexcludedURLs: [/public]",
    );
    let gate = GateServer::start_with_clock(&yaml, clock.clone()).await;
    let mut b = browser_from(&h, &gate, "2001:db8:5::1");
    for n in 0..10 {
        let r = b.get_app("/oauth2/sign_out").await;
        assert!(r.status.is_success(), "logout {n}: {r:?}");
    }
    let r = b.get_app("/oauth2/sign_out").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{r:?}");
    assert_eq!(r.header("retry-after"), Some("1"));
    // The same /64 shares the bucket; application paths are not counted.
    let mut near = browser_from(&h, &gate, "2001:db8:5::2");
    let r = near.get_app("/oauth2/start?rd=/").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{r:?}");
    assert_eq!(near.get_app("/public/x").await.status, StatusCode::OK);
    clock.advance(1);
    assert!(b.get_app("/oauth2/sign_out").await.status.is_success());
}
