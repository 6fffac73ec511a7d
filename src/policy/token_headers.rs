//! Headers built from tokens and claims: the operator's templated `headers`,
//! oauth2-proxy's `passAccessToken` and `setAuthorizationHeader`.
//!
//! Owns rendering them for one allowed request, the list of every header
//! name the gate may send upstream, and stripping any spelling of those
//! names from a client's request. A rendered value holding CR, LF or NUL (or
//! anything else a header value cannot carry) is dropped with a warning that
//! names the header, never the value; an empty rendering sends nothing.

use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value};

use super::template::{Template, TemplateData};
use super::{SENT_HEADERS, is_identity_header};

/// Headers carrying the access token with `passAccessToken`.
pub const ACCESS_TOKEN_HEADERS: &[&str] =
    &["x-forwarded-access-token", "x-auth-request-access-token"];

/// One operator header: a name and its compiled template.
#[derive(Clone, Debug)]
pub struct HeaderTemplate {
    /// The header name (lower case).
    pub name: HeaderName,
    /// The compiled value template.
    pub template: Arc<Template>,
}

/// Settings of the token-derived headers.
#[derive(Clone, Debug, Default)]
pub struct TokenHeaderSettings {
    /// Operator headers (`headers`), in configuration order; a later one
    /// with the same name wins.
    pub templates: Vec<HeaderTemplate>,
    /// Send the access token as `X-Forwarded-Access-Token` and
    /// `X-Auth-Request-Access-Token` (`passAccessToken`).
    pub pass_access_token: bool,
    /// Send `Authorization: Bearer <ID token>` (`setAuthorizationHeader`).
    pub set_authorization_header: bool,
}

impl TokenHeaderSettings {
    /// True when any header needs the claims map.
    pub fn uses_claims(&self) -> bool {
        self.templates.iter().any(|t| t.template.uses_claims())
    }

    /// True when nothing is configured.
    pub fn is_empty(&self) -> bool {
        self.templates.is_empty() && !self.pass_access_token && !self.set_authorization_header
    }

    /// Every header name these settings may set, lower case, without
    /// duplicates, in a stable order.
    pub fn names(&self) -> Vec<HeaderName> {
        let mut names: Vec<HeaderName> = Vec::new();
        let mut add = |n: HeaderName| {
            if !names.contains(&n) {
                names.push(n);
            }
        };
        if self.pass_access_token {
            ACCESS_TOKEN_HEADERS
                .iter()
                .for_each(|n| add(HeaderName::from_static(n)));
        }
        if self.set_authorization_header {
            add(http::header::AUTHORIZATION);
        }
        self.templates.iter().for_each(|t| add(t.name.clone()));
        names
    }

    /// Renders every header into `out` (inserting; a later header with the
    /// same name replaces an earlier one). `claims` and the tokens are those
    /// of the request's session or bearer token.
    pub fn render(&self, claims: &Map<String, Value>, tokens: Tokens<'_>, out: &mut HeaderMap) {
        if self.pass_access_token && !tokens.access.is_empty() {
            if let Ok(v) = HeaderValue::from_str(tokens.access) {
                for n in ACCESS_TOKEN_HEADERS {
                    out.insert(HeaderName::from_static(n), v.clone());
                }
            }
        }
        if self.set_authorization_header && !tokens.id.is_empty() {
            if let Ok(v) = HeaderValue::from_str(&format!("Bearer {}", tokens.id)) {
                out.insert(http::header::AUTHORIZATION, v);
            }
        }
        if self.templates.is_empty() {
            return;
        }
        let data = TemplateData {
            claims,
            access_token: tokens.access,
            id_token: tokens.id,
            refresh_token: tokens.refresh,
        };
        let mut buf = String::new();
        for t in &self.templates {
            match t.template.render_into(&data, &mut buf) {
                Ok(()) if buf.is_empty() => {}
                Ok(()) => match checked_value(&buf) {
                    Ok(v) => {
                        out.insert(t.name.clone(), v);
                    }
                    Err(why) => {
                        tracing::warn!(header = %t.name, why, "templated header not sent");
                    }
                },
                Err(e) => {
                    tracing::debug!(header = %t.name, error = %e, "templated header has no value");
                }
            }
        }
    }
}

