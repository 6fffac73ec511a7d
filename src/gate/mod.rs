//! The engine: [`Gate::decide`] turns a [`RequestView`] into a [`Decision`].
//!
//! Owns the order of checks, in `decide_inner`: ambiguous identity headers →
//! own endpoints (callback, logout, back- and front-channel logout,
//! `/oauth2/start`) → unauthenticated CORS preflight → excluded URLs → bearer
//! token (when enabled, and unless a session wins over it) → session
//! (invalidation check, refresh when due, policy) → login. Every allowed
//! request then passes `finish_allow`. It owns the login and logout flows,
//! and the one place where errors become responses (`rescue`). It never sees hyper types or sockets: doors build
//! the view and render the decision.

mod audience;
mod bearer;
mod channels;
mod decision;
mod github;
mod headers;
mod health;
mod login;
mod logout;
mod observe;
mod outage;
mod pages;
mod providers;
mod ratelimit;
mod redirect;
mod refresh;
mod registration;
mod rescue;
mod store;
mod throttle;
mod view;

use std::sync::Arc;

use http::{HeaderValue, Method, StatusCode};

pub use bearer::{
    BearerReject, BearerSettings, DEFAULT_BEARER_IDENTIFIER_CLAIM, DEFAULT_INTROSPECTION_CACHE_TTL,
    DEFAULT_MAX_BEARER_TOKEN_BYTES, DEFAULT_MAX_TOKEN_AGE,
};
pub use channels::{
    DEFAULT_FRONTCHANNEL_PENALTY, DEFAULT_FRONTCHANNEL_RATE, DEFAULT_FRONTCHANNEL_WINDOW,
    MAX_LOGOUT_BODY_BYTES,
};
pub use decision::{Allow, Decision, Reply};
pub use health::{
    BreakerHealth, CacheHealth, Health, MemoryHealth, PoolHealth, ProviderHealth, RedisHealth,
    Status,
};
pub use logout::DEFAULT_LOGOUT_REVOCATION_TIMEOUT;
pub use outage::OutagePolicy;
pub use pages::{MAX_TEMPLATE_BYTES, PageData, PageKind, Pages, TemplateError, Var};
pub use providers::{
    DEFAULT_PROVIDER_NAME, MAX_PROVIDER_NAME_BYTES, Route, STATE_NAME_SEPARATOR,
    valid_provider_name,
};
pub use ratelimit::{
    DEFAULT_RATE_LIMIT_MAX_ENTRIES, RATE_LIMIT_SWEEP_INTERVAL, Rate, RateLimitSettings,
};
pub use redirect::{MAX_REDIRECT_BYTES, safe_redirect};
pub use refresh::{
    DEFAULT_CROSS_REPLICA_WAIT, DEFAULT_MAX_REFRESH_TOKEN_AGE, DEFAULT_REFRESH_COOLDOWN,
    DEFAULT_REFRESH_GRACE, DEFAULT_REFRESH_RESULT_TTL, DEFAULT_TOKEN_BREAKER, RefreshSettings,
};
pub use registration::{
    REGISTRATION_MARK_TTL, REGISTRATION_POLL_INTERVAL, REGISTRATION_WAIT, ensure_client,
};
pub use rescue::{CallbackFault, Error, LogoutFault, error_reply};
pub use store::SessionStore;
pub use throttle::{
    DEFAULT_BEARER_FAILURE_PENALTY, DEFAULT_BEARER_FAILURE_THRESHOLD,
    DEFAULT_BEARER_FAILURE_WINDOW, DEFAULT_THROTTLE_MAX_ENTRIES, ThrottleSettings,
};
pub use view::{
    MAX_PATH_BYTES, RequestView, ViewError, encode_path, normalize_path, path_matches_prefix,
    split_target,
};

use crate::cache::{CacheKey, Caches, Namespace};
use crate::clock::SharedClock;
use crate::oidc::Provider;
use crate::policy::{Identity, Policy};
use crate::session::{Session, SessionCodec};
use crate::telemetry::metrics::{InvalidationChannel, Metrics};

