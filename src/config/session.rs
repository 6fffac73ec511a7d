//! The session and cookie keys: encryption keys (current and previous),
//! cookie name prefix, domain and path, session lifetime, where sessions
//! live, and what a logout check the shared store cannot answer does.
//!
//! Owns the refusals of these keys. The cookie attributes are checked by the
//! session codec itself; its typed errors are mapped back to the key that
//! caused them.

use std::time::Duration;

use serde::Deserialize;

use super::{HOST_COOKIE_PREFIX, Report};
use crate::gate::{OutagePolicy, SessionStore};
use crate::session::{MIN_KEY_LEN, SecretString, SessionCodec, SessionSettings};

/// The session keys as written.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct Raw {
    /// Session key (>= 32 bytes).
    #[serde(rename = "sessionEncryptionKey")]
    pub(super) session_encryption_key: SecretString,
    /// Older keys still accepted for reading (rotation).
    #[serde(rename = "previousSessionEncryptionKeys")]
    pub(super) previous_session_encryption_keys: Vec<SecretString>,
    /// Cookie domain.
    #[serde(rename = "cookieDomain")]
    pub(super) cookie_domain: Option<String>,
    /// Cookie name prefix.
    #[serde(rename = "cookiePrefix")]
    pub(super) cookie_prefix: Option<String>,
    /// Cookie path.
    #[serde(rename = "cookiePath")]
    pub(super) cookie_path: Option<String>,
    /// Session lifetime (seconds), extended by each successful refresh.
    #[serde(rename = "sessionMaxAge")]
    pub(super) session_max_age: Option<u64>,
    /// Absolute session lifetime from the login (seconds; unset: none).
    #[serde(rename = "sessionAbsoluteMaxAge")]
    pub(super) session_absolute_max_age: Option<u64>,
    /// `cookie` (default) or `redis`: where sessions live.
    #[serde(rename = "sessionStore")]
    pub(super) session_store: Option<String>,
    /// `open` or `closed`: what a logout or revocation check the shared
    /// store cannot answer does (unset: sessions open, bearer closed).
    #[serde(rename = "securityOutagePolicy")]
    pub(super) security_outage_policy: Option<String>,
}

/// What the session keys configure.
pub(super) struct Parts {
    /// The session codec's settings.
    pub(super) session: SessionSettings,
    /// Where sessions live.
    pub(super) session_store: SessionStore,
    /// What an unanswerable logout or revocation check does.
    pub(super) security_outage_policy: Option<OutagePolicy>,
}

/// Validates the session keys; `force_https` is the endpoints' key.
pub(super) fn settings(raw: Raw, force_https: bool, r: &mut Report) -> Parts {
    let mut keys = Vec::new();
    if raw.session_encryption_key.expose().is_empty() {
        r.error(
            "sessionEncryptionKey",
            "is required (at least 32 random characters)",
        );
    } else {
        keys.push(raw.session_encryption_key);
    }
    let first_previous = keys.len();
    keys.extend(raw.previous_session_encryption_keys);
    let mut short = false;
    for (i, k) in keys.iter().enumerate() {
        if k.len() < MIN_KEY_LEN {
            let key = if i < first_previous {
                "sessionEncryptionKey".to_owned()
            } else {
                format!("previousSessionEncryptionKeys[{}]", i - first_previous)
            };
            r.error(
                &key,
                format!("must be at least {MIN_KEY_LEN} bytes, got {}", k.len()),
            );
            short = true;
        }
    }
    let mut session = SessionSettings::with_keys(keys);
    session.cookie_domain = raw.cookie_domain.filter(|d| !d.is_empty());
    if let Some(p) = raw.cookie_path {
        session.cookie_path = p;
    }
    match raw.cookie_prefix {
        Some(p) => session.cookie_prefix = p,
        // Served over HTTPS with host-only cookies on `/`: the default names
        // take the `__Host-` prefix, which browsers accept only from this
        // host, over HTTPS, without `Domain` — a sibling subdomain cannot
        // plant one. An explicit `cookiePrefix` is kept as written.
        None if force_https && session.cookie_domain.is_none() && session.cookie_path == "/" => {
            session.cookie_prefix = format!("{HOST_COOKIE_PREFIX}{}", session.cookie_prefix);
        }
        None => {}
    }
    match raw.session_max_age {
        Some(0) => r.error("sessionMaxAge", "must be greater than 0 seconds"),
        Some(secs) => session.max_age = Duration::from_secs(secs),
        None => {}
    }
    match raw.session_absolute_max_age {
        Some(secs) if Duration::from_secs(secs) < session.max_age => r.error(
            "sessionAbsoluteMaxAge",
            format!(
                "must be at least sessionMaxAge ({} seconds): the absolute limit bounds a \
                 session that refreshes keep alive",
                session.max_age.as_secs()
            ),
        ),
        Some(secs) => session.absolute_max_age = Some(Duration::from_secs(secs)),
        None => {}
    }
    if !short && first_previous > 0 {
        check_codec(&session, r);
    }

    let session_store = match raw.session_store.as_deref() {
        None | Some("cookie") => SessionStore::Cookie,
        Some("redis") | Some("server") => SessionStore::Server,
        Some(other) => {
            r.error(
                "sessionStore",
                format!("expected cookie or redis, got {other:?}"),
            );
            SessionStore::Cookie
        }
    };
    let security_outage_policy = match raw.security_outage_policy.as_deref() {
        None => None,
        Some("open") => Some(OutagePolicy::Open),
        Some("closed") => Some(OutagePolicy::Closed),
        Some(other) => {
            r.error(
                "securityOutagePolicy",
                format!("expected open or closed, got {other:?}"),
            );
            None
        }
    };
    Parts {
        session,
        session_store,
        security_outage_policy,
    }
}

