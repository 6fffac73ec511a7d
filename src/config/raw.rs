//! [`RawConfig`]: the configuration file as written, and the environment
//! overlay. Field names follow traefikoidc's spelling exactly.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_yaml::{Mapping, Value};

use super::redis::RawRedisConfig;
use super::{ConfigError, bad};
use crate::session::SecretString;

/// The file, key by key. Unknown keys land in `unsupported` and are refused
/// by validation with their name.
#[derive(Clone, Default, Deserialize)]
#[serde(default)]
pub struct RawConfig {
    /// Issuer URL.
    #[serde(rename = "providerURL")]
    pub provider_url: String,
    /// OAuth client id.
    #[serde(rename = "clientID")]
    pub client_id: String,
    /// OAuth client secret.
    #[serde(rename = "clientSecret")]
    pub client_secret: SecretString,
    /// `client_secret_basic`, `client_secret_post`, `client_secret_jwt` or
    /// `private_key_jwt`; unset lets the provider's discovery choose.
    #[serde(rename = "clientAuthMethod")]
    pub client_auth_method: Option<String>,
    /// Redirect-URI path.
    #[serde(rename = "callbackURL")]
    pub callback_url: Option<String>,
    /// Logout path.
    #[serde(rename = "logoutURL")]
    pub logout_url: Option<String>,
    /// After-logout target.
    #[serde(rename = "postLogoutRedirectURI")]
    pub post_logout_redirect_uri: Option<String>,
    /// Session key (>= 32 bytes).
    #[serde(rename = "sessionEncryptionKey")]
    pub session_encryption_key: SecretString,
    /// Older keys still accepted for reading (rotation).
    #[serde(rename = "previousSessionEncryptionKeys")]
    pub previous_session_encryption_keys: Vec<SecretString>,
    /// Extra scopes.
    #[serde(rename = "scopes")]
    pub scopes: Vec<String>,
    /// Use `scopes` verbatim.
    #[serde(rename = "overrideScopes")]
    pub override_scopes: bool,
    /// PKCE (default true).
    #[serde(rename = "enablePKCE")]
    pub enable_pkce: Option<bool>,
    /// Treat requests as HTTPS.
    #[serde(rename = "forceHTTPS")]
    pub force_https: bool,
    /// Unauthenticated path prefixes.
    #[serde(rename = "excludedURLs")]
    pub excluded_urls: Vec<String>,
    /// Identifier claim.
    #[serde(rename = "userIdentifierClaim")]
    pub user_identifier_claim: Option<String>,
    /// Roles claim.
    #[serde(rename = "roleClaimName")]
    pub role_claim_name: Option<String>,
    /// Groups claim.
    #[serde(rename = "groupClaimName")]
    pub group_claim_name: Option<String>,
    /// Cookie domain.
    #[serde(rename = "cookieDomain")]
    pub cookie_domain: Option<String>,
    /// Cookie name prefix.
    #[serde(rename = "cookiePrefix")]
    pub cookie_prefix: Option<String>,
    /// Cookie path.
    #[serde(rename = "cookiePath")]
    pub cookie_path: Option<String>,
    /// Absolute session lifetime (seconds).
    #[serde(rename = "sessionMaxAge")]
    pub session_max_age: Option<u64>,
    /// Only X-Forwarded-User.
    #[serde(rename = "minimalHeaders")]
    pub minimal_headers: bool,
    /// Remove the gate's cookies upstream (default true).
    #[serde(rename = "stripAuthCookies")]
    pub strip_auth_cookies: Option<bool>,
    /// CA bundle file.
    #[serde(rename = "caCertPath")]
    pub ca_cert_path: Option<String>,
    /// Inline CA bundle.
    #[serde(rename = "caCertPEM")]
    pub ca_cert_pem: Option<String>,
    /// Skip provider TLS verification (development only).
    #[serde(rename = "insecureSkipVerify")]
    pub insecure_skip_verify: bool,
    /// Accept e-mail identities without `email_verified: true`.
    #[serde(rename = "insecureAllowUnverifiedEmail")]
    pub insecure_allow_unverified_email: bool,
    /// Identifier allowlist.
    #[serde(rename = "allowedUsers")]
    pub allowed_users: Vec<String>,
    /// E-mail domain allowlist.
    #[serde(rename = "allowedUserDomains")]
    pub allowed_user_domains: Vec<String>,
    /// Required roles or groups.
    #[serde(rename = "allowedRolesAndGroups")]
    pub allowed_roles_and_groups: Vec<String>,
    /// Expected access-token audience.
    #[serde(rename = "audience")]
    pub audience: Option<String>,
    /// Extra authorization-request parameters.
    #[serde(rename = "extraAuthParams")]
    pub extra_auth_params: BTreeMap<String, String>,
    /// Hosts allowed as absolute redirect targets.
    #[serde(rename = "allowedRedirectHosts")]
    pub allowed_redirect_hosts: Vec<String>,
    /// `debug`, `info`, `warn`, `error`.
    #[serde(rename = "logLevel")]
    pub log_level: Option<String>,
    /// `text` or `json`.
    #[serde(rename = "logFormat")]
    pub log_format: Option<String>,
    /// Listen address.
    #[serde(rename = "listen")]
    pub listen: Option<String>,
    /// Reverse-proxy upstream.
    #[serde(rename = "upstream")]
    pub upstream: Option<String>,
    /// Trusted proxy networks.
    #[serde(rename = "trustedProxies")]
    pub trusted_proxies: Option<Vec<String>>,
    /// Also serve HTTP/2 over cleartext (h2c, prior knowledge).
    #[serde(rename = "http2")]
    pub http2: Option<bool>,
    /// Cache / Redis block.
    #[serde(rename = "redis")]
    pub redis: Option<RawRedisConfig>,
    /// Refresh this many seconds before tokens expire (default 60).
    #[serde(rename = "refreshGracePeriodSeconds")]
    pub refresh_grace_period_seconds: Option<u64>,
    /// Refresh tokens older than this are not used (default 21600; 0 disables).
    #[serde(rename = "maxRefreshTokenAgeSeconds")]
    pub max_refresh_token_age_seconds: Option<u64>,
    /// Consecutive token-endpoint failures that open the refresh breaker (default 5).
    #[serde(rename = "refreshBreakerThreshold")]
    pub refresh_breaker_threshold: Option<u32>,
    /// Seconds the refresh breaker stays open (default 30).
    #[serde(rename = "refreshBreakerOpenSeconds")]
    pub refresh_breaker_open_seconds: Option<u64>,
    /// Serve OIDC Back-Channel Logout.
    #[serde(rename = "enableBackchannelLogout")]
    pub enable_backchannel_logout: bool,
    /// Its path (default `/oauth2/backchannel-logout`).
    #[serde(rename = "backchannelLogoutURL")]
    pub backchannel_logout_url: Option<String>,
    /// Serve OIDC Front-Channel Logout.
    #[serde(rename = "enableFrontchannelLogout")]
    pub enable_frontchannel_logout: bool,
    /// Its path (default `/oauth2/frontchannel-logout`).
    #[serde(rename = "frontchannelLogoutURL")]
    pub frontchannel_logout_url: Option<String>,
    /// `cookie` (default) or `redis`: where sessions live.
    #[serde(rename = "sessionStore")]
    pub session_store: Option<String>,
    /// `open` or `closed`: what a logout or revocation check the shared
    /// store cannot answer does (unset: sessions open, bearer closed).
    #[serde(rename = "securityOutagePolicy")]
    pub security_outage_policy: Option<String>,
    /// Judge `Authorization: Bearer` tokens (machine-to-machine).
    #[serde(rename = "enableBearerAuth")]
    pub enable_bearer_auth: bool,
    /// Claim naming a bearer caller (default `sub`; `email` is refused).
    #[serde(rename = "bearerIdentifierClaim")]
    pub bearer_identifier_claim: Option<String>,
    /// Remove `Authorization` before the upstream (default true).
    #[serde(rename = "stripAuthorizationHeader")]
    pub strip_authorization_header: Option<bool>,
    /// RFC 6750 `WWW-Authenticate` on bearer 401s (default true).
    #[serde(rename = "bearerEmitWWWAuthenticate")]
    pub bearer_emit_www_authenticate: Option<bool>,
    /// A bearer token wins over a session cookie (default false).
    #[serde(rename = "bearerOverridesCookie")]
    pub bearer_overrides_cookie: bool,
    /// Oldest accepted `iat` of a bearer token, seconds (default 86400).
    #[serde(rename = "maxTokenAgeSeconds")]
    pub max_token_age_seconds: Option<u64>,
    /// Longest identifier forwarded upstream, bytes (default 256).
    #[serde(rename = "maxIdentifierLength")]
    pub max_identifier_length: Option<u64>,
    /// Refused bearer tokens per address and window before a penalty (default 20).
    #[serde(rename = "bearerFailureThreshold")]
    pub bearer_failure_threshold: Option<u32>,
    /// Failure-counting window, seconds (default 60).
    #[serde(rename = "bearerFailureWindowSeconds")]
    pub bearer_failure_window_seconds: Option<u64>,
    /// Penalty length, seconds (default 60).
    #[serde(rename = "bearerFailurePenaltySeconds")]
    pub bearer_failure_penalty_seconds: Option<u64>,
    /// Accept opaque bearer tokens through introspection.
    #[serde(rename = "allowOpaqueTokens")]
    pub allow_opaque_tokens: bool,
    /// Introspect bearer tokens (JWTs too) at the provider.
    #[serde(rename = "requireTokenIntrospection")]
    pub require_token_introspection: bool,
    /// RFC 7662 endpoint overriding discovery's `introspection_endpoint`.
    #[serde(rename = "introspectionURL")]
    pub introspection_url: Option<String>,
    /// traefikoidc's cold-verification rate limit; accepted, not needed here.
    #[serde(rename = "rateLimit")]
    pub rate_limit: Option<u64>,
    /// Provider-specific keys (client assertions, profiles, claims).
    #[serde(flatten)]
    pub provider_keys: super::provider::RawProviderKeys,
    /// Keys of features that are not available yet: refused when set.
    #[serde(flatten)]
    pub unsupported: BTreeMap<String, Value>,
}

