//! The one canonical view of a request that every decision reads.
//!
//! Doors build a [`RequestView`] from whatever they receive (the request itself,
//! or `X-Forwarded-*` from a trusted proxy). The path is normalised here, once:
//! fragment refused, percent-decoded once, dot-segments resolved, repeated
//! slashes merged. Callback, logout and excluded-URL matching all use that same
//! path, and the reverse proxy forwards exactly it.

use std::net::IpAddr;

use http::{HeaderMap, Method, header};
use percent_encoding::percent_decode_str;

/// Why a request line cannot be interpreted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ViewError {
    /// The path does not start with `/` or is otherwise unusable.
    #[error("request path is not an absolute path")]
    NotAbsolute,
    /// The path decodes to invalid UTF-8, a control character or a backslash.
    #[error("request path holds forbidden characters")]
    ForbiddenCharacters,
    /// The target carries a fragment, which no client sends on the wire.
    #[error("request target holds a fragment")]
    Fragment,
    /// The path is longer than [`MAX_PATH_BYTES`].
    #[error("request path too long")]
    TooLong,
}

/// Longest request target accepted.
pub const MAX_PATH_BYTES: usize = 8 * 1024;

/// What the gate knows about a request.
#[derive(Clone, Debug)]
pub struct RequestView {
    /// The original method.
    pub method: Method,
    /// True when the original request used HTTPS.
    pub https: bool,
    /// The original host (may include a port).
    pub host: String,
    /// The normalised path (decoded once, dot-segments resolved).
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// The client's headers (cookies, accept, authorization, ...).
    pub headers: HeaderMap,
    /// The client address (peer, or X-Forwarded-For from a trusted proxy).
    pub client_ip: IpAddr,
    /// Set by the auth_request door: never start a login, answer 401 instead.
    pub probe: bool,
    /// The request is a question about another request (forward-auth,
    /// auth_request): a 2xx answer lets that request through, so a page the
    /// gate authors is never answered with a 2xx.
    pub verdict: bool,
}

impl RequestView {
    /// Builds a view from an original request target (`/path?query#frag`).
    pub fn new(
        method: Method,
        https: bool,
        host: &str,
        target: &str,
        headers: HeaderMap,
        client_ip: IpAddr,
    ) -> Result<Self, ViewError> {
        let (path, query) = split_target(target)?;
        Ok(Self {
            method,
            https,
            host: host.to_owned(),
            path,
            query,
            headers,
            client_ip,
            probe: false,
            verdict: false,
        })
    }

    /// The normalised path and query, as it may be sent upstream or used as a
    /// return address: `/path?query` with the path re-encoded.
    pub fn path_and_query(&self) -> String {
        let mut s = encode_path(&self.path);
        if let Some(q) = &self.query {
            s.push('?');
            s.push_str(q);
        }
        s
    }

    /// The value of query parameter `name` (decoded), if present.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let q = self.query.as_deref()?;
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// True when the caller is a script or sub-resource load rather than a
    /// page navigation: it must get 401, never a redirect to the provider.
    pub fn is_non_navigation(&self) -> bool {
        let h = |n: header::HeaderName| self.headers.get(n).and_then(|v| v.to_str().ok());
        if self
            .headers
            .get("x-requested-with")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("xmlhttprequest"))
        {
            return true;
        }
        if h(header::CONTENT_TYPE).is_some_and(|v| v.contains("application/json")) {
            return true;
        }
        if let Some(mode) = self
            .headers
            .get("sec-fetch-mode")
            .and_then(|v| v.to_str().ok())
        {
            return !mode.eq_ignore_ascii_case("navigate");
        }
        match h(header::ACCEPT).map(str::trim) {
            None | Some("") | Some("*/*") => false,
            Some(a) => a.contains("application/json") || !a.contains("text/html"),
        }
    }

    /// True when errors should be JSON rather than an HTML page.
    pub fn wants_json(&self) -> bool {
        let accept = self
            .headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        accept.contains("application/json")
            || (self.is_non_navigation() && !accept.contains("text/html"))
    }
}

/// Splits a request target into a normalised path and the raw query.
pub fn split_target(target: &str) -> Result<(String, Option<String>), ViewError> {
    if target.len() > MAX_PATH_BYTES {
        return Err(ViewError::TooLong);
    }
    // A fragment never travels in a request; one in a forwarded URI is an
    // attempt to make the gate judge a different path than the upstream.
    if target.contains('#') {
        return Err(ViewError::Fragment);
    }
    let without_fragment = target;
    let (raw_path, query) = match without_fragment.split_once('?') {
        Some((p, q)) => (p, Some(q.to_owned()).filter(|q| !q.is_empty())),
        None => (without_fragment, None),
    };
    Ok((normalize_path(raw_path)?, query))
}

