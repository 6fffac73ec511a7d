//! Provider profiles: what each well-known OpenID Provider does differently,
//! as data.
//!
//! Owns the table of profiles and the few rules they select: how the
//! configured issuer matches discovery's and a token's `iss` (Entra ID's
//! `{tenantid}` template, Google's bare host), which access tokens a client
//! can verify (Entra ID's Graph tokens and the tokens of Okta's org
//! authorization server cannot be), how offline access is
//! asked for (Google's `access_type=offline` and `prompt=consent`), the
//! claim defaults, and where RP-initiated logout goes when discovery names
//! no `end_session_endpoint` (Cognito, Auth0). The engine asks these
//! questions; it never branches on a provider's name.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

/// The tenant id of Microsoft personal accounts (what `consumers` stands for).
pub const MSA_TENANT_ID: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";
/// The application id of Microsoft Graph (the `aud` of Graph access tokens).
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
/// The placeholder of Entra ID's multi-tenant issuer.
pub const TENANT_PLACEHOLDER: &str = "{tenantid}";

/// How the configured issuer relates to discovery's and to tokens'.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IssuerRule {
    /// Equal, byte for byte (a trailing slash aside).
    Exact,
    /// Entra ID: discovery's issuer may hold `{tenantid}`, which a token's
    /// `tid` fills; `common`, `organizations` and `consumers` stand in
    /// the configured URL where discovery has the template or a tenant.
    EntraTenant,
    /// Google: tokens may say `accounts.google.com` without the scheme.
    GoogleBareHost,
}

/// Which access tokens the gate verifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessTokenRule {
    /// Every JWT access token is verified.
    VerifyJwt,
    /// Entra ID: a token with a `nonce` header parameter or a Microsoft
    /// Graph audience is for Graph alone and is never verified here.
    EntraGraphOpaque,
    /// Okta: a token of the org authorization server (its `iss` has no
    /// `/oauth2/` path, unlike a custom authorization server's
    /// `https://{domain}/oauth2/{id}`) is for Okta's own APIs, signed by keys
    /// no client is given, and is never verified here.
    OktaOrgOpaque,
}

/// How a refresh token is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OfflineRule {
    /// The `offline_access` scope, when discovery advertises it.
    Scope,
    /// Google: `access_type=offline` and `prompt=consent`, never the scope.
    GoogleParams,
}

/// Where RP-initiated logout goes when discovery has no
/// `end_session_endpoint`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogoutRule {
    /// Nowhere: the browser goes straight to the post-logout address.
    DiscoveredOnly,
    /// Cognito: `https://{domain}/logout?client_id=…&logout_uri=…` on the
    /// host of the authorization endpoint.
    Cognito,
    /// Auth0: `{issuer}/v2/logout?client_id=…&returnTo=…`.
    Auth0V2,
}

/// One provider's differences from plain OpenID Connect.
#[derive(Debug, PartialEq, Eq)]
pub struct Profile {
    /// The `providerType` value naming it.
    pub name: &'static str,
    /// Issuer matching.
    pub issuer: IssuerRule,
    /// Access tokens the gate may verify.
    pub access_tokens: AccessTokenRule,
    /// How offline access is requested.
    pub offline: OfflineRule,
    /// Logout without a discovered end-session endpoint.
    pub logout: LogoutRule,
    /// Default `userIdentifierClaim`, when not the generic `email`.
    pub identifier_claim: Option<&'static str>,
    /// Default `roleClaimName`, when not the generic `roles`.
    pub role_claim: Option<&'static str>,
    /// Default `groupClaimName`, when not the generic `groups`.
    pub group_claim: Option<&'static str>,
    /// The claim whose `true` says the provider verified `email`.
    pub email_verified_claim: &'static str,
    /// Default of `fetchUserinfo` (claims only userinfo has).
    pub fetch_userinfo: bool,
    /// Reads group overage from Microsoft Graph.
    pub graph_groups: bool,
}

const GENERIC: Profile = Profile {
    name: "oidc",
    issuer: IssuerRule::Exact,
    access_tokens: AccessTokenRule::VerifyJwt,
    offline: OfflineRule::Scope,
    logout: LogoutRule::DiscoveredOnly,
    identifier_claim: None,
    role_claim: None,
    group_claim: None,
    email_verified_claim: "email_verified",
    fetch_userinfo: false,
    graph_groups: false,
};

