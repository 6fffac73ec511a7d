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
