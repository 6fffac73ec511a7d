//! Signature algorithms beyond the common ones: a provider signing with
//! ES512 (ECDSA on P-521) logs users in and its bearer tokens pass; a
//! token whose `alg` does not fit the key's curve never does.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::{IdpConfig, Mint, SigningAlg};

use crate::support::*;

/// The API audience of the bearer checks.
const API: &str = "api://es512";

fn es512() -> IdpConfig {
    IdpConfig {
        signing_alg: SigningAlg::ES512,
        ..IdpConfig::default()
    }
}

/// The JOSE header of a compact JWS, unverified.
fn header_of(jwt: &str) -> Value {
    let h = jwt.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap()
}

#[tokio::test]
async fn es512_signed_tokens_log_in_through_every_door() {
    for door in Door::ALL {
        let h = Harness::start_with(door, es512(), "passAccessToken: true\n").await;
        let jwk = &h.idp.jwks()["keys"][0];
        assert_eq!(
            (jwk["alg"].as_str(), jwk["crv"].as_str()),
            (Some("ES512"), Some("P-521"))
        );
        let mut b = h.browser();
        let trace = b.login(&h, "/").await;
        assert_eq!(
            trace.landed.status,
            door.allowed_status(),
            "{door:?}: {:?}",
            trace.landed
        );
        let at = trace.landed.identity(door)["x-forwarded-access-token"].clone();
        assert_eq!(header_of(&at)["alg"], "ES512", "{door:?}");
    }
}

async fn bearer_status(h: &Harness, token: &str) -> StatusCode {
    let mut b = h.browser();
    let url = b.app_url("/api/items");
    let bearer = format!("Bearer {token}");
    b.request(
        Method::GET,
        &url,
        &[("authorization", &bearer), ("accept", "application/json")],
        None,
    )
    .await
    .status
}

#[tokio::test]
async fn es512_bearer_tokens_pass_and_forgeries_do_not() {
    let extra = format!("enableBearerAuth: true\naudience: {API}\n");
    let h = Harness::start_with(Door::Proxy, es512(), &extra).await;
    let token = h.idp.client_credentials_token(API);
    assert_eq!(header_of(&token)["alg"], "ES512");
    assert_eq!(bearer_status(&h, &token).await, StatusCode::OK);

    // One changed byte of the signature.
    let (signed, sig) = token.rsplit_once('.').unwrap();
    let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    sig[10] ^= 1;
    let forged = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(&sig));
    assert_eq!(bearer_status(&h, &forged).await, StatusCode::UNAUTHORIZED);

    // Claims of a valid token under other algorithms with the same key id:
    // ES256 and ES384 name other curves, RS256 another key type.
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    for alg in ["ES256", "ES384", "RS256"] {
        let relabelled = h.idp.mint(Mint {
            header: json!({"alg": alg}),
            claims: claims.clone(),
            ..Mint::default()
        });
        assert_eq!(
            bearer_status(&h, &relabelled).await,
            StatusCode::UNAUTHORIZED,
            "{alg}"
        );
    }
    // The same claims signed again by the provider's key pass: the
    // refusals above are the algorithm's, not the claims'.
    let mut claims = claims;
    claims["jti"] = json!("resigned-once");
    let resigned = h.idp.mint(Mint::new(claims));
    assert_eq!(bearer_status(&h, &resigned).await, StatusCode::OK);
}
