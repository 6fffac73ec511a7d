//! [`CacheKey`]: the key of one entry inside a namespace.
//!
//! Owns: key validation and hashing of secret inputs. Must not: accept a raw
//! token as a key (secrets go through [`CacheKey::hashed`]), or print a key in
//! `Debug` output.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::digest;

/// Longest accepted key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// Why a string was refused as a [`CacheKey`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key is empty.
    #[error("cache key is empty")]
    Empty,
    /// The key is longer than [`MAX_KEY_BYTES`].
    #[error("cache key is {0} bytes, more than the limit of {MAX_KEY_BYTES}")]
    TooLong(usize),
    /// The key contains a control character or whitespace.
    #[error("cache key contains a control character or whitespace")]
    BadCharacter,
}

/// The key of one entry inside a [`Namespace`](super::Namespace).
///
/// Built either from a string that is not secret (an issuer URL, a `jti`, a
/// session id that is itself random) with [`CacheKey::new`], or from a secret
/// (a token) with [`CacheKey::hashed`], which keeps only its SHA-256 digest.
/// Cloning is cheap.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(Arc<str>);

impl CacheKey {
    /// Uses `key` as it is. It must be non-empty, at most [`MAX_KEY_BYTES`]
    /// bytes, and free of whitespace and control characters. Never pass a
    /// token or other secret: use [`CacheKey::hashed`].
    pub fn new(key: impl AsRef<str>) -> Result<CacheKey, KeyError> {
        let key = key.as_ref();
        if key.is_empty() {
            return Err(KeyError::Empty);
        }
        if key.len() > MAX_KEY_BYTES {
            return Err(KeyError::TooLong(key.len()));
        }
        if key.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(KeyError::BadCharacter);
        }
        Ok(CacheKey(Arc::from(key)))
    }

    /// The lowercase hex SHA-256 digest of `secret` (64 characters). The secret
    /// itself is not kept.
    pub fn hashed(secret: &str) -> CacheKey {
        let d = digest::digest(&digest::SHA256, secret.as_bytes());
        CacheKey(Arc::from(hex(d.as_ref())))
    }

    /// The key text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A short, non-reversible tag of this key for log lines (the first 8 hex
    /// characters of its SHA-256).
    pub fn log_tag(&self) -> String {
        let d = digest::digest(&digest::SHA256, self.0.as_bytes());
        hex(&d.as_ref()[..4])
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheKey(#{})", self.log_tag())
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn hashed_is_hex_sha256_and_hides_the_secret() {
        let k = CacheKey::hashed("abc");
        assert_eq!(
            k.as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(!format!("{k:?}").contains("ba7816bf8f01cfea"));
    }

    #[test]
    fn new_validates() {
        let cases: &[(&str, Result<(), KeyError>)] = &[
            ("https://idp.example/.well-known/jwks.json", Ok(())),
            ("", Err(KeyError::Empty)),
            ("a b", Err(KeyError::BadCharacter)),
            ("a\nb", Err(KeyError::BadCharacter)),
            ("a\u{7f}", Err(KeyError::BadCharacter)),
        ];
        for (input, want) in cases {
            assert_eq!(CacheKey::new(input).map(|_| ()), *want, "{input:?}");
        }
        let long = "x".repeat(MAX_KEY_BYTES + 1);
        assert_eq!(
            CacheKey::new(&long).map(|_| ()),
            Err(KeyError::TooLong(MAX_KEY_BYTES + 1))
        );
        assert!(CacheKey::new("x".repeat(MAX_KEY_BYTES)).is_ok());
    }
}
