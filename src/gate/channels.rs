//! Provider-initiated logout: OIDC Back-Channel Logout (a signed logout token
//! POSTed server to server) and Front-Channel Logout (a GET from an iframe in
//! the user's browser, without the gate's cookie).
//!
//! Both act on shared state, never on a cookie: they write invalidation marks
//! (by the provider's session id, and by subject with a time) that every
//! replica consults when it reads a session. Logout tokens are single use:
//! their `jti` is claimed atomically across replicas, after the logout is
//! recorded, so a failed record never uses a token up.

use http::{HeaderValue, StatusCode};

use super::Gate;
use super::decision::{Decision, Reply};
use super::outage::OutagePolicy;
use super::rescue::{Error, LogoutFault};
use super::view::RequestView;
use crate::cache::{CacheKey, Namespace};
use crate::session::Session;
use crate::telemetry::TokenHash;

/// Largest back-channel request body read.
pub const MAX_LOGOUT_BODY_BYTES: usize = 64 * 1024;
/// Front-channel logout requests one client address may make per
/// [`DEFAULT_FRONTCHANNEL_WINDOW`] (a browser makes one per logout).
pub const DEFAULT_FRONTCHANNEL_RATE: u32 = 30;
/// The counting window of [`DEFAULT_FRONTCHANNEL_RATE`].
pub const DEFAULT_FRONTCHANNEL_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);
/// How long an address over the rate is answered 429.
pub const DEFAULT_FRONTCHANNEL_PENALTY: std::time::Duration = std::time::Duration::from_secs(60);

/// The per-address limit of front-channel logout requests.
pub(super) fn frontchannel_throttle_settings() -> super::throttle::ThrottleSettings {
    super::throttle::ThrottleSettings {
        threshold: DEFAULT_FRONTCHANNEL_RATE,
        window: DEFAULT_FRONTCHANNEL_WINDOW,
        penalty: DEFAULT_FRONTCHANNEL_PENALTY,
        ..super::throttle::ThrottleSettings::default()
    }
}

/// The record of a provider session id this gate issued a session for
/// (`scope`: [`Gate::mark_scope`]).
fn provider_session_key(scope: &str, idp_sid: &str) -> CacheKey {
    CacheKey::hashed(&format!("{scope}idp-session:{idp_sid}"))
}