/// traefikoidc keys recognised but not implemented yet. Setting one to
/// anything but its "off" value stops start-up, rather than being ignored.
pub const NOT_YET_SUPPORTED: &[&str] = &[
    "revocationURL",
    "oidcEndSessionURL",
    "headers",
    "allowedClaims",
    "strictAudienceValidation",
    "resource",
    "securityHeaders",
    "perSourceLoginRateLimit",
    "allowPrivateIPAddresses",
    "allowUnauthenticatedPreflight",
];

/// How an environment value is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnvKind {
    /// Taken verbatim.
    Str,
    /// `true`/`false`/`1`/`0`.
    Bool,
    /// A non-negative integer.
    Int,
    /// Comma-separated list.
    List,
}

/// Every top-level key that may be overridden from the environment.
pub const ENV_KEYS: &[(&str, EnvKind)] = &[
    ("providerURL", EnvKind::Str),
    ("clientID", EnvKind::Str),
    ("clientSecret", EnvKind::Str),
    ("clientAuthMethod", EnvKind::Str),
    ("clientAssertionPrivateKey", EnvKind::Str),
    ("clientAssertionKeyPath", EnvKind::Str),
    ("clientAssertionKeyID", EnvKind::Str),
    ("clientAssertionAlg", EnvKind::Str),
    ("clientAssertionAudience", EnvKind::Str),
    ("callbackURL", EnvKind::Str),
    ("logoutURL", EnvKind::Str),
    ("postLogoutRedirectURI", EnvKind::Str),
    ("sessionEncryptionKey", EnvKind::Str),
    ("previousSessionEncryptionKeys", EnvKind::List),
    ("scopes", EnvKind::List),
    ("overrideScopes", EnvKind::Bool),
    ("enablePKCE", EnvKind::Bool),
    ("forceHTTPS", EnvKind::Bool),
    ("excludedURLs", EnvKind::List),
    ("userIdentifierClaim", EnvKind::Str),
    ("roleClaimName", EnvKind::Str),
    ("groupClaimName", EnvKind::Str),
    ("cookieDomain", EnvKind::Str),
    ("cookiePrefix", EnvKind::Str),
    ("cookiePath", EnvKind::Str),
    ("sessionMaxAge", EnvKind::Int),
    ("minimalHeaders", EnvKind::Bool),
    ("stripAuthCookies", EnvKind::Bool),
    ("caCertPath", EnvKind::Str),
    ("caCertPEM", EnvKind::Str),
    ("insecureSkipVerify", EnvKind::Bool),
    ("insecureAllowUnverifiedEmail", EnvKind::Bool),
    ("allowedUsers", EnvKind::List),
    ("allowedUserDomains", EnvKind::List),
    ("allowedRolesAndGroups", EnvKind::List),
    ("audience", EnvKind::Str),
    ("allowedRedirectHosts", EnvKind::List),
    ("logLevel", EnvKind::Str),
    ("logFormat", EnvKind::Str),
    ("listen", EnvKind::Str),
    ("upstream", EnvKind::Str),
    ("trustedProxies", EnvKind::List),
    ("http2", EnvKind::Bool),
    ("rateLimit", EnvKind::Int),
    ("enableBearerAuth", EnvKind::Bool),
    ("bearerIdentifierClaim", EnvKind::Str),
    ("stripAuthorizationHeader", EnvKind::Bool),
    ("bearerEmitWWWAuthenticate", EnvKind::Bool),
    ("bearerOverridesCookie", EnvKind::Bool),
    ("maxTokenAgeSeconds", EnvKind::Int),
    ("maxIdentifierLength", EnvKind::Int),
    ("bearerFailureThreshold", EnvKind::Int),
    ("bearerFailureWindowSeconds", EnvKind::Int),
    ("bearerFailurePenaltySeconds", EnvKind::Int),
    ("allowOpaqueTokens", EnvKind::Bool),
    ("requireTokenIntrospection", EnvKind::Bool),
    ("introspectionURL", EnvKind::Str),
    ("sessionStore", EnvKind::Str),
    ("securityOutagePolicy", EnvKind::Str),
    ("enableBackchannelLogout", EnvKind::Bool),
    ("backchannelLogoutURL", EnvKind::Str),
    ("enableFrontchannelLogout", EnvKind::Bool),
    ("frontchannelLogoutURL", EnvKind::Str),
    ("refreshGracePeriodSeconds", EnvKind::Int),
    ("maxRefreshTokenAgeSeconds", EnvKind::Int),
    ("refreshBreakerThreshold", EnvKind::Int),
    ("refreshBreakerOpenSeconds", EnvKind::Int),
];

