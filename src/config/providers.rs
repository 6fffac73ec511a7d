//! `providers:`: several providers in one gate, each chosen by its routes.
//!
//! Each entry has a `name`, `routes` (`{host: ...}`, `{pathPrefix: ...}` or
//! both) and the keys of its provider, client and rules ([`ENTRY_KEYS`]).
//! An entry is validated as the whole top-level block with the entry's keys
//! laid over it: keys the entry does not give inherit the top-level value,
//! except the keys that name a provider, its client and its endpoints
//! ([`NOT_INHERITED`]), which an entry gives itself or goes without. Errors
//! of an entry are reported under `providers[N].`; an error the top level
//! already reported (an inherited key) is reported once, at the top level.
//!
//! The top-level block stays the default provider: a request no route
//! matches is answered by it.

use serde::Deserialize;
use serde_norway::{Mapping, Value};

use super::{Config, Report, raw};
use crate::gate::{GateSettings, Route, valid_provider_name};
use crate::oidc::ProviderSettings;
use crate::policy::PolicySettings;
use crate::session::SessionSettings;

/// The keys an entry may give besides `name` and `routes`.
pub(super) const ENTRY_KEYS: &[&str] = &[
    // The provider and the authorization request.
    "providerURL",
    "providerType",
    "clientID",
    "clientSecret",
    "caCertPath",
    "caCertPEM",
    "providerTimeout",
    "providerConnectTimeout",
    "insecureSkipVerify",
    "scopes",
    "overrideScopes",
    "enablePKCE",
    "audience",
    "extraAuthParams",
    "revocationURL",
    "oidcEndSessionURL",
    "resource",
    "strictAudienceValidation",
    "introspectionURL",
    // Client authentication.
    "clientAuthMethod",
    "clientAssertionPrivateKey",
    "clientAssertionKeyPath",
    "clientAssertionKeyID",
    "clientAssertionAlg",
    "clientAssertionAudience",
    // Rules and claims.
    "allowedUsers",
    "allowedUserDomains",
    "allowedRolesAndGroups",
    "userIdentifierClaim",
    "roleClaimName",
    "groupClaimName",
    "insecureAllowUnverifiedEmail",
    // Provider profiles and GitHub.
    "allowedTenants",
    "fetchUserinfo",
    "microsoftGraphURL",
    "allowedOrganizations",
    "allowedTeams",
    "githubAPIURL",
    // Logout of this provider (a path inside its routes).
    "logoutURL",
    "postLogoutRedirectURI",
];

/// Top-level keys an entry never inherits: they name the default provider,
/// its client, or its endpoints (a secret or a token of one provider is
/// never sent to another).
pub(super) const NOT_INHERITED: &[&str] = &[
    "providerURL",
    "providerType",
    "clientID",
    "clientSecret",
    "clientAuthMethod",
    "clientAssertionPrivateKey",
    "clientAssertionKeyPath",
    "clientAssertionKeyID",
    "clientAssertionAlg",
    "clientAssertionAudience",
    "revocationURL",
    "oidcEndSessionURL",
    "introspectionURL",
    "resource",
    "githubAPIURL",
    "microsoftGraphURL",
    "dynamicClientRegistration",
];

/// The keys an entry must give.
const REQUIRED: &[&str] = &["providerURL", "clientID"];

/// The `providers` key as written.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct Raw {
    /// The named providers.
    #[serde(rename = "providers")]
    pub(super) providers: Vec<Value>,
}

/// One named provider, validated.
#[derive(Clone, Debug)]
pub struct ProviderEntry {
    /// The entry's `name`.
    pub name: String,
    /// The requests it answers.
    pub routes: Vec<Route>,
    /// Its engine settings (its name in `provider_name`).
    pub gate: GateSettings,
    /// Its provider client.
    pub provider: ProviderSettings,
    /// Its session cookies (`<cookiePrefix><name>-`).
    pub session: SessionSettings,
    /// Its rules and identity claims.
    pub policy: PolicySettings,
}

/// What the entries are validated against: the top-level block as written
/// (environment applied) and what the top level reported.
pub(super) struct TopLevel<'a> {
    pub(super) block: &'a Mapping,
    pub(super) config: &'a Config,
    pub(super) env: &'a dyn Fn(&str) -> Option<String>,
}

