//! Dynamic client registration (RFC 7591): the registration request at
//! discovery's `registration_endpoint` (or the configured one), the kept
//! form of its answer, and keeping it in a file (mode 0600; a file others
//! may read or write is refused).
//!
//! Owns the protocol and the file only; where the start-up looks for a kept
//! client first and how replicas agree on one (the shared cache) is the
//! gate's `registration` module.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Error;
use super::client_auth::ClientAuthMethod;
use super::discovery::discover;
use super::http::{build_client, exchange};
use super::provider::ProviderSettings;
use crate::telemetry::Secret;

/// Timeout of the registration request.
pub const DEFAULT_REGISTRATION_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest error description of a refused registration that is reported.
const MAX_ERROR_DESCRIPTION_CHARS: usize = 200;

/// Where the registered client is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegistrationStore {
    /// Nowhere: every start registers a new client.
    None,
    /// A JSON file (mode 0600), refused when others may read or write it.
    File(PathBuf),
    /// The shared cache (Redis), so every replica uses one client.
    Shared,
}

/// How to register.
#[derive(Clone, Debug)]
pub struct RegistrationSettings {
    /// The registration endpoint; `None` uses discovery's
    /// `registration_endpoint`.
    pub endpoint: Option<String>,
    /// Initial access token, sent as `Authorization: Bearer`.
    pub initial_access_token: Option<Secret>,
    /// The client metadata sent (`redirect_uris`, `client_name`,
    /// `token_endpoint_auth_method`, ...).
    pub metadata: Map<String, Value>,
    /// Where the registered client is kept.
    pub store: RegistrationStore,
    /// Timeout of the registration request.
    pub timeout: Duration,
}

/// A registered client as it is kept.
#[derive(Clone, Serialize, Deserialize)]
pub struct RegisteredClient {
    /// The issuer it was registered with.
    pub issuer: String,
    /// The redirect URIs it was registered with.
    pub redirect_uris: Vec<String>,
    /// The client id.
    pub client_id: String,
    /// The client secret, if one was issued.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// When the secret expires (seconds since the epoch; 0 or absent: never).
    #[serde(default)]
    pub client_secret_expires_at: Option<u64>,
    /// The token endpoint authentication method the provider registered.
    #[serde(default)]
    pub token_endpoint_auth_method: Option<String>,
    /// Token for reading or updating the registration (RFC 7592).
    #[serde(default)]
    pub registration_access_token: Option<String>,
    /// Where the registration can be read or updated (RFC 7592).
    #[serde(default)]
    pub registration_client_uri: Option<String>,
}

impl std::fmt::Debug for RegisteredClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisteredClient")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("client_secret_expires_at", &self.client_secret_expires_at)
            .finish_non_exhaustive()
    }
}

impl RegisteredClient {
    /// True when this record serves `issuer` with `redirect_uris` and its
    /// secret has not expired at `now` (seconds).
    pub fn fits(&self, issuer: &str, redirect_uris: &[String], now: u64) -> bool {
        self.issuer == issuer
            && self.redirect_uris == redirect_uris
            && !self.client_id.is_empty()
            && self
                .client_secret_expires_at
                .is_none_or(|at| at == 0 || at > now)
    }
}

/// The redirect URIs of `metadata`.
pub fn redirect_uris_of(metadata: &Map<String, Value>) -> Vec<String> {
    metadata
        .get("redirect_uris")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The registration settings when `settings` must obtain its client by
/// registration (registration configured, no client id).
pub fn pending_registration(settings: &ProviderSettings) -> Option<&RegistrationSettings> {
    settings
        .registration
        .as_ref()
        .filter(|_| settings.client_id.is_empty())
}

impl RegisteredClient {
    /// Gives `settings` this client: id, secret, and the registered
    /// authentication method unless `clientAuthMethod` chose one.
    pub fn apply_to(&self, settings: &mut ProviderSettings) {
        settings.client_id.clone_from(&self.client_id);
        settings.client_secret = Secret::new(self.client_secret.clone().unwrap_or_default());
        if settings.client_auth.is_none() {
            settings.client_auth = self
                .token_endpoint_auth_method
                .as_deref()
                .and_then(ClientAuthMethod::parse);
        }
    }
}

/// The kept registration, `None` when the file does not exist. A file that
/// others may read or write, or that is a symbolic link, is refused.
pub fn read_registration_file(path: &Path) -> Result<Option<RegisteredClient>, Error> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::Config(format!(
                "credentialsFile {}: {e}",
                path.display()
            )));
        }
    };
    if !meta.is_file() {
        return Err(Error::Config(format!(
            "credentialsFile {} is not a regular file",
            path.display()
        )));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(Error::Config(format!(
                "credentialsFile {} may be read or written by others (chmod 600 it)",
                path.display()
            )));
        }
    }
    let text = std::fs::read(path)
        .map_err(|e| Error::Config(format!("credentialsFile {}: {e}", path.display())))?;
    serde_json::from_slice(&text).map(Some).map_err(|e| {
        Error::Config(format!(
            "credentialsFile {} does not hold a registration: {e}",
            path.display()
        ))
    })
}

