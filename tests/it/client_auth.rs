//! Client authentication at the provider: each method logs in against a
//! provider that accepts only that method and checks it with its own code;
//! introspection and revocation use the same method; a refused client gets
//! the error page, not a redirect loop.

use std::sync::Arc;

use http::StatusCode;
use oidcgate::clock::SystemClock;
use oidcgate::oidc::{
    AssertionAudience, AssertionKey, ClientAuthMethod, Provider, ProviderSettings,
};
use testkit::{AssertionAud, ClientKey, ClientKeyAlg, IdpConfig, TestIdp};

use crate::support::*;

fn idp_for(method: &str, key: Option<&ClientKey>) -> IdpConfig {
    IdpConfig {
        token_endpoint_auth_methods: vec![method.to_owned()],
        client_jwk: key.map(|k| k.public_jwk.clone()),
        ..IdpConfig::default()
    }
}

fn indented(pem: &str) -> String {
    pem.lines().map(|l| format!("  {l}\n")).collect()
}

fn key_yaml(key: &ClientKey) -> String {
    format!(
        "clientAssertionAlg: {}\nclientAssertionPrivateKey: |\n{}",
        key.alg.as_str(),
        indented(&key.private_pem)
    )
}

async fn login_uses(idp_cfg: IdpConfig, extra: &str, want: &str) {
    let h = Harness::start_with(Door::Proxy, idp_cfg, extra).await;
    let mut b = h.browser();
    let trace = b.login(&h, "/").await;
    assert_eq!(
        trace.landed.status,
        StatusCode::OK,
        "{want}: {:?}",
        trace.landed
    );
    let used = h.idp.client_auth_methods_used();
    assert!(!used.is_empty());
    assert!(used.iter().all(|m| *m == want), "{want}: {used:?}");
}

#[tokio::test]
async fn each_secret_method_chosen_from_discovery() {
    for method in [
        "client_secret_basic",
        "client_secret_post",
        "client_secret_jwt",
    ] {
        login_uses(idp_for(method, None), "", method).await;
    }
}

#[tokio::test]
async fn basic_encodes_a_secret_with_reserved_characters() {
    let cfg = IdpConfig {
        client_id: "web app/1".into(),
        client_secret: "p:a%2Bs+s w/o=rd%".into(),
        ..idp_for("client_secret_basic", None)
    };
    // The YAML quotes the id and secret; the gate encodes them per RFC 6749.
    let h = Harness::start_with(Door::Proxy, cfg, "clientAuthMethod: client_secret_basic\n").await;
    let mut b = h.browser();
    assert_eq!(b.login(&h, "/").await.landed.status, StatusCode::OK);
    assert_eq!(h.idp.client_auth_methods_used(), ["client_secret_basic"]);
}

#[tokio::test]
async fn private_key_jwt_with_every_key_type() {
    for alg in [
        ClientKeyAlg::RS256,
        ClientKeyAlg::PS256,
        ClientKeyAlg::ES256,
    ] {
        let key = ClientKey::generate(alg);
        // Chosen from discovery: the provider advertises private_key_jwt
        // first, and the gate holds a key.
        let mut cfg = idp_for("private_key_jwt", Some(&key));
        cfg.token_endpoint_auth_methods
            .push("client_secret_basic".into());
        login_uses(cfg, &key_yaml(&key), "private_key_jwt").await;
    }
}

#[tokio::test]
async fn private_key_jwt_audience_is_the_token_endpoint_when_asked() {
    let key = ClientKey::generate(ClientKeyAlg::ES256);
    let cfg = IdpConfig {
        assertion_aud: AssertionAud::TokenEndpoint,
        ..idp_for("private_key_jwt", Some(&key))
    };
    let extra = format!(
        "clientAuthMethod: private_key_jwt\nclientAssertionAudience: token_endpoint\n{}",
        key_yaml(&key)
    );
    login_uses(cfg, &extra, "private_key_jwt").await;
}

#[tokio::test]
async fn introspection_and_revocation_use_the_same_method() {
    let key = ClientKey::generate(ClientKeyAlg::RS256);
    let idp = TestIdp::start(idp_for("private_key_jwt", Some(&key))).await;
    let mut s = ProviderSettings::new(&idp.issuer(), idp.client_id(), "");
    s.client_auth = Some(ClientAuthMethod::PrivateKeyJwt);
    s.assertion_audience = AssertionAudience::Issuer;
    s.assertion_key = Some(Arc::new(
        AssertionKey::from_pem(
            key.private_pem.as_bytes(),
            jsonwebtoken::Algorithm::RS256,
            None,
        )
        .unwrap(),
    ));
    let p = Provider::new(s, Arc::new(SystemClock)).unwrap();
    let token = idp.access_token(serde_json::json!({}));
    let answer = p.introspect(&token).await.unwrap();
    assert_eq!(answer["active"], true);
    p.revoke(&token, "access_token").await.unwrap();
    let answer = p.introspect(&token).await.unwrap();
    assert_eq!(answer["active"], false, "revocation took effect");
    assert_eq!(idp.client_auth_methods_used(), ["private_key_jwt"; 3]);
}

#[tokio::test]
async fn refused_client_gets_the_error_page_not_a_loop() {
    let key = ClientKey::generate(ClientKeyAlg::ES256);
    // The provider wants private_key_jwt; the gate only has a secret and is
    // told to use it.
    let h = Harness::start_with(
        Door::Proxy,
        idp_for("private_key_jwt", Some(&key)),
        "clientAuthMethod: client_secret_post\n",
    )
    .await;
    let mut b = h.browser();
    let first = b.get_app("/").await;
    assert_eq!(first.status, StatusCode::FOUND);
    let at_idp = b.get(&first.location().unwrap()).await;
    let callback = b.get(&at_idp.location().unwrap()).await;
    assert_eq!(callback.status, StatusCode::BAD_GATEWAY, "{callback:?}");
    assert!(callback.header("location").is_none());
    assert!(
        callback.body.contains("identity provider"),
        "{}",
        callback.body
    );
    assert_eq!(h.idp.counters().authorize, 1);
    assert!(h.idp.client_auth_methods_used().is_empty());
}
