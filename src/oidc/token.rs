//! The token endpoint: authorization-code exchange (with PKCE) and refresh.

use serde::Deserialize;

use super::client_auth::{ClientCredentials, authenticated_post};
use super::http::{read_capped, transport_error};
use super::{Error, OAuthErrorKind};

/// A successful token endpoint answer.
#[derive(Clone, Deserialize)]
pub struct TokenResponse {
    /// The access token.
    pub access_token: String,
    /// Usually `Bearer`.
    #[serde(default)]
    pub token_type: Option<String>,
    /// Access-token lifetime in seconds.
    #[serde(default)]
    pub expires_in: Option<u64>,
    /// A (possibly rotated) refresh token.
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// The ID token.
    #[serde(default)]
    pub id_token: Option<String>,
    /// Granted scopes.
    #[serde(default)]
    pub scope: Option<String>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"[redacted]")
            .field("expires_in", &self.expires_in)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("id_token", &self.id_token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

#[derive(Deserialize)]
struct OAuthErrorBody {
    error: String,
}

/// POSTs a grant to the token endpoint and classifies the answer.
pub(crate) async fn grant(
    client: &reqwest::Client,
    endpoint: &str,
    creds: &ClientCredentials<'_>,
    form: &[(&str, &str)],
) -> Result<TokenResponse, Error> {
    let req = authenticated_post(client, endpoint, creds, form)?;
    let resp = req
        .send()
        .await
        .map_err(|e| transport_error("token endpoint", &e))?;
    let status = resp.status();
    let body = read_capped(resp, "token endpoint").await?;
    if status.is_success() {
        let t: TokenResponse = serde_json::from_slice(&body)
            .map_err(|_| Error::ProviderInvalid("token response is not valid JSON".into()))?;
        if t.access_token.is_empty() {
            return Err(Error::ProviderInvalid(
                "token response has an empty access_token".into(),
            ));
        }
        return Ok(t);
    }
    if let Ok(e) = serde_json::from_slice::<OAuthErrorBody>(&body) {
        if status.is_client_error() && status.as_u16() != 429 && status.as_u16() != 408 {
            return Err(Error::OAuth {
                kind: OAuthErrorKind::parse(&e.error),
                status: status.as_u16(),
            });
        }
    }
    Err(Error::ProviderUnavailable(format!(
        "token endpoint answered HTTP {status}"
    )))
}

/// POSTs an RFC 7009 revocation. 200 is success whatever the token was;
/// 401/403 is [`Error::ClientRefused`]; 5xx, 408, 429 and transport failures
/// are [`Error::ProviderUnavailable`].
pub(crate) async fn revoke(
    client: &reqwest::Client,
    endpoint: &str,
    creds: &ClientCredentials<'_>,
    token: &str,
    hint: &str,
) -> Result<(), Error> {
    let form = [("token", token), ("token_type_hint", hint)];
    let resp = authenticated_post(client, endpoint, creds, &form)?
        .send()
        .await
        .map_err(|e| transport_error("revocation endpoint", &e))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    if matches!(status.as_u16(), 401 | 403) {
        return Err(Error::ClientRefused("revocation"));
    }
    if status.is_server_error() || matches!(status.as_u16(), 408 | 429) {
        return Err(Error::ProviderUnavailable(format!(
            "revocation endpoint answered HTTP {status}"
        )));
    }
    Err(Error::ProviderInvalid(format!(
        "revocation endpoint answered HTTP {status}"
    )))
}
