//! The bearer (machine-to-machine) keys, validated into [`BearerSettings`].
//!
//! Owns the start-up refusals of the bearer path: no `audience` (the path
//! could not tell this API's access tokens from ID tokens issued to the same
//! client), `bearerIdentifierClaim: email` (an address is not a stable
//! machine identity), zero limits, and opaque tokens without introspection.

use std::time::Duration;

use serde::Deserialize;

use super::Report;
use super::checks::optional_url;
use crate::gate::{BearerSettings, ThrottleSettings};

/// Longest `maxIdentifierLength` accepted.
pub const MAX_IDENTIFIER_LENGTH_LIMIT: u64 = 4096;
/// Longest window or penalty accepted for the bearer failure throttle.
pub const MAX_BEARER_THROTTLE_SECONDS: u64 = 86_400;

/// The bearer keys as written.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct Raw {
    /// Judge `Authorization: Bearer` tokens (machine-to-machine).
    #[serde(rename = "enableBearerAuth")]
    pub(super) enable_bearer_auth: bool,
    /// Claim naming a bearer caller (default `sub`; `email` is refused).
    #[serde(rename = "bearerIdentifierClaim")]
    pub(super) bearer_identifier_claim: Option<String>,
    /// Remove `Authorization` before the upstream (default true).
    #[serde(rename = "stripAuthorizationHeader")]
    pub(super) strip_authorization_header: Option<bool>,
    /// RFC 6750 `WWW-Authenticate` on bearer 401s (default true).
    #[serde(rename = "bearerEmitWWWAuthenticate")]
    pub(super) bearer_emit_www_authenticate: Option<bool>,
    /// A bearer token wins over a session cookie (default false).
    #[serde(rename = "bearerOverridesCookie")]
    pub(super) bearer_overrides_cookie: bool,
    /// Oldest accepted `iat` of a bearer token, seconds (default 86400; 0 = default).
    #[serde(rename = "maxTokenAgeSeconds")]
    pub(super) max_token_age_seconds: Option<u64>,
    /// Longest identifier forwarded upstream, bytes (default 256).
    #[serde(rename = "maxIdentifierLength")]
    pub(super) max_identifier_length: Option<u64>,
    /// Refused bearer tokens per address and window before a penalty (default 20).
    #[serde(rename = "bearerFailureThreshold")]
    pub(super) bearer_failure_threshold: Option<u32>,
    /// Failure-counting window, seconds (default 60).
    #[serde(rename = "bearerFailureWindowSeconds")]
    pub(super) bearer_failure_window_seconds: Option<u64>,
    /// Penalty length, seconds (default 60).
    #[serde(rename = "bearerFailurePenaltySeconds")]
    pub(super) bearer_failure_penalty_seconds: Option<u64>,
    /// Accept opaque bearer tokens through introspection.
    #[serde(rename = "allowOpaqueTokens")]
    pub(super) allow_opaque_tokens: bool,
    /// Introspect bearer tokens (JWTs too) at the provider.
    #[serde(rename = "requireTokenIntrospection")]
    pub(super) require_token_introspection: bool,
    /// RFC 7662 endpoint overriding discovery's `introspection_endpoint`.
    #[serde(rename = "introspectionURL")]
    pub(super) introspection_url: Option<String>,
}

/// What the bearer keys configure outside the gate.
#[derive(Debug)]
pub(super) struct Parts {
    /// The gate's bearer settings.
    pub(super) settings: BearerSettings,
    /// `introspectionURL`, for the provider.
    pub(super) introspection_url: Option<String>,
    /// `maxIdentifierLength`, for the policy.
    pub(super) max_identifier_bytes: Option<usize>,
    /// `stripAuthorizationHeader`, for the gate (every path, not only the
    /// bearer path).
    pub(super) strip_authorization: bool,
}

/// A duration of at least one second, at most [`MAX_BEARER_THROTTLE_SECONDS`].
fn bounded_secs(key: &str, v: Option<u64>, default: Duration, r: &mut Report) -> Duration {
    match v {
        None => default,
        Some(0) => {
            r.error(key, "must be at least 1 second");
            default
        }
        Some(s) if s > MAX_BEARER_THROTTLE_SECONDS => {
            r.error(
                key,
                format!("must be at most {MAX_BEARER_THROTTLE_SECONDS} seconds"),
            );
            default
        }
        Some(s) => Duration::from_secs(s),
    }
}

/// The failure throttle of the bearer path.
fn throttle(raw: &Raw, mut throttle: ThrottleSettings, r: &mut Report) -> ThrottleSettings {
    match raw.bearer_failure_threshold {
        Some(0) => r.error("bearerFailureThreshold", "must be at least 1"),
        Some(n) => throttle.threshold = n,
        None => {}
    }
    throttle.window = bounded_secs(
        "bearerFailureWindowSeconds",
        raw.bearer_failure_window_seconds,
        throttle.window,
        r,
    );
    throttle.penalty = bounded_secs(
        "bearerFailurePenaltySeconds",
        raw.bearer_failure_penalty_seconds,
        throttle.penalty,
        r,
    );
    throttle
}

