//! Logins against the test provider shaped like each provider people use:
//! its issuer form, token shapes, claim layout and refresh rules.

use http::StatusCode;
use serde_json::{Map, Value, json};
use testkit::{IdpConfig, TestUser};

use crate::support::*;

fn object(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

/// A Keycloak realm: issuer `/realms/{realm}`, roles in the access token
/// only (`realm_access.roles`, `resource_access.<client>.roles`).
fn keycloak(user: TestUser) -> IdpConfig {
    IdpConfig {
        issuer_path: "/realms/demo".into(),
        api_audience: "account".into(),
        user,
        ..IdpConfig::default()
    }
}

fn keycloak_user(realm_roles: &[&str], client_roles: &[&str]) -> TestUser {
    let mut u = TestUser::new("kc-user-1", "kim@example.com");
    u.preferred_username = Some("kim".into());
    u.access_token_extra = object(json!({
        "realm_access": {"roles": realm_roles},
        "resource_access": {"oidcgate": {"roles": client_roles}, "account": {"roles": ["view-profile"]}},
    }));
    u
}

/// Visits the application and follows the flow to the callback's answer,
/// without asserting success.
async fn callback_answer(h: &Harness, b: &mut Browser) -> Resp {
    let mut start = b.get_app("/").await;
    if h.door == Door::AuthRequest {
        let next = b.next_hop(&start).unwrap();
        start = b.get(&next).await;
    }
    assert_eq!(start.status, StatusCode::FOUND, "{start:?}");
    let at_idp = b.get(&start.location().unwrap()).await;
    assert_eq!(at_idp.status, StatusCode::FOUND, "{at_idp:?}");
    b.get(&at_idp.location().unwrap()).await
}

#[tokio::test]
async fn keycloak_login_reads_realm_roles_from_the_access_token() {
    let h = Harness::start_with(
        Door::Proxy,
        keycloak(keycloak_user(&["admin", "offline_access"], &["editor"])),
        "roleClaimName: realm_access.roles\nallowedRolesAndGroups: [admin]\n\
         userIdentifierClaim: preferred_username\n",
    )
    .await;
    assert!(h.idp.issuer().ends_with("/realms/demo"));
    let mut b = h.browser();
    let trace = b.login(&h, "/").await;
    assert_eq!(trace.landed.status, StatusCode::OK, "{:?}", trace.landed);
    let id = trace.landed.identity(Door::Proxy);
    assert_eq!(id["x-forwarded-user"], "kim");
    assert_eq!(id["x-user-roles"], "admin,offline_access");

    // A client role by its path, and a user without the realm role.
    let h = Harness::start_with(
        Door::ForwardAuth,
        keycloak(keycloak_user(&["user"], &["editor"])),
        "roleClaimName: resource_access.oidcgate.roles\nallowedRolesAndGroups: [editor]\n",
    )
    .await;
    let trace = h.browser().login(&h, "/").await;
    assert_eq!(trace.landed.status, StatusCode::OK, "{:?}", trace.landed);
    assert_eq!(
        trace.landed.identity(Door::ForwardAuth)["x-user-roles"],
        "editor"
    );
    let h = Harness::start_with(
        Door::Proxy,
        keycloak(keycloak_user(&["user"], &[])),
        "roleClaimName: realm_access.roles\nallowedRolesAndGroups: [admin]\n",
    )
    .await;
    let mut b = h.browser();
    let back = callback_answer(&h, &mut b).await;
    assert_eq!(back.status, StatusCode::FOUND, "{back:?}");
    let refused = b.get(&back.location().unwrap()).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");
}

#[tokio::test]
async fn auth0_namespaced_roles_are_read_by_their_quoted_name() {
    let mut user = TestUser::new("auth0|42", "ana@example.com");
    user.extra = object(json!({"https://example.com/roles": ["billing"]}));
    for claim in [
        "'\"https://example.com/roles\"'",
        "https://example.com/roles",
    ] {
        let h = Harness::start_with(
            Door::Proxy,
            IdpConfig {
                user: user.clone(),
                ..IdpConfig::default()
            },
            &format!("roleClaimName: {claim}\nallowedRolesAndGroups: [billing]\n"),
        )
        .await;
        let trace = h.browser().login(&h, "/").await;
        assert_eq!(
            trace.landed.status,
            StatusCode::OK,
            "{claim}: {:?}",
            trace.landed
        );
        assert_eq!(
            trace.landed.identity(Door::Proxy)["x-user-roles"],
            "billing"
        );
    }
}

/// A tenant of the Entra ID-shaped provider.
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
/// Another tenant.
const OTHER_TENANT: &str = "0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d";

fn entra_user(tid: &str, extra: Value) -> TestUser {
    let mut u = TestUser::new("pairwise-sub-1", "ann@contoso.example");
    // Entra ID sends `email` without `email_verified`.
    u.email_verified = None;
    u.preferred_username = Some("ann@contoso.example".into());
    u.extra = object(json!({
        "oid": "11111111-2222-3333-4444-555555555555",
        "tid": tid,
    }));
    for (k, v) in object(extra) {
        u.extra.insert(k, v);
    }
    u
}

/// Entra ID's multi-tenant endpoint: served under `/common/v2.0`, the
/// discovery issuer the `{tenantid}` template, tokens issued by the user's
/// tenant, and access tokens for Microsoft Graph that no client can verify.
fn entra(tid: &str, user: TestUser) -> IdpConfig {
    IdpConfig {
        issuer_path: "/common/v2.0".into(),
        advertised_issuer: Some("{base}/{tenantid}/v2.0".into()),
        token_issuer: Some(format!("{{base}}/{tid}/v2.0")),
        access_token_format: testkit::AccessTokenFormat::EntraGraph,
        user,
        ..IdpConfig::default()
    }
}

#[tokio::test]
async fn entra_multi_tenant_login_with_a_graph_access_token() {
    let h = Harness::start_with(
        Door::ForwardAuth,
        entra(TENANT, entra_user(TENANT, json!({}))),
        &format!("providerType: entra\nallowedTenants: [{TENANT}]\n"),
    )
    .await;
    assert!(h.idp.issuer().ends_with("/common/v2.0"));
    let trace = h.browser().login(&h, "/").await;
    assert_eq!(trace.landed.status, StatusCode::OK, "{:?}", trace.landed);
    let id = trace.landed.identity(Door::ForwardAuth);
    // The stable object id names the user; the unverified e-mail is not sent.
    assert_eq!(
        id["x-forwarded-user"],
        "11111111-2222-3333-4444-555555555555"
    );
    assert_eq!(id["x-auth-request-email"], "");

    // The same login from a tenant not on the list is refused.
    let h = Harness::start_with(
        Door::Proxy,
        entra(OTHER_TENANT, entra_user(OTHER_TENANT, json!({}))),
        &format!("providerType: entra\nallowedTenants: [{TENANT}]\n"),
    )
    .await;
    let refused = callback_answer(&h, &mut h.browser()).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");
    assert!(refused.body.contains("tenant"), "{}", refused.body);

    // A token claiming a tenant its issuer does not belong to is refused.
    let mut cfg = entra(TENANT, entra_user(OTHER_TENANT, json!({})));
    cfg.token_issuer = Some(format!("{{base}}/{TENANT}/v2.0"));
    let h = Harness::start_with(Door::Proxy, cfg, "providerType: entra\n").await;
    let refused = callback_answer(&h, &mut h.browser()).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{refused:?}");
}

#[tokio::test]
async fn entra_graph_access_token_would_fail_verification_without_the_profile() {
    // The generic profile verifies every JWT access token: a Graph token
    // (unpublished key) fails the login there; the Entra profile leaves it be.
    let mut cfg = entra(TENANT, entra_user(TENANT, json!({})));
    cfg.issuer_path = String::new();
    cfg.advertised_issuer = None;
    cfg.token_issuer = None;
    let h = Harness::start_with(Door::Proxy, cfg.clone(), "providerType: oidc\n").await;
    let refused = callback_answer(&h, &mut h.browser()).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{refused:?}");
    let h = Harness::start_with(Door::Proxy, cfg, "providerType: entra\n").await;
    let trace = h.browser().login(&h, "/").await;
    assert_eq!(trace.landed.status, StatusCode::OK, "{:?}", trace.landed);
}

/// Google: no `offline_access` scope (refused), a refresh token only with
/// `access_type=offline` and `prompt=consent`.
fn google() -> IdpConfig {
    IdpConfig {
        refresh_token_rule: testkit::RefreshTokenRule::GoogleOffline,
        scopes_supported: ["openid", "email", "profile"].map(String::from).to_vec(),
        ..IdpConfig::default()
    }
}

#[tokio::test]
async fn google_login_asks_for_offline_access_with_its_parameters() {
    let h = Harness::start_with(
        Door::Proxy,
        google(),
        "providerType: google\nscopes: [offline_access]\n",
    )
    .await;
    let trace = h.browser().login(&h, "/").await;
    assert_eq!(trace.landed.status, StatusCode::OK, "{:?}", trace.landed);
    let q = query_map(&trace.authorize);
    assert_eq!(q.get("access_type").map(String::as_str), Some("offline"));
    assert_eq!(q.get("prompt").map(String::as_str), Some("consent"));
    assert!(
        !q["scope"].split(' ').any(|s| s == "offline_access"),
        "{q:?}"
    );
    assert_eq!(h.idp.refresh_tokens_issued(), 1);

    // Without the profile the same provider never issues a refresh token.
    let h = Harness::start_with(Door::Proxy, google(), "providerType: oidc\n").await;
    let trace = h.browser().login(&h, "/").await;
    assert_eq!(trace.landed.status, StatusCode::OK, "{:?}", trace.landed);
    assert!(!query_map(&trace.authorize).contains_key("access_type"));
    assert_eq!(h.idp.refresh_tokens_issued(), 0);
}

#[tokio::test]
async fn cognito_logout_goes_to_its_logout_endpoint() {
    let cfg = IdpConfig {
        with_end_session: false,
        ..IdpConfig::default()
    };
    let h = Harness::start_with(Door::Proxy, cfg, "providerType: cognito\n").await;
    let mut b = h.logged_in_browser().await;
    let out = b.get_app("/oauth2/sign_out").await;
    assert_eq!(out.status, StatusCode::FOUND, "{out:?}");
    let to = out.location().unwrap();
    assert_eq!(to.path(), "/logout");
    assert_eq!(to.port(), h.idp.addr().port().into());
    let q = query_map(&to);
    assert_eq!(
        q.get("client_id").map(String::as_str),
        Some(h.idp.client_id())
    );
    assert_eq!(
        q.get("logout_uri").map(String::as_str),
        Some(format!("{}/", h.app_origin()).as_str())
    );
}

#[tokio::test]
async fn an_issuer_that_does_not_match_discovery_stops_the_binary() {
    let idp = testkit::TestIdp::start(IdpConfig {
        advertised_issuer: Some("https://other.example/tenant".into()),
        ..IdpConfig::default()
    })
    .await;
    let dir = std::env::temp_dir().join(format!("oidcgate-issuer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("config.yaml");
    std::fs::write(
        &cfg,
        format!(
            "listen: \"127.0.0.1:{}\"\n{}",
            testkit::free_port(),
            gate_yaml(&idp, None, "")
        ),
    )
    .unwrap();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_oidcgate"))
        .args(["--config", cfg.to_str().unwrap(), "run"])
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let out = tokio::time::timeout(REQUEST_TIMEOUT, child.wait_with_output())
        .await
        .expect("the gate must stop on its own")
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success(), "{out:?}");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(text.contains("https://other.example/tenant"), "{text}");
    assert!(text.contains(&idp.issuer()), "{text}");
}

/// An Entra ID user in too many groups: the ID token names Graph instead of
/// carrying `groups` (the old Azure AD Graph URL, which must not be called).
fn overage_claims() -> Value {
    json!({
        "groups": null,
        "_claim_names": {"groups": "src1"},
        "_claim_sources": {"src1": {"endpoint": "https://graph.windows.net/tenant/users/x/getMemberObjects"}},
    })
}

async fn entra_overage_gate(graph: &testkit::graph::FakeGraph, rules: &str) -> Harness {
    let h = Harness::start_with(
        Door::Proxy,
        entra(TENANT, entra_user(TENANT, json!({}))),
        &format!(
            "providerType: entra\nallowedTenants: [{TENANT}]\nmicrosoftGraphURL: {}\n{rules}",
            graph.url()
        ),
    )
    .await;
    h.idp.set_id_token_overrides(overage_claims());
    h
}

#[tokio::test]
async fn entra_group_overage_reads_every_page_of_groups_from_graph() {
    let groups: Vec<String> = (1..=5)
        .map(|i| format!("00000000-0000-0000-0000-00000000000{i}"))
        .collect();
    let graph = testkit::graph::FakeGraph::start(groups.clone(), 2).await;
    let h = entra_overage_gate(
        &graph,
        "allowedRolesAndGroups: [00000000-0000-0000-0000-000000000005]\n",
    )
    .await;
    let trace = h.browser().login(&h, "/").await;
    assert_eq!(trace.landed.status, StatusCode::OK, "{:?}", trace.landed);
    assert_eq!(
        trace.landed.identity(Door::Proxy)["x-user-groups"],
        groups.join(",")
    );
    // Three pages of two; the directory role on each page is not a group.
    assert_eq!(graph.requests(), 3);
    // Graph was asked with the session's (Graph) access token.
    use base64::Engine as _;
    let token = graph.tokens_seen()[0].clone();
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.split('.').next().unwrap())
        .unwrap();
    assert!(
        String::from_utf8_lossy(&header).contains("nonce"),
        "{token}"
    );
}

#[tokio::test]
async fn entra_group_overage_fails_closed_when_graph_cannot_answer() {
    let graph = testkit::graph::FakeGraph::start(vec!["g1".into()], 10).await;
    graph.fail_with(503);
    let h = entra_overage_gate(&graph, "allowedRolesAndGroups: [g1]\n").await;
    let refused = callback_answer(&h, &mut h.browser()).await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{refused:?}"
    );
    assert!(refused.body.contains("Microsoft Graph"), "{}", refused.body);
    assert!(
        refused
            .set_cookie(SESSION_COOKIE)
            .is_none_or(|c| is_deletion(&c))
    );
    graph.fail_with(403);
    let refused = callback_answer(&h, &mut h.browser()).await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{refused:?}"
    );

    // Without a group rule the login goes on, with no groups.
    let h = entra_overage_gate(&graph, "").await;
    let trace = h.browser().login(&h, "/").await;
    assert_eq!(trace.landed.status, StatusCode::OK, "{:?}", trace.landed);
    assert_eq!(
        trace
            .landed
            .identity(Door::Proxy)
            .get("x-user-groups")
            .map(String::as_str)
            .unwrap_or(""),
        ""
    );
}

