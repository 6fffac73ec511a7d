//! The values a browser carries: the logged-in [`Session`] and the
//! pre-login [`LoginState`].
//!
//! This file owns their fields, their compact serialized form (short field
//! names, absent options omitted) and the bookkeeping of pending logins. It
//! must not encrypt, touch HTTP or read the clock: times are passed in as
//! unix seconds. `Debug` never prints tokens.

use std::fmt;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// Maximum number of logins that may be in progress at once (one per tab).
pub const MAX_PENDING_LOGINS: usize = 3;

/// Length in seconds of the window over which [`LoginState::attempts`]
/// counts login attempts; the counter restarts when it has elapsed.
pub const LOGIN_ATTEMPT_WINDOW_SECS: u64 = 600;

/// What a logged-in browser carries.
///
/// `Debug` is written by hand so that tokens print as `[redacted]`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Random id made at login (base64url of [`super::SID_BYTES`] random bytes).
    #[serde(rename = "i")]
    pub sid: String,
    /// Unix seconds of the login. The absolute lifetime counts from here; a
    /// token refresh never changes it.
    #[serde(rename = "c")]
    pub created_at: u64,
    /// Unix seconds of the last successful token refresh, from which the
    /// sliding lifetime counts (`created_at` until the first refresh).
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    pub renewed_at: Option<u64>,
    /// The user identifier (value of the configured identifier claim, else `sub`).
    #[serde(rename = "u")]
    pub identifier: String,
    /// The `sub` claim.
    #[serde(rename = "s")]
    pub subject: String,
    /// The identity provider's `sid` claim, for logout by session id.
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub idp_sid: Option<String>,
    /// The `email` claim.
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Group names.
    #[serde(rename = "g", default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Role names.
    #[serde(rename = "r", default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// The raw ID token.
    #[serde(rename = "it", default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// The raw access token.
    #[serde(rename = "at", default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    /// The raw refresh token.
    #[serde(rename = "rt", default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Unix seconds when the refresh token was issued.
    #[serde(rename = "ri", default, skip_serializing_if = "Option::is_none")]
    pub refresh_token_issued_at: Option<u64>,
    /// Unix seconds when the access token (else the ID token) expires. The
    /// codec does not check it; refreshing is the caller's decision.
    #[serde(rename = "x")]
    pub expires_at: u64,
    /// Set only in the cookie of a server-side session: the per-session
    /// secret that opens the session kept in the store. The cookie then
    /// carries nothing else but `sid` and `created_at`.
    #[serde(rename = "k", default, skip_serializing_if = "Option::is_none")]
    pub server_secret: Option<String>,
}

/// Prints `[redacted]` for a present secret, `None` otherwise.
struct Redacted<'a, T>(&'a Option<T>);

impl<T> fmt::Debug for Redacted<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(_) => f.write_str("Some([redacted])"),
            None => f.write_str("None"),
        }
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("sid", &self.sid)
            .field("created_at", &self.created_at)
            .field("renewed_at", &self.renewed_at)
            .field("identifier", &self.identifier)
            .field("subject", &self.subject)
            .field("idp_sid", &self.idp_sid)
            .field("email", &self.email)
            .field("groups", &self.groups)
            .field("roles", &self.roles)
            .field("id_token", &Redacted(&self.id_token))
            .field("access_token", &Redacted(&self.access_token))
            .field("refresh_token", &Redacted(&self.refresh_token))
            .field("refresh_token_issued_at", &self.refresh_token_issued_at)
            .field("expires_at", &self.expires_at)
            .field("server_secret", &Redacted(&self.server_secret))
            .finish()
    }
}

/// One login in progress: what the callback needs to finish it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingLogin {
    /// The `state` sent to the identity provider.
    #[serde(rename = "s")]
    pub state: String,
    /// The `nonce` sent to the identity provider.
    #[serde(rename = "n")]
    pub nonce: String,
    /// The PKCE code verifier, when PKCE is used.
    #[serde(rename = "v", default, skip_serializing_if = "Option::is_none")]
    pub pkce_verifier: Option<String>,
    /// The `redirect_uri` sent to the identity provider (must be repeated at
    /// the token endpoint).
    #[serde(rename = "r")]
    pub redirect_uri: String,
    /// Where to send the browser once logged in.
    #[serde(rename = "t")]
    pub return_to: String,
    /// Unix seconds when the login started.
    #[serde(rename = "c")]
    pub created_at: u64,
}

