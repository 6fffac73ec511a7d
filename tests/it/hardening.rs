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

/// What a case sends, and whether it must be refused.
type Case = (&'static str, &'static [(&'static str, &'static str)], bool);

/// Disagreeing `X-Forwarded-Host` / `X-Forwarded-Proto` from a trusted hop
/// (two lines, or a list) are refused on every door: which element a proxy
/// would use is not knowable, so the gate does not pick one.
#[tokio::test]
async fn disagreeing_forwarded_host_or_proto_is_refused_on_every_door() {
    for (door, path) in [
        (Door::Proxy, "/page"),
        (Door::ForwardAuth, "/"),
        (Door::AuthRequest, "/oauth2/auth"),
    ] {
        let h = Harness::start(door, "").await;
        let base = || {
            let mut hs = forwarded("/page");
            hs.retain(|(k, _)| *k != "x-forwarded-host" && *k != "x-forwarded-proto");
            hs
        };
        let cases: [Case; 8] = [
            (
                "two hosts",
                &[
                    ("x-forwarded-host", APP_HOST),
                    ("x-forwarded-host", "evil.test"),
                ],
                true,
            ),
            (
                "a host list",
                &[("x-forwarded-host", "app.test, evil.test")],
                true,
            ),
            (
                "two protos",
                &[
                    ("x-forwarded-proto", "https"),
                    ("x-forwarded-proto", "http"),
                ],
                true,
            ),
            ("a proto list", &[("x-forwarded-proto", "http,https")], true),
            (
                "a non-text host",
                &[("x-forwarded-host", "app.test\u{e9}")],
                true,
            ),
            (
                "one host twice",
                &[
                    ("x-forwarded-host", APP_HOST),
                    ("x-forwarded-host", "APP.test"),
                ],
                false,
            ),
            (
                "a repeated proto",
                &[("x-forwarded-proto", "http, http")],
                false,
            ),
            (
                "an empty element",
                &[("x-forwarded-host", "app.test,")],
                false,
            ),
        ];
        for (what, extra, refused) in cases {
            let mut hs = base();
            hs.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
            let r = raw_owned(&h.gate, path, &hs).await;
            assert_eq!(
                r.status == StatusCode::BAD_REQUEST,
                refused,
                "{door:?} {what}: {r:?}"
            );
        }
    }
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
        assert!(r.body.contains("You are signed out"), "{path}: {r:?}");
    }
    // Served directly (the provider's iframe reaching the gate on a route
    // of its own), the page is an ordinary 200.
    let r = raw(&h.gate, Method::GET, uri, &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
}

// Finding 4: paths whose meaning differs between servers.

