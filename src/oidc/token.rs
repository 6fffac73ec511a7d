//! The token endpoint: authorization-code exchange (with PKCE) and refresh.

use base64::Engine as _;
use serde::Deserialize;

use super::http::{error_chain, read_capped};
use super::{Error, OAuthErrorKind};

/// How the client authenticates at the token endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientAuthMethod {
    /// `client_id` and `client_secret` in the form body.
    #[default]
    ClientSecretPost,
    /// HTTP Basic with the form-urlencoded id and secret (RFC 6749 §2.3.1).
    ClientSecretBasic,
}

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

/// Client credentials for the token endpoint.
pub(crate) struct ClientCredentials<'a> {
    pub(crate) id: &'a str,
    pub(crate) secret: &'a str,
    pub(crate) method: ClientAuthMethod,
}

/// Adds client authentication to a POST to the token or introspection
/// endpoint: form fields for `client_secret_post`, an HTTP Basic header for
/// `client_secret_basic`.
pub(crate) fn authenticate<'a>(
    mut req: reqwest::RequestBuilder,
    creds: &ClientCredentials<'a>,
    form: &mut Vec<(&'a str, &'a str)>,
) -> reqwest::RequestBuilder {
    match creds.method {
        ClientAuthMethod::ClientSecretPost => {
            form.push(("client_id", creds.id));
            if !creds.secret.is_empty() {
                form.push(("client_secret", creds.secret));
            }
        }
        ClientAuthMethod::ClientSecretBasic => {
            let enc =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let raw = format!("{}:{}", enc(creds.id), enc(creds.secret));
            let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
            req = req.header(reqwest::header::AUTHORIZATION, format!("Basic {b64}"));
        }
    }
    req
}

/// POSTs a grant to the token endpoint and classifies the answer.
pub(crate) async fn grant<'a>(
    client: &reqwest::Client,
    endpoint: &str,
    creds: &ClientCredentials<'a>,
    mut form: Vec<(&'a str, &'a str)>,
) -> Result<TokenResponse, Error> {
    let req = client
        .post(endpoint)
        .header(reqwest::header::ACCEPT, "application/json");
    let req = authenticate(req, creds, &mut form);
    let resp =
        req.form(&form).send().await.map_err(|e| {
            Error::ProviderUnavailable(format!("token endpoint: {}", error_chain(&e)))
        })?;
    let status = resp.status();
    let body = read_capped(resp).await?;
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