#[tokio::test]
async fn fetch_userinfo_merges_claims_the_id_token_lacks() {
    // GitLab: transitive groups only in userinfo.
    let mut user = TestUser::new("gl-1", "gil@example.com");
    user.userinfo_extra = object(json!({"groups": ["acme", "acme/platform"]}));
    let cfg = IdpConfig {
        user: user.clone(),
        ..IdpConfig::default()
    };
    let h = Harness::start_with(
        Door::Proxy,
        cfg.clone(),
        "providerType: gitlab\nallowedRolesAndGroups: [acme/platform]\n",
    )
    .await;
    h.idp.set_id_token_overrides(json!({"groups": null}));
    let trace = h.browser().login(&h, "/").await;
    assert_eq!(trace.landed.status, StatusCode::OK, "{:?}", trace.landed);
    assert_eq!(
        trace.landed.identity(Door::Proxy)["x-user-groups"],
        "acme,acme/platform"
    );

    // Without fetchUserinfo the rule has nothing to match.
    let h = Harness::start_with(
        Door::Proxy,
        cfg,
        "providerType: gitlab\nfetchUserinfo: false\nallowedRolesAndGroups: [acme/platform]\n",
    )
    .await;
    h.idp.set_id_token_overrides(json!({"groups": null}));
    let mut b = h.browser();
    let back = callback_answer(&h, &mut b).await;
    assert_eq!(back.status, StatusCode::FOUND, "{back:?}");
    let refused = b.get(&back.location().unwrap()).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");

    // A userinfo answer about another subject is refused.
    let mut other = user;
    other.userinfo_extra = object(json!({"sub": "someone-else"}));
    let h = Harness::start_with(
        Door::Proxy,
        IdpConfig {
            user: other,
            ..IdpConfig::default()
        },
        "fetchUserinfo: true\n",
    )
    .await;
    let refused = callback_answer(&h, &mut h.browser()).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{refused:?}");
}

