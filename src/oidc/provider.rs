//! The runtime handle of one OpenID Provider: lazily discovered metadata and
//! keys, token verification and token-endpoint grants.
//!
//! The ready state is read lock-free. Discovery runs at first need (or when the
//! server starts) and, after a failure, at most once per
//! `discovery_retry_interval`; requests in between fail fast with
//! [`Error::DiscoveryThrottled`] instead of queueing behind the provider.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use serde_json::{Map, Value};

use super::Error;
use super::client_auth::{
    AssertionAudience, AssertionKey, ClientAuthMethod, ClientCredentials, select_method,
};
use super::discovery::{ProviderMetadata, discover};
use super::github::{self, GitHubSettings, GitHubUser};
use super::http::{HttpSettings, build_client};
use super::introspect;
use super::jwks::{DEFAULT_JWKS_MIN_REFRESH_INTERVAL, Jwks};
use super::profile::Profile;
use super::registration::RegistrationSettings;
use super::token::{TokenResponse, grant, revoke};
use super::verify::{
    self, AccessTokenClaims, DEFAULT_ALLOWED_ALGS, DEFAULT_CLOCK_SKEW, IdTokenClaims, JwsAlgorithm,
    LogoutTokenClaims, VerifiedAccessToken, VerifiedIdToken,
};
use crate::clock::SharedClock;
use crate::telemetry::Secret;
use crate::telemetry::metrics::{IdpEndpoint, IdpOutcome, Metrics};

/// The default Microsoft Graph address (`microsoftGraphURL`).
pub const DEFAULT_GRAPH_URL: &str = "https://graph.microsoft.com";

/// Shortest time between two discovery attempts after a failure.
pub const DEFAULT_DISCOVERY_RETRY_INTERVAL: Duration = Duration::from_secs(30);

/// Settings of the provider client.
#[derive(Clone, Debug)]
pub struct ProviderSettings {
    /// The issuer (`providerURL` without a trailing slash).
    pub issuer: String,
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret (may be empty for public clients); `Debug`
    /// prints `[redacted]`.
    pub client_secret: Secret,
    /// Client authentication at the token, introspection and revocation
    /// endpoints; `None` lets discovery's
    /// `token_endpoint_auth_methods_supported` choose.
    pub client_auth: Option<ClientAuthMethod>,
    /// The private key of `private_key_jwt`.
    pub assertion_key: Option<Arc<AssertionKey>>,
    /// The `aud` of client assertions.
    pub assertion_audience: AssertionAudience,
    /// Outbound HTTP.
    pub http: HttpSettings,
    /// Accepted JWS algorithms.
    pub allowed_algs: Vec<JwsAlgorithm>,
    /// Tolerated clock skew.
    pub clock_skew: Duration,
    /// Throttle between failed discovery attempts.
    pub discovery_retry_interval: Duration,
    /// Throttle between JWKS refetches.
    pub jwks_min_refresh_interval: Duration,
    /// RFC 7662 endpoint overriding the discovered `introspection_endpoint`.
    pub introspection_url: Option<String>,
    /// What this provider does differently (chosen from the issuer or
    /// `providerType`).
    pub profile: &'static Profile,
    /// Tenants (`tid`) whose users may log in, when not empty
    /// (`allowedTenants`; Entra ID).
    pub allowed_tenants: Vec<String>,
    /// Merge claims the ID token lacks from the userinfo endpoint
    /// (`fetchUserinfo`).
    pub fetch_userinfo: bool,
    /// Microsoft Graph base URL, for Entra ID group overage.
    pub graph_url: String,
    /// GitHub (OAuth 2.0 without OpenID Connect) instead of an OpenID
    /// Provider: no discovery, identity from GitHub's API.
    pub github: Option<GitHubSettings>,
    /// RFC 7009 endpoint overriding the discovered `revocation_endpoint`
    /// (`revocationURL`).
    pub revocation_url: Option<String>,
    /// Dynamic client registration (RFC 7591), used at start-up when
    /// `client_id` is empty.
    pub registration: Option<RegistrationSettings>,
    /// The RFC 8707 resource indicator (`resource`), sent on the
    /// authorization request and on both grants of the token endpoint.
    pub resource: Option<String>,
}

