//! Client authentication as the test provider judges it: each of
//! `client_secret_basic`, `client_secret_post`, `client_secret_jwt` and
//! `private_key_jwt` checked with this crate's own code (aws-lc-rs), so a
//! relying party is tested against an implementation it shares nothing with.
//!
//! Rules enforced: exactly one method per request (RFC 6749 §2.3); Basic
//! credentials are form-decoded (RFC 6749 §2.3.1); an assertion has
//! `iss = sub = client_id`, the configured `aud` as a single string, an
//! `exp` in the future and at most five minutes away, and a `jti` never seen
//! before; its `kid` is the registered one, or the RFC 7638 thumbprint of the
//! registered key when it has none.

use std::collections::HashSet;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::hmac;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    self, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _, RsaKeyPair,
    RsaPublicKeyComponents, UnparsedPublicKey,
};
use serde_json::{Value, json};

use super::core::now_secs;
use crate::jose::{b64std, b64url, b64url_decode, sha256};

/// The `client_assertion_type` of RFC 7523.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Longest assertion lifetime accepted (`exp - now`).
const MAX_ASSERTION_LIFETIME_SECS: u64 = 300;

/// The `aud` the provider requires in client assertions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AssertionAud {
    /// The issuer identifier.
    #[default]
    Issuer,
    /// The token endpoint URL.
    TokenEndpoint,
}

/// Algorithm of a generated client key.
#[allow(clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKeyAlg {
    /// RSA 2048, PKCS#1 v1.5 with SHA-256.
    RS256,
    /// RSA 2048, PSS with SHA-256.
    PS256,
    /// ECDSA P-256 with SHA-256.
    ES256,
}

impl ClientKeyAlg {
    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::PS256 => "PS256",
            Self::ES256 => "ES256",
        }
    }
}

/// A client's key pair for `private_key_jwt`: the private half as a PKCS#8
/// PEM for the relying party, the public half as a JWK (without `kid`) for
/// the provider's registration.
#[derive(Debug, Clone)]
pub struct ClientKey {
    /// The algorithm the client signs with.
    pub alg: ClientKeyAlg,
    /// PKCS#8 `PRIVATE KEY` PEM.
    pub private_pem: String,
    /// The public JWK (`kty`, `n`/`e` or `crv`/`x`/`y`).
    pub public_jwk: Value,
}

impl ClientKey {
    /// Generates a fresh key for `alg`.
    pub fn generate(alg: ClientKeyAlg) -> Self {
        let (der, public_jwk) = match alg {
            ClientKeyAlg::RS256 | ClientKeyAlg::PS256 => {
                let kp = RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA key generation");
                let public = kp.public_key();
                let jwk = json!({
                    "kty": "RSA",
                    "n": b64url(public.modulus().big_endian_without_leading_zero()),
                    "e": b64url(public.exponent().big_endian_without_leading_zero()),
                });
                let der: Pkcs8V1Der<'static> = kp.as_der().expect("PKCS#8 export");
                (der.as_ref().to_vec(), jwk)
            }
            ClientKeyAlg::ES256 => {
                let kp = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                    .expect("EC key generation");
                let point = kp.public_key().as_ref().to_vec();
                let jwk = json!({
                    "kty": "EC",
                    "crv": "P-256",
                    "x": b64url(&point[1..33]),
                    "y": b64url(&point[33..65]),
                });
                let der = kp.to_pkcs8v1().expect("PKCS#8 export").as_ref().to_vec();
                (der, jwk)
            }
        };
        let body = b64std(der);
        let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
        for chunk in body.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        Self {
            alg,
            private_pem: pem,
            public_jwk,
        }
    }

    /// The RFC 7638 SHA-256 thumbprint of the public key.
    pub fn thumbprint(&self) -> String {
        thumbprint(&self.public_jwk).expect("generated JWK has its members")
    }
}

/// RFC 7638: SHA-256 over the required members in lexical order, no spaces.
pub(crate) fn thumbprint(jwk: &Value) -> Option<String> {
    let s = |k: &str| jwk.get(k).and_then(Value::as_str);
    let canonical = match s("kty")? {
        "RSA" => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, s("e")?, s("n")?),
        "EC" => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            s("crv")?,
            s("x")?,
            s("y")?
        ),
        _ => return None,
    };
    Some(b64url(sha256(canonical.as_bytes())))
}

/// What the provider knows about its client.
pub(crate) struct Registration<'a> {
    pub(crate) client_id: &'a str,
    pub(crate) client_secret: &'a str,
    pub(crate) methods: &'a [String],
    pub(crate) jwk: Option<&'a Value>,
    pub(crate) expected_aud: &'a str,
}

/// The client's credentials as presented in one request.
pub(crate) struct Presented<'a> {
    pub(crate) basic: Option<(String, String)>,
    pub(crate) form_id: Option<&'a str>,
    pub(crate) form_secret: Option<&'a str>,
    pub(crate) assertion_type: Option<&'a str>,
    pub(crate) assertion: Option<&'a str>,
}

