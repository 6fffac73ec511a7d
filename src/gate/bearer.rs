//! The bearer path: machine-to-machine requests carrying
//! `Authorization: Bearer <token>` (RFC 6750).
//!
//! Order of checks, cheapest first: the client address's failure penalty,
//! the header's shape, the token's size, then for a JWT the verified-claims
//! cache (a hit skips the signature) or the full verification in `oidc`
//! (JOSE pre-check before any key lookup, signature, `iss`, `aud`, times),
//! then the claim rules of this module (`azp` with several audiences, `iat`
//! required and not too old, no ID tokens), introspection when configured,
//! revocation, and the identifier. Opaque tokens are judged only by RFC 7662
//! introspection. Every rule runs again on a cache hit; only the signature
//! and the introspection round trip are saved.
//!
//! An accepted token becomes a [`policy::Identity`](crate::policy::Identity)
//! and goes through the same authorization and upstream headers as a cookie
//! session. A refused token is a 401 with an RFC 6750 challenge and counts
//! against the client address (see [`super::throttle`]). Tokens never reach
//! logs or cache keys: only [`TokenHash`] and SHA-256 keys do.

use std::time::Duration;

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Gate;
use super::decision::{Allow, Decision};
use super::outage::OutagePolicy;
use super::rescue::Error;
use super::throttle::{Throttle, ThrottleSettings};
use super::view::RequestView;
use crate::cache::{CacheKey, Namespace};
use crate::clock::SharedClock;
use crate::oidc::{self, AccessTokenClaims, Audience};
use crate::session::Session;
use crate::telemetry::TokenHash;

/// Claim naming the caller on the bearer path (`bearerIdentifierClaim`).
pub const DEFAULT_BEARER_IDENTIFIER_CLAIM: &str = "sub";
/// Oldest accepted `iat` (`maxTokenAgeSeconds`): a token issued longer ago
/// is refused even before its `exp`.
pub const DEFAULT_MAX_TOKEN_AGE: Duration = Duration::from_secs(86_400);
/// Largest bearer token accepted; larger ones are refused unparsed.
pub const DEFAULT_MAX_BEARER_TOKEN_BYTES: usize = 16 * 1024;
/// Longest time an introspection answer is reused (bounded further by the
/// token's `exp`).
pub const DEFAULT_INTROSPECTION_CACHE_TTL: Duration = Duration::from_secs(5 * 60);

/// Settings of the bearer path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BearerSettings {
    /// Judge `Authorization: Bearer` tokens at all (`enableBearerAuth`).
    /// Off: the header is ignored and the cookie flow runs.
    pub enabled: bool,
    /// Claim naming the caller (`bearerIdentifierClaim`).
    pub identifier_claim: String,
    /// Send `WWW-Authenticate: Bearer error=...` with 401s
    /// (`bearerEmitWWWAuthenticate`).
    pub emit_www_authenticate: bool,
    /// A bearer token wins over a readable session cookie
    /// (`bearerOverridesCookie`).
    pub overrides_cookie: bool,
    /// Oldest accepted `iat` (`maxTokenAgeSeconds`).
    pub max_token_age: Duration,
    /// Largest token accepted.
    pub max_token_bytes: usize,
    /// Failure penalty per client address.
    pub throttle: ThrottleSettings,
    /// Accept opaque (non-JWT) bearer tokens through introspection
    /// (`allowOpaqueTokens`).
    pub allow_opaque: bool,
    /// Introspect bearer JWTs too after local verification, and the access
    /// token of every session not just issued by the token endpoint
    /// (`requireTokenIntrospection`; holds with the bearer path off too).
    pub require_introspection: bool,
    /// Longest reuse of an introspection answer.
    pub introspection_cache_ttl: Duration,
}

impl Default for BearerSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            identifier_claim: DEFAULT_BEARER_IDENTIFIER_CLAIM.into(),
            emit_www_authenticate: true,
            overrides_cookie: false,
            max_token_age: DEFAULT_MAX_TOKEN_AGE,
            max_token_bytes: DEFAULT_MAX_BEARER_TOKEN_BYTES,
            throttle: ThrottleSettings::default(),
            allow_opaque: false,
            require_introspection: false,
            introspection_cache_ttl: DEFAULT_INTROSPECTION_CACHE_TTL,
        }
    }
}

