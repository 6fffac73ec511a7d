//! Telemetry: log set-up and the redaction types every other module uses.
//!
//! Owns how tokens and secrets may appear in logs: only as a [`TokenHash`], a
//! short SHA-256 prefix good for correlation and useless to an attacker. Nothing
//! in this module knows about OIDC or HTTP.

use std::fmt;

use aws_lc_rs::digest;

/// A short, non-reversible fingerprint of a token or secret (first 8 bytes of
/// SHA-256, hex). The only form in which a token may reach a log line.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 8]);

impl TokenHash {
    /// Fingerprints `secret`.
    pub fn of(secret: &str) -> Self {
        let d = digest::digest(&digest::SHA256, secret.as_bytes());
        let mut out = [0u8; 8];
        out.copy_from_slice(&d.as_ref()[..8]);
        Self(out)
    }

    /// Full hex SHA-256 of `secret`, for cache keys derived from tokens.
    pub fn full_hex(secret: &str) -> String {
        hex(digest::digest(&digest::SHA256, secret.as_bytes()).as_ref())
    }
}

impl fmt::Display for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({self})")
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// A secret (a client secret, ...) whose `Debug` prints `[redacted]`, so
/// settings that hold one can derive `Debug` safely.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `s`.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when no secret is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Log verbosity accepted in configuration (`logLevel`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LogLevel {
    /// Every decision with its reason.
    Debug,
    /// Start-up, logins, logouts, refreshes and warnings.
    #[default]
    Info,
    /// Warnings only.
    Warn,
    /// Errors only.
    Error,
}

impl LogLevel {
    /// Parses the traefikoidc spellings (`debug`, `info`, `warn`, `error`).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "debug" | "trace" => Some(Self::Debug),
            "info" => Some(Self::Info),
            "warn" | "warning" => Some(Self::Warn),
            "error" => Some(Self::Error),
            _ => None,
        }
    }

    fn directive(self) -> &'static str {
        match self {
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global tracing subscriber. `RUST_LOG` overrides `level` when set.
/// Calling it twice is harmless (the second call does nothing).
pub fn init(level: LogLevel, format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("oidcgate={}", level.directive())));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_hash_hides_the_token_and_is_stable() {
        let t = "eyJhbGciOiJSUzI1NiJ9.secret-payload.sig";
        let h = TokenHash::of(t).to_string();
        assert_eq!(h.len(), 16);
        assert!(!h.contains("secret"));
        assert_eq!(h, TokenHash::of(t).to_string());
        assert_ne!(h, TokenHash::of("other").to_string());
        assert!(TokenHash::full_hex(t).starts_with(&h));
    }

    #[test]
    fn log_levels_parse() {
        assert_eq!(LogLevel::parse("DEBUG"), Some(LogLevel::Debug));
        assert_eq!(LogLevel::parse("error"), Some(LogLevel::Error));
        assert_eq!(LogLevel::parse("loud"), None);
    }
}
