//! JWS verification of ID tokens and JWT access tokens.
//!
//! Order of checks, each cheaper than the next: size and shape, JOSE header
//! (alg allowlist, kid shape, no `crit`), key lookup, signature (jsonwebtoken on
//! aws-lc-rs; ES512, which jsonwebtoken lacks, with aws-lc-rs's P-521
//! verifier directly), then claims against the injected clock. Verified
//! values can only be built here, so holding a [`VerifiedIdToken`] proves
//! the checks ran.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Deserializer};
use subtle::ConstantTimeEq;

use super::Error;

/// Largest token accepted anywhere (bytes).
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 64 * 1024;
/// Tolerated clock difference with the provider for `exp`, `nbf` and `iat`.
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(60);
/// Asymmetric algorithms accepted by default. `none` and `HS*` never are.
pub const DEFAULT_ALLOWED_ALGS: &[JwsAlgorithm] = &[
    JwsAlgorithm::Jwt(Algorithm::RS256),
    JwsAlgorithm::Jwt(Algorithm::RS384),
    JwsAlgorithm::Jwt(Algorithm::RS512),
    JwsAlgorithm::Jwt(Algorithm::PS256),
    JwsAlgorithm::Jwt(Algorithm::PS384),
    JwsAlgorithm::Jwt(Algorithm::PS512),
    JwsAlgorithm::Jwt(Algorithm::ES256),
    JwsAlgorithm::Jwt(Algorithm::ES384),
    JwsAlgorithm::Es512,
    JwsAlgorithm::Jwt(Algorithm::EdDSA),
];

/// A JWS algorithm (`alg`) the verifier knows: one of jsonwebtoken's, or
/// ES512 (ECDSA on P-521 with SHA-512), which jsonwebtoken lacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JwsAlgorithm {
    /// An algorithm jsonwebtoken verifies.
    Jwt(Algorithm),
    /// ECDSA using P-521 and SHA-512 (RFC 7518 §3.4).
    Es512,
}

impl std::str::FromStr for JwsAlgorithm {
    type Err = Error;

    /// The `alg` value as JOSE spells it (case-sensitive).
    fn from_str(s: &str) -> Result<Self, Error> {
        if s == "ES512" {
            return Ok(Self::Es512);
        }
        s.parse::<Algorithm>()
            .map(Self::Jwt)
            .map_err(|_| Error::TokenAlgorithm)
    }
}
/// Longest `kid` accepted.
pub(crate) const MAX_KID_BYTES: usize = 256;

/// The `aud` claim: one string or an array, always held as a list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Audience(pub Vec<String>);

impl Audience {
    /// True when `who` is one of the audiences.
    pub fn contains(&self, who: &str) -> bool {
        self.0.iter().any(|a| a == who)
    }
}

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        Ok(match OneOrMany::deserialize(d)? {
            OneOrMany::One(s) => Self(vec![s]),
            OneOrMany::Many(v) => Self(v),
        })
    }
}

