//! Authorization rules and the identity headers sent upstream.
//!
//! Owns who may pass (allowed users, e-mail domains, roles and groups) and how
//! an identity becomes upstream headers. Pure functions of an [`Identity`]: no
//! I/O, no tokens, no HTTP requests. Both the cookie path and the bearer path
//! end here, so a rule is written once.

pub mod claims;
pub mod security;
pub mod template;
pub mod token_headers;

use std::collections::HashSet;

use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value};

use claims::{ClaimPath, scalar};
use security::{SecurityHeaderSettings, SecurityHeaders};
use token_headers::{TokenHeaderSettings, Tokens};

/// Default claim naming the user (`userIdentifierClaim`).
pub const DEFAULT_USER_IDENTIFIER_CLAIM: &str = "email";
/// Default claim holding roles (`roleClaimName`).
pub const DEFAULT_ROLE_CLAIM: &str = "roles";
/// Default claim holding groups (`groupClaimName`).
pub const DEFAULT_GROUP_CLAIM: &str = "groups";
/// Default claim saying the provider verified `email`.
pub const DEFAULT_EMAIL_VERIFIED_CLAIM: &str = "email_verified";
/// Longest identifier accepted into a header (`maxIdentifierLength`).
pub const DEFAULT_MAX_IDENTIFIER_BYTES: usize = 256;
/// Longest joined group or role list sent upstream.
pub const MAX_LIST_HEADER_BYTES: usize = 8192;

/// Headers the gate sets for the upstream. Any spelling of these coming from a
/// client is removed (or refused) before the gate adds its own.
pub const IDENTITY_HEADERS: &[&str] = &[
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-forwarded-preferred-username",
    "x-auth-request-user",
    "x-auth-request-email",
    "x-auth-request-groups",
    "x-auth-request-preferred-username",
    "x-auth-request-redirect",
    "x-auth-request-token",
    "x-auth-request-access-token",
    "x-forwarded-access-token",
    "x-user-groups",
    "x-user-roles",
];

/// User and token headers other tools trust (Apache/Grafana auth proxies,
/// oauth2-proxy). The gate never sets them; any spelling coming from a
/// client is removed (or refused) like the gate's own identity headers.
pub const FOREIGN_IDENTITY_HEADERS: &[&str] = &[
    "remote-user",
    "x-remote-user",
    "x-webauth-user",
    "x-forwarded-access-token",
];

/// The identity headers the gate sends (a subset of [`IDENTITY_HEADERS`]).
pub const SENT_HEADERS: &[&str] = &[
    "x-forwarded-user",
    "x-auth-request-user",
    "x-auth-request-email",
    "x-auth-request-groups",
    "x-user-groups",
    "x-user-roles",
];

/// Every sent identity header with an empty value: what a forward-auth answer
/// carries on an excluded path, so a proxy copying them erases client values.
pub fn blank_identity_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for name in SENT_HEADERS {
        h.insert(HeaderName::from_static(name), HeaderValue::from_static(""));
    }
    h
}

/// True when `name`, in any case and with `_` or `-`, is an identity header
/// (the gate's own or a foreign one).
pub fn is_identity_header(name: &str) -> bool {
    // Compared byte by byte (no lower-cased copy: this runs for every
    // header of every request).
    let same = |known: &&str| {
        known.len() == name.len()
            && known.bytes().zip(name.bytes()).all(|(k, n)| {
                let n = if n == b'_' {
                    b'-'
                } else {
                    n.to_ascii_lowercase()
                };
                k == n
            })
    };
    IDENTITY_HEADERS.iter().any(same) || FOREIGN_IDENTITY_HEADERS.iter().any(same)
}

/// Removes every spelling of every identity header from `headers`.
pub fn strip_identity_headers(headers: &mut HeaderMap) {
    if !headers.keys().any(|k| is_identity_header(k.as_str())) {
        return;
    }
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|k| is_identity_header(k.as_str()))
        .cloned()
        .collect();
    for k in doomed {
        headers.remove(&k);
    }
}