/// Why a bearer token was refused. Logged at debug level; the client sees
/// only the RFC 6750 error code and a coarse description.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BearerReject {
    /// `Authorization: Bearer` without a token.
    #[error("no token after the Bearer scheme")]
    Missing,
    /// Several `Authorization` headers, or characters outside RFC 6750's
    /// `b64token`.
    #[error("malformed Authorization header")]
    BadHeader,
    /// Larger than the configured limit.
    #[error("token too large")]
    TooLarge,
    /// Not a JWT, and opaque tokens are not accepted.
    #[error("opaque token not accepted")]
    Opaque,
    /// The token's shape or JOSE header is refused.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// `alg` outside the allowlist (`none`, `HS*`, ...).
    #[error("algorithm not allowed")]
    Algorithm,
    /// No published key for the token's `kid`.
    #[error("unknown signing key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("bad signature")]
    Signature,
    /// A claim check failed; names the claim.
    #[error("claim check failed: {0}")]
    Claim(&'static str),
    /// `exp` has passed.
    #[error("token expired")]
    Expired,
    /// `iat` is older than the configured maximum age.
    #[error("token too old")]
    TooOld,
    /// An ID token presented as an access token.
    #[error("ID token presented as bearer token")]
    IdToken,
    /// Introspection says the token is not active (or not an access token).
    #[error("token not active")]
    Inactive,
    /// The token or its `jti` was revoked.
    #[error("token revoked")]
    Revoked,
    /// The identifier claim is missing or unsafe to forward.
    #[error("no usable identifier")]
    Identifier,
    /// The bearer path is enabled without an audience (a programming error
    /// configuration validation prevents).
    #[error("no audience configured")]
    NoAudience,
}

impl BearerReject {
    /// The RFC 6750 `error` code.
    pub fn error_code(self) -> &'static str {
        match self {
            Self::Missing | Self::BadHeader => "invalid_request",
            _ => "invalid_token",
        }
    }

    /// The `error_description` sent to the client: coarse on purpose.
    pub fn description(self) -> &'static str {
        match self {
            Self::Missing | Self::BadHeader => "A bearer token is required",
            Self::Expired => "The access token expired",
            _ => "The access token is invalid",
        }
    }

    /// The `WWW-Authenticate` value of a 401 for this reason.
    pub fn challenge(self) -> String {
        format!(
            "Bearer error=\"{}\", error_description=\"{}\"",
            self.error_code(),
            self.description()
        )
    }

    fn from_oidc(e: &oidc::Error) -> Option<Self> {
        Some(match e {
            oidc::Error::TokenMalformed(m) => Self::Malformed(m),
            oidc::Error::TokenAlgorithm => Self::Algorithm,
            oidc::Error::TokenUnknownKey => Self::UnknownKey,
            oidc::Error::TokenSignature => Self::Signature,
            oidc::Error::TokenClaim(c) => Self::Claim(c),
            oidc::Error::TokenExpired => Self::Expired,
            _ => return None,
        })
    }
}

/// The runtime state of the bearer path, owned by the gate.
pub(super) struct Bearer {
    throttle: Throttle,
}

impl Bearer {
    pub(super) fn new(settings: &BearerSettings, clock: SharedClock) -> Self {
        Self {
            throttle: Throttle::new(settings.throttle.clone(), clock),
        }
    }
}

/// What the `Authorization` header presents.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Presented<'a> {
    /// A token in `b64token` syntax.
    Token(&'a str),
    /// The Bearer scheme without a usable token.
    Refused(BearerReject),
}

/// The bearer token of `headers`, if the `Authorization` scheme is Bearer
/// (in any case).
pub(super) fn presented(headers: &HeaderMap) -> Option<Presented<'_>> {
    let mut all = headers.get_all(AUTHORIZATION).iter();
    let first = all.next()?;
    let bytes = first.as_bytes();
    let is_bearer = bytes
        .get(..6)
        .is_some_and(|s| s.eq_ignore_ascii_case(b"bearer"))
        && bytes.get(6).is_none_or(|b| *b == b' ');
    if !is_bearer {
        return None;
    }
    if all.next().is_some() {
        return Some(Presented::Refused(BearerReject::BadHeader));
    }
    let Ok(text) = first.to_str() else {
        return Some(Presented::Refused(BearerReject::BadHeader));
    };
    let token = text.get(6..).unwrap_or("").trim_matches(' ');
    if token.is_empty() {
        return Some(Presented::Refused(BearerReject::Missing));
    }
    Some(if is_b64token(token) {
        Presented::Token(token)
    } else {
        Presented::Refused(BearerReject::BadHeader)
    })
}

/// RFC 6750 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(t: &str) -> bool {
    let body = t.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