/// Claims of an ID token. `exp` and `iat` are required and must be numbers.
#[derive(Clone, Debug, Deserialize)]
pub struct IdTokenClaims {
    /// Issuer.
    pub iss: String,
    /// Subject.
    pub sub: String,
    /// Audiences.
    pub aud: Audience,
    /// Expiry (seconds since the epoch).
    pub exp: i64,
    /// Issue time.
    pub iat: i64,
    /// Not-before.
    #[serde(default)]
    pub nbf: Option<i64>,
    /// Authorized party.
    #[serde(default)]
    pub azp: Option<String>,
    /// Login nonce.
    #[serde(default)]
    pub nonce: Option<String>,
    /// The provider's session id.
    #[serde(default)]
    pub sid: Option<String>,
    /// Every other claim.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Claims of a JWT access token.
#[derive(Clone, Debug, Deserialize)]
pub struct AccessTokenClaims {
    /// Issuer.
    pub iss: String,
    /// Subject.
    #[serde(default)]
    pub sub: Option<String>,
    /// Audiences.
    #[serde(default)]
    pub aud: Option<Audience>,
    /// Expiry.
    pub exp: i64,
    /// Issue time.
    #[serde(default)]
    pub iat: Option<i64>,
    /// Not-before.
    #[serde(default)]
    pub nbf: Option<i64>,
    /// Authorized party.
    #[serde(default)]
    pub azp: Option<String>,
    /// OAuth client id (RFC 9068).
    #[serde(default)]
    pub client_id: Option<String>,
    /// Present only in ID tokens; its presence marks a misused ID token.
    #[serde(default)]
    pub nonce: Option<String>,
    /// Every other claim.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// The event a back-channel logout token must carry.
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// Oldest `iat` accepted on a logout token.
pub const MAX_LOGOUT_TOKEN_AGE: Duration = Duration::from_secs(15 * 60);

/// Claims of an OIDC back-channel logout token.
#[derive(Clone, Debug, Deserialize)]
pub struct LogoutTokenClaims {
    /// Issuer.
    pub iss: String,
    /// Audiences.
    pub aud: Audience,
    /// Issue time (required).
    pub iat: i64,
    /// Optional expiry.
    #[serde(default)]
    pub exp: Option<i64>,
    /// Unique id (replay protection).
    pub jti: String,
    /// Must hold the back-channel logout event.
    pub events: serde_json::Map<String, serde_json::Value>,
    /// The provider's session id.
    #[serde(default)]
    pub sid: Option<String>,
    /// The subject.
    #[serde(default)]
    pub sub: Option<String>,
    /// Must be absent (a logout token is not an ID token).
    #[serde(default)]
    pub nonce: Option<serde_json::Value>,
}

/// Claim checks of a logout token (after the signature).
pub(crate) fn check_logout_token(
    claims: LogoutTokenClaims,
    typ: Option<&str>,
    issuer: &str,
    client_id: &str,
    now: u64,
    skew: Duration,
) -> Result<LogoutTokenClaims, Error> {
    if typ.is_some_and(|t| !matches!(t.to_ascii_lowercase().as_str(), "logout+jwt" | "jwt")) {
        return Err(Error::TokenClaim("typ"));
    }
    if claims.iss != issuer {
        return Err(Error::TokenClaim("iss"));
    }
    if !claims.aud.contains(client_id) {
        return Err(Error::TokenClaim("aud"));
    }
    let now_i = i64::try_from(now).unwrap_or(i64::MAX);
    let max_age = i64::try_from(MAX_LOGOUT_TOKEN_AGE.as_secs()).unwrap_or(0);
    if claims.iat < now_i.saturating_sub(max_age) {
        return Err(Error::TokenExpired);
    }
    check_times(
        claims.exp.unwrap_or(i64::MAX),
        Some(claims.iat),
        None,
        now,
        skew,
    )?;
    if !claims
        .events
        .get(BACKCHANNEL_LOGOUT_EVENT)
        .is_some_and(|e| e.is_object())
    {
        return Err(Error::TokenClaim("events"));
    }
    if claims.nonce.is_some() {
        return Err(Error::TokenClaim("nonce"));
    }
    if claims.sid.as_deref().is_none_or(str::is_empty)
        && claims.sub.as_deref().is_none_or(str::is_empty)
    {
        return Err(Error::TokenClaim("sid or sub"));
    }
    if claims.jti.is_empty() {
        return Err(Error::TokenClaim("jti"));
    }
    Ok(claims)
}

/// An ID token whose signature and claims were checked.
#[derive(Clone, Debug)]
pub struct VerifiedIdToken {
    claims: IdTokenClaims,
}

impl VerifiedIdToken {
    /// The checked claims.
    pub fn claims(&self) -> &IdTokenClaims {
        &self.claims
    }
}

/// A JWT access token whose signature and claims were checked.
#[derive(Clone, Debug)]
pub struct VerifiedAccessToken {
    claims: AccessTokenClaims,
    typ: Option<String>,
}

impl VerifiedAccessToken {
    /// The checked claims.
    pub fn claims(&self) -> &AccessTokenClaims {
        &self.claims
    }

