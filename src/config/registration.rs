//! The `dynamicClientRegistration` block (RFC 7591): register the OAuth
//! client at start-up when `clientID` is empty.
//!
//! Owns the refusals of the block: registration switched on next to a
//! `clientID` (warned: the configured client wins, as in the plugin),
//! missing or relative `clientMetadata.redirect_uris`, a redirect URI whose
//! path is not `callbackURL`, an unknown `storageBackend`, `redis` storage
//! without a shared cache, and file storage without `credentialsFile`
//! (there is no default path: a file in a shared directory could be
//! planted). `redisKeyPrefix` is accepted and ignored: the shared record
//! lives in the cache's `registration` namespace under `redis.keyPrefix`.

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::Report;
use super::checks::optional_url;
use crate::oidc::{DEFAULT_REGISTRATION_TIMEOUT, RegistrationSettings, RegistrationStore};
use crate::session::SecretString;
use crate::telemetry::Secret;

/// The registration keys as written.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct Raw {
    /// The plugin's block.
    #[serde(rename = "dynamicClientRegistration")]
    pub(super) dynamic_client_registration: Option<RawBlock>,
}

/// `dynamicClientRegistration`.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct RawBlock {
    enabled: bool,
    #[serde(rename = "persistCredentials")]
    persist_credentials: bool,
    #[serde(rename = "storageBackend")]
    storage_backend: Option<String>,
    #[serde(rename = "credentialsFile")]
    credentials_file: Option<String>,
    #[serde(rename = "redisKeyPrefix")]
    redis_key_prefix: Option<String>,
    #[serde(rename = "registrationEndpoint")]
    registration_endpoint: Option<String>,
    #[serde(rename = "initialAccessToken")]
    initial_access_token: SecretString,
    #[serde(rename = "clientMetadata")]
    client_metadata: RawMetadata,
}

/// `dynamicClientRegistration.clientMetadata` (RFC 7591 §2 names).
#[derive(Default, Deserialize)]
#[serde(default)]
struct RawMetadata {
    redirect_uris: Vec<String>,
    client_name: Option<String>,
    application_type: Option<String>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
    token_endpoint_auth_method: Option<String>,
    scope: Option<String>,
    contacts: Vec<String>,
    logo_uri: Option<String>,
    client_uri: Option<String>,
    policy_uri: Option<String>,
    tos_uri: Option<String>,
    jwks_uri: Option<String>,
    subject_type: Option<String>,
    default_max_age: Option<u64>,
    require_auth_time: Option<bool>,
    default_acr_values: Vec<String>,
}

/// The nested blocks, for "did you mean" on their unknown keys.
pub(super) fn nested_blocks() -> Vec<(&'static str, &'static [&'static str])> {
    vec![
        (
            "dynamicClientRegistration",
            super::raw::field_names::<RawBlock>(),
        ),
        (
            "dynamicClientRegistration.clientMetadata",
            super::raw::field_names::<RawMetadata>(),
        ),
    ]
}

impl Raw {
    /// True when the block switches registration on.
    pub(super) fn enabled(&self) -> bool {
        self.dynamic_client_registration
            .as_ref()
            .is_some_and(|b| b.enabled)
    }
}

/// What the rest of the configuration tells registration.
pub(super) struct Context<'a> {
    /// `clientID` as written (trimmed).
    pub(super) client_id: &'a str,
    /// `callbackURL`.
    pub(super) callback_path: &'a str,
    /// `clientAuthMethod`, when set.
    pub(super) client_auth_method: Option<&'a str>,
    /// Whether a shared cache (Redis) is configured.
    pub(super) shared_cache: bool,
}

impl<'a> Context<'a> {
    /// The context from the other concerns' settings.
    pub(super) fn new(
        provider: &'a crate::oidc::ProviderSettings,
        callback_path: &'a str,
        client_auth_method: &'a Option<String>,
        cache: &crate::cache::CacheSettings,
    ) -> Self {
        Self {
            client_id: &provider.client_id,
            callback_path,
            client_auth_method: client_auth_method.as_deref().map(str::trim),
            shared_cache: cache.mode != crate::cache::CacheMode::Memory,
        }
    }
}

