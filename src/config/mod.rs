//! Configuration: the file schema, environment overrides, named defaults and
//! validation into each module's settings.
//!
//! Three stages. `document` reads the YAML text, finds the traefikoidc block
//! in it (the block itself, a `traefikoidc:` wrapper, or a Traefik
//! dynamic-configuration file) and overlays the environment. `raw` splits
//! the block into one raw part per concern and deserializes each, collecting
//! every type error and unknown key with its full key path. Then one function
//! per concern (`provider`, `client_auth`, `github`, `registration`,
//! `session`, `endpoints`, `policy`, `refresh`, `bearer`, `redis`, `doors`,
//! `limits`, `inert`, `headers`) turns its raw part into settings, and
//! `providers` validates each named provider against the top level,
//! reporting every refusal into one report. A file with problems gives all
//! of them at once ([`ConfigErrors`]); keys accepted without effect give one
//! [`ConfigWarning`] each, which the caller logs once logging is set up.
//!
//! Environment: every top-level key can be overridden by
//! `OIDCGATE_<KEY>` where `<KEY>` is the key in upper snake case
//! (`providerURL` → `OIDCGATE_PROVIDER_URL`, `clientID` → `OIDCGATE_CLIENT_ID`,
//! `excludedURLs` → `OIDCGATE_EXCLUDED_URLS`). Lists are comma-separated. The
//! `redis:` block also honours the traefikoidc `REDIS_*` fallbacks.
//!
//! Only this module knows YAML, key spellings and environment variable names.

mod bearer;
mod checks;
mod client_auth;
mod document;
mod doors;
mod endpoints;
mod github;
mod headers;
mod inert;
mod limits;
mod policy;
mod profiles;
mod provider;
mod providers;
mod raw;
mod redis;
mod refresh;
mod registration;
mod session;

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

pub use bearer::{MAX_BEARER_THROTTLE_SECONDS, MAX_IDENTIFIER_LENGTH_LIMIT};
pub use client_auth::DEFAULT_ASSERTION_ALG;
pub use endpoints::{DEFAULT_BACKCHANNEL_PATH, DEFAULT_FRONTCHANNEL_PATH};
pub use providers::ProviderEntry;
pub use raw::{ENV_KEYS, EnvKind, env_name, known_keys};

use crate::cache::CacheSettings;
use crate::doors::AppSettings;
use crate::gate::{GateSettings, SessionStore};
use crate::oidc::ProviderSettings;
use crate::policy::PolicySettings;
use crate::session::SessionSettings;
use crate::telemetry::{LogFormat, LogLevel};

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4180";
/// Environment variable naming the configuration file.
pub const CONFIG_ENV: &str = "OIDCGATE_CONFIG";

/// A configuration problem, naming the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    /// The key path (`providerURL`, `redis.maxRetries`, `excludedURLs[1]`),
    /// or `config` for the file itself.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// Every problem of one configuration, in the order they were found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The key paths of the problems.
    pub fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|e| e.key.as_str()).collect()
    }

    /// The problem reported for `key`, if any.
    pub fn get(&self, key: &str) -> Option<&ConfigError> {
        self.0.iter().find(|e| e.key == key)
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        Self(vec![e])
    }
}

/// A key that was accepted but does not do here what it does in
/// traefikoidc (or nothing at all), said once at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The key path.
    pub key: String,
    /// Why it has no (or a different) effect.
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Added in front of the default cookie prefix when the gate serves HTTPS
/// with host-only cookies.
pub const HOST_COOKIE_PREFIX: &str = "__Host-";

fn bad(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.to_owned(),
        message: message.into(),
    }
}

/// Collects the errors and warnings of every concern.
#[derive(Debug, Default)]
pub(crate) struct Report {
    errors: Vec<ConfigError>,
    warnings: Vec<ConfigWarning>,
}

impl Report {
    /// Records a refusal of `key`.
    pub(crate) fn error(&mut self, key: &str, message: impl Into<String>) {
        self.errors.push(bad(key, message));
    }

    /// Records a warning about `key`.
    pub(crate) fn warn(&mut self, key: &str, message: impl Into<String>) {
        self.warnings.push(ConfigWarning {
            key: key.to_owned(),
            message: message.into(),
        });
    }

    /// The value of `r`, or `None` after recording its error.
    pub(crate) fn check<T>(&mut self, r: Result<T, ConfigError>) -> Option<T> {
        r.map_err(|e| self.errors.push(e)).ok()
    }
}

/// The validated configuration: one settings value per module.
#[derive(Clone, Debug)]
pub struct Config {
    /// Engine settings.
    pub gate: GateSettings,
    /// Provider client settings.
    pub provider: ProviderSettings,
    /// Session cookie settings.
    pub session: SessionSettings,
    /// Authorization and header settings.
    pub policy: PolicySettings,
    /// Door settings (upstream, trusted proxies).
    pub app: AppSettings,
    /// Cache settings.
    pub cache: CacheSettings,
    /// Listen address.
    pub listen: SocketAddr,
    /// Log level.
    pub log_level: LogLevel,
    /// Log format.
    pub log_format: LogFormat,
    /// Metrics listener and reload settings.
    pub ops: crate::doors::OpsSettings,
    /// The named providers (`providers:`), each chosen by its routes; the
    /// top-level provider answers requests no route matches.
    pub providers: Vec<ProviderEntry>,
    /// Keys accepted without (full) effect, to be logged once logging is up.
    pub warnings: Vec<ConfigWarning>,
}

