//! An in-process OpenID Provider for tests.
//!
//! [`TestIdp::start`] binds an ephemeral loopback port and serves discovery,
//! JWKS, the authorization code flow (with PKCE), refresh tokens with
//! rotation and reuse detection, client credentials, introspection,
//! revocation, userinfo and RP-initiated logout. Tokens are signed with keys
//! generated at start-up; faults can be injected per endpoint, and arbitrary
//! (including deliberately broken) tokens can be minted for negative tests.
//!
//! Every `/authorize` request logs in the current [`TestUser`] without any
//! interaction and starts a new IdP session with its own `sid`.

mod client_auth;
mod core;
mod http;

pub use client_auth::{AssertionAud, ClientKey, ClientKeyAlg, JWT_BEARER};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::task::JoinHandle;

use self::core::Shared;
use crate::jose::{self, Signer};
use crate::server;

/// JWS algorithm of a signing key.
#[allow(clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SigningAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 over a 2048-bit RSA key.
    #[default]
    RS256,
    /// ECDSA over P-256 with SHA-256 (fixed-width `r || s` signatures).
    ES256,
    /// ECDSA over P-521 with SHA-512 (fixed-width `r || s` signatures).
    ES512,
}

#[allow(non_upper_case_globals)]
impl SigningAlg {
    /// Alias of [`SigningAlg::RS256`] in Rust naming style.
    pub const Rs256: SigningAlg = SigningAlg::RS256;
    /// Alias of [`SigningAlg::ES256`] in Rust naming style.
    pub const Es256: SigningAlg = SigningAlg::ES256;

    /// The JOSE `alg` name, e.g. `"RS256"`.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::RS256 => "RS256",
            SigningAlg::ES256 => "ES256",
            SigningAlg::ES512 => "ES512",
        }
    }
}

/// Format of the access tokens returned by the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccessTokenFormat {
    /// RFC 9068 JWT access tokens (`typ: at+jwt`).
    #[default]
    Jwt,
    /// Random opaque strings, only checkable through introspection.
    Opaque,
    /// Shaped like Microsoft Graph tokens from Entra ID: a JWT with a
    /// `nonce` header parameter, the Graph audience and another issuer,
    /// signed by an unpublished key: no client can verify it.
    EntraGraph,
    /// Shaped like the access tokens of Okta's org authorization server: a
    /// JWT for Okta's own APIs (`aud` the issuer, `cid`, `uid`, `scp`),
    /// signed by a key whose public part is never published.
    OktaOrg,
}

/// When the token endpoint issues a refresh token with a code grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RefreshTokenRule {
    /// With every code grant (when `issue_refresh_tokens`).
    #[default]
    Always,
    /// As Google: only when the authorization request carried
    /// `access_type=offline` and `prompt=consent`; the scope
    /// `offline_access` is refused with `invalid_scope`.
    GoogleOffline,
}

/// The end user that `/authorize` logs in.
#[derive(Debug, Clone, PartialEq)]
pub struct TestUser {
    /// Subject identifier (`sub`).
    pub sub: String,
    /// `email` claim.
    pub email: Option<String>,
    /// `email_verified` claim.
    pub email_verified: Option<bool>,
    /// `name` claim.
    pub name: Option<String>,
    /// `preferred_username` claim.
    pub preferred_username: Option<String>,
    /// `groups` claim (always emitted, possibly empty).
    pub groups: Vec<String>,
    /// `roles` claim (always emitted, possibly empty).
    pub roles: Vec<String>,
    /// Additional claims merged into ID tokens and userinfo.
    pub extra: Map<String, Value>,
    /// Claims only JWT access tokens carry (Keycloak's `realm_access`).
    pub access_token_extra: Map<String, Value>,
    /// Claims only the userinfo endpoint returns (GitLab's groups).
    pub userinfo_extra: Map<String, Value>,
}

impl TestUser {
    /// A user with the given subject and a verified email; no name, groups
    /// or roles.
    pub fn new(sub: &str, email: &str) -> Self {
        Self {
            sub: sub.to_owned(),
            email: Some(email.to_owned()),
            email_verified: Some(true),
            name: None,
            preferred_username: None,
            groups: Vec::new(),
            roles: Vec::new(),
            extra: Map::new(),
            access_token_extra: Map::new(),
            userinfo_extra: Map::new(),
        }
    }