impl ProviderSettings {
    /// Settings with every default for `issuer` and client credentials.
    pub fn new(issuer: &str, client_id: &str, client_secret: &str) -> Self {
        Self {
            issuer: issuer.trim_end_matches('/').to_owned(),
            client_id: client_id.to_owned(),
            client_secret: Secret::new(client_secret),
            client_auth: None,
            assertion_key: None,
            assertion_audience: AssertionAudience::default(),
            http: HttpSettings::default(),
            allowed_algs: DEFAULT_ALLOWED_ALGS.to_vec(),
            clock_skew: DEFAULT_CLOCK_SKEW,
            discovery_retry_interval: DEFAULT_DISCOVERY_RETRY_INTERVAL,
            jwks_min_refresh_interval: DEFAULT_JWKS_MIN_REFRESH_INTERVAL,
            introspection_url: None,
            profile: super::profile::detect(issuer),
            allowed_tenants: Vec::new(),
            fetch_userinfo: false,
            graph_url: DEFAULT_GRAPH_URL.into(),
            github: None,
            revocation_url: None,
            registration: None,
            resource: None,
        }
    }
}

/// Shortest time between two log lines about a refused client authentication.
pub const INVALID_CLIENT_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// Discovered state: metadata, keys and the client authentication in force.
pub struct Discovered {
    metadata: ProviderMetadata,
    jwks: Jwks,
    client_auth: ClientAuthMethod,
}

impl Discovered {
    /// The provider's metadata.
    pub fn metadata(&self) -> &ProviderMetadata {
        &self.metadata
    }

    /// The client authentication method used with this provider.
    pub fn client_auth(&self) -> ClientAuthMethod {
        self.client_auth
    }
}

/// One OpenID Provider.
pub struct Provider {
    settings: ProviderSettings,
    client: reqwest::Client,
    clock: SharedClock,
    state: ArcSwapOption<Discovered>,
    last_attempt_ms: AtomicU64,
    last_invalid_client_log_ms: AtomicU64,
    init: tokio::sync::Mutex<()>,
    metrics: Metrics,
}

/// The label of a provider call's result.
fn idp_outcome<T>(r: &Result<T, Error>) -> IdpOutcome {
    match r {
        Ok(_) => IdpOutcome::Ok,
        Err(Error::OAuth {
            kind: super::OAuthErrorKind::InvalidGrant,
            ..
        }) => IdpOutcome::InvalidGrant,
        Err(e) if e.is_transient() => IdpOutcome::Unavailable,
        Err(_) => IdpOutcome::ClientError,
    }
}

impl Provider {
    /// Builds the handle; no network traffic happens here.
    pub fn new(settings: ProviderSettings, clock: SharedClock) -> Result<Self, Error> {
        Self::with_metrics(settings, clock, Metrics::disabled())
    }

    /// As [`Provider::new`], recording provider calls into `metrics`.
    pub fn with_metrics(
        settings: ProviderSettings,
        clock: SharedClock,
        metrics: Metrics,
    ) -> Result<Self, Error> {
        let client = build_client(&settings.http)?;
        Ok(Self {
            settings,
            client,
            clock,
            state: ArcSwapOption::empty(),
            last_attempt_ms: AtomicU64::new(0),
            last_invalid_client_log_ms: AtomicU64::new(0),
            init: tokio::sync::Mutex::new(()),
            metrics,
        })
    }

    /// Times `call` and records it under `endpoint`.
    async fn observed<T>(
        &self,
        endpoint: IdpEndpoint,
        call: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let started = tokio::time::Instant::now();
        let r = call.await;
        self.metrics
            .idp(endpoint, idp_outcome(&r), started.elapsed());
        r
    }

    /// Milliseconds (on the injected clock) since the key set was last
    /// fetched or a refetch was last attempted; `None` before discovery.
    pub fn jwks_age_ms(&self) -> Option<u64> {
        let d = self.state.load_full()?;
        Some(self.clock.now_ms().saturating_sub(d.jwks.fetched_at_ms()))
    }

    /// The settings this provider was built with.
    pub fn settings(&self) -> &ProviderSettings {
        &self.settings
    }

    /// True once discovery and the first JWKS fetch succeeded.
    pub fn is_ready(&self) -> bool {
        self.state.load().is_some()
    }

