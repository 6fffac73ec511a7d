//! The provider-profile keys: which profile applies (`providerType`, read
//! by `provider`, or the issuer), Entra ID's tenant allowlist and Microsoft
//! Graph address, and `fetchUserinfo`.
//!
//! Owns the refusals of these keys, and the profile's defaults for the
//! claim keys a file leaves unset (`userIdentifierClaim`, `roleClaimName`,
//! `groupClaimName`) and for the e-mail-verified claim.

use serde::Deserialize;

use super::Report;
use super::checks::check_url;
use crate::oidc::ProviderSettings;
use crate::oidc::profile::{self, Profile};
use crate::policy::PolicySettings;

/// The profile keys as written.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct Raw {
    /// Entra ID tenants (`tid`) whose users may log in.
    #[serde(rename = "allowedTenants")]
    pub(super) allowed_tenants: Vec<String>,
    /// Merge claims from the userinfo endpoint.
    #[serde(rename = "fetchUserinfo")]
    pub(super) fetch_userinfo: Option<bool>,
    /// Microsoft Graph base URL (group overage).
    #[serde(rename = "microsoftGraphURL")]
    pub(super) graph_url: Option<String>,
}

/// The profile in force and which claim keys the file set (profile
/// defaults apply to the others).
pub(super) struct Selected {
    /// The profile.
    pub(super) profile: &'static Profile,
    /// `userIdentifierClaim`.
    pub(super) identifier: bool,
    /// `roleClaimName`.
    pub(super) role: bool,
    /// `groupClaimName`.
    pub(super) group: bool,
}

/// The profile `providerType` names, or the one the issuer implies, and
/// which claim keys the file sets.
pub(super) fn select(provider: &super::provider::Raw, policy: &super::policy::Raw) -> Selected {
    let profile = provider
        .provider_type
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .and_then(profile::by_name)
        .unwrap_or_else(|| profile::detect(provider.provider_url.trim()));
    Selected {
        profile,
        identifier: policy.user_identifier_claim.is_some(),
        role: policy.role_claim_name.is_some(),
        group: policy.group_claim_name.is_some(),
    }
}

/// Validates the profile keys into the provider and policy settings.
pub(super) fn settings(
    raw: Raw,
    set: &Selected,
    provider: &mut ProviderSettings,
    policy: &mut PolicySettings,
    r: &mut Report,
) {
    provider.profile = set.profile;
    let p = set.profile;
    if !set.identifier
        && let Some(c) = p.identifier_claim
    {
        policy.user_identifier_claim = c.into();
    }
    if !set.role
        && let Some(c) = p.role_claim
    {
        policy.role_claim = c.into();
    }
    if !set.group
        && let Some(c) = p.group_claim
    {
        policy.group_claim = c.into();
    }
    policy.email_verified_claim = p.email_verified_claim.into();

    for (i, t) in raw.allowed_tenants.iter().enumerate() {
        if t.trim().is_empty() {
            r.error(&format!("allowedTenants[{i}]"), "must not be empty");
        }
    }
    provider.allowed_tenants = raw
        .allowed_tenants
        .iter()
        .map(|t| t.trim().to_owned())
        .collect();
    if provider.allowed_tenants.is_empty()
        && p.graph_groups
        && ["/common/", "/organizations/"]
            .iter()
            .any(|seg| provider.issuer.contains(seg))
    {
        r.warn(
            "allowedTenants",
            "unset with a multi-tenant Entra ID issuer: users of every tenant can log in",
        );
    }
    provider.fetch_userinfo = raw.fetch_userinfo.unwrap_or(p.fetch_userinfo);
    if let Some(url) = raw.graph_url.as_deref().map(str::trim) {
        if r.check(check_url("microsoftGraphURL", url)).is_some() {
            provider.graph_url = url.trim_end_matches('/').to_owned();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::super::tests::{check_refusals, load};

    #[test]
    fn refusals_name_their_key() {
        let cases: &[(&str, &[&str])] = &[
            ("allowedTenants: ['']\n", &["allowedTenants[0]"]),
            ("allowedTenants: x\n", &["allowedTenants"]),
            ("fetchUserinfo: maybe\n", &["fetchUserinfo"]),
            ("microsoftGraphURL: ftp://graph\n", &["microsoftGraphURL"]),
            ("providerType: entra-ish\n", &["providerType"]),
        ];
        check_refusals(cases);
    }

    #[test]
    fn the_profile_comes_from_the_issuer_or_provider_type_and_sets_claim_defaults() {
        let c = load(
            "providerURL: https://login.microsoftonline.com/common/v2.0\n\
             allowedTenants: [72f988bf-86f1-41af-91ab-2d7cd011db47]\n",
        )
        .unwrap();
        assert_eq!(c.provider.profile.name, "entra");
        assert_eq!(c.policy.user_identifier_claim, "oid");
        assert_eq!(c.policy.email_verified_claim, "xms_edov");
        assert_eq!(c.provider.allowed_tenants.len(), 1);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let open = load("providerURL: https://login.microsoftonline.com/common/v2.0\n").unwrap();
        assert_eq!(open.warnings[0].key, "allowedTenants");

        let c = load("providerType: keycloak\nuserIdentifierClaim: preferred_username\n").unwrap();
        assert_eq!(c.provider.profile.name, "keycloak");
        assert_eq!(c.policy.role_claim, "realm_access.roles");
        assert_eq!(c.policy.user_identifier_claim, "preferred_username");
        let c = load("providerType: gitlab\n").unwrap();
        assert!(c.provider.fetch_userinfo);
        let c = load("providerType: gitlab\nfetchUserinfo: false\n").unwrap();
        assert!(!c.provider.fetch_userinfo);
        let c = load("").unwrap();
        assert_eq!(c.provider.profile.name, "oidc");
        assert_eq!(c.policy.role_claim, "roles");
        assert_eq!(c.provider.graph_url, crate::oidc::DEFAULT_GRAPH_URL);
    }
}