/// True when `headers` carry an identity header under a spelling a proxy in
/// front of the gate would not overwrite (an underscore variant).
pub fn has_ambiguous_identity_header(headers: &HeaderMap) -> bool {
    headers
        .keys()
        .any(|k| k.as_str().contains('_') && is_identity_header(k.as_str()))
}

/// Settings of this module.
#[derive(Clone, Debug)]
pub struct PolicySettings {
    /// Identifiers allowed (compared case-insensitively). Empty with empty
    /// `allowed_domains` = every authenticated user.
    pub allowed_users: Vec<String>,
    /// E-mail domains allowed (case-insensitive), used when the identifier is
    /// an e-mail address.
    pub allowed_domains: Vec<String>,
    /// At least one of these roles or groups is required, when not empty.
    pub allowed_roles_and_groups: Vec<String>,
    /// Claim naming the user (a [`ClaimPath`]); falls back to `sub`.
    pub user_identifier_claim: String,
    /// Claim holding roles (a [`ClaimPath`]).
    pub role_claim: String,
    /// Claim holding groups (a [`ClaimPath`]).
    pub group_claim: String,
    /// The claim whose `true` (boolean or string) says the provider verified
    /// `email` (`email_verified`; Entra ID's is `xms_edov`).
    pub email_verified_claim: String,
    /// Send only `X-Forwarded-User`.
    pub minimal_headers: bool,
    /// Longest identifier accepted.
    pub max_identifier_bytes: usize,
    /// Accept an e-mail address whose `email_verified` claim is absent or
    /// not true (`insecureAllowUnverifiedEmail`; for providers that omit the
    /// claim).
    pub insecure_allow_unverified_email: bool,
    /// Templated and token headers (`headers`, `passAccessToken`,
    /// `setAuthorizationHeader`).
    pub token_headers: TokenHeaderSettings,
    /// Security response headers and CORS (`securityHeaders`).
    pub security_headers: SecurityHeaderSettings,
}

impl Default for PolicySettings {
    fn default() -> Self {
        Self {
            allowed_users: Vec::new(),
            allowed_domains: Vec::new(),
            allowed_roles_and_groups: Vec::new(),
            user_identifier_claim: DEFAULT_USER_IDENTIFIER_CLAIM.into(),
            role_claim: DEFAULT_ROLE_CLAIM.into(),
            group_claim: DEFAULT_GROUP_CLAIM.into(),
            email_verified_claim: DEFAULT_EMAIL_VERIFIED_CLAIM.into(),
            minimal_headers: false,
            max_identifier_bytes: DEFAULT_MAX_IDENTIFIER_BYTES,
            insecure_allow_unverified_email: false,
            token_headers: TokenHeaderSettings::default(),
            security_headers: SecurityHeaderSettings::default(),
        }
    }
}

/// Who is making the request, as far as authorization and headers go.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    /// The user identifier (value of the identifier claim, or `sub`).
    pub identifier: String,
    /// The `sub` claim.
    pub subject: String,
    /// The e-mail address, when known.
    pub email: Option<String>,
    /// Groups.
    pub groups: Vec<String>,
    /// Roles.
    pub roles: Vec<String>,
}

/// Why a request is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forbid {
    /// The user or the user's domain is not on the allowlist.
    User,
    /// None of the required roles or groups.
    RoleOrGroup,
    /// Not a member of any allowed GitHub organization.
    Organization,
    /// Not a member of any allowed GitHub team.
    Team,
}

/// Why claims do not yield an identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// Neither the identifier claim nor `sub` holds a usable value.
    #[error("no usable identifier claim")]
    Missing,
    /// The identifier has control characters, bidi overrides, `,;=`, is too
    /// long, or cannot be a header value.
    #[error("identifier is not safe to forward")]
    Unsafe,
    /// The identifier is an e-mail address the provider has not verified.
    #[error("e-mail address not verified by the provider")]
    UnverifiedEmail,
}

/// The compiled policy.
#[derive(Clone, Debug)]
pub struct Policy {
    settings: PolicySettings,
    users: HashSet<String>,
    domains: HashSet<String>,
    roles_and_groups: HashSet<String>,
    role_path: ClaimPath,
    group_path: ClaimPath,
    /// Spelling keys of configured header names that are not identity headers.
    extra_strip: Vec<String>,
    /// [`blank_identity_headers`], built once: a request's headers start as
    /// a copy of it.
    blank_identity: HeaderMap,
    /// The identity and token headers, all empty ([`Policy::blank_headers`]).
    blank_all: HeaderMap,
    security: std::sync::Arc<SecurityHeaders>,
}