impl fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingLogin")
            .field("state", &"[redacted]")
            .field("nonce", &"[redacted]")
            .field("pkce_verifier", &Redacted(&self.pkce_verifier))
            .field("redirect_uri", &self.redirect_uri)
            .field("return_to", &self.return_to)
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// The pre-login cookie: up to [`MAX_PENDING_LOGINS`] pending logins,
/// newest first, plus a counter of login attempts for loop detection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginState {
    /// Logins in progress, newest first.
    #[serde(rename = "p", default)]
    pub pending: Vec<PendingLogin>,
    /// Logins started since `window_started_at`.
    #[serde(rename = "a", default)]
    pub attempts: u32,
    /// Unix seconds when the current attempt window started.
    #[serde(rename = "w", default)]
    pub window_started_at: u64,
    /// The last login finished with a user the policy refuses: the browser
    /// was sent back to where it came from, and gets the refusal there.
    #[serde(rename = "d", default, skip_serializing_if = "Option::is_none")]
    pub denied: Option<DeniedLogin>,
}

/// A finished login whose user is not allowed. The user gets no session;
/// this note lets the page they return to answer 403 naming them instead
/// of starting another login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeniedLogin {
    /// The refused user's identifier.
    #[serde(rename = "u")]
    pub user: String,
    /// The address the browser was sent back to (path and query).
    #[serde(rename = "t")]
    pub return_to: String,
    /// Which rule refused, as a code the gate assigns (0: the user).
    #[serde(rename = "r", default)]
    pub reason: u8,
    /// Unix seconds when the login finished.
    #[serde(rename = "c")]
    pub created_at: u64,
}

impl LoginState {
    /// Records a new login: puts `pending` first, keeps at most
    /// [`MAX_PENDING_LOGINS`] entries (the oldest are dropped) and counts one
    /// attempt. The counter restarts when [`LOGIN_ATTEMPT_WINDOW_SECS`] have
    /// passed since the window started.
    ///
    /// Entries older than the login lifetime are dropped by
    /// [`super::SessionCodec::load_login`], which knows that lifetime.
    pub fn push(&mut self, pending: PendingLogin, now: u64) {
        let window_over = now.saturating_sub(self.window_started_at) >= LOGIN_ATTEMPT_WINDOW_SECS
            || self.window_started_at > now;
        if window_over || self.attempts == 0 {
            self.attempts = 0;
            self.window_started_at = now;
        }
        self.attempts = self.attempts.saturating_add(1);
        self.denied = None;
        self.pending.insert(0, pending);
        self.pending.truncate(MAX_PENDING_LOGINS);
    }

    /// Removes and returns the pending login whose `state` equals `state`.
    ///
    /// Every entry is compared in constant time, and all entries are
    /// compared whatever the outcome.
    pub fn take(&mut self, state: &str) -> Option<PendingLogin> {
        let mut found: Option<usize> = None;
        for (index, pending) in self.pending.iter().enumerate() {
            let equal: bool = pending.state.as_bytes().ct_eq(state.as_bytes()).into();
            if equal && found.is_none() {
                found = Some(index);
            }
        }
        found.map(|index| self.pending.remove(index))
    }