/// Validates the bearer keys; `audience` is the provider concern's key.
pub(super) fn settings(raw: Raw, audience: Option<&str>, r: &mut Report) -> Parts {
    let max_identifier_bytes = match raw.max_identifier_length {
        None => None,
        Some(n) if (1..=MAX_IDENTIFIER_LENGTH_LIMIT).contains(&n) => usize::try_from(n).ok(),
        Some(_) => {
            r.error(
                "maxIdentifierLength",
                format!("must be between 1 and {MAX_IDENTIFIER_LENGTH_LIMIT}"),
            );
            None
        }
    };
    let introspection_url = optional_url("introspectionURL", raw.introspection_url.as_deref(), r);
    let defaults = BearerSettings::default();
    let strip_authorization = raw
        .strip_authorization_header
        .unwrap_or(crate::gate::DEFAULT_STRIP_AUTHORIZATION_HEADER);
    if raw.allow_opaque_tokens && !raw.require_token_introspection {
        r.error(
            "allowOpaqueTokens",
            "needs requireTokenIntrospection: true (opaque tokens can only be checked by \
             introspection)",
        );
    }
    if !raw.enable_bearer_auth {
        // Session access tokens are introspected with the bearer path off.
        return Parts {
            settings: BearerSettings {
                allow_opaque: raw.allow_opaque_tokens,
                require_introspection: raw.require_token_introspection,
                ..defaults
            },
            introspection_url,
            max_identifier_bytes,
            strip_authorization,
        };
    }
    if audience.is_none_or(|a| a.trim().is_empty()) {
        r.error(
            "audience",
            "is required when enableBearerAuth is true: without it the gate cannot tell this \
             API's access tokens from ID tokens issued to the same client",
        );
    }
    let identifier_claim = raw
        .bearer_identifier_claim
        .as_deref()
        .map(str::trim)
        .unwrap_or(&defaults.identifier_claim)
        .to_owned();
    if identifier_claim.is_empty() {
        r.error("bearerIdentifierClaim", "must name a claim (default sub)");
    } else if identifier_claim.eq_ignore_ascii_case("email") {
        r.error(
            "bearerIdentifierClaim",
            "email cannot identify machine callers (client tokens carry none, and an address \
             is not a stable identity); use sub, client_id or azp",
        );
    }
    let throttle = throttle(&raw, defaults.throttle.clone(), r);
    let max_token_age = match raw.max_token_age_seconds {
        // traefikoidc: 0 falls back to the default.
        None | Some(0) => defaults.max_token_age,
        Some(s) => Duration::from_secs(s),
    };
    let settings = BearerSettings {
        enabled: true,
        identifier_claim,
        emit_www_authenticate: raw
            .bearer_emit_www_authenticate
            .unwrap_or(defaults.emit_www_authenticate),
        overrides_cookie: raw.bearer_overrides_cookie,
        max_token_age,
        throttle,
        allow_opaque: raw.allow_opaque_tokens,
        require_introspection: raw.require_token_introspection,
        ..defaults
    };
    Parts {
        settings,
        introspection_url,
        max_identifier_bytes,
        strip_authorization,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::time::Duration;

    use super::super::tests::{keys_of, load};

    const ON: &str = "enableBearerAuth: true\naudience: api\n";

    #[test]
    fn introspection_keys_apply_with_the_bearer_path_off() {
        let c = load("allowOpaqueTokens: true\nrequireTokenIntrospection: true\n").unwrap();
        let b = &c.gate.bearer;
        assert!(!b.enabled && b.allow_opaque && b.require_introspection);
    }

    #[test]
    fn refusals_name_their_key() {
        // Without ON the bearer path is off; with it, audience is set.
        let cases: &[(bool, &str, &[&str])] = &[
            (false, "enableBearerAuth: true\n", &["audience"]),
            (false, "allowOpaqueTokens: true\n", &["allowOpaqueTokens"]),
            (false, "maxIdentifierLength: 0\n", &["maxIdentifierLength"]),
            (
                false,
                "introspectionURL: http://example.com/i\n",
                &["introspectionURL"],
            ),
            (
                true,
                "bearerIdentifierClaim: email\n",
                &["bearerIdentifierClaim"],
            ),
            (
                true,
                "bearerIdentifierClaim: ''\n",
                &["bearerIdentifierClaim"],
            ),
            (true, "allowOpaqueTokens: true\n", &["allowOpaqueTokens"]),
            (
                true,
                "bearerFailureThreshold: 0\n",
                &["bearerFailureThreshold"],
            ),
            (
                true,
                "bearerFailureWindowSeconds: 0\n",
                &["bearerFailureWindowSeconds"],
            ),
            (
                true,
                "bearerFailurePenaltySeconds: 86401\n",
                &["bearerFailurePenaltySeconds"],
            ),
            (true, "maxTokenAgeSeconds: -1\n", &["maxTokenAgeSeconds"]),
            (
                true,
                "bearerFailureThreshold: 0\nbearerFailureWindowSeconds: 0\nmaxIdentifierLength: 5000\n",
                &[
                    "maxIdentifierLength",
                    "bearerFailureThreshold",
                    "bearerFailureWindowSeconds",
                ],
            ),
        ];
        for (on, yaml, keys) in cases {
            let yaml = if *on {
                format!("{ON}{yaml}")
            } else {
                (*yaml).to_owned()
            };
            assert_eq!(keys_of(&yaml), *keys, "{yaml}");
        }
    }

    #[test]
    fn zero_token_age_means_the_default() {
        let c = load(&format!("{ON}maxTokenAgeSeconds: 0\n")).unwrap();
        assert_eq!(
            c.gate.bearer.max_token_age,
            crate::gate::BearerSettings::default().max_token_age
        );
        let c = load(&format!("{ON}maxTokenAgeSeconds: 600\n")).unwrap();
        assert_eq!(c.gate.bearer.max_token_age, Duration::from_secs(600));
    }
}
