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
    /// The path means different things to different servers: an encoded
    /// separator or dot-segment, a dot-segment with parameters (`..;`), an
    /// escape left after decoding once (`%252e`), a dot-like segment
    /// (`...`, `.. `), an empty segment before `..`, or a look-alike of `.`,
    /// `/` or `\`.
    #[error("request path is ambiguous")]
    Ambiguous,
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
///
/// Paths whose meaning differs between common servers are refused
/// ([`ViewError::Ambiguous`]) rather than given one meaning here: upstreams
/// behind forward-auth see the original path, so the gate judges only paths
/// every server reads the same way. The result is a fixed point: normalising
/// it again yields it unchanged.
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
    // Servers differ on whether `%2F` separates and `%2e` is a dot, and on
    // how many times they decode.
    if raw.split('/').any(has_encoded_separator_or_dot)
        || has_escape(&decoded)
        || decoded.chars().any(is_look_alike)
    {
        return Err(ViewError::Ambiguous);
    }
    let mut out: Vec<&str> = Vec::new();
    let trailing = decoded.ends_with('/') || decoded.ends_with("/.") || decoded.ends_with("/..");
    let mut empty_seen = false;
    for (i, seg) in decoded.split('/').enumerate() {
        match seg {
            "" => empty_seen |= i > 0,
            "." => {}
            ".." => {
                // `/a//..` is `/a` to servers that keep empty segments and
                // `/` to those that merge them.
                if empty_seen {
                    return Err(ViewError::Ambiguous);
                }
                out.pop();
            }
            s if is_dot_like(s) => return Err(ViewError::Ambiguous),
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

/// True when a raw (still encoded) segment holds an encoded `/`, or
/// decodes to a dot-segment it does not literally spell.
fn has_encoded_separator_or_dot(raw_seg: &str) -> bool {
    let lower = raw_seg.to_ascii_lowercase();
    if lower.contains("%2f") {
        return true;
    }
    let name = lower.split(';').next().unwrap_or("");
    name.contains("%2e") && name.split("%2e").all(|p| p.chars().all(|c| c == '.'))
}

/// True when `decoded` still holds a `%XX` escape (it was encoded twice).
fn has_escape(decoded: &str) -> bool {
    let b = decoded.as_bytes();
    b.windows(3)
        .any(|w| w[0] == b'%' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit())
}

/// Characters some servers map onto `.`, `/` or `\` (fullwidth forms,
/// division and fraction slashes, one-dot leader).
fn is_look_alike(c: char) -> bool {
    matches!(
        c,
        '\u{FF0E}' | '\u{FF0F}' | '\u{FF3C}' | '\u{2215}' | '\u{2044}' | '\u{2024}' | '\u{FE52}'
    )
}

/// A segment other than `.` and `..` that some server reads as one: dots
/// and spaces only (`...`, `.. `), or a dot-segment with parameters
/// (`..;x`, `.;`).
fn is_dot_like(seg: &str) -> bool {
    let name = seg.split(';').next().unwrap_or("");
    let dots_and_spaces = !name.is_empty() && name.chars().all(|c| c == '.' || c == ' ');
    let is_dot = name == "." || name == "..";
    (dots_and_spaces && name.contains('.') && !is_dot) || (is_dot && seg.contains(';'))
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
            ("/excluded/%2e%2e/private", Err(ViewError::Ambiguous)),
            ("/excluded%2F..%2Fprivate", Err(ViewError::Ambiguous)),
            ("/public#/../private", Err(ViewError::Fragment)),
            ("/x?y=1#frag", Err(ViewError::Fragment)),
            ("/x?y=1", Ok(("/x", Some("y=1")))),
            ("//a//b", Ok(("/a/b", None))),
            ("/a/./b/..", Ok(("/a/", None))),
            ("/../../etc", Ok(("/etc", None))),
            ("/%252e%252e/x", Err(ViewError::Ambiguous)),
            ("/files/100%25", Ok(("/files/100%", None))),
            ("/a%3Bb/c", Ok(("/a;b/c", None))),
            ("/a/b%2ec", Ok(("/a/b.c", None))),
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
    fn issue12_f4_ambiguous_paths_are_refused() {
        for p in [
            "/public/..;/admin",
            "/public/..;jsessionid=x/admin",
            "/public/.;/admin",
            "/public/%2e%2e;/admin",
            "/public/..%3B/admin",
            "/public/%252e%252e/admin",
            "/public%252Fadmin",
            "/public/%2541",
            "/admin/%2e%2e/public",
            "/admin/.%2e/public",
            "/admin/%2E/x",
            "/admin%2fx",
            "/admin%2F..%2Fpublic",
            "/admin//../public",
            "/public/.../admin",
            "/public/.. /admin",
            "/public/ ../admin",
            "/public/\u{FF0E}\u{FF0E}/admin",
            "/public\u{FF0F}admin",
            "/public/%EF%BC%8E%EF%BC%8E/admin",
        ] {
            assert_eq!(split_target(p), Err(ViewError::Ambiguous), "{p}");
        }
        // Not ambiguous: parameters on ordinary segments, dots inside
        // names, a percent sign that escapes nothing.
        for (p, want) in [
            ("/a;v=1/b", "/a;v=1/b"),
            ("/a/..b/.c", "/a/..b/.c"),
            ("/50%25off", "/50%off"),
            ("/a/b/../c", "/a/c"),
        ] {
            assert_eq!(split_target(p).map(|(p, _)| p).as_deref(), Ok(want), "{p}");
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