/// True when `token` has the three segments of a compact JWS (some possibly
/// empty): it is judged as a JWT, so an unsigned or damaged JWT is refused
/// for what it is and never sent to introspection.
fn is_compact_jws(token: &str) -> bool {
    token.bytes().filter(|b| *b == b'.').count() == 2
}

/// Why authentication stopped: the token's fault (401) or not (the error's
/// own status).
enum Failure {
    Reject(BearerReject),
    Unavailable(Error),
}

impl From<BearerReject> for Failure {
    fn from(r: BearerReject) -> Self {
        Self::Reject(r)
    }
}

fn oidc_failure(e: oidc::Error) -> Failure {
    match BearerReject::from_oidc(&e) {
        Some(r) => Failure::Reject(r),
        None => Failure::Unavailable(Error::Oidc(e)),
    }
}

/// Verified claims as kept in [`Namespace::VerifiedClaims`].
#[derive(Serialize, Deserialize)]
struct CachedClaims {
    /// The JOSE `typ` header.
    #[serde(default)]
    typ: Option<String>,
    /// Every claim of the token.
    claims: Map<String, Value>,
}

/// What the claim rules need besides the claims.
struct Expect<'a> {
    issuer: &'a str,
    audience: &'a str,
    client_id: &'a str,
    now: u64,
    skew: Duration,
    max_age: Duration,
}

/// The cache key of a bearer token in the claims and introspection caches.
fn token_key(token: &str) -> CacheKey {
    CacheKey::hashed(&format!("bearer {token}"))
}

/// The revocation marker of a token, derived from its [`token_key`] so the
/// token is hashed once per request.
fn revoked_token_key(token_key: &CacheKey) -> CacheKey {
    CacheKey::hashed(&format!("revoked-token {}", token_key.as_str()))
}

/// The revocation marker of a `jti`.
fn revoked_jti_key(jti: &str) -> CacheKey {
    CacheKey::hashed(&format!("revoked-jti {jti}"))
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Seconds from `now` until `exp`, if positive.
fn remaining(exp: Option<i64>, now: u64) -> Option<Duration> {
    let now = i64::try_from(now).ok()?;
    let left = exp?.checked_sub(now)?;
    u64::try_from(left)
        .ok()
        .filter(|l| *l > 0)
        .map(Duration::from_secs)
}

fn int(claims: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, BearerReject> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or(BearerReject::Claim(name)),
    }
}

fn audience(claims: &Map<String, Value>) -> Option<Audience> {
    claims
        .get("aud")
        .and_then(|v| serde_json::from_value::<Audience>(v.clone()).ok())
}

/// `exp`, `nbf`, `iat` (required when `iat_required`) and the token age.
fn check_times(
    claims: &Map<String, Value>,
    exp_required: bool,
    iat_required: bool,
    x: &Expect<'_>,
) -> Result<(), BearerReject> {
    let exp = int(claims, "exp")?;
    let iat = int(claims, "iat")?;
    let nbf = int(claims, "nbf")?;
    if exp_required && exp.is_none() {
        return Err(BearerReject::Claim("exp"));
    }
    if iat_required && iat.is_none() {
        return Err(BearerReject::Claim("iat"));
    }
    oidc::check_times(exp.unwrap_or(i64::MAX), iat, nbf, x.now, x.skew)
        .map_err(|e| BearerReject::from_oidc(&e).unwrap_or(BearerReject::Claim("time")))?;
    if let Some(iat) = iat {
        let now = i64::try_from(x.now).unwrap_or(i64::MAX);
        if now.saturating_sub(iat) > secs(x.max_age) {
            return Err(BearerReject::TooOld);
        }
    }
    Ok(())
}

/// The claim rules of a JWT bearer token (run on every request, cached or not).
fn check_jwt(
    claims: &Map<String, Value>,
    typ: Option<&str>,
    x: &Expect<'_>,
) -> Result<(), BearerReject> {
    if claims.get("iss").and_then(Value::as_str) != Some(x.issuer) {
        return Err(BearerReject::Claim("iss"));
    }
    let aud = audience(claims).ok_or(BearerReject::Claim("aud"))?;
    if !aud.contains(x.audience) {
        return Err(BearerReject::Claim("aud"));
    }
    if aud.0.len() > 1 && claims.get("azp").and_then(Value::as_str) != Some(x.client_id) {
        return Err(BearerReject::Claim("azp"));
    }
    check_times(claims, true, true, x)?;
    if looks_like_id_token(claims, typ, &aud, x.client_id) {
        return Err(BearerReject::IdToken);
    }
    Ok(())
}