/// The registration settings, when registration is switched on and needed.
pub(super) fn settings(raw: Raw, cx: &Context<'_>, r: &mut Report) -> Option<RegistrationSettings> {
    let b = raw.dynamic_client_registration.filter(|b| b.enabled)?;
    if !cx.client_id.is_empty() {
        r.warn(
            "dynamicClientRegistration",
            "clientID is set, so no client is registered",
        );
        return None;
    }
    const KEY: &str = "dynamicClientRegistration";
    let endpoint = optional_url(
        "dynamicClientRegistration.registrationEndpoint",
        b.registration_endpoint.as_deref(),
        r,
    );
    let store = store(&b, cx, r);
    let m = b.client_metadata;
    let uris_key = format!("{KEY}.clientMetadata.redirect_uris");
    if m.redirect_uris.is_empty() {
        r.error(
            &uris_key,
            "is required: the absolute callback URL(s) of this gate, e.g. \
             https://app.example.com/oauth2/callback",
        );
    }
    for (i, u) in m.redirect_uris.iter().enumerate() {
        match url::Url::parse(u) {
            Ok(url) if matches!(url.scheme(), "https" | "http") => {
                if url.path() != cx.callback_path {
                    r.error(
                        &format!("{uris_key}[{i}]"),
                        format!(
                            "its path {:?} is not callbackURL {:?}",
                            url.path(),
                            cx.callback_path
                        ),
                    );
                }
            }
            _ => r.error(
                &format!("{uris_key}[{i}]"),
                format!("{u:?} is not an absolute http(s) URL"),
            ),
        }
    }
    if b.redis_key_prefix.is_some() {
        r.warn(
            &format!("{KEY}.redisKeyPrefix"),
            "ignored: the registration is kept under redis.keyPrefix in the registration namespace",
        );
    }
    let md = metadata(m, cx);
    let token = b.initial_access_token.expose().trim();
    Some(RegistrationSettings {
        endpoint,
        initial_access_token: (!token.is_empty()).then(|| Secret::new(token)),
        metadata: md,
        store,
        timeout: DEFAULT_REGISTRATION_TIMEOUT,
    })
}

/// Where the registered client is kept.
fn store(b: &RawBlock, cx: &Context<'_>, r: &mut Report) -> RegistrationStore {
    const KEY: &str = "dynamicClientRegistration";
    if b.persist_credentials {
        let backend = b
            .storage_backend
            .as_deref()
            .map(|s| s.trim().to_ascii_lowercase())
            .unwrap_or_else(|| "auto".into());
        match (backend.as_str(), &b.credentials_file) {
            ("redis", _) if !cx.shared_cache => {
                r.error(
                    &format!("{KEY}.storageBackend"),
                    "redis needs the redis: block enabled (a shared cache)",
                );
                RegistrationStore::None
            }
            ("redis", _) => RegistrationStore::Shared,
            ("auto", _) if cx.shared_cache => RegistrationStore::Shared,
            ("auto" | "file", Some(f)) if !f.trim().is_empty() => {
                RegistrationStore::File(PathBuf::from(f.trim()))
            }
            ("auto" | "file", _) => {
                r.error(
                    &format!("{KEY}.credentialsFile"),
                    "is required to keep the registration in a file (or enable redis: to share it)",
                );
                RegistrationStore::None
            }
            (other, _) => {
                r.error(
                    &format!("{KEY}.storageBackend"),
                    format!("expected file, redis or auto, got {other:?}"),
                );
                RegistrationStore::None
            }
        }
    } else {
        RegistrationStore::None
    }
}

