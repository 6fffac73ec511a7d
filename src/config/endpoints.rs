//! The gate's own paths and the paths it leaves alone: callback, logout,
//! after-logout target, back- and front-channel logout, excluded paths,
//! allowed redirect hosts, `forceHTTPS`, and the pages the gate shows
//! (`customTemplatesDir`).
//!
//! Owns the refusals of these keys, including an excluded path that would
//! swallow one of the gate's own endpoints.

use serde::Deserialize;

use super::Report;
use super::checks::{check_path, check_url};
use crate::gate::{DEFAULT_CALLBACK_PATH, Pages};

/// Default back-channel logout path.
pub const DEFAULT_BACKCHANNEL_PATH: &str = "/oauth2/backchannel-logout";
/// Default front-channel logout path.
pub const DEFAULT_FRONTCHANNEL_PATH: &str = "/oauth2/frontchannel-logout";

/// The endpoint keys as written.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct Raw {
    /// Redirect-URI path.
    #[serde(rename = "callbackURL")]
    pub(super) callback_url: Option<String>,
    /// Logout path.
    #[serde(rename = "logoutURL")]
    pub(super) logout_url: Option<String>,
    /// After-logout target.
    #[serde(rename = "postLogoutRedirectURI")]
    pub(super) post_logout_redirect_uri: Option<String>,
    /// Unauthenticated path prefixes.
    #[serde(rename = "excludedURLs")]
    pub(super) excluded_urls: Vec<String>,
    /// Hosts allowed as absolute redirect targets.
    #[serde(rename = "allowedRedirectHosts")]
    pub(super) allowed_redirect_hosts: Vec<String>,
    /// Treat requests as HTTPS.
    #[serde(rename = "forceHTTPS")]
    pub(super) force_https: bool,
    /// Serve OIDC Back-Channel Logout.
    #[serde(rename = "enableBackchannelLogout")]
    pub(super) enable_backchannel_logout: bool,
    /// Its path (default `/oauth2/backchannel-logout`).
    #[serde(rename = "backchannelLogoutURL")]
    pub(super) backchannel_logout_url: Option<String>,
    /// Serve OIDC Front-Channel Logout.
    #[serde(rename = "enableFrontchannelLogout")]
    pub(super) enable_frontchannel_logout: bool,
    /// Its path (default `/oauth2/frontchannel-logout`).
    #[serde(rename = "frontchannelLogoutURL")]
    pub(super) frontchannel_logout_url: Option<String>,
    /// Directory of page templates replacing the built-in ones.
    #[serde(rename = "customTemplatesDir")]
    pub(super) custom_templates_dir: Option<String>,
}

/// What the endpoint keys configure (fields of the gate's settings).
pub(super) struct Parts {
    pub(super) callback_path: String,
    pub(super) logout_path: String,
    pub(super) post_logout_redirect: String,
    pub(super) excluded: Vec<String>,
    pub(super) allowed_redirect_hosts: Vec<String>,
    pub(super) force_https: bool,
    pub(super) backchannel_path: Option<String>,
    pub(super) frontchannel_path: Option<String>,
    pub(super) pages: Pages,
}

/// Validates the endpoint keys.
pub(super) fn settings(raw: Raw, r: &mut Report) -> Parts {
    let callback_path = raw
        .callback_url
        .unwrap_or_else(|| DEFAULT_CALLBACK_PATH.into());
    r.check(check_path("callbackURL", &callback_path));
    // A logout path derived from a refused callback path is not refused again.
    let logout_path = match raw.logout_url {
        Some(p) => {
            r.check(check_path("logoutURL", &p));
            p
        }
        None => format!("{callback_path}/logout"),
    };
    let post_logout_redirect = raw.post_logout_redirect_uri.unwrap_or_else(|| "/".into());
    if !post_logout_redirect.starts_with('/') || post_logout_redirect.starts_with("//") {
        r.check(check_url("postLogoutRedirectURI", &post_logout_redirect));
    }

    for (i, p) in raw.excluded_urls.iter().enumerate() {
        let key = format!("excludedURLs[{i}]");
        if !p.starts_with('/') || p.contains("..") || p.contains('*') {
            r.error(
                &key,
                format!("{p:?} must be a path starting with / without .. or *"),
            );
        } else if p.trim_end_matches('/').is_empty() {
            r.error(
                &key,
                "\"/\" would exclude every path; remove the gate instead",
            );
        } else if let Some(own) = [
            callback_path.as_str(),
            logout_path.as_str(),
            crate::gate::START_PATH,
        ]
        .into_iter()
        .find(|own| crate::gate::path_matches_prefix(own, p))
        {
            r.error(
                &key,
                format!("{p:?} would exclude the gate's own path {own}"),
            );
        }
    }

    let backchannel_path = channel(
        raw.enable_backchannel_logout,
        raw.backchannel_logout_url,
        "backchannelLogoutURL",
        DEFAULT_BACKCHANNEL_PATH,
        r,
    );
    let frontchannel_path = channel(
        raw.enable_frontchannel_logout,
        raw.frontchannel_logout_url,
        "frontchannelLogoutURL",
        DEFAULT_FRONTCHANNEL_PATH,
        r,
    );
    let pages = match raw
        .custom_templates_dir
        .as_deref()
        .filter(|d| !d.is_empty())
    {
        None => Pages::builtin(),
        Some(dir) => Pages::from_dir(std::path::Path::new(dir)).unwrap_or_else(|errors| {
            for e in errors {
                r.error("customTemplatesDir", e.to_string());
            }
            Pages::builtin()
        }),
    };
    Parts {
        pages,
        callback_path,
        logout_path,
        post_logout_redirect,
        excluded: raw.excluded_urls,
        allowed_redirect_hosts: raw.allowed_redirect_hosts,
        force_https: raw.force_https,
        backchannel_path,
        frontchannel_path,
    }
}

