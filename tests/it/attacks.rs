//! Negative cases: each attack gets its exact status, and none of them
//! yields a session, an identity upstream, or a redirect off-site.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{Method, StatusCode};
use serde_json::json;
use testkit::KeyChoice;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use url::Url;

use crate::support::*;

/// Drives a login up to the provider's redirect back to the callback,
/// without visiting it. Returns the callback URL.
async fn until_callback(b: &mut Browser, door: Door, path: &str) -> Url {
    let first = b.get_app(path).await;
    let start = if door == Door::AuthRequest {
        let u = b.next_hop(&first).expect("X-Auth-Redirect");
        b.get(&u).await
    } else {
        first
    };
    assert_eq!(start.status, StatusCode::FOUND, "{start:?}");
    let idp = b.get(&start.location().unwrap()).await;
    assert_eq!(idp.status, StatusCode::FOUND, "{idp:?}");
    idp.location().unwrap()
}

/// Asserts that `b` holds no session and is not let through.
async fn assert_not_logged_in(b: &mut Browser, door: Door) {
    assert!(!b.jar.contains_key(SESSION_COOKIE), "{:?}", b.jar);
    let resp = b
        .request(
            Method::GET,
            &b.app_url("/private"),
            &[("accept", "application/json")],
            None,
        )
        .await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "{door:?}: {resp:?}");
}

fn with_query(url: &Url, pairs: &[(&str, &str)]) -> Url {
    let mut u = url.clone();
    u.set_query(None);
    {
        let mut q = u.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
    }
    u
}

#[tokio::test]
async fn callback_state_checks() {
    for door in Door::ALL {
        let h = Harness::start(door, "").await;
        let mut b = h.browser();
        let cb = until_callback(&mut b, door, "/").await;
        let q = query_map(&cb);
        let code = q["code"].clone();
        let state = q["state"].clone();

        let bad_state = b
            .get(&with_query(
                &cb,
                &[("code", &code), ("state", "forged-state-value")],
            ))
            .await;
        assert_eq!(
            bad_state.status,
            StatusCode::BAD_REQUEST,
            "{door:?} bad state"
        );
        let no_state = b.get(&with_query(&cb, &[("code", &code)])).await;
        assert_eq!(
            no_state.status,
            StatusCode::BAD_REQUEST,
            "{door:?} missing state"
        );

        // Right code and state, but from a browser without the login cookie
        // (login CSRF: an attacker's callback URL in the victim's browser).
        let mut victim = h.browser();
        let csrf = victim.get(&cb).await;
        assert_eq!(
            csrf.status,
            StatusCode::BAD_REQUEST,
            "{door:?} no login cookie"
        );
        assert!(csrf.set_cookie(SESSION_COOKIE).is_none());
        assert_not_logged_in(&mut victim, door).await;

        // None of that spent the code: the real browser still completes.
        assert_eq!(
            h.idp.counters().code_grants,
            0,
            "{door:?}: refused before the token endpoint"
        );
        let ok = b
            .get(&with_query(&cb, &[("code", &code), ("state", &state)]))
            .await;
        assert_eq!(ok.status, StatusCode::FOUND, "{door:?}: {ok:?}");
        assert!(ok.set_cookie(SESSION_COOKIE).is_some());
    }
}

#[tokio::test]
async fn replayed_code_is_refused() {
    for door in Door::ALL {
        let h = Harness::start(door, "").await;
        let mut b = h.browser();
        let cb = until_callback(&mut b, door, "/").await;
        let jar_before = b.jar.clone();
        let first = b.get(&cb).await;
        assert_eq!(first.status, StatusCode::FOUND);

        // Same URL, same browser: the state was consumed by the first use.
        let again = b.get(&cb).await;
        assert_eq!(again.status, StatusCode::BAD_REQUEST, "{door:?}: {again:?}");

        // Same URL with the login cookie captured before the first use: the
        // state was claimed by the first use, so the provider is not asked.
        let mut thief = h.browser();
        thief.jar = jar_before;
        let replay = thief.get(&cb).await;
        assert_eq!(
            replay.status,
            StatusCode::BAD_REQUEST,
            "{door:?}: {replay:?}"
        );
        assert!(replay.set_cookie(SESSION_COOKIE).is_none());
        let c = h.idp.counters();
        assert_eq!(c.code_grants, 1, "{door:?}");
        assert_eq!(
            c.failed_grants, 0,
            "{door:?}: the replay never reached the provider"
        );
        assert_not_logged_in(&mut thief, door).await;
    }
}

/// Seconds since the Unix epoch.
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