/// `providerURL` → `OIDCGATE_PROVIDER_URL`.
pub fn env_name(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    let mut out = String::from("OIDCGATE_");
    for (i, &c) in chars.iter().enumerate() {
        let prev = i.checked_sub(1).map(|j| chars[j]);
        let next = chars.get(i + 1).copied();
        // A plural acronym ("URLs") keeps its trailing "s" in the same word.
        let plural_s = |n: Option<char>, after: Option<char>| {
            n == Some('s') && after.is_none_or(|a| a.is_ascii_uppercase())
        };
        let starts_word = c.is_ascii_uppercase()
            && match prev {
                Some(p) if p.is_ascii_lowercase() || p.is_ascii_digit() => true,
                Some(p) if p.is_ascii_uppercase() => {
                    next.is_some_and(|n| n.is_ascii_lowercase())
                        && !plural_s(next, chars.get(i + 2).copied())
                }
                _ => false,
            };
        if starts_word {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

impl RawConfig {
    /// Parses YAML `text` and overlays `OIDCGATE_*` variables from `env`.
    pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut doc: Value = if text.trim().is_empty() {
            Value::Mapping(Mapping::new())
        } else {
            serde_yaml::from_str(text).map_err(|e| bad("config", format!("not valid YAML: {e}")))?
        };
        let Value::Mapping(map) = &mut doc else {
            return Err(bad(
                "config",
                "the file must be a mapping of keys to values",
            ));
        };
        for (key, kind) in ENV_KEYS {
            let Some(v) = env(&env_name(key)) else {
                continue;
            };
            let value = match kind {
                EnvKind::Str => Value::String(v),
                EnvKind::Bool => match v.trim().to_ascii_lowercase().as_str() {
                    "true" | "1" | "yes" => Value::Bool(true),
                    "false" | "0" | "no" | "" => Value::Bool(false),
                    _ => {
                        return Err(bad(
                            &env_name(key),
                            format!("expected true or false, got {v:?}"),
                        ));
                    }
                },
                EnvKind::Int => Value::Number(
                    v.trim()
                        .parse::<u64>()
                        .map_err(|_| bad(&env_name(key), format!("expected a number, got {v:?}")))?
                        .into(),
                ),
                EnvKind::List => Value::Sequence(
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| Value::String(s.to_owned()))
                        .collect(),
                ),
            };
            map.insert(Value::String((*key).to_owned()), value);
        }
        let raw: RawConfig = serde_yaml::from_value(doc).map_err(|e| {
            let msg = e.to_string();
            // serde names the key in its message; keep it first.
            match msg.split_once("unknown field `") {
                Some((_, rest)) => {
                    let key = rest.split('`').next().unwrap_or("?");
                    bad(
                        key,
                        "unknown key (check the spelling against the documentation)",
                    )
                }
                None => bad("config", msg),
            }
        })?;
        Ok(raw)
    }

    /// Refuses keys of features that are not available yet, and unknown keys.
    pub(super) fn reject_unsupported(&self) -> Result<(), ConfigError> {
        for (k, v) in &self.unsupported {
            if !NOT_YET_SUPPORTED.contains(&k.as_str()) {
                return Err(bad(
                    k,
                    "unknown key (check the spelling against the documentation)",
                ));
            }
            let off = matches!(v, Value::Null | Value::Bool(false))
                || matches!(v, Value::String(s) if s.is_empty())
                || matches!(v, Value::Sequence(s) if s.is_empty());
            if !off {
                return Err(bad(k, "is not supported by this version of oidcgate yet"));
            }
        }
        Ok(())
    }
}
