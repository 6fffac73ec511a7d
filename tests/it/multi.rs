//! Several providers in one gate (`providers:`): two test providers, each
//! chosen by its routes. A login goes to the provider of its route, a
//! session counts only on the routes of the provider that made it, and
//! logouts and bearer tokens reach the right provider.

use http::{Method, StatusCode};
use serde_json::json;
use testkit::upstream::EchoUpstream;
use testkit::{IdpConfig, TestIdp, TestUser};

use crate::support::*;

/// Both providers know a user with this subject: marks in the shared
/// caches must still not cross from one provider to the other.
const SHARED_SUB: &str = "same-subject";
const ALICE: &str = "alice@a.example";
const BOB: &str = "bob@b.example";

struct Two {
    a: TestIdp,
    b: TestIdp,
    _upstream: EchoUpstream,
    gate: GateServer,
}

async fn idp(email: &str) -> TestIdp {
    TestIdp::start(IdpConfig {
        user: TestUser::new(SHARED_SUB, email),
        ..IdpConfig::default()
    })
    .await
}

/// The `providers:` block naming `b` with `routes`.
fn entry(b: &TestIdp, routes: &str) -> String {
    format!(
        "providers:\n  - name: b\n    providerURL: {issuer}\n    clientID: {id}\n    \
         clientSecret: {secret}\n    logoutURL: /b/logout\n    routes: {routes}\n",
        issuer = b.issuer(),
        id = b.client_id(),
        secret = b.client_secret(),
    )
}

/// The top level is provider A (the default); `b` answers under `/b`.
async fn start() -> Two {
    let a = idp(ALICE).await;
    let b = idp(BOB).await;
    let upstream = EchoUpstream::start().await;
    let yaml = gate_yaml(
        &a,
        Some(&upstream.url()),
        &format!(
            "enableBearerAuth: true\naudience: api://default\nenableBackchannelLogout: true\n\
             enableFrontchannelLogout: true\n{}",
            entry(&b, "[{pathPrefix: /b}]")
        ),
    );
    let gate = GateServer::start(&yaml).await;
    Two {
        a,
        b,
        _upstream: upstream,
        gate,
    }
}

impl Two {
    fn browser(&self) -> Browser {
        let mut br = Browser::new(Door::Proxy, &self.gate, &self.a);
        br.also_at(&self.b);
        br
    }
}

/// Visits `path`, which must send the browser to `idp`; logs in there and
/// returns the answer at `path` afterwards.
async fn login_at(br: &mut Browser, path: &str, idp: &TestIdp) -> Resp {
    let first = br.get_app(path).await;
    assert_eq!(first.status, StatusCode::FOUND, "{path}: {first:?}");
    let authorize = first.location().unwrap();
    assert!(
        authorize
            .as_str()
            .starts_with(&format!("{}/authorize?", idp.issuer())),
        "{path} must log in at {}: {authorize}",
        idp.issuer()
    );
    let at_idp = br.get(&authorize).await;
    assert_eq!(at_idp.status, StatusCode::FOUND, "{at_idp:?}");
    let back = br.get(&at_idp.location().unwrap()).await;
    assert_eq!(back.status, StatusCode::FOUND, "callback: {back:?}");
    assert_eq!(
        back.raw_location(),
        Some(br.app_url(path).as_str()),
        "the callback returns to the address the login started from"
    );
    br.get_app(path).await
}

/// Where a request for `path` is sent to log in, if it is.
async fn login_target(br: &mut Browser, path: &str) -> Option<String> {
    let r = br.get_app(path).await;
    assert_ne!(
        r.status,
        StatusCode::OK,
        "{path} must not be allowed: {r:?}"
    );
    (r.status == StatusCode::FOUND).then(|| r.location().unwrap().to_string())
}