    /// Attempts counted in the window that is current at `now` (0 when the
    /// window has elapsed).
    pub fn attempts_at(&self, now: u64) -> u32 {
        if now.saturating_sub(self.window_started_at) >= LOGIN_ATTEMPT_WINDOW_SECS
            || self.window_started_at > now
        {
            0
        } else {
            self.attempts
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn pending(state: &str, created_at: u64) -> PendingLogin {
        PendingLogin {
            state: state.to_owned(),
            nonce: format!("nonce-{state}"),
            pkce_verifier: Some(format!("verifier-{state}")),
            redirect_uri: "https://app.example/callback".to_owned(),
            return_to: format!("https://app.example/{state}"),
            created_at,
        }
    }

    fn session() -> Session {
        Session {
            sid: "sid-1".into(),
            created_at: 1_000,
            renewed_at: None,
            identifier: "alice".into(),
            subject: "sub-alice".into(),
            idp_sid: Some("idp-sid".into()),
            email: Some("alice@example.org".into()),
            groups: vec!["admins".into()],
            roles: vec![],
            id_token: Some("ID.TOKEN.SECRET".into()),
            access_token: Some("ACCESS-SECRET".into()),
            refresh_token: Some("REFRESH-SECRET".into()),
            refresh_token_issued_at: Some(1_000),
            expires_at: 4_600,
            server_secret: None,
        }
    }

    #[test]
    fn session_debug_redacts_tokens() {
        let text = format!("{:?}", session());
        for secret in ["ID.TOKEN.SECRET", "ACCESS-SECRET", "REFRESH-SECRET"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(text.contains("access_token: Some([redacted])"), "{text}");
        assert!(text.contains("alice@example.org"));
        let mut empty = session();
        empty.access_token = None;
        assert!(format!("{empty:?}").contains("access_token: None"));
    }

    #[test]
    fn pending_debug_redacts_state_nonce_verifier() {
        let mut p = pending("STATEVALUE", 1);
        p.return_to = "https://app.example/".into();
        let text = format!("{p:?}");
        for secret in ["STATEVALUE", "nonce-STATEVALUE", "verifier-STATEVALUE"] {
            assert!(!text.contains(secret), "{text}");
        }
    }

    #[test]
    fn session_serde_round_trip_omits_empty_fields() {
        let s = session();
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Session>(&json).unwrap(), s);
        let minimal = Session {
            idp_sid: None,
            email: None,
            groups: vec![],
            id_token: None,
            access_token: None,
            refresh_token: None,
            refresh_token_issued_at: None,
            ..session()
        };
        let json = serde_json::to_string(&minimal).unwrap();
        assert_eq!(
            json,
            r#"{"i":"sid-1","c":1000,"u":"alice","s":"sub-alice","x":4600}"#
        );
        assert_eq!(serde_json::from_str::<Session>(&json).unwrap(), minimal);
    }

    #[test]
    fn push_keeps_newest_three() {
        let mut login = LoginState::default();
        for (i, state) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            login.push(pending(state, 100 + i as u64), 100 + i as u64);
        }
        let states: Vec<&str> = login.pending.iter().map(|p| p.state.as_str()).collect();
        assert_eq!(states, ["e", "d", "c"]);
        assert_eq!(login.attempts, 5);
        assert_eq!(login.window_started_at, 100);
    }

    #[test]
    fn take_with_several_tabs() {
        let mut login = LoginState::default();
        for state in ["tab1", "tab2", "tab3", "tab4"] {
            login.push(pending(state, 10), 10);
        }
        // Table: state presented, expected result, states left afterwards.
        let table: [(&str, Option<&str>, &[&str]); 6] = [
            ("tab1", None, &["tab4", "tab3", "tab2"]),
            ("tab3", Some("tab3"), &["tab4", "tab2"]),
            ("tab3", None, &["tab4", "tab2"]),
            ("tab", None, &["tab4", "tab2"]),
            ("", None, &["tab4", "tab2"]),
            ("tab2", Some("tab2"), &["tab4"]),
        ];
        for (state, expected, left) in table {
            let got = login.take(state);
            assert_eq!(got.as_ref().map(|p| p.state.as_str()), expected, "{state}");
            if let Some(p) = got {
                assert_eq!(p.return_to, format!("https://app.example/{state}"));
            }
            let now: Vec<&str> = login.pending.iter().map(|p| p.state.as_str()).collect();
            assert_eq!(now, left, "after {state}");
        }
    }

    #[test]
    fn attempts_window() {
        let w = LOGIN_ATTEMPT_WINDOW_SECS;
        let mut login = LoginState::default();
        // Table: time of push, expected attempts, expected window start.
        let table = [
            (1_000, 1, 1_000),
            (1_001, 2, 1_000),
            (1_000 + w - 1, 3, 1_000),
            (1_000 + w, 1, 1_000 + w),
            (1_000 + w + 5, 2, 1_000 + w),
            // A clock that went backwards restarts the window.
            (500, 1, 500),
        ];
        for (now, attempts, start) in table {
            login.push(pending("x", now), now);
            assert_eq!(
                (login.attempts, login.window_started_at),
                (attempts, start),
                "at {now}"
            );
            assert_eq!(login.attempts_at(now), attempts);
        }
        assert_eq!(login.attempts_at(500 + w), 0);
    }
}