/// ID-token heuristics, first match wins: a `nonce` or `token_use: id` marks
/// an ID token; `typ: at+jwt` (RFC 9068) or a `scope`/`scp` claim marks an
/// access token; otherwise an audience naming this client marks an ID token.
fn looks_like_id_token(
    claims: &Map<String, Value>,
    typ: Option<&str>,
    aud: &Audience,
    client_id: &str,
) -> bool {
    if claims.contains_key("nonce") {
        return true;
    }
    if claims.get("token_use").and_then(Value::as_str) == Some("id") {
        return true;
    }
    let at_jwt = typ.is_some_and(|t| {
        let t = t.trim();
        t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
    });
    if at_jwt || claims.contains_key("scope") || claims.contains_key("scp") {
        return false;
    }
    aud.contains(client_id)
}

/// The rules of an introspection answer (run on every request, cached or
/// not): those of a session's token, and an audience naming this gate.
fn check_introspection(answer: &Map<String, Value>, x: &Expect<'_>) -> Result<(), BearerReject> {
    check_session_introspection(answer, x)?;
    let aud = audience(answer).ok_or(BearerReject::Claim("aud"))?;
    if !aud.contains(x.audience) {
        return Err(BearerReject::Claim("aud"));
    }
    Ok(())
}

/// The rules of an introspection answer about a session's access token:
/// active, an access token, within its times, from this issuer when it says.
/// The token came from the token endpoint to this client, so its audience
/// is not judged (it names whatever API the provider chose).
fn check_session_introspection(
    answer: &Map<String, Value>,
    x: &Expect<'_>,
) -> Result<(), BearerReject> {
    if answer.get("active") != Some(&Value::Bool(true)) {
        return Err(BearerReject::Inactive);
    }
    if answer
        .get("token_type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("refresh_token"))
    {
        return Err(BearerReject::Inactive);
    }
    check_times(answer, false, false, x)?;
    if let Some(iss) = answer.get("iss") {
        if iss.as_str() != Some(x.issuer) {
            return Err(BearerReject::Claim("iss"));
        }
    }
    Ok(())
}

/// Every claim of a verified access token as one map.
fn all_claims(c: &AccessTokenClaims) -> Map<String, Value> {
    let mut m = c.extra.clone();
    m.insert("iss".into(), c.iss.clone().into());
    m.insert("exp".into(), c.exp.into());
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            m.insert(k.into(), v);
        }
    };
    put("sub", c.sub.clone().map(Value::from));
    put("aud", c.aud.as_ref().map(|a| Value::from(a.0.clone())));
    put("iat", c.iat.map(Value::from));
    put("nbf", c.nbf.map(Value::from));
    put("azp", c.azp.clone().map(Value::from));
    put("client_id", c.client_id.clone().map(Value::from));
    put("nonce", c.nonce.clone().map(Value::from));
    m
}