#[tokio::test]
async fn each_route_logs_in_at_its_own_provider() {
    let t = start().await;
    let mut br = t.browser();

    let at_a = login_at(&mut br, "/a/page", &t.a).await;
    assert_eq!(at_a.status, StatusCode::OK, "{at_a:?}");
    assert_eq!(at_a.upstream_headers()["x-forwarded-user"], ALICE);

    // A's session is no session on B's route: B's login starts, with a
    // state naming B and the shared redirect URI.
    let first = br.get_app("/b/page?x=1").await;
    assert_eq!(first.status, StatusCode::FOUND, "{first:?}");
    let authorize = first.location().unwrap();
    let q = query_map(&authorize);
    assert!(q["state"].starts_with("b."), "{q:?}");
    assert_eq!(
        q["redirect_uri"],
        format!("{}/oauth2/callback", t.gate.url())
    );
    assert_eq!(q["client_id"], t.b.client_id());
    let at_b = login_at(&mut br, "/b/page?x=1", &t.b).await;
    assert_eq!(at_b.status, StatusCode::OK, "{at_b:?}");
    let up = at_b.upstream_headers();
    assert_eq!(up["x-forwarded-user"], BOB);
    // Neither provider's cookies reach the upstream.
    assert!(
        !up.get("cookie").is_some_and(|c| c.contains("_oidcgate_")),
        "{up:?}"
    );
    assert!(
        br.jar.contains_key("_oidcgate_b-s_0"),
        "{:?}",
        br.jar.keys()
    );

    // Both sessions live side by side, each on its own routes.
    let again = br.get_app("/a/page").await;
    assert_eq!(again.upstream_headers()["x-forwarded-user"], ALICE);
    let again = br.get_app("/b").await;
    assert_eq!(again.upstream_headers()["x-forwarded-user"], BOB);
    assert_eq!(t.a.counters().code_grants, 1);
    assert_eq!(t.b.counters().code_grants, 1);

    // The health report names each provider.
    let health = raw(
        &t.gate,
        Method::GET,
        "/healthz",
        &[("accept", "application/json")],
    )
    .await
    .json();
    assert_eq!(health["status"], "healthy", "{health}");
    assert_eq!(health["providers"]["b"]["discovered"], true, "{health}");
}

#[tokio::test]
async fn a_session_of_one_provider_never_passes_on_another_route() {
    let t = start().await;
    let mut br = t.browser();
    assert_eq!(login_at(&mut br, "/", &t.a).await.status, StatusCode::OK);

    // A's session cookies as they are: B's login.
    let to = login_target(&mut br, "/b/x").await.unwrap();
    assert!(to.starts_with(&t.b.issuer()), "{to}");

    // A's sealed session under B's cookie names does not open either: the
    // cookie prefix is part of what the seal authenticates.
    let mut forged = t.browser();
    for (name, value) in &br.jar {
        if let Some(chunk) = name.strip_prefix("_oidcgate_s_") {
            forged
                .jar
                .insert(format!("_oidcgate_b-s_{chunk}"), value.clone());
        }
    }
    assert!(!forged.jar.is_empty());
    let to = login_target(&mut forged, "/b/x").await.unwrap();
    assert!(to.starts_with(&t.b.issuer()), "{to}");
    // Scripts get 401, never B's upstream.
    let url = forged.app_url("/b/api");
    let script = forged
        .request(Method::GET, &url, &[("accept", "application/json")], None)
        .await;
    assert_eq!(script.status, StatusCode::UNAUTHORIZED, "{script:?}");
}

