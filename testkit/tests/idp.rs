//! Behaviour of the test OpenID Provider over real sockets.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P521_SHA512_FIXED, RSA_PKCS1_2048_8192_SHA256,
    RsaPublicKeyComponents, UnparsedPublicKey,
};
use aws_lc_rs::{digest, hmac};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::{
    AccessTokenFormat, Endpoint, Fault, IdpConfig, KeyChoice, Mint, SigningAlg, TestIdp, TestUser,
};
use url::Url;

// ---------------------------------------------------------------------------
// Helpers

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).unwrap()
}

/// Decodes a compact JWS into (header, claims, signing input, signature).
fn split(token: &str) -> (Value, Value, String, Vec<u8>) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "compact JWS has three parts: {token}");
    let header = serde_json::from_slice(&unb64(parts[0])).unwrap();
    let claims = serde_json::from_slice(&unb64(parts[1])).unwrap();
    (
        header,
        claims,
        format!("{}.{}", parts[0], parts[1]),
        unb64(parts[2]),
    )
}

/// Verifies `token` against the JWK with its `kid` in `jwks`, using only the
/// published key material, and returns its claims.
fn verify_with_jwks(token: &str, jwks: &Value) -> Result<Value, String> {
    let (header, claims, input, sig) = split(token);
    let kid = header["kid"].as_str().ok_or("no kid")?;
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .ok_or_else(|| format!("kid {kid} not published"))?;
    assert_eq!(header["alg"], jwk["alg"]);
    let ok = match jwk["kty"].as_str().unwrap() {
        "RSA" => {
            let key = RsaPublicKeyComponents {
                n: unb64(jwk["n"].as_str().unwrap()),
                e: unb64(jwk["e"].as_str().unwrap()),
            };
            key.verify(&RSA_PKCS1_2048_8192_SHA256, input.as_bytes(), &sig)
                .is_ok()
        }
        "EC" => {
            let alg = match jwk["crv"].as_str().unwrap() {
                "P-256" => &ECDSA_P256_SHA256_FIXED,
                "P-521" => &ECDSA_P521_SHA512_FIXED,
                other => panic!("unexpected curve {other}"),
            };
            let mut point = vec![0x04];
            point.extend(unb64(jwk["x"].as_str().unwrap()));
            point.extend(unb64(jwk["y"].as_str().unwrap()));
            UnparsedPublicKey::new(alg, point)
                .verify(input.as_bytes(), &sig)
                .is_ok()
        }
        other => panic!("unexpected kty {other}"),
    };
    if ok {
        Ok(claims)
    } else {
        Err("bad signature".into())
    }
}

