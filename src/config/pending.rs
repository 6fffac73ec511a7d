//! traefikoidc keys of features that are not available yet: accepted when
//! switched off (absent, `null`, `false`, empty, or `enabled: false`),
//! refused otherwise, so that nothing a file asks for is silently dropped.
//!
//! Owns that list. A key leaves this file when its feature lands.

use serde::Deserialize;
use serde_norway::Value;

use super::Report;

/// The pending keys as written.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct Raw {
    /// Templated upstream headers.
    #[serde(rename = "headers")]
    pub(super) headers: Option<Value>,
    /// Security response headers and CORS.
    #[serde(rename = "securityHeaders")]
    pub(super) security_headers: Option<Value>,
}

fn is_off(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => true,
        Value::String(s) => s.is_empty(),
        Value::Sequence(s) => s.is_empty(),
        Value::Mapping(m) => m.is_empty() || m.get("enabled") == Some(&Value::Bool(false)),
        _ => false,
    }
}

/// Refuses each pending key that is switched on.
pub(super) fn settings(raw: Raw, r: &mut Report) {
    for (key, v) in [
        ("headers", raw.headers),
        ("securityHeaders", raw.security_headers),
    ] {
        if v.as_ref().is_some_and(|v| !is_off(v)) {
            r.error(key, "is not supported by this version of oidcgate yet");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::super::tests::{keys_of, load};

    #[test]
    fn switched_off_is_accepted_and_on_is_refused() {
        for off in [
            "headers: []\n",
            "securityHeaders: {enabled: false, frameOptions: DENY}\n",
            "securityHeaders:\n",
        ] {
            assert!(load(off).is_ok(), "{off}");
        }
        assert_eq!(
            keys_of("headers: [{name: X-Team, value: x}]\n"),
            ["headers"]
        );
        assert_eq!(
            keys_of("securityHeaders: {enabled: true}\n"),
            ["securityHeaders"]
        );
    }
}
