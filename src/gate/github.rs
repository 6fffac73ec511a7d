//! The session of a GitHub login: identity from GitHub's API instead of an
//! ID token, and the organization and team rules.
//!
//! The subject is the numeric account id (stable across renames); the
//! identifier is the claim `userIdentifierClaim` names among `email` (the
//! verified primary address only), `login`, `preferred_username` (the
//! login) and `sub`, and falls back to the login when that claim is empty —
//! an unverified address never names anyone. Organizations (`org`) and
//! teams (`org/team-slug`) become the session's groups, so
//! `allowedRolesAndGroups` and the group header see them too. The session
//! carries no ID token and no refresh token: it lasts until the token's
//! `expires_in` when GitHub sends one, else for the session lifetime.

use serde_json::{Map, Value};

use super::Gate;
use super::rescue::Error;
use crate::oidc::{GitHubSettings, GitHubUser, TokenResponse};
use crate::policy::Forbid;
use crate::session::{Session, random_token};

impl Gate {
    /// Reads who holds the token at GitHub, applies the organization and
    /// team rules, and builds the session.
    pub(super) async fn session_from_github(
        &self,
        tokens: TokenResponse,
    ) -> Result<Session, Error> {
        let provider = &self.inner.provider;
        let user = provider.github_user(&tokens.access_token).await?;
        if let Some(gh) = provider.github() {
            check_memberships(gh, &user).map_err(|why| Error::Forbidden {
                why,
                user: user.login.clone(),
            })?;
        }
        let settings = self.inner.policy.settings();
        let claims = claims_of(&user);
        let claim = settings.user_identifier_claim.as_str();
        let named = claims
            .get(claim)
            .and_then(Value::as_str)
            .is_some_and(|v| !v.is_empty());
        let mut identity = self
            .inner
            .policy
            .identity_from_claims(&claims, if named { claim } else { "login" })?;
        identity.groups = user
            .organizations
            .iter()
            .chain(&user.teams)
            .cloned()
            .collect();
        let now = self.now();
        let lifetime = tokens
            .expires_in
            .unwrap_or_else(|| self.inner.sessions.max_age_secs());
        tracing::debug!(login = %user.login, "GitHub identity read");
        Ok(Session {
            sid: random_token(crate::session::SID_BYTES)?,
            created_at: now,
            renewed_at: None,
            identifier: identity.identifier,
            subject: identity.subject,
            idp_sid: None,
            email: identity.email,
            groups: identity.groups,
            roles: identity.roles,
            id_token: None,
            access_token: Some(tokens.access_token),
            refresh_token: None,
            refresh_token_issued_at: None,
            expires_at: now.saturating_add(lifetime),
            server_secret: None,
        })
    }
}

/// The claims a GitHub account stands for, in OpenID Connect names where
/// one fits: `sub` (the id), `login` and `preferred_username`, `name`, and
/// `email` with `email_verified` only for the verified primary address.
fn claims_of(user: &GitHubUser) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("sub".into(), user.id.to_string().into());
    m.insert("login".into(), user.login.clone().into());
    m.insert("preferred_username".into(), user.login.clone().into());
    if let Some(name) = &user.name {
        m.insert("name".into(), name.clone().into());
    }
    if let Some(email) = &user.verified_email {
        m.insert("email".into(), email.clone().into());
        m.insert("email_verified".into(), true.into());
    }
    m
}

/// The organization rule (member of one allowed organization) and the team
/// rule (member of one allowed team), each when configured; both when both
/// are.
fn check_memberships(gh: &GitHubSettings, user: &GitHubUser) -> Result<(), Forbid> {
    if gh.reads_organizations()
        && !user
            .organizations
            .iter()
            .any(|o| gh.allowed_organizations.contains(o))
    {
        return Err(Forbid::Organization);
    }
    if gh.reads_teams() && !user.teams.iter().any(|t| gh.allowed_teams.contains(t)) {
        return Err(Forbid::Team);
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn user(orgs: &[&str], teams: &[&str]) -> GitHubUser {
        GitHubUser {
            id: 7,
            login: "octo".into(),
            name: None,
            verified_email: None,
            organizations: orgs.iter().map(|s| (*s).to_owned()).collect(),
            teams: teams.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn membership_rules() {
        let mut gh = GitHubSettings::github_com();
        assert_eq!(check_memberships(&gh, &user(&[], &[])), Ok(()));
        gh.allowed_organizations = vec!["acme".into()];
        assert_eq!(
            check_memberships(&gh, &user(&["other"], &[])),
            Err(Forbid::Organization)
        );
        assert_eq!(
            check_memberships(&gh, &user(&["other", "acme"], &[])),
            Ok(())
        );
        gh.allowed_teams = vec!["acme/ops".into()];
        assert_eq!(
            check_memberships(&gh, &user(&["acme"], &["acme/dev"])),
            Err(Forbid::Team)
        );
        assert_eq!(
            check_memberships(&gh, &user(&["acme"], &["acme/ops"])),
            Ok(())
        );
    }

    #[test]
    fn unverified_email_is_not_a_claim() {
        let c = claims_of(&user(&[], &[]));
        assert!(c.get("email").is_none());
        assert_eq!(c["sub"], "7");
        assert_eq!(c["login"], "octo");
    }
}
