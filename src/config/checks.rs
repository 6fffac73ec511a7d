//! Checks shared by several concerns: URLs, paths, PEM bundles, lists.

use super::{ConfigError, bad};

/// Trims, drops empties and duplicates, keeps the first order.
pub(super) fn dedup(v: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in v {
        let s = s.trim().to_owned();
        if !s.is_empty() && !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// A path the gate serves: starts with one `/`, no query, fragment,
/// backslash or space.
pub(super) fn check_path(key: &str, p: &str) -> Result<(), ConfigError> {
    if !p.starts_with('/') || p.starts_with("//") || p.contains(['?', '#', '\\', ' ']) {
        return Err(bad(
            key,
            format!("{p:?} must be a path starting with / (not a URL)"),
        ));
    }
    Ok(())
}

/// A PEM bundle holding at least one certificate.
pub(super) fn check_pem(key: &str, pem: &[u8]) -> Result<(), ConfigError> {
    match reqwest::Certificate::from_pem_bundle(pem) {
        Ok(c) if !c.is_empty() => Ok(()),
        _ => Err(bad(key, "holds no PEM certificate")),
    }
}

/// https:// URLs, or http:// on loopback hosts only.
pub(super) fn check_url(key: &str, u: &str) -> Result<(), ConfigError> {
    let url = url::Url::parse(u).map_err(|_| bad(key, format!("{u:?} is not a URL")))?;
    let host = url.host_str().ok_or_else(|| bad(key, "URL has no host"))?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback_host(host) => Ok(()),
        "http" => Err(bad(
            key,
            "must use https (plain http is accepted only for loopback hosts)",
        )),
        _ => Err(bad(key, "must be an https URL")),
    }
}

fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// An optional URL key: trimmed, empty means unset, checked with [`check_url`].
pub(super) fn optional_url(key: &str, v: Option<&str>, r: &mut super::Report) -> Option<String> {
    let u = v.map(str::trim).filter(|u| !u.is_empty())?;
    r.check(check_url(key, u)).map(|()| u.to_owned())
}
