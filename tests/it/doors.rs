//! Door behaviour: non-navigation callers, auth_request contract, health,
//! logout, the login-loop guard, excluded URLs, streaming and WebSockets.

use futures_util::{SinkExt, StreamExt};
use http::{Method, StatusCode};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use testkit::{Endpoint, Fault};

use crate::support::*;

/// Callers that must get 401 rather than a login redirect, and whether they
/// get a JSON body.
const NON_NAVIGATION: &[(&[(&str, &str)], bool)] = &[
    (&[("x-requested-with", "XMLHttpRequest")], true),
    (&[("accept", "application/json")], true),
    (&[("sec-fetch-mode", "cors"), ("accept", "*/*")], true),
    (&[("accept", "image/png")], true),
];

#[tokio::test]
async fn non_navigation_without_session_gets_401_navigation_gets_302() {
    for door in [Door::Proxy, Door::ForwardAuth] {
        let h = Harness::start(door, "").await;
        let mut b = h.browser();
        let url = b.app_url("/api/data");
        for (headers, json) in NON_NAVIGATION {
            let resp = b.request(Method::GET, &url, headers, None).await;
            assert_eq!(
                resp.status,
                StatusCode::UNAUTHORIZED,
                "{door:?} {headers:?}: {resp:?}"
            );
            assert!(resp.location().is_none());
            assert_eq!(resp.header("cache-control"), Some("no-store"));
            if *json {
                let body = resp.json();
                assert_eq!(body["status_code"], 401, "{headers:?}");
                assert!(
                    resp.header("content-type")
                        .unwrap()
                        .starts_with("application/json"),
                    "{headers:?}"
                );
            }
            assert!(
                resp.set_cookie(LOGIN_COOKIE).is_none(),
                "no login started for {headers:?}"
            );
        }
        let nav = b
            .request(
                Method::GET,
                &url,
                &[("accept", "text/html"), ("sec-fetch-mode", "navigate")],
                None,
            )
            .await;
        assert_eq!(nav.status, StatusCode::FOUND, "{door:?}");
        check_authorize(&nav.location().unwrap(), &h.idp, &h.redirect_uri());
        assert_eq!(nav.header("cache-control"), Some("no-store"));
        assert_eq!(
            h.upstream.request_count(),
            0,
            "upstream reached without a session"
        );
    }
}

#[tokio::test]
async fn auth_request_contract() {
    let h = Harness::start(Door::AuthRequest, "").await;
    let mut b = h.browser();
    let url = b.app_url("/deep/path?q=1");
    let mut callers: Vec<&[(&str, &str)]> = NON_NAVIGATION.iter().map(|(h, _)| *h).collect();
    callers.push(&[("accept", "text/html"), ("sec-fetch-mode", "navigate")]);
    callers.push(&[]);
    for headers in callers {
        let resp = b.request(Method::GET, &url, headers, None).await;
        assert_eq!(
            resp.status,
            StatusCode::UNAUTHORIZED,
            "{headers:?}: {resp:?}"
        );
        assert!(resp.raw_location().is_none(), "never a redirect");
        let redirect = resp.header("x-auth-redirect").unwrap();
        assert!(redirect.starts_with("/oauth2/start?rd="), "{redirect}");
        let start = b.app_url(redirect);
        assert_eq!(query_map(&start)["rd"], "/deep/path?q=1");
    }
    let trace = b.login(&h, "/deep/path?q=1").await;
    assert_eq!(trace.landed.status, StatusCode::ACCEPTED);
    // Bare nginx subrequest: nothing but X-Original-URI and the cookie.
    let cookie = b.gate_cookie_header().unwrap();
    let resp = raw(
        &h.gate,
        Method::GET,
        "/oauth2/auth",
        &[("x-original-uri", "/a"), ("cookie", &cookie)],
    )
    .await;
    assert_eq!(resp.status, StatusCode::ACCEPTED);
    assert_eq!(resp.header("x-forwarded-user"), Some(USER_EMAIL));
}