/// Okta's custom authorization server: issuer `https://{domain}/oauth2/default`
/// with every endpoint under it, JWT access tokens for `api://default`,
/// groups in the ID token. Refresh tokens come with the `offline_access`
/// scope (Okta issues none without it), the access token is verified
/// against the configured audience, and logout sends the ID token as
/// `id_token_hint` (Okta's `/v1/logout` requires it).
#[tokio::test]
async fn okta_login_through_its_custom_authorization_server() {
    let mut user = TestUser::new("00u1abcd2EFGH3ijk4x7", "olga@example.com");
    user.groups = vec!["Everyone".into(), "Admins".into()];
    let cfg = IdpConfig {
        issuer_path: "/oauth2/default".into(),
        api_audience: "api://default".into(),
        user,
        ..IdpConfig::default()
    };
    let h = Harness::start_with(
        Door::Proxy,
        cfg,
        "providerType: okta\naudience: api://default\nallowedRolesAndGroups: [Admins]\n",
    )
    .await;
    assert!(h.idp.issuer().ends_with("/oauth2/default"));
    let mut b = h.browser();
    let trace = b.login(&h, "/").await;
    assert_eq!(trace.landed.status, StatusCode::OK, "{:?}", trace.landed);
    let id = trace.landed.identity(Door::Proxy);
    assert_eq!(id["x-forwarded-user"], "olga@example.com");
    assert_eq!(id["x-user-groups"], "Everyone,Admins");
    let scope = query_map(&trace.authorize)["scope"].clone();
    assert!(scope.split(' ').any(|s| s == "offline_access"), "{scope}");
    assert_eq!(h.idp.refresh_tokens_issued(), 1);

    let out = b.get_app("/oauth2/sign_out").await;
    assert_eq!(out.status, StatusCode::FOUND, "{out:?}");
    let to = out.location().unwrap();
    assert!(to.as_str().starts_with(&h.idp.issuer()), "{to}");
    assert!(query_map(&to).contains_key("id_token_hint"), "{to}");

    // An access token for another audience fails the login.
    let h = Harness::start_with(
        Door::Proxy,
        IdpConfig {
            issuer_path: "/oauth2/default".into(),
            api_audience: "api://other".into(),
            ..IdpConfig::default()
        },
        "providerType: okta\naudience: api://default\n",
    )
    .await;
    let refused = callback_answer(&h, &mut h.browser()).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{refused:?}");
}