impl Gate {
    /// The bearer token this request should be judged by, if any: the
    /// bearer path is on, the header uses the Bearer scheme, and no readable
    /// session wins over it.
    pub(super) fn bearer_candidate<'v>(
        &self,
        view: &'v RequestView,
        has_session: bool,
    ) -> Option<Presented<'v>> {
        let s = &self.inner.settings.bearer;
        if !s.enabled || (has_session && !s.overrides_cookie) {
            return None;
        }
        presented(&view.headers)
    }

    /// Judges a request on its bearer token.
    pub(super) async fn bearer(
        &self,
        view: &RequestView,
        presented: Presented<'_>,
    ) -> Result<Decision, Error> {
        let s = &self.inner.settings.bearer;
        let throttle = &self.limits.bearer.throttle;
        let ip = view.client_ip;
        if let Err(retry_after) = throttle.check(ip) {
            tracing::debug!(client = %ip, retry_after, "bearer request refused: address penalised");
            return Err(Error::BearerThrottled { retry_after });
        }
        let (outcome, token) = match presented {
            Presented::Token(t) => (self.authenticate_bearer(t).await, Some(t)),
            Presented::Refused(r) => (Err(Failure::Reject(r)), None),
        };
        match outcome {
            Ok((id, claims)) => {
                throttle.success(ip);
                self.authorize(&id)?;
                let upstream_headers = self.bearer_headers(&id, &claims, token.unwrap_or(""));
                Ok(Decision::Allow(Allow {
                    principal: Some(id),
                    upstream_headers,
                    ..Allow::default()
                }))
            }
            Err(Failure::Reject(reason)) => {
                let penalised = throttle.failure(ip);
                match token.map(TokenHash::of) {
                    Some(h) => {
                        tracing::debug!(token = %h, client = %ip, %reason, "bearer token refused")
                    }
                    None => tracing::debug!(client = %ip, %reason, "bearer token refused"),
                }
                if penalised {
                    tracing::info!(client = %ip, "too many refused bearer tokens; address penalised");
                }
                Err(Error::BearerRejected {
                    reason,
                    challenge: s.emit_www_authenticate,
                })
            }
            Err(Failure::Unavailable(e)) => Err(e),
        }
    }

    /// With `requireTokenIntrospection`: whether the access token of a
    /// session (one not just issued by the token endpoint) is still active at
    /// the provider. Answers are reused while cached, as on the bearer path.
    /// A session without an access token is not active. The provider not
    /// answering is [`Error::IntrospectionUnavailable`] (503).
    pub(super) async fn session_token_active(&self, session: &Session) -> Result<bool, Error> {
        let Some(token) = session.access_token.as_deref().filter(|t| !t.is_empty()) else {
            return Ok(false);
        };
        let inner = &self.inner;
        let provider = &inner.provider;
        let unavailable =
            |e: &dyn std::fmt::Display| Error::IntrospectionUnavailable(e.to_string());
        let discovered = provider.discovered().await.map_err(|e| unavailable(&e))?;
        let client_id = &provider.settings().client_id;
        let x = Expect {
            issuer: &discovered.metadata().issuer,
            audience: client_id,
            client_id,
            now: inner.clock.now(),
            skew: provider.settings().clock_skew,
            max_age: Duration::MAX,
        };
        let key = token_key(token);
        let answer = match self.introspected(token, &self.scoped(&key), &x).await {
            Ok(answer) => answer,
            Err(Failure::Unavailable(e)) => return Err(unavailable(&e)),
            Err(Failure::Reject(r)) => return Err(unavailable(&r)),
        };
        match check_session_introspection(&answer, &x) {
            Ok(()) => Ok(true),
            Err(reason) => {
                tracing::debug!(token = %TokenHash::of(token), %reason, "session access token refused by introspection");
                Ok(false)
            }
        }
    }

    /// The key of a token's cached verdicts (claims, introspection answer)
    /// for this provider: a verdict one provider cached never counts for
    /// another. Revocation marks stay unscoped (a revoked token is revoked
    /// everywhere).
    fn scoped(&self, key: &CacheKey) -> CacheKey {
        let scope = self.mark_scope();
        if scope.is_empty() {
            key.clone()
        } else {
            CacheKey::hashed(&format!("{scope}{}", key.as_str()))
        }
    }

    /// Every check of one token; the identity it names on success.
    async fn authenticate_bearer(
        &self,
        token: &str,
    ) -> Result<(crate::policy::Identity, Map<String, Value>), Failure> {
        let inner = &self.inner;
        let s = &inner.settings.bearer;
        if token.len() > s.max_token_bytes {
            return Err(BearerReject::TooLarge.into());
        }
        let audience = inner
            .settings
            .audience
            .as_deref()
            .ok_or(BearerReject::NoAudience)?;
        let provider = &inner.provider;
        let discovered = provider
            .discovered()
            .await
            .map_err(|e| Failure::Unavailable(Error::Oidc(e)))?;
        let x = Expect {
            issuer: &discovered.metadata().issuer,
            audience,
            client_id: &provider.settings().client_id,
            now: inner.clock.now(),
            skew: provider.settings().clock_skew,
            max_age: s.max_token_age,
        };
        let key = token_key(token);
        let claims = if is_compact_jws(token) {
            let claims = self.jwt_claims(token, &self.scoped(&key), &x).await?;
            if s.require_introspection {
                let answer = self.introspected(token, &self.scoped(&key), &x).await?;
                check_introspection(&answer, &x)?;
            }
            claims
        } else if s.allow_opaque {
            let answer = self.introspected(token, &self.scoped(&key), &x).await?;
            check_introspection(&answer, &x)?;
            answer
        } else {
            return Err(BearerReject::Opaque.into());
        };
        self.check_revoked(&key, claims.get("jti").and_then(Value::as_str))
            .await?;
        let id = inner
            .policy
            .identity_from_claims(&claims, &s.identifier_claim)
            .map_err(|_| BearerReject::Identifier)?;
        Ok((id, claims))
    }

    /// The checked claims of a JWT: from the verified-claims cache (every
    /// claim rule re-applied) or verified now and cached until `exp`.
    async fn jwt_claims(
        &self,
        token: &str,
        key: &CacheKey,
        x: &Expect<'_>,
    ) -> Result<Map<String, Value>, Failure> {
        let caches = &self.inner.caches;
        match caches
            .get::<CachedClaims>(Namespace::VerifiedClaims, key)
            .await
        {
            Ok(Some(c)) => {
                check_jwt(&c.claims, c.typ.as_deref(), x)?;
                return Ok(c.claims);
            }
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "verified-claims cache unavailable"),
        }
        let verified = self
            .inner
            .provider
            .verify_bearer_token(token, x.audience)
            .await
            .map_err(oidc_failure)?;
        let cached = CachedClaims {
            typ: verified.typ().map(str::to_owned),
            claims: all_claims(verified.claims()),
        };
        check_jwt(&cached.claims, cached.typ.as_deref(), x)?;
        if let Some(ttl) = remaining(Some(verified.claims().exp), x.now) {
            let ttl = ttl.min(Namespace::VerifiedClaims.default_ttl());
            if let Err(e) = caches
                .set(Namespace::VerifiedClaims, key, &cached, ttl)
                .await
            {
                tracing::debug!(error = %e, "verified claims not cached");
            }
        }
        Ok(cached.claims)
    }

    /// The provider's introspection answer for `token`, reused while cached.
    /// Only active answers are cached, for at most the configured time and
    /// never past the answer's `exp`.
    async fn introspected(
        &self,
        token: &str,
        key: &CacheKey,
        x: &Expect<'_>,
    ) -> Result<Map<String, Value>, Failure> {
        let caches = &self.inner.caches;
        match caches
            .get::<Map<String, Value>>(Namespace::Introspection, key)
            .await
        {
            Ok(Some(answer)) => return Ok(answer),
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "introspection cache unavailable"),
        }
        let answer = self
            .inner
            .provider
            .introspect(token)
            .await
            .map_err(oidc_failure)?;
        if answer.get("active") == Some(&Value::Bool(true)) {
            let cap = self.inner.settings.bearer.introspection_cache_ttl;
            let exp = answer.get("exp").and_then(Value::as_i64);
            let ttl = match exp {
                Some(_) => remaining(exp, x.now).map(|r| r.min(cap)),
                None => Some(cap),
            };
            if let Some(ttl) = ttl.filter(|t| !t.is_zero()) {
                if let Err(e) = caches
                    .set(Namespace::Introspection, key, &answer, ttl)
                    .await
                {
                    tracing::debug!(error = %e, "introspection answer not cached");
                }
            }
        }
        Ok(answer)
    }

    /// Refuses a revoked token or `jti`. Each mark is read on its own, so a
    /// mark the gate knows refuses the token even when the other cannot be
    /// read; a check the store cannot answer follows the outage policy
    /// (closed by default: 503 rather than a token that may be revoked).
    async fn check_revoked(&self, key: &CacheKey, jti: Option<&str>) -> Result<(), Failure> {
        let mut keys = vec![revoked_token_key(key)];
        keys.extend(jti.map(revoked_jti_key));
        let caches = &self.inner.caches;
        let reads = futures_util::future::join_all(
            keys.iter()
                .map(|k| caches.get::<Value>(Namespace::Revoked, k)),
        )
        .await;
        let mut unanswered = None;
        for read in reads {
            match read {
                Ok(Some(_)) => return Err(BearerReject::Revoked.into()),
                Ok(None) => {}
                Err(e) => unanswered = Some(e),
            }
        }
        let Some(e) = unanswered else {
            return Ok(());
        };
        let policy = self
            .inner
            .settings
            .security_outage_policy
            .unwrap_or(OutagePolicy::DEFAULT_FOR_BEARER);
        match policy {
            OutagePolicy::Open => {
                tracing::debug!(error = %e, "revocation state unavailable; bearer token accepted (outage policy open)");
                Ok(())
            }
            OutagePolicy::Closed => {
                tracing::warn!(error = %e, "revocation state unavailable; bearer token refused");
                Err(Failure::Unavailable(Error::RevocationUnavailable))
            }
        }
    }

    /// How long a revocation marker lives: past the point where the token's
    /// age alone refuses it.
    fn revocation_ttl(&self) -> Duration {
        let s = &self.inner.settings.bearer;
        let skew = self.inner.provider.settings().clock_skew;
        Namespace::Revoked
            .default_ttl()
            .max(s.max_token_age.saturating_add(skew))
    }

    /// Revokes a bearer token on every replica sharing the caches: from now
    /// on it is refused, cached or not. Its cached claims and introspection
    /// answer are dropped as well.
    pub async fn revoke_token(&self, token: &str) -> Result<(), crate::cache::Error> {
        let caches = &self.inner.caches;
        let ttl = self.revocation_ttl();
        let key = token_key(token);
        caches
            .set(
                Namespace::Revoked,
                &revoked_token_key(&key),
                &self.now(),
                ttl,
            )
            .await?;
        for ns in [Namespace::VerifiedClaims, Namespace::Introspection] {
            if let Err(e) = caches.delete(ns, &key).await {
                tracing::debug!(error = %e, namespace = %ns, "cached token entry not dropped");
            }
        }
        tracing::info!(token = %TokenHash::of(token), "bearer token revoked");
        Ok(())
    }

    /// Revokes every token carrying `jti`, on every replica sharing the
    /// caches.
    pub async fn revoke_jti(&self, jti: &str) -> Result<(), crate::cache::Error> {
        let ttl = self.revocation_ttl();
        self.inner
            .caches
            .set(Namespace::Revoked, &revoked_jti_key(jti), &self.now(), ttl)
            .await
    }
}

