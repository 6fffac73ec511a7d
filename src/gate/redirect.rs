//! Which redirect targets are safe (after login, after logout, `rd`).
//!
//! A target is a host-relative path, or an absolute http(s) URL whose host is
//! the request's own host or on the configured allowlist. Backslashes, `//`,
//! encoded or raw whitespace and control characters are refused anywhere.

use percent_encoding::percent_decode_str;

/// Longest redirect target accepted.
pub const MAX_REDIRECT_BYTES: usize = 4096;

/// Returns `target` if it is a safe place to send the browser, else `None`.
/// `own_host` is the host of the request; `allowed_hosts` the configured list.
pub fn safe_redirect(target: &str, own_host: &str, allowed_hosts: &[String]) -> Option<String> {
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
    let host = url.host_str()?.to_ascii_lowercase();
    let host_port = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.clone(),
    };
    let own = own_host.to_ascii_lowercase();
    let allowed = own == host_port
        || own == host
        || allowed_hosts.iter().any(|a| {
            let a = a.to_ascii_lowercase();
            a == host
                || a == host_port
                || a.strip_prefix("*.")
                    .is_some_and(|suffix| host.ends_with(&format!(".{suffix}")))
        });
    allowed.then(|| url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

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
            ("https://user@app.example.com/", None),
            ("javascript:alert(1)", None),
            ("evil.com", None),
            ("", None),
        ];
        for (t, want) in cases {
            assert_eq!(
                safe_redirect(t, "gate.local:8443", &allowed).as_deref(),
                *want,
                "{t:?}"
            );
        }
    }
}