#[tokio::test]
async fn bad_id_tokens_are_refused_at_callback() {
    type Setup = fn(&testkit::TestIdp);
    let cases: &[(&str, Setup)] = &[
        ("wrong nonce", |idp| {
            idp.set_id_token_overrides(json!({ "nonce": "wrong" }));
        }),
        ("missing nonce", |idp| {
            idp.set_id_token_overrides(json!({ "nonce": null }));
        }),
        ("expired", |idp| {
            let t = now();
            idp.set_id_token_overrides(json!({ "iat": t - 7200, "exp": t - 3600 }));
        }),
        ("wrong audience", |idp| {
            idp.set_id_token_overrides(json!({ "aud": "someone-else" }));
        }),
        ("wrong issuer", |idp| {
            idp.set_id_token_overrides(json!({ "iss": "https://evil.example" }));
        }),
        ("unpublished key", |idp| {
            idp.set_id_token_key(KeyChoice::Unpublished)
        }),
        ("alg none", |idp| idp.set_id_token_key(KeyChoice::None)),
        ("HS256 with the public key as secret", |idp| {
            let der = idp.current_public_key_der();
            idp.set_id_token_key(KeyChoice::Hs256WithSecret(der));
        }),
    ];
    for door in Door::ALL {
        let h = Harness::start(door, "").await;
        for (name, setup) in cases {
            h.idp.set_id_token_overrides(serde_json::Value::Null);
            h.idp.set_id_token_key(KeyChoice::Current);
            setup(&h.idp);
            let mut b = h.browser();
            let cb = until_callback(&mut b, door, "/").await;
            let resp = b.get(&cb).await;
            assert_eq!(
                resp.status,
                StatusCode::UNAUTHORIZED,
                "{door:?} {name}: {resp:?}"
            );
            assert!(resp.location().is_none(), "{name}");
            assert!(
                resp.set_cookie(SESSION_COOKIE).is_none(),
                "{name}: no session"
            );
            assert_not_logged_in(&mut b, door).await;
        }
        // The same provider without tampering logs in fine.
        h.idp.set_id_token_overrides(serde_json::Value::Null);
        h.idp.set_id_token_key(KeyChoice::Current);
        let mut b = h.browser();
        assert_eq!(b.login(&h, "/").await.landed.status, door.allowed_status());
    }
}

#[tokio::test]
async fn tampered_session_cookie_is_no_session() {
    for door in Door::ALL {
        let h = Harness::start(door, "").await;
        let good = h.logged_in_browser().await;
        let value = good.jar[SESSION_COOKIE].clone();
        for at in [value.len() / 2, value.len() - 2, 3] {
            let mut bytes = value.clone().into_bytes();
            bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
            let mut b = good.via(&h.gate);
            b.jar
                .insert(SESSION_COOKIE.into(), String::from_utf8(bytes).unwrap());
            b.jar.remove(LOGIN_COOKIE);
            let nav = b.get_app("/private").await;
            let want = if door == Door::AuthRequest {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::FOUND
            };
            assert_eq!(nav.status, want, "{door:?} flip at {at}: {nav:?}");
            if door != Door::AuthRequest {
                check_authorize(&nav.location().unwrap(), &h.idp, &h.redirect_uri());
            }
            let xhr = b
                .request(
                    Method::GET,
                    &b.app_url("/api"),
                    &[("x-requested-with", "XMLHttpRequest")],
                    None,
                )
                .await;
            assert_eq!(xhr.status, StatusCode::UNAUTHORIZED, "{door:?}");
        }
    }
}

/// `rd` values that must never become a redirect off-site.
const EVIL_RD: &[&str] = &[
    "//evil.com",
    "/\\evil.com",
    "https://evil.com",
    "http://evil.com/",
    "/%09/evil.com",
    "/%2F%2Fevil.com",
    "/%5Cevil.com",
    "\\\\evil.com",
    "//evil.com/%2e%2e",
    "javascript:alert(1)",
    "/\t/evil.com",
    "https://evil.com@app.test/",
];

fn assert_not_offsite(resp: &Resp, what: &str) {
    if let Some(loc) = resp.location() {
        assert_ne!(loc.host_str(), Some("evil.com"), "{what}: {loc}");
        assert!(
            !resp.raw_location().unwrap().contains("evil.com"),
            "{what}: {loc}"
        );
    }
}

