//! Which redirect targets are safe (after login, after logout, `rd`).
//!
//! A target is a host-relative path, or an absolute http(s) URL on the
//! request's own origin (same scheme, host and port) or on a host of the
//! configured allowlist (its default port unless the entry names one; `http`
//! only when the request itself is `http`). Backslashes, `//`, encoded or raw
//! whitespace and control characters are refused anywhere.

use percent_encoding::percent_decode_str;

/// Longest redirect target accepted.
pub const MAX_REDIRECT_BYTES: usize = 4096;

/// Returns `target` if it is a safe place to send the browser, else `None`.
/// `own_host` is the host of the request (with its port, if any), `own_https`
/// its scheme; `allowed_hosts` the configured list.
pub fn safe_redirect(
    target: &str,
    own_host: &str,
    own_https: bool,
    allowed_hosts: &[String],
) -> Option<String> {
    if target.is_empty() || target.len() > MAX_REDIRECT_BYTES {
        return None;
    }
    let decoded = percent_decode_str(target).decode_utf8().ok()?;
    for s in [target, decoded.as_ref()] {
        if s.chars()
            .any(|c| c.is_control() || c.is_whitespace() && c != ' ' || c == '\\')
        {
            return None;
        }
    }
    if decoded.contains(' ') && decoded.trim_start_matches('/').starts_with(' ') {
        return None;
    }
    if target.starts_with('/') {
        // Host-relative: refuse scheme-relative `//host` in raw or decoded form.
        if target.starts_with("//") || decoded.starts_with("//") {
            return None;
        }
        return Some(target.to_owned());
    }
    let url = url::Url::parse(target).ok()?;
    if !matches!(url.scheme(), "https" | "http")
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return None;
    }
    let https = url.scheme() == "https";
    if !https && own_https {
        return None;
    }
    let host = url.host_str()?.to_ascii_lowercase();
    let port = url.port_or_known_default()?;
    let own_default = if own_https { 443 } else { 80 };
    let own = own_host.to_ascii_lowercase();
    let (own_name, own_port) = split_host_port(&own, own_default)?;
    let same_origin = https == own_https && host == own_name && port == own_port;
    let allowed = same_origin
        || allowed_hosts.iter().any(|a| {
            let a = a.to_ascii_lowercase();
            let default = if https { 443 } else { 80 };
            let Some((name, p)) = split_host_port(&a, default) else {
                return false;
            };
            let name_ok = name == host
                || name
                    .strip_prefix("*.")
                    .is_some_and(|suffix| host.ends_with(&format!(".{suffix}")));
            name_ok && p == port
        });
    allowed.then(|| url.to_string())
}

/// `host[:port]` (IPv6 in brackets) into the host and the port, `default`
/// when absent; `None` when the port is not a number.
fn split_host_port(s: &str, default: u16) -> Option<(&str, u16)> {
    let colon = match s.rfind(':') {
        Some(i) if !s[i..].contains(']') => i,
        _ => return Some((s, default)),
    };
    let port = s.get(colon + 1..)?.parse().ok()?;
    Some((s.get(..colon)?, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue12_f10_rd_to_another_port_or_scheme_is_refused() {
        let allowed = vec!["api.example.com:8443".to_owned()];
        let cases: &[(&str, Option<&str>)] = &[
            ("http://app.test/x", Some("http://app.test/x")),
            ("http://app.test:80/x", Some("http://app.test/x")),
            ("http://app.test:9999/x", None),
            ("https://app.test/x", None),
            (
                "https://api.example.com:8443/",
                Some("https://api.example.com:8443/"),
            ),
            ("https://api.example.com/", None),
            (
                "http://api.example.com:8443/",
                Some("http://api.example.com:8443/"),
            ),
        ];
        for (t, want) in cases {
            assert_eq!(
                safe_redirect(t, "app.test", false, &allowed).as_deref(),
                *want,
                "{t:?}"
            );
        }
        assert_eq!(
            safe_redirect("http://[::1]:8080/", "[::1]:8080", false, &[]).as_deref(),
            Some("http://[::1]:8080/")
        );
        assert_eq!(
            safe_redirect("http://[::1]:8081/", "[::1]:8080", false, &[]),
            None
        );
    }

    #[test]
    fn redirect_table() {
        let allowed = vec!["app.example.com".to_owned(), "*.corp.example".to_owned()];
        let cases: &[(&str, Option<&str>)] = &[
            ("/", Some("/")),
            ("/dashboard?tab=1", Some("/dashboard?tab=1")),
            ("/a%20b", Some("/a%20b")),
            ("//evil.com", None),
            ("/%2Fevil.com", None),
            ("/\\evil.com", None),
            ("/%5Cevil.com", None),
            ("\\\\evil.com", None),
            ("/%09/evil.com", None),
            ("/%0d%0aSet-Cookie:x", None),
            ("/\tevil", None),
            ("/ /evil.com", None),
            ("https://evil.com/", None),
            (
                "https://app.example.com/x",
                Some("https://app.example.com/x"),
            ),
            ("https://a.corp.example/x", Some("https://a.corp.example/x")),
            ("https://corp.example.evil.com/", None),
            (
                "https://gate.local:8443/back",
                Some("https://gate.local:8443/back"),
            ),
            // Same host, another port or scheme: another origin.
            ("https://gate.local/back", None),
            ("https://gate.local:9443/back", None),
            ("http://gate.local:8443/back", None),
            ("https://app.example.com:8443/x", None),
            ("http://app.example.com/x", None),
            ("https://user@app.example.com/", None),
            ("javascript:alert(1)", None),
            ("evil.com", None),
            ("", None),
        ];
        for (t, want) in cases {
            assert_eq!(
                safe_redirect(t, "gate.local:8443", true, &allowed).as_deref(),
                *want,
                "{t:?}"
            );
        }
    }
}
