//! [`RawConfig`]: the block as written, one raw part per concern, and the
//! environment table.
//!
//! Each concern declares its top-level keys once, as the fields of its `Raw`
//! struct (traefikoidc's spelling exactly); [`RawConfig::from_mapping`] moves
//! each concern's keys out of the block and deserializes them. Every type
//! error is recorded with its key path (`redis.poolSize`, `excludedURLs[1]`)
//! and deserialization resumes without that key, so one run reports every
//! problem. Keys no concern declares are refused with a "did you mean" when a
//! declared key is close. Errors are classified by where they occur
//! (`serde_path_to_error`, `serde_ignored`), never by their text.
//!
//! To add a key: add a field to the concern's `Raw` struct (and to
//! [`ENV_KEYS`] if it is a top-level scalar or list).

use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde_norway::{Mapping, Value};

use super::{
    Report, bearer, client_auth, doors, endpoints, github, headers, inert, limits, policy,
    profiles, provider, providers, redis, refresh, registration, session,
};

/// The block, split by concern.
#[derive(Default)]
pub(super) struct RawConfig {
    pub(super) provider: provider::Raw,
    pub(super) client_auth: client_auth::Raw,
    pub(super) session: session::Raw,
    pub(super) endpoints: endpoints::Raw,
    pub(super) policy: policy::Raw,
    pub(super) refresh: refresh::Raw,
    pub(super) bearer: bearer::Raw,
    pub(super) redis: redis::Raw,
    pub(super) doors: doors::Raw,
    pub(super) inert: inert::Raw,
    pub(super) limits: limits::Raw,
    pub(super) headers: headers::Raw,
    pub(super) github: github::Raw,
    pub(super) registration: registration::Raw,
    pub(super) profiles: profiles::Raw,
    pub(super) providers: providers::Raw,
}

/// Every top-level key the configuration accepts, sorted. Lists the same
/// concerns as the raw configuration.
pub fn known_keys() -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = [
        field_names::<provider::Raw>(),
        field_names::<client_auth::Raw>(),
        field_names::<session::Raw>(),
        field_names::<endpoints::Raw>(),
        field_names::<policy::Raw>(),
        field_names::<refresh::Raw>(),
        field_names::<bearer::Raw>(),
        field_names::<redis::Raw>(),
        field_names::<doors::Raw>(),
        field_names::<inert::Raw>(),
        field_names::<limits::Raw>(),
        field_names::<headers::Raw>(),
        field_names::<github::Raw>(),
        field_names::<registration::Raw>(),
        field_names::<profiles::Raw>(),
        field_names::<providers::Raw>(),
    ]
    .concat();
    keys.sort_unstable();
    keys
}

impl RawConfig {
    /// Splits `block` by concern, recording every problem in `r`.
    pub(super) fn from_mapping(mut block: Mapping, r: &mut Report) -> Self {
        let raw = Self {
            provider: take(&mut block, &[], r),
            client_auth: take(&mut block, &[], r),
            session: take(&mut block, &[], r),
            endpoints: take(&mut block, &[], r),
            policy: take(&mut block, &[], r),
            refresh: take(&mut block, &[], r),
            bearer: take(&mut block, &[], r),
            redis: take(&mut block, &redis::nested_blocks(), r),
            doors: take(&mut block, &[], r),
            inert: take(&mut block, &[], r),
            limits: take(&mut block, &[], r),
            headers: take(&mut block, &headers::nested_blocks(), r),
            github: take(&mut block, &[], r),
            registration: take(&mut block, &registration::nested_blocks(), r),
            profiles: take(&mut block, &[], r),
            providers: take(&mut block, &[], r),
        };
        let known = known_keys();
        for (k, _) in &block {
            match k.as_str() {
                Some(key) => r.error(key, unknown_key(key, &known)),
                None => r.error("config", format!("a key must be a string, got {k:?}")),
            }
        }
        raw
    }
}

