//! Security response headers and CORS (`securityHeaders`).
//!
//! Owns which headers an answer carries: HSTS (only for HTTPS requests),
//! frame options, `nosniff`, XSS protection, referrer policy, CSP,
//! permissions and cross-origin policies, custom headers, removal of
//! `Server` / `X-Powered-By`, and the CORS answer for an allowed `Origin`
//! (exact, `*`, or `scheme://*.domain` wildcards). Headers are built once at
//! start-up; per request only the CORS origin is chosen. Applying never
//! replaces a header the answer already has (the upstream's or the gate's
//! own stricter ones), except that `Server` and `X-Powered-By` are removed.

use http::{HeaderMap, HeaderName, HeaderValue, header};

/// Default HSTS `max-age` in seconds (one year).
pub const DEFAULT_HSTS_MAX_AGE: u64 = 31_536_000;
/// Default `X-Frame-Options`.
pub const DEFAULT_FRAME_OPTIONS: &str = "DENY";
/// Default `X-Content-Type-Options`.
pub const DEFAULT_CONTENT_TYPE_OPTIONS: &str = "nosniff";
/// Default `X-XSS-Protection`.
pub const DEFAULT_XSS_PROTECTION: &str = "1; mode=block";
/// Default `Referrer-Policy`.
pub const DEFAULT_REFERRER_POLICY: &str = "strict-origin-when-cross-origin";
/// Default CORS methods.
pub const DEFAULT_CORS_METHODS: &[&str] = &["GET", "POST", "OPTIONS"];
/// Default CORS request headers.
pub const DEFAULT_CORS_HEADERS: &[&str] = &["Authorization", "Content-Type"];
/// Default CORS preflight cache time in seconds.
pub const DEFAULT_CORS_MAX_AGE: u64 = 86_400;

/// `Strict-Transport-Security` parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hsts {
    /// `max-age` in seconds.
    pub max_age: u64,
    /// `includeSubDomains`.
    pub include_subdomains: bool,
    /// `preload`.
    pub preload: bool,
}

/// CORS settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorsSettings {
    /// Allowed origins: exact (`https://app.example.com`), `*`, or a
    /// wildcard of sub-domains (`https://*.example.com`).
    pub allowed_origins: Vec<String>,
    /// `Access-Control-Allow-Methods`.
    pub allowed_methods: Vec<String>,
    /// `Access-Control-Allow-Headers`.
    pub allowed_headers: Vec<String>,
    /// `Access-Control-Allow-Credentials: true`.
    pub allow_credentials: bool,
    /// `Access-Control-Max-Age` in seconds.
    pub max_age: u64,
}

impl Default for CorsSettings {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            allowed_methods: DEFAULT_CORS_METHODS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            allowed_headers: DEFAULT_CORS_HEADERS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            allow_credentials: false,
            max_age: DEFAULT_CORS_MAX_AGE,
        }
    }
}

/// Settings of this module (traefikoidc's `securityHeaders` and defaults).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityHeaderSettings {
    /// Master switch; `false` adds and removes nothing.
    pub enabled: bool,
    /// HSTS for HTTPS requests; `None` = off.
    pub hsts: Option<Hsts>,
    /// Named headers with fixed values (frame options, nosniff, XSS
    /// protection, referrer policy, CSP, permissions and cross-origin
    /// policies, custom headers), in order. An empty value is not sent.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Remove `Server` from answers.
    pub remove_server: bool,
    /// Remove `X-Powered-By` from answers.
    pub remove_powered_by: bool,
    /// CORS; `None` = off.
    pub cors: Option<CorsSettings>,
}

impl Default for SecurityHeaderSettings {
    fn default() -> Self {
        let fixed = |n: &'static str, v: &'static str| {
            (HeaderName::from_static(n), HeaderValue::from_static(v))
        };
        Self {
            enabled: true,
            hsts: Some(Hsts {
                max_age: DEFAULT_HSTS_MAX_AGE,
                include_subdomains: true,
                preload: true,
            }),
            headers: vec![
                fixed("x-frame-options", DEFAULT_FRAME_OPTIONS),
                fixed("x-content-type-options", DEFAULT_CONTENT_TYPE_OPTIONS),
                fixed("x-xss-protection", DEFAULT_XSS_PROTECTION),
                fixed("referrer-policy", DEFAULT_REFERRER_POLICY),
            ],
            remove_server: true,
            remove_powered_by: true,
            cors: None,
        }
    }
}