/// Writes the registration to a new file beside `path` (mode 0600) and
/// renames it into place.
pub fn write_registration_file(path: &Path, c: &RegisteredClient) -> Result<(), Error> {
    let fail =
        |e: std::io::Error| Error::Config(format!("credentialsFile {}: {e}", path.display()));
    let json = serde_json::to_vec_pretty(c)
        .map_err(|e| Error::Config(format!("registration does not serialize: {e}")))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".new");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    {
        use std::io::Write as _;
        let mut f = opts.open(&tmp).map_err(fail)?;
        f.write_all(&json).map_err(fail)?;
        f.sync_all().map_err(fail)?;
    }
    std::fs::rename(&tmp, path).map_err(fail)
}

#[derive(Deserialize)]
struct RegistrationError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// Registers a new client (RFC 7591 §3).
pub async fn register_client(
    settings: &ProviderSettings,
    reg: &RegistrationSettings,
) -> Result<RegisteredClient, Error> {
    let mut http = settings.http.clone();
    http.timeout = reg.timeout;
    let client = build_client(&http)?;
    let endpoint = match &reg.endpoint {
        Some(e) => e.clone(),
        None => discover(&client, &settings.issuer, settings.profile)
            .await?
            .registration_endpoint
            .ok_or_else(|| {
                Error::Config(
                    "the provider advertises no registration_endpoint; set \
                     dynamicClientRegistration.registrationEndpoint or clientID"
                        .into(),
                )
            })?,
    };
    let mut req = client
        .post(&endpoint)
        .header(reqwest::header::ACCEPT, "application/json")
        .json(&reg.metadata);
    if let Some(t) = &reg.initial_access_token {
        req = req.bearer_auth(t.expose());
    }
    let (status, body) = exchange(req, "registration endpoint").await?;
    if !status.is_success() {
        let why = serde_json::from_slice::<RegistrationError>(&body)
            .map(|e| {
                let desc: String = e
                    .error_description
                    .unwrap_or_default()
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(MAX_ERROR_DESCRIPTION_CHARS)
                    .collect();
                format!("{}: {desc}", e.error)
            })
            .unwrap_or_else(|_| "no error code".into());
        return Err(Error::ProviderInvalid(format!(
            "registration refused (HTTP {status}): {why}"
        )));
    }
    let mut answer: Map<String, Value> = serde_json::from_slice(&body)
        .map_err(|_| Error::ProviderInvalid("registration answer is not a JSON object".into()))?;
    let text = |answer: &mut Map<String, Value>, k: &str| match answer.remove(k) {
        Some(Value::String(s)) if !s.is_empty() => Some(s),
        _ => None,
    };
    let client_id = text(&mut answer, "client_id")
        .ok_or_else(|| Error::ProviderInvalid("registration answer has no client_id".into()))?;
    Ok(RegisteredClient {
        issuer: settings.issuer.clone(),
        redirect_uris: redirect_uris_of(&reg.metadata),
        client_id,
        client_secret: text(&mut answer, "client_secret"),
        client_secret_expires_at: answer
            .get("client_secret_expires_at")
            .and_then(Value::as_u64),
        token_endpoint_auth_method: text(&mut answer, "token_endpoint_auth_method"),
        registration_access_token: text(&mut answer, "registration_access_token"),
        registration_client_uri: text(&mut answer, "registration_client_uri"),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn client(expires: Option<u64>) -> RegisteredClient {
        RegisteredClient {
            issuer: "https://idp.example".into(),
            redirect_uris: vec!["https://app.example/oauth2/callback".into()],
            client_id: "c1".into(),
            client_secret: Some("s3cret".into()),
            client_secret_expires_at: expires,
            token_endpoint_auth_method: None,
            registration_access_token: None,
            registration_client_uri: None,
        }
    }

    #[test]
    fn a_kept_registration_fits_only_its_issuer_uris_and_lifetime() {
        let uris = vec!["https://app.example/oauth2/callback".to_owned()];
        assert!(client(None).fits("https://idp.example", &uris, 100));
        assert!(client(Some(0)).fits("https://idp.example", &uris, 100));
        assert!(client(Some(101)).fits("https://idp.example", &uris, 100));
        assert!(!client(Some(100)).fits("https://idp.example", &uris, 100));
        assert!(!client(None).fits("https://other.example", &uris, 100));
        assert!(!client(None).fits("https://idp.example", &[], 100));
    }

    #[test]
    fn debug_hides_the_secret() {
        let d = format!("{:?}", client(None));
        assert!(!d.contains("s3cret"), "{d}");
    }

    #[cfg(unix)]
    #[test]
    fn the_file_is_private_and_a_shared_one_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("oidcgate-dcr-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("client.json");
        let _ = std::fs::remove_file(&path);
        assert!(read_registration_file(&path).unwrap().is_none());
        write_registration_file(&path, &client(None)).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            read_registration_file(&path).unwrap().unwrap().client_id,
            "c1"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_registration_file(&path).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
