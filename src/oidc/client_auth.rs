//! Client authentication at the provider's token, introspection and
//! revocation endpoints.
//!
//! Four methods: `client_secret_basic` (RFC 6749 §2.3.1: the id and the
//! secret are each form-urlencoded before they are joined and base64-encoded),
//! `client_secret_post`, and the two JWT assertions of OIDC Core §9 /
//! RFC 7523 — `client_secret_jwt` (HS256 with the secret) and
//! `private_key_jwt` (RS256, PS256 or ES256 with a private key whose `kid` is
//! its RFC 7638 thumbprint unless one is configured). Every assertion carries
//! a fresh `jti` and lives [`DEFAULT_ASSERTION_LIFETIME`]; none is ever reused.
//!
//! When no method is configured, the provider's
//! `token_endpoint_auth_methods_supported` chooses ([`select_method`]); an
//! absent list means `client_secret_basic` (OIDC Discovery §3). One request
//! uses exactly one method (RFC 6749 §2.3).

use std::time::Duration;

use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use super::Error;

/// Lifetime of a client assertion (`exp - iat`). Providers cap it between
/// five minutes (Auth0) and an hour (Okta); a minute covers clock skew.
pub const DEFAULT_ASSERTION_LIFETIME: Duration = Duration::from_secs(60);
/// `client_assertion_type` of RFC 7523 §2.2.
pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Algorithms a `private_key_jwt` key may sign with.
pub const ASSERTION_KEY_ALGS: &[Algorithm] =
    &[Algorithm::RS256, Algorithm::PS256, Algorithm::ES256];
/// Bytes of randomness in an assertion's `jti`.
const JTI_BYTES: usize = 18;

/// How the client authenticates to the provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientAuthMethod {
    /// HTTP Basic with the form-urlencoded id and secret (RFC 6749 §2.3.1).
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// A JWT assertion signed with HS256 and the client secret.
    ClientSecretJwt,
    /// A JWT assertion signed with the client's private key.
    PrivateKeyJwt,
}

impl ClientAuthMethod {
    /// Every method, in the order [`select_method`] prefers them for a
    /// client holding a secret.
    pub const ALL: [Self; 4] = [
        Self::ClientSecretBasic,
        Self::ClientSecretPost,
        Self::ClientSecretJwt,
        Self::PrivateKeyJwt,
    ];

    /// The registered name (`client_secret_basic`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::ClientSecretJwt => "client_secret_jwt",
            Self::PrivateKeyJwt => "private_key_jwt",
        }
    }

    /// Parses a registered name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }
}

impl std::fmt::Display for ClientAuthMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `aud` of a client assertion.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AssertionAudience {
    /// The provider's issuer identifier, as a single string (OIDC Core §9 as
    /// revised; Keycloak, Auth0 and new providers).
    #[default]
    Issuer,
    /// The token endpoint URL (Entra ID, Okta).
    TokenEndpoint,
    /// A fixed value.
    Literal(String),
}

impl AssertionAudience {
    fn resolve<'a>(&'a self, issuer: &'a str, token_endpoint: &'a str) -> &'a str {
        match self {
            Self::Issuer => issuer,
            Self::TokenEndpoint => token_endpoint,
            Self::Literal(s) => s,
        }
    }
}

/// A private key for `private_key_jwt`, checked against its algorithm.
pub struct AssertionKey {
    alg: Algorithm,
    key: EncodingKey,
    kid: String,
    public_jwk: serde_json::Value,
}

impl std::fmt::Debug for AssertionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .field("key", &"[redacted]")
            .finish()
    }
}

