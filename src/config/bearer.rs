//! Validation of the bearer (machine-to-machine) keys into
//! [`BearerSettings`].
//!
//! Owns the start-up refusals of the bearer path: no `audience` (the path
//! could not tell this API's access tokens from ID tokens issued to the same
//! client), `bearerIdentifierClaim: email` (an address is not a stable
//! machine identity), zero limits, and opaque tokens without introspection.

use std::time::Duration;

use super::{ConfigError, RawConfig, bad, check_url};
use crate::gate::BearerSettings;

/// Longest `maxIdentifierLength` accepted.
pub const MAX_IDENTIFIER_LENGTH_LIMIT: u64 = 4096;
/// Longest window or penalty accepted for the bearer failure throttle.
pub const MAX_BEARER_THROTTLE_SECONDS: u64 = 86_400;

/// What the bearer keys configure outside the gate.
#[derive(Debug)]
pub(super) struct BearerKeys {
    /// The gate's bearer settings.
    pub(super) settings: BearerSettings,
    /// `introspectionURL`, for the provider.
    pub(super) introspection_url: Option<String>,
    /// `maxIdentifierLength`, for the policy.
    pub(super) max_identifier_bytes: Option<usize>,
}

fn positive_secs(key: &str, v: Option<u64>, default: Duration) -> Result<Duration, ConfigError> {
    match v {
        None => Ok(default),
        Some(0) => Err(bad(key, "must be at least 1 second")),
        Some(s) => Ok(Duration::from_secs(s)),
    }
}

fn bounded_secs(key: &str, v: Option<u64>, default: Duration) -> Result<Duration, ConfigError> {
    let d = positive_secs(key, v, default)?;
    if d.as_secs() > MAX_BEARER_THROTTLE_SECONDS {
        return Err(bad(
            key,
            format!("must be at most {MAX_BEARER_THROTTLE_SECONDS} seconds"),
        ));
    }
    Ok(d)
}

/// Validates the bearer keys of `raw`.
pub(super) fn bearer_keys(raw: &RawConfig) -> Result<BearerKeys, ConfigError> {
    let max_identifier_bytes = match raw.max_identifier_length {
        None => None,
        Some(n) if (1..=MAX_IDENTIFIER_LENGTH_LIMIT).contains(&n) => usize::try_from(n).ok(),
        Some(_) => {
            return Err(bad(
                "maxIdentifierLength",
                format!("must be between 1 and {MAX_IDENTIFIER_LENGTH_LIMIT}"),
            ));
        }
    };
    let introspection_url = raw
        .introspection_url
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned);
    if let Some(u) = &introspection_url {
        check_url("introspectionURL", u)?;
    }
    let defaults = BearerSettings::default();
    if !raw.enable_bearer_auth {
        for (key, set) in [
            ("allowOpaqueTokens", raw.allow_opaque_tokens),
            ("requireTokenIntrospection", raw.require_token_introspection),
        ] {
            if set {
                return Err(bad(key, "has no effect unless enableBearerAuth is true"));
            }
        }
        return Ok(BearerKeys {
            settings: defaults,
            introspection_url,
            max_identifier_bytes,
        });
    }
    if raw.audience.as_deref().is_none_or(|a| a.trim().is_empty()) {
        return Err(bad(
            "audience",
            "is required when enableBearerAuth is true: without it the gate cannot tell this \
             API's access tokens from ID tokens issued to the same client",
        ));
    }
    let identifier_claim = raw
        .bearer_identifier_claim
        .as_deref()
        .map(str::trim)
        .unwrap_or(&defaults.identifier_claim)
        .to_owned();
    if identifier_claim.is_empty() {
        return Err(bad(
            "bearerIdentifierClaim",
            "must name a claim (default sub)",
        ));
    }
    if identifier_claim.eq_ignore_ascii_case("email") {
        return Err(bad(
            "bearerIdentifierClaim",
            "email cannot identify machine callers (client tokens carry none, and an address \
             is not a stable identity); use sub, client_id or azp",
        ));
    }
    if raw.allow_opaque_tokens && !raw.require_token_introspection {
        return Err(bad(
            "allowOpaqueTokens",
            "needs requireTokenIntrospection: true (opaque tokens can only be checked by \
             introspection)",
        ));
    }
    let threshold = match raw.bearer_failure_threshold {
        None => defaults.throttle.threshold,
        Some(0) => return Err(bad("bearerFailureThreshold", "must be at least 1")),
        Some(n) => n,
    };
    let mut throttle = defaults.throttle.clone();
    throttle.threshold = threshold;
    throttle.window = bounded_secs(
        "bearerFailureWindowSeconds",
        raw.bearer_failure_window_seconds,
        throttle.window,
    )?;
    throttle.penalty = bounded_secs(
        "bearerFailurePenaltySeconds",
        raw.bearer_failure_penalty_seconds,
        throttle.penalty,
    )?;
    let settings = BearerSettings {
        enabled: true,
        identifier_claim,
        strip_authorization: raw
            .strip_authorization_header
            .unwrap_or(defaults.strip_authorization),
        emit_www_authenticate: raw
            .bearer_emit_www_authenticate
            .unwrap_or(defaults.emit_www_authenticate),
        overrides_cookie: raw.bearer_overrides_cookie,
        max_token_age: positive_secs(
            "maxTokenAgeSeconds",
            raw.max_token_age_seconds,
            defaults.max_token_age,
        )?,
        throttle,
        allow_opaque: raw.allow_opaque_tokens,
        require_introspection: raw.require_token_introspection,
        ..defaults
    };
    Ok(BearerKeys {
        settings,
        introspection_url,
        max_identifier_bytes,
    })
}