    /// The JOSE `typ` header (RFC 9068 access tokens say `at+jwt`).
    pub fn typ(&self) -> Option<&str> {
        self.typ.as_deref()
    }
}

/// What the header pre-check learned.
#[derive(Debug)]
pub(crate) struct Header {
    pub(crate) alg: JwsAlgorithm,
    pub(crate) kid: Option<String>,
    pub(crate) typ: Option<String>,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

/// True when `token` has the shape of a compact JWS (three base64url parts).
pub(crate) fn looks_like_jwt(token: &str) -> bool {
    let mut parts = token.split('.');
    let ok = |p: Option<&str>| {
        p.is_some_and(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
    };
    ok(parts.next()) && ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}

/// Checks everything that can be checked without a key.
pub(crate) fn precheck(token: &str, allowed: &[JwsAlgorithm]) -> Result<Header, Error> {
    if token.len() > DEFAULT_MAX_TOKEN_BYTES {
        return Err(Error::TokenMalformed("token too large"));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Error::TokenMalformed("not three segments"));
    };
    if h.is_empty() || p.is_empty() {
        return Err(Error::TokenMalformed("empty segment"));
    }
    if s.is_empty() {
        // An unsigned token is never acceptable, whatever its header says.
        return Err(Error::TokenAlgorithm);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(h.trim_end_matches('='))
        .map_err(|_| Error::TokenMalformed("header is not base64url"))?;
    let raw: RawHeader =
        serde_json::from_slice(&bytes).map_err(|_| Error::TokenMalformed("header is not JSON"))?;
    let alg = raw
        .alg
        .parse::<JwsAlgorithm>()
        .ok()
        .filter(|a| allowed.contains(a))
        .ok_or(Error::TokenAlgorithm)?;
    if raw.crit.is_some() {
        return Err(Error::TokenMalformed("crit header not supported"));
    }
    if let Some(kid) = &raw.kid {
        if kid.is_empty() || kid.len() > MAX_KID_BYTES || !kid.bytes().all(kid_char) {
            return Err(Error::TokenMalformed("kid shape"));
        }
    }
    Ok(Header {
        alg,
        kid: raw.kid,
        typ: raw.typ,
    })
}

/// True when a JOSE `typ` names a JWT access token (`JWT`, `at+jwt`, with or
/// without the `application/` prefix, in any case). Logout tokens, DPoP
/// proofs and other typed JWTs are not.
pub(crate) fn is_access_token_typ(typ: &str) -> bool {
    let t = typ.trim();
    let t = t
        .get(..12)
        .filter(|p| p.eq_ignore_ascii_case("application/"))
        .and_then(|_| t.get(12..))
        .unwrap_or(t);
    t.eq_ignore_ascii_case("jwt") || t.eq_ignore_ascii_case("at+jwt")
}

fn kid_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'=' | b'+' | b':')
}

/// Verifies the signature of `token` with `key` and decodes its claims. Time
/// and audience checks are done by the callers against the injected clock.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    token: &str,
    header: &Header,
    key: &super::jwks::Verifier,
) -> Result<T, Error> {
    use super::jwks::Verifier;
    let (alg, key) = match (header.alg, key) {
        (JwsAlgorithm::Jwt(alg), Verifier::Jwt(key)) => (alg, key),
        (JwsAlgorithm::Es512, Verifier::P521(point)) => return decode_es512(token, point),
        _ => return Err(Error::TokenAlgorithm),
    };
    let mut v = Validation::new(alg);
    v.required_spec_claims.clear();
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    use jsonwebtoken::errors::ErrorKind as K;
    jsonwebtoken::decode::<T>(token, key, &v)
        .map(|d| d.claims)
        .map_err(|e| match e.kind() {
            K::InvalidSignature => Error::TokenSignature,
            K::InvalidAlgorithm | K::InvalidAlgorithmName => Error::TokenAlgorithm,
            K::Json(_) | K::Utf8(_) | K::Base64(_) | K::InvalidClaimFormat(_) => {
                Error::TokenMalformed("claims")
            }
            _ => Error::TokenSignature,
        })
}

/// ES512 (jsonwebtoken has no P-521): the fixed-width `r || s` signature
/// over `header.payload`, verified against the uncompressed point, then
/// the payload decoded. The header was checked by [`precheck`].
fn decode_es512<T: serde::de::DeserializeOwned>(token: &str, point: &[u8]) -> Result<T, Error> {
    use aws_lc_rs::signature::{ECDSA_P521_SHA512_FIXED, UnparsedPublicKey};
    let (signed, signature) = token
        .rsplit_once('.')
        .ok_or(Error::TokenMalformed("not three segments"))?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| Error::TokenMalformed("signature is not base64url"))?;
    UnparsedPublicKey::new(&ECDSA_P521_SHA512_FIXED, point)
        .verify(signed.as_bytes(), &signature)
        .map_err(|_| Error::TokenSignature)?;
    let payload = signed
        .split_once('.')
        .map(|(_, p)| p)
        .ok_or(Error::TokenMalformed("not three segments"))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| Error::TokenMalformed("claims"))?;
    serde_json::from_slice(&bytes).map_err(|_| Error::TokenMalformed("claims"))
}