#[tokio::test]
async fn logout_ends_only_the_session_of_its_provider() {
    let t = start().await;
    let mut br = t.browser();
    assert_eq!(login_at(&mut br, "/", &t.a).await.status, StatusCode::OK);
    assert_eq!(login_at(&mut br, "/b", &t.b).await.status, StatusCode::OK);
    let before = br.jar.clone();

    // RP-initiated logout at A's (the top-level) logout path.
    let out = br.get_app("/oauth2/callback/logout").await;
    assert_eq!(out.status, StatusCode::FOUND, "{out:?}");
    assert!(
        out.location().unwrap().as_str().starts_with(&t.a.issuer()),
        "A's end-session endpoint: {out:?}"
    );
    assert!(
        out.set_cookies()
            .iter()
            .all(|c| !c.starts_with("_oidcgate_b-")),
        "A's logout leaves B's cookies alone: {:?}",
        out.set_cookies()
    );
    assert!(
        login_target(&mut br, "/")
            .await
            .unwrap()
            .starts_with(&t.a.issuer())
    );
    let b_still = br.get_app("/b").await;
    assert_eq!(b_still.status, StatusCode::OK, "{b_still:?}");
    assert_eq!(b_still.upstream_headers()["x-forwarded-user"], BOB);
    // A copy of A's cookie kept from before is ended too.
    let mut copy = t.browser();
    copy.jar = before;
    assert!(login_target(&mut copy, "/").await.is_some());

    // B's own logout path ends B's session.
    let out = br.get_app("/b/logout").await;
    assert_eq!(out.status, StatusCode::FOUND, "{out:?}");
    assert!(
        out.location().unwrap().as_str().starts_with(&t.b.issuer()),
        "B's end-session endpoint: {out:?}"
    );
    assert!(
        login_target(&mut br, "/b")
            .await
            .unwrap()
            .starts_with(&t.b.issuer())
    );
}

#[tokio::test]
async fn back_channel_logout_reaches_the_provider_that_sent_it() {
    let t = start().await;
    let mut br = t.browser();
    assert_eq!(login_at(&mut br, "/", &t.a).await.status, StatusCode::OK);
    assert_eq!(login_at(&mut br, "/b", &t.b).await.status, StatusCode::OK);

    // Provider A ends its user's sessions; B knows a user with the same
    // subject, whose session stays.
    let token = t.a.logout_token(None, Some(SHARED_SUB));
    assert_eq!(post_logout_token(&t, &token).await, StatusCode::OK);
    assert!(
        login_target(&mut br, "/")
            .await
            .unwrap()
            .starts_with(&t.a.issuer())
    );
    assert_eq!(br.get_app("/b").await.status, StatusCode::OK);

    // And B's token ends B's session.
    let token = t.b.logout_token(None, Some(SHARED_SUB));
    assert_eq!(post_logout_token(&t, &token).await, StatusCode::OK);
    assert!(
        login_target(&mut br, "/b")
            .await
            .unwrap()
            .starts_with(&t.b.issuer())
    );
}

/// Posts a back-channel logout token to the gate; its answer's status.
async fn post_logout_token(t: &Two, token: &str) -> StatusCode {
    client()
        .post(format!("{}/oauth2/backchannel-logout", t.gate.url()))
        .form(&[("logout_token", token)])
        .send()
        .await
        .unwrap()
        .status()
}

/// The provider session id (`sid`) of the session `br` holds through the
/// provider whose cookies start with `prefix`.
fn provider_sid(br: &Browser, prefix: &str) -> String {
    use oidcgate::session::{SecretString, SessionCodec, SessionSettings};
    let mut settings = SessionSettings::with_keys(vec![SecretString::new(SESSION_KEY)]);
    settings.cookie_prefix = prefix.to_owned();
    let codec = SessionCodec::new(settings).unwrap();
    let mut h = http::HeaderMap::new();
    h.insert("cookie", br.gate_cookie_header().unwrap().parse().unwrap());
    let now = oidcgate::clock::Clock::now(&oidcgate::clock::SystemClock);
    codec.load(&h, now).unwrap().idp_sid.unwrap()
}

