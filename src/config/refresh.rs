//! The refresh keys: when tokens are refreshed, how old a refresh token may
//! be, and the token-endpoint breaker.
//!
//! Owns the refusals of these keys.

use std::time::Duration;

use serde::Deserialize;

use super::Report;
use crate::gate::RefreshSettings;

/// Longest accepted `refreshGracePeriodSeconds`.
const MAX_GRACE_SECONDS: u64 = 86_400;

/// The refresh keys as written.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct Raw {
    /// Refresh this many seconds before tokens expire (default 60).
    #[serde(rename = "refreshGracePeriodSeconds")]
    pub(super) refresh_grace_period_seconds: Option<u64>,
    /// Refresh tokens older than this are not used (default 21600; 0 disables).
    #[serde(rename = "maxRefreshTokenAgeSeconds")]
    pub(super) max_refresh_token_age_seconds: Option<u64>,
    /// Consecutive token-endpoint failures that open the refresh breaker (default 5).
    #[serde(rename = "refreshBreakerThreshold")]
    pub(super) refresh_breaker_threshold: Option<u32>,
    /// Seconds the refresh breaker stays open (default 30).
    #[serde(rename = "refreshBreakerOpenSeconds")]
    pub(super) refresh_breaker_open_seconds: Option<u64>,
}

/// Validates the refresh keys.
pub(super) fn settings(raw: Raw, r: &mut Report) -> RefreshSettings {
    let mut refresh = RefreshSettings::default();
    match raw.refresh_grace_period_seconds {
        Some(g) if g > MAX_GRACE_SECONDS => r.error(
            "refreshGracePeriodSeconds",
            format!("must be at most {MAX_GRACE_SECONDS}"),
        ),
        // traefikoidc: 0 means the default.
        Some(g) if g > 0 => refresh.grace = Duration::from_secs(g),
        _ => {}
    }
    if let Some(age) = raw.max_refresh_token_age_seconds {
        refresh.max_refresh_token_age = (age > 0).then(|| Duration::from_secs(age));
    }
    match raw.refresh_breaker_threshold {
        Some(0) => r.error("refreshBreakerThreshold", "must be at least 1"),
        Some(t) => refresh.breaker.failure_threshold = t,
        None => {}
    }
    match raw.refresh_breaker_open_seconds {
        Some(0) => r.error("refreshBreakerOpenSeconds", "must be at least 1"),
        Some(secs) => refresh.breaker.recovery_timeout = Duration::from_secs(secs),
        None => {}
    }
    refresh
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::time::Duration;

    use super::super::tests::{check_refusals, load};

    #[test]
    fn refusals_name_their_key() {
        let cases: &[(&str, &[&str])] = &[
            (
                "refreshGracePeriodSeconds: 86401\n",
                &["refreshGracePeriodSeconds"],
            ),
            (
                "refreshGracePeriodSeconds: -1\n",
                &["refreshGracePeriodSeconds"],
            ),
            ("refreshBreakerThreshold: 0\n", &["refreshBreakerThreshold"]),
            (
                "refreshBreakerOpenSeconds: 0\n",
                &["refreshBreakerOpenSeconds"],
            ),
            (
                "refreshBreakerThreshold: 0\nrefreshBreakerOpenSeconds: 0\n",
                &["refreshBreakerThreshold", "refreshBreakerOpenSeconds"],
            ),
        ];
        check_refusals(cases);
    }

    #[test]
    fn zero_means_the_default_or_off_as_in_the_plugin() {
        let c = load("refreshGracePeriodSeconds: 0\nmaxRefreshTokenAgeSeconds: 0\n").unwrap();
        let d = crate::gate::RefreshSettings::default();
        assert_eq!(c.gate.refresh.grace, d.grace);
        assert_eq!(c.gate.refresh.max_refresh_token_age, None);
        let c = load("refreshGracePeriodSeconds: 90\n").unwrap();
        assert_eq!(c.gate.refresh.grace, Duration::from_secs(90));
    }
}