/// Every profile; the first is the generic one.
pub static PROFILES: &[Profile] = &[
    GENERIC,
    Profile {
        name: "entra",
        issuer: IssuerRule::EntraTenant,
        access_tokens: AccessTokenRule::EntraGraphOpaque,
        // `oid` names the user within a tenant for good; `email` may be
        // unverified and `preferred_username` can be reassigned.
        identifier_claim: Some("oid"),
        email_verified_claim: "xms_edov",
        graph_groups: true,
        ..GENERIC
    },
    Profile {
        name: "google",
        issuer: IssuerRule::GoogleBareHost,
        offline: OfflineRule::GoogleParams,
        ..GENERIC
    },
    Profile {
        name: "keycloak",
        role_claim: Some("realm_access.roles"),
        ..GENERIC
    },
    Profile {
        name: "auth0",
        logout: LogoutRule::Auth0V2,
        ..GENERIC
    },
    Profile {
        name: "okta",
        access_tokens: AccessTokenRule::OktaOrgOpaque,
        ..GENERIC
    },
    Profile {
        name: "cognito",
        logout: LogoutRule::Cognito,
        group_claim: Some("cognito:groups"),
        ..GENERIC
    },
    Profile {
        name: "gitlab",
        // Transitive groups and role claims are in userinfo only.
        fetch_userinfo: true,
        group_claim: Some("groups"),
        ..GENERIC
    },
    Profile {
        name: "authentik",
        ..GENERIC
    },
    Profile {
        name: "zitadel",
        role_claim: Some("urn:zitadel:iam:org:project:roles"),
        ..GENERIC
    },
];

/// The generic OpenID Connect profile.
pub fn generic() -> &'static Profile {
    &PROFILES[0]
}

/// The profile named `name` (`providerType`), case-insensitively.
pub fn by_name(name: &str) -> Option<&'static Profile> {
    let name = name.trim().to_ascii_lowercase();
    let name = match name.as_str() {
        "generic" => "oidc",
        "azure" | "entraid" | "microsoft" => "entra",
        other => other,
    };
    PROFILES.iter().find(|p| p.name == name)
}

/// The profile an issuer URL implies, the generic one when none does.
pub fn detect(issuer: &str) -> &'static Profile {
    let Ok(url) = url::Url::parse(issuer) else {
        return &PROFILES[0];
    };
    let host = url.host_str().unwrap_or("").to_ascii_lowercase();
    let path = url.path();
    let name = if matches!(
        host.as_str(),
        "login.microsoftonline.com"
            | "login.microsoftonline.us"
            | "login.partner.microsoftonline.cn"
    ) || host.ends_with(".ciamlogin.com")
    {
        "entra"
    } else if host == "accounts.google.com" {
        "google"
    } else if host.ends_with(".auth0.com") {
        "auth0"
    } else if host.ends_with(".okta.com") || host.ends_with(".oktapreview.com") {
        "okta"
    } else if host.starts_with("cognito-idp.") && host.ends_with(".amazonaws.com") {
        "cognito"
    } else if host == "gitlab.com" {
        "gitlab"
    } else if host.ends_with(".zitadel.cloud") {
        "zitadel"
    } else if path.starts_with("/application/o/") {
        "authentik"
    } else if path.starts_with("/realms/") || path.starts_with("/auth/realms/") {
        "keycloak"
    } else {
        "oidc"
    };
    by_name(name).unwrap_or(&PROFILES[0])
}

impl Profile {
    /// True when discovery's `issuer` is the one `configured` stands for.
    pub fn issuer_matches(&self, configured: &str, discovered: &str) -> bool {
        let (c, d) = (
            configured.trim_end_matches('/'),
            discovered.trim_end_matches('/'),
        );
        if c == d {
            return true;
        }
        match self.issuer {
            IssuerRule::Exact | IssuerRule::GoogleBareHost => false,
            IssuerRule::EntraTenant => {
                let (cs, ds): (Vec<&str>, Vec<&str>) =
                    (c.split('/').collect(), d.split('/').collect());
                cs.len() == ds.len()
                    && cs.iter().zip(&ds).all(|(c, d)| {
                        c == d
                            || (*d == TENANT_PLACEHOLDER
                                && matches!(*c, "common" | "organizations"))
                            || (*c == "consumers" && *d == MSA_TENANT_ID)
                    })
            }
        }
    }

    /// The issuer a token with these claims must carry, given discovery's
    /// `issuer`: Entra ID's template filled with the token's `tid`;
    /// Google's bare host when the token uses it.
    pub fn expected_issuer(
        &self,
        discovered: &str,
        token_iss: &str,
        claims: &Map<String, Value>,
    ) -> String {
        match self.issuer {
            IssuerRule::EntraTenant if discovered.contains(TENANT_PLACEHOLDER) => {
                match claims.get("tid").and_then(Value::as_str) {
                    Some(tid) if is_tenant_id(tid) => discovered.replace(TENANT_PLACEHOLDER, tid),
                    // No usable tid: nothing can match the template.
                    _ => discovered.to_owned(),
                }
            }
            IssuerRule::GoogleBareHost
                if discovered == "https://accounts.google.com"
                    && token_iss == "accounts.google.com" =>
            {
                token_iss.to_owned()
            }
            _ => discovered.to_owned(),
        }
    }