/// Moves the keys `T` declares out of `block` and deserializes them.
fn take<T: DeserializeOwned + Default>(
    block: &mut Mapping,
    nested: &[(&'static str, &'static [&'static str])],
    r: &mut Report,
) -> T {
    let mut part = Mapping::new();
    for key in field_names::<T>() {
        if let Some((k, v)) = block.shift_remove_entry(*key) {
            part.insert(k, v);
        }
    }
    deserialize(part, nested, r)
}

/// "unknown key", with the closest of `known` when one is close.
fn unknown_key(key: &str, known: &[&str]) -> String {
    let lower = key.to_ascii_lowercase();
    let close = known
        .iter()
        .map(|k| {
            let d = if k.to_ascii_lowercase() == lower {
                0
            } else {
                strsim::damerau_levenshtein(&lower, &k.to_ascii_lowercase())
            };
            (d, *k)
        })
        .min();
    match close {
        Some((d, k)) if d <= (key.len() / 4).max(2) => {
            format!("unknown key; did you mean `{k}`?")
        }
        _ => "unknown key (check the spelling against the documentation)".to_owned(),
    }
}

/// A key path: `redis.tls.caFile`, `excludedURLs[1]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct KeyPath(Vec<Segment>);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Segment::Key(k) if i == 0 => f.write_str(k)?,
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        if self.0.is_empty() {
            f.write_str("config")?;
        }
        Ok(())
    }
}

impl KeyPath {
    fn from_error(p: &serde_path_to_error::Path) -> Self {
        Self(
            p.iter()
                .filter_map(|s| match s {
                    serde_path_to_error::Segment::Map { key } => Some(Segment::Key(key.clone())),
                    serde_path_to_error::Segment::Seq { index } => Some(Segment::Index(*index)),
                    _ => None,
                })
                .collect(),
        )
    }

    fn from_ignored(p: &serde_ignored::Path<'_>) -> Self {
        let mut out = Vec::new();
        let mut cur = p;
        loop {
            match cur {
                serde_ignored::Path::Root => break,
                serde_ignored::Path::Seq { parent, index } => {
                    out.push(Segment::Index(*index));
                    cur = parent;
                }
                serde_ignored::Path::Map { parent, key } => {
                    out.push(Segment::Key(key.clone()));
                    cur = parent;
                }
                serde_ignored::Path::Some { parent }
                | serde_ignored::Path::NewtypeStruct { parent }
                | serde_ignored::Path::NewtypeVariant { parent } => cur = parent,
            }
        }
        out.reverse();
        Self(out)
    }

    /// The path without its last key (the block the key is in).
    fn parent(&self) -> String {
        let mut p = self.clone();
        p.0.pop();
        if p.0.is_empty() {
            String::new()
        } else {
            p.to_string()
        }
    }

    /// Removes the value at this path from `map`; inside a list, the whole
    /// list goes (its later items would be renumbered). False when nothing
    /// could be removed.
    fn remove_from(&self, map: &mut Mapping) -> bool {
        let keys: Vec<&str> = self
            .0
            .iter()
            .map_while(|s| match s {
                Segment::Key(k) => Some(k.as_str()),
                Segment::Index(_) => None,
            })
            .collect();
        let Some((last, parents)) = keys.split_last() else {
            return false;
        };
        let mut cur = map;
        for k in parents {
            match cur.get_mut(*k) {
                Some(Value::Mapping(m)) => cur = m,
                _ => return false,
            }
        }
        cur.shift_remove(*last).is_some()
    }
}

/// Deserializes one concern's keys. Each error is recorded and its key
/// dropped before the next attempt; unknown keys of nested blocks are
/// recorded with the closest key of that block.
fn deserialize<T: DeserializeOwned + Default>(
    mut map: Mapping,
    nested: &[(&'static str, &'static [&'static str])],
    r: &mut Report,
) -> T {
    loop {
        let mut ignored = Vec::new();
        let mut on_ignored = |p: serde_ignored::Path<'_>| ignored.push(KeyPath::from_ignored(&p));
        let de = serde_ignored::Deserializer::new(Value::Mapping(map.clone()), &mut on_ignored);
        let result = serde_path_to_error::deserialize::<_, T>(de);
        match result {
            Ok(v) => {
                for p in ignored {
                    let parent = p.parent();
                    let known = nested
                        .iter()
                        .find(|(block, _)| *block == parent)
                        .map(|(_, keys)| *keys)
                        .unwrap_or(&[]);
                    let last = match p.0.last() {
                        Some(Segment::Key(k)) => k.as_str(),
                        _ => "",
                    };
                    r.error(&p.to_string(), unknown_key(last, known));
                }
                return v;
            }
            Err(e) => {
                let path = KeyPath::from_error(e.path());
                r.error(&path.to_string(), e.inner().to_string());
                if !path.remove_from(&mut map) {
                    return T::default();
                }
            }
        }
    }
}

/// The field names a derived `Deserialize` struct declares (its serde
/// names), read by asking it to deserialize from a probe.
pub(super) fn field_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Probe<'a>(&'a mut &'static [&'static str]);

    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("probe"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

/// How an environment value is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnvKind {
    /// Taken verbatim.
    Str,
    /// `true`/`false`/`1`/`0`.
    Bool,
    /// A non-negative integer.
    Int,
    /// Comma-separated list.
    List,
}

/// Every top-level key that may be overridden from the environment.
pub const ENV_KEYS: &[(&str, EnvKind)] = &[
    ("providerURL", EnvKind::Str),
    ("clientID", EnvKind::Str),
    ("clientSecret", EnvKind::Str),
    ("clientAuthMethod", EnvKind::Str),
    ("clientAssertionPrivateKey", EnvKind::Str),
    ("clientAssertionKeyPath", EnvKind::Str),
    ("clientAssertionKeyID", EnvKind::Str),
    ("clientAssertionAlg", EnvKind::Str),
    ("clientAssertionAudience", EnvKind::Str),
    ("callbackURL", EnvKind::Str),
    ("logoutURL", EnvKind::Str),
    ("postLogoutRedirectURI", EnvKind::Str),
    ("customTemplatesDir", EnvKind::Str),
    ("sessionEncryptionKey", EnvKind::Str),
    ("previousSessionEncryptionKeys", EnvKind::List),
    ("scopes", EnvKind::List),
    ("overrideScopes", EnvKind::Bool),
    ("enablePKCE", EnvKind::Bool),
    ("forceHTTPS", EnvKind::Bool),
    ("excludedURLs", EnvKind::List),
    ("userIdentifierClaim", EnvKind::Str),
    ("roleClaimName", EnvKind::Str),
    ("groupClaimName", EnvKind::Str),
    ("cookieDomain", EnvKind::Str),
    ("cookiePrefix", EnvKind::Str),
    ("cookiePath", EnvKind::Str),
    ("sessionMaxAge", EnvKind::Int),
    ("sessionAbsoluteMaxAge", EnvKind::Int),
    ("minimalHeaders", EnvKind::Bool),
    ("stripAuthCookies", EnvKind::Bool),
    ("caCertPath", EnvKind::Str),
    ("caCertPEM", EnvKind::Str),
    ("insecureSkipVerify", EnvKind::Bool),
    ("insecureAllowUnverifiedEmail", EnvKind::Bool),
    ("allowedUsers", EnvKind::List),
    ("allowedUserDomains", EnvKind::List),
    ("allowedRolesAndGroups", EnvKind::List),
    ("audience", EnvKind::Str),
    ("allowedRedirectHosts", EnvKind::List),
    ("logLevel", EnvKind::Str),
    ("logFormat", EnvKind::Str),
    ("listen", EnvKind::Str),
    ("upstream", EnvKind::Str),
    ("trustedProxies", EnvKind::List),
    ("http2", EnvKind::Bool),
    ("metricsAddress", EnvKind::Str),
    ("metricsPrefix", EnvKind::Str),
    ("watchConfig", EnvKind::Bool),
    ("rateLimit", EnvKind::Int),
    ("perSourceLoginRateLimit", EnvKind::Int),
    ("enableBearerAuth", EnvKind::Bool),
    ("bearerIdentifierClaim", EnvKind::Str),
    ("stripAuthorizationHeader", EnvKind::Bool),
    ("bearerEmitWWWAuthenticate", EnvKind::Bool),
    ("bearerOverridesCookie", EnvKind::Bool),
    ("maxTokenAgeSeconds", EnvKind::Int),
    ("maxIdentifierLength", EnvKind::Int),
    ("bearerFailureThreshold", EnvKind::Int),
    ("bearerFailureWindowSeconds", EnvKind::Int),
    ("bearerFailurePenaltySeconds", EnvKind::Int),
    ("allowOpaqueTokens", EnvKind::Bool),
    ("requireTokenIntrospection", EnvKind::Bool),
    ("introspectionURL", EnvKind::Str),
    ("revocationURL", EnvKind::Str),
    ("oidcEndSessionURL", EnvKind::Str),
    ("sessionStore", EnvKind::Str),
    ("securityOutagePolicy", EnvKind::Str),
    ("enableBackchannelLogout", EnvKind::Bool),
    ("backchannelLogoutURL", EnvKind::Str),
    ("enableFrontchannelLogout", EnvKind::Bool),
    ("frontchannelLogoutURL", EnvKind::Str),
    ("refreshGracePeriodSeconds", EnvKind::Int),
    ("maxRefreshTokenAgeSeconds", EnvKind::Int),
    ("refreshBreakerThreshold", EnvKind::Int),
    ("refreshBreakerOpenSeconds", EnvKind::Int),
    ("providerType", EnvKind::Str),
    ("allowedOrganizations", EnvKind::List),
    ("allowedTeams", EnvKind::List),
    ("githubAPIURL", EnvKind::Str),
    ("allowedTenants", EnvKind::List),
    ("fetchUserinfo", EnvKind::Bool),
    ("microsoftGraphURL", EnvKind::Str),
];

/// `providerURL` → `OIDCGATE_PROVIDER_URL`.
pub fn env_name(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    let mut out = String::from("OIDCGATE_");
    for (i, &c) in chars.iter().enumerate() {
        let prev = i.checked_sub(1).map(|j| chars[j]);
        let next = chars.get(i + 1).copied();
        // A plural acronym ("URLs") keeps its trailing "s" in the same word.
        let plural_s = |n: Option<char>, after: Option<char>| {
            n == Some('s') && after.is_none_or(|a| a.is_ascii_uppercase())
        };
        let starts_word = c.is_ascii_uppercase()
            && match prev {
                Some(p) if p.is_ascii_lowercase() || p.is_ascii_digit() => true,
                Some(p) if p.is_ascii_uppercase() => {
                    next.is_some_and(|n| n.is_ascii_lowercase())
                        && !plural_s(next, chars.get(i + 2).copied())
                }
                _ => false,
            };
        if starts_word {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[derive(Default, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    struct Nested {
        size: u32,
        inner: Inner,
        list: Vec<Item>,
    }

    #[derive(Default, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    struct Inner {
        enabled: bool,
        name: String,
    }

    #[derive(Default, Deserialize)]
    struct Item {
        #[allow(dead_code)]
        value: String,
    }

    fn errors(yaml: &str) -> Vec<String> {
        let map: Mapping = serde_norway::from_str(yaml).unwrap();
        let mut r = Report::default();
        let _: Nested = deserialize(map, &[("inner", field_names::<Inner>())], &mut r);
        r.errors.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn every_type_error_is_reported_with_its_path() {
        let e = errors("size: x\ninner: {enabled: 3, name: [1]}\nlist: [{value: a}, {}]\n");
        let keys: Vec<&str> = e.iter().map(|s| s.split(':').next().unwrap()).collect();
        assert_eq!(
            keys,
            ["size", "inner.enabled", "inner.name", "list[1]"],
            "{e:?}"
        );
    }

    #[test]
    fn unknown_nested_keys_get_a_suggestion_from_their_block() {
        let e = errors("inner: {enabeld: true, zzz: 1}\n");
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e[0].starts_with("inner.enabeld: unknown key; did you mean `enabled`?"),
            "{e:?}"
        );
        assert!(e[1].starts_with("inner.zzz: unknown key (check"), "{e:?}");
    }

    #[test]
    fn suggestions_are_offered_only_when_close() {
        let known = ["providerURL", "clientID", "redis"];
        assert!(unknown_key("providerUrl", &known).contains("`providerURL`"));
        assert!(unknown_key("clientId", &known).contains("`clientID`"));
        assert!(unknown_key("reddis", &known).contains("`redis`"));
        assert!(!unknown_key("somethingElse", &known).contains("did you mean"));
    }

    #[test]
    fn field_names_are_the_serde_names() {
        assert_eq!(field_names::<Nested>(), ["size", "inner", "list"]);
        assert!(field_names::<u32>().is_empty());
    }

    #[test]
    fn env_names_follow_the_documented_rule() {
        for (key, env) in [
            ("providerURL", "OIDCGATE_PROVIDER_URL"),
            ("clientID", "OIDCGATE_CLIENT_ID"),
            ("caCertPEM", "OIDCGATE_CA_CERT_PEM"),
            ("enablePKCE", "OIDCGATE_ENABLE_PKCE"),
            ("forceHTTPS", "OIDCGATE_FORCE_HTTPS"),
            ("excludedURLs", "OIDCGATE_EXCLUDED_URLS"),
            ("postLogoutRedirectURI", "OIDCGATE_POST_LOGOUT_REDIRECT_URI"),
            ("sessionEncryptionKey", "OIDCGATE_SESSION_ENCRYPTION_KEY"),
        ] {
            assert_eq!(env_name(key), env, "{key}");
        }
    }

    #[test]
    fn every_env_key_is_a_known_key() {
        let known = known_keys();
        for (key, _) in ENV_KEYS {
            assert!(known.contains(key), "{key} is not a key of any concern");
        }
    }
}