#[tokio::test]
async fn front_channel_logout_reaches_the_provider_it_names() {
    let t = start().await;
    let mut br = t.browser();
    assert_eq!(login_at(&mut br, "/", &t.a).await.status, StatusCode::OK);
    assert_eq!(login_at(&mut br, "/b", &t.b).await.status, StatusCode::OK);
    let sid = provider_sid(&br, "_oidcgate_b-");
    let logout = |iss: &str| {
        let enc = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
        format!(
            "/oauth2/frontchannel-logout?iss={}&sid={}",
            enc(iss),
            enc(&sid)
        )
    };

    // B's provider session id, said by A: A never issued it, nothing ends.
    let said_by_a = raw(&t.gate, Method::GET, &logout(&t.a.issuer()), &[]).await;
    assert_eq!(said_by_a.status, StatusCode::OK, "{said_by_a:?}");
    assert_eq!(br.get_app("/b").await.status, StatusCode::OK);

    // Said by B: B's session ends, A's stays.
    let said_by_b = raw(&t.gate, Method::GET, &logout(&t.b.issuer()), &[]).await;
    assert_eq!(said_by_b.status, StatusCode::OK, "{said_by_b:?}");
    assert!(
        login_target(&mut br, "/b")
            .await
            .unwrap()
            .starts_with(&t.b.issuer())
    );
    assert_eq!(br.get_app("/").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_bearer_token_counts_only_on_its_providers_routes() {
    let t = start().await;
    let mut br = t.browser();
    for (token, allowed, refused) in [
        (t.b.access_token(json!({})), "/b/api", "/a/api"),
        (t.a.access_token(json!({})), "/a/api", "/b/api"),
    ] {
        let bearer = format!("Bearer {token}");
        let headers = [
            ("authorization", bearer.as_str()),
            ("accept", "application/json"),
        ];
        // Verified (and its claims cached) at its own provider first: the
        // cached verdict must not count for the other.
        let url = br.app_url(allowed);
        let ok = br.request(Method::GET, &url, &headers, None).await;
        assert_eq!(ok.status, StatusCode::OK, "{allowed}: {ok:?}");
        let url = br.app_url(refused);
        let no = br.request(Method::GET, &url, &headers, None).await;
        assert_eq!(no.status, StatusCode::UNAUTHORIZED, "{refused}: {no:?}");
    }
}

/// Where a forward-auth navigation to `https://<host>/page` without a
/// session is sent to log in.
async fn forward_auth_login(gate: &GateServer, host: &str) -> url::Url {
    let r = raw(
        gate,
        Method::GET,
        "/",
        &[
            ("x-forwarded-method", "GET"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", host),
            ("x-forwarded-uri", "/page"),
            ("accept", "text/html"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::FOUND, "{host}: {r:?}");
    r.location().unwrap()
}

#[tokio::test]
async fn host_routes_choose_the_provider_in_forward_auth() {
    let a = idp(ALICE).await;
    let b = idp(BOB).await;
    let yaml = gate_yaml(&a, None, &entry(&b, "[{host: b.test}]"));
    let gate = GateServer::start(&yaml).await;
    for (host, provider) in [("b.test", &b), ("B.TEST:8080", &b), ("app.test", &a)] {
        let to = forward_auth_login(&gate, host).await;
        assert!(to.as_str().starts_with(&provider.issuer()), "{host}: {to}");
        assert_eq!(
            query_map(&to)["redirect_uri"].to_ascii_lowercase(),
            format!("https://{}/oauth2/callback", host.to_ascii_lowercase()),
        );
    }
}

#[tokio::test]
async fn auth_request_logins_start_at_the_provider_of_their_return_address() {
    let a = idp(ALICE).await;
    let b = idp(BOB).await;
    let yaml = gate_yaml(&a, None, &entry(&b, "[{pathPrefix: /b}]"));
    let gate = GateServer::start(&yaml).await;
    let mut br = Browser::new(Door::AuthRequest, &gate, &a);
    br.also_at(&b);
    for (path, provider, user) in [("/b/x?y=1", &b, BOB), ("/x", &a, ALICE)] {
        let probe = br.get_app(path).await;
        assert_eq!(probe.status, StatusCode::UNAUTHORIZED, "{probe:?}");
        // nginx's error_page sends the browser to /oauth2/start?rd=<path>.
        let start = br.get(&br.next_hop(&probe).unwrap()).await;
        assert_eq!(start.status, StatusCode::FOUND, "{start:?}");
        let authorize = start.location().unwrap();
        assert!(
            authorize.as_str().starts_with(&provider.issuer()),
            "{path}: {authorize}"
        );
        let at_idp = br.get(&authorize).await;
        let back = br.get(&at_idp.location().unwrap()).await;
        assert_eq!(back.status, StatusCode::FOUND, "{back:?}");
        let landed = br.get_app(path).await;
        assert_eq!(landed.status, StatusCode::ACCEPTED, "{landed:?}");
        assert_eq!(
            landed.identity(Door::AuthRequest)["x-auth-request-email"],
            user
        );
    }
}

#[tokio::test]
async fn a_login_start_picks_the_provider_of_the_path_its_return_address_resolves_to() {
    let a = idp(ALICE).await;
    let b = idp(BOB).await;
    let yaml = gate_yaml(&a, None, &entry(&b, "[{pathPrefix: /b}]"));
    let gate = GateServer::start(&yaml).await;
    let mut br = Browser::new(Door::AuthRequest, &gate, &a);
    for (rd, provider) in [
        ("/b/../x", &a),
        ("/x/../b/y", &b),
        ("/b/./y", &b),
        ("/x//b", &a),
    ] {
        let start = br
            .get(&br.app_url(&format!(
                "/oauth2/start?rd={}",
                percent_encoding::utf8_percent_encode(rd, percent_encoding::NON_ALPHANUMERIC)
            )))
            .await;
        assert_eq!(start.status, StatusCode::FOUND, "{rd}: {start:?}");
        let authorize = start.location().unwrap();
        assert!(
            authorize.as_str().starts_with(&provider.issuer()),
            "{rd}: {authorize}"
        );
    }
}

#[tokio::test]
async fn a_path_any_server_reads_under_a_route_is_judged_by_its_provider() {
    let t = start().await;
    let mut br = t.browser();
    assert_eq!(login_at(&mut br, "/", &t.a).await.status, StatusCode::OK);
    // Tomcat, Jetty and Spring read `/b;v=1/x` as `/b/x`; case-insensitive
    // servers read `/B/x` as `/b/x`: A's session must not reach them.
    for path in ["/b;v=1/x", "/B/x", "/b;jsessionid=1"] {
        let to = login_target(&mut br, path).await;
        assert!(
            to.as_deref()
                .is_some_and(|to| to.starts_with(&t.b.issuer())),
            "{path}: {to:?}"
        );
    }
    // A's own paths stay A's.
    assert_eq!(br.get_app("/bb/x").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_host_route_is_matched_as_dns_and_proxies_read_the_host() {
    let a = idp(ALICE).await;
    let b = idp(BOB).await;
    let yaml = gate_yaml(&a, None, &entry(&b, "[{host: b.test:8443}]"));
    let gate = GateServer::start(&yaml).await;
    for (host, provider) in [
        ("b.test:8443", &b),
        ("b.test.:8443", &b),
        ("B.Test:08443", &b),
        ("b.test:8080", &a),
        ("b.test", &a),
    ] {
        let to = forward_auth_login(&gate, host).await;
        assert!(to.as_str().starts_with(&provider.issuer()), "{host}: {to}");
    }
}

#[tokio::test]
async fn per_source_login_limits_are_the_gates_not_each_providers() {
    let a = idp(ALICE).await;
    let b = idp(BOB).await;
    let upstream = EchoUpstream::start().await;
    let yaml = gate_yaml(
        &a,
        Some(&upstream.url()),
        &format!(
            "trustedProxies: [127.0.0.1/32]\nperSourceLoginRateLimit: 2\n{}",
            entry(&b, "[{pathPrefix: /b}]")
        ),
    );
    let gate = GateServer::start(&yaml).await;
    let mut br = Browser::new(Door::Proxy, &gate, &a);
    br.also_at(&b);
    br.extra_headers = vec![("x-forwarded-for".into(), "203.0.113.7".into())];
    // One login start at A and one at B use the source's two.
    assert_eq!(br.get_app("/x").await.status, StatusCode::FOUND);
    assert_eq!(br.get_app("/b/x").await.status, StatusCode::FOUND);
    let over = br.get_app("/b/y").await;
    assert_eq!(over.status, StatusCode::TOO_MANY_REQUESTS, "{over:?}");
}