/// Time checks shared by every token kind: `exp` not passed, `iat` and `nbf`
/// (when given) not in the future, each with `skew` of tolerance.
pub fn check_times(
    exp: i64,
    iat: Option<i64>,
    nbf: Option<i64>,
    now: u64,
    skew: Duration,
) -> Result<(), Error> {
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    let skew = i64::try_from(skew.as_secs()).unwrap_or(0);
    if exp.saturating_add(skew) <= now {
        return Err(Error::TokenExpired);
    }
    if iat.is_some_and(|iat| iat > now.saturating_add(skew)) {
        return Err(Error::TokenClaim("iat"));
    }
    if nbf.is_some_and(|nbf| nbf > now.saturating_add(skew)) {
        return Err(Error::TokenClaim("nbf"));
    }
    Ok(())
}

/// Claim checks of an ID token (after the signature).
pub(crate) fn check_id_token(
    claims: IdTokenClaims,
    issuer: &str,
    client_id: &str,
    expected_nonce: Option<&str>,
    now: u64,
    skew: Duration,
) -> Result<VerifiedIdToken, Error> {
    if claims.iss != issuer {
        return Err(Error::TokenClaim("iss"));
    }
    if !claims.aud.contains(client_id) {
        return Err(Error::TokenClaim("aud"));
    }
    match &claims.azp {
        Some(azp) if azp != client_id => return Err(Error::TokenClaim("azp")),
        None if claims.aud.0.len() > 1 => return Err(Error::TokenClaim("azp")),
        _ => {}
    }
    check_times(claims.exp, Some(claims.iat), claims.nbf, now, skew)?;
    if let Some(expected) = expected_nonce {
        let got = claims.nonce.as_deref().unwrap_or("");
        if got.is_empty() || !bool::from(got.as_bytes().ct_eq(expected.as_bytes())) {
            return Err(Error::TokenClaim("nonce"));
        }
    }
    if claims.sub.is_empty() {
        return Err(Error::TokenClaim("sub"));
    }
    Ok(VerifiedIdToken { claims })
}