async fn fetch_jwks(idp: &TestIdp) -> Value {
    http()
        .get(format!("{}/jwks", idp.issuer()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A PKCE verifier and its S256 challenge.
fn pkce() -> (String, String) {
    let verifier = b64(&[7u8; 40]) + "-._~";
    let challenge = b64(digest::digest(&digest::SHA256, verifier.as_bytes()).as_ref());
    (verifier, challenge)
}

const REDIRECT: &str = "http://127.0.0.1:9/callback";

/// Runs `/authorize` and returns the parsed redirect `Location`.
async fn authorize_url(idp: &TestIdp, extra: &[(&str, &str)]) -> (StatusCode, Option<Url>) {
    let mut url = Url::parse(&format!("{}/authorize", idp.issuer())).unwrap();
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in extra {
            q.append_pair(k, v);
        }
    }
    let resp = http().get(url).send().await.unwrap();
    let status = resp.status();
    let location = resp
        .headers()
        .get("location")
        .map(|l| Url::parse(l.to_str().unwrap()).unwrap());
    (status, location)
}

fn query_param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Performs a successful `/authorize` with PKCE and returns (code, verifier).
async fn login(idp: &TestIdp) -> (String, String) {
    let (verifier, challenge) = pkce();
    let (status, location) = authorize_url(
        idp,
        &[
            ("response_type", "code"),
            ("client_id", idp.client_id()),
            ("redirect_uri", REDIRECT),
            ("scope", "openid profile email offline_access"),
            ("state", "st-1"),
            ("nonce", "n-1"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::FOUND);
    let location = location.unwrap();
    assert_eq!(query_param(&location, "state").as_deref(), Some("st-1"));
    assert_eq!(query_param(&location, "iss"), Some(idp.issuer()));
    (query_param(&location, "code").unwrap(), verifier)
}

async fn token_request(idp: &TestIdp, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let resp = http()
        .post(format!("{}/token", idp.issuer()))
        .basic_auth(idp.client_id(), Some(idp.client_secret()))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

async fn redeem(idp: &TestIdp, code: &str, verifier: &str) -> (StatusCode, Value) {
    token_request(
        idp,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ],
    )
    .await
}

async fn refresh(idp: &TestIdp, rt: &str) -> (StatusCode, Value) {
    token_request(
        idp,
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
    )
    .await
}

async fn introspect(idp: &TestIdp, token: &str) -> Value {
    let resp = http()
        .post(format!("{}/introspect", idp.issuer()))
        .form(&[
            ("token", token),
            ("client_id", idp.client_id()),
            ("client_secret", idp.client_secret()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

// ---------------------------------------------------------------------------
// Discovery and keys

#[tokio::test]
async fn discovery_advertises_all_endpoints() {
    let idp = TestIdp::start(IdpConfig::default()).await;
    let iss = idp.issuer();
    assert!(iss.starts_with("http://127.0.0.1:") && !iss.ends_with('/'));
    assert_eq!(iss, format!("http://{}", idp.addr()));
    let doc: Value = http()
        .get(idp.discovery_url())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["issuer"], iss);
    for (field, path) in [
        ("authorization_endpoint", "/authorize"),
        ("token_endpoint", "/token"),
        ("jwks_uri", "/jwks"),
        ("end_session_endpoint", "/session/end"),
        ("introspection_endpoint", "/introspect"),
        ("revocation_endpoint", "/revoke"),
        ("userinfo_endpoint", "/userinfo"),
    ] {
        assert_eq!(doc[field], format!("{iss}{path}"), "{field}");
    }
    assert_eq!(doc["response_types_supported"], json!(["code"]));
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        json!(["RS256", "ES256"])
    );
    assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        doc["scopes_supported"],
        json!(["openid", "profile", "email", "offline_access", "groups"])
    );
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        json!(["client_secret_post", "client_secret_basic"])
    );
    assert!(doc["subject_types_supported"].is_array());
    assert!(
        doc["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("refresh_token"))
    );
    assert_eq!(idp.counters().discovery_fetches, 1);
}

#[tokio::test]
async fn end_session_can_be_disabled() {
    let idp = TestIdp::start(IdpConfig {
        with_end_session: false,
        ..IdpConfig::default()
    })
    .await;
    let doc: Value = http()
        .get(idp.discovery_url())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc.get("end_session_endpoint").is_none());
    let resp = http()
        .get(format!("{}/session/end", idp.issuer()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn rs256_id_token_verifies_with_published_jwk() {
    let idp = TestIdp::start(IdpConfig::default()).await;
    let jwks = fetch_jwks(&idp).await;
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let jwk = &keys[0];
    assert_eq!(jwk["kid"], idp.current_kid());
    assert_eq!(jwk["kty"], "RSA");
    assert_eq!(jwk["alg"], "RS256");
    assert_eq!(jwk["use"], "sig");
    assert_eq!(
        unb64(jwk["n"].as_str().unwrap()).len(),
        256,
        "2048-bit modulus"
    );
    assert_eq!(jwk["e"], "AQAB");

    let token = idp.id_token(json!({ "custom": 1 }));
    let (header, ..) = split(&token);
    assert_eq!(
        header,
        json!({ "alg": "RS256", "kid": idp.current_kid(), "typ": "JWT" })
    );
    let claims = verify_with_jwks(&token, &jwks).unwrap();
    assert_eq!(claims["iss"], idp.issuer());
    assert_eq!(claims["aud"], "oidcgate");
    assert_eq!(claims["sub"], "demo-user-1");
    assert_eq!(claims["email"], "demo@example.com");
    assert_eq!(claims["groups"], json!(["staff"]));
    assert_eq!(claims["roles"], json!(["reader"]));
    assert_eq!(claims["custom"], 1);
    let exp = claims["exp"].as_u64().unwrap();
    assert!(exp > now() + 250 && exp <= now() + 301);

    // Any change to the payload must break the signature.
    let parts: Vec<&str> = token.split('.').collect();
    let mut forged = claims.clone();
    forged["sub"] = json!("someone-else");
    let forged_payload = b64(&serde_json::to_vec(&forged).unwrap());
    let tampered = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
    assert!(verify_with_jwks(&tampered, &jwks).is_err());
    assert_eq!(idp.counters().jwks_fetches, 1);
}

#[tokio::test]
async fn es256_tokens_verify_with_published_ec_jwk() {
    let idp = TestIdp::start(IdpConfig {
        signing_alg: SigningAlg::ES256,
        ..IdpConfig::default()
    })
    .await;
    let jwks = fetch_jwks(&idp).await;
    let jwk = &jwks["keys"][0];
    assert_eq!(jwk["kty"], "EC");
    assert_eq!(jwk["crv"], "P-256");
    assert_eq!(jwk["alg"], "ES256");
    assert_eq!(jwk["use"], "sig");
    assert_eq!(unb64(jwk["x"].as_str().unwrap()).len(), 32);
    assert_eq!(unb64(jwk["y"].as_str().unwrap()).len(), 32);

    let token = idp.access_token(json!({}));
    let (header, _, _, sig) = split(&token);
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(sig.len(), 64, "fixed-width r||s");
    let claims = verify_with_jwks(&token, &jwks).unwrap();
    assert_eq!(claims["aud"], "api://default");
    assert_eq!(claims["client_id"], "oidcgate");
    assert!(claims["jti"].is_string() && claims["scope"].is_string());
}

#[tokio::test]
async fn es512_tokens_verify_with_published_p521_jwk() {
    let idp = TestIdp::start(IdpConfig {
        signing_alg: SigningAlg::ES512,
        ..IdpConfig::default()
    })
    .await;
    let jwks = fetch_jwks(&idp).await;
    let jwk = &jwks["keys"][0];
    assert_eq!(
        (&jwk["kty"], &jwk["crv"], &jwk["alg"]),
        (&json!("EC"), &json!("P-521"), &json!("ES512"))
    );
    assert_eq!(unb64(jwk["x"].as_str().unwrap()).len(), 66);
    assert_eq!(unb64(jwk["y"].as_str().unwrap()).len(), 66);

    let (code, verifier) = login(&idp).await;
    let (status, body) = redeem(&idp, &code, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let at = body["access_token"].as_str().unwrap();
    let (header, _, _, sig) = split(at);
    assert_eq!(header["alg"], "ES512");
    assert_eq!(sig.len(), 132, "fixed-width r||s on P-521");
    verify_with_jwks(at, &jwks).unwrap();
    let id = verify_with_jwks(body["id_token"].as_str().unwrap(), &jwks).unwrap();
    // at_hash: the left half of the SHA-512 hash for ES512.
    let expected_hash = b64(&digest::digest(&digest::SHA512, at.as_bytes()).as_ref()[..32]);
    assert_eq!(id["at_hash"], expected_hash);
}

#[tokio::test]
async fn resource_indicators_choose_the_access_token_audience() {
    const RESOURCE: &str = "https://api.example.com";
    let aud_of = |body: &Value| split(body["access_token"].as_str().unwrap()).1["aud"].clone();
    for honours in [true, false] {
        let idp = TestIdp::start(IdpConfig {
            resource_indicators: honours,
            ..IdpConfig::default()
        })
        .await;
        let want = json!(if honours { RESOURCE } else { "api://default" });
        let (code, verifier) = login(&idp).await;
        let (status, body) = token_request(
            &idp,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &verifier),
                ("resource", RESOURCE),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(aud_of(&body), want, "code grant, honours {honours}");
        let rt = body["refresh_token"].as_str().unwrap().to_owned();
        let (_, body) = token_request(
            &idp,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &rt),
                ("resource", RESOURCE),
            ],
        )
        .await;
        assert_eq!(aud_of(&body), want, "refresh grant, honours {honours}");
        // Without a resource the configured API audience; overrides win.
        idp.set_access_token_overrides(json!({"aud": "api://other"}));
        let rt = body["refresh_token"].as_str().unwrap().to_owned();
        let (_, body) = refresh(&idp, &rt).await;
        assert_eq!(aud_of(&body), json!("api://other"));
        let recorded = idp.token_requests();
        assert_eq!(recorded.len(), 3);
        assert!(recorded[1].contains(&("resource".into(), RESOURCE.into())));
    }
}

#[tokio::test]
async fn key_rotation_keeps_old_keys_until_removed() {
    let idp = TestIdp::start(IdpConfig::default()).await;
    let old_kid = idp.current_kid();
    let old_token = idp.id_token(json!({}));

    idp.rotate_signing_key(SigningAlg::ES256);
    let new_kid = idp.current_kid();
    assert_ne!(old_kid, new_kid);
    let jwks = fetch_jwks(&idp).await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, vec![old_kid.as_str(), new_kid.as_str()]);
    let new_token = idp.id_token(json!({}));
    assert_eq!(split(&new_token).0["kid"], new_kid);
    assert_eq!(split(&new_token).0["alg"], "ES256");
    verify_with_jwks(&old_token, &jwks).unwrap();
    verify_with_jwks(&new_token, &jwks).unwrap();

    idp.remove_old_keys();
    let jwks = fetch_jwks(&idp).await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    assert_eq!(jwks["keys"][0]["kid"], new_kid);
    assert!(verify_with_jwks(&old_token, &jwks).is_err());
    verify_with_jwks(&new_token, &jwks).unwrap();
}

// ---------------------------------------------------------------------------
// Authorization code flow

#[tokio::test]
async fn code_flow_with_pkce_issues_verifiable_tokens() {
    let idp = TestIdp::start(IdpConfig::default()).await;
    let (code, verifier) = login(&idp).await;
    let (status, body) = redeem(&idp, &code, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["scope"], "openid profile email offline_access");
    assert!(body["refresh_token"].as_str().unwrap().len() >= 32);

    let jwks = fetch_jwks(&idp).await;
    let id = verify_with_jwks(body["id_token"].as_str().unwrap(), &jwks).unwrap();
    assert_eq!(id["iss"], idp.issuer());
    assert_eq!(id["aud"], "oidcgate");
    assert_eq!(id["azp"], "oidcgate");
    assert_eq!(id["nonce"], "n-1");
    assert_eq!(id["sub"], "demo-user-1");
    assert_eq!(id["email_verified"], true);
    assert_eq!(id["name"], "Demo User");
    assert_eq!(id["preferred_username"], "demo");
    assert!(id["sid"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(id["auth_time"].as_u64().unwrap() <= now());
    let at = body["access_token"].as_str().unwrap();
    let expected_hash = b64(&digest::digest(&digest::SHA256, at.as_bytes()).as_ref()[..16]);
    assert_eq!(id["at_hash"], expected_hash);

    let (at_header, ..) = split(at);
    assert_eq!(at_header["typ"], "at+jwt");
    let at_claims = verify_with_jwks(at, &jwks).unwrap();
    assert_eq!(at_claims["aud"], "api://default");
    assert_eq!(at_claims["sub"], "demo-user-1");
    assert_eq!(at_claims["client_id"], "oidcgate");
    assert_eq!(at_claims["scope"], "openid profile email offline_access");

    let c = idp.counters();
    assert_eq!((c.authorize, c.code_grants, c.failed_grants), (1, 1, 0));
}

#[tokio::test]
async fn pkce_wrong_or_missing_verifier_is_invalid_grant() {
    let idp = TestIdp::start(IdpConfig::default()).await;
    let (code, _) = login(&idp).await;
    let wrong = b64(&[9u8; 40]);
    let (status, body) = redeem(&idp, &code, &wrong).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");

    let (code, _) = login(&idp).await;
    let (status, body) = token_request(
        &idp,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");

    let c = idp.counters();
    assert_eq!((c.code_grants, c.failed_grants), (2, 2));
}

#[tokio::test]
async fn replayed_code_is_rejected_and_revokes_its_tokens() {
    let idp = TestIdp::start(IdpConfig::default()).await;
    let (code, verifier) = login(&idp).await;
    let (status, first) = redeem(&idp, &code, &verifier).await;
    assert_eq!(status, StatusCode::OK);
    let at = first["access_token"].as_str().unwrap();
    assert_eq!(introspect(&idp, at).await["active"], true);

    let (status, body) = redeem(&idp, &code, &verifier).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(introspect(&idp, at).await["active"], false);
    let (status, body) = refresh(&idp, first["refresh_token"].as_str().unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn code_is_bound_to_redirect_uri() {
    let idp = TestIdp::start(IdpConfig::default()).await;
    let (code, verifier) = login(&idp).await;
    let (status, body) = token_request(
        &idp,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:9/other"),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn authorize_validates_requests() {
    let idp = TestIdp::start(IdpConfig::default()).await;
    let base = [
        ("response_type", "code"),
        ("client_id", "oidcgate"),
        ("redirect_uri", REDIRECT),
        ("scope", "openid"),
        ("state", "s"),
        ("nonce", "n"),
    ];
    let with = |k: &'static str, v: &'static str| {
        let mut p: Vec<(&str, &str)> = base.iter().copied().filter(|(n, _)| *n != k).collect();
        if !v.is_empty() {
            p.push((k, v));
        }
        p
    };

    // Without PKCE the plain flow works.
    let (status, loc) = authorize_url(&idp, &base).await;
    assert_eq!(status, StatusCode::FOUND);
    assert!(query_param(&loc.unwrap(), "code").is_some());

    for (k, v) in [("client_id", "someone-else"), ("redirect_uri", "not a url")] {
        let (status, loc) = authorize_url(&idp, &with(k, v)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{k}");
        assert!(loc.is_none());
    }
    for (k, v, error) in [
        ("nonce", "", "invalid_request"),
        ("scope", "profile email", "invalid_scope"),
        ("response_type", "token", "unsupported_response_type"),
        ("code_challenge_method", "plain", "invalid_request"),
    ] {
        let (status, loc) = authorize_url(&idp, &with(k, v)).await;
        assert_eq!(status, StatusCode::FOUND, "{k}");
        let loc = loc.unwrap();
        assert_eq!(query_param(&loc, "error").as_deref(), Some(error), "{k}");
        assert_eq!(query_param(&loc, "state").as_deref(), Some("s"));
        assert!(query_param(&loc, "code").is_none());
    }
    assert_eq!(idp.counters().authorize, 7);
}

#[tokio::test]
async fn client_authentication_methods() {
    let idp = TestIdp::start(IdpConfig {
        client_secret: "p@ss word:/+%".into(),
        ..IdpConfig::default()
    })
    .await;
    let cc = [("grant_type", "client_credentials")];

    // client_secret_basic with RFC 6749 §2.3.1 form-encoding of the secret.
    let encoded: String = url::form_urlencoded::byte_serialize(b"p@ss word:/+%").collect();
    let basic = STANDARD.encode(format!("oidcgate:{encoded}"));
    let resp = http()
        .post(format!("{}/token", idp.issuer()))
        .header("authorization", format!("Basic {basic}"))
        .form(&cc)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    // client_secret_post.
    let resp = http()
        .post(format!("{}/token", idp.issuer()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "oidcgate"),
            ("client_secret", "p@ss word:/+%"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    // Wrong secret, and no credentials at all.
    for builder in [
        http()
            .post(format!("{}/token", idp.issuer()))
            .basic_auth("oidcgate", Some("nope")),
        http().post(format!("{}/token", idp.issuer())),
    ] {
        let resp = builder.form(&cc).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(resp.headers().contains_key("www-authenticate"));
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client");
    }
    let c = idp.counters();
    assert_eq!((c.client_credentials_grants, c.failed_grants), (4, 2));
}

#[tokio::test]
async fn set_user_and_id_token_overrides_apply_to_next_login() {
    let idp = TestIdp::start(IdpConfig::default()).await;
    let mut user = TestUser::new("alice", "alice@example.com");
    user.groups = vec!["admins".into()];
    user.extra.insert("tenant".into(), json!("t1"));
    idp.set_user(user);
    idp.set_id_token_overrides(json!({ "nonce": "wrong", "email_verified": null }));

    let (code, verifier) = login(&idp).await;
    let (_, body) = redeem(&idp, &code, &verifier).await;
    let (_, id, ..) = split(body["id_token"].as_str().unwrap());
    assert_eq!(id["sub"], "alice");
    assert_eq!(id["groups"], json!(["admins"]));
    assert_eq!(id["tenant"], "t1");
    assert_eq!(id["nonce"], "wrong");
    assert!(id.get("email_verified").is_none());

    idp.set_id_token_overrides(Value::Null);
    let (code, verifier) = login(&idp).await;
    let (_, body) = redeem(&idp, &code, &verifier).await;
    let (_, id, ..) = split(body["id_token"].as_str().unwrap());
    assert_eq!(id["nonce"], "n-1");
    assert_eq!(id["email_verified"], true);
}

// ---------------------------------------------------------------------------
// Refresh tokens

#[tokio::test]
async fn refresh_rotation_and_reuse_detection() {
    let idp = TestIdp::start(IdpConfig::default()).await;
    let (code, verifier) = login(&idp).await;
    let (_, first) = redeem(&idp, &code, &verifier).await;
    let rt1 = first["refresh_token"].as_str().unwrap();
    let (_, first_id, ..) = split(first["id_token"].as_str().unwrap());

    let (status, second) = refresh(&idp, rt1).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let rt2 = second["refresh_token"].as_str().unwrap();
    assert_ne!(rt1, rt2);
    let jwks = fetch_jwks(&idp).await;
    let id = verify_with_jwks(second["id_token"].as_str().unwrap(), &jwks).unwrap();
    assert_eq!(id["sid"], first_id["sid"]);
    assert_eq!(id["auth_time"], first_id["auth_time"]);
    assert!(id.get("nonce").is_none());
    assert_ne!(second["access_token"], first["access_token"]);

    // Reusing the rotated token fails and revokes the whole family.
    let (status, body) = refresh(&idp, rt1).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    let (status, body) = refresh(&idp, rt2).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(
        introspect(&idp, second["access_token"].as_str().unwrap()).await["active"],
        false
    );

    let c = idp.counters();
    assert_eq!((c.refresh_grants, c.failed_grants), (3, 2));
}

#[tokio::test]
async fn concurrent_refresh_with_one_token_trips_reuse_detection() {
    let idp = std::sync::Arc::new(
        TestIdp::start(IdpConfig {
            token_endpoint_delay: Duration::from_millis(200),
            ..IdpConfig::default()
        })
        .await,
    );
    let (code, verifier) = login(&idp).await;
    let (_, first) = redeem(&idp, &code, &verifier).await;
    let rt = first["refresh_token"].as_str().unwrap().to_owned();

    let mut tasks = Vec::new();
    for _ in 0..3 {
        let idp = idp.clone();
        let rt = rt.clone();
        tasks.push(tokio::spawn(async move { refresh(&idp, &rt).await }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        if status == StatusCode::OK {
            winners.push(body);
        } else {
            assert_eq!(body["error"], "invalid_grant");
        }
    }
    assert_eq!(winners.len(), 1, "exactly one concurrent refresh succeeds");
    // The reuse revoked the winner's new refresh token as well.
    let (status, _) = refresh(&idp, winners[0]["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test(start_paused = true)]
async fn authorization_code_expires_after_sixty_seconds() {
    let idp = TestIdp::start(IdpConfig::default()).await;
    let (code, verifier) = login(&idp).await;
    tokio::time::advance(Duration::from_secs(61)).await;
    let (status, body) = redeem(&idp, &code, &verifier).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_description"], "authorization code expired");
}

#[tokio::test]
async fn refresh_without_rotation_keeps_the_token() {
    let idp = TestIdp::start(IdpConfig {
        rotate_refresh_tokens: false,
        ..IdpConfig::default()
    })
    .await;
    let (code, verifier) = login(&idp).await;
    let (_, first) = redeem(&idp, &code, &verifier).await;
    let rt = first["refresh_token"].as_str().unwrap();
    for _ in 0..2 {
        let (status, body) = refresh(&idp, rt).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.get("refresh_token").is_none());
        assert!(body["id_token"].is_string());
    }
}

#[tokio::test]
async fn refresh_tokens_can_be_disabled_revoked_and_expired() {
    let idp = TestIdp::start(IdpConfig {
        issue_refresh_tokens: false,
        ..IdpConfig::default()
    })
    .await;
    let (code, verifier) = login(&idp).await;
    let (_, body) = redeem(&idp, &code, &verifier).await;
    assert!(body.get("refresh_token").is_none());

    let idp = TestIdp::start(IdpConfig::default()).await;
    let mut rts = Vec::new();
    for _ in 0..4 {
        let (code, verifier) = login(&idp).await;
        let (_, body) = redeem(&idp, &code, &verifier).await;
        rts.push(body["refresh_token"].as_str().unwrap().to_owned());
    }
    idp.revoke_refresh_token(&rts[0]);
    assert_eq!(refresh(&idp, &rts[0]).await.1["error"], "invalid_grant");

    // RFC 7009 revocation endpoint.
    let resp = http()
        .post(format!("{}/revoke", idp.issuer()))
        .basic_auth("oidcgate", Some("s3cr3t-for-tests"))
        .form(&[
            ("token", rts[1].as_str()),
            ("token_type_hint", "refresh_token"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(refresh(&idp, &rts[1]).await.1["error"], "invalid_grant");

    idp.expire_refresh_tokens();
    assert_eq!(refresh(&idp, &rts[2]).await.1["error"], "invalid_grant");
    assert_eq!(refresh(&idp, &rts[3]).await.1["error"], "invalid_grant");
}

#[tokio::test]
async fn token_endpoint_delay_is_applied() {
    let idp = TestIdp::start(IdpConfig {
        token_endpoint_delay: Duration::from_millis(300),
        ..IdpConfig::default()
    })
    .await;
    let (code, verifier) = login(&idp).await;
    let started = Instant::now();
    let (status, _) = redeem(&idp, &code, &verifier).await;
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

// ---------------------------------------------------------------------------
// Client credentials, introspection, userinfo, logout

#[tokio::test]
async fn client_credentials_tokens() {
    let idp = TestIdp::start(IdpConfig::default()).await;
    let jwks = fetch_jwks(&idp).await;
    for (extra, aud) in [
        (None, "api://default"),
        (Some(("audience", "api://orders")), "api://orders"),
        (
            Some(("resource", "https://billing.example")),
            "https://billing.example",
        ),
    ] {
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("scope", "read write"),
        ];
        form.extend(extra);
        let (status, body) = token_request(&idp, &form).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.get("id_token").is_none() && body.get("refresh_token").is_none());
        assert_eq!(body["scope"], "read write");
        let token = body["access_token"].as_str().unwrap();
        assert_eq!(split(token).0["typ"], "at+jwt");
        let claims = verify_with_jwks(token, &jwks).unwrap();
        assert_eq!(claims["aud"], aud);
        assert_eq!(claims["sub"], "oidcgate");
        assert_eq!(claims["client_id"], "oidcgate");
        assert_eq!(claims["scope"], "read write");
        assert!(claims["jti"].is_string());
    }
    let helper = idp.client_credentials_token("api://x");
    assert_eq!(verify_with_jwks(&helper, &jwks).unwrap()["aud"], "api://x");
    assert_eq!(idp.counters().client_credentials_grants, 3);
}

#[tokio::test]
async fn introspection_reports_active_and_inactive_tokens() {
    let idp = TestIdp::start(IdpConfig {
        access_token_format: AccessTokenFormat::Opaque,
        ..IdpConfig::default()
    })
    .await;
    let (code, verifier) = login(&idp).await;
    let (_, body) = redeem(&idp, &code, &verifier).await;
    let at = body["access_token"].as_str().unwrap();
    assert_eq!(at.split('.').count(), 1, "opaque token");

    let info = introspect(&idp, at).await;
    assert_eq!(info["active"], true);
    assert_eq!(info["sub"], "demo-user-1");
    assert_eq!(info["client_id"], "oidcgate");
    assert_eq!(info["aud"], "api://default");
    assert_eq!(info["iss"], idp.issuer());
    assert_eq!(info["username"], "demo");
    assert_eq!(info["token_type"], "Bearer");
    assert!(info["exp"].as_u64().unwrap() > now());
    assert!(info["iat"].as_u64().unwrap() <= now());
    assert!(info["scope"].as_str().unwrap().contains("openid"));

    let rt_info = introspect(&idp, body["refresh_token"].as_str().unwrap()).await;
    assert_eq!(rt_info["active"], true);

    assert_eq!(
        introspect(&idp, "not-a-token").await,
        json!({ "active": false })
    );
    let minted = idp.mint(Mint::new(json!({ "sub": "x" })));
    assert_eq!(introspect(&idp, &minted).await["active"], false);
    let helper = idp.access_token(json!({ "scope": "custom" }));
    assert_eq!(introspect(&idp, &helper).await["scope"], "custom");
    let expired = idp.access_token(json!({ "exp": now() - 10 }));
    assert_eq!(introspect(&idp, &expired).await["active"], false);

    // Revocation through RFC 7009 makes an opaque token inactive.
    let resp = http()
        .post(format!("{}/revoke", idp.issuer()))
        .form(&[
            ("token", at),
            ("client_id", "oidcgate"),
            ("client_secret", "s3cr3t-for-tests"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(introspect(&idp, at).await["active"], false);

    // Client authentication is required.
    let resp = http()
        .post(format!("{}/introspect", idp.issuer()))
        .form(&[("token", at)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(idp.counters().introspections, 8);
}

#[tokio::test]
async fn userinfo_requires_an_issued_access_token() {
    let idp = TestIdp::start(IdpConfig::default()).await;
    let (code, verifier) = login(&idp).await;
    let (_, body) = redeem(&idp, &code, &verifier).await;
    let resp = http()
        .get(format!("{}/userinfo", idp.issuer()))
        .bearer_auth(body["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let info: Value = resp.json().await.unwrap();
    assert_eq!(info["sub"], "demo-user-1");
    assert_eq!(info["email"], "demo@example.com");
    assert_eq!(info["groups"], json!(["staff"]));

    let resp = http()
        .get(format!("{}/userinfo", idp.issuer()))
        .bearer_auth("forged")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn end_session_redirects_and_ends_the_session() {
    let idp = TestIdp::start(IdpConfig::default()).await;
    let (code, verifier) = login(&idp).await;
    let (_, body) = redeem(&idp, &code, &verifier).await;
    let mut url = Url::parse(&format!("{}/session/end", idp.issuer())).unwrap();
    url.query_pairs_mut()
        .append_pair("id_token_hint", body["id_token"].as_str().unwrap())
        .append_pair("post_logout_redirect_uri", "http://127.0.0.1:9/bye")
        .append_pair("state", "xyz");
    let resp = http().get(url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(
        resp.headers()["location"],
        "http://127.0.0.1:9/bye?state=xyz"
    );

    // The session's refresh token no longer works.
    let (status, err) = refresh(&idp, body["refresh_token"].as_str().unwrap()).await;
    assert_eq!(
        (status, err["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );

    let resp = http()
        .get(format!("{}/session/end", idp.issuer()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.text().await.unwrap().contains("logged out"));
    assert_eq!(idp.counters().end_session_calls, 2);
}

#[tokio::test]
async fn logout_token_has_backchannel_shape() {
    let idp = TestIdp::start(IdpConfig::default()).await;
    let token = idp.logout_token(Some("sid-1"), Some("demo-user-1"));
    let (header, ..) = split(&token);
    assert_eq!(header["typ"], "logout+jwt");
    let claims = verify_with_jwks(&token, &fetch_jwks(&idp).await).unwrap();
    assert_eq!(claims["iss"], idp.issuer());
    assert_eq!(claims["aud"], "oidcgate");
    assert_eq!(claims["sid"], "sid-1");
    assert_eq!(claims["sub"], "demo-user-1");
    assert!(claims["jti"].is_string() && claims["iat"].is_u64());
    assert_eq!(
        claims["events"],
        json!({ "http://schemas.openid.net/event/backchannel-logout": {} })
    );
    assert!(claims.get("nonce").is_none());
    let only_sub = split(&idp.logout_token(None, Some("u"))).1;
    assert!(only_sub.get("sid").is_none());
}

// ---------------------------------------------------------------------------
// Minting broken tokens

#[tokio::test]
async fn mint_produces_requested_defects() {
    let idp = TestIdp::start(IdpConfig::default()).await;
    let jwks = fetch_jwks(&idp).await;
    let claims = json!({ "iss": idp.issuer(), "sub": "x" });

    let good = idp.mint(Mint::new(claims.clone()));
    assert_eq!(verify_with_jwks(&good, &jwks).unwrap(), claims);

    let unpublished = idp.mint(Mint {
        key: KeyChoice::Unpublished,
        ..Mint::new(claims.clone())
    });
    let (header, ..) = split(&unpublished);
    assert_eq!(header["alg"], "RS256");
    assert_ne!(header["kid"], idp.current_kid());
    assert!(verify_with_jwks(&unpublished, &jwks).is_err());

    let none = idp.mint(Mint {
        key: KeyChoice::None,
        ..Mint::new(claims.clone())
    });
    assert!(none.ends_with('.'));
    assert_eq!(split(&none).0["alg"], "none");

    let secret = idp.current_public_key_pem().into_bytes();
    let hs = idp.mint(Mint {
        key: KeyChoice::Hs256WithSecret(secret.clone()),
        ..Mint::new(claims.clone())
    });
    let (header, _, input, sig) = split(&hs);
    assert_eq!(header["alg"], "HS256");
    assert_eq!(header["kid"], idp.current_kid());
    let key = hmac::Key::new(hmac::HMAC_SHA256, &secret);
    hmac::verify(&key, input.as_bytes(), &sig).unwrap();

    let raw = idp.mint(Mint {
        header: json!({ "kid": null, "typ": "at+jwt", "x5u": "http://evil" }),
        raw_signature: Some(b"garbage".to_vec()),
        ..Mint::new(claims)
    });
    let (header, _, _, sig) = split(&raw);
    assert_eq!(
        header,
        json!({ "alg": "RS256", "typ": "at+jwt", "x5u": "http://evil" })
    );
    assert_eq!(sig, b"garbage");
    assert!(idp.current_public_key_der().len() > 256);
}

// ---------------------------------------------------------------------------
// Fault injection

#[tokio::test]
async fn injected_faults_fail_the_next_requests() {
    let idp = TestIdp::start(IdpConfig::default()).await;
    let jwks_url = format!("{}/jwks", idp.issuer());

    idp.inject(Endpoint::Jwks, Fault::Status(503), 2);
    for _ in 0..2 {
        let resp = http().get(&jwks_url).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(
        http().get(&jwks_url).send().await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(idp.counters().jwks_fetches, 3);

    // An OAuth error on the token endpoint counts as a failed grant.
    idp.inject(Endpoint::Token, Fault::OAuthError("invalid_grant"), 1);
    let (status, body) = token_request(&idp, &[("grant_type", "client_credentials")]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let (status, _) = token_request(&idp, &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(idp.counters().failed_grants, 1);

    // Down closes the connection without a response.
    idp.inject(Endpoint::Discovery, Fault::Down, 1);
    let err = http().get(idp.discovery_url()).send().await.unwrap_err();
    assert!(!err.is_status(), "{err}");
    assert_eq!(
        http()
            .get(idp.discovery_url())
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    // Delay postpones but does not fail.
    idp.inject(Endpoint::Any, Fault::Delay(Duration::from_millis(250)), 1);
    let started = Instant::now();
    assert_eq!(
        http().get(&jwks_url).send().await.unwrap().status(),
        StatusCode::OK
    );
    assert!(started.elapsed() >= Duration::from_millis(250));

    // Faults target their endpoint only, and can be cleared.
    idp.inject(Endpoint::Introspection, Fault::Status(500), 5);
    assert_eq!(
        http().get(&jwks_url).send().await.unwrap().status(),
        StatusCode::OK
    );
    idp.clear_faults();
    let at = idp.access_token(json!({}));
    assert_eq!(introspect(&idp, &at).await["active"], true);
}