    /// The user's identity claims (`sub`, `email`, ..., `groups`, `roles`,
    /// then `extra`).
    pub fn claims(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("sub".into(), Value::from(self.sub.clone()));
        if let Some(v) = &self.email {
            m.insert("email".into(), Value::from(v.clone()));
        }
        if let Some(v) = self.email_verified {
            m.insert("email_verified".into(), Value::from(v));
        }
        if let Some(v) = &self.name {
            m.insert("name".into(), Value::from(v.clone()));
        }
        if let Some(v) = &self.preferred_username {
            m.insert("preferred_username".into(), Value::from(v.clone()));
        }
        m.insert("groups".into(), Value::from(self.groups.clone()));
        m.insert("roles".into(), Value::from(self.roles.clone()));
        for (k, v) in &self.extra {
            m.insert(k.clone(), v.clone());
        }
        m
    }

    /// The value reported as `username` by introspection.
    pub(crate) fn username(&self) -> String {
        self.preferred_username
            .clone()
            .or_else(|| self.email.clone())
            .unwrap_or_else(|| self.sub.clone())
    }
}

impl Default for TestUser {
    /// `demo-user-1` / `demo@example.com`, name "Demo User", username
    /// "demo", group `staff`, role `reader`.
    fn default() -> Self {
        let mut user = TestUser::new("demo-user-1", "demo@example.com");
        user.name = Some("Demo User".into());
        user.preferred_username = Some("demo".into());
        user.groups = vec!["staff".into()];
        user.roles = vec!["reader".into()];
        user
    }
}

/// Configuration of a [`TestIdp`].
#[derive(Debug, Clone)]
pub struct IdpConfig {
    /// The only registered client's id (default `"oidcgate"`).
    pub client_id: String,
    /// The client's secret (default `"s3cr3t-for-tests"`).
    pub client_secret: String,
    /// Algorithm of the initial signing key (default RS256).
    pub signing_alg: SigningAlg,
    /// Lifetime of ID tokens (default 300 s).
    pub id_token_ttl: Duration,
    /// Lifetime of access tokens, reported as `expires_in` (default 300 s).
    pub access_token_ttl: Duration,
    /// Access token format from the token endpoint (default JWT).
    pub access_token_format: AccessTokenFormat,
    /// `aud` of JWT access tokens (default `"api://default"`).
    pub api_audience: String,
    /// Honour RFC 8707 resource indicators: the access token of a code or
    /// refresh grant that names a `resource` has it as its `aud` (default
    /// false: the parameter is recorded and ignored, as Keycloak does).
    pub resource_indicators: bool,
    /// Issue a new refresh token on every refresh (default true).
    pub rotate_refresh_tokens: bool,
    /// Issue refresh tokens at all (default true).
    pub issue_refresh_tokens: bool,
    /// The user the first `/authorize` logs in.
    pub user: TestUser,
    /// Advertise and serve `end_session_endpoint` (default true).
    pub with_end_session: bool,
    /// Advertise `frontchannel_logout_session_supported: true` (the provider
    /// sends `iss` and `sid` to front-channel logout URIs).
    pub frontchannel_logout_session: bool,
    /// Artificial latency of every grant at `/token` (default zero).
    pub token_endpoint_delay: Duration,
    /// Include an ID token in refresh-token responses (default true; some
    /// providers answer a refresh with access and refresh tokens only).
    pub id_token_on_refresh: bool,
    /// Client authentication methods the client may use, advertised as
    /// `token_endpoint_auth_methods_supported` (default
    /// `client_secret_post`, `client_secret_basic`).
    pub token_endpoint_auth_methods: Vec<String>,
    /// The client's registered public key (a JWK) for `private_key_jwt`.
    pub client_jwk: Option<Value>,
    /// The `aud` required in client assertions (default the issuer).
    pub assertion_aud: AssertionAud,
    /// Path under which every endpoint is served, e.g. `/realms/demo`
    /// (default empty: the issuer is `http://127.0.0.1:PORT`).
    pub issuer_path: String,
    /// The discovery document's `issuer` when it differs from where the
    /// provider is served (`{base}` stands for `http://127.0.0.1:PORT`), e.g.
    /// Entra ID's multi-tenant `{base}/{tenantid}/v2.0`.
    pub advertised_issuer: Option<String>,
    /// The `iss` of issued tokens when it differs from where the provider
    /// is served (`{base}` as above).
    pub token_issuer: Option<String>,
    /// `scopes_supported` in discovery (default `openid profile email
    /// offline_access groups`).
    pub scopes_supported: Vec<String>,
    /// When code grants come with a refresh token.
    pub refresh_token_rule: RefreshTokenRule,
    /// Serve RFC 7591 dynamic client registration at `POST /register`
    /// (advertised as `registration_endpoint`). The provider still has one
    /// client: a registration hands out `client_id` and `client_secret`.
    pub registration: bool,
    /// The initial access token `/register` requires as `Bearer`, if any.
    pub registration_token: Option<String>,
}

