//! Where a session lives: entirely in the encrypted cookie (default), or in
//! the shared store with only a reference in the cookie (`sessionStore: redis`).
//!
//! Server-side sessions: the cookie carries the session id and a random
//! per-session secret (sealed like any session cookie); the store keeps the
//! session sealed under a key derived from that secret. A dump of the store
//! alone reveals no token, the cookie stays small (no 431s behind nginx or
//! Tomcat), and deleting the stored value ends the session everywhere.

use std::time::Duration;

use http::HeaderValue;

use super::Gate;
use super::rescue::Error;
use super::view::RequestView;
use crate::cache::{CacheKey, Namespace};
use crate::session::{Session, open_with_secret, random_token, seal_with_secret};

/// Bytes of randomness in a server-side session's secret.
const SERVER_SECRET_BYTES: usize = 32;
/// Label binding sealed server-side sessions to their purpose.
const SEAL_LABEL: &str = "server session";

/// Where sessions are kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SessionStore {
    /// The whole session in the cookie.
    #[default]
    Cookie,
    /// The session in the shared cache; the cookie holds a reference.
    Server,
}

fn store_key(sid: &str) -> Option<CacheKey> {
    CacheKey::new(format!("sid:{sid}")).ok()
}

/// The stored session `sealed` that `stub` (the cookie's reference) points
/// at, if it opens with the reference's secret and names the same session.
fn open_stored(stub: &Session, secret: String, sealed: &str) -> Option<Session> {
    let plain = open_with_secret(&secret, SEAL_LABEL, sealed).ok()?;
    let mut session: Session = serde_json::from_slice(&plain).ok()?;
    if session.sid != stub.sid || session.created_at != stub.created_at {
        return None;
    }
    session.server_secret = Some(secret);
    Some(session)
}

impl Gate {
    /// The request's session, from the cookie or (for a reference) the store.
    /// A reference whose stored session is gone or does not open is no session;
    /// a store that cannot answer (and no copy in this replica's memory) is
    /// [`Error::SessionStore`]: the session is not lost, so the request is
    /// not sent to log in again (the same cookie works once the store answers).
    pub(super) async fn load_session(
        &self,
        view: &RequestView,
        now: u64,
    ) -> Result<Option<Session>, Error> {
        let Some(stub) = self.inner.sessions.load(&view.headers, now) else {
            return Ok(None);
        };
        let Some(secret) = stub.server_secret.clone() else {
            return Ok(Some(stub));
        };
        let Some(key) = store_key(&stub.sid) else {
            return Ok(None);
        };
        let sealed: Option<String> = self
            .inner
            .caches
            .get(Namespace::Session, &key)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "session store unavailable");
                Error::SessionStore(e.to_string())
            })?;
        Ok(sealed.and_then(|sealed| open_stored(&stub, secret, &sealed)))
    }

    /// Set-Cookie values that keep `session`, writing it to the store first in
    /// server mode.
    pub(super) async fn store_session(
        &self,
        session: &Session,
        view: &RequestView,
        now: u64,
    ) -> Result<Vec<HeaderValue>, Error> {
        let secure = self.secure(view);
        if self.inner.settings.session_store == SessionStore::Cookie {
            return Ok(self
                .inner
                .sessions
                .store(session, &view.headers, secure, now)?);
        }
        let secret = match &session.server_secret {
            Some(s) => s.clone(),
            None => random_token(SERVER_SECRET_BYTES)?,
        };
        let mut full = session.clone();
        full.server_secret = None;
        let json = serde_json::to_vec(&full).map_err(|_| crate::session::Error::Encode)?;
        let sealed = seal_with_secret(&secret, SEAL_LABEL, &json)?;
        let remaining = self
            .inner
            .sessions
            .session_deadline(session)
            .saturating_sub(now)
            .max(1);
        let key = store_key(&session.sid).ok_or(crate::session::Error::Encode)?;
        self.inner
            .caches
            .set(
                Namespace::Session,
                &key,
                &sealed,
                Duration::from_secs(remaining),
            )
            .await
            .map_err(|e| Error::SessionStore(e.to_string()))?;
        let stub = Session {
            sid: session.sid.clone(),
            created_at: session.created_at,
            renewed_at: session.renewed_at,
            identifier: String::new(),
            subject: String::new(),
            idp_sid: None,
            email: None,
            groups: Vec::new(),
            roles: Vec::new(),
            id_token: None,
            access_token: None,
            refresh_token: None,
            refresh_token_issued_at: None,
            expires_at: 0,
            server_secret: Some(secret),
        };
        Ok(self
            .inner
            .sessions
            .store(&stub, &view.headers, secure, now)?)
    }

    /// Removes a server-side session from the store (no-op for cookie sessions).
    pub(super) async fn forget_session(&self, session: &Session) {
        if session.server_secret.is_none() {
            return;
        }
        if let Some(key) = store_key(&session.sid) {
            if let Err(e) = self.inner.caches.delete(Namespace::Session, &key).await {
                tracing::warn!(error = %e, "server-side session not deleted");
            }
        }
    }
}
