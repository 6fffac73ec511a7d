//! Templated headers, token headers, security response headers and CORS
//! preflights through every door.

use http::{Method, StatusCode};

use crate::support::*;

const TEMPLATES: &str = "headers: [\
    {name: X-User-Email, value: '{{.Claims.email}}'}, \
    {name: Authorization, value: 'Bearer {{.AccessToken}}'}, \
    {name: X-Hosted-Domain, value: '{{.Claims.hd}}'}, \
    {name: X-Sub-Json, value: '{{toJson .Claims.sub}}'}]\n\
    passAccessToken: true\n";

#[tokio::test]
async fn templates_reach_the_upstream_in_every_door_and_client_copies_never_do() {
    for door in Door::ALL {
        let h = Harness::start(door, TEMPLATES).await;
        let mut b = h.logged_in_browser().await;
        let url = b.app_url("/app/page");
        let resp = b
            .request(
                Method::GET,
                &url,
                &[
                    ("accept", "text/html"),
                    ("x-user-email", "mallory@evil.test"),
                    ("x-hosted-domain", "evil.test"),
                    ("x-forwarded-access-token", "forged"),
                ],
                None,
            )
            .await;
        assert_eq!(resp.status, door.allowed_status(), "{door:?}: {resp:?}");
        let id = resp.identity(door);
        assert_eq!(
            id.get("x-user-email").map(String::as_str),
            Some(USER_EMAIL),
            "{door:?}"
        );
        assert_eq!(
            id.get("x-sub-json").map(String::as_str),
            Some(format!("\"{USER_SUB}\"").as_str()),
            "{door:?}"
        );
        let auth = &id["authorization"];
        let token = auth.strip_prefix("Bearer ").unwrap();
        assert_eq!(token.split('.').count(), 3, "{door:?}: a JWT access token");
        assert_eq!(id["x-forwarded-access-token"], token, "{door:?}");
        assert_eq!(id["x-auth-request-access-token"], token, "{door:?}");
        match door {
            // The upstream never sees the client's value of a header that
            // rendered empty.
            Door::Proxy => assert!(!id.contains_key("x-hosted-domain"), "{id:?}"),
            // The answer carries the name, empty, so the proxy overwrites it.
            _ => assert_eq!(id.get("x-hosted-domain").map(String::as_str), Some("")),
        }
    }
}

#[tokio::test]
async fn client_authorization_is_stripped_on_the_cookie_path_before_templates_run() {
    let cases = [
        // (config, what the upstream receives as Authorization)
        ("", None),
        ("stripAuthorizationHeader: false\n", Some("client")),
        (
            "headers: [{name: Authorization, value: 'Bearer {{.AccessToken}}'}]\n",
            Some("template"),
        ),
    ];
    for (extra, want) in cases {
        let h = Harness::start(Door::Proxy, extra).await;
        let mut b = h.logged_in_browser().await;
        let url = b.app_url("/app");
        let resp = b
            .request(
                Method::GET,
                &url,
                &[("accept", "text/html"), ("authorization", "Basic dTpw")],
                None,
            )
            .await;
        assert_eq!(resp.status, StatusCode::OK, "{extra}: {resp:?}");
        let up = resp.upstream_headers();
        let got = up.get("authorization").map(String::as_str);
        match want {
            None => assert_eq!(got, None, "{extra}"),
            Some("client") => assert_eq!(got, Some("Basic dTpw"), "{extra}"),
            Some(_) => {
                let token = got.and_then(|v| v.strip_prefix("Bearer ")).unwrap();
                assert_eq!(token.split('.').count(), 3, "{extra}: the session's token");
            }
        }
    }
}

#[tokio::test]
async fn forward_auth_answers_on_excluded_paths_blank_every_configured_header() {
    let h = Harness::start(
        Door::ForwardAuth,
        &format!("{TEMPLATES}excludedURLs: [/public]\n"),
    )
    .await;
    let mut b = h.browser();
    let url = b.app_url("/public/x");
    let resp = b.request(Method::GET, &url, &[], None).await;
    assert_eq!(resp.status, StatusCode::OK);
    for name in [
        "x-user-email",
        "authorization",
        "x-forwarded-access-token",
        "x-auth-request-access-token",
        "x-forwarded-user",
    ] {
        assert_eq!(resp.header(name), Some(""), "{name}");
    }
}

#[tokio::test]
async fn underscore_spelling_of_a_configured_header_is_refused() {
    let h = Harness::start(Door::Proxy, TEMPLATES).await;
    let mut b = h.logged_in_browser().await;
    let url = b.app_url("/app");
    let resp = b
        .request(
            Method::GET,
            &url,
            &[("x_user_email", "mallory@evil.test")],
            None,
        )
        .await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{resp:?}");
}

