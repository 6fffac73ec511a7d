//! RFC 8707 resource indicators and the audience rule of a session's
//! access token: `resource` on the authorization request and both grants,
//! the resource as the expected audience when `audience` is unset, and what
//! `strictAudienceValidation` does to a token for another audience.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::StatusCode;
use oidcgate::clock::ManualClock;
use serde_json::{Value, json};
use testkit::IdpConfig;

use crate::support::*;

/// The resource indicator of these tests.
const RESOURCE: &str = "https://api.example.com/v1";
/// Seconds that make a fresh session due for refresh (tokens live 300 s,
/// the refresh grace period is 60 s).
const UNTIL_REFRESH: u64 = 250;

/// A provider that honours resource indicators, or ignores them (as
/// Keycloak and Zitadel do) when `honours` is false.
fn provider(honours: bool) -> IdpConfig {
    IdpConfig {
        resource_indicators: honours,
        ..IdpConfig::default()
    }
}

/// A gate on `extra` reading time from a manual clock, in front of the
/// harness's provider and upstream (reverse-proxy door).
async fn start(idp: IdpConfig, extra: &str) -> (Harness, GateServer, Arc<ManualClock>) {
    let h = Harness::start_with(Door::Proxy, idp, "").await;
    let clock = ManualClock::starting_now();
    let yaml = gate_yaml(&h.idp, Some(&h.upstream.url()), extra);
    let gate = GateServer::start_with_clock(&yaml, clock.clone()).await;
    (h, gate, clock)
}

fn callback_uri(gate: &GateServer) -> String {
    format!("{}/oauth2/callback", gate.url())
}

/// The values of parameter `name` in one recorded request.
fn values<'a>(params: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    params
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The recorded `/token` request of `grant_type`, the last one.
fn last_grant(h: &Harness, grant_type: &str) -> Vec<(String, String)> {
    h.idp
        .token_requests()
        .into_iter()
        .rev()
        .find(|f| values(f, "grant_type") == [grant_type])
        .unwrap_or_else(|| panic!("no {grant_type} grant"))
}

/// The access token the upstream received (`passAccessToken`).
fn upstream_access_token(resp: &Resp) -> String {
    resp.upstream_headers()
        .get("x-forwarded-access-token")
        .cloned()
        .unwrap_or_else(|| panic!("no access token upstream: {resp:?}"))
}

/// The `aud` claim of a JWT, unverified.
fn aud_of(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["aud"].clone()
}

/// Logs in through `gate` and returns the browser and its landing answer.
async fn login(h: &Harness, gate: &GateServer) -> (Browser, Resp) {
    let mut b = h.browser().via(gate);
    let trace = b.login_with_redirect_uri(h, "/", &callback_uri(gate)).await;
    (b, trace.landed)
}

#[tokio::test]
async fn resource_is_sent_on_the_authorization_request_and_both_grants() {
    let extra = format!(
        "resource: {RESOURCE}\npassAccessToken: true\n\
         extraAuthParams: {{resource: 'https://other.example.com', ui_locales: de}}\n"
    );
    let (h, gate, clock) = start(provider(true), &extra).await;
    let (mut b, landed) = login(&h, &gate).await;
    assert_eq!(landed.status, StatusCode::OK, "{landed:?}");

    // One resource parameter, the key's: extraAuthParams cannot override it.
    let authorize = h.idp.authorize_requests();
    let authorize = authorize.last().unwrap();
    assert_eq!(values(authorize, "resource"), [RESOURCE]);
    assert_eq!(values(authorize, "ui_locales"), ["de"]);
    assert_eq!(
        values(&last_grant(&h, "authorization_code"), "resource"),
        [RESOURCE]
    );
    let first = upstream_access_token(&landed);
    assert_eq!(
        aud_of(&first),
        json!(RESOURCE),
        "audience unset: the resource is"
    );

    // The refresh grant names the resource too, and the new token keeps it.
    clock.advance(UNTIL_REFRESH);
    let after = b.get_app("/").await;
    assert_eq!(after.status, StatusCode::OK, "{after:?}");
    assert_eq!(h.idp.counters().refresh_grants, 1);
    assert_eq!(
        values(&last_grant(&h, "refresh_token"), "resource"),
        [RESOURCE]
    );
    let refreshed = upstream_access_token(&after);
    assert_ne!(refreshed, first);
    assert_eq!(aud_of(&refreshed), json!(RESOURCE));
}