/// The tokens a request carries (empty strings when absent).
#[derive(Clone, Copy, Debug, Default)]
pub struct Tokens<'a> {
    /// Access token (the presented token on the bearer path).
    pub access: &'a str,
    /// ID token.
    pub id: &'a str,
    /// Refresh token.
    pub refresh: &'a str,
}

/// `s` as a header value, or why it cannot be sent.
fn checked_value(s: &str) -> Result<HeaderValue, &'static str> {
    // One pass on the way in; the bytes are looked at again only to say why
    // a value was refused.
    HeaderValue::from_str(s).map_err(|_| {
        if s.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
            "rendered value holds CR, LF or NUL"
        } else {
            "rendered value holds control characters"
        }
    })
}

/// Why a header name cannot be configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderNameError {
    /// Not a valid HTTP field name.
    #[error("is not a valid HTTP header name")]
    Invalid,
    /// One of the identity headers the gate sets itself.
    #[error("is one of the gate's own identity headers")]
    Identity,
    /// A header that frames or routes the request (hop-by-hop, `Host`,
    /// `Content-Length`, `Cookie`, ...).
    #[error("controls how the request is framed or routed and cannot be templated")]
    Reserved,
}

/// Header names a template may not set.
const RESERVED: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "cookie",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-method",
    "x-forwarded-uri",
    "x-original-uri",
];

/// Checks an operator header name; returns it in lower case.
pub fn header_name(name: &str) -> Result<HeaderName, HeaderNameError> {
    let parsed =
        HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| HeaderNameError::Invalid)?;
    if is_identity_header(parsed.as_str()) {
        return Err(HeaderNameError::Identity);
    }
    let dashed = parsed.as_str().replace('_', "-");
    if RESERVED.contains(&dashed.as_str()) {
        return Err(HeaderNameError::Reserved);
    }
    Ok(parsed)
}

