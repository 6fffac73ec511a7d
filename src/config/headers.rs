//! The header keys: templated upstream `headers`, `passAccessToken`,
//! `setAuthorizationHeader`, and `securityHeaders` with its CORS fields.
//!
//! Owns their raw form (traefikoidc's spellings), their defaults (those of
//! `policy::security`) and their refusals: a template that does not parse,
//! names a claim outside the allowlist (`allowedClaims` extends it) or uses
//! a forbidden action; a header name that is not a valid HTTP header name,
//! is one of the gate's identity headers or frames the request; a header
//! value that cannot be sent; a malformed CORS origin; credentials allowed
//! for every origin. Every refusal names its key path (`headers[1].value`).

use std::collections::BTreeMap;
use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use serde::Deserialize;

use super::Report;
use super::raw::field_names;
use crate::policy::security::{CorsSettings, Hsts, SecurityHeaderSettings};
use crate::policy::template::{ClaimAllowlist, Template};
use crate::policy::token_headers::{HeaderTemplate, TokenHeaderSettings, header_name};

/// One templated header as written.
#[derive(Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawHeader {
    /// Header name.
    pub(super) name: String,
    /// Go text/template source of the value.
    pub(super) value: String,
}

/// `securityHeaders` as written (traefikoidc's `SecurityHeadersConfig`).
#[derive(Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct RawSecurityHeaders {
    /// Master switch (default on).
    pub(super) enabled: Option<bool>,
    /// Named profile; accepted without effect (as in traefikoidc).
    pub(super) profile: Option<String>,
    /// HSTS on HTTPS requests (default on).
    pub(super) strict_transport_security: Option<bool>,
    /// HSTS `max-age`.
    pub(super) strict_transport_security_max_age: Option<u64>,
    /// HSTS `includeSubDomains`.
    pub(super) strict_transport_security_subdomains: Option<bool>,
    /// HSTS `preload`.
    pub(super) strict_transport_security_preload: Option<bool>,
    /// `X-Frame-Options`.
    pub(super) frame_options: Option<String>,
    /// `X-Content-Type-Options`.
    pub(super) content_type_options: Option<String>,
    /// `X-XSS-Protection`.
    pub(super) xss_protection: Option<String>,
    /// `Referrer-Policy`.
    pub(super) referrer_policy: Option<String>,
    /// `Content-Security-Policy`.
    pub(super) content_security_policy: Option<String>,
    /// `Permissions-Policy`.
    pub(super) permissions_policy: Option<String>,
    /// `Cross-Origin-Opener-Policy`.
    pub(super) cross_origin_opener_policy: Option<String>,
    /// `Cross-Origin-Embedder-Policy`.
    pub(super) cross_origin_embedder_policy: Option<String>,
    /// `Cross-Origin-Resource-Policy`.
    pub(super) cross_origin_resource_policy: Option<String>,
    /// CORS switch.
    pub(super) cors_enabled: Option<bool>,
    /// Allowed origins.
    pub(super) cors_allowed_origins: Option<Vec<String>>,
    /// Allowed methods.
    pub(super) cors_allowed_methods: Option<Vec<String>>,
    /// Allowed request headers.
    pub(super) cors_allowed_headers: Option<Vec<String>>,
    /// `Access-Control-Allow-Credentials`.
    pub(super) cors_allow_credentials: Option<bool>,
    /// `Access-Control-Max-Age`.
    pub(super) cors_max_age: Option<u64>,
    /// Extra response headers.
    pub(super) custom_headers: Option<BTreeMap<String, String>>,
    /// Remove `Server` (default on).
    pub(super) disable_server_header: Option<bool>,
    /// Remove `X-Powered-By` (default on).
    pub(super) disable_powered_by_header: Option<bool>,
}

/// The header keys as written.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct Raw {
    /// Templated upstream headers.
    #[serde(rename = "headers")]
    pub(super) headers: Option<Vec<RawHeader>>,
    /// Security response headers and CORS.
    #[serde(rename = "securityHeaders")]
    pub(super) security_headers: Option<RawSecurityHeaders>,
    /// oauth2-proxy's `pass_access_token`.
    #[serde(rename = "passAccessToken")]
    pub(super) pass_access_token: bool,
    /// oauth2-proxy's `set_authorization_header`.
    #[serde(rename = "setAuthorizationHeader")]
    pub(super) set_authorization_header: bool,
}

