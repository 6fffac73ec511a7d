//! Provider metadata (`/.well-known/openid-configuration`).

use serde::Deserialize;

use super::Error;
use super::http::get_json;

/// The fields of the discovery document the gate uses.
#[derive(Clone, Debug, Deserialize)]
pub struct ProviderMetadata {
    /// The issuer identifier; must equal the configured provider URL.
    pub issuer: String,
    /// Where browsers are sent to log in.
    pub authorization_endpoint: String,
    /// Where codes and refresh tokens are exchanged.
    pub token_endpoint: String,
    /// The provider's signing keys.
    pub jwks_uri: String,
    /// RP-initiated logout endpoint, if the provider has one.
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
    /// RFC 7662 introspection endpoint.
    #[serde(default)]
    pub introspection_endpoint: Option<String>,
    /// RFC 7009 revocation endpoint.
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    /// Scopes the provider advertises.
    #[serde(default)]
    pub scopes_supported: Option<Vec<String>>,
    /// PKCE methods the provider advertises.
    #[serde(default)]
    pub code_challenge_methods_supported: Option<Vec<String>>,
    /// Client authentication methods of the token endpoint (absent means
    /// `client_secret_basic`, OIDC Discovery §3).
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// Algorithms accepted for client assertions.
    #[serde(default)]
    pub token_endpoint_auth_signing_alg_values_supported: Option<Vec<String>>,
    /// The userinfo endpoint.
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    /// RFC 7591 registration endpoint.
    #[serde(default)]
    pub registration_endpoint: Option<String>,
}

/// Fetches and checks the discovery document of `issuer`.
pub(crate) async fn discover(
    client: &reqwest::Client,
    issuer: &str,
) -> Result<ProviderMetadata, Error> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let meta: ProviderMetadata = get_json(client, &url).await?;
    if meta.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
        return Err(Error::ProviderInvalid(format!(
            "discovery issuer {:?} does not match providerURL {:?}",
            meta.issuer, issuer
        )));
    }
    for (name, v) in [
        ("authorization_endpoint", &meta.authorization_endpoint),
        ("token_endpoint", &meta.token_endpoint),
        ("jwks_uri", &meta.jwks_uri),
    ] {
        let u = url::Url::parse(v)
            .map_err(|_| Error::ProviderInvalid(format!("discovery {name} is not a URL")))?;
        if !matches!(u.scheme(), "https" | "http") {
            return Err(Error::ProviderInvalid(format!(
                "discovery {name} is not http(s)"
            )));
        }
    }
    Ok(meta)
}