impl Default for IdpConfig {
    fn default() -> Self {
        Self {
            client_id: "oidcgate".into(),
            client_secret: "s3cr3t-for-tests".into(),
            signing_alg: SigningAlg::RS256,
            id_token_ttl: Duration::from_secs(300),
            access_token_ttl: Duration::from_secs(300),
            access_token_format: AccessTokenFormat::Jwt,
            api_audience: "api://default".into(),
            resource_indicators: false,
            rotate_refresh_tokens: true,
            issue_refresh_tokens: true,
            user: TestUser::default(),
            with_end_session: true,
            frontchannel_logout_session: false,
            token_endpoint_delay: Duration::ZERO,
            id_token_on_refresh: true,
            token_endpoint_auth_methods: vec![
                "client_secret_post".into(),
                "client_secret_basic".into(),
            ],
            client_jwk: None,
            assertion_aud: AssertionAud::Issuer,
            issuer_path: String::new(),
            advertised_issuer: None,
            token_issuer: None,
            scopes_supported: ["openid", "profile", "email", "offline_access", "groups"]
                .map(String::from)
                .to_vec(),
            refresh_token_rule: RefreshTokenRule::Always,
            registration: false,
            registration_token: None,
        }
    }
}

/// Which key signs a token produced by [`TestIdp::mint`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum KeyChoice {
    /// The current signing key (published in the JWKS).
    #[default]
    Current,
    /// A key of the current algorithm whose public part is never published.
    Unpublished,
    /// `alg: none` with an empty signature.
    None,
    /// HMAC-SHA256 with these bytes as the secret; the header carries
    /// `alg: HS256` and the current key's `kid` (algorithm confusion).
    Hs256WithSecret(Vec<u8>),
}

/// A request to sign an arbitrary token, see [`TestIdp::mint`].
#[derive(Debug, Clone, PartialEq)]
pub struct Mint {
    /// Merged over the default header `{"alg", "kid", "typ": "JWT"}`; a
    /// `null` member removes that header parameter.
    pub header: Value,
    /// The claims, serialised exactly as given.
    pub claims: Value,
    /// The signing key.
    pub key: KeyChoice,
    /// When set, used verbatim as the signature bytes.
    pub raw_signature: Option<Vec<u8>>,
}

impl Mint {
    /// Signs `claims` with the current key and the default header.
    pub fn new(claims: Value) -> Self {
        Self {
            claims,
            ..Self::default()
        }
    }
}

impl Default for Mint {
    fn default() -> Self {
        Self {
            header: Value::Object(Map::new()),
            claims: Value::Object(Map::new()),
            key: KeyChoice::Current,
            raw_signature: None,
        }
    }
}

/// An endpoint that faults can be injected into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /token`.
    Token,
    /// `GET /jwks`.
    Jwks,
    /// `GET /.well-known/openid-configuration`.
    Discovery,
    /// `POST /introspect`.
    Introspection,
    /// `GET /authorize`.
    Authorize,
    /// `GET|POST /userinfo`.
    Userinfo,
    /// `POST /revoke`.
    Revocation,
    /// `GET /session/end`.
    EndSession,
    /// `POST /register` (dynamic client registration).
    Registration,
    /// Every request, whatever its path.
    Any,
}

/// How an injected fault makes a request fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this HTTP status and a JSON body
    /// `{"error":"server_error","error_description":"injected fault"}`.
    Status(u16),
    /// Wait this long, then handle the request normally.
    Delay(Duration),
    /// Answer 400 (401 for `invalid_client`) with `{"error": code}`.
    OAuthError(&'static str),
    /// Close the connection without sending a response.
    Down,
    /// Accept the request and never answer (until the client gives up).
    Hang,
    /// Answer 200 with a JSON content type and a body that is not JSON.
    Malformed,
}

/// A snapshot of the provider's request counters.
///
/// Grant counters count every request with that `grant_type`, successful or
/// not; `failed_grants` counts every unsuccessful `/token` request
/// (including unknown grant types and injected faults other than delays).
/// The other counters count every request to their endpoint, including
/// requests that an injected fault answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// `/authorize` requests.
    pub authorize: u64,
    /// `authorization_code` grants.
    pub code_grants: u64,
    /// `refresh_token` grants.
    pub refresh_grants: u64,
    /// `client_credentials` grants.
    pub client_credentials_grants: u64,
    /// Unsuccessful `/token` requests.
    pub failed_grants: u64,
    /// `/introspect` requests.
    pub introspections: u64,
    /// `/session/end` requests.
    pub end_session_calls: u64,
    /// `/jwks` requests.
    pub jwks_fetches: u64,
    /// Discovery document requests.
    pub discovery_fetches: u64,
    /// Dynamic client registrations (`POST /register`), refused ones included.
    pub registrations: u64,
}