/// Okta's org authorization server (issuer `https://{domain}`, no
/// `/oauth2/` path): its access tokens are for Okta's own APIs, signed by
/// keys no client is given. The Okta profile leaves them alone; the generic
/// profile would verify them and fail every login.
#[tokio::test]
async fn okta_org_server_access_tokens_are_not_verified() {
    let org = || IdpConfig {
        access_token_format: testkit::AccessTokenFormat::OktaOrg,
        ..IdpConfig::default()
    };
    let h = Harness::start_with(
        Door::Proxy,
        org(),
        "providerType: okta
",
    )
    .await;
    let trace = h.browser().login(&h, "/").await;
    assert_eq!(trace.landed.status, StatusCode::OK, "{:?}", trace.landed);
    assert_eq!(
        trace.landed.identity(Door::Proxy)["x-forwarded-user"],
        USER_EMAIL
    );
    let h = Harness::start_with(
        Door::Proxy,
        org(),
        "providerType: oidc
",
    )
    .await;
    let refused = callback_answer(&h, &mut h.browser()).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{refused:?}");
}

/// authentik: one issuer per application, `/application/o/{slug}/` with a
/// trailing slash in discovery and in every token, groups in the ID token.
/// The configured URL (without the slash) matches it, and no `resource`
/// parameter is sent (authentik refuses resource indicators).
#[tokio::test]
async fn authentik_login_with_its_per_application_issuer() {
    let mut user = TestUser::new("7f2d1c0b9a8e", "aki@example.com");
    user.preferred_username = Some("aki".into());
    user.groups = vec!["authentik Admins".into()];
    let cfg = IdpConfig {
        issuer_path: "/application/o/grafana".into(),
        advertised_issuer: Some("{base}/application/o/grafana/".into()),
        token_issuer: Some("{base}/application/o/grafana/".into()),
        user,
        ..IdpConfig::default()
    };
    let h = Harness::start_with(
        Door::Proxy,
        cfg,
        "providerType: authentik\nuserIdentifierClaim: preferred_username\n\
         allowedRolesAndGroups: [authentik Admins]\n",
    )
    .await;
    let trace = h.browser().login(&h, "/").await;
    assert_eq!(trace.landed.status, StatusCode::OK, "{:?}", trace.landed);
    let id = trace.landed.identity(Door::Proxy);
    assert_eq!(id["x-forwarded-user"], "aki");
    assert_eq!(id["x-user-groups"], "authentik Admins");
    let q = query_map(&trace.authorize);
    assert!(!q.contains_key("resource"), "{q:?}");
    assert!(
        q["scope"].split(' ').any(|s| s == "offline_access"),
        "{q:?}"
    );
}