/// The `WWW-Authenticate` header value of a refused bearer token.
pub(super) fn challenge_header(reason: BearerReject) -> Option<HeaderValue> {
    HeaderValue::from_str(&reason.challenge()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn authorization_header_table() {
        use Presented::*;
        let cases: &[(&[&str], Option<Presented<'_>>)] = &[
            (&[], None),
            (&["Basic dXNlcjpwYXNz"], None),
            (&["Bearerish abc"], None),
            (&["Bearer abc.def.ghi"], Some(Token("abc.def.ghi"))),
            (&["bearer   tok=="], Some(Token("tok=="))),
            (&["BEARER a-b_c~d+e/f"], Some(Token("a-b_c~d+e/f"))),
            (&["Bearer"], Some(Refused(BearerReject::Missing))),
            (&["Bearer    "], Some(Refused(BearerReject::Missing))),
            (&["Bearer a b"], Some(Refused(BearerReject::BadHeader))),
            (&["Bearer a\"b"], Some(Refused(BearerReject::BadHeader))),
            (&["Bearer ==="], Some(Refused(BearerReject::BadHeader))),
            (
                &["Bearer a", "Bearer b"],
                Some(Refused(BearerReject::BadHeader)),
            ),
        ];
        for (values, want) in cases {
            let h = headers(values);
            assert_eq!(presented(&h), *want, "{values:?}");
        }
    }

    fn expect() -> Expect<'static> {
        Expect {
            issuer: "https://idp.example",
            audience: "api://default",
            client_id: "gate",
            now: 1_000_000,
            skew: Duration::from_secs(60),
            max_age: Duration::from_secs(3600),
        }
    }

    fn base() -> Value {
        json!({"iss": "https://idp.example", "aud": "api://default", "sub": "svc",
               "iat": 999_900, "exp": 1_000_300, "scope": "api"})
    }

    fn with(extra: Value) -> Map<String, Value> {
        let mut m = base().as_object().unwrap().clone();
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                m.remove(k);
            } else {
                m.insert(k.clone(), v.clone());
            }
        }
        m
    }

    #[test]
    fn jwt_claim_rules() {
        let x = expect();
        type Row = (
            &'static str,
            Value,
            Option<&'static str>,
            Result<(), BearerReject>,
        );
        let cases: &[Row] = &[
            ("valid", json!({}), Some("at+jwt"), Ok(())),
            (
                "wrong iss",
                json!({"iss": "https://evil"}),
                None,
                Err(BearerReject::Claim("iss")),
            ),
            (
                "wrong aud",
                json!({"aud": "other"}),
                None,
                Err(BearerReject::Claim("aud")),
            ),
            (
                "no aud",
                json!({"aud": null}),
                None,
                Err(BearerReject::Claim("aud")),
            ),
            (
                "multi aud no azp",
                json!({"aud": ["api://default", "x"]}),
                None,
                Err(BearerReject::Claim("azp")),
            ),
            (
                "multi aud bad azp",
                json!({"aud": ["api://default", "x"], "azp": "x"}),
                None,
                Err(BearerReject::Claim("azp")),
            ),
            (
                "multi aud azp",
                json!({"aud": ["api://default", "x"], "azp": "gate"}),
                None,
                Ok(()),
            ),
            (
                "expired",
                json!({"exp": 999_000}),
                None,
                Err(BearerReject::Expired),
            ),
            (
                "exp string",
                json!({"exp": "1000300"}),
                None,
                Err(BearerReject::Claim("exp")),
            ),
            (
                "no exp",
                json!({"exp": null}),
                None,
                Err(BearerReject::Claim("exp")),
            ),
            (
                "no iat",
                json!({"iat": null}),
                None,
                Err(BearerReject::Claim("iat")),
            ),
            (
                "iat future",
                json!({"iat": 1_000_200}),
                None,
                Err(BearerReject::Claim("iat")),
            ),
            (
                "iat old",
                json!({"iat": 990_000}),
                None,
                Err(BearerReject::TooOld),
            ),
            (
                "nbf future",
                json!({"nbf": 1_000_200}),
                None,
                Err(BearerReject::Claim("nbf")),
            ),
            (
                "nonce",
                json!({"nonce": "n"}),
                Some("at+jwt"),
                Err(BearerReject::IdToken),
            ),
            (
                "token_use id",
                json!({"token_use": "id"}),
                None,
                Err(BearerReject::IdToken),
            ),
            (
                "aud is client, no scope",
                json!({"aud": ["api://default", "gate"], "azp": "gate", "scope": null}),
                Some("JWT"),
                Err(BearerReject::IdToken),
            ),
            (
                "aud is client, at+jwt",
                json!({"aud": ["api://default", "gate"], "azp": "gate", "scope": null}),
                Some("at+jwt"),
                Ok(()),
            ),
            (
                "aud is client, scope",
                json!({"aud": ["api://default", "gate"], "azp": "gate"}),
                None,
                Ok(()),
            ),
        ];
        for (name, extra, typ, want) in cases {
            assert_eq!(check_jwt(&with(extra.clone()), *typ, &x), *want, "{name}");
        }
    }

    #[test]
    fn introspection_rules() {
        let x = expect();
        let ok = json!({"active": true, "aud": ["api://default"], "exp": 1_000_300, "sub": "s"});
        let cases: &[(&str, Value, Result<(), BearerReject>)] = &[
            ("active", ok.clone(), Ok(())),
            (
                "inactive",
                json!({"active": false}),
                Err(BearerReject::Inactive),
            ),
            (
                "active string",
                json!({"active": "true", "aud": "api://default"}),
                Err(BearerReject::Inactive),
            ),
            (
                "no exp",
                json!({"active": true, "aud": "api://default"}),
                Ok(()),
            ),
            (
                "expired",
                json!({"active": true, "aud": "api://default", "exp": 999_000}),
                Err(BearerReject::Expired),
            ),
            (
                "wrong aud",
                json!({"active": true, "aud": "x"}),
                Err(BearerReject::Claim("aud")),
            ),
            (
                "no aud",
                json!({"active": true}),
                Err(BearerReject::Claim("aud")),
            ),
            (
                "wrong iss",
                json!({"active": true, "aud": "api://default", "iss": "https://evil"}),
                Err(BearerReject::Claim("iss")),
            ),
            (
                "refresh token",
                json!({"active": true, "aud": "api://default", "token_type": "refresh_token"}),
                Err(BearerReject::Inactive),
            ),
        ];
        for (name, answer, want) in cases {
            let m = answer.as_object().unwrap();
            assert_eq!(check_introspection(m, &x), *want, "{name}");
        }
    }

    #[test]
    fn challenge_is_rfc6750() {
        assert_eq!(
            BearerReject::Expired.challenge(),
            "Bearer error=\"invalid_token\", error_description=\"The access token expired\""
        );
        assert!(
            BearerReject::Missing
                .challenge()
                .contains("invalid_request")
        );
        assert!(challenge_header(BearerReject::Signature).is_some());
    }

    #[test]
    fn defaults_are_named() {
        let d = BearerSettings::default();
        assert!(!d.enabled && d.emit_www_authenticate);
        assert_eq!(d.identifier_claim, "sub");
        assert_eq!(d.max_token_age, Duration::from_secs(86_400));
        assert_eq!(d.throttle.threshold, 20);
        assert_eq!(d.introspection_cache_ttl, Duration::from_secs(300));
    }

    #[test]
    fn compact_jws_shape_decides_the_path() {
        assert!(is_compact_jws("a.b.c"));
        assert!(is_compact_jws("a.b."), "unsigned JWTs are judged as JWTs");
        assert!(!is_compact_jws("opaque-token"));
        assert!(!is_compact_jws("a.b"));
        assert!(!is_compact_jws("a.b.c.d"));
    }

    #[test]
    fn remaining_time() {
        assert_eq!(remaining(Some(110), 100), Some(Duration::from_secs(10)));
        assert_eq!(remaining(Some(100), 100), None);
        assert_eq!(remaining(None, 100), None);
    }
}