    /// True when `raw` is an access token this profile says a client cannot
    /// verify (looked at without verification: the answer only decides to
    /// leave the token alone, never to trust it).
    pub fn is_unverifiable_access_token(&self, raw: &str) -> bool {
        match self.access_tokens {
            AccessTokenRule::VerifyJwt => false,
            AccessTokenRule::EntraGraphOpaque => {
                let mut parts = raw.split('.');
                let header = parts.next().and_then(decode_segment);
                let claims = parts.next().and_then(decode_segment);
                let nonce = header.as_ref().is_some_and(|h| h.contains_key("nonce"));
                let graph = claims
                    .as_ref()
                    .and_then(|c| c.get("aud"))
                    .is_some_and(|aud| {
                        let is_graph = |a: &Value| {
                            a.as_str().is_some_and(|a| {
                                a == GRAPH_APP_ID
                                    || a.trim_end_matches('/')
                                        .eq_ignore_ascii_case("https://graph.microsoft.com")
                            })
                        };
                        match aud {
                            Value::Array(v) => v.iter().any(is_graph),
                            other => is_graph(other),
                        }
                    });
                nonce || graph
            }
            AccessTokenRule::OktaOrgOpaque => raw
                .split('.')
                .nth(1)
                .and_then(decode_segment)
                .and_then(|c| c.get("iss").and_then(Value::as_str).map(is_okta_org_issuer))
                .unwrap_or(false),
        }
    }

    /// The logout address when discovery names no end-session endpoint.
    pub fn fallback_logout(
        &self,
        issuer: &str,
        authorization_endpoint: &str,
        client_id: &str,
        return_to: &str,
    ) -> Option<String> {
        match self.logout {
            LogoutRule::DiscoveredOnly => None,
            LogoutRule::Cognito => {
                let mut url = url::Url::parse(authorization_endpoint).ok()?;
                url.set_path("/logout");
                url.set_query(None);
                url.query_pairs_mut()
                    .append_pair("client_id", client_id)
                    .append_pair("logout_uri", return_to);
                Some(url.to_string())
            }
            LogoutRule::Auth0V2 => {
                let mut url = url::Url::parse(issuer).ok()?;
                url.set_path("/v2/logout");
                url.query_pairs_mut()
                    .append_pair("client_id", client_id)
                    .append_pair("returnTo", return_to);
                Some(url.to_string())
            }
        }
    }
}

/// True when `tid` has the shape of a tenant id (a GUID), so that it can be
/// put into an issuer.
fn is_tenant_id(tid: &str) -> bool {
    tid.len() == 36
        && tid.bytes().enumerate().all(|(i, b)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                b == b'-'
            } else {
                b.is_ascii_hexdigit()
            }
        })
}

/// True for the issuer of Okta's org authorization server (`https://{domain}`),
/// false for a custom authorization server's (`https://{domain}/oauth2/{id}`).
fn is_okta_org_issuer(iss: &str) -> bool {
    url::Url::parse(iss).is_ok_and(|u| !u.path().starts_with("/oauth2/"))
}