impl SecurityHeaderSettings {
    /// Everything off (`enabled: false`).
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            hsts: None,
            headers: Vec::new(),
            remove_server: false,
            remove_powered_by: false,
            cors: None,
        }
    }
}

/// An allowed-origin pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Origin {
    Any,
    Exact(String),
    /// `scheme://` and `.domain`: any origin of that scheme whose host ends
    /// with `.domain` (not the domain itself).
    Subdomains {
        scheme: String,
        suffix: String,
    },
}

impl Origin {
    fn parse(p: &str) -> Self {
        let p = p.trim().trim_end_matches('/').to_ascii_lowercase();
        if p == "*" {
            return Origin::Any;
        }
        if let Some((scheme, rest)) = p.split_once("://") {
            if let Some(domain) = rest.strip_prefix("*.") {
                return Origin::Subdomains {
                    scheme: format!("{scheme}://"),
                    suffix: format!(".{domain}"),
                };
            }
        }
        Origin::Exact(p)
    }

    fn matches(&self, origin: &str) -> bool {
        match self {
            Origin::Any => true,
            Origin::Exact(o) => o == origin,
            Origin::Subdomains { scheme, suffix } => origin
                .strip_prefix(scheme.as_str())
                .and_then(|host| host.strip_suffix(suffix.as_str()))
                .is_some_and(|label| {
                    !label.is_empty()
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                        && !label.starts_with('.')
                        && !label.ends_with('.')
                }),
        }
    }
}

/// The compiled security headers.
#[derive(Clone, Debug)]
pub struct SecurityHeaders {
    plain: HeaderMap,
    tls: HeaderMap,
    remove_server: bool,
    remove_powered_by: bool,
    cors: Option<Cors>,
}

#[derive(Clone, Debug)]
struct Cors {
    origins: Vec<Origin>,
    fixed: HeaderMap,
}

impl SecurityHeaders {
    /// Compiles `s`.
    pub fn new(s: &SecurityHeaderSettings) -> Self {
        if !s.enabled {
            return Self::new_off();
        }
        let mut plain = HeaderMap::new();
        for (n, v) in &s.headers {
            if !v.is_empty() {
                plain.insert(n.clone(), v.clone());
            }
        }
        let mut tls = plain.clone();
        if let Some(h) = &s.hsts {
            let mut v = format!("max-age={}", h.max_age);
            if h.include_subdomains {
                v.push_str("; includeSubDomains");
            }
            if h.preload {
                v.push_str("; preload");
            }
            if let Ok(v) = HeaderValue::from_str(&v) {
                tls.insert(header::STRICT_TRANSPORT_SECURITY, v);
            }
        }
        let cors = s.cors.as_ref().map(|c| {
            let mut fixed = HeaderMap::new();
            let mut put = |n: HeaderName, v: String| {
                if let Ok(v) = HeaderValue::from_str(&v) {
                    if !v.is_empty() {
                        fixed.insert(n, v);
                    }
                }
            };
            put(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                c.allowed_methods.join(", "),
            );
            put(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                c.allowed_headers.join(", "),
            );
            if c.allow_credentials {
                put(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true".into());
            }
            put(header::ACCESS_CONTROL_MAX_AGE, c.max_age.to_string());
            Cors {
                origins: c.allowed_origins.iter().map(|o| Origin::parse(o)).collect(),
                fixed,
            }
        });
        Self {
            plain,
            tls,
            remove_server: s.remove_server,
            remove_powered_by: s.remove_powered_by,
            cors,
        }
    }

    fn new_off() -> Self {
        Self {
            plain: HeaderMap::new(),
            tls: HeaderMap::new(),
            remove_server: false,
            remove_powered_by: false,
            cors: None,
        }
    }

    /// The headers for an answer to a request that was (`https`) HTTPS and
    /// carried `origin` (its `Origin` header).
    pub fn for_request(&self, https: bool, origin: Option<&HeaderValue>) -> ResponseHeaders<'_> {
        let cors_origin = self.cors.as_ref().and_then(|c| {
            let o = origin?;
            let s = o.to_str().ok()?.to_ascii_lowercase();
            c.origins.iter().any(|p| p.matches(&s)).then(|| o.clone())
        });
        ResponseHeaders {
            owner: self,
            https,
            cors_origin,
        }
    }
}