impl AssertionKey {
    /// Parses a PEM private key (RSA in PKCS#1 or PKCS#8, EC P-256 in
    /// PKCS#8) for `alg` and proves they agree with a trial signature.
    /// `kid` defaults to the key's RFC 7638 SHA-256 thumbprint.
    pub fn from_pem(pem: &[u8], alg: Algorithm, kid: Option<&str>) -> Result<Self, Error> {
        let key = match alg {
            Algorithm::RS256 | Algorithm::PS256 => EncodingKey::from_rsa_pem(pem),
            Algorithm::ES256 => EncodingKey::from_ec_pem(pem),
            other => {
                return Err(Error::Config(format!(
                    "algorithm {other:?} is not supported for client assertions (use RS256, PS256 or ES256)"
                )));
            }
        }
        .map_err(|_| {
            Error::Config(format!(
                "does not parse as a PEM private key for {alg:?} \
                 (RSA: PKCS#1 or PKCS#8; EC P-256: PKCS#8)"
            ))
        })?;
        let mismatch = || Error::Config(format!("is not a usable private key for {alg:?}"));
        let mut jwk = Jwk::from_encoding_key(&key, alg).map_err(|_| mismatch())?;
        jsonwebtoken::encode(&Header::new(alg), &serde_json::json!({}), &key)
            .map_err(|_| mismatch())?;
        let kid = match kid.map(str::trim).filter(|k| !k.is_empty()) {
            Some(k) => k.to_owned(),
            None => jwk.thumbprint(ThumbprintHash::SHA256),
        };
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
        let public_jwk = serde_json::to_value(&jwk)
            .map_err(|e| Error::Config(format!("public key does not serialise: {e}")))?;
        Ok(Self {
            alg,
            key,
            kid,
            public_jwk,
        })
    }

    /// The signing algorithm.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The `kid` sent in assertion headers.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half as a JWK (what the provider registers for the client).
    pub fn public_jwk(&self) -> &serde_json::Value {
        &self.public_jwk
    }
}

/// Chooses the method: the configured one, else the first the provider
/// advertises among those the client can perform (a key first, then Basic,
/// post, HS256 assertion). An absent list means `client_secret_basic`.
pub fn select_method(
    configured: Option<ClientAuthMethod>,
    supported: Option<&[String]>,
    has_secret: bool,
    has_key: bool,
) -> ClientAuthMethod {
    if let Some(m) = configured {
        return m;
    }
    let advertised = |m: ClientAuthMethod| match supported {
        Some(list) => list.iter().any(|s| s == m.as_str()),
        None => m == ClientAuthMethod::ClientSecretBasic,
    };
    let mut candidates = Vec::new();
    if has_key {
        candidates.push(ClientAuthMethod::PrivateKeyJwt);
    }
    if has_secret {
        candidates.extend([
            ClientAuthMethod::ClientSecretBasic,
            ClientAuthMethod::ClientSecretPost,
            ClientAuthMethod::ClientSecretJwt,
        ]);
    }
    candidates
        .iter()
        .copied()
        .find(|m| advertised(*m))
        .or_else(|| candidates.first().copied())
        .unwrap_or(ClientAuthMethod::ClientSecretPost)
}

/// Everything one authenticated request needs.
pub(crate) struct ClientCredentials<'a> {
    pub(crate) id: &'a str,
    pub(crate) secret: &'a str,
    pub(crate) method: ClientAuthMethod,
    pub(crate) key: Option<&'a AssertionKey>,
    /// The resolved assertion `aud`.
    pub(crate) audience: &'a str,
    /// Seconds since the epoch (the injected clock).
    pub(crate) now: u64,
}

impl<'a> ClientCredentials<'a> {
    /// Resolves the assertion audience from the provider's identifiers.
    pub(crate) fn audience_for(
        audience: &'a AssertionAudience,
        issuer: &'a str,
        token_endpoint: &'a str,
    ) -> &'a str {
        audience.resolve(issuer, token_endpoint)
    }
}

#[derive(Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    jti: String,
    iat: u64,
    nbf: u64,
    exp: u64,
}