/// Claim checks of a JWT access token (after the signature).
pub(crate) fn check_access_token(
    claims: AccessTokenClaims,
    typ: Option<String>,
    issuer: &str,
    audience: Option<&str>,
    now: u64,
    skew: Duration,
) -> Result<VerifiedAccessToken, Error> {
    if claims.iss != issuer {
        return Err(Error::TokenClaim("iss"));
    }
    if let Some(aud) = audience {
        if !claims.aud.as_ref().is_some_and(|a| a.contains(aud)) {
            return Err(Error::TokenClaim("aud"));
        }
    }
    check_times(claims.exp, claims.iat, claims.nbf, now, skew)?;
    Ok(VerifiedAccessToken { claims, typ })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    fn tok(header: &str) -> String {
        format!("{}.{}.{}", b64(header), b64(r#"{"sub":"x"}"#), b64("sig"))
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn config() -> ProptestConfig {
            let cases = std::env::var("PROPTEST_CASES")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(256);
            ProptestConfig {
                cases,
                failure_persistence: None,
                ..ProptestConfig::default()
            }
        }

        proptest! {
            #![proptest_config(config())]

            /// Any token text: no panic, and an accepted header names an
            /// allowlisted algorithm.
            #[test]
            fn precheck_never_panics_and_accepts_only_allowed_algs(raw in ".{0,200}") {
                if let Ok(h) = precheck(&raw, DEFAULT_ALLOWED_ALGS) {
                    prop_assert!(DEFAULT_ALLOWED_ALGS.contains(&h.alg));
                }
            }

            /// Headers built from JSON: `none`, HMAC, unknown algorithms,
            /// `crit` and odd `kid`s never pass; the kid that passes is
            /// short and made of safe characters.
            #[test]
            fn precheck_refuses_what_it_must(
                alg in prop_oneof![
                    prop::sample::select(vec![
                        "none", "None", "HS256", "HS512", "RS256", "ES256", "ES512", "PS256",
                        "EdDSA",
                    ])
                    .prop_map(str::to_owned),
                    "[A-Za-z0-9]{0,8}",
                ],
                kid in proptest::option::of(".{0,80}"),
                crit in any::<bool>(),
            ) {
                let mut h = serde_json::json!({ "alg": alg });
                if let Some(k) = &kid {
                    h["kid"] = serde_json::Value::from(k.clone());
                }
                if crit {
                    h["crit"] = serde_json::json!(["exp"]);
                }
                let r = precheck(&tok(&h.to_string()), DEFAULT_ALLOWED_ALGS);
                if let Ok(header) = r {
                    prop_assert!(!crit);
                    prop_assert!(!alg.eq_ignore_ascii_case("none") && !alg.starts_with("HS"));
                    prop_assert!(DEFAULT_ALLOWED_ALGS.contains(&header.alg));
                    if let Some(k) = header.kid {
                        prop_assert!(k.bytes().all(kid_char), "{k:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn precheck_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("rs256 with kid", r#"{"alg":"RS256","kid":"k1"}"#, true),
            ("es256 without kid", r#"{"alg":"ES256"}"#, true),
            ("es512", r#"{"alg":"ES512","kid":"k1"}"#, true),
            ("es512 spelled otherwise", r#"{"alg":"es512"}"#, false),
            ("alg none", r#"{"alg":"none"}"#, false),
            ("alg None", r#"{"alg":"None"}"#, false),
            ("hs256", r#"{"alg":"HS256","kid":"k1"}"#, false),
            ("unknown alg", r#"{"alg":"XX999"}"#, false),
            (
                "kid traversal",
                r#"{"alg":"RS256","kid":"../../etc/passwd"}"#,
                false,
            ),
            ("kid quote", r#"{"alg":"RS256","kid":"a\"b"}"#, false),
            ("crit", r#"{"alg":"RS256","kid":"k","crit":["exp"]}"#, false),
            ("not json", "nope", false),
        ];
        for (name, header, ok) in cases {
            let r = precheck(&tok(header), DEFAULT_ALLOWED_ALGS);
            assert_eq!(r.is_ok(), *ok, "{name}: {r:?}");
        }
        let long_kid = format!(r#"{{"alg":"RS256","kid":"{}"}}"#, "a".repeat(300));
        assert!(precheck(&tok(&long_kid), DEFAULT_ALLOWED_ALGS).is_err());
        assert!(precheck("a.b", DEFAULT_ALLOWED_ALGS).is_err());
        assert!(precheck("a.b.c.d", DEFAULT_ALLOWED_ALGS).is_err());
        let unsigned = format!("{}.{}.", b64(r#"{"alg":"RS256"}"#), b64("{}"));
        assert!(matches!(
            precheck(&unsigned, DEFAULT_ALLOWED_ALGS),
            Err(Error::TokenAlgorithm)
        ));
        let huge = "a".repeat(DEFAULT_MAX_TOKEN_BYTES + 1);
        assert!(precheck(&huge, DEFAULT_ALLOWED_ALGS).is_err());
    }

    #[test]
    fn time_checks() {
        let skew = Duration::from_secs(60);
        let now = 1_000_000;
        assert!(check_times(now as i64 + 10, Some(now as i64), None, now, skew).is_ok());
        assert!(matches!(
            check_times(now as i64 - 61, None, None, now, skew),
            Err(Error::TokenExpired)
        ));
        assert!(check_times(now as i64 + 10, Some(now as i64 + 120), None, now, skew).is_err());
        assert!(check_times(now as i64 + 500, None, Some(now as i64 + 120), now, skew).is_err());
    }

    #[test]
    fn audience_accepts_string_or_list() {
        let a: Audience = serde_json::from_str(r#""x""#).unwrap();
        assert!(a.contains("x"));
        let b: Audience = serde_json::from_str(r#"["x","y"]"#).unwrap();
        assert!(b.contains("y") && !b.contains("z"));
        assert!(serde_json::from_str::<Audience>("3").is_err());
    }

    #[test]
    fn access_token_typ() {
        for ok in [
            "JWT",
            "jwt",
            "at+jwt",
            "application/at+JWT",
            "application/jwt",
        ] {
            assert!(is_access_token_typ(ok), "{ok}");
        }
        for bad in [
            "logout+jwt",
            "dpop+jwt",
            "",
            "application/",
            "JOSE",
            "at+jwt2",
        ] {
            assert!(!is_access_token_typ(bad), "{bad}");
        }
    }

    #[test]
    fn jwt_shape() {
        assert!(looks_like_jwt("aa.bb.cc"));
        assert!(!looks_like_jwt("aa.bb"));
        assert!(!looks_like_jwt("opaque-token-value"));
        assert!(!looks_like_jwt("aa.b b.cc"));
    }
}