    /// Discovered metadata and keys, discovering first if needed.
    pub async fn discovered(&self) -> Result<Arc<Discovered>, Error> {
        if let Some(d) = self.state.load_full() {
            return Ok(d);
        }
        // Callers arriving while a discovery is in flight wait for it rather
        // than being refused; after a failure, attempts are throttled.
        let _guard = self.init.lock().await;
        if let Some(d) = self.state.load_full() {
            return Ok(d);
        }
        let seen = self.last_attempt_ms.load(Ordering::Acquire);
        let retry_ms =
            u64::try_from(self.settings.discovery_retry_interval.as_millis()).unwrap_or(u64::MAX);
        if seen != 0 && self.clock.now_ms().saturating_sub(seen) < retry_ms {
            return Err(Error::DiscoveryThrottled);
        }
        self.last_attempt_ms
            .store(self.clock.now_ms().max(1), Ordering::Release);
        if let Some(gh) = &self.settings.github {
            return self.github_discovered(gh);
        }
        let result = async {
            let metadata = self
                .observed(
                    IdpEndpoint::Discovery,
                    discover(&self.client, &self.settings.issuer, self.settings.profile),
                )
                .await?;
            let jwks = self
                .observed(
                    IdpEndpoint::Jwks,
                    Jwks::load(
                        &self.client,
                        metadata.jwks_uri.clone(),
                        self.clock.clone(),
                        self.settings.jwks_min_refresh_interval,
                    ),
                )
                .await?;
            let client_auth = select_method(
                self.settings.client_auth,
                metadata.token_endpoint_auth_methods_supported.as_deref(),
                !self.settings.client_secret.is_empty(),
                self.settings.assertion_key.is_some(),
            );
            if let Some(sup) = &metadata.token_endpoint_auth_methods_supported {
                if !sup.iter().any(|m| m == client_auth.as_str()) {
                    tracing::warn!(
                        issuer = %self.settings.issuer,
                        method = %client_auth,
                        advertised = ?sup,
                        "the provider does not advertise this client authentication method"
                    );
                }
            }
            Ok::<_, Error>(Arc::new(Discovered {
                metadata,
                jwks,
                client_auth,
            }))
        }
        .await;
        match result {
            Ok(d) => {
                tracing::info!(
                    issuer = %self.settings.issuer,
                    client_auth = %d.client_auth,
                    "provider discovered"
                );
                self.state.store(Some(d.clone()));
                Ok(d)
            }
            Err(e) => {
                tracing::warn!(issuer = %self.settings.issuer, error = %e, "provider discovery failed");
                Err(e)
            }
        }
    }

    /// GitHub has no discovery document or keys: its fixed endpoints stand
    /// in for them, with an empty key set and `client_secret_post`.
    fn github_discovered(&self, gh: &GitHubSettings) -> Result<Arc<Discovered>, Error> {
        let d = Arc::new(Discovered {
            metadata: gh.metadata()?,
            jwks: Jwks::empty(self.clock.clone()),
            client_auth: ClientAuthMethod::ClientSecretPost,
        });
        self.state.store(Some(d.clone()));
        Ok(d)
    }

    /// The GitHub settings when this provider is GitHub.
    pub fn github(&self) -> Option<&GitHubSettings> {
        self.settings.github.as_ref()
    }

    /// Who holds `access_token` at GitHub (profile, verified primary
    /// e-mail, and the memberships the rules need). Fails with
    /// [`Error::Config`] when this provider is not GitHub.
    pub async fn github_user(&self, access_token: &str) -> Result<GitHubUser, Error> {
        let gh = self
            .settings
            .github
            .as_ref()
            .ok_or_else(|| Error::Config("not a GitHub provider".into()))?;
        github::user(&self.client, gh, access_token).await
    }

    /// Verifies an ID token: signature, `iss`, `aud`, `azp`, times, and the
    /// nonce when `expected_nonce` is given.
    pub async fn verify_id_token(
        &self,
        raw: &str,
        expected_nonce: Option<&str>,
    ) -> Result<VerifiedIdToken, Error> {
        let header = verify::precheck(raw, &self.settings.allowed_algs)?;
        let (claims, d) = self.signed_claims::<IdTokenClaims>(raw, &header).await?;
        let issuer = self.expected_issuer(&d, &claims.iss, &claims.extra)?;
        verify::check_id_token(
            claims,
            &issuer,
            &self.settings.client_id,
            expected_nonce,
            self.clock.now(),
            self.settings.clock_skew,
        )
    }

    /// Verifies an OIDC back-channel logout token: signature, `typ`, `iss`,
    /// `aud`, `iat` age, the logout event, no `nonce`, and `sid` or `sub`.
    pub async fn verify_logout_token(&self, raw: &str) -> Result<LogoutTokenClaims, Error> {
        let header = verify::precheck(raw, &self.settings.allowed_algs)?;
        let (claims, d) = self
            .signed_claims::<LogoutTokenClaims>(raw, &header)
            .await?;
        verify::check_logout_token(
            claims,
            header.typ.as_deref(),
            &d.metadata.issuer,
            &self.settings.client_id,
            self.clock.now(),
            self.settings.clock_skew,
        )
    }