/// A JWS segment as a JSON object, unverified.
fn decode_segment(seg: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(seg).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    const TID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

    #[test]
    fn issuers_select_their_profile() {
        for (issuer, name) in [
            ("https://login.microsoftonline.com/common/v2.0", "entra"),
            ("https://accounts.google.com", "google"),
            ("https://sso.example.com/realms/main", "keycloak"),
            ("https://sso.example.com/auth/realms/main", "keycloak"),
            ("https://tenant.eu.auth0.com/", "auth0"),
            ("https://acme.okta.com/oauth2/default", "okta"),
            (
                "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC",
                "cognito",
            ),
            ("https://gitlab.com", "gitlab"),
            (
                "https://auth.example.com/application/o/grafana/",
                "authentik",
            ),
            ("https://acme-x1.zitadel.cloud", "zitadel"),
            ("https://idp.example.com", "oidc"),
            ("not a url", "oidc"),
        ] {
            assert_eq!(detect(issuer).name, name, "{issuer}");
        }
        assert_eq!(by_name("Azure").unwrap().name, "entra");
        assert!(by_name("nope").is_none());
    }

    #[test]
    fn entra_issuer_matching() {
        let entra = by_name("entra").unwrap();
        let tpl = "https://login.microsoftonline.com/{tenantid}/v2.0";
        let single = format!("https://login.microsoftonline.com/{TID}/v2.0");
        for (configured, discovered, ok) in [
            ("https://login.microsoftonline.com/common/v2.0", tpl, true),
            (
                "https://login.microsoftonline.com/organizations/v2.0",
                tpl,
                true,
            ),
            (single.as_str(), single.as_str(), true),
            (
                "https://login.microsoftonline.com/consumers/v2.0",
                "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0",
                true,
            ),
            // A tenant-specific URL never matches the template, and the
            // template never stands for another host or path.
            (single.as_str(), tpl, false),
            (
                "https://login.microsoftonline.com/common/v2.0",
                "https://evil.example/{tenantid}/v2.0",
                false,
            ),
            ("https://login.microsoftonline.com/common", tpl, false),
        ] {
            assert_eq!(
                entra.issuer_matches(configured, discovered),
                ok,
                "{configured} vs {discovered}"
            );
        }
        let generic = detect("https://idp.example.com");
        assert!(generic.issuer_matches("https://idp.example.com", "https://idp.example.com/"));
        assert!(!generic.issuer_matches("https://login.microsoftonline.com/common/v2.0", tpl));

        let claims = |tid: &str| json!({"tid": tid}).as_object().cloned().unwrap();
        assert_eq!(entra.expected_issuer(tpl, "", &claims(TID)), single);
        // A tid that is not a GUID cannot bend the issuer.
        assert_eq!(entra.expected_issuer(tpl, "", &claims("x/../evil")), tpl);
        assert_eq!(entra.expected_issuer(tpl, "", &Map::new()), tpl);
        let google = by_name("google").unwrap();
        let g = "https://accounts.google.com";
        assert_eq!(
            google.expected_issuer(g, "accounts.google.com", &Map::new()),
            "accounts.google.com"
        );
        assert_eq!(google.expected_issuer(g, "evil.example", &Map::new()), g);
    }

    fn jws(header: Value, claims: Value) -> String {
        let enc = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
        format!("{}.{}.c2ln", enc(&header), enc(&claims))
    }

    #[test]
    fn entra_graph_tokens_are_left_alone() {
        let entra = by_name("entra").unwrap();
        let api = jws(
            json!({"alg":"RS256","kid":"k"}),
            json!({"aud":"api://my-api"}),
        );
        for (token, opaque) in [
            (
                jws(
                    json!({"alg":"RS256","nonce":"n"}),
                    json!({"aud":"api://my-api"}),
                ),
                true,
            ),
            (
                jws(json!({"alg":"RS256"}), json!({"aud": GRAPH_APP_ID})),
                true,
            ),
            (
                jws(
                    json!({"alg":"RS256"}),
                    json!({"aud": ["https://graph.microsoft.com/"]}),
                ),
                true,
            ),
            (api.clone(), false),
            ("opaque-garbage".to_owned(), false),
        ] {
            assert_eq!(
                entra.is_unverifiable_access_token(&token),
                opaque,
                "{token}"
            );
        }
        let nonce = jws(json!({"alg":"RS256","nonce":"n"}), json!({}));
        assert!(!detect("https://idp.example.com").is_unverifiable_access_token(&nonce));
    }

    #[test]
    fn logout_without_end_session_endpoint() {
        let cognito = by_name("cognito").unwrap();
        let url = cognito
            .fallback_logout(
                "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC",
                "https://app.auth.eu-west-1.amazoncognito.com/oauth2/authorize",
                "cid",
                "https://app.example.com/bye",
            )
            .unwrap();
        assert_eq!(
            url,
            "https://app.auth.eu-west-1.amazoncognito.com/logout?client_id=cid&logout_uri=https%3A%2F%2Fapp.example.com%2Fbye"
        );
        let auth0 = by_name("auth0").unwrap();
        let url = auth0
            .fallback_logout(
                "https://t.auth0.com/",
                "https://t.auth0.com/authorize",
                "cid",
                "https://a/",
            )
            .unwrap();
        assert_eq!(
            url,
            "https://t.auth0.com/v2/logout?client_id=cid&returnTo=https%3A%2F%2Fa%2F"
        );
        assert!(
            by_name("okta")
                .unwrap()
                .fallback_logout("https://x", "https://x/a", "c", "/")
                .is_none()
        );
    }

    #[test]
    fn okta_org_server_access_tokens_are_left_alone() {
        let token = |iss: &str| {
            let seg = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
            format!(
                "{}.{}.sig",
                seg(json!({"alg": "RS256", "kid": "k"})),
                seg(json!({"iss": iss, "aud": iss}))
            )
        };
        let okta = by_name("okta").unwrap();
        assert!(okta.is_unverifiable_access_token(&token("https://acme.okta.com")));
        assert!(!okta.is_unverifiable_access_token(&token("https://acme.okta.com/oauth2/default")));
        assert!(!okta.is_unverifiable_access_token("not-a-jwt"));
        assert!(!generic().is_unverifiable_access_token(&token("https://acme.okta.com")));
    }
}
