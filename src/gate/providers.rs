//! Several providers in one gate: the chooser every request passes first.
//!
//! The top-level configuration is the default provider; each `providers:`
//! entry is a named [`Gate`] of its own (its own provider client, session
//! cookies and rules) sharing the caches, clock and metrics. [`Gate::decide`]
//! asks [`Gate::chosen`] which of them answers a request: the callback goes
//! to the provider named in its `state` (the login that provider started),
//! a provider's own `logoutURL` to that provider, `/oauth2/start` by the
//! address it returns to, a front-channel logout by its `iss`, and every
//! other request by its routes (host and/or path prefix; the most specific
//! route wins; no route: the default provider). Doors never learn about
//! providers.
//!
//! Must not: let one provider's session, login state or cached token
//! verdict count for another. Named providers' cookies carry their name
//! (`<cookiePrefix><name>-s_0`, sealed with that prefix in the associated
//! data), their login `state` starts with `<name>.`, and their marks in the
//! shared caches are scoped by their name.

use std::sync::Arc;

use super::{Gate, RequestView, START_PATH, normalize_path};

/// The character between a named provider's name and the random part of
/// its `state` (never in a name, never in a random token).
pub const STATE_NAME_SEPARATOR: char = '.';

/// The longest provider name.
pub const MAX_PROVIDER_NAME_BYTES: usize = 32;

/// The name the top-level provider has in reports.
pub const DEFAULT_PROVIDER_NAME: &str = "default";

/// Whether `name` may name a provider: 1 to [`MAX_PROVIDER_NAME_BYTES`]
/// lower-case ASCII letters, digits and `-`, starting with a letter or digit,
/// and not [`DEFAULT_PROVIDER_NAME`].
pub fn valid_provider_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_PROVIDER_NAME_BYTES
        && name != DEFAULT_PROVIDER_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
}

/// Which requests a provider answers: a host, a path prefix, or both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Lower-case host name, with a port only when the route names one.
    pub host: Option<String>,
    /// Normalized path prefix (`/admin` matches `/admin` and `/admin/...`).
    pub path_prefix: Option<String>,
}

impl Route {
    /// How specifically this route matches `host` and `path`, when it does:
    /// a host and a path beat a host alone, which beats a path alone; a
    /// longer prefix beats a shorter one.
    fn specificity(&self, host: &str, path: &str) -> Option<(bool, usize)> {
        if let Some(want) = &self.host
            && !host_matches(want, host)
        {
            return None;
        }
        let prefix_len = match &self.path_prefix {
            Some(p) if prefix_matches(path, p) => p.len(),
            Some(_) => return None,
            None => 0,
        };
        Some((self.host.is_some(), prefix_len))
    }
}

/// `host` (as the request names it, maybe with a port) is `want`: names
/// compared ignoring ASCII case and a trailing dot (`b.example.com.` is
/// `b.example.com` to DNS and to proxies), ports as numbers (`08443` is
/// `8443`), and any port when `want` names none.
fn host_matches(want: &str, host: &str) -> bool {
    let (want_name, want_port) = split_port(want);
    let (name, port) = split_port(host);
    let port_ok = match want_port {
        None => true,
        Some(w) => port.is_some_and(|p| p.parse::<u16>().ok() == w.parse::<u16>().ok()),
    };
    port_ok
        && name
            .trim_end_matches('.')
            .eq_ignore_ascii_case(want_name.trim_end_matches('.'))
}

