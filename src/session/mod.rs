//! Browser session state and its cookie codec.
//!
//! This module owns three things: the values a browser carries between
//! requests ([`Session`] after login, [`LoginState`] while a login is in
//! progress), the sealing of those values into encrypted cookies
//! ([`SessionCodec`]), and the small helpers the login flow needs for random
//! values ([`random_token`], [`pkce_challenge`]).
//!
//! It must not talk to the network, read the configuration file, decide
//! policy, or log any cookie value, token or key. A cookie that cannot be
//! read is never an error here: it is simply "no session", and the caller
//! decides what to do next.
//!
//! Files:
//! - `model.rs`: the session and login values and their serialized form;
//! - `crypto.rs`: key derivation, AEAD sealing and random values (pure);
//! - `cookies.rs`: `Cookie` header parsing and `Set-Cookie` rendering;
//! - `codec.rs`: [`SessionCodec`], which ties the three together.

mod codec;
mod cookies;
mod crypto;
mod model;

use std::fmt;

use serde::Deserialize;

pub use codec::{
    DEFAULT_COOKIE_PATH, DEFAULT_COOKIE_PREFIX, DEFAULT_LOGIN_TTL, DEFAULT_SESSION_MAX_AGE,
    MAX_CHUNKS, MAX_COOKIE_VALUE, MAX_PREFIX_LEN, MAX_SET_COOKIE_LEN, SessionCodec,
    SessionSettings,
};
pub use crypto::{
    MIN_KEY_LEN, SID_BYTES, open_with_secret, pkce_challenge, random_token, seal_with_secret,
};
pub use model::{
    DeniedLogin, LOGIN_ATTEMPT_WINDOW_SECS, LoginState, MAX_PENDING_LOGINS, PendingLogin, Session,
};

/// Errors from building a [`SessionCodec`] or from producing cookies.
///
/// Reading a cookie never yields an error to the caller (a bad cookie is "no
/// session"); [`Error::Undecryptable`] is only used inside the module and is
/// public so that the variant list stays complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No session key was configured.
    #[error("session settings: at least one session key is required")]
    NoKeys,
    /// A configured key is too short to be a secret.
    #[error(
        "session settings: key #{index} is {len} bytes long; every session key must be at least {min} bytes"
    )]
    KeyTooShort {
        /// Position of the key in the configured list (0 = current key).
        index: usize,
        /// Length of the key in bytes.
        len: usize,
        /// Minimum accepted length in bytes.
        min: usize,
    },
    /// The cookie prefix is empty.
    #[error("session settings: the cookie prefix must not be empty")]
    EmptyPrefix,
    /// The cookie prefix contains a character that is not allowed in a cookie name.
    #[error(
        "session settings: the cookie prefix {prefix:?} contains {ch:?}; only letters, digits and !#$%&'*+-.^_`|~ are allowed in a cookie name"
    )]
    InvalidPrefix {
        /// The rejected prefix.
        prefix: String,
        /// The first offending character.
        ch: char,
    },
    /// Another setting is out of range or malformed.
    #[error("session settings: {field}: {reason}")]
    InvalidSetting {
        /// Name of the offending setting.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The value does not fit in the cookies this codec may set.
    #[error(
        "the {what} needs {needed} bytes of cookie data but at most {max} fit; store fewer or shorter tokens"
    )]
    TooLarge {
        /// Which value was being stored ("session" or "login state").
        what: &'static str,
        /// Bytes of cookie data the value needs.
        needed: usize,
        /// Bytes of cookie data available.
        max: usize,
    },
    /// A sealed value could not be opened. Deliberately carries no detail.
    #[error("cookie could not be decrypted")]
    Undecryptable,
    /// The operating system random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// A value could not be encoded (internal error).
    #[error("session value could not be encoded")]
    Encode,
}

/// A string holding secret material (a session key).
///
/// Its `Debug` output is `[redacted]`, it has no `Display`, and its memory is
/// overwritten (best effort) when dropped. Use [`SecretString::expose`] to
/// read it.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps `value` as a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself. Never log or display the returned value.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length of the secret in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for SecretString {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Drop for SecretString {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.0).into_bytes();
        bytes.iter_mut().for_each(|b| *b = 0);
        std::hint::black_box(&bytes);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn secret_string_debug_is_redacted() {
        let s = SecretString::new("super-secret-value-that-must-not-leak");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(&s)), "Some([redacted])");
        assert_eq!(s.expose(), "super-secret-value-that-must-not-leak");
        assert_eq!(s.len(), 37);
    }

    #[test]
    fn secret_string_deserializes_transparently() {
        let s: SecretString = serde_json::from_str("\"abc\"").unwrap();
        assert_eq!(s.expose(), "abc");
    }

    #[test]
    fn error_messages_name_the_problem() {
        let e = Error::KeyTooShort {
            index: 1,
            len: 8,
            min: MIN_KEY_LEN,
        };
        assert_eq!(
            e.to_string(),
            "session settings: key #1 is 8 bytes long; every session key must be at least 32 bytes"
        );
        assert_eq!(
            Error::Undecryptable.to_string(),
            "cookie could not be decrypted"
        );
    }
}