#[tokio::test]
async fn open_redirects_in_rd_are_refused() {
    for door in Door::ALL {
        let h = Harness::start(door, "").await;
        let mut b = h.browser();
        for rd in EVIL_RD {
            let encoded: String = url::form_urlencoded::byte_serialize(rd.as_bytes()).collect();
            let resp = b.get_app(&format!("/oauth2/start?rd={encoded}")).await;
            assert_eq!(
                resp.status,
                StatusCode::BAD_REQUEST,
                "{door:?} rd={rd:?}: {resp:?}"
            );
            assert!(resp.location().is_none(), "{rd}");
            assert!(
                resp.set_cookie(LOGIN_COOKIE).is_none(),
                "{rd}: no login started"
            );
        }
        // Raw (not form-encoded) query forms of the same ideas.
        for q in [
            "rd=//evil.com",
            "rd=/%09/evil.com",
            "rd=/%5Cevil.com",
            "rd=%2F%2Fevil.com",
        ] {
            let resp = b.get_app(&format!("/oauth2/start?{q}")).await;
            assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{door:?} {q}");
        }
        // Logout with an evil rd falls back to the configured target.
        for rd in EVIL_RD {
            let encoded: String = url::form_urlencoded::byte_serialize(rd.as_bytes()).collect();
            let resp = b.get_app(&format!("/oauth2/sign_out?rd={encoded}")).await;
            assert_eq!(resp.status, StatusCode::FOUND, "{door:?} logout rd={rd:?}");
            assert_not_offsite(&resp, rd);
        }
        assert_eq!(h.idp.counters().authorize, 0);
    }
}

#[tokio::test]
async fn return_path_after_callback_stays_on_site() {
    // Protected URLs whose return address could be mistaken for another
    // host if used verbatim.
    // (`/%2F%2Fevil.com` is refused outright: encoded separators are
    // ambiguous paths, see `traversal_out_of_excluded_prefix_needs_login`.)
    let paths = ["//evil.com/x", "/.//evil.com", "///evil.com?a=b"];
    for door in [Door::Proxy, Door::ForwardAuth] {
        let h = Harness::start(door, "").await;
        for path in paths {
            let mut b = h.browser();
            let first = match door {
                Door::ForwardAuth => {
                    forward_auth_raw(&h.gate, "GET", path, &[("accept", "text/html")]).await
                }
                _ => raw_tcp(
                    &h.gate,
                    &format!("GET {path} HTTP/1.1"),
                    &[("accept", "text/html")],
                )
                .await
                .into_resp(&b.app_url("/")),
            };
            b.absorb(&first);
            assert_eq!(
                first.status,
                StatusCode::FOUND,
                "{door:?} {path}: {first:?}"
            );
            let idp = b.get(&first.location().unwrap()).await;
            let cb = b.get(&idp.location().unwrap()).await;
            assert_eq!(cb.status, StatusCode::FOUND, "{door:?} {path}: {cb:?}");
            let raw_loc = cb.raw_location().unwrap();
            let loc = cb.location().unwrap();
            assert_eq!(
                loc.origin(),
                b.app_url("/").origin(),
                "{door:?} {path}: {raw_loc}"
            );
            assert!(
                raw_loc.starts_with(&format!("{}/", h.app_origin()))
                    && !loc.path().starts_with("//"),
                "{door:?} {path}: return address {raw_loc:?}"
            );
        }
        // A backslash in the target is refused outright.
        let b = h.browser();
        let resp = match door {
            Door::ForwardAuth => {
                forward_auth_raw(&h.gate, "GET", "/%5Cevil.com", &[("accept", "text/html")]).await
            }
            _ => raw_tcp(
                &h.gate,
                "GET /%5Cevil.com HTTP/1.1",
                &[("accept", "text/html")],
            )
            .await
            .into_resp(&b.app_url("/")),
        };
        assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{door:?}");
    }
}