/// Every header name the gate may send upstream with `settings`: the
/// identity headers plus the token-derived ones. Proxy set-ups copy exactly
/// these from forward-auth answers and strip them from client requests.
pub fn sent_header_names(settings: &TokenHeaderSettings) -> Vec<HeaderName> {
    let mut names: Vec<HeaderName> = SENT_HEADERS
        .iter()
        .map(|n| HeaderName::from_static(n))
        .collect();
    for n in settings.names() {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    names
}

/// `name` in lower case with `_` as `-`: the spelling key used to strip.
pub(super) fn spelling_key(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c == '_' {
                '-'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

/// True when `name` is `key` (a [`spelling_key`]) in some case and with `_`
/// or `-`.
pub(super) fn same_spelling(name: &str, key: &str) -> bool {
    name.len() == key.len()
        && name.bytes().zip(key.bytes()).all(|(a, b)| {
            let a = if a == b'_' {
                b'-'
            } else {
                a.to_ascii_lowercase()
            };
            a == b
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::template::ClaimAllowlist;
    use serde_json::json;

    fn tpl(name: &str, src: &str) -> HeaderTemplate {
        HeaderTemplate {
            name: HeaderName::from_bytes(name.as_bytes()).unwrap(),
            template: Arc::new(Template::compile(src, &ClaimAllowlist::new(["note"])).unwrap()),
        }
    }

    #[test]
    fn renders_skips_empty_and_drops_unsafe_values() {
        let s = TokenHeaderSettings {
            templates: vec![
                tpl("x-user-email", "{{.Claims.email}}"),
                tpl("authorization", "Bearer {{.AccessToken}}"),
                tpl("x-missing", "{{.Claims.name}}"),
                tpl("x-note", "{{.Claims.note}}"),
                tpl("x-nul", "{{get .Claims \"note\" | default \"x\"}}\u{0}"),
            ],
            pass_access_token: true,
            set_authorization_header: false,
        };
        let claims = json!({"email": "a@example.com", "note": "line1\r\nX-Evil: 1"});
        let mut out = HeaderMap::new();
        let tokens = Tokens {
            access: "at.jwt.sig",
            id: "id.jwt.sig",
            refresh: "",
        };
        s.render(claims.as_object().unwrap(), tokens, &mut out);
        assert_eq!(out["x-user-email"], "a@example.com");
        assert_eq!(out["authorization"], "Bearer at.jwt.sig");
        assert_eq!(out["x-forwarded-access-token"], "at.jwt.sig");
        assert_eq!(out["x-auth-request-access-token"], "at.jwt.sig");
        assert!(out.get("x-missing").is_none());
        assert!(out.get("x-note").is_none(), "CR/LF value must not be sent");
        assert!(out.get("x-nul").is_none(), "NUL value must not be sent");
        assert_eq!(out.len(), 4);
    }

    #[test]
    fn set_authorization_header_sends_the_id_token_and_a_template_wins() {
        let mut s = TokenHeaderSettings {
            set_authorization_header: true,
            ..TokenHeaderSettings::default()
        };
        let tokens = Tokens {
            access: "at",
            id: "idt",
            refresh: "rt",
        };
        let mut out = HeaderMap::new();
        s.render(&Map::new(), tokens, &mut out);
        assert_eq!(out["authorization"], "Bearer idt");
        s.templates
            .push(tpl("Authorization", "Bearer {{.AccessToken}}"));
        s.render(&Map::new(), tokens, &mut out);
        assert_eq!(out["authorization"], "Bearer at");
        let mut none = HeaderMap::new();
        s.set_authorization_header = true;
        s.templates.clear();
        s.render(&Map::new(), Tokens::default(), &mut none);
        assert!(none.is_empty(), "no token, no header");
    }

    #[test]
    fn header_name_rules() {
        assert_eq!(
            header_name("X-User-Email").unwrap().as_str(),
            "x-user-email"
        );
        assert_eq!(
            header_name("Authorization").unwrap(),
            http::header::AUTHORIZATION
        );
        for (n, e) in [
            ("X Bad", HeaderNameError::Invalid),
            ("", HeaderNameError::Invalid),
            ("X-Bad:", HeaderNameError::Invalid),
            ("X-Forwarded-User", HeaderNameError::Identity),
            ("x_forwarded_user", HeaderNameError::Identity),
            ("X-Auth-Request-Access-Token", HeaderNameError::Identity),
            ("X-Forwarded-Access-Token", HeaderNameError::Identity),
            ("Host", HeaderNameError::Reserved),
            ("Content-Length", HeaderNameError::Reserved),
            ("transfer_encoding", HeaderNameError::Reserved),
            ("Cookie", HeaderNameError::Reserved),
        ] {
            assert_eq!(header_name(n), Err(e), "{n}");
        }
    }

    #[test]
    fn policy_strips_every_spelling_of_configured_headers() {
        let policy = crate::policy::Policy::new(crate::policy::PolicySettings {
            token_headers: TokenHeaderSettings {
                templates: vec![tpl("X-Team", "t")],
                pass_access_token: true,
                ..TokenHeaderSettings::default()
            },
            ..crate::policy::PolicySettings::default()
        });
        let mut h = HeaderMap::new();
        for n in [
            "x-team",
            "X_TEAM",
            "x_Team",
            "x-forwarded-access-token",
            "x_forwarded_user",
        ] {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_static("v"),
            );
        }
        h.insert("x-teams", HeaderValue::from_static("kept"));
        assert!(policy.has_ambiguous_header(&h));
        policy.strip_client_headers(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-teams"));
        let blank = policy.blank_headers();
        assert_eq!(blank["x-team"], "");
        assert_eq!(blank["x-auth-request-access-token"], "");
        assert_eq!(blank["x-forwarded-user"], "");
    }

    #[test]
    fn sent_names_cover_every_configured_header_once() {
        let s = TokenHeaderSettings {
            templates: vec![tpl("x-team", "t"), tpl("Authorization", "a")],
            pass_access_token: true,
            set_authorization_header: true,
        };
        let names: Vec<String> = sent_header_names(&s)
            .iter()
            .map(|n| n.as_str().to_owned())
            .collect();
        for n in SENT_HEADERS
            .iter()
            .chain(ACCESS_TOKEN_HEADERS)
            .chain(&["authorization", "x-team"])
        {
            assert_eq!(names.iter().filter(|x| x == n).count(), 1, "{n}");
        }
    }
}
