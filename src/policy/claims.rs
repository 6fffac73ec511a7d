//! Claim names as paths into the claims object: `realm_access.roles`,
//! `resource_access.my-app.roles`, `"https://example.com/roles"`.
//!
//! Owns the path syntax and the reading of a value at a path as a scalar or
//! a list. A path is a sequence of keys separated by `.`; a key containing a
//! dot, a slash or a quote-free anything else is written between double
//! quotes. A name that contains `://` and no quote is one key as it stands
//! (the namespaced claims of Auth0 written as traefikoidc accepts them).
//! Pure: no I/O.

use serde_json::{Map, Value};

/// Longest claim path accepted (bytes).
pub const MAX_CLAIM_PATH_BYTES: usize = 512;
/// Most keys in one claim path.
pub const MAX_CLAIM_PATH_KEYS: usize = 8;

/// A parsed claim path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimPath {
    keys: Vec<String>,
}

/// Why a claim path does not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClaimPathError {
    /// The path is empty, or one of its keys is.
    #[error("a claim path and each of its keys must not be empty")]
    Empty,
    /// A quoted key is not closed, or a quote is followed by something
    /// other than `.` or the end.
    #[error("unbalanced quotes (quote a key as \"https://example.com/roles\")")]
    Quotes,
    /// The path is longer than [`MAX_CLAIM_PATH_BYTES`] or has more than
    /// [`MAX_CLAIM_PATH_KEYS`] keys.
    #[error("claim path too long")]
    TooLong,
}

impl ClaimPath {
    /// Parses `text` (see the module documentation).
    pub fn parse(text: &str) -> Result<Self, ClaimPathError> {
        let text = text.trim();
        if text.len() > MAX_CLAIM_PATH_BYTES {
            return Err(ClaimPathError::TooLong);
        }
        if text.is_empty() {
            return Err(ClaimPathError::Empty);
        }
        if text.contains("://") && !text.contains('"') {
            return Ok(Self::single(text));
        }
        let mut keys = Vec::new();
        let mut rest = text;
        loop {
            let (key, after) = if let Some(quoted) = rest.strip_prefix('"') {
                let end = quoted.find('"').ok_or(ClaimPathError::Quotes)?;
                (&quoted[..end], &quoted[end + 1..])
            } else {
                let end = rest.find('.').unwrap_or(rest.len());
                let key = &rest[..end];
                if key.contains('"') {
                    return Err(ClaimPathError::Quotes);
                }
                (key, &rest[end..])
            };
            if key.is_empty() {
                return Err(ClaimPathError::Empty);
            }
            keys.push(key.to_owned());
            if keys.len() > MAX_CLAIM_PATH_KEYS {
                return Err(ClaimPathError::TooLong);
            }
            match after.strip_prefix('.') {
                Some(next) => rest = next,
                None if after.is_empty() => break,
                None => return Err(ClaimPathError::Quotes),
            }
        }
        Ok(Self { keys })
    }

    /// A path of one key, taken verbatim.
    pub fn single(key: &str) -> Self {
        Self {
            keys: vec![key.to_owned()],
        }
    }

    /// True when the path is the one top-level key `name`.
    pub fn is(&self, name: &str) -> bool {
        self.keys.len() == 1 && self.keys[0] == name
    }

    /// The first key (the top-level claim).
    pub fn top(&self) -> &str {
        self.keys.first().map_or("", String::as_str)
    }

    /// The value at this path, if every key on the way exists.
    pub fn get<'a>(&self, claims: &'a Map<String, Value>) -> Option<&'a Value> {
        let (first, rest) = self.keys.split_first()?;
        let mut v = claims.get(first)?;
        for k in rest {
            v = v.as_object()?.get(k)?;
        }
        Some(v)
    }

    /// The value at this path as a string: strings as they are, numbers
    /// and booleans printed.
    pub fn scalar(&self, claims: &Map<String, Value>) -> Option<String> {
        scalar(self.get(claims))
    }

    /// The value at this path as a list: an array of scalars, one scalar,
    /// or the keys of an object (Zitadel's `{role: {orgId: domain}}`).
    pub fn list(&self, claims: &Map<String, Value>) -> Vec<String> {
        list(self.get(claims))
    }
}