#[tokio::test]
async fn client_identity_headers_never_reach_upstream() {
    let spoofed: &[(&str, &str)] = &[
        ("x-forwarded-user", "mallory"),
        ("X-Auth-Request-User", "mallory"),
        ("x-auth-request-email", "mallory@evil.com"),
        ("X-User-Groups", "admins"),
        ("x-user-roles", "admin"),
        ("x-forwarded-email", "mallory@evil.com"),
        ("x-forwarded-groups", "admins"),
        ("x-auth-request-access-token", "forged"),
    ];
    for door in Door::ALL {
        let h = Harness::start(door, "").await;
        let mut b = h.logged_in_browser().await;
        let url = b.app_url("/private");
        let mut headers = spoofed.to_vec();
        headers.push(("accept", "text/html"));
        let resp = b.request(Method::GET, &url, &headers, None).await;
        assert_eq!(resp.status, door.allowed_status(), "{door:?}: {resp:?}");
        let id = resp.identity(door);
        assert_eq!(
            id.get("x-forwarded-user").map(String::as_str),
            Some(USER_EMAIL),
            "{door:?}"
        );
        assert_eq!(id.get("x-user-groups").map(String::as_str), Some("staff"));
        for (k, v) in &id {
            assert!(
                !v.contains("mallory") && !v.contains("admin") && v != "forged",
                "{door:?}: {k}: {v} came from the client"
            );
        }
        if door == Door::Proxy {
            for name in [
                "x-forwarded-email",
                "x-forwarded-groups",
                "x-auth-request-access-token",
            ] {
                assert!(!id.contains_key(name), "{name} reached the upstream");
            }
        }
        // Not logged in: the spoofed identity gets nobody in either.
        let mut anon = h.browser();
        let mut headers = spoofed.to_vec();
        headers.push(("accept", "application/json"));
        let resp = anon.request(Method::GET, &url, &headers, None).await;
        assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "{door:?}");
    }
}

#[tokio::test]
async fn underscore_identity_headers_are_refused() {
    for door in Door::ALL {
        let h = Harness::start(door, "excludedURLs: [/public]").await;
        let mut b = h.logged_in_browser().await;
        let before = h.upstream.request_count();
        for name in [
            "X_Forwarded_User",
            "x_auth_request_email",
            "X-Forwarded_User",
        ] {
            for path in ["/private", "/public/x"] {
                let resp = b
                    .request(
                        Method::GET,
                        &b.app_url(path),
                        &[(name, "mallory"), ("accept", "text/html")],
                        None,
                    )
                    .await;
                assert_eq!(
                    resp.status,
                    StatusCode::BAD_REQUEST,
                    "{door:?} {name} {path}"
                );
            }
        }
        assert_eq!(
            h.upstream.request_count(),
            before,
            "{door:?}: refused requests went upstream"
        );
    }
}