/// Builds a POST of `form` to `endpoint` carrying the client's
/// authentication. Fails only when an assertion cannot be signed.
pub(crate) fn authenticated_post(
    client: &reqwest::Client,
    endpoint: &str,
    creds: &ClientCredentials<'_>,
    form: &[(&str, &str)],
) -> Result<reqwest::RequestBuilder, Error> {
    let mut body: Vec<(&str, String)> = form.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    let mut req = client
        .post(endpoint)
        .header(reqwest::header::ACCEPT, "application/json");
    match creds.method {
        ClientAuthMethod::ClientSecretBasic => {
            req = req.header(
                reqwest::header::AUTHORIZATION,
                basic(creds.id, creds.secret),
            );
        }
        ClientAuthMethod::ClientSecretPost => {
            body.push(("client_id", creds.id.to_owned()));
            if !creds.secret.is_empty() {
                body.push(("client_secret", creds.secret.to_owned()));
            }
        }
        ClientAuthMethod::ClientSecretJwt => {
            let key = EncodingKey::from_secret(creds.secret.as_bytes());
            let assertion = sign_assertion(creds, Algorithm::HS256, None, &key)?;
            push_assertion(&mut body, creds.id, assertion);
        }
        ClientAuthMethod::PrivateKeyJwt => {
            let k = creds.key.ok_or_else(|| {
                Error::Config(
                    "private_key_jwt needs clientAssertionKeyPath or clientAssertionPrivateKey"
                        .into(),
                )
            })?;
            let assertion = sign_assertion(creds, k.alg, Some(&k.kid), &k.key)?;
            push_assertion(&mut body, creds.id, assertion);
        }
    }
    Ok(req.form(&body))
}

fn push_assertion(body: &mut Vec<(&str, String)>, id: &str, assertion: String) {
    body.push(("client_id", id.to_owned()));
    body.push(("client_assertion_type", JWT_BEARER_ASSERTION.to_owned()));
    body.push(("client_assertion", assertion));
}

/// `Basic base64(urlenc(id) ":" urlenc(secret))`.
pub(crate) fn basic(id: &str, secret: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", enc(id), enc(secret)))
    )
}

fn sign_assertion(
    creds: &ClientCredentials<'_>,
    alg: Algorithm,
    kid: Option<&str>,
    key: &EncodingKey,
) -> Result<String, Error> {
    let mut jti = [0u8; JTI_BYTES];
    SystemRandom::new()
        .fill(&mut jti)
        .map_err(|_| Error::Config("system random generator failed".into()))?;
    let claims = AssertionClaims {
        iss: creds.id,
        sub: creds.id,
        aud: creds.audience,
        jti: URL_SAFE_NO_PAD.encode(jti),
        iat: creds.now,
        nbf: creds.now,
        exp: creds
            .now
            .saturating_add(DEFAULT_ASSERTION_LIFETIME.as_secs()),
    };
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, &claims, key)
        .map_err(|e| Error::Config(format!("client assertion cannot be signed: {e}")))
}