#[tokio::test]
async fn bearer_path_renders_the_presented_token_and_its_claims() {
    let extra = format!(
        "enableBearerAuth: true\naudience: api://headers\n{TEMPLATES}\
         setAuthorizationHeader: true\nstripAuthorizationHeader: true\n"
    );
    let h = Harness::start(Door::Proxy, &extra).await;
    let token = h.idp.client_credentials_token("api://headers");
    let mut b = h.browser();
    let url = b.app_url("/api/items");
    let bearer = format!("Bearer {token}");
    let resp = b
        .request(
            Method::GET,
            &url,
            &[("authorization", &bearer), ("accept", "application/json")],
            None,
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{resp:?}");
    let up = resp.upstream_headers();
    // The template wins over setAuthorizationHeader (no ID token here).
    assert_eq!(up["authorization"], format!("Bearer {token}"));
    assert_eq!(up["x-forwarded-access-token"], token);
    assert!(!up.contains_key("x-user-email"), "no email claim: {up:?}");
}

#[tokio::test]
async fn security_headers_on_proxied_and_gate_answers() {
    let h = Harness::start(
        Door::Proxy,
        "securityHeaders:\n  contentSecurityPolicy: \"default-src 'self'\"\n  customHeaders:\n    X-Served-By: oidcgate\n",
    )
    .await;
    let mut b = h.logged_in_browser().await;
    let url = b.app_url("/app");
    let resp = b
        .request(Method::GET, &url, &[("accept", "text/html")], None)
        .await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(resp.header("x-frame-options"), Some("DENY"));
    assert_eq!(resp.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(resp.header("x-xss-protection"), Some("1; mode=block"));
    assert_eq!(
        resp.header("referrer-policy"),
        Some("strict-origin-when-cross-origin")
    );
    assert_eq!(
        resp.header("content-security-policy"),
        Some("default-src 'self'")
    );
    assert_eq!(resp.header("x-served-by"), Some("oidcgate"));
    assert_eq!(resp.header("strict-transport-security"), None, "plain http");
    // A page of the gate's own keeps its stricter values.
    let mut anon = h.browser();
    let login = anon
        .request(Method::GET, &url, &[("accept", "text/html")], None)
        .await;
    assert_eq!(login.status, StatusCode::FOUND);
    assert_eq!(login.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(login.header("x-served-by"), Some("oidcgate"));

    let off = Harness::start(Door::Proxy, "securityHeaders: {enabled: false}\n").await;
    let mut b = off.logged_in_browser().await;
    let url = b.app_url("/app");
    let resp = b
        .request(Method::GET, &url, &[("accept", "text/html")], None)
        .await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(resp.header("x-xss-protection"), None);
    assert_eq!(resp.header("x-frame-options"), None);
}

#[tokio::test]
async fn cors_preflight_passes_unauthenticated_only_when_allowed() {
    let cors = "securityHeaders:\n  corsEnabled: true\n  corsAllowedOrigins: [\"https://*.example.com\"]\n  corsAllowCredentials: true\n";
    let preflight = [
        ("origin", "https://app.example.com"),
        ("access-control-request-method", "POST"),
    ];
    let h = Harness::start(
        Door::Proxy,
        &format!("{cors}allowUnauthenticatedPreflight: true\n"),
    )
    .await;
    let mut b = h.browser();
    let url = b.app_url("/api/items");
    let resp = b.request(Method::OPTIONS, &url, &preflight, None).await;
    assert_eq!(resp.status, StatusCode::OK, "{resp:?}");
    assert_eq!(
        resp.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(
        resp.header("access-control-allow-credentials"),
        Some("true")
    );
    assert!(!resp.upstream_headers().contains_key("x-forwarded-user"));
    let other = b
        .request(
            Method::OPTIONS,
            &url,
            &[
                ("origin", "https://evil.test"),
                ("access-control-request-method", "POST"),
            ],
            None,
        )
        .await;
    assert_eq!(other.header("access-control-allow-origin"), None);
    // A preflight never has a body (Fetch): an `OPTIONS` that carries one
    // is an ordinary request, and no body reaches the upstream unauthenticated.
    let seen = h.upstream.request_count();
    let with_body = b
        .request(
            Method::OPTIONS,
            &url,
            &[
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "POST"),
                ("accept", "application/json"),
            ],
            Some(b"action=delete&id=1".to_vec()),
        )
        .await;
    assert_eq!(with_body.status, StatusCode::UNAUTHORIZED, "{with_body:?}");
    assert_eq!(h.upstream.request_count(), seen);

    let closed = Harness::start(Door::Proxy, cors).await;
    let mut b = closed.browser();
    let url = b.app_url("/api/items");
    let resp = b.request(Method::OPTIONS, &url, &preflight, None).await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "{resp:?}");
    assert_eq!(
        resp.header("access-control-allow-origin"),
        Some("https://app.example.com"),
        "the refusal is readable by the allowed origin"
    );
    assert_eq!(closed.upstream.request_count(), 0);
}