/// Sends `GET {target}` on a raw connection (no client-side URL clean-up)
/// and returns the status code.
async fn raw_target_status(gate: &GateServer, target: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(gate.addr()).await.unwrap();
    let req = format!(
        "GET {target} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
        gate.addr()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(REQUEST_TIMEOUT, s.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let head = String::from_utf8_lossy(&buf);
    head.split(' ').nth(1).unwrap().parse().unwrap()
}

const AMBIGUOUS_PATHS: &[&str] = &[
    "/public/..;/admin",
    "/public/%252e%252e/admin",
    "/public/%2e%2e/admin",
    "/public%2F..%2Fadmin",
    "/admin//../public/x",
    "/public/.../admin",
];

#[tokio::test]
async fn issue12_f4_ambiguous_paths_are_refused_by_every_door() {
    let proxy = Harness::start(Door::Proxy, "excludedURLs: [/public]").await;
    for p in AMBIGUOUS_PATHS {
        assert_eq!(raw_target_status(&proxy.gate, p).await, 400, "proxy {p}");
    }
    assert_eq!(raw_target_status(&proxy.gate, "/public/x").await, 200);
    let fa = Harness::start(Door::ForwardAuth, "excludedURLs: [/public]").await;
    for door_path in ["/", "/oauth2/auth"] {
        for p in AMBIGUOUS_PATHS {
            let r = raw_owned(&fa.gate, door_path, &forwarded(p)).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{door_path} {p}: {r:?}");
        }
        let r = raw_owned(&fa.gate, door_path, &forwarded("/public/x")).await;
        assert!(r.status.is_success(), "{door_path}: {r:?}");
    }
}

// Finding 7: a login state is single-use.

/// Drives a login up to the provider's redirect back to the callback.
async fn until_callback(b: &mut Browser) -> url::Url {
    let first = b.get_app("/").await;
    let start = match b.next_hop(&first) {
        Some(u) if !first.is_redirect() => b.get(&u).await,
        _ => first,
    };
    assert_eq!(start.status, StatusCode::FOUND, "{start:?}");
    let idp = b.get(&start.location().unwrap()).await;
    idp.location().unwrap()
}

fn with_code(cb: &url::Url, code: &str) -> url::Url {
    let state = query_map(cb)["state"].clone();
    let mut u = cb.clone();
    u.set_query(None);
    u.query_pairs_mut()
        .append_pair("code", code)
        .append_pair("state", &state);
    u
}

#[tokio::test]
async fn issue12_f7_login_state_is_single_use() {
    for door in Door::ALL {
        let h = Harness::start(door, "").await;
        let mut b = h.browser();
        let cb = until_callback(&mut b).await;
        let stolen = b.jar.clone();
        // A made-up code: the provider refuses it, and the state is spent.
        let forged = b.get(&with_code(&cb, "made-up-code")).await;
        assert!(forged.status.is_client_error(), "{door:?}: {forged:?}");
        assert!(forged.set_cookie(LOGIN_COOKIE).is_some(), "{door:?}");
        let real = b.get(&cb).await;
        assert_eq!(real.status, StatusCode::BAD_REQUEST, "{door:?}: {real:?}");
        // A copy of the login cookie replayed with more made-up codes never
        // reaches the token endpoint again.
        for i in 0..5 {
            let mut thief = h.browser();
            thief.jar = stolen.clone();
            let r = thief.get(&with_code(&cb, &format!("guess-{i}"))).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{door:?}: {r:?}");
        }
        assert_eq!(h.idp.counters().code_grants, 1, "{door:?}");
    }
}

// Finding 8: reverse-proxy headers.

#[tokio::test]
async fn issue12_f8_reverse_proxy_header_hygiene() {
    let h = Harness::start(Door::Proxy, "excludedURLs: [/public]").await;
    let mut b = h.logged_in_browser().await;
    // `Connection` naming the identity header must not delete it.
    b.extra_headers = vec![(
        "connection".into(),
        "x-forwarded-user, x-user-groups".into(),
    )];
    let r = b.get_app("/who").await;
    let up = r.upstream_headers();
    assert_eq!(
        up.get("x-forwarded-user").map(String::as_str),
        Some(USER_EMAIL),
        "{up:?}"
    );
    assert!(up.contains_key("x-user-groups") || up.contains_key("x-auth-request-user"));
    // Client spellings of identity and address headers never reach the
    // upstream as sent (a gate that does not trust the loopback client).
    let untrusting = h
        .second_gate("excludedURLs: [/public]\ntrustedProxies: [10.9.9.9/32]")
        .await;
    let mut c = b.via(&untrusting);
    c.extra_headers = [
        ("forwarded", "for=6.6.6.6;host=evil"),
        ("x-real-ip", "6.6.6.6"),
        ("true-client-ip", "6.6.6.6"),
        ("x-forwarded-for", "6.6.6.6"),
        ("remote-user", "admin"),
        ("x-remote-user", "admin"),
        ("x-webauth-user", "admin"),
        ("x-forwarded-access-token", "forged"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    for path in ["/who", "/public/x"] {
        let r = c.get_app(path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {r:?}");
        let up = r.upstream_headers();
        for name in [
            "true-client-ip",
            "remote-user",
            "x-remote-user",
            "x-webauth-user",
            "x-forwarded-access-token",
        ] {
            assert!(!up.contains_key(name), "{path}: {name} {up:?}");
        }
        for name in ["x-real-ip", "x-forwarded-for"] {
            assert_eq!(
                up.get(name).map(String::as_str),
                Some("127.0.0.1"),
                "{path} {name}"
            );
        }
        let fwd = up.get("forwarded").cloned().unwrap_or_default();
        assert!(
            fwd.starts_with("for=127.0.0.1;proto=http;host="),
            "{path}: {fwd}"
        );
    }
    // Through a trusted hop, X-Forwarded-For gains the hop's address.
    b.extra_headers = vec![("x-forwarded-for".into(), "203.0.113.9".into())];
    let up = b.get_app("/who").await.upstream_headers();
    assert_eq!(
        up.get("x-forwarded-for").map(String::as_str),
        Some("203.0.113.9, 127.0.0.1")
    );
    assert_eq!(up.get("x-real-ip").map(String::as_str), Some("203.0.113.9"));
    // Only WebSocket upgrades are forwarded: h2c on an excluded path is a
    // plain request.
    b.extra_headers = vec![
        ("connection".into(), "Upgrade, HTTP2-Settings".into()),
        ("upgrade".into(), "h2c".into()),
        ("http2-settings".into(), "AAMAAABkAAQAAP__".into()),
    ];
    let r = b.get_app("/public/x").await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let up = r.upstream_headers();
    assert!(
        !up.contains_key("upgrade") && !up.contains_key("http2-settings"),
        "{up:?}"
    );
}

// Finding 10: the smaller ones.

#[tokio::test]
async fn issue12_f10_one_bad_forwarded_for_entry_keeps_the_chain() {
    let h = Harness::start(Door::Proxy, "excludedURLs: [/public]").await;
    let mut b = h.browser();
    b.extra_headers = vec![("x-forwarded-for".into(), "unknown, 203.0.113.9".into())];
    let up = b.get_app("/public/x").await.upstream_headers();
    assert_eq!(
        up.get("x-real-ip").map(String::as_str),
        Some("203.0.113.9"),
        "{up:?}"
    );
}

#[tokio::test]
async fn issue12_f10_long_return_url_is_414_not_500() {
    for door in [Door::Proxy, Door::ForwardAuth] {
        let h = Harness::start(door, "").await;
        let mut b = h.browser();
        let long = format!("/x?{}", "a".repeat(3000));
        let r = b.get_app(&long).await;
        assert_eq!(r.status, StatusCode::URI_TOO_LONG, "{door:?}: {}", r.status);
        // Just under the cap still logs in.
        let ok = format!("/x?{}", "a".repeat(1500));
        let r = b.get_app(&ok).await;
        assert_eq!(r.status, StatusCode::FOUND, "{door:?}");
    }
}

#[tokio::test]
async fn issue12_f10_rd_to_another_port_or_scheme_is_refused() {
    let h = Harness::start(Door::ForwardAuth, "").await;
    let mut b = h.browser();
    for rd in [
        "http://app.test:9999/x",
        "https://app.test/x",
        "http://app.test:80@evil.com/",
    ] {
        let enc: String = url::form_urlencoded::byte_serialize(rd.as_bytes()).collect();
        let r = b.get_app(&format!("/oauth2/start?rd={enc}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{rd}: {r:?}");
    }
    let r = b
        .get_app("/oauth2/start?rd=http%3A%2F%2Fapp.test%2Fok")
        .await;
    assert_eq!(r.status, StatusCode::FOUND, "{r:?}");
}

// Finding 9: cookies.

#[tokio::test]
async fn issue12_f9_session_cookies_stay_at_the_gate_by_default() {
    let h = Harness::start(Door::Proxy, "").await;
    let mut b = h.browser();
    b.jar.insert("app_pref".into(), "1".into());
    let trace = b.login(&h, "/who").await;
    // The first proxied answer clears the login cookie: it must not be
    // stored by a shared cache.
    assert!(!trace.landed.set_cookies().is_empty());
    let cc = trace
        .landed
        .header("cache-control")
        .unwrap_or_default()
        .to_owned();
    assert!(cc.contains("private") || cc.contains("no-store"), "{cc:?}");
    assert!(!cc.contains("public"), "{cc:?}");
    let up = b.get_app("/who").await.upstream_headers();
    let cookie = up.get("cookie").cloned().unwrap_or_default();
    assert!(!cookie.contains(GATE_COOKIE_PREFIX), "{cookie}");
}

#[tokio::test]
async fn issue12_f9_https_without_cookie_domain_uses_host_prefix() {
    let h = Harness::start(Door::Proxy, "forceHTTPS: true").await;
    let r = raw(&h.gate, Method::GET, "/", &[("accept", "text/html")]).await;
    assert_eq!(r.status, StatusCode::FOUND);
    let login = r
        .set_cookie("__Host-_oidcgate_login")
        .expect("__Host- login cookie");
    let attrs = cookie_attrs(&login);
    assert!(attrs.contains(&"secure".to_owned()) && attrs.contains(&"path=/".to_owned()));
    assert!(!attrs.iter().any(|a| a.starts_with("domain")), "{login}");
}

#[tokio::test]
async fn issue12_f9_planted_login_cookie_does_not_shadow_the_browsers_own() {
    let h = Harness::start(Door::Proxy, "").await;
    let mut victim = h.browser();
    let cb = until_callback(&mut victim).await;
    let mut planter = h.browser();
    let _ = until_callback(&mut planter).await;
    // A sibling subdomain's cookie comes first in the header.
    let cookie = format!(
        "{LOGIN_COOKIE}={}; {LOGIN_COOKIE}={}",
        planter.jar[LOGIN_COOKIE], victim.jar[LOGIN_COOKIE]
    );
    let pq = format!("{}?{}", cb.path(), cb.query().unwrap());
    let r = raw(
        &h.gate,
        Method::GET,
        &pq,
        &[("cookie", &cookie), ("accept", "text/html")],
    )
    .await;
    assert_eq!(r.status, StatusCode::FOUND, "{r:?}");
    assert!(r.set_cookie(SESSION_COOKIE).is_some());
}