/// Decodes `raw` once and resolves dot-segments and repeated slashes.
pub fn normalize_path(raw: &str) -> Result<String, ViewError> {
    if !raw.starts_with('/') {
        return Err(ViewError::NotAbsolute);
    }
    let decoded = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| ViewError::ForbiddenCharacters)?;
    if decoded.chars().any(|c| c.is_control() || c == '\\') {
        return Err(ViewError::ForbiddenCharacters);
    }
    let mut out: Vec<&str> = Vec::new();
    let trailing = decoded.ends_with('/') || decoded.ends_with("/.") || decoded.ends_with("/..");
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut path = String::with_capacity(decoded.len());
    for seg in &out {
        path.push('/');
        path.push_str(seg);
    }
    if path.is_empty() || (trailing && !out.is_empty()) {
        path.push('/');
    }
    Ok(path)
}

/// Characters escaped when a decoded path is sent on.
const PATH_ESCAPE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// Re-encodes a normalised path for the wire.
pub fn encode_path(path: &str) -> String {
    percent_encoding::utf8_percent_encode(path, PATH_ESCAPE).to_string()
}

/// True when `path` is `prefix` or lies under it at a segment boundary.
pub fn path_matches_prefix(path: &str, prefix: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    let prefix = prefix.trim_end_matches('/');
    path == prefix || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    type Expected = Result<(&'static str, Option<&'static str>), ViewError>;

    #[test]
    fn normalisation_table() {
        let cases: &[(&str, Expected)] = &[
            ("/", Ok(("/", None))),
            ("/a/b", Ok(("/a/b", None))),
            ("/a/b/", Ok(("/a/b/", None))),
            ("/excluded/../private", Ok(("/private", None))),
            ("/excluded/%2e%2e/private", Ok(("/private", None))),
            ("/excluded%2F..%2Fprivate", Ok(("/private", None))),
            ("/public#/../private", Err(ViewError::Fragment)),
            ("/x?y=1#frag", Err(ViewError::Fragment)),
            ("/x?y=1", Ok(("/x", Some("y=1")))),
            ("//a//b", Ok(("/a/b", None))),
            ("/a/./b/..", Ok(("/a/", None))),
            ("/../../etc", Ok(("/etc", None))),
            ("/%252e%252e/x", Ok(("/%2e%2e/x", None))),
            ("/a%00b", Err(ViewError::ForbiddenCharacters)),
            ("/a%5cb", Err(ViewError::ForbiddenCharacters)),
            ("/a\\b", Err(ViewError::ForbiddenCharacters)),
            ("/%ff", Err(ViewError::ForbiddenCharacters)),
            ("relative", Err(ViewError::NotAbsolute)),
        ];
        for (input, want) in cases {
            let got = split_target(input);
            let want = want
                .clone()
                .map(|(p, q)| (p.to_owned(), q.map(str::to_owned)));
            assert_eq!(got, want, "{input}");
        }
    }

    #[test]
    fn prefix_matching_is_segment_bounded() {
        assert!(path_matches_prefix("/public", "/public"));
        assert!(path_matches_prefix("/public/x", "/public"));
        assert!(path_matches_prefix("/public/x", "/public/"));
        assert!(!path_matches_prefix("/publicity", "/public"));
        assert!(!path_matches_prefix("/healthcheck-admin", "/health"));
    }

    #[test]
    fn encode_round_trip_keeps_literal_percent() {
        assert_eq!(encode_path("/%2e%2e/x y"), "/%252e%252e/x%20y");
    }

    fn view(headers: &[(&str, &str)]) -> RequestView {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        RequestView::new(
            Method::GET,
            false,
            "app",
            "/",
            h,
            IpAddr::from([127, 0, 0, 1]),
        )
        .unwrap()
    }

    #[test]
    fn navigation_detection_table() {
        let cases: &[(&[(&str, &str)], bool)] = &[
            (&[], false),
            (&[("accept", "*/*")], false),
            (&[("accept", "text/html,application/xhtml+xml")], false),
            (&[("accept", "application/json")], true),
            (&[("accept", "image/png")], true),
            (
                &[
                    ("x-requested-with", "XMLHttpRequest"),
                    ("accept", "text/html"),
                ],
                true,
            ),
            (&[("sec-fetch-mode", "cors"), ("accept", "text/html")], true),
            (&[("sec-fetch-mode", "navigate"), ("accept", "*/*")], false),
            (&[("content-type", "application/json")], true),
        ];
        for (headers, non_nav) in cases {
            assert_eq!(view(headers).is_non_navigation(), *non_nav, "{headers:?}");
        }
    }
}