impl Policy {
    /// Compiles `settings`.
    pub fn new(settings: PolicySettings) -> Self {
        let lower = |v: &[String]| v.iter().map(|s| s.trim().to_ascii_lowercase()).collect();
        let token_names = settings.token_headers.names();
        let blank_identity = blank_identity_headers();
        let mut blank_all = blank_identity.clone();
        for n in &token_names {
            blank_all.insert(n.clone(), HeaderValue::from_static(""));
        }
        Self {
            users: lower(&settings.allowed_users),
            domains: settings
                .allowed_domains
                .iter()
                .map(|d| d.trim().trim_start_matches('@').to_ascii_lowercase())
                .collect(),
            roles_and_groups: settings.allowed_roles_and_groups.iter().cloned().collect(),
            role_path: claim_path(&settings.role_claim),
            group_path: claim_path(&settings.group_claim),
            blank_identity,
            blank_all,
            extra_strip: settings
                .token_headers
                .names()
                .iter()
                .filter(|n| !is_identity_header(n.as_str()))
                .map(|n| token_headers::spelling_key(n.as_str()))
                .collect(),
            security: std::sync::Arc::new(SecurityHeaders::new(&settings.security_headers)),
            settings,
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &PolicySettings {
        &self.settings
    }

    /// Every header name the gate may send upstream: the identity headers
    /// and the configured token headers. A proxy set-up copies these from
    /// forward-auth answers and must strip them from client requests.
    pub fn sent_header_names(&self) -> Vec<HeaderName> {
        token_headers::sent_header_names(&self.settings.token_headers)
    }

    /// True when `name` (any case, `_` or `-`) is a header the gate sets.
    pub fn is_sent_header(&self, name: &str) -> bool {
        is_identity_header(name)
            || self
                .extra_strip
                .iter()
                .any(|key| token_headers::same_spelling(name, key))
    }

    /// Removes every spelling of every header the gate sets from a client's
    /// request.
    pub fn strip_client_headers(&self, headers: &mut HeaderMap) {
        let doomed: Vec<HeaderName> = headers
            .keys()
            .filter(|k| self.is_sent_header(k.as_str()))
            .cloned()
            .collect();
        for k in doomed {
            headers.remove(&k);
        }
    }

    /// True when `headers` carry a header the gate sets under an underscore
    /// spelling a proxy in front of the gate would not overwrite.
    pub fn has_ambiguous_header(&self, headers: &HeaderMap) -> bool {
        headers
            .keys()
            .any(|k| k.as_str().contains('_') && self.is_sent_header(k.as_str()))
    }

    /// Every header the gate may send, with an empty value: the answer of
    /// forward-auth on paths without a principal, so a proxy copying them
    /// erases what the client sent.
    pub fn blank_headers(&self) -> HeaderMap {
        self.blank_all.clone()
    }

    /// True when the token headers need the request's claims.
    pub fn headers_use_claims(&self) -> bool {
        self.settings.token_headers.uses_claims()
    }

    /// The complete upstream headers of an allowed request: identity headers
    /// (see [`Policy::upstream_headers`]), every configured token header
    /// present (empty when it rendered nothing), then the rendered ones.
    pub fn allowed_headers(
        &self,
        id: &Identity,
        claims: &Map<String, Value>,
        tokens: Tokens<'_>,
    ) -> HeaderMap {
        let th = &self.settings.token_headers;
        if th.is_empty() {
            return self.upstream_headers(id);
        }
        // Every name the templates may set is sent, empty when nothing was
        // rendered, so that a client's copy never survives in front of a
        // forward-auth door.
        let mut h = self.blank_all.clone();
        self.fill_identity(id, &mut h);
        th.render(claims, tokens, &mut h);
        h
    }

    /// The security response headers.
    pub fn security_headers(&self) -> &SecurityHeaders {
        &self.security
    }

    /// Builds an identity from token claims using `claim` (a [`ClaimPath`])
    /// for the identifier (falling back to `sub`).
    ///
    /// An identifier taken from the `email` claim requires the provider's
    /// e-mail-verified claim to be true (unless
    /// `insecure_allow_unverified_email`); an unverified `email` that is not
    /// the identifier is left out of the identity. An identifier that
    /// cannot travel as a header value is refused.
    pub fn identity_from_claims(
        &self,
        claims: &Map<String, Value>,
        claim: &str,
    ) -> Result<Identity, IdentityError> {
        let path = claim_path(claim);
        let subject = scalar(claims.get("sub")).unwrap_or_default();
        let from_claim = path.scalar(claims).filter(|s| !s.trim().is_empty());
        let email_ok = self.settings.insecure_allow_unverified_email
            || email_verified(claims, &self.settings.email_verified_claim);
        if path.is("email") && from_claim.is_some() && !email_ok {
            return Err(IdentityError::UnverifiedEmail);
        }
        let identifier = from_claim
            .or_else(|| Some(subject.clone()).filter(|s| !s.is_empty()))
            .ok_or(IdentityError::Missing)?;
        let identifier = identifier.trim().to_owned();
        if !is_safe_identifier(&identifier, self.settings.max_identifier_bytes)
            || HeaderValue::from_bytes(identifier.as_bytes()).is_err()
        {
            return Err(IdentityError::Unsafe);
        }
        Ok(Identity {
            identifier,
            subject,
            email: scalar(claims.get("email")).filter(|_| email_ok),
            groups: self.group_path.list(claims),
            roles: self.role_path.list(claims),
        })
    }

    /// True when the claims hold something at the group or role path.
    pub fn has_groups_or_roles(&self, claims: &Map<String, Value>) -> bool {
        self.group_path.get(claims).is_some() || self.role_path.get(claims).is_some()
    }

    /// True when a rule needs roles or groups (`allowedRolesAndGroups`).
    pub fn requires_roles_or_groups(&self) -> bool {
        !self.roles_and_groups.is_empty()
    }

    /// Copies into `claims` the top-level claims that hold the role and
    /// group paths when `claims` lacks them and `other` (another verified
    /// source of the same user: the access token, userinfo) has them.
    pub fn fill_roles_and_groups(
        &self,
        claims: &mut Map<String, Value>,
        other: &Map<String, Value>,
    ) {
        for path in [&self.role_path, &self.group_path] {
            if path.get(claims).is_none() && path.get(other).is_some() {
                let top = path.top();
                if let Some(v) = other.get(top) {
                    claims.insert(top.to_owned(), v.clone());
                }
            }
        }
    }

    /// Applies the allowlists.
    pub fn authorize(&self, id: &Identity) -> Result<(), Forbid> {
        if !self.users.is_empty() || !self.domains.is_empty() {
            // ASCII folding only: Unicode lower-casing maps look-alikes such
            // as the Kelvin sign onto ASCII letters.
            let ident = id.identifier.to_ascii_lowercase();
            let user_ok = self.users.contains(&ident);
            let domain_ok = !self.domains.is_empty()
                && ident.matches('@').count() == 1
                && ident
                    .rsplit('@')
                    .next()
                    .is_some_and(|d| self.domains.contains(d));
            if !user_ok && !domain_ok {
                return Err(Forbid::User);
            }
        }
        if !self.roles_and_groups.is_empty()
            && !id
                .groups
                .iter()
                .chain(&id.roles)
                .any(|g| self.roles_and_groups.contains(g))
        {
            return Err(Forbid::RoleOrGroup);
        }
        Ok(())
    }

    /// Identity headers for the upstream. Every header name the gate owns is
    /// present (empty when unknown) so a forward-auth proxy that copies them
    /// overwrites whatever the client sent.
    pub fn upstream_headers(&self, id: &Identity) -> HeaderMap {
        let mut h = self.blank_identity.clone();
        self.fill_identity(id, &mut h);
        h
    }

    /// Sets the identity headers of `id` in `h` (which holds them blank).
    fn fill_identity(&self, id: &Identity, h: &mut HeaderMap) {
        const USER: HeaderName = HeaderName::from_static("x-forwarded-user");
        const AR_USER: HeaderName = HeaderName::from_static("x-auth-request-user");
        const AR_EMAIL: HeaderName = HeaderName::from_static("x-auth-request-email");
        const AR_GROUPS: HeaderName = HeaderName::from_static("x-auth-request-groups");
        const GROUPS: HeaderName = HeaderName::from_static("x-user-groups");
        const ROLES: HeaderName = HeaderName::from_static("x-user-roles");
        let mut put = |name: HeaderName, v: Option<&str>| {
            // UTF-8 travels as obs-text; identifiers that cannot be a
            // header value were refused when the identity was built.
            if let Some(v) = v.and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok()) {
                h.insert(name, v);
            }
        };
        put(USER, Some(&id.identifier));
        if !self.settings.minimal_headers {
            let groups = join_safe(&id.groups);
            let roles = join_safe(&id.roles);
            let email = id
                .email
                .as_deref()
                .filter(|e| is_safe_identifier(e, self.settings.max_identifier_bytes));
            put(AR_USER, Some(&id.identifier));
            put(AR_EMAIL, email);
            put(AR_GROUPS, groups.as_deref());
            put(GROUPS, groups.as_deref());
            put(ROLES, roles.as_deref());
        }
    }
}

/// `text` as a claim path; configuration refuses paths that do not parse,
/// so the fallback (the text as one key) is never reached from a file.
fn claim_path(text: &str) -> ClaimPath {
    ClaimPath::parse(text).unwrap_or_else(|_| ClaimPath::single(text))
}

/// True when the provider vouches for the `email` claim: `verified_claim`
/// is the boolean `true` or the string `"true"` (some providers send a string).
fn email_verified(claims: &Map<String, Value>, verified_claim: &str) -> bool {
    match claims.get(verified_claim) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// True when `s` may be forwarded as an identifier: not empty, bounded, no
/// control characters, no bidi controls, none of `,` `;` `=`.
pub fn is_safe_identifier(s: &str, max_bytes: usize) -> bool {
    !s.is_empty()
        && s.len() <= max_bytes
        && !s.chars().any(|c| {
            c.is_control()
                || matches!(c, ',' | ';' | '=')
                || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
        })
}

fn join_safe(items: &[String]) -> Option<String> {
    let mut out = String::new();
    for g in items
        .iter()
        .filter(|g| is_safe_identifier(g, DEFAULT_MAX_IDENTIFIER_BYTES))
    {
        if out.len() + g.len() + 1 > MAX_LIST_HEADER_BYTES {
            break;
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(g);
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn identifier_falls_back_to_sub_and_stringifies_numbers() {
        let p = Policy::new(PolicySettings::default());
        let id = p
            .identity_from_claims(&claims(json!({"sub":"s1"})), "email")
            .unwrap();
        assert_eq!(id.identifier, "s1");
        let id = p
            .identity_from_claims(&claims(json!({"sub":"s1","uid":42})), "uid")
            .unwrap();
        assert_eq!(id.identifier, "42");
        assert_eq!(
            p.identity_from_claims(&claims(json!({})), "email"),
            Err(IdentityError::Missing)
        );
        assert_eq!(
            p.identity_from_claims(&claims(json!({"sub":"a\u{202E}b"})), "email"),
            Err(IdentityError::Unsafe)
        );
        assert_eq!(
            p.identity_from_claims(&claims(json!({"sub":"a;b=c"})), "email"),
            Err(IdentityError::Unsafe)
        );
    }

    #[test]
    fn roles_and_groups_come_from_claim_paths() {
        let p = Policy::new(PolicySettings {
            role_claim: "realm_access.roles".into(),
            group_claim: "\"https://example.com/groups\"".into(),
            user_identifier_claim: "profile.login".into(),
            allowed_roles_and_groups: vec!["admin".into()],
            ..PolicySettings::default()
        });
        let c = claims(json!({
            "sub": "s",
            "realm_access": {"roles": ["admin"]},
            "https://example.com/groups": ["eng"],
            "profile": {"login": "kim"},
        }));
        let id = p
            .identity_from_claims(&c, &p.settings().user_identifier_claim)
            .unwrap();
        assert_eq!(id.identifier, "kim");
        assert_eq!(id.roles, ["admin"]);
        assert_eq!(id.groups, ["eng"]);
        assert!(p.authorize(&id).is_ok());
        // The flat key of the same name is not the nested claim.
        let flat = claims(json!({"sub": "s", "realm_access.roles": ["admin"]}));
        let id = p.identity_from_claims(&flat, "sub").unwrap();
        assert_eq!(p.authorize(&id), Err(Forbid::RoleOrGroup));
    }

    #[test]
    fn roles_missing_from_the_id_token_are_filled_from_another_source() {
        let p = Policy::new(PolicySettings {
            role_claim: "realm_access.roles".into(),
            ..PolicySettings::default()
        });
        let mut id_token = claims(json!({"sub": "s", "groups": ["g"]}));
        let access =
            claims(json!({"sub": "s", "realm_access": {"roles": ["r"]}, "groups": ["other"]}));
        p.fill_roles_and_groups(&mut id_token, &access);
        let id = p.identity_from_claims(&id_token, "sub").unwrap();
        assert_eq!(
            (id.roles, id.groups),
            (vec!["r".to_owned()], vec!["g".to_owned()])
        );
    }

    #[test]
    fn the_email_verified_claim_is_the_providers() {
        let p = Policy::new(PolicySettings {
            email_verified_claim: "xms_edov".into(),
            ..PolicySettings::default()
        });
        let c = claims(json!({"sub":"s","email":"a@corp.com","email_verified":true}));
        assert_eq!(
            p.identity_from_claims(&c, "email"),
            Err(IdentityError::UnverifiedEmail)
        );
        let c = claims(json!({"sub":"s","email":"a@corp.com","xms_edov":true}));
        assert_eq!(
            p.identity_from_claims(&c, "email").unwrap().identifier,
            "a@corp.com"
        );
    }

    #[test]
    fn allowlist_table() {
        let p = Policy::new(PolicySettings {
            allowed_users: vec!["Boss@Other.org".into()],
            allowed_domains: vec!["example.com".into()],
            allowed_roles_and_groups: vec![],
            ..PolicySettings::default()
        });
        let id = |s: &str| Identity {
            identifier: s.into(),
            ..Identity::default()
        };
        for (who, ok) in [
            ("alice@example.com", true),
            ("ALICE@EXAMPLE.COM", true),
            ("boss@other.org", true),
            ("eve@evil.com", false),
            ("eve@example.com@evil.com", false),
            ("eve@sub.example.com", false),
            ("not-an-email", false),
        ] {
            assert_eq!(p.authorize(&id(who)).is_ok(), ok, "{who}");
        }
        let open = Policy::new(PolicySettings::default());
        assert!(open.authorize(&id("anyone")).is_ok());
    }

    #[test]
    fn issue12_f1_email_identifier_requires_email_verified() {
        let p = Policy::new(PolicySettings::default());
        for (verified, ok) in [
            (json!(true), true),
            (json!("true"), true),
            (json!(false), false),
            (json!("false"), false),
            (json!(null), false),
            (json!(1), false),
        ] {
            let c = claims(json!({"sub":"s","email":"a@corp.com","email_verified":verified}));
            assert_eq!(
                p.identity_from_claims(&c, "email").is_ok(),
                ok,
                "{verified}"
            );
        }
        let c = claims(json!({"sub":"s","email":"a@corp.com"}));
        assert_eq!(
            p.identity_from_claims(&c, "email"),
            Err(IdentityError::UnverifiedEmail)
        );
        // Another identifier: the unverified address is simply not carried.
        let id = p.identity_from_claims(&c, "sub").unwrap();
        assert_eq!((id.identifier.as_str(), id.email), ("s", None));
        let lax = Policy::new(PolicySettings {
            insecure_allow_unverified_email: true,
            ..PolicySettings::default()
        });
        let id = lax.identity_from_claims(&c, "email").unwrap();
        assert_eq!(id.identifier, "a@corp.com");
    }

    #[test]
    fn issue12_f1_identifiers_compare_ascii_case_insensitively() {
        let p = Policy::new(PolicySettings {
            allowed_users: vec!["kim@corp.example".into()],
            allowed_domains: vec!["kcorp.example".into()],
            ..PolicySettings::default()
        });
        let id = |s: &str| Identity {
            identifier: s.into(),
            ..Identity::default()
        };
        assert!(p.authorize(&id("KIM@Corp.Example")).is_ok());
        assert!(p.authorize(&id("x@KCORP.example")).is_ok());
        // The Kelvin sign lower-cases to `k` under Unicode rules.
        assert_eq!(
            p.authorize(&id("\u{212A}im@corp.example")),
            Err(Forbid::User)
        );
        assert_eq!(
            p.authorize(&id("x@\u{212A}corp.example")),
            Err(Forbid::User)
        );
    }

    #[test]
    fn issue12_f1_non_ascii_identifier_is_sent_not_dropped() {
        let p = Policy::new(PolicySettings::default());
        let c = claims(json!({"sub":"s","email":"jürgen@example.com","email_verified":true}));
        let id = p.identity_from_claims(&c, "email").unwrap();
        let h = p.upstream_headers(&id);
        assert_eq!(
            h["x-forwarded-user"].as_bytes(),
            "jürgen@example.com".as_bytes()
        );
        assert_eq!(
            h["x-auth-request-email"].as_bytes(),
            "jürgen@example.com".as_bytes()
        );
    }

    #[test]
    fn roles_and_groups_rule() {
        let p = Policy::new(PolicySettings {
            allowed_roles_and_groups: vec!["admin".into(), "ops".into()],
            ..PolicySettings::default()
        });
        let mk = |g: &[&str], r: &[&str]| Identity {
            identifier: "x".into(),
            groups: g.iter().map(|s| s.to_string()).collect(),
            roles: r.iter().map(|s| s.to_string()).collect(),
            ..Identity::default()
        };
        assert!(p.authorize(&mk(&["ops"], &[])).is_ok());
        assert!(p.authorize(&mk(&[], &["admin"])).is_ok());
        assert_eq!(
            p.authorize(&mk(&["Admin"], &["reader"])),
            Err(Forbid::RoleOrGroup)
        );
    }

    #[test]
    fn identity_header_spellings() {
        for n in [
            "X-Forwarded-User",
            "x_forwarded_user",
            "X_FORWARDED-user",
            "x-auth-request-email",
            "X-User-Roles",
        ] {
            assert!(is_identity_header(n), "{n}");
        }
        for n in [
            "x-forwarded-for",
            "x-forwarded-host",
            "cookie",
            "authorization",
        ] {
            assert!(!is_identity_header(n), "{n}");
        }
        let mut h = HeaderMap::new();
        h.insert("x_forwarded_user", HeaderValue::from_static("mallory"));
        h.insert("X-Forwarded-User", HeaderValue::from_static("mallory"));
        h.insert("x-forwarded-for", HeaderValue::from_static("1.2.3.4"));
        assert!(has_ambiguous_identity_header(&h));
        strip_identity_headers(&mut h);
        assert_eq!(h.len(), 1);
        assert!(!has_ambiguous_identity_header(&h));
    }

    #[test]
    fn headers_minimal_and_complete() {
        let id = Identity {
            identifier: "a@example.com".into(),
            subject: "s".into(),
            email: Some("a@example.com".into()),
            groups: vec!["staff".into(), "bad,group".into(), "dev".into()],
            roles: vec![],
        };
        let p = Policy::new(PolicySettings::default());
        let h = p.upstream_headers(&id);
        assert_eq!(h["x-forwarded-user"], "a@example.com");
        assert_eq!(h["x-user-groups"], "staff,dev");
        assert_eq!(h["x-user-roles"], "");
        let m = Policy::new(PolicySettings {
            minimal_headers: true,
            ..PolicySettings::default()
        });
        let h = m.upstream_headers(&id);
        assert_eq!(h["x-forwarded-user"], "a@example.com");
        assert_eq!(h["x-user-groups"], "", "minimal: present but empty");
        assert_eq!(h.len(), blank_identity_headers().len());
    }
}