    /// Verifies a JWT access token: signature, `iss`, times, and `aud` when an
    /// audience is given.
    pub async fn verify_access_token(
        &self,
        raw: &str,
        audience: Option<&str>,
    ) -> Result<VerifiedAccessToken, Error> {
        self.verify_access(raw, audience, false).await
    }

    /// Verifies a JWT presented as a bearer token: as
    /// [`Provider::verify_access_token`] with a required audience, and a JOSE
    /// `typ`, when present, must name a JWT access token (`JWT`, `at+jwt`),
    /// which is checked before any key lookup.
    pub async fn verify_bearer_token(
        &self,
        raw: &str,
        audience: &str,
    ) -> Result<VerifiedAccessToken, Error> {
        self.verify_access(raw, Some(audience), true).await
    }

    async fn verify_access(
        &self,
        raw: &str,
        audience: Option<&str>,
        strict_typ: bool,
    ) -> Result<VerifiedAccessToken, Error> {
        let header = verify::precheck(raw, &self.settings.allowed_algs)?;
        if strict_typ
            && !header
                .typ
                .as_deref()
                .is_none_or(verify::is_access_token_typ)
        {
            return Err(Error::TokenMalformed("typ is not a JWT access token"));
        }
        let (claims, d) = self
            .signed_claims::<AccessTokenClaims>(raw, &header)
            .await?;
        let issuer = self.expected_issuer(&d, &claims.iss, &claims.extra)?;
        verify::check_access_token(
            claims,
            header.typ,
            &issuer,
            audience,
            self.clock.now(),
            self.settings.clock_skew,
        )
    }

    /// The issuer a token with these claims must carry (the profile's
    /// rule over discovery's `issuer`), after the tenant allowlist.
    fn expected_issuer(
        &self,
        d: &Discovered,
        token_iss: &str,
        claims: &Map<String, Value>,
    ) -> Result<String, Error> {
        if !self.settings.allowed_tenants.is_empty() {
            let tid = claims.get("tid").and_then(Value::as_str).unwrap_or("");
            if !self
                .settings
                .allowed_tenants
                .iter()
                .any(|t| t.eq_ignore_ascii_case(tid))
            {
                return Err(Error::TenantNotAllowed);
            }
        }
        Ok(self
            .settings
            .profile
            .expected_issuer(&d.metadata.issuer, token_iss, claims))
    }

    /// The steps every token kind shares after its header pre-check: key
    /// lookup (rate-limited refetch on an unknown kid) and signature.
    async fn signed_claims<T: serde::de::DeserializeOwned>(
        &self,
        raw: &str,
        header: &verify::Header,
    ) -> Result<(T, Arc<Discovered>), Error> {
        let d = self.discovered().await?;
        let key = d
            .jwks
            .key(&self.client, header.kid.as_deref(), header.alg)
            .await?;
        let claims = verify::decode(raw, header, &key.verifier)?;
        Ok((claims, d))
    }

    /// The claims of the userinfo endpoint for `access_token`; `Ok(None)`
    /// when the provider advertises none.
    pub async fn userinfo(&self, access_token: &str) -> Result<Option<Map<String, Value>>, Error> {
        let d = self.discovered().await?;
        let Some(endpoint) = d.metadata.userinfo_endpoint.as_deref() else {
            return Ok(None);
        };
        super::http::get_json_with(&self.client, endpoint, Some(access_token), &[])
            .await
            .map(Some)
    }

    /// The Entra ID groups of the holder of `access_token`, read from
    /// Microsoft Graph (`microsoftGraphURL`).
    pub async fn graph_groups(&self, access_token: &str) -> Result<Vec<String>, Error> {
        super::graph::transitive_groups(&self.client, &self.settings.graph_url, access_token).await
    }

    /// True when `token` has the shape of a JWT (as opposed to an opaque token).
    pub fn looks_like_jwt(token: &str) -> bool {
        verify::looks_like_jwt(token)
    }

