//! Configuration: the file schema, environment overrides, named defaults and
//! validation into each module's settings.
//!
//! Two stages: [`RawConfig`] mirrors the YAML file exactly (traefikoidc's
//! camelCase keys plus oidcgate's own, unknown keys refused), then
//! [`Config::from_raw`] turns it into typed settings or a [`ConfigError`]
//! naming the key and the problem. Only this module knows YAML, key spellings
//! and environment variable names.
//!
//! Environment: every top-level key can be overridden by
//! `OIDCGATE_<KEY>` where `<KEY>` is the key in upper snake case
//! (`providerURL` → `OIDCGATE_PROVIDER_URL`, `clientID` → `OIDCGATE_CLIENT_ID`,
//! `excludedURLs` → `OIDCGATE_EXCLUDED_URLS`). Lists are comma-separated. The
//! `redis:` block also honours the traefikoidc `REDIS_*` fallbacks.

mod bearer;
mod provider;
mod raw;
mod redis;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

pub use bearer::{MAX_BEARER_THROTTLE_SECONDS, MAX_IDENTIFIER_LENGTH_LIMIT};
pub use provider::{DEFAULT_ASSERTION_ALG, RawProviderKeys};
pub use raw::{ENV_KEYS, EnvKind, NOT_YET_SUPPORTED, RawConfig, env_name};
pub use redis::{RawRedisConfig, RedisConfigError};

use crate::cache::CacheSettings;
use crate::doors::{AppSettings, TrustedProxies};
use crate::gate::{
    DEFAULT_CALLBACK_PATH, DEFAULT_SCOPES, GateSettings, RefreshSettings, SessionStore,
};
use crate::oidc::{HttpSettings, ProviderSettings};
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
    /// The key path (`providerURL`, `redis.address`, ...), or `config` for the file itself.
    pub key: String,
    /// What is wrong.
    pub message: String,
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
}

