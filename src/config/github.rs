//! The GitHub keys: `providerType: github` (or a `providerURL` of
//! `https://github.com`), `allowedOrganizations`, `allowedTeams` and
//! `githubAPIURL`.
//!
//! Owns the refusals of these keys and the scopes a GitHub login asks for.
//! GitHub speaks OAuth 2.0 without OpenID Connect, so its scopes are its
//! own: `read:user user:email` by default, plus `read:org` when an
//! organization or team rule needs the memberships; `scopes` adds to them,
//! or replaces them with `overrideScopes`, and `openid` is not required.

use serde::Deserialize;

use super::Report;
use super::checks::{dedup, optional_url};
use crate::oidc::{
    DEFAULT_GITHUB_SCOPES, GITHUB_API_URL, GITHUB_ORG_SCOPE, GITHUB_WEB_URL, GitHubSettings,
};

/// The value of `providerType` that selects GitHub.
pub(super) const GITHUB_PROVIDER_TYPE: &str = "github";

/// The GitHub keys as written.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct Raw {
    /// Organization logins, one of which a user must belong to.
    #[serde(rename = "allowedOrganizations")]
    pub(super) allowed_organizations: Vec<String>,
    /// Teams (`org/team-slug`), one of which a user must belong to.
    #[serde(rename = "allowedTeams")]
    pub(super) allowed_teams: Vec<String>,
    /// The REST API base (default `https://api.github.com` for github.com,
    /// `<providerURL>/api/v3` for GitHub Enterprise Server).
    #[serde(rename = "githubAPIURL")]
    pub(super) api_url: Option<String>,
}

/// True when the provider keys select GitHub: `providerType: github`, or a
/// `providerURL` of `https://github.com` without a `providerType`.
pub(super) fn is_github(provider_url: &str, provider_type: Option<&str>) -> bool {
    match provider_type.map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) => t.eq_ignore_ascii_case(GITHUB_PROVIDER_TYPE),
        None => provider_url.trim().trim_end_matches('/') == GITHUB_WEB_URL,
    }
}

/// What the provider keys say that GitHub needs.
pub(super) struct ProviderKeys<'a> {
    /// The issuer (`providerURL` without a trailing slash).
    pub(super) issuer: &'a str,
    /// Whether the provider keys select GitHub.
    pub(super) selected: bool,
    /// `scopes` as written.
    pub(super) scopes: &'a [String],
    /// `overrideScopes`.
    pub(super) override_scopes: bool,
}

/// The GitHub settings and the scopes to request, when GitHub is selected.
pub(super) fn settings(
    raw: Raw,
    keys: &ProviderKeys<'_>,
    r: &mut Report,
) -> Option<(GitHubSettings, Vec<String>)> {
    let orgs: Vec<String> = dedup(raw.allowed_organizations)
        .into_iter()
        .map(|o| o.to_ascii_lowercase())
        .collect();
    let teams: Vec<String> = dedup(raw.allowed_teams)
        .into_iter()
        .map(|t| t.to_ascii_lowercase())
        .collect();
    let api_url = optional_url("githubAPIURL", raw.api_url.as_deref(), r);
    if !keys.selected {
        for (key, set) in [
            ("allowedOrganizations", !orgs.is_empty()),
            ("allowedTeams", !teams.is_empty()),
            ("githubAPIURL", api_url.is_some()),
        ] {
            if set {
                r.error(
                    key,
                    "applies only to GitHub logins (providerType: github or providerURL: \
                     https://github.com)",
                );
            }
        }
        return None;
    }
    for (i, t) in teams.iter().enumerate() {
        let ok = t
            .split_once('/')
            .is_some_and(|(org, slug)| is_slug(org) && is_slug(slug));
        if !ok {
            r.error(
                &format!("allowedTeams[{i}]"),
                format!("expected org/team-slug, got {t:?}"),
            );
        }
    }
    for (i, o) in orgs.iter().enumerate() {
        if !is_slug(o) {
            r.error(
                &format!("allowedOrganizations[{i}]"),
                format!("expected an organization login, got {o:?}"),
            );
        }
    }
    let api_url = api_url.unwrap_or_else(|| {
        if keys.issuer == GITHUB_WEB_URL {
            GITHUB_API_URL.to_owned()
        } else {
            format!("{}/api/v3", keys.issuer)
        }
    });
    let mut gh = GitHubSettings::at(keys.issuer, &api_url);
    gh.allowed_organizations = orgs;
    gh.allowed_teams = teams;
    let scopes = if keys.override_scopes {
        let scopes = dedup(keys.scopes.to_vec());
        if scopes.is_empty() {
            r.error("scopes", "overrideScopes is true but scopes is empty");
        }
        scopes
    } else {
        let needs_org = gh.reads_organizations() || gh.reads_teams();
        dedup(
            DEFAULT_GITHUB_SCOPES
                .iter()
                .map(|s| (*s).to_owned())
                .chain(needs_org.then(|| GITHUB_ORG_SCOPE.to_owned()))
                .chain(keys.scopes.iter().filter(|s| *s != "openid").cloned())
                .collect(),
        )
    };
    Some((gh, scopes))
}

/// An organization login or team slug: letters, digits, `-`, `_`, `.`.
fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::super::tests::{check_refusals, load};

    #[test]
    fn refusals_name_their_key() {
        let cases: &[(&str, &[&str])] = &[
            ("allowedOrganizations: [acme]\n", &["allowedOrganizations"]),
            ("allowedTeams: [acme/ops]\n", &["allowedTeams"]),
            ("githubAPIURL: https://api.example\n", &["githubAPIURL"]),
            (
                "providerType: github\nallowedTeams: [ops]\n",
                &["allowedTeams[0]"],
            ),
            (
                "providerType: github\nallowedOrganizations: ['a b']\n",
                &["allowedOrganizations[0]"],
            ),
            (
                "providerType: github\ngithubAPIURL: http://api.example\n",
                &["githubAPIURL"],
            ),
            ("providerType: gitbub\n", &["providerType"]),
        ];
        check_refusals(cases);
    }

    #[test]
    fn github_com_is_selected_by_its_url_and_asks_for_its_own_scopes() {
        let c = load(
            "providerURL: https://github.com\nallowedOrganizations: [Acme]\n\
             allowedTeams: [Acme/Ops]\nscopes: [openid, repo]\n",
        )
        .unwrap();
        let gh = c.provider.github.expect("github selected");
        assert_eq!(gh.api_url, "https://api.github.com");
        assert_eq!(gh.allowed_organizations, ["acme"]);
        assert_eq!(gh.allowed_teams, ["acme/ops"]);
        assert_eq!(
            c.gate.scopes,
            ["read:user", "user:email", "read:org", "repo"]
        );
    }

    #[test]
    fn enterprise_server_api_is_under_api_v3() {
        let c = load("providerURL: https://ghe.example\nproviderType: github\n").unwrap();
        let gh = c.provider.github.expect("github selected");
        assert_eq!(gh.api_url, "https://ghe.example/api/v3");
        assert_eq!(c.gate.scopes, ["read:user", "user:email"]);
        let c = load("providerURL: https://idp.example.com\n").unwrap();
        assert!(c.provider.github.is_none());
    }
}