/// Checks the presented credentials; on success returns the method used.
pub(crate) fn check(
    reg: &Registration<'_>,
    p: &Presented<'_>,
    seen_jtis: &mut HashSet<String>,
) -> Result<&'static str, String> {
    let mechanisms = usize::from(p.basic.is_some())
        + usize::from(p.form_secret.is_some())
        + usize::from(p.assertion.is_some());
    if mechanisms == 0 {
        return Err("client authentication required".into());
    }
    if mechanisms > 1 {
        return Err("more than one client authentication method in one request".into());
    }
    if let Some(id) = p.form_id
        && id != reg.client_id
    {
        return Err("client_id mismatch".into());
    }
    let allowed = |m: &str| reg.methods.iter().any(|x| x == m);
    if let Some((id, secret)) = &p.basic {
        if !allowed("client_secret_basic") {
            return Err("client_secret_basic is not allowed for this client".into());
        }
        if id != reg.client_id || secret != reg.client_secret {
            return Err("unknown client or wrong secret".into());
        }
        return Ok("client_secret_basic");
    }
    if let Some(secret) = p.form_secret {
        if !allowed("client_secret_post") {
            return Err("client_secret_post is not allowed for this client".into());
        }
        if p.form_id != Some(reg.client_id) || secret != reg.client_secret {
            return Err("unknown client or wrong secret".into());
        }
        return Ok("client_secret_post");
    }
    let assertion = p.assertion.unwrap_or_default();
    if p.assertion_type != Some(JWT_BEARER) {
        return Err("client_assertion_type must be jwt-bearer".into());
    }
    let mut parts = assertion.split('.');
    let (Some(h), Some(c), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("client_assertion is not a compact JWS".into());
    };
    let header: Value = b64url_decode(h)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("client_assertion header is not JSON")?;
    let claims: Value = b64url_decode(c)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("client_assertion claims are not JSON")?;
    let sig = b64url_decode(sig).ok_or("client_assertion signature is not base64url")?;
    let input = format!("{h}.{c}");
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    let method = if alg == "HS256" {
        if !allowed("client_secret_jwt") {
            return Err("client_secret_jwt is not allowed for this client".into());
        }
        let key = hmac::Key::new(hmac::HMAC_SHA256, reg.client_secret.as_bytes());
        hmac::verify(&key, input.as_bytes(), &sig)
            .map_err(|_| "client_assertion HMAC does not verify")?;
        "client_secret_jwt"
    } else {
        if !allowed("private_key_jwt") {
            return Err("private_key_jwt is not allowed for this client".into());
        }
        let jwk = reg.jwk.ok_or("no key registered for this client")?;
        let want_kid = jwk
            .get("kid")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| thumbprint(jwk))
            .ok_or("registered key is not a JWK")?;
        if header.get("kid").and_then(Value::as_str) != Some(want_kid.as_str()) {
            return Err("client_assertion kid does not name the registered key".into());
        }
        verify_with_jwk(jwk, alg, input.as_bytes(), &sig)?;
        "private_key_jwt"
    };
    let str_claim = |k: &str| claims.get(k).and_then(Value::as_str);
    if str_claim("iss") != Some(reg.client_id) || str_claim("sub") != Some(reg.client_id) {
        return Err("client_assertion iss and sub must be the client_id".into());
    }
    if str_claim("aud") != Some(reg.expected_aud) {
        return Err(format!(
            "client_assertion aud must be the string {:?}",
            reg.expected_aud
        ));
    }
    let now = now_secs();
    let exp = claims
        .get("exp")
        .and_then(Value::as_u64)
        .ok_or("client_assertion has no numeric exp")?;
    if exp <= now || exp > now + MAX_ASSERTION_LIFETIME_SECS {
        return Err("client_assertion exp is past or too far away".into());
    }
    let jti = str_claim("jti").ok_or("client_assertion has no jti")?;
    if !seen_jtis.insert(jti.to_owned()) {
        return Err("client_assertion jti replayed".into());
    }
    Ok(method)
}

fn verify_with_jwk(jwk: &Value, alg: &str, msg: &[u8], sig: &[u8]) -> Result<(), String> {
    let s = |k: &str| {
        jwk.get(k)
            .and_then(Value::as_str)
            .and_then(b64url_decode)
            .ok_or_else(|| format!("registered JWK lacks {k}"))
    };
    let ok = match (jwk.get("kty").and_then(Value::as_str), alg) {
        (Some("RSA"), "RS256" | "PS256") => {
            let params = if alg == "RS256" {
                &signature::RSA_PKCS1_2048_8192_SHA256
            } else {
                &signature::RSA_PSS_2048_8192_SHA256
            };
            let public = RsaPublicKeyComponents {
                n: s("n")?,
                e: s("e")?,
            };
            public.verify(params, msg, sig).is_ok()
        }
        (Some("EC"), "ES256") => {
            let mut point = vec![4u8];
            point.extend(s("x")?);
            point.extend(s("y")?);
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(msg, sig)
                .is_ok()
        }
        _ => return Err(format!("alg {alg} does not fit the registered key")),
    };
    if ok {
        Ok(())
    } else {
        Err("client_assertion signature does not verify".into())
    }
}