/// One authenticated request to `POST /revoke` (RFC 7009).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// The `token` parameter.
    pub token: String,
    /// The `token_type_hint` parameter.
    pub hint: Option<String>,
    /// What this provider issued the token as (`refresh_token`,
    /// `access_token`), or `None` for a token it does not know.
    pub issued_as: Option<&'static str>,
    /// The query string of the request URL (distinguishes a configured
    /// endpoint address from the discovered one).
    pub query: Option<String>,
}

/// A running test OpenID Provider. The server stops when this is dropped.
pub struct TestIdp {
    shared: Arc<Shared>,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for TestIdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestIdp")
            .field("issuer", &self.shared.issuer)
            .finish_non_exhaustive()
    }
}

impl Drop for TestIdp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestIdp {
    /// Generates the signing key, binds `127.0.0.1:0` and starts serving.
    pub async fn start(cfg: IdpConfig) -> TestIdp {
        let (listener, addr) = server::bind_loopback().await;
        let shared = Arc::new(Shared::new(cfg, format!("http://{addr}")));
        let task = server::spawn(listener, http::handler(shared.clone()));
        TestIdp { shared, addr, task }
    }

    /// The URL the provider is served at, `http://127.0.0.1:PORT` plus
    /// `issuer_path`, without a trailing slash (the issuer, unless
    /// `advertised_issuer` says otherwise).
    pub fn issuer(&self) -> String {
        self.shared.issuer.clone()
    }

    /// The query parameters of every `/authorize` request so far, in order.
    pub fn authorize_requests(&self) -> Vec<Vec<(String, String)>> {
        self.shared.state.lock().authorize_log.clone()
    }

    /// How many refresh tokens the token endpoint has issued so far.
    pub fn refresh_tokens_issued(&self) -> usize {
        self.shared.state.lock().refresh.len()
    }

    /// The form parameters of every `/token` request so far, in order,
    /// without the client's secret or assertion.
    pub fn token_requests(&self) -> Vec<Vec<(String, String)>> {
        self.shared.state.lock().token_log.clone()
    }

