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

use super::{Gate, RequestView, START_PATH, path_matches_prefix};

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
            Some(p) if path_matches_prefix(path, p) => p.len(),
            Some(_) => return None,
            None => 0,
        };
        Some((self.host.is_some(), prefix_len))
    }
}

/// `host` (as the request names it, maybe with a port) is `want`: compared
/// without the port unless `want` names one.
fn host_matches(want: &str, host: &str) -> bool {
    let host = host.trim_end_matches('.');
    if want.contains(':') {
        return host.eq_ignore_ascii_case(want);
    }
    let bare = if host.starts_with('[') {
        host.split_inclusive(']').next().unwrap_or(host)
    } else {
        host.split(':').next().unwrap_or(host)
    };
    bare.trim_end_matches('.').eq_ignore_ascii_case(want)
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
    /// clock and metrics.
    /// The per-source limits (`rateLimit`, `perSourceLoginRateLimit`, the
    /// front-channel throttle) are the gate's: every provider counts into
    /// this gate's buckets.
    pub fn with_providers(self, named: Vec<(String, Vec<Route>, Gate)>) -> Gate {
        let named: Vec<Named> = named
            .into_iter()
            .map(|(name, routes, mut gate)| {
                // A named gate is fresh here (nothing else holds it yet).
                if let Some(inner) = Arc::get_mut(&mut gate.inner) {
                    inner.rate_limits = self.inner.rate_limits.clone();
                    inner.frontchannel_throttle = self.inner.frontchannel_throttle.clone();
                }
                Named { name, routes, gate }
            })
            .collect();
        Gate {
            inner: self.inner,
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
    }
}
