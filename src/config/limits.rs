//! The rate-limit keys: `rateLimit` and `perSourceLoginRateLimit`, token
//! buckets per source address on new logins and the gate's own endpoints.
//!
//! Owns the refusals of these keys.

use serde::Deserialize;

use super::Report;
use crate::gate::{Rate, RateLimitSettings};

/// Smallest `rateLimit` accepted (the plugin's own lower bound).
pub(super) const MIN_RATE_LIMIT: u32 = 10;

/// The rate-limit keys as written.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct Raw {
    /// Burst per source, refilled at one a second, on new logins and the
    /// gate's own endpoints (unset: off).
    #[serde(rename = "rateLimit")]
    pub(super) rate_limit: Option<u32>,
    /// New logins per source and minute, burst as many (0 or unset: off).
    #[serde(rename = "perSourceLoginRateLimit")]
    pub(super) per_source_login_rate_limit: Option<u32>,
}

/// Validates the rate-limit keys.
pub(super) fn settings(raw: Raw, r: &mut Report) -> RateLimitSettings {
    let endpoints = match raw.rate_limit {
        Some(n) if n < MIN_RATE_LIMIT => {
            r.error(
                "rateLimit",
                format!("must be at least {MIN_RATE_LIMIT} (a burst per source address)"),
            );
            None
        }
        Some(n) => Some(Rate::per_second_with_burst(n)),
        None => None,
    };
    let login = raw
        .per_source_login_rate_limit
        .filter(|n| *n > 0)
        .map(Rate::per_minute);
    RateLimitSettings { login, endpoints }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::time::Duration;

    use super::super::tests::{check_refusals, load};
    use crate::gate::{Rate, RateLimitSettings};

    #[test]
    fn refusals_name_their_key() {
        let cases: &[(&str, &[&str])] = &[
            ("rateLimit: 5\n", &["rateLimit"]),
            ("rateLimit: -1\n", &["rateLimit"]),
            (
                "perSourceLoginRateLimit: many\n",
                &["perSourceLoginRateLimit"],
            ),
        ];
        check_refusals(cases);
    }

    #[test]
    fn limits_are_off_unless_set_and_take_effect_without_a_warning() {
        let c = load("").unwrap();
        assert_eq!(c.gate.rate_limits, RateLimitSettings::default());
        let c = load("rateLimit: 100\nperSourceLoginRateLimit: 30\n").unwrap();
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(
            c.gate.rate_limits,
            RateLimitSettings {
                login: Some(Rate {
                    burst: 30,
                    interval: Duration::from_secs(2)
                }),
                endpoints: Some(Rate {
                    burst: 100,
                    interval: Duration::from_secs(1)
                }),
            }
        );
        let c = load("perSourceLoginRateLimit: 0\n").unwrap();
        assert_eq!(c.gate.rate_limits.login, None);
    }
}