impl Default for SecurityHeaders {
    fn default() -> Self {
        Self::new(&SecurityHeaderSettings::default())
    }
}

/// The security headers chosen for one answer.
#[derive(Clone, Debug)]
pub struct ResponseHeaders<'a> {
    owner: &'a SecurityHeaders,
    https: bool,
    cors_origin: Option<HeaderValue>,
}

impl ResponseHeaders<'_> {
    /// Adds the headers `headers` does not have yet and removes `Server` /
    /// `X-Powered-By`. `frameable` answers (shown in a provider's iframe)
    /// get no frame options and no CSP.
    pub fn apply(&self, headers: &mut HeaderMap, frameable: bool) {
        let o = self.owner;
        let base = if self.https { &o.tls } else { &o.plain };
        for (k, v) in base {
            if frameable && (k == "x-frame-options" || k == header::CONTENT_SECURITY_POLICY) {
                continue;
            }
            if !headers.contains_key(k) {
                headers.insert(k.clone(), v.clone());
            }
        }
        if let (Some(origin), Some(cors)) = (&self.cors_origin, &o.cors) {
            if !headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
                headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
                for (k, v) in &cors.fixed {
                    headers.insert(k.clone(), v.clone());
                }
                headers.append(header::VARY, HeaderValue::from_static("Origin"));
            }
        }
        if o.remove_server {
            headers.remove(header::SERVER);
        }
        if o.remove_powered_by {
            headers.remove("x-powered-by");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hv(s: &'static str) -> HeaderValue {
        HeaderValue::from_static(s)
    }

    fn cors(origins: &[&str], credentials: bool) -> SecurityHeaderSettings {
        SecurityHeaderSettings {
            cors: Some(CorsSettings {
                allowed_origins: origins.iter().map(|s| (*s).to_owned()).collect(),
                allow_credentials: credentials,
                ..CorsSettings::default()
            }),
            ..SecurityHeaderSettings::default()
        }
    }

    /// (settings, https, Origin, upstream headers, expected present, expected absent)
    #[test]
    fn security_and_cors_table() {
        let custom = SecurityHeaderSettings {
            hsts: Some(Hsts {
                max_age: 600,
                include_subdomains: false,
                preload: false,
            }),
            headers: vec![
                (HeaderName::from_static("x-frame-options"), hv("SAMEORIGIN")),
                (
                    HeaderName::from_static("content-security-policy"),
                    hv("default-src 'self'"),
                ),
                (
                    HeaderName::from_static("permissions-policy"),
                    hv("camera=()"),
                ),
                (HeaderName::from_static("x-custom"), hv("1")),
                (HeaderName::from_static("x-empty"), hv("")),
            ],
            ..SecurityHeaderSettings::default()
        };
        type Case<'a> = (
            &'a str,
            SecurityHeaderSettings,
            bool,
            Option<&'static str>,
            Vec<(&'static str, &'static str)>,
            Vec<(&'static str, &'static str)>,
            Vec<&'static str>,
        );
        let cases: Vec<Case<'_>> = vec![
            (
                "defaults over https",
                SecurityHeaderSettings::default(),
                true,
                None,
                vec![("server", "nginx"), ("x-powered-by", "php")],
                vec![
                    (
                        "strict-transport-security",
                        "max-age=31536000; includeSubDomains; preload",
                    ),
                    ("x-frame-options", "DENY"),
                    ("x-content-type-options", "nosniff"),
                    ("x-xss-protection", "1; mode=block"),
                    ("referrer-policy", "strict-origin-when-cross-origin"),
                ],
                vec!["server", "x-powered-by", "access-control-allow-origin"],
            ),
            (
                "no HSTS over http",
                SecurityHeaderSettings::default(),
                false,
                None,
                vec![],
                vec![("x-frame-options", "DENY")],
                vec!["strict-transport-security"],
            ),
            (
                "upstream's own value wins",
                SecurityHeaderSettings::default(),
                true,
                None,
                vec![("x-frame-options", "SAMEORIGIN")],
                vec![("x-frame-options", "SAMEORIGIN")],
                vec![],
            ),
            (
                "custom fields",
                custom,
                true,
                None,
                vec![],
                vec![
                    ("strict-transport-security", "max-age=600"),
                    ("x-frame-options", "SAMEORIGIN"),
                    ("content-security-policy", "default-src 'self'"),
                    ("permissions-policy", "camera=()"),
                    ("x-custom", "1"),
                ],
                vec!["x-empty", "x-xss-protection"],
            ),
            (
                "disabled",
                SecurityHeaderSettings::disabled(),
                true,
                Some("https://a.example.com"),
                vec![("server", "nginx")],
                vec![("server", "nginx")],
                vec![
                    "strict-transport-security",
                    "x-frame-options",
                    "access-control-allow-origin",
                ],
            ),
            (
                "cors exact origin",
                cors(&["https://app.example.com"], true),
                true,
                Some("https://app.example.com"),
                vec![],
                vec![
                    ("access-control-allow-origin", "https://app.example.com"),
                    ("access-control-allow-methods", "GET, POST, OPTIONS"),
                    (
                        "access-control-allow-headers",
                        "Authorization, Content-Type",
                    ),
                    ("access-control-allow-credentials", "true"),
                    ("access-control-max-age", "86400"),
                    ("vary", "Origin"),
                ],
                vec![],
            ),
            (
                "cors other origin",
                cors(&["https://app.example.com"], true),
                true,
                Some("https://evil.example.org"),
                vec![],
                vec![],
                vec![
                    "access-control-allow-origin",
                    "access-control-allow-credentials",
                ],
            ),
            (
                "cors wildcard sub-domain",
                cors(&["https://*.example.com"], false),
                true,
                Some("https://a.b.example.com"),
                vec![],
                vec![("access-control-allow-origin", "https://a.b.example.com")],
                vec!["access-control-allow-credentials"],
            ),
            (
                "cors wildcard is not the apex",
                cors(&["https://*.example.com"], false),
                true,
                Some("https://example.com"),
                vec![],
                vec![],
                vec!["access-control-allow-origin"],
            ),
            (
                "cors wildcard is not a look-alike",
                cors(&["https://*.example.com"], false),
                true,
                Some("https://evilexample.com"),
                vec![],
                vec![],
                vec!["access-control-allow-origin"],
            ),
            (
                "cors wildcard is not a suffix of another host",
                cors(&["https://*.example.com"], false),
                true,
                Some("https://a.example.com.evil.net"),
                vec![],
                vec![],
                vec!["access-control-allow-origin"],
            ),
            (
                "cors wildcard keeps the scheme",
                cors(&["https://*.example.com"], false),
                true,
                Some("http://a.example.com"),
                vec![],
                vec![],
                vec!["access-control-allow-origin"],
            ),
            (
                "cors star echoes the origin",
                cors(&["*"], true),
                false,
                Some("https://x.test"),
                vec![],
                vec![("access-control-allow-origin", "https://x.test")],
                vec![],
            ),
            (
                "cors without Origin",
                cors(&["*"], true),
                false,
                None,
                vec![],
                vec![],
                vec!["access-control-allow-origin"],
            ),
        ];
        for (name, settings, https, origin, upstream, present, absent) in cases {
            let sh = SecurityHeaders::new(&settings);
            let mut h = HeaderMap::new();
            for (k, v) in upstream {
                h.insert(k, hv(v));
            }
            let origin = origin.map(hv);
            sh.for_request(https, origin.as_ref()).apply(&mut h, false);
            for (k, v) in present {
                assert_eq!(
                    h.get(k).map(|x| x.to_str().unwrap()),
                    Some(v),
                    "{name}: {k}"
                );
            }
            for k in absent {
                assert!(h.get(k).is_none(), "{name}: {k} present");
            }
        }
    }

    #[test]
    fn frameable_answers_get_no_frame_options_or_csp() {
        let s = SecurityHeaderSettings {
            headers: vec![
                (HeaderName::from_static("x-frame-options"), hv("DENY")),
                (
                    HeaderName::from_static("content-security-policy"),
                    hv("frame-ancestors 'none'"),
                ),
            ],
            ..SecurityHeaderSettings::default()
        };
        let mut h = HeaderMap::new();
        SecurityHeaders::new(&s)
            .for_request(true, None)
            .apply(&mut h, true);
        assert!(h.get("x-frame-options").is_none());
        assert!(h.get("content-security-policy").is_none());
        assert!(h.get("strict-transport-security").is_some());
    }
}