/// Validates every entry; all problems go to `r`.
pub(super) fn settings(raw: Raw, top: &TopLevel<'_>, r: &mut Report) -> Vec<ProviderEntry> {
    let mut out: Vec<(usize, ProviderEntry)> = Vec::new();
    for (i, value) in raw.providers.into_iter().enumerate() {
        let at = format!("providers[{i}]");
        let Value::Mapping(entry) = value else {
            r.error(&at, "must be a mapping (name, routes and provider keys)");
            continue;
        };
        out.push((i, entry_settings(entry, &at, top, r)));
    }
    check_unique(&out, &top.config.gate.logout_path, r);
    out.into_iter().map(|(_, e)| e).collect()
}

/// One entry: its name, routes and the configuration it stands for.
fn entry_settings(
    mut entry: Mapping,
    at: &str,
    top: &TopLevel<'_>,
    r: &mut Report,
) -> ProviderEntry {
    let name = entry
        .shift_remove("name")
        .and_then(|v| v.as_str().map(str::to_owned));
    // An invalid name is reported and kept: the entry's routes are still
    // checked against the others' (the configuration is refused anyway).
    let name = match name {
        Some(n) if valid_provider_name(&n) => n,
        Some(n) => {
            r.error(
                &format!("{at}.name"),
                format!(
                    "{n:?}: 1 to {} lower-case letters, digits and -, not starting with -, not {:?}",
                    crate::gate::MAX_PROVIDER_NAME_BYTES,
                    crate::gate::DEFAULT_PROVIDER_NAME
                ),
            );
            n
        }
        None => {
            r.error(&format!("{at}.name"), "is required (a text)");
            String::new()
        }
    };
    let routes = routes(entry.shift_remove("routes"), at, r);
    let mut merged = top.block.clone();
    merged.shift_remove("providers");
    for key in NOT_INHERITED {
        merged.shift_remove(*key);
    }
    for key in REQUIRED {
        if !entry.contains_key(*key) {
            r.error(&format!("{at}.{key}"), "is required in every entry");
        }
    }
    let mut given: Vec<String> = Vec::new();
    for (k, v) in entry {
        let key = k.as_str().map(str::to_owned).unwrap_or_default();
        if !ENTRY_KEYS.contains(&key.as_str()) {
            let why = if raw::known_keys().contains(&key.as_str()) {
                "is not a per-provider key (set it at the top level)"
            } else {
                "unknown key"
            };
            r.error(&format!("{at}.{key}"), why);
            continue;
        }
        given.push(key);
        merged.insert(k, v);
    }
    let mut sub = Report::default();
    let parsed = raw::RawConfig::from_mapping(merged, &mut sub);
    let config = Config::from_raw(parsed, top.env, &mut sub);
    for e in sub.errors {
        if REQUIRED.iter().any(|k| e.key == *k) && !given.iter().any(|g| g == &e.key) {
            continue; // already said: required in every entry
        }
        if !r.errors.contains(&e) {
            r.error(&format!("{at}.{}", e.key), e.message);
        }
    }
    for w in sub.warnings {
        if !r.warnings.contains(&w) {
            r.warn(&format!("{at}.{}", w.key), w.message);
        }
    }
    let mut session = top.config.session.clone();
    session.cookie_prefix = format!("{}{name}-", session.cookie_prefix);
    if session.cookie_prefix.len() > crate::session::MAX_PREFIX_LEN {
        r.error(
            &format!("{at}.name"),
            format!(
                "cookiePrefix and name make a cookie prefix longer than {} bytes",
                crate::session::MAX_PREFIX_LEN
            ),
        );
    }
    let mut gate = config.gate;
    gate.provider_name = Some(name.clone());
    ProviderEntry {
        name,
        routes,
        gate,
        provider: config.provider,
        session,
        policy: config.policy,
    }
}