#[tokio::test]
async fn forwarded_headers_from_untrusted_peers_are_ignored() {
    let untrusted = "trustedProxies: [10.0.0.0/8]";
    // Reverse proxy: redirect URI, cookies and upstream headers follow the
    // real request, not the client's X-Forwarded-*.
    let h = Harness::start(Door::Proxy, untrusted).await;
    let mut b = h.browser();
    b.extra_headers = vec![
        ("x-forwarded-host".into(), "evil.example".into()),
        ("x-forwarded-proto".into(), "https".into()),
        ("x-forwarded-for".into(), "6.6.6.6".into()),
    ];
    let trace = b.login(&h, "/").await;
    assert_eq!(trace.landed.status, StatusCode::OK);
    assert!(
        h.redirect_uri()
            .starts_with(&format!("http://{}", h.gate.addr()))
    );
    let up = trace.landed.upstream_headers();
    assert_eq!(up["x-forwarded-host"], h.gate.addr().to_string());
    assert_eq!(up["x-forwarded-proto"], "http");
    assert_eq!(up["x-forwarded-for"], "127.0.0.1");

    // Forward-auth: X-Forwarded-Uri/-Host/-Proto are all ignored, the
    // request itself (GET / on the gate's Host) is judged.
    let h = Harness::start(Door::ForwardAuth, untrusted).await;
    let resp = raw(
        &h.gate,
        Method::GET,
        "/",
        &[
            ("x-forwarded-host", "evil.example"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-uri", "/deep?x=1"),
            ("accept", "text/html"),
        ],
    )
    .await;
    assert_eq!(resp.status, StatusCode::FOUND);
    let q = query_map(&resp.location().unwrap());
    assert_eq!(
        q["redirect_uri"],
        format!("http://{}/oauth2/callback", h.gate.addr()),
        "the redirect URI must use the Host header"
    );
    let login = resp.set_cookie(LOGIN_COOKIE).unwrap();
    assert_cookie_flags(&login, false);
}

#[tokio::test]
async fn traversal_out_of_excluded_prefix_needs_login() {
    // Plain dot-segments are resolved and judged; encoded ones mean
    // different things to different servers and are refused (issue 12).
    let targets = [
        ("/public/../private", StatusCode::FOUND),
        ("/public/%2e%2e/private", StatusCode::BAD_REQUEST),
        ("/public/%2E%2E/private", StatusCode::BAD_REQUEST),
        ("/public%2F..%2Fprivate", StatusCode::BAD_REQUEST),
        ("/public/./../private", StatusCode::FOUND),
    ];
    for door in [Door::Proxy, Door::ForwardAuth] {
        let h = Harness::start(door, "excludedURLs: [/public]").await;
        let b = h.browser();
        for (t, want) in targets {
            let resp = match door {
                Door::ForwardAuth => {
                    forward_auth_raw(&h.gate, "GET", t, &[("accept", "text/html")]).await
                }
                _ => raw_tcp(
                    &h.gate,
                    &format!("GET {t} HTTP/1.1"),
                    &[("accept", "text/html")],
                )
                .await
                .into_resp(&b.app_url("/")),
            };
            assert_eq!(resp.status, want, "{door:?} {t}: {resp:?}");
            if want == StatusCode::FOUND {
                check_authorize(&resp.location().unwrap(), &h.idp, &h.redirect_uri());
            }
        }
        assert_eq!(h.upstream.request_count(), 0, "{door:?}: upstream reached");
    }
}

#[tokio::test]
async fn fragment_in_target_is_not_excluded() {
    let h = Harness::start(Door::ForwardAuth, "excludedURLs: [/public]").await;
    for target in ["/public#/../private", "/public#/%2e%2e/private"] {
        let resp = forward_auth_raw(&h.gate, "GET", target, &[("accept", "text/html")]).await;
        // Either judged as the private path it may become (login), or
        // refused as a malformed target; never waved through as /public.
        assert!(
            matches!(resp.status, StatusCode::FOUND | StatusCode::BAD_REQUEST),
            "{target}: {resp:?}"
        );
    }
}

#[tokio::test]
async fn fragment_never_lets_a_private_path_through_the_proxy() {
    // The proxy forwards exactly the path it judged: whatever a fragment
    // in the request line does, the upstream never serves /private.
    let h = Harness::start(Door::Proxy, "excludedURLs: [/public]").await;
    let b = h.browser();
    let resp = raw_tcp(
        &h.gate,
        "GET /public#/../private HTTP/1.1",
        &[("accept", "text/html")],
    )
    .await
    .into_resp(&b.app_url("/"));
    match resp.status {
        StatusCode::OK => assert_eq!(resp.json()["path"], "/public", "{resp:?}"),
        StatusCode::FOUND | StatusCode::BAD_REQUEST => {}
        other => panic!("unexpected {other}: {resp:?}"),
    }
}

#[tokio::test]
async fn callback_only_accepts_get() {
    for door in Door::ALL {
        let h = Harness::start(door, "").await;
        let mut b = h.browser();
        let cb = until_callback(&mut b, door, "/").await;
        for method in [Method::POST, Method::PUT] {
            let resp = b
                .request(
                    method.clone(),
                    &cb,
                    &[("accept", "text/html")],
                    Some(Vec::new()),
                )
                .await;
            assert_eq!(
                resp.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{door:?} {method}"
            );
            assert_eq!(resp.header("allow"), Some("GET"));
        }
        assert_eq!(
            h.idp.counters().code_grants,
            0,
            "{door:?}: code spent by a refused method"
        );
    }
}

/// One forward-auth request with a raw `X-Forwarded-Uri` (no URL parsing
/// on the way).
async fn forward_auth_raw(
    gate: &GateServer,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
) -> Resp {
    let mut h = headers.to_vec();
    h.extend([
        ("x-forwarded-method", method),
        ("x-forwarded-proto", "http"),
        ("x-forwarded-host", APP_HOST),
        ("x-forwarded-uri", uri),
    ]);
    raw(gate, Method::GET, "/", &h).await
}

/// A response read off a raw socket.
struct RawResp {
    status: StatusCode,
    headers: http::HeaderMap,
    body: String,
}

impl RawResp {
    fn into_resp(self, url: &Url) -> Resp {
        Resp {
            url: url.clone(),
            status: self.status,
            headers: self.headers,
            body: self.body,
        }
    }
}

/// Sends `request_line` verbatim over TCP (so no client normalises the
/// target) and reads the whole answer.
async fn raw_tcp(gate: &GateServer, request_line: &str, headers: &[(&str, &str)]) -> RawResp {
    let mut s = tokio::net::TcpStream::connect(gate.addr()).await.unwrap();
    let mut req = format!(
        "{request_line}\r\nHost: {}\r\nConnection: close\r\n",
        gate.addr()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(REQUEST_TIMEOUT, s.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let code: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut hm = http::HeaderMap::new();
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            hm.append(
                http::HeaderName::from_bytes(k.trim().as_bytes()).unwrap(),
                http::HeaderValue::from_str(v.trim()).unwrap(),
            );
        }
    }
    let body = if hm
        .get("transfer-encoding")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"chunked"))
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    RawResp {
        status: StatusCode::from_u16(code).unwrap(),
        headers: hm,
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}