/// The client metadata sent, with the plugin's defaults.
fn metadata(m: RawMetadata, cx: &Context<'_>) -> Map<String, Value> {
    let mut md = Map::new();
    let mut put = |k: &str, v: Value| {
        md.insert(k.to_owned(), v);
    };
    put("redirect_uris", m.redirect_uris.into());
    put(
        "client_name",
        m.client_name.unwrap_or_else(|| "oidcgate".into()).into(),
    );
    put(
        "application_type",
        m.application_type.unwrap_or_else(|| "web".into()).into(),
    );
    put(
        "grant_types",
        m.grant_types
            .unwrap_or_else(|| vec!["authorization_code".into(), "refresh_token".into()])
            .into(),
    );
    put(
        "response_types",
        m.response_types
            .unwrap_or_else(|| vec!["code".into()])
            .into(),
    );
    put(
        "token_endpoint_auth_method",
        m.token_endpoint_auth_method
            .or_else(|| cx.client_auth_method.map(str::to_owned))
            .unwrap_or_else(|| "client_secret_basic".into())
            .into(),
    );
    for (k, v) in [
        ("scope", m.scope),
        ("logo_uri", m.logo_uri),
        ("client_uri", m.client_uri),
        ("policy_uri", m.policy_uri),
        ("tos_uri", m.tos_uri),
        ("jwks_uri", m.jwks_uri),
        ("subject_type", m.subject_type),
    ] {
        if let Some(v) = v {
            put(k, v.into());
        }
    }
    if !m.contacts.is_empty() {
        put("contacts", m.contacts.into());
    }
    if !m.default_acr_values.is_empty() {
        put("default_acr_values", m.default_acr_values.into());
    }
    if let Some(v) = m.default_max_age {
        put("default_max_age", v.into());
    }
    if let Some(v) = m.require_auth_time {
        put("require_auth_time", v.into());
    }
    md
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::super::tests::{check_refusals, load};
    use crate::oidc::RegistrationStore;

    const ON: &str =
        "clientID: ''\nclientSecret: ''\ndynamicClientRegistration:\n  enabled: true\n";
    const URIS: &str =
        "  clientMetadata: {redirect_uris: [https://app.example.com/oauth2/callback]}\n";

    #[test]
    fn refusals_name_their_key() {
        let cases: Vec<(String, &[&str])> = vec![
            (
                ON.to_owned(),
                &["dynamicClientRegistration.clientMetadata.redirect_uris"],
            ),
            (
                format!("{ON}  clientMetadata: {{redirect_uris: [/oauth2/callback]}}\n"),
                &["dynamicClientRegistration.clientMetadata.redirect_uris[0]"],
            ),
            (
                format!("{ON}  clientMetadata: {{redirect_uris: [https://app.example.com/cb]}}\n"),
                &["dynamicClientRegistration.clientMetadata.redirect_uris[0]"],
            ),
            (
                format!("{ON}{URIS}  persistCredentials: true\n"),
                &["dynamicClientRegistration.credentialsFile"],
            ),
            (
                format!("{ON}{URIS}  persistCredentials: true\n  storageBackend: redis\n"),
                &["dynamicClientRegistration.storageBackend"],
            ),
            (
                format!(
                    "{ON}{URIS}  persistCredentials: true\n  storageBackend: disk\n  \
                     credentialsFile: /var/lib/oidcgate/client.json\n"
                ),
                &["dynamicClientRegistration.storageBackend"],
            ),
            (
                format!("{ON}{URIS}  registrationEndpoint: http://idp.example.com/register\n"),
                &["dynamicClientRegistration.registrationEndpoint"],
            ),
            (
                format!("{ON}{URIS}  clientMetadata2: {{}}\n"),
                &["dynamicClientRegistration.clientMetadata2"],
            ),
            ("clientID: ''\n".to_owned(), &["clientID"]),
        ];
        let cases: Vec<(&str, &[&str])> = cases.iter().map(|(y, k)| (y.as_str(), *k)).collect();
        check_refusals(&cases);
    }

    #[test]
    fn the_block_becomes_registration_metadata() {
        let c = load(&format!(
            "{ON}{URIS}  persistCredentials: true\n  credentialsFile: /var/lib/oidcgate/client.json\n  \
             initialAccessToken: iat-123\nclientAuthMethod: client_secret_post\n"
        ))
        .unwrap();
        let reg = c.provider.registration.clone().expect("registration on");
        assert_eq!(
            reg.store,
            RegistrationStore::File("/var/lib/oidcgate/client.json".into())
        );
        assert_eq!(
            reg.metadata["redirect_uris"],
            serde_json::json!(["https://app.example.com/oauth2/callback"])
        );
        assert_eq!(
            reg.metadata["token_endpoint_auth_method"],
            "client_secret_post"
        );
        assert_eq!(
            reg.metadata["grant_types"],
            serde_json::json!(["authorization_code", "refresh_token"])
        );
        assert_eq!(
            reg.initial_access_token.as_ref().unwrap().expose(),
            "iat-123"
        );
        assert!(!format!("{:?}", c.provider).contains("iat-123"));
    }

    #[test]
    fn a_configured_client_id_wins_with_a_warning() {
        let c = load("dynamicClientRegistration: {enabled: true}\n").unwrap();
        assert!(c.provider.registration.is_none());
        assert!(
            c.warnings
                .iter()
                .any(|w| w.key == "dynamicClientRegistration"),
            "{:?}",
            c.warnings
        );
    }
}