/// The `iss` and `aud` of a back-channel logout body's token, read without
/// verification: only to choose which provider verifies it.
pub(super) fn peek_issuer_and_audience(body: &[u8]) -> Option<(String, Vec<String>)> {
    use base64::Engine as _;
    let token = url::form_urlencoded::parse(body)
        .find(|(k, _)| k == "logout_token")
        .map(|(_, v)| v.into_owned())
        .or_else(|| std::str::from_utf8(body).ok().map(|s| s.trim().to_owned()))?;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let iss = claims.get("iss")?.as_str()?.to_owned();
    let aud = match claims.get("aud") {
        Some(serde_json::Value::String(a)) => vec![a.clone()],
        Some(serde_json::Value::Array(list)) => list
            .iter()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    Some((iss, aud))
}

/// Whether a subject logout recorded at `logout_at` ends a session created
/// at `created_at` (both whole seconds). Inclusive: a session created in the
/// same second as the logout is ended too, since whole seconds cannot tell
/// which came first and ending it is the safe side; the user logs in again
/// a second later.
pub(crate) fn ended_by_subject_logout(logout_at: u64, created_at: u64) -> bool {
    logout_at >= created_at
}

impl Gate {
    /// Handles a back-channel logout POST body (form field `logout_token`, or
    /// the raw token). 200 when sessions were ended; 400 for a token that is
    /// invalid or was already used; 503 when the provider or the shared store
    /// cannot answer (the token stays usable for the provider's retry).
    /// With several providers, the token goes to the provider it names.
    pub async fn backchannel_logout(&self, body: &[u8]) -> Decision {
        self.chosen_for_logout_token(body)
            .backchannel_here(body)
            .await
    }

    async fn backchannel_here(&self, body: &[u8]) -> Decision {
        match self.backchannel_inner(body).await {
            Ok(()) => Decision::Respond(Reply::new(StatusCode::OK, "text/plain", String::new())),
            Err(e) => {
                tracing::info!(error = %e, "back-channel logout refused");
                let unavailable = match &e {
                    Error::Oidc(o) => o.is_transient(),
                    Error::SessionStore(_) => true,
                    _ => false,
                };
                let (status, body) = if unavailable {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        serde_json::json!({"error": "temporarily_unavailable", "error_description": "The logout cannot be recorded now; retry later"}),
                    )
                } else {
                    (
                        StatusCode::BAD_REQUEST,
                        serde_json::json!({"error": "invalid_request", "error_description": "Invalid logout token"}),
                    )
                };
                Decision::Respond(Reply::new(status, "application/json", body.to_string()))
            }
        }
    }

    async fn backchannel_inner(&self, body: &[u8]) -> Result<(), Error> {
        if body.len() > MAX_LOGOUT_BODY_BYTES {
            return Err(Error::BadLogoutRequest(LogoutFault::TooLarge));
        }
        let token = url::form_urlencoded::parse(body)
            .find(|(k, _)| k == "logout_token")
            .map(|(_, v)| v.into_owned())
            .or_else(|| std::str::from_utf8(body).ok().map(|s| s.trim().to_owned()))
            .filter(|t| !t.is_empty())
            .ok_or(Error::BadLogoutRequest(LogoutFault::MissingToken))?;
        let claims = self.inner.provider.verify_logout_token(&token).await?;
        let jti_key = CacheKey::hashed(&format!("logout-jti:{}", claims.jti));
        let ttl = crate::oidc::MAX_LOGOUT_TOKEN_AGE + self.inner.provider.settings().clock_skew * 2;
        let marks = &self.inner.caches;
        // Record first, use up the jti last: a failed record leaves the token
        // usable for the provider's retry, and a store that cannot answer is
        // our outage (503), never an invalid token.
        if marks
            .exists(Namespace::ReplayMark, &jti_key)
            .await
            .map_err(|e| Error::SessionStore(e.to_string()))?
        {
            return Err(Error::BadLogoutRequest(LogoutFault::Replayed));
        }
        tracing::info!(token = %TokenHash::of(&token), sid = claims.sid.is_some(), sub = claims.sub.is_some(), "back-channel logout");
        self.mark_provider_logout(claims.sid.as_deref(), claims.sub.as_deref())
            .await?;
        // A concurrent delivery of the same token may claim it first: the
        // logout is recorded either way.
        marks
            .set_if_absent(Namespace::ReplayMark, &jti_key, &1u8, ttl)
            .await
            .map_err(|e| Error::SessionStore(e.to_string()))?;
        self.inner
            .metrics
            .session_invalidated(crate::telemetry::metrics::InvalidationChannel::Backchannel);
        Ok(())
    }

    /// Front-channel logout (GET `?iss=&sid=`): ends sessions of that provider
    /// session id, if this gate issued one (recorded at login: a made-up
    /// `sid` writes nothing). `iss` must match the provider, and is required
    /// when the provider declares it sends it. Throttled per client address.
    /// Answers a small page that may be framed, the same whether or not the
    /// `sid` was known.
    pub(super) async fn frontchannel_logout(&self, view: &RequestView) -> Result<Decision, Error> {
        if view.method != http::Method::GET {
            return Err(Error::MethodNotAllowed("GET"));
        }
        let throttle = &self.limits.frontchannel_throttle;
        throttle
            .check(view.client_ip)
            .map_err(|retry_after| Error::FrontchannelThrottled { retry_after })?;
        throttle.failure(view.client_ip);
        match view.query_param("iss") {
            Some(iss) if iss.trim_end_matches('/') != self.inner.provider.settings().issuer => {
                return Err(Error::BadLogoutRequest(LogoutFault::IssuerMismatch));
            }
            Some(_) => {}
            None if self.provider_sends_iss().await => {
                return Err(Error::BadLogoutRequest(LogoutFault::MissingIssuer));
            }
            None => {}
        }
        let sid = view
            .query_param("sid")
            .filter(|s| !s.is_empty() && s.len() <= 256)
            .ok_or(Error::BadLogoutRequest(LogoutFault::MissingSid))?;
        if self.issued_provider_session(&sid).await {
            self.mark_provider_logout(Some(&sid), None).await?;
            self.inner
                .metrics
                .session_invalidated(crate::telemetry::metrics::InvalidationChannel::Frontchannel);
        } else {
            tracing::debug!(
                "front-channel logout for a provider session this gate did not issue; ignored"
            );
        }
        // The provider shows this page in an iframe (the page allows it).
        let mut reply = super::pages::page(
            &self.inner.settings,
            view,
            super::pages::PageKind::Frontchannel,
            StatusCode::OK,
            "You have been signed out of this application.",
            "",
        );
        reply
            .headers
            .insert(http::header::PRAGMA, HeaderValue::from_static("no-cache"));
        Ok(Decision::Respond(reply))
    }

    /// Whether the provider declares that it sends `iss` to front-channel
    /// logout URIs (unknown while discovery is unavailable: not required).
    async fn provider_sends_iss(&self) -> bool {
        self.inner
            .provider
            .discovered()
            .await
            .is_ok_and(|d| d.metadata().frontchannel_logout_session_supported == Some(true))
    }

    /// Records, at login, the provider session id of a new session, so that
    /// front-channel logout acts on it (and only on ids recorded so). Best
    /// effort: a store that cannot take it leaves the session unaffected by
    /// front-channel logout, which back-channel logout still reaches.
    pub(super) async fn record_provider_session(&self, session: &Session) {
        if self.inner.settings.frontchannel_path.is_none() {
            return;
        }
        let Some(idp_sid) = &session.idp_sid else {
            return;
        };
        let ttl = std::time::Duration::from_secs(self.inner.sessions.max_age_secs());
        let key = provider_session_key(&self.mark_scope(), idp_sid);
        if let Err(e) = self
            .inner
            .caches
            .set(Namespace::ProviderSession, &key, &1u8, ttl)
            .await
        {
            tracing::warn!(error = %e, "provider session id not recorded; front-channel logout will not reach this session");
        }
    }

    async fn issued_provider_session(&self, idp_sid: &str) -> bool {
        self.inner
            .caches
            .exists(
                Namespace::ProviderSession,
                &provider_session_key(&self.mark_scope(), idp_sid),
            )
            .await
            .unwrap_or(false)
    }

    async fn mark_provider_logout(
        &self,
        sid: Option<&str>,
        sub: Option<&str>,
    ) -> Result<(), Error> {
        let ttl = std::time::Duration::from_secs(self.inner.sessions.max_age_secs());
        let now = self.now();
        let scope = self.mark_scope();
        for key in [
            sid.map(|s| format!("{scope}idp-sid:{s}")),
            sub.map(|s| format!("{scope}sub:{s}")),
        ]
        .into_iter()
        .flatten()
        {
            let key = CacheKey::hashed(&key);
            self.inner
                .caches
                .set(Namespace::SessionInvalidation, &key, &now, ttl)
                .await
                .map_err(|e| Error::SessionStore(e.to_string()))?;
        }
        Ok(())
    }

    /// True when the session was ended: by its own logout on any replica, by
    /// a provider logout of its provider session, or by a provider logout of
    /// its subject issued after the session began. Each mark is read on its
    /// own, so one the gate knows ends the session even when the others
    /// cannot be read; when no known mark ends it and some could not be
    /// read, the outage policy decides (open: not ended; closed: 503).
    pub(super) async fn is_invalidated(&self, session: &Session) -> Result<bool, Error> {
        let Ok(own) = CacheKey::new(format!("sid:{}", session.sid)) else {
            return Ok(false);
        };
        let scope = self.mark_scope();
        let mut keys = vec![
            own,
            CacheKey::hashed(&format!("{scope}sub:{}", session.subject)),
        ];
        if let Some(idp_sid) = &session.idp_sid {
            keys.push(CacheKey::hashed(&format!("{scope}idp-sid:{idp_sid}")));
        }
        let caches = &self.inner.caches;
        let reads = futures_util::future::join_all(
            keys.iter()
                .map(|k| caches.get::<u64>(Namespace::SessionInvalidation, k)),
        )
        .await;
        let mut unanswered = None;
        for (i, read) in reads.into_iter().enumerate() {
            match read {
                Ok(Some(at)) if i == 1 => {
                    if ended_by_subject_logout(at, session.created_at) {
                        return Ok(true);
                    }
                }
                Ok(Some(_)) => return Ok(true),
                Ok(None) => {}
                Err(e) => unanswered = Some(e),
            }
        }
        let Some(e) = unanswered else {
            return Ok(false);
        };
        let policy = self
            .inner
            .settings
            .security_outage_policy
            .unwrap_or(OutagePolicy::DEFAULT_FOR_SESSIONS);
        match policy {
            OutagePolicy::Open => {
                tracing::debug!(error = %e, "session invalidation check unavailable; session kept (outage policy open)");
                Ok(false)
            }
            OutagePolicy::Closed => Err(Error::SessionStore(e.to_string())),
        }
    }
}

#[cfg(test)]
mod subject_logout_tests {
    use super::ended_by_subject_logout;
    use crate::clock::{Clock, ManualClock};

    #[test]
    fn a_subject_logout_ends_sessions_up_to_its_own_second() {
        let clock = ManualClock::starting_now();
        let before = clock.now();
        clock.advance(1);
        let logout = clock.now();
        let same_second = clock.now();
        clock.advance(1);
        let after = clock.now();
        assert!(ended_by_subject_logout(logout, before));
        assert!(
            ended_by_subject_logout(logout, same_second),
            "the same second is ended (inclusive rule)"
        );
        assert!(!ended_by_subject_logout(logout, after));
    }
}