/// A host's name and port (`[::1]:8443` is `[::1]` and `8443`).
fn split_port(host: &str) -> (&str, Option<&str>) {
    if host.starts_with('[') {
        return match host.split_once(']') {
            Some((v6, rest)) => (
                host.get(..v6.len() + 1).unwrap_or(host),
                rest.strip_prefix(':'),
            ),
            None => (host, None),
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    }
}

/// `path` lies under the route prefix `prefix` as any common server could
/// read it: segment by segment, ignoring ASCII case (servers on
/// case-insensitive file systems, IIS) and a segment's `;parameters`
/// (Tomcat, Jetty and Spring read `/admin;v=1/x` as `/admin/x`). A path
/// some upstream serves under the prefix is judged by the prefix's provider,
/// never by another one.
fn prefix_matches(path: &str, prefix: &str) -> bool {
    let mut segments = path.split('/').skip(1);
    prefix.trim_end_matches('/').split('/').skip(1).all(|want| {
        segments.next().is_some_and(|seg| {
            seg.split(';')
                .next()
                .unwrap_or(seg)
                .eq_ignore_ascii_case(want)
        })
    })
}

/// A named provider and the routes that choose it.
pub(super) struct Named {
    pub(super) name: String,
    pub(super) routes: Vec<Route>,
    pub(super) gate: Gate,
}

/// The named providers of a gate (empty for a gate with one provider).
pub(super) type NamedProviders = Arc<[Named]>;

impl Gate {
    /// This gate as the default provider, with the named providers chosen
    /// by `routes`. Each named gate is built with its own settings (its name
    /// in [`super::GateSettings::provider_name`]) around the same caches,
    /// clock and metrics; all of them count against this gate's per-address
    /// limits (`rateLimit`, `perSourceLoginRateLimit`, the bearer and
    /// front-channel throttles), which are the gate's, not a provider's.
    pub fn with_providers(self, named: Vec<(String, Vec<Route>, Gate)>) -> Gate {
        let named: Vec<Named> = named
            .into_iter()
            .map(|(name, routes, gate)| Named {
                name,
                routes,
                gate: Gate {
                    inner: gate.inner,
                    limits: self.limits.clone(),
                    named: Arc::new([]),
                },
            })
            .collect();
        Gate {
            inner: self.inner,
            limits: self.limits,
            named: named.into(),
        }
    }

    /// The names of the providers, the default first.
    pub fn provider_names(&self) -> Vec<&str> {
        std::iter::once(DEFAULT_PROVIDER_NAME)
            .chain(self.named.iter().map(|n| n.name.as_str()))
            .collect()
    }

    /// The gate of the provider called `name`.
    pub fn provider_gate(&self, name: &str) -> Option<&Gate> {
        if name == DEFAULT_PROVIDER_NAME {
            return Some(self);
        }
        self.named.iter().find(|n| n.name == name).map(|n| &n.gate)
    }

    /// Discovers every provider at once: each provider's name (the default
    /// first) and how its discovery went.
    pub async fn discover_each(&self) -> Vec<(&str, Result<(), super::Error>)> {
        let names = self.provider_names();
        let all =
            futures_util::future::join_all(self.all_gates().map(|g| g.inner.provider.discovered()))
                .await;
        names
            .into_iter()
            .zip(all)
            .map(|(name, r)| (name, r.map(|_| ()).map_err(super::Error::from)))
            .collect()
    }

    /// Every provider's gate, the default first.
    pub(super) fn all_gates(&self) -> impl Iterator<Item = &Gate> {
        std::iter::once(self).chain(self.named.iter().map(|n| &n.gate))
    }

    /// The gate that answers `view`.
    pub(super) fn chosen(&self, view: &RequestView) -> &Gate {
        if self.named.is_empty() {
            return self;
        }
        let s = &self.inner.settings;
        if view.path == s.callback_path {
            // The redirect URI is shared: the state says whose login it is.
            let state = view.query_param("state").unwrap_or_default();
            return match state.split_once(STATE_NAME_SEPARATOR) {
                Some((name, _)) => self.named_gate(name).unwrap_or(self),
                None => self,
            };
        }
        if let Some(n) = self.named.iter().find(|n| {
            let own = &n.gate.inner.settings.logout_path;
            own != &s.logout_path && view.path == *own
        }) {
            return &n.gate;
        }
        if s.frontchannel_path.as_deref() == Some(view.path.as_str())
            && let Some(iss) = view.query_param("iss")
            && let Some(g) = self
                .all_gates()
                .find(|g| g.inner.provider.settings().issuer == iss.trim_end_matches('/'))
        {
            return g;
        }
        if view.path == START_PATH {
            let rd = view.query_param("rd").unwrap_or_else(|| "/".into());
            let (host, path) = match url::Url::parse(&rd) {
                Ok(u) => (
                    u.host_str()
                        .map_or_else(|| view.host.clone(), str::to_owned),
                    u.path().to_owned(),
                ),
                Err(_) => (
                    view.host.clone(),
                    rd.split(['?', '#']).next().unwrap_or("/").to_owned(),
                ),
            };
            // The path as the browser will ask for it after the login, so
            // that `/b/../app` starts the login of `/app`'s provider.
            let path = normalize_path(&path).unwrap_or(path);
            return self.by_route(&host, &path);
        }
        self.by_route(&view.host, &view.path)
    }

    /// The gate whose most specific route matches; the default otherwise.
    fn by_route(&self, host: &str, path: &str) -> &Gate {
        self.named
            .iter()
            .filter_map(|n| {
                n.routes
                    .iter()
                    .filter_map(|r| r.specificity(host, path))
                    .max()
                    .map(|s| (s, n))
            })
            .max_by_key(|(s, _)| *s)
            .map_or(self, |(_, n)| &n.gate)
    }

    fn named_gate(&self, name: &str) -> Option<&Gate> {
        self.named.iter().find(|n| n.name == name).map(|n| &n.gate)
    }

    /// The gate a back-channel logout token is for: the one whose issuer
    /// the token names and whose client it is addressed to (read without
    /// verification, only to choose; the chosen gate verifies it).
    pub(super) fn chosen_for_logout_token(&self, body: &[u8]) -> &Gate {
        if self.named.is_empty() {
            return self;
        }
        let Some((iss, aud)) = super::channels::peek_issuer_and_audience(body) else {
            return self;
        };
        self.all_gates()
            .map(|g| {
                let p = g.inner.provider.settings();
                let score = u8::from(p.issuer == iss.trim_end_matches('/')) * 2
                    + u8::from(aud.contains(&p.client_id));
                (score, g)
            })
            .filter(|(score, _)| *score > 0)
            // The first of the best: `max_by_key` keeps the last.
            .fold(None::<(u8, &Gate)>, |best, (score, g)| match best {
                Some((b, _)) if b >= score => best,
                _ => Some((score, g)),
            })
            .map_or(self, |(_, g)| g)
    }

    /// The prefix of this gate's marks in the shared caches: empty for the
    /// default provider (its keys are those of a gate with one provider),
    /// `<name>/` for a named one.
    pub(super) fn mark_scope(&self) -> String {
        self.inner
            .settings
            .provider_name
            .as_deref()
            .map_or_else(String::new, |n| format!("{n}/"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn route(host: Option<&str>, prefix: Option<&str>) -> Route {
        Route {
            host: host.map(str::to_owned),
            path_prefix: prefix.map(str::to_owned),
        }
    }

    #[test]
    fn names_are_cookie_and_state_safe() {
        for good in ["a", "team-b", "x1", "0"] {
            assert!(valid_provider_name(good), "{good}");
        }
        for bad in ["", "A", "a.b", "a_b", "-a", "default", &"a".repeat(33), "é"] {
            assert!(!valid_provider_name(bad), "{bad}");
        }
    }

    #[test]
    fn routes_match_host_and_prefix() {
        let host = route(Some("a.example.com"), None);
        assert_eq!(host.specificity("a.example.com", "/"), Some((true, 0)));
        assert_eq!(
            host.specificity("A.Example.com:8443", "/x"),
            Some((true, 0))
        );
        assert_eq!(host.specificity("b.example.com", "/"), None);
        assert_eq!(host.specificity("a.example.com.evil", "/"), None);
        let path = route(None, Some("/admin"));
        assert_eq!(path.specificity("any", "/admin"), Some((false, 6)));
        assert_eq!(path.specificity("any", "/admin/x"), Some((false, 6)));
        assert_eq!(path.specificity("any", "/administrator"), None);
        let both = route(Some("a.example.com"), Some("/admin"));
        assert_eq!(
            both.specificity("a.example.com", "/admin/x"),
            Some((true, 6))
        );
        assert_eq!(both.specificity("a.example.com", "/"), None);
        assert!(
            both.specificity("a.example.com", "/admin")
                > host.specificity("a.example.com", "/admin")
        );
        let ported = route(Some("a.example.com:8443"), None);
        assert!(ported.specificity("a.example.com:8443", "/").is_some());
        assert!(ported.specificity("a.example.com", "/").is_none());
        assert!(ported.specificity("a.example.com:443", "/").is_none());
        // As DNS and proxies read them: a trailing dot, a port with zeros.
        for same in ["A.example.com.:8443", "a.example.com:08443"] {
            assert!(ported.specificity(same, "/").is_some(), "{same}");
        }
        assert!(host.specificity("a.example.com.", "/").is_some());
        assert!(host.specificity("[::1]:8443", "/").is_none());
        // As servers read paths: `;parameters` and case.
        for under in ["/admin;v=1/x", "/ADMIN", "/Admin;jsessionid=1", "/admin/"] {
            assert!(path.specificity("any", under).is_some(), "{under}");
        }
        for other in ["/admin-x", "/x/admin", "/", "/adm;in/x"] {
            assert!(path.specificity("any", other).is_none(), "{other}");
        }
        let root = route(None, Some("/"));
        assert_eq!(root.specificity("any", "/x"), Some((false, 1)));
    }
}