impl std::fmt::Display for ClaimPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, k) in self.keys.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            if k.contains(['.', '/', ':']) {
                write!(f, "\"{k}\"")?;
            } else {
                f.write_str(k)?;
            }
        }
        Ok(())
    }
}

/// A claim value as a string: strings as they are, numbers and booleans printed.
pub(crate) fn scalar(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A claim value as a list: an array of scalars, one scalar, or the keys of
/// an object.
pub(crate) fn list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a.iter().filter_map(|x| scalar(Some(x))).collect(),
        Some(Value::Object(m)) => m.keys().cloned().collect(),
        Some(other) => scalar(Some(other)).into_iter().collect(),
        None => Vec::new(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keys(text: &str) -> Result<Vec<String>, ClaimPathError> {
        ClaimPath::parse(text).map(|p| p.keys)
    }

    #[test]
    fn path_syntax_table() {
        let ok: &[(&str, &[&str])] = &[
            ("roles", &["roles"]),
            ("realm_access.roles", &["realm_access", "roles"]),
            (
                "resource_access.my-app.roles",
                &["resource_access", "my-app", "roles"],
            ),
            (
                "\"https://example.com/roles\"",
                &["https://example.com/roles"],
            ),
            // Unquoted namespaced claims stay one key (traefikoidc configs).
            ("https://example.com/roles", &["https://example.com/roles"]),
            (
                "\"https://example.com/app\".roles",
                &["https://example.com/app", "roles"],
            ),
            (
                "urn:zitadel:iam:org:project:roles",
                &["urn:zitadel:iam:org:project:roles"],
            ),
            ("  cognito:groups ", &["cognito:groups"]),
        ];
        for (text, want) in ok {
            assert_eq!(keys(text).unwrap(), *want, "{text}");
        }
        let bad: &[(&str, ClaimPathError)] = &[
            ("", ClaimPathError::Empty),
            ("a..b", ClaimPathError::Empty),
            ("a.", ClaimPathError::Empty),
            (".a", ClaimPathError::Empty),
            ("\"\"", ClaimPathError::Empty),
            ("\"https://x/roles", ClaimPathError::Quotes),
            ("\"a\"b", ClaimPathError::Quotes),
            ("a\"b\"", ClaimPathError::Quotes),
            ("a.b.c.d.e.f.g.h.i", ClaimPathError::TooLong),
        ];
        for (text, want) in bad {
            assert_eq!(keys(text), Err(*want), "{text}");
        }
        assert_eq!(
            keys(&"a".repeat(MAX_CLAIM_PATH_BYTES + 1)),
            Err(ClaimPathError::TooLong)
        );
    }

    #[test]
    fn values_are_read_through_nested_objects() {
        let c = json!({
            "realm_access": {"roles": ["admin", "user"]},
            "resource_access": {"my-app": {"roles": ["editor"]}},
            "https://example.com/roles": ["auth0-admin"],
            "urn:zitadel:iam:org:project:roles": {"ops": {"123": "corp.example"}, "dev": {}},
            "n": {"id": 42},
            "s": "one",
        });
        let c = c.as_object().unwrap();
        let list = |p: &str| ClaimPath::parse(p).unwrap().list(c);
        assert_eq!(list("realm_access.roles"), ["admin", "user"]);
        assert_eq!(list("resource_access.my-app.roles"), ["editor"]);
        assert_eq!(list("\"https://example.com/roles\""), ["auth0-admin"]);
        assert_eq!(list("https://example.com/roles"), ["auth0-admin"]);
        let mut zitadel = list("urn:zitadel:iam:org:project:roles");
        zitadel.sort();
        assert_eq!(zitadel, ["dev", "ops"]);
        assert_eq!(list("s"), ["one"]);
        assert!(list("realm_access.missing").is_empty());
        assert!(list("s.deeper").is_empty());
        let scalar = |p: &str| ClaimPath::parse(p).unwrap().scalar(c);
        assert_eq!(scalar("n.id").as_deref(), Some("42"));
        assert_eq!(scalar("realm_access"), None);
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "realm_access.roles",
            "\"https://example.com/app\".roles",
            "resource_access.my-app.roles",
        ] {
            let p = ClaimPath::parse(text).unwrap();
            assert_eq!(ClaimPath::parse(&p.to_string()).unwrap(), p, "{text}");
        }
    }
}