impl Config {
    /// Reads `path` (if any), applies the process environment, validates.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigErrors> {
        let text = match path {
            Some(p) => std::fs::read_to_string(p)
                .map_err(|e| bad("config", format!("cannot read {}: {e}", p.display())))?,
            None => String::new(),
        };
        Self::from_yaml(&text, &|k| std::env::var(k).ok())
    }

    /// Parses YAML text, applies overrides from `env`, validates.
    pub fn from_yaml(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigErrors> {
        let block = document::block(text, env)?;
        let mut report = Report::default();
        let top = block.clone();
        let mut raw = raw::RawConfig::from_mapping(block, &mut report);
        let entries = std::mem::take(&mut raw.providers);
        let config = Self::from_raw(raw, env, &mut report);
        let top = providers::TopLevel {
            block: &top,
            config: &config,
            env,
        };
        let providers = providers::settings(entries, &top, &mut report);
        if report.errors.is_empty() {
            Ok(Self {
                warnings: report.warnings,
                providers,
                ..config
            })
        } else {
            Err(ConfigErrors(report.errors))
        }
    }

    /// Validates each concern; refusals go to `r` and leave defaults behind.
    fn from_raw(raw: raw::RawConfig, env: &dyn Fn(&str) -> Option<String>, r: &mut Report) -> Self {
        let audience = raw.provider.audience.clone();
        let listed_scopes = raw.provider.scopes.clone();
        let github_selected = github::is_github(
            &raw.provider.provider_url,
            raw.provider.provider_type.as_deref(),
        );
        let registers = raw.registration.enabled() && raw.provider.client_id.trim().is_empty();
        let has_secret = registers || !raw.provider.client_secret.expose().is_empty();
        let client_auth_method = raw.client_auth.client_auth_method.clone();
        let selected = profiles::select(&raw.provider, &raw.policy);
        let provider::Parts {
            mut provider,
            mut scopes,
            override_scopes,
            pkce,
            audience: gate_audience,
            strict_audience,
            extra_auth_params,
        } = provider::settings(raw.provider, registers, r);
        client_auth::settings(raw.client_auth, has_secret, &mut provider, r);
        let github_keys = github::ProviderKeys {
            issuer: &provider.issuer,
            selected: github_selected,
            scopes: &listed_scopes,
            override_scopes,
        };
        if let Some((gh, gh_scopes)) = github::settings(raw.github, &github_keys, r) {
            provider.github = Some(gh);
            scopes = gh_scopes;
        }
        let endpoints = endpoints::settings(raw.endpoints, r);
        let session::Parts {
            session,
            session_store,
            security_outage_policy,
        } = session::settings(raw.session, endpoints.force_https, r);
        let mut policy = policy::settings(raw.policy, r);
        let (p, pol) = (&mut provider, &mut policy.settings);
        profiles::settings(raw.profiles, &selected, p, pol, r);
        let refresh = refresh::settings(raw.refresh, r);
        let bearer = bearer::settings(raw.bearer, audience.as_deref(), r);
        provider.introspection_url = bearer.introspection_url;
        if let Some(max) = bearer.max_identifier_bytes {
            policy.settings.max_identifier_bytes = max;
        }
        let header_keys = headers::settings(raw.headers, &policy.allowed_claims, r);
        policy.settings.token_headers = header_keys.token_headers;
        policy.settings.security_headers = header_keys.security_headers;
        let cache = redis::settings(raw.redis, env, r);
        provider.registration = registration::settings(
            raw.registration,
            &registration::Context::new(
                &provider,
                &endpoints.callback_path,
                &client_auth_method,
                &cache,
            ),
            r,
        );
        let doors = doors::settings(raw.doors, r);
        inert::settings(raw.inert, r);
        let rate_limits = limits::settings(raw.limits, r);

        if session_store == SessionStore::Server && cache.mode == crate::cache::CacheMode::Memory {
            r.warn(
                "sessionStore",
                "redis without redis.enabled keeps sessions in this process only",
            );
        }

        let gate = GateSettings {
            callback_path: endpoints.callback_path,
            logout_path: endpoints.logout_path,
            post_logout_redirect: endpoints.post_logout_redirect,
            scopes,
            override_scopes,
            pkce,
            force_https: endpoints.force_https,
            excluded: endpoints.excluded,
            allowed_redirect_hosts: endpoints.allowed_redirect_hosts,
            audience: gate_audience,
            strict_audience,
            extra_auth_params,
            strip_auth_cookies: policy.strip_auth_cookies,
            strip_authorization_header: bearer.strip_authorization,
            allow_unauthenticated_preflight: policy.allow_unauthenticated_preflight,
            refresh,
            bearer: bearer.settings,
            session_store,
            backchannel_path: endpoints.backchannel_path,
            frontchannel_path: endpoints.frontchannel_path,
            security_outage_policy,
            pages: endpoints.pages,
            rate_limits,
            ..GateSettings::default()
        };
        Self {
            gate,
            provider,
            session,
            policy: policy.settings,
            app: doors.app,
            cache,
            listen: doors.listen,
            log_level: doors.log_level,
            log_format: doors.log_format,
            ops: doors.ops,
            providers: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests;
