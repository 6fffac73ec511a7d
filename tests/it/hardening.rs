//! Regression tests of issue 12 (the security review): one test per class
//! of attack, named after its finding, each failing before its fix.

use http::{Method, StatusCode};
use testkit::TestUser;

use crate::support::*;

/// Headers a trusted forward-auth proxy sends for `uri` on the app host.
fn forwarded(uri: &str) -> Vec<(&'static str, String)> {
    vec![
        ("x-forwarded-method", "GET".into()),
        ("x-forwarded-proto", "http".into()),
        ("x-forwarded-host", APP_HOST.into()),
        ("x-forwarded-uri", uri.into()),
        ("accept", "application/json".into()),
    ]
}

async fn raw_owned(gate: &GateServer, path: &str, headers: &[(&str, String)]) -> Resp {
    let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    raw(gate, Method::GET, path, &h).await
}

// Finding 1: an e-mail identity needs `email_verified`.

#[tokio::test]
async fn issue12_f1_unverified_email_is_refused() {
    for verified in [Some(false), None] {
        let h = Harness::start(Door::Proxy, "").await;
        let mut user = TestUser::new("mallory-1", "victim@example.com");
        user.email_verified = verified;
        h.idp.set_user(user);
        let mut b = h.browser();
        let first = b.get_app("/").await;
        let idp = b.get(&first.location().unwrap()).await;
        let cb = b.get(&idp.location().unwrap()).await;
        assert_eq!(cb.status, StatusCode::FORBIDDEN, "{verified:?}: {cb:?}");
        assert!(cb.set_cookie(SESSION_COOKIE).is_none(), "{verified:?}");
    }
    // The opt-out, for providers that omit the claim.
    let h = Harness::start(Door::Proxy, "insecureAllowUnverifiedEmail: true").await;
    let mut user = TestUser::new("u-1", USER_EMAIL);
    user.email_verified = None;
    h.idp.set_user(user);
    let b = h.logged_in_browser().await;
    drop(b);
}

#[tokio::test]
async fn issue12_f1_identifier_is_sent_or_refused_never_dropped() {
    // A non-ASCII address is a valid header value (obs-text): it must reach
    // the upstream as it is, not vanish from X-Forwarded-User.
    let h = Harness::start(Door::Proxy, "").await;
    h.idp.set_user(TestUser::new("u-2", "jürgen@example.com"));
    let mut b = h.logged_in_browser().await;
    let resp = b.get_app("/who").await;
    assert_eq!(resp.status, StatusCode::OK);
    let up = resp.upstream_headers();
    assert_eq!(
        up.get("x-forwarded-user").map(String::as_str),
        Some("jürgen@example.com"),
        "{up:?}"
    );
}

// Finding 2: which request is judged.

#[tokio::test]
async fn issue12_f2_disagreeing_uri_headers_are_refused() {
    let h = Harness::start(Door::ForwardAuth, "excludedURLs: [/public]").await;
    // A client-added X-Original-URI (forward-auth) or X-Forwarded-Uri
    // (nginx passes client headers into the subrequest) must not choose
    // the path that is judged.
    for path in ["/", "/oauth2/auth"] {
        let mut hs = forwarded("/admin");
        hs.push(("x-original-uri", "/public/x".into()));
        let r = raw_owned(&h.gate, path, &hs).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {r:?}");
        let mut hs = forwarded("/public/x");
        hs.push(("x-original-uri", "/admin".into()));
        let r = raw_owned(&h.gate, path, &hs).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {r:?}");
        // Two lines of one header.
        let mut hs = forwarded("/admin");
        hs.push(("x-forwarded-uri", "/public/x".into()));
        let r = raw_owned(&h.gate, path, &hs).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {r:?}");
        // The same value twice is no disagreement.
        let mut hs = forwarded("/public/x");
        hs.push(("x-original-uri", "/public/x".into()));
        let r = raw_owned(&h.gate, path, &hs).await;
        assert!(r.status.is_success(), "{path}: {r:?}");
    }
    // A comma is part of a URI, not a list separator.
    let r = raw_owned(&h.gate, "/", &forwarded("/public,/../admin")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{r:?}");
}

// Finding 3: a page the gate authors is never a 2xx through a verdict door.

#[tokio::test]
async fn issue12_f3_gate_pages_are_never_an_allow() {
    let h = Harness::start(Door::ForwardAuth, "enableFrontchannelLogout: true").await;
    let uri = "/oauth2/frontchannel-logout?sid=x";
    for path in ["/", "/oauth2/auth"] {
        let mut hs = forwarded(uri);
        hs.retain(|(k, _)| *k != "accept");
        let r = raw_owned(&h.gate, path, &hs).await;
        assert!(!r.status.is_success(), "{path}: {r:?}");
        assert!(r.body.contains("Logged out"), "{path}: {r:?}");
    }
    // Served directly (the provider's iframe reaching the gate on a route
    // of its own), the page is an ordinary 200.
    let r = raw(&h.gate, Method::GET, uri, &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
}