/// The nested blocks of these keys and the keys each declares (for "did
/// you mean" on an unknown key).
pub(super) fn nested_blocks() -> Vec<(&'static str, &'static [&'static str])> {
    vec![("securityHeaders", field_names::<RawSecurityHeaders>())]
}

/// What the header keys configure.
pub(super) struct Parts {
    /// Templated and token headers, for the policy.
    pub(super) token_headers: TokenHeaderSettings,
    /// Security response headers, for the policy.
    pub(super) security_headers: SecurityHeaderSettings,
}

/// Validates the header keys; `allowed_claims` is `allowedClaims`.
pub(super) fn settings(raw: Raw, allowed_claims: &[String], r: &mut Report) -> Parts {
    if let Some(p) = raw
        .security_headers
        .as_ref()
        .and_then(|s| s.profile.as_deref())
        .filter(|p| !p.is_empty() && *p != "default")
    {
        r.warn(
            "securityHeaders.profile",
            format!("{p:?} has no effect (as in traefikoidc); set the fields instead"),
        );
    }
    for (i, c) in allowed_claims.iter().enumerate() {
        if c.trim().is_empty() {
            r.error(&format!("allowedClaims[{i}]"), "must name a claim");
        }
    }
    let allow = ClaimAllowlist::new(allowed_claims.iter().map(|c| c.trim().to_owned()));
    let mut templates = Vec::new();
    for (i, h) in raw.headers.unwrap_or_default().into_iter().enumerate() {
        let name = match header_name(&h.name) {
            Ok(n) => Some(n),
            Err(e) => {
                r.error(&format!("headers[{i}].name"), format!("{:?} {e}", h.name));
                None
            }
        };
        if h.value.is_empty() {
            r.error(&format!("headers[{i}].value"), "must not be empty");
            continue;
        }
        match Template::compile(&h.value, &allow) {
            Ok(t) => {
                if let Some(name) = name {
                    templates.push(HeaderTemplate {
                        name,
                        template: Arc::new(t),
                    });
                }
            }
            Err(e) => r.error(&format!("headers[{i}].value"), e.to_string()),
        }
    }
    Parts {
        token_headers: TokenHeaderSettings {
            templates,
            pass_access_token: raw.pass_access_token,
            set_authorization_header: raw.set_authorization_header,
        },
        security_headers: raw
            .security_headers
            .map_or_else(SecurityHeaderSettings::default, |s| security(s, r)),
    }
}

fn value(key: &str, v: &str, r: &mut Report) -> Option<HeaderValue> {
    if v.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        r.error(key, "must not contain CR, LF or NUL");
        return None;
    }
    match HeaderValue::from_str(v.trim()) {
        Ok(v) => Some(v),
        Err(_) => {
            r.error(key, "is not a valid header value");
            None
        }
    }
}