/// Default callback path (`callbackURL`).
pub const DEFAULT_CALLBACK_PATH: &str = "/oauth2/callback";
/// Path that starts a login (oauth2-proxy's contract).
pub const START_PATH: &str = "/oauth2/start";
/// oauth2-proxy's sign-out path, served as an alias of `logoutURL`.
pub const SIGN_OUT_PATH: &str = "/oauth2/sign_out";
/// Scopes always requested.
pub const DEFAULT_SCOPES: &[&str] = &["openid", "profile", "email"];
/// Longest address (path and query) the gate returns to after login; a
/// longer one is answered 414 instead of starting a login whose state could
/// not fit in the login cookie.
pub const MAX_RETURN_URL_BYTES: usize = 2048;
/// `stripAuthorizationHeader`: the client's `Authorization` header is
/// removed before an allowed request goes upstream.
pub const DEFAULT_STRIP_AUTHORIZATION_HEADER: bool = true;
/// Login round trips without success (within the login window) before the
/// gate stops redirecting and shows an error page.
pub const DEFAULT_MAX_LOGIN_ATTEMPTS: u32 = 5;

/// Settings of the engine itself.
#[derive(Clone, Debug)]
pub struct GateSettings {
    /// Redirect-URI path.
    pub callback_path: String,
    /// RP-initiated logout path.
    pub logout_path: String,
    /// Where the browser goes after logout (path or absolute URL).
    pub post_logout_redirect: String,
    /// Scopes requested (already merged with the defaults).
    pub scopes: Vec<String>,
    /// When false, `offline_access` is added if the provider supports it.
    pub override_scopes: bool,
    /// Send a PKCE S256 challenge.
    pub pkce: bool,
    /// Treat every request as HTTPS (cookies `Secure`, redirect URI `https`).
    pub force_https: bool,
    /// Path prefixes that pass without authentication.
    pub excluded: Vec<String>,
    /// Extra hosts allowed as absolute redirect targets.
    pub allowed_redirect_hosts: Vec<String>,
    /// `audience`: the audience JWT access tokens must name (bearer
    /// tokens always; a session's access token by the audience rule), and
    /// the `audience` parameter of the authorization request when it is
    /// not the client id.
    pub audience: Option<String>,
    /// `strictAudienceValidation`: a session whose access token does not
    /// name the expected audience is refused, whichever key gave that
    /// audience.
    pub strict_audience: bool,
    /// Extra parameters for the authorization request.
    pub extra_auth_params: Vec<(String, String)>,
    /// Login loop guard.
    pub max_login_attempts: u32,
    /// Remove the gate's own cookies from requests sent upstream (default
    /// true: the upstream never needs the sealed tokens).
    pub strip_auth_cookies: bool,
    /// Remove the client's `Authorization` header from every allowed request
    /// before the upstream headers are added (`stripAuthorizationHeader`):
    /// cookie path, bearer path, excluded URLs and preflights.
    pub strip_authorization_header: bool,
    /// Token refresh.
    pub refresh: RefreshSettings,
    /// The bearer (machine-to-machine) path.
    pub bearer: BearerSettings,
    /// Where sessions live.
    pub session_store: SessionStore,
    /// Back-channel logout endpoint path (enabled when set).
    pub backchannel_path: Option<String>,
    /// Front-channel logout endpoint path (enabled when set).
    pub frontchannel_path: Option<String>,
    /// What a security check the shared store cannot answer does
    /// (`securityOutagePolicy`); `None` keeps each check's default
    /// ([`OutagePolicy::DEFAULT_FOR_SESSIONS`],
    /// [`OutagePolicy::DEFAULT_FOR_BEARER`]).
    pub security_outage_policy: Option<OutagePolicy>,
    /// Let CORS preflights (`OPTIONS` with `Origin` and
    /// `Access-Control-Request-Method`) through without authentication
    /// (`allowUnauthenticatedPreflight`).
    pub allow_unauthenticated_preflight: bool,
    /// The pages a person sees from the gate (`customTemplatesDir`).
    pub pages: Pages,
    /// Token buckets per source address on new logins and the gate's own
    /// endpoints (`perSourceLoginRateLimit`, `rateLimit`); off by default.
    pub rate_limits: RateLimitSettings,
    /// The name of this provider when it is one of several (`providers:`
    /// entries); `None` for the top-level (default) provider. It starts the
    /// login `state` and scopes the gate's marks in the shared caches.
    pub provider_name: Option<String>,
}