/// The `routes` list: each a host, a path prefix, or both; at least one.
fn routes(v: Option<Value>, at: &str, r: &mut Report) -> Vec<Route> {
    let key = format!("{at}.routes");
    let list = match v {
        Some(Value::Sequence(list)) if !list.is_empty() => list,
        Some(Value::Sequence(_)) | None => {
            r.error(
                &key,
                "at least one route ({host: ...} and/or {pathPrefix: ...})",
            );
            return Vec::new();
        }
        Some(_) => {
            r.error(&key, "must be a list of routes");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (j, item) in list.into_iter().enumerate() {
        let at = format!("{key}[{j}]");
        let Value::Mapping(mut m) = item else {
            r.error(
                &at,
                "must be a mapping ({host: ...} and/or {pathPrefix: ...})",
            );
            continue;
        };
        let host = m.shift_remove("host").map(|v| route_host(&v, &at, r));
        let prefix = m
            .shift_remove("pathPrefix")
            .map(|v| route_prefix(&v, &at, r));
        for (k, _) in m {
            let k = k.as_str().unwrap_or_default().to_owned();
            r.error(&format!("{at}.{k}"), "unknown key (host or pathPrefix)");
        }
        match (host, prefix) {
            (None, None) => r.error(&at, "needs a host, a pathPrefix, or both"),
            (Some(Some(host)), Some(Some(path_prefix))) => out.push(Route {
                host: Some(host),
                path_prefix: Some(path_prefix),
            }),
            (Some(Some(host)), None) => out.push(Route {
                host: Some(host),
                path_prefix: None,
            }),
            (None, Some(Some(path_prefix))) => out.push(Route {
                host: None,
                path_prefix: Some(path_prefix),
            }),
            _ => {} // a part was refused
        }
    }
    out
}

/// A route's host: a DNS name (lower-cased), with an optional port.
fn route_host(v: &Value, at: &str, r: &mut Report) -> Option<String> {
    let key = format!("{at}.host");
    let Some(text) = v.as_str() else {
        r.error(&key, "must be a host name");
        return None;
    };
    let host = text.trim().trim_end_matches('.').to_ascii_lowercase();
    let (name, port) = match host.split_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (host.as_str(), None),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    if !name_ok || !port_ok {
        r.error(
            &key,
            format!("{text:?} is not a host name (like app.example.com or app.example.com:8443)"),
        );
        return None;
    }
    Some(host)
}

/// A route's path prefix: a path starting with `/`, normalized like request
/// paths; a trailing `/` is dropped.
fn route_prefix(v: &Value, at: &str, r: &mut Report) -> Option<String> {
    let key = format!("{at}.pathPrefix");
    let Some(text) = v.as_str() else {
        r.error(&key, "must be a path");
        return None;
    };
    r.check(super::checks::check_path(&key, text))?;
    match crate::gate::normalize_path(text) {
        Ok(p) => {
            let p = p.trim_end_matches('/');
            Some(if p.is_empty() {
                "/".to_owned()
            } else {
                p.to_owned()
            })
        }
        Err(_) => {
            r.error(&key, format!("{text:?} is not a plain path"));
            None
        }
    }
}

/// Names are unique; a route belongs to one provider; so does a
/// `logoutURL` of an entry's own (`default_logout`: the top level's).
fn check_unique(entries: &[(usize, ProviderEntry)], default_logout: &str, r: &mut Report) {
    fn own_logout<'e>(e: &'e ProviderEntry, default_logout: &str) -> Option<&'e str> {
        Some(e.gate.logout_path.as_str()).filter(|p| *p != default_logout)
    }
    for (n, (i, e)) in entries.iter().enumerate() {
        let Some(path) = own_logout(e, default_logout) else {
            continue;
        };
        if let Some((first, _)) = entries[..n]
            .iter()
            .find(|(_, f)| own_logout(f, default_logout) == Some(path))
        {
            r.error(
                &format!("providers[{i}].logoutURL"),
                format!("{path:?} is also the logoutURL of providers[{first}]"),
            );
        }
    }
    for (n, (i, e)) in entries.iter().enumerate() {
        let earlier = entries[..n].iter().find(|(_, f)| f.name == e.name);
        if let Some((first, _)) = earlier.filter(|_| !e.name.is_empty()) {
            r.error(
                &format!("providers[{i}].name"),
                format!("{:?} is also the name of providers[{first}]", e.name),
            );
        }
    }
    let mut seen: Vec<(&Route, String)> = Vec::new();
    for (i, e) in entries {
        for (j, route) in e.routes.iter().enumerate() {
            let here = format!("providers[{i}].routes[{j}]");
            match seen.iter().find(|(r, _)| *r == route) {
                Some((_, first)) => r.error(&here, format!("the same route as {first}")),
                None => seen.push((route, here)),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::super::tests::{keys_of, load};

    const A: &str = "  - name: a\n    providerURL: https://a.example.com\n    clientID: ca\n    \
                     clientSecret: sa\n    routes: [{host: a.example.com}]\n";

    #[test]
    fn an_entry_inherits_rules_but_not_the_provider() {
        let c = load(&format!(
            "allowedUserDomains: [example.com]\nrevocationURL: https://idp.example.com/r\n\
             providers:\n{A}  - name: b\n    providerURL: https://b.example.com\n    \
             clientID: cb\n    clientSecret: sb\n    allowedUsers: [bob@example.com]\n    \
             routes: [{{pathPrefix: /admin/}}, {{host: B.example.com:8443, pathPrefix: /x}}]\n"
        ))
        .unwrap();
        assert_eq!(c.providers.len(), 2);
        let (a, b) = (&c.providers[0], &c.providers[1]);
        assert_eq!(a.provider.issuer, "https://a.example.com");
        assert_eq!(a.provider.client_id, "ca");
        assert_eq!(
            a.provider.revocation_url, None,
            "endpoints are never inherited"
        );
        assert_eq!(a.policy.allowed_domains, ["example.com"]);
        assert_eq!(b.policy.allowed_users.len(), 1);
        assert_eq!(b.routes[0].path_prefix.as_deref(), Some("/admin"));
        assert_eq!(b.routes[1].host.as_deref(), Some("b.example.com:8443"));
        assert_eq!(a.session.cookie_prefix, "_oidcgate_a-");
        assert_eq!(a.gate.provider_name.as_deref(), Some("a"));
        assert_eq!(c.gate.provider_name, None);
        assert_eq!(c.session.cookie_prefix, "_oidcgate_");
    }

    #[test]
    fn refusals_name_the_entry_key() {
        let cases: &[(&str, &[&str])] = &[
            ("providers: {a: 1}\n", &["providers"]),
            ("providers: [1]\n", &["providers[0]"]),
            (
                "providers:\n  - {name: a, routes: [{host: a.example.com}]}\n",
                &[
                    "providers[0].providerURL",
                    "providers[0].clientID",
                    "providers[0].clientSecret",
                ],
            ),
            (
                &format!(
                    "providers:\n{A}  - name: a\n    providerURL: https://b.example.com\n    clientID: cb\n    clientSecret: sb\n    routes: [{{host: a.example.com}}]\n"
                ),
                &["providers[1].name", "providers[1].routes[0]"],
            ),
            (
                "providers:\n  - name: Bad_Name\n    providerURL: https://a.example.com\n    clientID: c\n    clientSecret: s\n    routes: [{host: 'a b'}, {}, {pathPrefix: admin}, {port: 1}]\n",
                &[
                    "providers[0].name",
                    "providers[0].routes[0].host",
                    "providers[0].routes[1]",
                    "providers[0].routes[2].pathPrefix",
                    "providers[0].routes[3].port",
                    "providers[0].routes[3]",
                ],
            ),
            (
                "providers:\n  - name: a\n    providerURL: http://a.example.com\n    clientID: c\n    clientSecret: s\n    listen: 127.0.0.1:1\n    bogus: 1\n",
                &[
                    "providers[0].routes",
                    "providers[0].listen",
                    "providers[0].bogus",
                    "providers[0].providerURL",
                ],
            ),
            (
                "providers:\n  - name: a\n    providerURL: https://a.example.com\n    clientID: c\n    clientSecret: s\n    routes: [{host: a.example.com}]\n    scopes: openid\n",
                &["providers[0].scopes"],
            ),
        ];
        for (yaml, keys) in cases {
            assert_eq!(keys_of(yaml), *keys, "{yaml}");
        }
    }

    #[test]
    fn a_route_shared_with_an_entry_of_bad_name_is_still_refused() {
        let keys = keys_of(&format!(
            "providers:\n{A}  - name: B\n    providerURL: https://b.example.com\n    \
             clientID: cb\n    clientSecret: sb\n    routes: [{{host: A.example.com.}}]\n"
        ));
        assert_eq!(keys, ["providers[1].name", "providers[1].routes[0]"]);
    }

    #[test]
    fn a_logout_path_of_an_entrys_own_belongs_to_one_entry() {
        let b = |name: &str, logout: &str| {
            format!(
                "  - name: {name}\n    providerURL: https://{name}.example.com\n    clientID: c\n    \
                 clientSecret: s\n    logoutURL: {logout}\n    routes: [{{pathPrefix: /{name}}}]\n"
            )
        };
        let keys = keys_of(&format!(
            "providers:\n{}{}{}{}",
            b("b", "/out"),
            b("c", "/out"),
            b("d", "/oauth2/callback/logout"),
            b("e", "/oauth2/callback/logout"),
        ));
        assert_eq!(keys, ["providers[1].logoutURL"]);
    }

    #[test]
    fn an_inherited_error_is_reported_once_at_the_top() {
        let keys = keys_of(&format!("providerTimeout: 0\nproviders:\n{A}"));
        assert_eq!(keys, ["providerTimeout"]);
    }
}