fn security(raw: RawSecurityHeaders, r: &mut Report) -> SecurityHeaderSettings {
    const P: &str = "securityHeaders";
    if raw.enabled == Some(false) {
        return SecurityHeaderSettings::disabled();
    }
    let mut s = SecurityHeaderSettings::default();
    if raw.strict_transport_security == Some(false) {
        s.hsts = None;
    } else if let Some(h) = &mut s.hsts {
        let hsts: &mut Hsts = h;
        if let Some(age) = raw.strict_transport_security_max_age {
            hsts.max_age = age;
        }
        if let Some(b) = raw.strict_transport_security_subdomains {
            hsts.include_subdomains = b;
        }
        if let Some(b) = raw.strict_transport_security_preload {
            hsts.preload = b;
        }
    }
    let named: [(&str, &'static str, Option<String>); 9] = [
        ("frameOptions", "x-frame-options", raw.frame_options),
        (
            "contentTypeOptions",
            "x-content-type-options",
            raw.content_type_options,
        ),
        ("xssProtection", "x-xss-protection", raw.xss_protection),
        ("referrerPolicy", "referrer-policy", raw.referrer_policy),
        (
            "contentSecurityPolicy",
            "content-security-policy",
            raw.content_security_policy,
        ),
        (
            "permissionsPolicy",
            "permissions-policy",
            raw.permissions_policy,
        ),
        (
            "crossOriginOpenerPolicy",
            "cross-origin-opener-policy",
            raw.cross_origin_opener_policy,
        ),
        (
            "crossOriginEmbedderPolicy",
            "cross-origin-embedder-policy",
            raw.cross_origin_embedder_policy,
        ),
        (
            "crossOriginResourcePolicy",
            "cross-origin-resource-policy",
            raw.cross_origin_resource_policy,
        ),
    ];
    for (key, header, v) in named {
        let Some(v) = v else { continue };
        let name = HeaderName::from_static(header);
        s.headers.retain(|(n, _)| *n != name);
        if let Some(v) = value(&format!("{P}.{key}"), &v, r) {
            s.headers.push((name, v));
        }
    }
    for (k, v) in raw.custom_headers.unwrap_or_default() {
        let key = format!("{P}.customHeaders.{k}");
        let Ok(name) = HeaderName::from_bytes(k.trim().as_bytes()) else {
            r.error(&key, "is not a valid HTTP header name");
            continue;
        };
        if let Some(v) = value(&key, &v, r) {
            s.headers.retain(|(n, _)| *n != name);
            s.headers.push((name, v));
        }
    }
    if let Some(b) = raw.disable_server_header {
        s.remove_server = b;
    }
    if let Some(b) = raw.disable_powered_by_header {
        s.remove_powered_by = b;
    }
    if raw.cors_enabled == Some(true) {
        let mut cors = CorsSettings::default();
        let origins = raw.cors_allowed_origins.unwrap_or_default();
        for (i, o) in origins.iter().enumerate() {
            if !valid_origin(o) {
                r.error(
                    &format!("{P}.corsAllowedOrigins[{i}]"),
                    "must be *, scheme://host[:port] or scheme://*.domain",
                );
            }
        }
        if origins.is_empty() {
            r.error(
                &format!("{P}.corsAllowedOrigins"),
                "must list at least one origin when corsEnabled",
            );
        }
        let credentials = raw.cors_allow_credentials.unwrap_or(false);
        if credentials && origins.iter().any(|o| o.trim() == "*") {
            r.error(
                &format!("{P}.corsAllowCredentials"),
                "cannot be true with the origin * (any site could read authenticated answers)",
            );
        }
        cors.allowed_origins = origins;
        cors.allow_credentials = credentials;
        for (key, list, field) in [
            (
                "corsAllowedMethods",
                raw.cors_allowed_methods,
                &mut cors.allowed_methods,
            ),
            (
                "corsAllowedHeaders",
                raw.cors_allowed_headers,
                &mut cors.allowed_headers,
            ),
        ] {
            if let Some(list) = list {
                for (i, m) in list.iter().enumerate() {
                    if HeaderName::from_bytes(m.trim().as_bytes()).is_err() {
                        r.error(&format!("{P}.{key}[{i}]"), "must be a single token");
                    }
                }
                *field = list.into_iter().map(|m| m.trim().to_owned()).collect();
            }
        }
        if let Some(age) = raw.cors_max_age {
            cors.max_age = age;
        }
        s.cors = Some(cors);
    }
    s
}

/// `*`, `scheme://host[:port]` or `scheme://*.domain` with scheme http(s).
fn valid_origin(o: &str) -> bool {
    let o = o.trim();
    if o == "*" {
        return true;
    }
    let Some((scheme, rest)) = o.split_once("://") else {
        return false;
    };
    if !matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https") {
        return false;
    }
    let host = rest.strip_prefix("*.").unwrap_or(rest);
    !host.is_empty()
        && !host.starts_with('.')
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::super::tests::{check_refusals, load};

    #[test]
    fn refusals_name_their_key() {
        let cases: &[(&str, &[&str])] = &[
            (
                "headers: [{name: X-A, value: '{{.Claims.secret}}'}]\n",
                &["headers[0].value"],
            ),
            (
                "headers: [{name: X-A, value: ok}, {name: 'Bad Name', value: x}]\n",
                &["headers[1].name"],
            ),
            (
                "headers: [{name: X-Forwarded-User, value: x}]\n",
                &["headers[0].name"],
            ),
            (
                "headers: [{name: x_auth_request_email, value: x}]\n",
                &["headers[0].name"],
            ),
            ("headers: [{name: Host, value: x}]\n", &["headers[0].name"]),
            ("headers: [{name: X-A, value: ''}]\n", &["headers[0].value"]),
            (
                "headers: [{name: X-A, value: '{{printf \"%s\" .AccessToken}}'}]\n",
                &["headers[0].value"],
            ),
            (
                "headers: [{name: X-A, value: '{{.Claims.email'}]\n",
                &["headers[0].value"],
            ),
            (
                "headers: [{name: '', value: '{{.Claims}}'}]\n",
                &["headers[0].name", "headers[0].value"],
            ),
            ("allowedClaims: ['']\n", &["allowedClaims[0]"]),
            ("passAccessToken: 3\n", &["passAccessToken"]),
            (
                "securityHeaders: {frameOptions: \"a\\nb\"}\n",
                &["securityHeaders.frameOptions"],
            ),
            (
                "securityHeaders: {frameOption: DENY}\n",
                &["securityHeaders.frameOption"],
            ),
            (
                "securityHeaders: {corsEnabled: true, corsAllowedOrigins: ['ftp://x']}\n",
                &["securityHeaders.corsAllowedOrigins[0]"],
            ),
            (
                "securityHeaders: {corsEnabled: true}\n",
                &["securityHeaders.corsAllowedOrigins"],
            ),
            (
                "securityHeaders: {corsEnabled: true, corsAllowedOrigins: ['*'], corsAllowCredentials: true}\n",
                &["securityHeaders.corsAllowCredentials"],
            ),
            (
                "securityHeaders: {corsEnabled: true, corsAllowedOrigins: ['*'], corsAllowedMethods: ['GET POST']}\n",
                &["securityHeaders.corsAllowedMethods[0]"],
            ),
            (
                "securityHeaders: {customHeaders: {'Bad Name': x}}\n",
                &["securityHeaders.customHeaders.Bad Name"],
            ),
        ];
        check_refusals(cases);
    }

    #[test]
    fn a_template_refusal_names_the_column() {
        let e = load("headers: [{name: X-A, value: 'ab{{.Claims.secret}}'}]\n").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("headers[0].value"), "{text}");
        assert!(text.contains("column 5"), "{text}");
        assert!(text.contains("allowedClaims"), "{text}");
    }

    #[test]
    fn the_plugin_keys_land_in_the_settings() {
        let c = load(
            "headers:\n  - name: X-Team\n    value: '{{.Claims.team}}'\n  - name: Authorization\n    \
             value: 'Bearer {{.AccessToken}}'\nallowedClaims: [team]\npassAccessToken: true\n\
             setAuthorizationHeader: true\nallowUnauthenticatedPreflight: true\n\
             securityHeaders:\n  strictTransportSecurityMaxAge: 600\n  frameOptions: SAMEORIGIN\n  \
             corsEnabled: true\n  corsAllowedOrigins: ['https://*.example.com']\n  corsMaxAge: 60\n  \
             customHeaders: {X-Extra: '1'}\n  disableServerHeader: false\n",
        )
        .unwrap();
        let th = &c.policy.token_headers;
        assert_eq!(th.templates.len(), 2);
        assert_eq!(th.templates[0].name, "x-team");
        assert!(th.pass_access_token && th.set_authorization_header);
        assert!(c.gate.allow_unauthenticated_preflight);
        let s = &c.policy.security_headers;
        assert!(s.enabled && !s.remove_server && s.remove_powered_by);
        assert_eq!(s.hsts.as_ref().unwrap().max_age, 600);
        assert!(
            s.headers
                .iter()
                .any(|(n, v)| n == "x-frame-options" && v == "SAMEORIGIN")
        );
        assert!(s.headers.iter().any(|(n, v)| n == "x-extra" && v == "1"));
        let cors = s.cors.as_ref().unwrap();
        assert_eq!(cors.allowed_origins, ["https://*.example.com"]);
        assert_eq!(cors.max_age, 60);

        let off = load("securityHeaders: {enabled: false, frameOptions: DENY}\n").unwrap();
        assert!(!off.policy.security_headers.enabled);
        let default = load("").unwrap();
        assert!(default.policy.security_headers.enabled);
        assert!(default.policy.token_headers.templates.is_empty());
    }
}