#[tokio::test]
async fn health_and_readiness() {
    let h = Harness::start(Door::ForwardAuth, "").await;
    let health = raw(&h.gate, Method::GET, "/healthz", &[]).await;
    assert_eq!(health.status, StatusCode::OK);
    let ready = raw(&h.gate, Method::GET, "/readyz", &[]).await;
    assert_eq!(ready.status, StatusCode::OK, "{ready:?}");
    // Health is answered by path only: a forwarded URI does not turn it into a check.
    let fwd = raw(
        &h.gate,
        Method::GET,
        "/healthz",
        &[
            ("x-forwarded-uri", "/private"),
            ("x-forwarded-host", APP_HOST),
        ],
    )
    .await;
    assert_eq!(fwd.status, StatusCode::OK);
    // And a forwarded /healthz is not a way around the gate.
    let sneaky = raw(
        &h.gate,
        Method::GET,
        "/",
        &[
            ("x-forwarded-uri", "/healthz"),
            ("x-forwarded-host", APP_HOST),
            ("accept", "application/json"),
        ],
    )
    .await;
    assert_eq!(sneaky.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn readiness_fails_when_provider_is_down() {
    let dead = testkit::free_port();
    let yaml = format!(
        "providerURL: http://127.0.0.1:{dead}\nclientID: c\nclientSecret: s\n\
         sessionEncryptionKey: {SESSION_KEY}\nlogLevel: error\n"
    );
    let gate = GateServer::start(&yaml).await;
    let health = raw(&gate, Method::GET, "/healthz", &[]).await;
    assert_eq!(health.status, StatusCode::OK);
    let ready = raw(&gate, Method::GET, "/readyz", &[]).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE, "{ready:?}");
    // A login cannot start either: 503, not a redirect to nowhere.
    let nav = raw(&gate, Method::GET, "/", &[("accept", "text/html")]).await;
    assert_eq!(nav.status, StatusCode::SERVICE_UNAVAILABLE, "{nav:?}");
}

#[tokio::test]
async fn logout_clears_cookies_and_ends_provider_session() {
    for door in Door::ALL {
        let h = Harness::start(door, "").await;
        let mut b = h.logged_in_browser().await;
        let stolen = b.jar.clone();
        let before: Vec<String> = b
            .jar
            .keys()
            .filter(|n| n.starts_with(GATE_COOKIE_PREFIX))
            .cloned()
            .collect();
        assert!(before.contains(&SESSION_COOKIE.to_owned()));
        let resp = b.get_app("/oauth2/callback/logout").await;
        assert_eq!(resp.status, StatusCode::FOUND, "{door:?}: {resp:?}");
        for name in &before {
            let line = resp
                .set_cookie(name)
                .unwrap_or_else(|| panic!("{door:?}: {name} not cleared"));
            assert!(is_deletion(&line), "{line}");
        }
        let login = resp
            .set_cookie(LOGIN_COOKIE)
            .expect("login cookie cleared too");
        assert!(is_deletion(&login));
        let loc = resp.location().unwrap();
        assert_eq!(
            format!("{}://{}{}", loc.scheme(), loc.authority(), loc.path()),
            format!("{}/session/end", h.idp.issuer())
        );
        let q = query_map(&loc);
        let hint = q.get("id_token_hint").expect("id_token_hint");
        assert_eq!(hint.split('.').count(), 3, "a JWS");
        assert_eq!(
            q.get("post_logout_redirect_uri").map(String::as_str),
            Some(format!("{}/", h.app_origin()).as_str())
        );
        // The provider ends its session and sends the browser back.
        let end = b.get(&loc).await;
        assert_eq!(end.status, StatusCode::FOUND);
        assert_eq!(h.idp.counters().end_session_calls, 1);
        // What is left of the jar is not logged in.
        assert!(
            b.jar.keys().all(|n| !n.starts_with(GATE_COOKIE_PREFIX)),
            "{:?}",
            b.jar
        );
        let after = b.get_app("/private").await;
        let expected = if door == Door::AuthRequest {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::FOUND
        };
        assert_eq!(after.status, expected, "{door:?}: {after:?}");
        // A copy of the session cookie taken before the logout is dead too.
        let mut thief = b.via(&h.gate);
        thief.jar = stolen;
        let replay = thief.get_app("/private").await;
        assert_eq!(
            replay.status, expected,
            "{door:?}: stolen cookie after logout: {replay:?}"
        );
    }
}

/// The `(token_type_hint, what the provider issued the token as)` of every
/// revocation the provider received, sorted.
fn revoked_kinds(idp: &testkit::TestIdp) -> Vec<(String, Option<&'static str>)> {
    let mut kinds: Vec<_> = idp
        .revocations()
        .into_iter()
        .map(|r| (r.hint.unwrap_or_default(), r.issued_as))
        .collect();
    kinds.sort();
    kinds
}

#[tokio::test]
async fn logout_revokes_the_session_tokens_at_the_provider() {
    let both = [
        ("access_token".to_owned(), Some("access_token")),
        ("refresh_token".to_owned(), Some("refresh_token")),
    ];
    // The discovered revocation_endpoint.
    let h = Harness::start(Door::ForwardAuth, "").await;
    let mut b = h.logged_in_browser().await;
    let resp = b.get_app("/oauth2/callback/logout").await;
    assert_eq!(resp.status, StatusCode::FOUND, "{resp:?}");
    assert_eq!(revoked_kinds(&h.idp), both);
    assert!(h.idp.revocations().iter().all(|r| r.query.is_none()));

    // revocationURL takes precedence over discovery.
    let configured = format!("revocationURL: {}/revoke?via=config\n", h.idp.issuer());
    let gate = h.second_gate(&configured).await;
    let mut b = h.browser().via(&gate);
    b.login(&h, "/").await;
    let resp = b.get_app("/oauth2/callback/logout").await;
    assert_eq!(resp.status, StatusCode::FOUND, "{resp:?}");
    let via: Vec<Option<String>> = h.idp.revocations()[2..]
        .iter()
        .map(|r| r.query.clone())
        .collect();
    assert_eq!(
        via,
        [Some("via=config".to_owned()), Some("via=config".to_owned())]
    );
}

#[tokio::test]
async fn a_failing_or_slow_revocation_never_blocks_the_logout() {
    for fault in [
        Fault::Status(500),
        Fault::Down,
        // Longer than the gate waits, shorter than the test client does.
        Fault::Delay(oidcgate::gate::DEFAULT_LOGOUT_REVOCATION_TIMEOUT * 3),
    ] {
        let h = Harness::start(Door::Proxy, "").await;
        let mut b = h.logged_in_browser().await;
        h.idp.inject(Endpoint::Revocation, fault, 2);
        let resp = b.get_app("/oauth2/callback/logout").await;
        assert_eq!(resp.status, StatusCode::FOUND, "{fault:?}: {resp:?}");
        assert!(
            resp.set_cookie(SESSION_COOKIE)
                .is_some_and(|l| is_deletion(&l)),
            "{fault:?}: the session is cleared"
        );
        assert!(
            resp.location()
                .is_some_and(|l| l.path().ends_with("/session/end")),
            "{fault:?}: {resp:?}"
        );
    }
}

#[tokio::test]
async fn require_token_introspection_judges_session_access_tokens() {
    let h = Harness::start(Door::Proxy, "requireTokenIntrospection: true").await;
    let mut b = h.logged_in_browser().await;
    let seen = h.idp.counters().introspections;
    assert_eq!(
        seen, 1,
        "the landing request introspected the session's token"
    );
    let again = b.get_app("/private").await;
    assert_eq!(again.status, StatusCode::OK, "{again:?}");
    assert_eq!(
        h.idp.counters().introspections,
        seen,
        "the answer is reused"
    );

    // Each fresh gate below has its own (empty) introspection cache.
    let down = h.second_gate("requireTokenIntrospection: true").await;
    h.idp.inject(Endpoint::Introspection, Fault::Status(500), 1);
    let r = b.via(&down).get_app("/private").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{r:?}");

    h.idp.revoke_access_tokens();
    let revoked = h.second_gate("requireTokenIntrospection: true").await;
    let mut via = b.via(&revoked);
    let nav = via.get_app("/private").await;
    assert_eq!(nav.status, StatusCode::FOUND, "{nav:?}");
    assert!(
        nav.raw_location()
            .is_some_and(|l| l.starts_with(&format!("{}/authorize", h.idp.issuer()))),
        "an inactive token sends the browser to log in again: {nav:?}"
    );
    let xhr = via
        .request(
            Method::GET,
            &via.app_url("/private"),
            &[("accept", "application/json")],
            None,
        )
        .await;
    assert_eq!(xhr.status, StatusCode::UNAUTHORIZED, "{xhr:?}");

    // Without the key nothing is introspected.
    let before = h.idp.counters().introspections;
    let plain = h.second_gate("").await;
    let r = b.via(&plain).get_app("/private").await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(h.idp.counters().introspections, before);
}

#[tokio::test]
async fn login_loop_ends_in_error_page() {
    let h = Harness::start(Door::Proxy, "").await;
    let mut b = h.browser();
    let max = oidcgate::gate::DEFAULT_MAX_LOGIN_ATTEMPTS as usize;
    for round in 1..=max {
        let start = b.get_app("/").await;
        assert_eq!(
            start.status,
            StatusCode::FOUND,
            "login start {round}: {start:?}"
        );
        let idp = b.get(&start.location().unwrap()).await;
        let cb = b.get(&idp.location().unwrap()).await;
        assert_eq!(cb.status, StatusCode::FOUND, "callback {round}: {cb:?}");
        assert_eq!(cb.raw_location(), Some(b.app_url("/").as_str()));
        assert!(cb.set_cookie(SESSION_COOKIE).is_some());
        // This browser never keeps the session cookie.
        b.drop_session_cookies();
        assert!(b.jar.contains_key(LOGIN_COOKIE));
    }
    let stuck = b.get_app("/").await;
    assert_eq!(stuck.status, StatusCode::LOOP_DETECTED, "{stuck:?}");
    assert!(stuck.location().is_none(), "no further redirect");
    assert!(stuck.body.contains("too many redirects"), "{}", stuck.body);
    assert_eq!(h.idp.counters().authorize as usize, max);
    // The error page resets the counter, so the user can try again.
    let retry = b.get_app("/").await;
    assert_eq!(retry.status, StatusCode::FOUND, "{retry:?}");
}

#[tokio::test]
async fn excluded_urls_pass_without_session_with_identity_stripped() {
    for door in Door::ALL {
        let h = Harness::start(door, "excludedURLs: [/public]").await;
        let mut b = h.browser();
        b.extra_headers
            .push(("x-forwarded-user".into(), "mallory".into()));
        b.extra_headers
            .push(("x-auth-request-email".into(), "mallory@evil.com".into()));
        for path in ["/public", "/public/x", "/public/x/y?z=1"] {
            let resp = b.get_app(path).await;
            assert_eq!(
                resp.status,
                door.allowed_status(),
                "{door:?} {path}: {resp:?}"
            );
            let id = resp.identity(door);
            match door {
                Door::Proxy => {
                    assert!(!id.contains_key("x-forwarded-user"), "{id:?}");
                    assert!(!id.contains_key("x-auth-request-email"), "{id:?}");
                }
                Door::ForwardAuth | Door::AuthRequest => {
                    for name in SENT_IDENTITY_HEADERS {
                        assert_eq!(
                            id.get(*name).map(String::as_str),
                            Some(""),
                            "{door:?} {path}: {name} must be present and empty"
                        );
                    }
                }
            }
            assert!(resp.set_cookie(LOGIN_COOKIE).is_none());
        }
        // Segment-bounded prefix: /publicity is protected.
        let resp = b.get_app("/publicity").await;
        assert_ne!(resp.status, door.allowed_status(), "{door:?}");
    }
}

#[tokio::test]
async fn reverse_proxy_streams_large_body() {
    let h = Harness::start(Door::Proxy, "").await;
    let mut b = h.logged_in_browser().await;
    let body: Vec<u8> = (0..1024 * 1024).map(|i| b'a' + (i % 26) as u8).collect();
    let url = b.app_url("/upload?k=v");
    let resp = b
        .request(
            Method::POST,
            &url,
            &[
                ("content-type", "application/octet-stream"),
                ("accept", "text/html"),
            ],
            Some(body.clone()),
        )
        .await;
    assert_eq!(
        resp.status,
        StatusCode::OK,
        "{}",
        &resp.body[..resp.body.len().min(300)]
    );
    let echo = resp.json();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/upload");
    let got = echo["body"].as_str().unwrap();
    assert_eq!(got.len(), body.len());
    assert!(got.as_bytes() == body.as_slice(), "body altered in transit");
    assert_eq!(echo["headers"]["x-forwarded-user"], USER_EMAIL);
}

#[tokio::test]
async fn reverse_proxy_websocket_round_trip() {
    let h = Harness::start(Door::Proxy, "").await;
    let b = h.logged_in_browser().await;
    let ws_url = format!("ws://{}/ws", h.gate.addr());

    // Without a session the upgrade is refused.
    let anonymous = ws_url.as_str().into_client_request().unwrap();
    assert!(tokio_tungstenite::connect_async(anonymous).await.is_err());
    assert_eq!(
        h.upstream.request_count(),
        1,
        "only the login's landing request"
    );

    let mut req = ws_url.as_str().into_client_request().unwrap();
    req.headers_mut()
        .insert("cookie", b.gate_cookie_header().unwrap().parse().unwrap());
    let (mut ws, resp) =
        tokio::time::timeout(REQUEST_TIMEOUT, tokio_tungstenite::connect_async(req))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    for msg in ["hello", "second message"] {
        ws.send(Message::text(msg)).await.unwrap();
        let back = tokio::time::timeout(REQUEST_TIMEOUT, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(back, Message::text(msg));
    }
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    let back = tokio::time::timeout(REQUEST_TIMEOUT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(back, Message::binary(vec![0u8, 1, 2, 255]));
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn request_during_startup_discovery_is_not_refused() {
    let idp = testkit::TestIdp::start(testkit::IdpConfig::default()).await;
    // Keep the gate's own start-up discovery in flight for a while.
    idp.inject(
        testkit::Endpoint::Discovery,
        testkit::Fault::Delay(std::time::Duration::from_millis(700)),
        1,
    );
    let yaml = gate_yaml(&idp, None, "");
    let cfg = oidcgate::config::Config::from_yaml(&yaml, &|_| None).unwrap();
    let gate = oidcgate::assemble(
        &cfg,
        oidcgate::cache::Caches::memory(),
        std::sync::Arc::new(oidcgate::clock::SystemClock),
    )
    .unwrap();
    let app = cfg.app.clone();
    let server =
        testkit::served::Served::start(|listener, stop| oidcgate::run(gate, app, listener, stop))
            .await;
    let addr = server.addr();
    // The server task starts its discovery before it accepts this request
    // (tasks run in spawn order on this single-threaded runtime); the
    // provider holds that discovery for 700 ms.
    let resp = client()
        .get(format!("http://{addr}/"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::FOUND,
        "first request during discovery"
    );
    drop(server);
}
