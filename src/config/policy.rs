//! The authorization keys: who may pass (users, e-mail domains, roles and
//! groups), which claims name them, and what the upstream receives about
//! them (`minimalHeaders`, `stripAuthCookies`).
//!
//! Owns the refusals of these keys. `allowedClaims` and
//! `allowUnauthenticatedPreflight` are read here and passed on to the header
//! keys (`headers.rs`) and the gate.

use serde::Deserialize;

use super::Report;
use crate::policy::PolicySettings;
use crate::policy::claims::ClaimPath;

/// The authorization keys as written.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct Raw {
    /// Identifier allowlist.
    #[serde(rename = "allowedUsers")]
    pub(super) allowed_users: Vec<String>,
    /// E-mail domain allowlist.
    #[serde(rename = "allowedUserDomains")]
    pub(super) allowed_user_domains: Vec<String>,
    /// Required roles or groups.
    #[serde(rename = "allowedRolesAndGroups")]
    pub(super) allowed_roles_and_groups: Vec<String>,
    /// Identifier claim.
    #[serde(rename = "userIdentifierClaim")]
    pub(super) user_identifier_claim: Option<String>,
    /// Roles claim.
    #[serde(rename = "roleClaimName")]
    pub(super) role_claim_name: Option<String>,
    /// Groups claim.
    #[serde(rename = "groupClaimName")]
    pub(super) group_claim_name: Option<String>,
    /// Accept e-mail identities without `email_verified: true`.
    #[serde(rename = "insecureAllowUnverifiedEmail")]
    pub(super) insecure_allow_unverified_email: bool,
    /// Only X-Forwarded-User.
    #[serde(rename = "minimalHeaders")]
    pub(super) minimal_headers: bool,
    /// Remove the gate's cookies upstream (default true).
    #[serde(rename = "stripAuthCookies")]
    pub(super) strip_auth_cookies: Option<bool>,
    /// Claims header templates may read beyond the built-in allowlist.
    #[serde(rename = "allowedClaims")]
    pub(super) allowed_claims: Vec<String>,
    /// Let CORS preflight requests pass without a session.
    #[serde(rename = "allowUnauthenticatedPreflight")]
    pub(super) allow_unauthenticated_preflight: bool,
}

/// What the authorization keys configure.
pub(super) struct Parts {
    /// The policy's settings.
    pub(super) settings: PolicySettings,
    /// Remove the gate's own cookies upstream (a gate setting).
    pub(super) strip_auth_cookies: bool,
    /// `allowedClaims`, for the header templates.
    pub(super) allowed_claims: Vec<String>,
    /// `allowUnauthenticatedPreflight` (a gate setting).
    pub(super) allow_unauthenticated_preflight: bool,
}

/// Validates the authorization keys.
pub(super) fn settings(raw: Raw, r: &mut Report) -> Parts {
    let mut settings = PolicySettings {
        allowed_users: raw.allowed_users,
        allowed_domains: raw.allowed_user_domains,
        allowed_roles_and_groups: raw.allowed_roles_and_groups,
        minimal_headers: raw.minimal_headers,
        insecure_allow_unverified_email: raw.insecure_allow_unverified_email,
        ..PolicySettings::default()
    };
    for (key, value, field) in [
        (
            "userIdentifierClaim",
            raw.user_identifier_claim,
            &mut settings.user_identifier_claim,
        ),
        (
            "roleClaimName",
            raw.role_claim_name,
            &mut settings.role_claim,
        ),
        (
            "groupClaimName",
            raw.group_claim_name,
            &mut settings.group_claim,
        ),
    ] {
        match value.map(|v| v.trim().to_owned()) {
            Some(v) if v.is_empty() => r.error(key, "must name a claim"),
            Some(v) => match ClaimPath::parse(&v) {
                Ok(_) => *field = v,
                Err(e) => r.error(key, e.to_string()),
            },
            None => {}
        }
    }
    Parts {
        settings,
        strip_auth_cookies: raw.strip_auth_cookies.unwrap_or(true),
        allowed_claims: raw.allowed_claims,
        allow_unauthenticated_preflight: raw.allow_unauthenticated_preflight,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::super::tests::{check_refusals, load};

    #[test]
    fn refusals_name_their_key() {
        let cases: &[(&str, &[&str])] = &[
            ("userIdentifierClaim: ''\n", &["userIdentifierClaim"]),
            ("roleClaimName: ' '\n", &["roleClaimName"]),
            ("groupClaimName: [a]\n", &["groupClaimName"]),
            ("roleClaimName: 'realm_access..roles'\n", &["roleClaimName"]),
            (
                "groupClaimName: '\"https://x/groups'\n",
                &["groupClaimName"],
            ),
            ("allowedUsers: a@b.c\n", &["allowedUsers"]),
            ("minimalHeaders: 3\n", &["minimalHeaders"]),
        ];
        check_refusals(cases);
    }

    #[test]
    fn the_plugin_keys_land_in_the_policy() {
        let c = load(
            "userIdentifierClaim: preferred_username\nroleClaimName: realm_roles\n\
             allowedUsers: [a@b.c]\nallowedUserDomains: [example.com]\nminimalHeaders: true\n\
             stripAuthCookies: true\n",
        )
        .unwrap();
        assert_eq!(c.policy.user_identifier_claim, "preferred_username");
        assert_eq!(c.policy.role_claim, "realm_roles");
        assert!(c.policy.minimal_headers && c.gate.strip_auth_cookies);
        assert_eq!(c.policy.allowed_domains, ["example.com"]);
    }
}
