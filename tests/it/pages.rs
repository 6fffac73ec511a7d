//! The pages a person sees from the gate: what they say, that every value
//! in them is escaped, that they carry their own content security policy,
//! and where the browser is when it sees them.

use http::StatusCode;
use testkit::TestUser;

use crate::support::*;

/// An e-mail address that would run script if it reached a page unescaped.
const HOSTILE_EMAIL: &str = "<script>alert(1)</script>@example.com";

/// Asserts the page is the gate's own HTML, with a policy that loads
/// nothing and a request id to quote.
fn assert_own_page(r: &Resp, what: &str) {
    assert_eq!(
        r.header("content-type"),
        Some("text/html; charset=utf-8"),
        "{what}: {r:?}"
    );
    let csp = r.header("content-security-policy").unwrap_or_default();
    assert!(csp.starts_with("default-src 'none'"), "{what}: {csp}");
    assert!(csp.contains("style-src 'sha256-"), "{what}: {csp}");
    assert!(!r.body.contains("<script>"), "{what}: {}", r.body);
    let id = r.header("x-request-id").expect("request id header");
    assert!(
        r.body.contains(&format!("<code>{id}</code>")),
        "{what}: the page shows the request id {id}"
    );
}

#[tokio::test]
async fn forbidden_page_names_the_account_and_offers_a_way_out() {
    for door in [Door::Proxy, Door::ForwardAuth] {
        let h = Harness::start(door, "allowedUsers: [someone.else@example.com]").await;
        h.idp.set_user(TestUser::new("hostile", HOSTILE_EMAIL));
        let mut b = h.browser();
        let first = b.get_app("/reports?year=2026").await;
        let hops = b.navigate(&first.location().unwrap()).await;
        let page = hops.last().unwrap();
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{door:?}: {page:?}");
        assert_eq!(page.url.path(), "/reports");
        assert_own_page(page, "403");
        assert!(
            page.body
                .contains("&lt;script&gt;alert(1)&lt;/script&gt;@example.com"),
            "{door:?}: the account is shown, escaped: {}",
            page.body
        );
        assert!(page.body.contains("href=\"/oauth2/callback/logout\""));
        let again = "/oauth2/start?rd=%2Freports%3Fyear%3D2026&amp;prompt=login";
        assert!(page.body.contains(again), "{door:?}: {}", page.body);
        // "Sign in as someone else" asks the provider for its login form
        // and comes back to the same address.
        let start = b
            .get_app("/oauth2/start?rd=%2Freports%3Fyear%3D2026&prompt=login")
            .await;
        let authorize = start.location().unwrap();
        let q = query_map(&authorize);
        assert_eq!(q.get("prompt").map(String::as_str), Some("login"));
        // Any other prompt value is not passed on.
        let start = b.get_app("/oauth2/start?rd=%2F&prompt=none").await;
        assert!(!query_map(&start.location().unwrap()).contains_key("prompt"));
    }
}

#[tokio::test]
async fn forbidden_for_api_clients_stays_json() {
    let h = Harness::start(Door::Proxy, "").await;
    let b = h.logged_in_browser().await;
    let strict = h
        .second_gate("allowedUsers: [someone.else@example.com]")
        .await;
    let mut b2 = b.via(&strict);
    let url = b2.app_url("/api/items");
    let r = b2
        .request(
            http::Method::GET,
            &url,
            &[("accept", "application/json")],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json()["status_code"], 403);
    // A browser on the same gate gets the page, naming its account.
    let page = b2.get_app("/api/items").await;
    assert_own_page(&page, "403 for a session");
    assert!(page.body.contains(USER_EMAIL));
}

#[tokio::test]
async fn login_failed_page_escapes_what_the_provider_said() {
    let h = Harness::start(Door::Proxy, "").await;
    let mut b = h.browser();
    let first = b.get_app("/dashboard").await;
    let state = query_map(&first.location().expect("to the provider"))["state"].clone();
    // A link made by someone else (no login of this browser's, or another
    // state) cannot put its own words on the gate's page.
    for forged in ["", "&state=someone-elses"] {
        let r = b
            .get_app(&format!(
                "/oauth2/callback?error=access_denied&error_description=Call%20%2B1-555-0100{forged}"
            ))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert!(!r.body.contains("555-0100"), "{}", r.body);
        assert!(
            r.body.contains("the sign-in was not completed"),
            "{}",
            r.body
        );
    }
    let r = b
        .get_app(&format!(
            "/oauth2/callback?error=access_denied&error_description=%3Cscript%3Ex%3C%2Fscript%3E&code=used&state={state}"
        ))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_own_page(&r, "login failed");
    assert!(r.body.contains("Sign-in did not complete"), "{}", r.body);
    assert!(
        r.body.contains("&lt;script&gt;x&lt;/script&gt;"),
        "{}",
        r.body
    );
    // "Sign in again" starts over at the application, not at the callback.
    assert!(
        r.body.contains("href=\"/oauth2/start?rd=%2F\""),
        "{}",
        r.body
    );
    assert!(!r.body.contains("code=used"));
}