/// Zitadel: project roles in `urn:zitadel:iam:org:project:roles` as a map
/// `{role: {orgId: orgDomain}}`, opaque access tokens. Its profile reads
/// the role names from that claim's keys; without the profile the same
/// user has no roles and is refused.
#[tokio::test]
async fn zitadel_login_reads_project_roles_from_its_map() {
    let mut user = TestUser::new("230984570912830495", "zoe@example.com");
    user.extra = object(json!({
        "urn:zitadel:iam:org:project:roles": {
            "admin": {"231848297847848": "acme.zitadel.cloud"},
            "viewer": {"231848297847848": "acme.zitadel.cloud"},
        },
    }));
    let cfg = IdpConfig {
        access_token_format: testkit::AccessTokenFormat::Opaque,
        user,
        ..IdpConfig::default()
    };
    let h = Harness::start_with(
        Door::ForwardAuth,
        cfg.clone(),
        "providerType: zitadel\nallowedRolesAndGroups: [admin]\n",
    )
    .await;
    let trace = h.browser().login(&h, "/").await;
    assert_eq!(trace.landed.status, StatusCode::OK, "{:?}", trace.landed);
    assert_eq!(
        trace.landed.identity(Door::ForwardAuth)["x-user-roles"],
        "admin,viewer"
    );

    let h = Harness::start_with(
        Door::Proxy,
        cfg,
        "providerType: oidc\nallowedRolesAndGroups: [admin]\n",
    )
    .await;
    let mut b = h.browser();
    let back = callback_answer(&h, &mut b).await;
    assert_eq!(back.status, StatusCode::FOUND, "{back:?}");
    let refused = b.get(&back.location().unwrap()).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");
}
