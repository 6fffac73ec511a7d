//! Telemetry: log set-up and the redaction types every other module uses.
//!
//! Owns how tokens and secrets may appear in logs: only as a [`TokenHash`], a
//! short SHA-256 prefix good for correlation and useless to an attacker. Nothing
//! in this module knows about OIDC or HTTP.

pub mod metrics;

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

/// Installs the global tracing subscriber, writing to standard output.
/// `RUST_LOG` overrides `level` when set. Text lines carry colour only when
/// standard output is a terminal; JSON lines are one object per line with
/// the request's span fields (its `request_id`) flattened in. Calling it twice
/// is harmless (the second call does nothing).
pub fn init(level: LogLevel, format: LogFormat) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("oidcgate={}", level.directive())));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stdout().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .try_init(),
    };
}

/// A request id: unique within the process and across restarts (a random
/// per-process prefix and a counter), 16 hex digits.
#[derive(Debug)]
pub struct RequestIds {
    prefix: u32,
    next: std::sync::atomic::AtomicU32,
}

impl RequestIds {
    /// A generator with a random prefix.
    pub fn new() -> Self {
        let mut b = [0u8; 4];
        let prefix = match aws_lc_rs::rand::fill(&mut b) {
            Ok(()) => u32::from_be_bytes(b),
            Err(_) => std::process::id(),
        };
        Self {
            prefix,
            next: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// The next id.
    pub fn next_id(&self) -> String {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{:08x}{n:08x}", self.prefix)
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether `id` (from a trusted proxy's `X-Request-Id`) may be reused: 1 to
/// 128 visible ASCII characters without quotes or backslashes.
pub fn valid_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
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
    fn request_ids_are_unique_and_checked() {
        let ids = RequestIds::new();
        let (a, b) = (ids.next_id(), ids.next_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 16);
        assert!(valid_request_id(&a));
        assert!(valid_request_id("abc-123_X.y"));
        for bad in ["", "a b", "a\"b", "x\n", &"a".repeat(129)] {
            assert!(!valid_request_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn log_levels_parse() {
        assert_eq!(LogLevel::parse("DEBUG"), Some(LogLevel::Debug));
        assert_eq!(LogLevel::parse("error"), Some(LogLevel::Error));
        assert_eq!(LogLevel::parse("loud"), None);
    }
}