#[tokio::test]
async fn unavailable_page_when_the_provider_cannot_be_reached() {
    let h = Harness::start(Door::Proxy, "").await;
    let yaml = gate_yaml(&h.idp, Some(&h.upstream.url()), "")
        .replace(&h.idp.issuer(), "http://127.0.0.1:9");
    let dead = GateServer::start(&yaml).await;
    let mut b = h.browser().via(&dead);
    let r = b.get_app("/dashboard?tab=%22%3E").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{r:?}");
    assert_own_page(&r, "unavailable");
    assert_eq!(r.header("retry-after"), Some("30"));
    assert!(r.body.contains("Temporarily unavailable"));
    // "Try again" is the address asked for, escaped inside the attribute.
    assert!(
        r.body.contains("href=\"/dashboard?tab=%22%3E\""),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn logged_out_page_when_there_is_nothing_to_end() {
    let h = Harness::start(Door::Proxy, "postLogoutRedirectURI: /welcome").await;
    let mut b = h.logged_in_browser().await;
    // With a session: cookies cleared and off to the provider, as before.
    let first = b.get_app("/oauth2/sign_out").await;
    assert_eq!(first.status, StatusCode::FOUND);
    // Without one (the provider sent the browser back here, or a second
    // click): a page that says so, instead of a new login.
    let r = b.get_app("/oauth2/sign_out").await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_own_page(&r, "logged out");
    assert!(r.body.contains("You are signed out"));
    assert!(
        r.body.contains("href=\"/oauth2/start?rd=%2Fwelcome\""),
        "{}",
        r.body
    );
    assert!(r.header("x-frame-options").is_some());
}

#[tokio::test]
async fn frontchannel_page_may_be_framed_and_nothing_else_may() {
    let h = Harness::start(Door::Proxy, "enableFrontchannelLogout: true").await;
    let mut b = h.browser();
    let r = b
        .get_app(&format!(
            "/oauth2/frontchannel-logout?iss={}&sid=unknown",
            h.idp.issuer()
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_own_page(&r, "front-channel");
    let csp = r.header("content-security-policy").unwrap();
    assert!(!csp.contains("frame-ancestors"), "{csp}");
    assert!(r.header("x-frame-options").is_none());
    let other = b.get_app("/oauth2/callback?state=x").await;
    let csp = other.header("content-security-policy").unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
}

#[tokio::test]
async fn custom_templates_replace_the_pages() {
    let dir = std::env::temp_dir().join(format!("oidcgate-it-templates-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/templates");
    for f in std::fs::read_dir(&shipped).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), dir.join(f.file_name())).unwrap();
    }
    std::fs::write(
        dir.join("forbidden.html"),
        "<!doctype html><style>body{color:teal}</style>\
         <p>Sorry {{user}}, ask the help desk ({{request_id}}).</p>",
    )
    .unwrap();
    let h = Harness::start(
        Door::Proxy,
        &format!(
            "allowedUsers: [someone.else@example.com]\ncustomTemplatesDir: {}",
            dir.display()
        ),
    )
    .await;
    h.idp.set_user(TestUser::new("hostile", HOSTILE_EMAIL));
    let mut b = h.browser();
    let first = b.get_app("/").await;
    let hops = b.navigate(&first.location().unwrap()).await;
    let page = hops.last().unwrap();
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(
        page.body
            .starts_with("<!doctype html><style>body{color:teal}</style><p>Sorry &lt;script&gt;"),
        "{}",
        page.body
    );
    let csp = page.header("content-security-policy").unwrap();
    // sha256 of "body{color:teal}"
    assert!(
        csp.contains("'sha256-W4GPTJJ9EL65bjtVBCgE2eAsaF/b3QW6diIh4IkwDY0='"),
        "{csp}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_refused_login_is_counted_as_forbidden_not_as_success() {
    use oidcgate::telemetry::metrics::{CallbackResult, Metrics};

    let h = Harness::start(Door::Proxy, "").await;
    let metrics = Metrics::new();
    let yaml = gate_yaml(
        &h.idp,
        Some(&h.upstream.url()),
        "allowedUsers: [someone.else@example.com]",
    );
    let gate = GateServer::start_with_metrics(&yaml, metrics.clone()).await;
    let mut b = h.browser().via(&gate);
    let first = b.get_app("/x").await;
    let hops = b.navigate(&first.location().unwrap()).await;
    assert_eq!(hops.last().unwrap().status, StatusCode::FORBIDDEN);
    assert_eq!(metrics.callbacks(CallbackResult::Forbidden), 1);
    assert_eq!(metrics.callbacks(CallbackResult::Success), 0);
    // A failure after the state was claimed (the code is refused) is
    // counted by its cause, though the callback answers it itself.
    let mut b = h.browser().via(&gate);
    let first = b.get_app("/y").await;
    let at_idp = b.get(&first.location().unwrap()).await;
    let mut callback = at_idp.location().unwrap();
    let q: Vec<(String, String)> = callback
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "code" {
                "forged".into()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    callback.query_pairs_mut().clear().extend_pairs(q);
    let refused = b.get(&callback).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{refused:?}");
    assert_eq!(metrics.callbacks(CallbackResult::Success), 0);
    assert_eq!(metrics.callbacks(CallbackResult::Rejected), 1);
}