impl Config {
    /// Reads `path` (if any), applies the process environment, validates.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
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
    ) -> Result<Self, ConfigError> {
        let raw = RawConfig::parse(text, env)?;
        Self::from_raw(raw, env)
    }

    /// Validates a raw configuration.
    pub fn from_raw(
        raw: RawConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        raw.reject_unsupported()?;

        // Provider.
        let issuer = raw.provider_url.trim().trim_end_matches('/').to_owned();
        if issuer.is_empty() {
            return Err(bad(
                "providerURL",
                "is required (the issuer URL of your OpenID Provider)",
            ));
        }
        check_url("providerURL", &issuer)?;
        if raw.client_id.trim().is_empty() {
            return Err(bad("clientID", "is required"));
        }
        let mut http = HttpSettings::default();
        if raw.insecure_skip_verify && (raw.ca_cert_path.is_some() || raw.ca_cert_pem.is_some()) {
            return Err(bad(
                "insecureSkipVerify",
                "cannot be combined with caCertPath/caCertPEM",
            ));
        }
        http.insecure_skip_verify = raw.insecure_skip_verify;
        if let Some(p) = &raw.ca_cert_path {
            let pem =
                std::fs::read(p).map_err(|e| bad("caCertPath", format!("cannot read {p}: {e}")))?;
            check_pem("caCertPath", &pem)?;
            http.extra_ca_pem.push(pem);
        }
        if let Some(pem) = &raw.ca_cert_pem {
            check_pem("caCertPEM", pem.as_bytes())?;
            http.extra_ca_pem.push(pem.clone().into_bytes());
        }
        let mut provider =
            ProviderSettings::new(&issuer, raw.client_id.trim(), raw.client_secret.expose());
        provider::apply_client_auth(&raw, &mut provider)?;
        provider.http = http;

        // Paths.
        let callback_path = raw
            .callback_url
            .clone()
            .unwrap_or_else(|| DEFAULT_CALLBACK_PATH.into());
        check_path("callbackURL", &callback_path)?;
        let logout_path = raw
            .logout_url
            .clone()
            .unwrap_or_else(|| format!("{callback_path}/logout"));
        check_path("logoutURL", &logout_path)?;
        let post_logout_redirect = raw
            .post_logout_redirect_uri
            .clone()
            .unwrap_or_else(|| "/".into());
        if !post_logout_redirect.starts_with('/') || post_logout_redirect.starts_with("//") {
            check_url("postLogoutRedirectURI", &post_logout_redirect)?;
        }

        // Scopes.
        let scopes = if raw.override_scopes {
            if raw.scopes.is_empty() {
                return Err(bad("scopes", "overrideScopes is true but scopes is empty"));
            }
            dedup(raw.scopes.clone())
        } else {
            dedup(
                DEFAULT_SCOPES
                    .iter()
                    .map(|s| (*s).to_owned())
                    .chain(raw.scopes.iter().cloned())
                    .collect(),
            )
        };
        if !scopes.iter().any(|s| s == "openid") {
            return Err(bad("scopes", "must include openid"));
        }

        for (i, p) in raw.excluded_urls.iter().enumerate() {
            let key = format!("excludedURLs[{i}]");
            if !p.starts_with('/') || p.contains("..") || p.contains('*') {
                return Err(bad(
                    &key,
                    format!("{p:?} must be a path starting with / without .. or *"),
                ));
            }
            if p.trim_end_matches('/').is_empty() {
                return Err(bad(
                    &key,
                    "\"/\" would exclude every path; remove the gate instead",
                ));
            }
            for own in [
                callback_path.as_str(),
                logout_path.as_str(),
                crate::gate::START_PATH,
            ] {
                if crate::gate::path_matches_prefix(own, p) {
                    return Err(bad(
                        &key,
                        format!("{p:?} would exclude the gate's own path {own}"),
                    ));
                }
            }
        }

        // Session.
        if raw.session_encryption_key.expose().is_empty() {
            return Err(bad(
                "sessionEncryptionKey",
                "is required (at least 32 random characters)",
            ));
        }
        let mut keys = vec![raw.session_encryption_key.clone()];
        keys.extend(raw.previous_session_encryption_keys.iter().cloned());
        for (i, k) in keys.iter().enumerate() {
            if k.len() < crate::session::MIN_KEY_LEN {
                let key = if i == 0 {
                    "sessionEncryptionKey".to_owned()
                } else {
                    format!("previousSessionEncryptionKeys[{}]", i - 1)
                };
                return Err(bad(
                    &key,
                    format!(
                        "must be at least {} bytes, got {}",
                        crate::session::MIN_KEY_LEN,
                        k.len()
                    ),
                ));
            }
        }
        let mut session = SessionSettings::with_keys(keys);
        if let Some(p) = &raw.cookie_prefix {
            session.cookie_prefix = p.clone();
        }
        session.cookie_domain = raw.cookie_domain.clone().filter(|d| !d.is_empty());
        if let Some(p) = &raw.cookie_path {
            session.cookie_path = p.clone();
        }
        if let Some(secs) = raw.session_max_age {
            if secs == 0 {
                return Err(bad("sessionMaxAge", "must be greater than 0 seconds"));
            }
            session.max_age = Duration::from_secs(secs);
        }
        // Served over HTTPS with host-only cookies on `/`: the default names
        // take the `__Host-` prefix, which browsers accept only from this
        // host, over HTTPS, without `Domain` — a sibling subdomain cannot
        // plant one. An explicit `cookiePrefix` is kept as written.
        if raw.force_https
            && raw.cookie_prefix.is_none()
            && session.cookie_domain.is_none()
            && session.cookie_path == "/"
        {
            session.cookie_prefix = format!("{HOST_COOKIE_PREFIX}{}", session.cookie_prefix);
        }
        crate::session::SessionCodec::new(session.clone())
            .map_err(|e| bad("session", e.to_string()))?;

        // Policy.
        let mut policy = PolicySettings {
            allowed_users: raw.allowed_users.clone(),
            allowed_domains: raw.allowed_user_domains.clone(),
            allowed_roles_and_groups: raw.allowed_roles_and_groups.clone(),
            minimal_headers: raw.minimal_headers,
            insecure_allow_unverified_email: raw.insecure_allow_unverified_email,
            ..PolicySettings::default()
        };
        if let Some(c) = &raw.user_identifier_claim {
            policy.user_identifier_claim = c.clone();
        }
        if let Some(c) = &raw.role_claim_name {
            policy.role_claim = c.clone();
        }
        if let Some(c) = &raw.group_claim_name {
            policy.group_claim = c.clone();
        }

        let bearer = bearer::bearer_keys(&raw)?;
        provider.introspection_url = bearer.introspection_url;
        if let Some(max) = bearer.max_identifier_bytes {
            policy.max_identifier_bytes = max;
        }

        // Doors.
        let listen: SocketAddr = raw
            .listen
            .as_deref()
            .unwrap_or(DEFAULT_LISTEN)
            .parse()
            .map_err(|_| bad("listen", "expected host:port, e.g. 127.0.0.1:4180"))?;
        let upstream = match raw.upstream.as_deref().filter(|u| !u.is_empty()) {
            None => None,
            Some(u) => {
                let uri: http::Uri = u
                    .parse()
                    .map_err(|_| bad("upstream", format!("{u:?} is not a URL")))?;
                if uri.scheme_str() != Some("http") || uri.host().is_none() {
                    return Err(bad(
                        "upstream",
                        "must be an http:// URL with a host (TLS upstreams are not supported yet)",
                    ));
                }
                Some(uri)
            }
        };
        let trusted = match &raw.trusted_proxies {
            Some(list) => TrustedProxies::parse(list).map_err(|m| bad("trustedProxies", m))?,
            None => TrustedProxies::default(),
        };

        let log_level = match &raw.log_level {
            Some(l) => LogLevel::parse(l).ok_or_else(|| {
                bad(
                    "logLevel",
                    format!("expected debug, info, warn or error, got {l:?}"),
                )
            })?,
            None => LogLevel::default(),
        };
        let log_format = match raw.log_format.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(bad(
                    "logFormat",
                    format!("expected text or json, got {other:?}"),
                ));
            }
        };

        let mut redis = raw.redis.clone().unwrap_or_default();
        redis.apply_env_fallbacks(env);
        let cache = redis.into_settings().map_err(|e| {
            let text = e.0;
            let (key, msg) = text.split_once(": ").unwrap_or(("redis", text.as_str()));
            bad(key, msg)
        })?;

        let mut refresh = RefreshSettings::default();
        if let Some(g) = raw.refresh_grace_period_seconds {
            if g > 86_400 {
                return Err(bad("refreshGracePeriodSeconds", "must be at most 86400"));
            }
            refresh.grace = Duration::from_secs(g);
        }
        if let Some(age) = raw.max_refresh_token_age_seconds {
            refresh.max_refresh_token_age = (age > 0).then(|| Duration::from_secs(age));
        }
        if let Some(t) = raw.refresh_breaker_threshold {
            if t == 0 {
                return Err(bad("refreshBreakerThreshold", "must be at least 1"));
            }
            refresh.breaker_threshold = t;
        }
        if let Some(secs) = raw.refresh_breaker_open_seconds {
            if secs == 0 {
                return Err(bad("refreshBreakerOpenSeconds", "must be at least 1"));
            }
            refresh.breaker_open = Duration::from_secs(secs);
        }

        let session_store = match raw.session_store.as_deref() {
            None | Some("cookie") => SessionStore::Cookie,
            Some("redis") | Some("server") => {
                if cache.mode == crate::cache::CacheMode::Memory {
                    tracing::warn!(
                        "sessionStore: redis without redis.enabled keeps sessions in this process only"
                    );
                }
                SessionStore::Server
            }
            Some(other) => {
                return Err(bad(
                    "sessionStore",
                    format!("expected cookie or redis, got {other:?}"),
                ));
            }
        };

        let security_outage_policy = match raw.security_outage_policy.as_deref() {
            None => None,
            Some("open") => Some(crate::gate::OutagePolicy::Open),
            Some("closed") => Some(crate::gate::OutagePolicy::Closed),
            Some(other) => {
                return Err(bad(
                    "securityOutagePolicy",
                    format!("expected open or closed, got {other:?}"),
                ));
            }
        };

        let channel = |enabled: bool, url: &Option<String>, key: &str, default: &str| {
            if !enabled {
                return Ok(None);
            }
            let raw_path = url
                .clone()
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| default.to_owned());
            // traefikoidc normalises `x`, `//x` and `/\x` to `/x`.
            let path = format!("/{}", raw_path.trim_start_matches(['/', '\\']));
            check_path(key, &path)?;
            Ok::<_, ConfigError>(Some(path))
        };
        let backchannel_path = channel(
            raw.enable_backchannel_logout,
            &raw.backchannel_logout_url,
            "backchannelLogoutURL",
            "/oauth2/backchannel-logout",
        )?;
        let frontchannel_path = channel(
            raw.enable_frontchannel_logout,
            &raw.frontchannel_logout_url,
            "frontchannelLogoutURL",
            "/oauth2/frontchannel-logout",
        )?;

        let gate = GateSettings {
            callback_path,
            logout_path,
            post_logout_redirect,
            scopes,
            override_scopes: raw.override_scopes,
            pkce: raw.enable_pkce.unwrap_or(true),
            force_https: raw.force_https,
            excluded: raw.excluded_urls.clone(),
            allowed_redirect_hosts: raw.allowed_redirect_hosts.clone(),
            audience: raw.audience.clone().filter(|a| !a.is_empty()),
            extra_auth_params: raw.extra_auth_params.clone().into_iter().collect(),
            strip_auth_cookies: raw.strip_auth_cookies.unwrap_or(true),
            refresh,
            bearer: bearer.settings,
            session_store,
            backchannel_path,
            frontchannel_path,
            security_outage_policy,
            ..GateSettings::default()
        };
        Ok(Self {
            gate,
            provider,
            session,
            policy,
            app: AppSettings {
                upstream,
                trusted,
                server: crate::doors::ServerLimits {
                    http2: raw.http2.unwrap_or(false),
                    ..Default::default()
                },
            },
            cache,
            listen,
            log_level,
            log_format,
            ops: crate::doors::OpsSettings::default(),
        })
    }
}

fn dedup(v: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in v {
        let s = s.trim().to_owned();
        if !s.is_empty() && !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

fn check_path(key: &str, p: &str) -> Result<(), ConfigError> {
    if !p.starts_with('/') || p.starts_with("//") || p.contains(['?', '#', '\\', ' ']) {
        return Err(bad(
            key,
            format!("{p:?} must be a path starting with / (not a URL)"),
        ));
    }
    Ok(())
}

fn check_pem(key: &str, pem: &[u8]) -> Result<(), ConfigError> {
    match reqwest::Certificate::from_pem_bundle(pem) {
        Ok(c) if !c.is_empty() => Ok(()),
        _ => Err(bad(key, "holds no PEM certificate")),
    }
}

/// https:// URLs, or http:// on loopback hosts only.
fn check_url(key: &str, u: &str) -> Result<(), ConfigError> {
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

#[cfg(test)]
mod tests;