    /// The discovery document URL.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.shared.issuer)
    }

    /// The socket address the provider listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The registered client's id.
    pub fn client_id(&self) -> &str {
        &self.shared.cfg.client_id
    }

    /// The registered client's secret.
    pub fn client_secret(&self) -> &str {
        &self.shared.cfg.client_secret
    }

    /// Sets the user that subsequent `/authorize` requests log in.
    pub fn set_user(&self, user: TestUser) {
        self.shared.state.lock().user = user;
    }

    /// The client authentication method of every successful client
    /// authentication so far, in order (`client_secret_basic`, ...).
    pub fn client_auth_methods_used(&self) -> Vec<&'static str> {
        self.shared.state.lock().client_auth_log.clone()
    }

    /// Every authenticated revocation request so far, in order.
    pub fn revocations(&self) -> Vec<Revocation> {
        self.shared.state.lock().revocations.clone()
    }

    /// A snapshot of the request counters.
    pub fn counters(&self) -> Counters {
        self.shared.counters.snapshot()
    }

    /// Generates a new key that signs from now on; previously published
    /// keys stay in the JWKS until [`TestIdp::remove_old_keys`].
    pub fn rotate_signing_key(&self, alg: SigningAlg) {
        let key = Arc::new(jose::SigningKey::generate(alg));
        let mut st = self.shared.state.lock();
        st.published.push(key.clone());
        st.current = key;
    }

    /// Stops publishing every key except the current one.
    pub fn remove_old_keys(&self) {
        let mut st = self.shared.state.lock();
        let current = st.current.kid.clone();
        st.published.retain(|k| k.kid == current);
    }

    /// The `kid` of the current signing key.
    pub fn current_kid(&self) -> String {
        self.shared.state.lock().current.kid.clone()
    }

    /// The current public key as DER SubjectPublicKeyInfo (e.g. as an
    /// HMAC secret for algorithm-confusion tests).
    pub fn current_public_key_der(&self) -> Vec<u8> {
        self.shared.state.lock().current.public_der()
    }

    /// The current public key as a PEM `PUBLIC KEY` document.
    pub fn current_public_key_pem(&self) -> String {
        self.shared.state.lock().current.public_pem()
    }

    /// The JWKS document as currently served.
    pub fn jwks(&self) -> Value {
        self.shared.jwks()
    }

    /// Makes the next `times` requests to `endpoint` fail with `fault`.
    /// Faults are consumed in injection order; each request consumes at
    /// most one.
    pub fn inject(&self, endpoint: Endpoint, fault: Fault, times: u32) {
        if times > 0 {
            self.shared.faults.lock().push((endpoint, fault, times));
        }
    }

    /// Removes every pending fault.
    pub fn clear_faults(&self) {
        self.shared.faults.lock().clear();
    }

    /// Claims merged into every ID token the token endpoint issues from now
    /// on (a `null` member removes that claim); `Value::Null` clears them.
    pub fn set_id_token_overrides(&self, claims: Value) {
        self.shared.state.lock().id_token_overrides = match claims {
            Value::Null => None,
            other => Some(other),
        };
    }

    /// Claims merged into every JWT access token the token endpoint issues
    /// from now on (a `null` member removes that claim); `Value::Null`
    /// clears them.
    pub fn set_access_token_overrides(&self, claims: Value) {
        self.shared.state.lock().access_token_overrides = match claims {
            Value::Null => None,
            other => Some(other),
        };
    }

    /// Which key signs the ID tokens the token endpoint issues from now on
    /// (default [`KeyChoice::Current`]), e.g. an unpublished key or
    /// `alg: none` to test that a relying party refuses them at login.
    pub fn set_id_token_key(&self, key: KeyChoice) {
        self.shared.state.lock().id_token_key = key;
    }

    /// Signs an arbitrary token, see [`Mint`].
    pub fn mint(&self, m: Mint) -> String {
        self.shared.mint(&m)
    }

    /// A valid ID token for the current user (fresh `sid`, no `nonce`),
    /// with `extra` merged over the standard claims (`null` removes).
    pub fn id_token(&self, extra: Value) -> String {
        self.shared.helper_id_token(&extra)
    }

    /// A valid JWT access token for the current user, with `extra` merged
    /// over the standard claims. It is recorded, so introspection and
    /// userinfo accept it.
    pub fn access_token(&self, extra: Value) -> String {
        self.shared.helper_access_token(&extra)
    }

    /// A client-credentials JWT access token for `audience` (recorded for
    /// introspection).
    pub fn client_credentials_token(&self, audience: &str) -> String {
        self.shared.client_credentials_token(audience, "api")
    }

    /// An OpenID Connect back-channel logout token for this client.
    pub fn logout_token(&self, sid: Option<&str>, sub: Option<&str>) -> String {
        self.shared.logout_token(sid, sub)
    }

    /// Revokes a refresh token; using it afterwards yields `invalid_grant`.
    pub fn revoke_refresh_token(&self, rt: &str) {
        self.shared.revoke_refresh_token(rt);
    }

    /// Expires every refresh token issued so far.
    pub fn expire_refresh_tokens(&self) {
        self.shared.expire_refresh_tokens();
    }

    /// Revokes every access token issued so far: introspection reports them
    /// inactive from now on.
    pub fn revoke_access_tokens(&self) {
        for at in self.shared.state.lock().access.values_mut() {
            at.revoked = true;
        }
    }
}

impl Shared {
    /// Signs an arbitrary token, see [`Mint`].
    pub(crate) fn mint(&self, m: &Mint) -> String {
        let current = self.state.lock().current.clone();
        let unpublished;
        let (mut header, signer) = match &m.key {
            KeyChoice::Current => (default_header(&current), Signer::Key(&current)),
            KeyChoice::Unpublished => {
                unpublished = self.unpublished_key(current.alg);
                (default_header(&unpublished), Signer::Key(&unpublished))
            }
            KeyChoice::None => {
                let mut h = Map::new();
                h.insert("alg".into(), "none".into());
                h.insert("typ".into(), "JWT".into());
                (h, Signer::Nothing)
            }
            KeyChoice::Hs256WithSecret(secret) => {
                let mut h = default_header(&current);
                h.insert("alg".into(), "HS256".into());
                (h, Signer::Hs256(secret))
            }
        };
        jose::merge(&mut header, &m.header);
        jose::compact_jws(
            &Value::Object(header),
            &m.claims,
            signer,
            m.raw_signature.as_deref(),
        )
    }
}

fn default_header(key: &jose::SigningKey) -> Map<String, Value> {
    let mut h = Map::new();
    h.insert("alg".into(), key.alg.as_str().into());
    h.insert("kid".into(), key.kid.clone().into());
    h.insert("typ".into(), "JWT".into());
    h
}