    /// Asks the provider about `token` (RFC 7662) at `introspectionURL`, else
    /// at the discovered `introspection_endpoint`. The answer's `active` is a
    /// boolean; every other member is for the caller to judge.
    pub async fn introspect(&self, token: &str) -> Result<Map<String, Value>, Error> {
        let d = self.discovered().await?;
        let endpoint = self
            .settings
            .introspection_url
            .as_deref()
            .or(d.metadata.introspection_endpoint.as_deref())
            .ok_or_else(|| {
                Error::Config(
                    "the provider advertises no introspection_endpoint; set introspectionURL"
                        .into(),
                )
            })?;
        introspect::check_endpoint(endpoint)?;
        let r = self
            .observed(
                IdpEndpoint::Introspection,
                introspect::introspect(&self.client, endpoint, &self.creds(&d), token),
            )
            .await;
        self.note_refusal(&d, "introspection", r)
    }

    /// Revokes `token` (RFC 7009) at `revocationURL`, else at the discovered
    /// `revocation_endpoint`, with the client's authentication. `hint` is
    /// `access_token` or `refresh_token`. Without an endpoint there is
    /// nothing to do.
    pub async fn revoke(&self, token: &str, hint: &str) -> Result<(), Error> {
        let d = self.discovered().await?;
        let Some(endpoint) = self
            .settings
            .revocation_url
            .as_deref()
            .or(d.metadata.revocation_endpoint.as_deref())
        else {
            return Ok(());
        };
        let r = revoke(&self.client, endpoint, &self.creds(&d), token, hint).await;
        self.note_refusal(&d, "revocation", r)
    }

    fn creds<'a>(&'a self, d: &'a Discovered) -> ClientCredentials<'a> {
        ClientCredentials {
            id: &self.settings.client_id,
            secret: self.settings.client_secret.expose(),
            method: d.client_auth,
            key: self.settings.assertion_key.as_deref(),
            audience: ClientCredentials::audience_for(
                &self.settings.assertion_audience,
                &d.metadata.issuer,
                &d.metadata.token_endpoint,
            ),
            now: self.clock.now(),
        }
    }

    /// Logs a refused client authentication at most once per
    /// [`INVALID_CLIENT_LOG_INTERVAL`], naming the method used, and passes
    /// the result on.
    fn note_refusal<T>(
        &self,
        d: &Discovered,
        endpoint: &'static str,
        r: Result<T, Error>,
    ) -> Result<T, Error> {
        if let Err(e) = &r {
            if e.is_client_refused() {
                let now = self.clock.now_ms().max(1);
                let last = self.last_invalid_client_log_ms.load(Ordering::Acquire);
                let every =
                    u64::try_from(INVALID_CLIENT_LOG_INTERVAL.as_millis()).unwrap_or(u64::MAX);
                if (last == 0 || now.saturating_sub(last) >= every)
                    && self
                        .last_invalid_client_log_ms
                        .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                {
                    tracing::error!(
                        issuer = %self.settings.issuer,
                        endpoint,
                        method = %d.client_auth,
                        "the provider refused the client's authentication (invalid_client); \
                         check clientID, the secret or key, and clientAuthMethod"
                    );
                }
            }
        }
        r
    }

    /// Exchanges an authorization code (with its PKCE verifier) for tokens.
    pub async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &str,
        pkce_verifier: Option<&str>,
    ) -> Result<TokenResponse, Error> {
        let d = self.discovered().await?;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
        ];
        if let Some(v) = pkce_verifier {
            form.push(("code_verifier", v));
        }
        if let Some(resource) = &self.settings.resource {
            form.push(("resource", resource));
        }
        if self.settings.github.is_some() {
            let r = self
                .observed(
                    IdpEndpoint::TokenCode,
                    github::exchange_code(
                        &self.client,
                        &d.metadata.token_endpoint,
                        &self.settings.client_id,
                        self.settings.client_secret.expose(),
                        &form,
                    ),
                )
                .await;
            return self.note_refusal(&d, "token", r);
        }
        let r = self
            .observed(
                IdpEndpoint::TokenCode,
                grant(
                    &self.client,
                    &d.metadata.token_endpoint,
                    &self.creds(&d),
                    &form,
                ),
            )
            .await;
        self.note_refusal(&d, "token", r)
    }

    /// Redeems a refresh token.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenResponse, Error> {
        let d = self.discovered().await?;
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ];
        if let Some(resource) = &self.settings.resource {
            form.push(("resource", resource));
        }
        let r = self
            .observed(
                IdpEndpoint::TokenRefresh,
                grant(
                    &self.client,
                    &d.metadata.token_endpoint,
                    &self.creds(&d),
                    &form,
                ),
            )
            .await;
        self.note_refusal(&d, "token", r)
    }
}