impl Default for GateSettings {
    fn default() -> Self {
        Self {
            callback_path: DEFAULT_CALLBACK_PATH.into(),
            logout_path: format!("{DEFAULT_CALLBACK_PATH}/logout"),
            post_logout_redirect: "/".into(),
            scopes: DEFAULT_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
            override_scopes: false,
            pkce: true,
            force_https: false,
            excluded: Vec::new(),
            allowed_redirect_hosts: Vec::new(),
            audience: None,
            strict_audience: false,
            extra_auth_params: Vec::new(),
            max_login_attempts: DEFAULT_MAX_LOGIN_ATTEMPTS,
            strip_auth_cookies: true,
            strip_authorization_header: DEFAULT_STRIP_AUTHORIZATION_HEADER,
            refresh: RefreshSettings::default(),
            bearer: BearerSettings::default(),
            session_store: SessionStore::Cookie,
            backchannel_path: None,
            frontchannel_path: None,
            security_outage_policy: None,
            allow_unauthenticated_preflight: false,
            pages: Pages::builtin(),
            rate_limits: RateLimitSettings::default(),
            provider_name: None,
        }
    }
}

/// The engine. Cheap to clone; one per configured gate.
#[derive(Clone)]
pub struct Gate {
    inner: Arc<Inner>,
    /// The per-address limits, one set for the whole gate: every provider of
    /// it counts against the same buckets, so routes to several providers
    /// never multiply what one address may do.
    limits: Arc<Limits>,
    /// The other providers (`providers:`), chosen by route.
    named: providers::NamedProviders,
}

/// The per-address tables of a gate, shared by all its providers.
struct Limits {
    /// Failed bearer tokens per client address.
    bearer: bearer::Bearer,
    /// Front-channel logout requests per client address.
    frontchannel_throttle: throttle::Throttle,
    /// New logins and own-endpoint requests per source address.
    rate_limits: ratelimit::RateLimits,
}

struct Inner {
    settings: GateSettings,
    provider: Provider,
    sessions: SessionCodec,
    policy: Policy,
    clock: SharedClock,
    caches: Caches,
    refresher: refresh::Refresher,
    metrics: Metrics,
    claims_memo: headers::ClaimsMemo,
}

impl Gate {
    /// Assembles the engine from its parts.
    pub fn new(
        settings: GateSettings,
        provider: Provider,
        sessions: SessionCodec,
        policy: Policy,
        caches: Caches,
        clock: SharedClock,
        metrics: Metrics,
    ) -> Self {
        // Values that decide access are tagged with a key only the gates
        // hold: write access to Redis is not enough to mint an identity.
        let caches = caches.with_integrity_keys(sessions.cache_integrity_keys());
        let refresher = refresh::Refresher::new(
            settings.refresh.clone(),
            clock.clone(),
            caches.clone(),
            metrics.clone(),
        );
        let bearer = bearer::Bearer::new(&settings.bearer, clock.clone());
        let claims_memo = headers::ClaimsMemo::new(policy.headers_use_claims());
        let frontchannel_throttle =
            throttle::Throttle::new(channels::frontchannel_throttle_settings(), clock.clone());
        let rate_limits = ratelimit::RateLimits::new(settings.rate_limits, &clock);
        Self {
            inner: Arc::new(Inner {
                settings,
                provider,
                sessions,
                policy,
                clock,
                caches,
                refresher,
                metrics,
                claims_memo,
            }),
            limits: Arc::new(Limits {
                bearer,
                frontchannel_throttle,
                rate_limits,
            }),
            named: Arc::new([]),
        }
    }

    /// The engine settings.
    pub fn settings(&self) -> &GateSettings {
        &self.inner.settings
    }

    /// The session codec (doors use it to strip the gate's cookies upstream).
    pub fn sessions(&self) -> &SessionCodec {
        &self.inner.sessions
    }

    /// The metrics this gate records into.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The provider handle.
    pub fn provider(&self) -> &Provider {
        &self.inner.provider
    }

    /// The authorization policy.
    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    /// Judges `id` by the access policy: a refusal names the rule and the
    /// account it refused.
    fn authorize(&self, id: &Identity) -> Result<(), Error> {
        self.inner
            .policy
            .authorize(id)
            .map_err(|why| Error::Forbidden {
                why,
                user: id.identifier.clone(),
            })
    }