#[tokio::test]
async fn without_resource_no_resource_parameter_is_sent() {
    let (h, gate, _clock) = start(provider(true), "").await;
    let (_, landed) = login(&h, &gate).await;
    assert_eq!(landed.status, StatusCode::OK);
    assert!(values(h.idp.authorize_requests().last().unwrap(), "resource").is_empty());
    assert!(values(&last_grant(&h, "authorization_code"), "resource").is_empty());
}

#[tokio::test]
async fn strict_validation_expects_the_resource_when_audience_is_unset() {
    // Strict and without `audience`: a token for the resource is accepted
    // (the expected audience is the resource, not the client id) ...
    let extra = format!("resource: {RESOURCE}\nstrictAudienceValidation: true\n");
    let (h, gate, _clock) = start(provider(true), &extra).await;
    let (_, landed) = login(&h, &gate).await;
    assert_eq!(landed.status, StatusCode::OK, "{landed:?}");

    // ... and a provider that ignores the indicator (its tokens name its
    // default API) fails the login.
    let (h, gate, _clock) = start(provider(false), &extra).await;
    let refused = callback_answer(&h, &gate).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{refused:?}");
    assert!(refused.set_cookie(SESSION_COOKIE).is_none());

    // Without strict validation that login rests on the ID token, as the
    // plugin's fallback does: the session holds the provider's token.
    let extra = format!("resource: {RESOURCE}\npassAccessToken: true\n");
    let (h, gate, _clock) = start(provider(false), &extra).await;
    let (_, landed) = login(&h, &gate).await;
    assert_eq!(landed.status, StatusCode::OK, "{landed:?}");
    assert_eq!(
        aud_of(&upstream_access_token(&landed)),
        json!("api://default")
    );
}

#[tokio::test]
async fn a_refreshed_token_for_another_audience_ends_a_strict_session_only() {
    for strict in [false, true] {
        let extra = format!(
            "resource: {RESOURCE}\npassAccessToken: true\nstrictAudienceValidation: {strict}\n"
        );
        let (h, gate, clock) = start(provider(true), &extra).await;
        let (mut b, landed) = login(&h, &gate).await;
        assert_eq!(landed.status, StatusCode::OK, "strict {strict}: {landed:?}");

        // From now on the provider issues tokens for another API.
        h.idp
            .set_access_token_overrides(json!({"aud": "api://other"}));
        clock.advance(UNTIL_REFRESH);
        let after = b.get_app("/").await;
        assert_eq!(h.idp.counters().refresh_grants, 1, "strict {strict}");
        if strict {
            // The session is over: the browser is sent to log in again.
            assert_eq!(after.status, StatusCode::FOUND, "{after:?}");
            let to = after.location().unwrap();
            assert_eq!(
                to.as_str().split('?').next(),
                Some(format!("{}/authorize", h.idp.issuer()).as_str())
            );
            let cleared = after.set_cookie(SESSION_COOKIE).unwrap();
            assert!(is_deletion(&cleared), "{cleared}");
        } else {
            assert_eq!(after.status, StatusCode::OK, "{after:?}");
            assert_eq!(aud_of(&upstream_access_token(&after)), json!("api://other"));
        }
    }
}

#[tokio::test]
async fn an_explicit_audience_refuses_another_audience_without_strict() {
    // `audience` was already judged strictly before `resource` existed;
    // the resource does not soften it.
    let extra = format!("audience: api://expected\nresource: {RESOURCE}\n");
    let (h, gate, _clock) = start(provider(true), &extra).await;
    let refused = callback_answer(&h, &gate).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{refused:?}");
    // The authorization request asks for both.
    let authorize = h.idp.authorize_requests();
    let authorize = authorize.last().unwrap();
    assert_eq!(values(authorize, "audience"), ["api://expected"]);
    assert_eq!(values(authorize, "resource"), [RESOURCE]);
}

/// Follows a login through `gate` up to the callback's answer, without
/// asserting success.
async fn callback_answer(h: &Harness, gate: &GateServer) -> Resp {
    let mut b = h.browser().via(gate);
    let start = b.get_app("/").await;
    assert_eq!(start.status, StatusCode::FOUND, "{start:?}");
    let at_idp = b.get(&start.location().unwrap()).await;
    assert_eq!(at_idp.status, StatusCode::FOUND, "{at_idp:?}");
    b.get(&at_idp.location().unwrap()).await
}