/// A logout channel's path when it is enabled. traefikoidc normalises `x`,
/// `//x` and `/\x` to `/x`.
fn channel(
    enabled: bool,
    url: Option<String>,
    key: &str,
    default: &str,
    r: &mut Report,
) -> Option<String> {
    if !enabled {
        return None;
    }
    let raw_path = url
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| default.to_owned());
    let path = format!("/{}", raw_path.trim_start_matches(['/', '\\']));
    r.check(check_path(key, &path)).map(|()| path)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::super::tests::{check_refusals, load};

    #[test]
    fn refusals_name_their_key() {
        let cases: &[(&str, &[&str])] = &[
            ("callbackURL: https://app/callback\n", &["callbackURL"]),
            ("logoutURL: logout\n", &["logoutURL"]),
            (
                "postLogoutRedirectURI: http://evil.example\n",
                &["postLogoutRedirectURI"],
            ),
            ("excludedURLs: [public]\n", &["excludedURLs[0]"]),
            ("excludedURLs: [/ok, /a/../b]\n", &["excludedURLs[1]"]),
            ("excludedURLs: ['/*']\n", &["excludedURLs[0]"]),
            ("excludedURLs: [/]\n", &["excludedURLs[0]"]),
            ("excludedURLs: [/oauth2]\n", &["excludedURLs[0]"]),
            (
                "excludedURLs: [a, /ok, /oauth2/start]\n",
                &["excludedURLs[0]", "excludedURLs[2]"],
            ),
            (
                "enableBackchannelLogout: true\nbackchannelLogoutURL: 'a b'\n",
                &["backchannelLogoutURL"],
            ),
            (
                "enableFrontchannelLogout: true\nfrontchannelLogoutURL: '/x?y'\n",
                &["frontchannelLogoutURL"],
            ),
            ("forceHTTPS: maybe\n", &["forceHTTPS"]),
            (
                "customTemplatesDir: /nonexistent/oidcgate-templates\n",
                // One error per missing page file.
                &["customTemplatesDir"; 6],
            ),
        ];
        check_refusals(cases);
    }

    /// A fresh directory holding the built-in templates.
    fn template_dir(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("oidcgate-templates-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/templates");
        for kind in crate::gate::PageKind::ALL {
            std::fs::copy(shipped.join(kind.file_name()), dir.join(kind.file_name())).unwrap();
        }
        dir
    }

    #[test]
    fn custom_templates_dir_replaces_the_pages() {
        let dir = template_dir("ok");
        std::fs::write(
            dir.join("forbidden.html"),
            "<p>Custom: {{user}} / {{request_id}}</p>",
        )
        .unwrap();
        let c = load(&format!("customTemplatesDir: {}\n", dir.display())).unwrap();
        assert!(c.gate.pages.is_custom());
        let data = crate::gate::PageData {
            user: "<b>x</b>".into(),
            request_id: "r1".into(),
            ..Default::default()
        };
        let (html, _) = c
            .gate
            .pages
            .render(crate::gate::PageKind::Forbidden, &data, false);
        assert_eq!(html, "<p>Custom: &lt;b&gt;x&lt;/b&gt; / r1</p>");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_missing_or_broken_template_is_refused_naming_the_file() {
        let dir = template_dir("broken");
        std::fs::remove_file(dir.join("logged-out.html")).unwrap();
        std::fs::write(dir.join("error.html"), "<p>{{colour}}</p>").unwrap();
        let errors = load(&format!("customTemplatesDir: {}\n", dir.display())).unwrap_err();
        assert_eq!(errors.keys(), ["customTemplatesDir", "customTemplatesDir"]);
        let text = errors.to_string();
        assert!(text.contains("logged-out.html: cannot read"), "{text}");
        assert!(
            text.contains("error.html: unknown variable \"colour\""),
            "{text}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn channel_paths_are_normalised_like_the_plugin() {
        let c = load(
            "enableBackchannelLogout: true\nbackchannelLogoutURL: '//bc'\n\
             enableFrontchannelLogout: true\n",
        )
        .unwrap();
        assert_eq!(c.gate.backchannel_path.as_deref(), Some("/bc"));
        assert_eq!(
            c.gate.frontchannel_path.as_deref(),
            Some(super::DEFAULT_FRONTCHANNEL_PATH)
        );
    }
}