    /// True once every provider has been discovered.
    pub fn is_ready(&self) -> bool {
        self.all_gates().all(|g| g.inner.provider.is_ready())
    }

    /// Discovers every provider now (used at start-up; failures are
    /// retried later on demand). The first failure, once all were tried.
    pub async fn warm_up(&self) -> Result<(), Error> {
        for (_, r) in self.discover_each().await {
            r?;
        }
        Ok(())
    }

    /// Decides what happens to one request, at the provider chosen for it.
    pub async fn decide(&self, view: &RequestView) -> Decision {
        self.chosen(view).decide_here(view).await
    }

    /// Decides what happens to one request at this provider.
    async fn decide_here(&self, view: &RequestView) -> Decision {
        let decision = match self.decide_inner(view).await {
            Ok(d) => self.finish_allow(d),
            Err(e) => {
                if let Some(reason) = observe::bearer_reason(&e) {
                    self.inner.metrics.bearer_rejected(reason);
                }
                rescue::rescue(e, view, &self.inner.settings)
            }
        };
        match decision {
            // Through forward-auth and auth_request a 2xx means "let the
            // original request through": the gate's own pages (front-channel
            // logout, ...) reach the browser with a non-2xx status there.
            Decision::Respond(mut r) if view.verdict && r.status.is_success() => {
                r.status = StatusCode::FORBIDDEN;
                Decision::Respond(r)
            }
            other => other,
        }
    }

    /// Applies the gate-wide rules to an allowed request, whichever check
    /// allowed it (cookie path, bearer path, requests allowed without a
    /// principal): `stripAuthorizationHeader` and `stripAuthCookies`. Doors
    /// remove the header before the upstream headers (header templates
    /// included) are added, so a template can set its own.
    fn finish_allow(&self, d: Decision) -> Decision {
        let s = &self.inner.settings;
        match d {
            Decision::Allow(mut a) => {
                a.strip_authorization = s.strip_authorization_header;
                a.strip_auth_cookies = s.strip_auth_cookies;
                Decision::Allow(a)
            }
            other => other,
        }
    }

    /// Edits the headers of a request `allow` lets through, as the gate
    /// decided: every spelling of every header the gate sets is removed from
    /// what the client sent, then the `Authorization` header and the gate's
    /// cookies when `allow` says so, then the identity headers are added
    /// (non-empty values only) when there is a principal.
    pub fn edit_upstream_headers(&self, allow: &Allow, headers: &mut http::HeaderMap) {
        self.inner.policy.strip_client_headers(headers);
        if allow.strip_authorization {
            headers.remove(http::header::AUTHORIZATION);
        }
        if allow.strip_auth_cookies {
            // Every provider's cookies: a session made through one provider
            // never reaches the upstream of another.
            for g in self.all_gates() {
                g.inner.sessions.strip_own_cookie_headers(headers);
            }
        }
        if allow.principal.is_some() {
            for (k, v) in &allow.upstream_headers {
                if !v.is_empty() {
                    headers.insert(k.clone(), v.clone());
                }
            }
        }
    }

    async fn decide_inner(&self, view: &RequestView) -> Result<Decision, Error> {
        let s = &self.inner.settings;
        if self.inner.policy.has_ambiguous_header(&view.headers) {
            return Err(Error::AmbiguousIdentityHeader);
        }
        // Cold paths are boxed: their futures are large, and inline they
        // would make every request's future (moved and allocated per
        // request) as large as the largest of them.
        if view.path == s.callback_path {
            return Box::pin(self.callback(view)).await;
        }
        if view.path == s.logout_path || view.path == SIGN_OUT_PATH {
            self.admit(view, ratelimit::Event::Endpoint)?;
            return Box::pin(self.logout(view)).await;
        }
        if s.backchannel_path.as_deref() == Some(view.path.as_str()) {
            self.admit(view, ratelimit::Event::Endpoint)?;
            // The POST is served by the listener (it needs the body); any
            // other method reaching the engine is refused.
            return Err(Error::MethodNotAllowed("POST"));
        }
        if s.frontchannel_path.as_deref() == Some(view.path.as_str()) {
            self.admit(view, ratelimit::Event::Endpoint)?;
            return Box::pin(self.frontchannel_logout(view)).await;
        }
        if view.path == START_PATH {
            let rd = view.query_param("rd").unwrap_or_else(|| "/".into());
            let target = safe_redirect(
                &rd,
                &view.host,
                self.secure(view),
                &s.allowed_redirect_hosts,
            )
            .ok_or(Error::UnsafeRedirect)?;
            let prompt = view.query_param("prompt").filter(|p| p == "login");
            return Box::pin(self.start_login(view, target, prompt.as_deref())).await;
        }
        if s.allow_unauthenticated_preflight && headers::is_preflight(view) {
            return Ok(Decision::Allow(self.open_allow()));
        }
        if self.is_excluded(&view.path) {
            return Ok(Decision::Allow(self.open_allow()));
        }
        let now = self.inner.clock.now();
        let session = self.load_session(view, now).await?;
        if let Some(token) = self.bearer_candidate(view, session.is_some()) {
            return Box::pin(self.bearer(view, token)).await;
        }
        if let Some(session) = session {
            return self.with_session(view, session, now).await;
        }
        Box::pin(self.login_required(view)).await
    }