/// PEM private keys generated for tests: `"rsa"`, `"ec256"` or `"ec384"`.
#[cfg(test)]
pub(crate) fn test_pem(kind: &str) -> String {
    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, RsaKeyPair,
    };
    let der: Vec<u8> = match kind {
        "rsa" => {
            let kp = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
            let d: Pkcs8V1Der<'static> = kp.as_der().unwrap();
            d.as_ref().to_vec()
        }
        "ec256" => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .unwrap()
            .to_pkcs8v1()
            .unwrap()
            .as_ref()
            .to_vec(),
        _ => EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING)
            .unwrap()
            .to_pkcs8v1()
            .unwrap()
            .as_ref()
            .to_vec(),
    };
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_form_encodes_before_base64() {
        // RFC 6749 Appendix B applied to both halves (AppAuth-Android #337).
        assert_eq!(
            basic(
                "1PpG/Q 1",
                "z/tZ9VwFZqApmIQ+ZH1I5pLk/uB4ud:X2/8bL+wfFTt1rFw="
            ),
            "Basic MVBwRyUyRlErMTp6JTJGdFo5VndGWnFBcG1JUSUyQlpIMUk1cExrJTJGdUI0dWQlM0FYMiUyRjhiTCUyQndmRlR0MXJGdyUzRA=="
        );
    }

    #[test]
    fn selection_table() {
        use ClientAuthMethod as M;
        let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        type Case = (Option<M>, Option<Vec<String>>, bool, bool, M);
        let cases: &[Case] = &[
            (None, None, true, false, M::ClientSecretBasic),
            (
                None,
                Some(list(&["client_secret_post"])),
                true,
                false,
                M::ClientSecretPost,
            ),
            (
                None,
                Some(list(&["client_secret_post", "client_secret_basic"])),
                true,
                false,
                M::ClientSecretBasic,
            ),
            (
                None,
                Some(list(&["client_secret_basic", "private_key_jwt"])),
                true,
                true,
                M::PrivateKeyJwt,
            ),
            (
                None,
                Some(list(&["client_secret_jwt"])),
                true,
                false,
                M::ClientSecretJwt,
            ),
            (None, Some(list(&["none"])), false, true, M::PrivateKeyJwt),
            (
                Some(M::ClientSecretPost),
                None,
                true,
                true,
                M::ClientSecretPost,
            ),
        ];
        for (configured, supported, secret, key, want) in cases {
            assert_eq!(
                select_method(*configured, supported.as_deref(), *secret, *key),
                *want,
                "{configured:?} {supported:?}"
            );
        }
    }

    #[test]
    fn names_round_trip() {
        for m in ClientAuthMethod::ALL {
            assert_eq!(ClientAuthMethod::parse(m.as_str()), Some(m));
        }
        assert_eq!(ClientAuthMethod::parse("tls_client_auth"), None);
    }

    #[test]
    fn key_that_does_not_parse_or_match_is_refused() {
        let rsa = test_pem("rsa");
        let ec = test_pem("ec256");
        let ec384 = test_pem("ec384");
        let cases: &[(&str, &[u8], Algorithm, bool)] = &[
            ("rsa RS256", rsa.as_bytes(), Algorithm::RS256, true),
            ("rsa PS256", rsa.as_bytes(), Algorithm::PS256, true),
            ("ec ES256", ec.as_bytes(), Algorithm::ES256, true),
            ("rsa as ES256", rsa.as_bytes(), Algorithm::ES256, false),
            ("ec as RS256", ec.as_bytes(), Algorithm::RS256, false),
            ("P-384 as ES256", ec384.as_bytes(), Algorithm::ES256, false),
            ("garbage", b"not a pem", Algorithm::RS256, false),
            ("hmac alg", rsa.as_bytes(), Algorithm::HS256, false),
        ];
        for (name, pem, alg, ok) in cases {
            assert_eq!(
                AssertionKey::from_pem(pem, *alg, None).is_ok(),
                *ok,
                "{name}"
            );
        }
    }

    #[test]
    fn kid_is_the_thumbprint_and_assertions_are_fresh() {
        let key =
            AssertionKey::from_pem(test_pem("ec256").as_bytes(), Algorithm::ES256, None).unwrap();
        // RFC 7638: SHA-256 over the required members in lexical order.
        let j = key.public_jwk();
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            j["x"].as_str().unwrap(),
            j["y"].as_str().unwrap()
        );
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
        assert_eq!(key.kid(), URL_SAFE_NO_PAD.encode(digest.as_ref()));
        assert_eq!(j["kid"], key.kid());
        let named =
            AssertionKey::from_pem(test_pem("rsa").as_bytes(), Algorithm::RS256, Some("my-key"))
                .unwrap();
        assert_eq!(named.kid(), "my-key");

        let creds = ClientCredentials {
            id: "web",
            secret: "",
            method: ClientAuthMethod::PrivateKeyJwt,
            key: Some(&key),
            audience: "https://idp.example",
            now: 1_000_000,
        };
        let a = sign_assertion(&creds, key.alg, Some(key.kid()), &key.key).unwrap();
        let b = sign_assertion(&creds, key.alg, Some(key.kid()), &key.key).unwrap();
        let claims = |t: &str| -> serde_json::Value {
            let p = t.split('.').nth(1).unwrap();
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap()
        };
        let (ca, cb) = (claims(&a), claims(&b));
        assert_ne!(ca["jti"], cb["jti"]);
        assert_eq!(ca["aud"], "https://idp.example");
        assert_eq!(ca["iss"], "web");
        assert_eq!(ca["sub"], "web");
        assert_eq!(
            ca["exp"].as_u64().unwrap() - ca["iat"].as_u64().unwrap(),
            60
        );
    }
}
