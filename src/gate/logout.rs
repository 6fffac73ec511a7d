//! RP-initiated logout: clear every cookie, revoke the session's tokens at
//! the provider (RFC 7009), then send the browser to the provider's
//! end-session endpoint (or straight to the post-logout address).
//!
//! A revocation that fails or is slow never holds the logout up beyond
//! [`DEFAULT_LOGOUT_REVOCATION_TIMEOUT`]; it is logged with the token's hash.

use std::time::Duration;

use super::decision::Decision;
use super::rescue::Error;
use super::view::RequestView;
use super::{Gate, safe_redirect};
use crate::session::Session;
use crate::telemetry::TokenHash;

/// Longest a logout waits for the provider to revoke the session's refresh
/// and access tokens (both at once); the logout completes either way.
pub const DEFAULT_LOGOUT_REVOCATION_TIMEOUT: Duration = Duration::from_secs(3);

impl Gate {
    /// The logout endpoint (`logoutURL`, also `/oauth2/sign_out`).
    pub(super) async fn logout(&self, view: &RequestView) -> Result<Decision, Error> {
        let s = &self.inner.settings;
        let secure = self.secure(view);
        let now = self.now();
        let session = self.load_session(view, now).await?;
        let mut set_cookies = self.inner.sessions.clear(&view.headers, secure);
        if !set_cookies
            .iter()
            .any(|c| self.inner.sessions.is_login_set_cookie(c))
        {
            set_cookies.push(self.inner.sessions.clear_login(secure));
        }
        // `rd` may choose a safe target; otherwise the configured one.
        let target = view
            .query_param("rd")
            .and_then(|rd| {
                safe_redirect(
                    &rd,
                    &view.host,
                    self.secure(view),
                    &s.allowed_redirect_hosts,
                )
            })
            .unwrap_or_else(|| s.post_logout_redirect.clone());
        let absolute = self.absolute(view, &target);
        if session.is_none() && view.query_param("rd").is_none() {
            // Nothing to end and nowhere asked to go: say so, instead of
            // sending the browser where a new login starts at once.
            let page = super::pages::page(
                s,
                view,
                super::pages::PageKind::LoggedOut,
                http::StatusCode::OK,
                "You have been signed out.",
                "",
            );
            return Ok(Decision::Respond(page.with_cookies(set_cookies)));
        }
        if let Some(session) = &session {
            tracing::info!(user = %session.identifier, "logout");
            // A copy of the cookie kept elsewhere must not outlive the logout:
            // a logout that cannot be recorded for every replica is a 503
            // (the browser keeps its cookie and can try again), never a
            // sign-out that only this browser believes.
            self.invalidate_session(&session.sid)
                .await
                .map_err(|e| Error::SessionStore(e.to_string()))?;
            self.forget_session(session).await;
            self.revoke_session_tokens(session).await;
        }
        let id_token = session.as_ref().and_then(|s| s.id_token.clone());
        let discovered = match self.inner.provider.discovered().await {
            Ok(d) => Some(d),
            Err(e) => {
                tracing::warn!(error = %e, "logout without provider end-session (provider unavailable)");
                None
            }
        };
        let end_session = discovered
            .as_ref()
            .and_then(|d| d.metadata().end_session_endpoint.clone());
        let settings = self.inner.provider.settings();
        // Providers without an end-session endpoint that have a logout
        // address of their own (Cognito, Auth0) get the browser there.
        let fallback = match (&end_session, &discovered) {
            (None, Some(d)) => settings.profile.fallback_logout(
                &d.metadata().issuer,
                &d.metadata().authorization_endpoint,
                &settings.client_id,
                &absolute,
            ),
            _ => None,
        };
        let location = match (end_session, id_token) {
            _ if let Some(f) = fallback => f,
            (Some(endpoint), Some(hint)) => {
                let mut url = url::Url::parse(&endpoint).map_err(|_| {
                    crate::oidc::Error::ProviderInvalid("end_session_endpoint".into())
                })?;
                url.query_pairs_mut()
                    .append_pair("id_token_hint", &hint)
                    .append_pair("post_logout_redirect_uri", &absolute)
                    .append_pair("client_id", &self.inner.provider.settings().client_id);
                url.to_string()
            }
            _ => self.absolute(view, &target),
        };
        Ok(Decision::Redirect {
            location,
            set_cookies,
        })
    }

    /// Revokes the session's refresh and access tokens at the provider,
    /// concurrently, each bounded by [`DEFAULT_LOGOUT_REVOCATION_TIMEOUT`].
    /// Failures are logged (token hash only) and otherwise ignored: the
    /// session is already over on the gate's side.
    async fn revoke_session_tokens(&self, session: &Session) {
        let revoke = |token: Option<&str>, hint: &'static str| {
            let token = token.filter(|t| !t.is_empty()).map(str::to_owned);
            async move {
                let Some(token) = token else { return };
                let call = self.inner.provider.revoke(&token, hint);
                let outcome = tokio::time::timeout(DEFAULT_LOGOUT_REVOCATION_TIMEOUT, call).await;
                let hash = TokenHash::of(&token);
                match outcome {
                    Ok(Ok(())) => tracing::debug!(token = %hash, hint, "token revoked at logout"),
                    Ok(Err(e)) => {
                        tracing::warn!(token = %hash, hint, error = %e, "token not revoked at logout")
                    }
                    Err(_) => tracing::warn!(
                        token = %hash,
                        hint,
                        timeout_ms = DEFAULT_LOGOUT_REVOCATION_TIMEOUT.as_millis(),
                        "token revocation at logout timed out"
                    ),
                }
            }
        };
        tokio::join!(
            revoke(session.refresh_token.as_deref(), "refresh_token"),
            revoke(session.access_token.as_deref(), "access_token"),
        );
    }
}