    /// Counts `event` against the source's rate limits; 429 with
    /// `Retry-After` when a bucket is empty.
    fn admit(&self, view: &RequestView, event: ratelimit::Event) -> Result<(), Error> {
        self.limits
            .rate_limits
            .admit(event, view.client_ip)
            .map_err(|retry_after| {
                tracing::debug!(client = %view.client_ip, ?event, retry_after, "rate limit reached");
                Error::RateLimited { retry_after }
            })
    }

    /// True when `path` lies under an excluded prefix.
    pub fn is_excluded(&self, path: &str) -> bool {
        self.inner
            .settings
            .excluded
            .iter()
            .any(|p| path_matches_prefix(path, p))
    }

    /// The shared caches.
    pub fn caches(&self) -> &Caches {
        &self.inner.caches
    }

    /// Ends session `sid` on every replica sharing the caches. An error
    /// means the logout mark could not be stored in the shared cache: it is
    /// then enforced on this replica only.
    pub async fn invalidate_session(&self, sid: &str) -> Result<(), crate::cache::Error> {
        let Ok(key) = CacheKey::new(format!("sid:{sid}")) else {
            return Ok(());
        };
        let ttl = std::time::Duration::from_secs(self.inner.sessions.max_age_secs());
        self.inner
            .caches
            .set(Namespace::SessionInvalidation, &key, &self.now(), ttl)
            .await
            .inspect_err(|e| {
                tracing::warn!(error = %e, "session invalidation could not be stored");
            })?;
        self.inner
            .metrics
            .session_invalidated(InvalidationChannel::Logout);
        Ok(())
    }

    /// Refresh grants this gate has sent to the provider.
    pub fn refresh_grants(&self) -> u64 {
        self.inner.refresher.grants()
    }

    /// A request with a readable session: refresh it when due, then allow.
    async fn with_session(
        &self,
        view: &RequestView,
        session: Session,
        now: u64,
    ) -> Result<Decision, Error> {
        if self.is_invalidated(&session).await? {
            return Box::pin(self.session_over(view)).await;
        }
        let r = &self.inner.refresher;
        if !r.due(&session, now) {
            return self.allow_held(view, &session).await;
        }
        Box::pin(self.refresh_session(view, session, now)).await
    }

    /// Allows a session whose tokens were not just issued by the token
    /// endpoint. With `requireTokenIntrospection` its access token must still
    /// be active at the provider: an inactive one ends the session, a
    /// provider that cannot answer is a 503.
    async fn allow_held(&self, view: &RequestView, session: &Session) -> Result<Decision, Error> {
        if self.inner.settings.bearer.require_introspection
            && !self.session_token_active(session).await?
        {
            return Box::pin(self.session_over(view)).await;
        }
        self.allow_session(view, session, Vec::new())
    }