/// Builds the codec once to have it judge the cookie attributes; its error
/// names the setting, which maps back to the key.
fn check_codec(session: &SessionSettings, r: &mut Report) {
    use crate::session::Error;
    let Err(e) = SessionCodec::new(session.clone()) else {
        return;
    };
    let key = match &e {
        Error::EmptyPrefix | Error::InvalidPrefix { .. } => "cookiePrefix",
        Error::InvalidSetting { field, .. } => match *field {
            "cookie_prefix" => "cookiePrefix",
            "cookie_domain" => "cookieDomain",
            "cookie_path" => "cookiePath",
            "max_age" => "sessionMaxAge",
            "absolute_max_age" => "sessionAbsoluteMaxAge",
            _ => "session",
        },
        _ => "session",
    };
    r.error(key, e.to_string());
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::super::tests::{check_refusals, load};

    #[test]
    fn refusals_name_their_key() {
        let cases: &[(&str, &[&str])] = &[
            ("sessionEncryptionKey: ''\n", &["sessionEncryptionKey"]),
            ("sessionEncryptionKey: short\n", &["sessionEncryptionKey"]),
            (
                "previousSessionEncryptionKeys: [0123456789abcdef0123456789abcdef, x]\n",
                &["previousSessionEncryptionKeys[1]"],
            ),
            ("cookiePrefix: 'bad prefix'\n", &["cookiePrefix"]),
            ("cookiePrefix: ''\n", &["cookiePrefix"]),
            ("cookiePath: 'no-slash'\n", &["cookiePath"]),
            ("sessionMaxAge: 0\n", &["sessionMaxAge"]),
            ("sessionMaxAge: -5\n", &["sessionMaxAge"]),
            ("sessionAbsoluteMaxAge: 0\n", &["sessionAbsoluteMaxAge"]),
            (
                "sessionMaxAge: 7200\nsessionAbsoluteMaxAge: 3600\n",
                &["sessionAbsoluteMaxAge"],
            ),
            ("sessionStore: disk\n", &["sessionStore"]),
            (
                "securityOutagePolicy: sometimes\n",
                &["securityOutagePolicy"],
            ),
        ];
        check_refusals(cases);
    }

    #[test]
    fn session_lifetimes() {
        use std::time::Duration;
        let c = load("").unwrap();
        assert_eq!(c.session.max_age, crate::session::DEFAULT_SESSION_MAX_AGE);
        assert_eq!(c.session.absolute_max_age, None);
        let c = load("sessionMaxAge: 3600\nsessionAbsoluteMaxAge: 604800\n").unwrap();
        assert_eq!(c.session.max_age, Duration::from_secs(3600));
        assert_eq!(
            c.session.absolute_max_age,
            Some(Duration::from_secs(604_800))
        );
    }

    #[test]
    fn security_outage_policy_is_open_closed_or_unset() {
        use crate::gate::OutagePolicy;
        assert_eq!(load("").unwrap().gate.security_outage_policy, None);
        for (text, want) in [
            ("open", OutagePolicy::Open),
            ("closed", OutagePolicy::Closed),
        ] {
            let c = load(&format!("securityOutagePolicy: {text}\n")).unwrap();
            assert_eq!(c.gate.security_outage_policy, Some(want));
        }
    }

    #[test]
    fn redis_sessions_without_redis_are_a_warning() {
        let c = load("sessionStore: redis\n").unwrap();
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert_eq!(c.warnings[0].key, "sessionStore");
    }
}