    /// The session is due for refresh (cold: boxed by the caller).
    async fn refresh_session(
        &self,
        view: &RequestView,
        session: Session,
        now: u64,
    ) -> Result<Decision, Error> {
        let r = &self.inner.refresher;
        let still_valid = session.expires_at > now;
        let Some(rt) = session.refresh_token.clone() else {
            return if still_valid {
                self.allow_held(view, &session).await
            } else {
                self.session_over(view).await
            };
        };
        if r.refresh_token_too_old(&session, now) {
            return self.session_over(view).await;
        }
        match r.refresh(&rt, self.refresh_grant(&session, &rt)).await {
            Ok(fresh) => {
                let cookies = self.store_session(&fresh, view, now).await?;
                self.allow_session(view, &fresh, cookies)
            }
            Err(refresh::RefreshFailure::Rejected) => self.session_over(view).await,
            Err(_) if still_valid => self.allow_held(view, &session).await,
            Err(_) => Err(Error::RefreshUnavailable),
        }
    }

    async fn refresh_grant(&self, old: &Session, rt: &str) -> Result<Session, Error> {
        let tokens = self.inner.provider.refresh(rt).await?;
        self.session_from_tokens(tokens, None, Some(old)).await
    }

    /// The session cannot continue: browsers log in again, scripts get 401;
    /// both have their session cookies cleared.
    async fn session_over(&self, view: &RequestView) -> Result<Decision, Error> {
        if view.probe
            || view.is_non_navigation()
            || !matches!(view.method, Method::GET | Method::HEAD)
        {
            let clear = self.inner.sessions.clear(&view.headers, self.secure(view));
            let d = self
                .login_required(view)
                .await
                .unwrap_or_else(|e| rescue::rescue(e, view, &self.inner.settings));
            return Ok(match d {
                Decision::Respond(r) => Decision::Respond(r.with_cookies(clear)),
                other => other,
            });
        }
        self.login_required(view).await
    }

    fn allow_session(
        &self,
        view: &RequestView,
        session: &Session,
        mut set_cookies: Vec<HeaderValue>,
    ) -> Result<Decision, Error> {
        let id = Identity {
            identifier: session.identifier.clone(),
            subject: session.subject.clone(),
            email: session.email.clone(),
            groups: session.groups.clone(),
            roles: session.roles.clone(),
        };
        self.authorize(&id)?;
        if self.inner.sessions.carries_login(&view.headers) {
            // The login round trip is over: drop the loop counter.
            set_cookies.push(self.inner.sessions.clear_login(self.secure(view)));
        }
        let upstream_headers = self.session_headers(&id, session);
        Ok(Decision::Allow(Allow {
            principal: Some(id),
            upstream_headers,
            set_cookies,
            ..Allow::default()
        }))
    }

    /// A request without a usable session: 401 for scripts and probes, a
    /// login redirect for browsers.
    async fn login_required(&self, view: &RequestView) -> Result<Decision, Error> {
        if let Some(refused) = self.denied_here(view) {
            return Err(refused);
        }
        if view.probe {
            let rd = view.path_and_query();
            let start = format!(
                "{START_PATH}?rd={}",
                url::form_urlencoded::byte_serialize(rd.as_bytes()).collect::<String>()
            );
            return Ok(Decision::Respond(
                Reply::error(
                    StatusCode::UNAUTHORIZED,
                    "Authentication required",
                    view.wants_json(),
                )
                .with_header(http::HeaderName::from_static("x-auth-redirect"), &start),
            ));
        }
        if view.is_non_navigation() || !matches!(view.method, Method::GET | Method::HEAD) {
            return Err(Error::Unauthenticated);
        }
        let return_to = view.path_and_query();
        self.start_login(view, return_to, None).await
    }

    /// Whether cookies for this request carry `Secure`.
    fn secure(&self, view: &RequestView) -> bool {
        self.inner.settings.force_https || view.https
    }

    /// `target` made absolute against this request's origin when it is a
    /// path. Forward-auth proxies resolve a relative `Location` against the
    /// gate's own address, so every redirect the gate sends is absolute.
    fn absolute(&self, view: &RequestView, target: &str) -> String {
        if target.starts_with('/') && !target.starts_with("//") {
            format!("{}{}", self.origin(view), target)
        } else {
            target.to_owned()
        }
    }

    /// `https://host` or `http://host` for this request.
    fn origin(&self, view: &RequestView) -> String {
        let scheme = if self.secure(view) { "https" } else { "http" };
        format!("{scheme}://{}", view.host)
    }

    fn now(&self) -> u64 {
        self.inner.clock.now()
    }
}
