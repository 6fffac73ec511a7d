//! The outbound HTTP client used for every call to the provider.
//!
//! Owns TLS trust (system roots plus `caCertPath`/`caCertPEM`), timeouts and
//! the cap on response bodies. Nothing else in the crate builds a client.

use std::time::Duration;

use super::Error;

/// Timeout for one request to the provider.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Connect timeout towards the provider.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest response body accepted from the provider (discovery, JWKS, tokens).
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Outbound HTTP settings.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// Whole-request timeout.
    pub timeout: Duration,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Extra trusted CA certificates (PEM bundles).
    pub extra_ca_pem: Vec<Vec<u8>>,
    /// Disable certificate verification (development only; logged loudly).
    pub insecure_skip_verify: bool,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_HTTP_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            extra_ca_pem: Vec::new(),
            insecure_skip_verify: false,
        }
    }
}

/// Builds the client. Fails when a CA bundle does not parse.
pub(crate) fn build_client(s: &HttpSettings) -> Result<reqwest::Client, Error> {
    let mut b = reqwest::Client::builder()
        .timeout(s.timeout)
        .connect_timeout(s.connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("oidcgate/", env!("CARGO_PKG_VERSION")));
    for pem in &s.extra_ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| Error::Config(format!("CA bundle does not parse: {e}")))?;
        if certs.is_empty() {
            return Err(Error::Config("CA bundle holds no certificate".into()));
        }
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    if s.insecure_skip_verify {
        tracing::error!(
            "SECURITY WARNING: insecureSkipVerify is on; provider TLS certificates are not verified"
        );
        b = b.danger_accept_invalid_certs(true);
    }
    b.build()
        .map_err(|e| Error::Config(format!("HTTP client: {e}")))
}

/// Classifies a failed exchange with `what` (an endpoint's name or a URL):
/// a timeout is [`Error::ProviderTimeout`], anything else
/// [`Error::ProviderUnavailable`].
pub(crate) fn transport_error(what: &str, e: &reqwest::Error) -> Error {
    if e.is_timeout() {
        Error::ProviderTimeout(format!("{what}: {}", error_chain(e)))
    } else {
        Error::ProviderUnavailable(format!("{what}: {}", error_chain(e)))
    }
}

/// Reads a response body from `what`, refusing more than
/// [`DEFAULT_MAX_RESPONSE_BYTES`].
pub(crate) async fn read_capped(mut resp: reqwest::Response, what: &str) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| transport_error(&format!("{what}: reading response"), &e))?
    {
        if out.len() + chunk.len() > DEFAULT_MAX_RESPONSE_BYTES {
            return Err(Error::ProviderInvalid("response body too large".into()));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Sends `req` to `what` (an endpoint's name) and reads its answer, capped:
/// its status and body, or the error of a failed exchange or of an answer
/// saying the provider cannot serve now (5xx, 408, 429:
/// [`Error::ProviderUnavailable`]). Other statuses are the caller's to judge.
pub(crate) async fn exchange(
    req: reqwest::RequestBuilder,
    what: &str,
) -> Result<(reqwest::StatusCode, Vec<u8>), Error> {
    let resp = req.send().await.map_err(|e| transport_error(what, &e))?;
    let status = resp.status();
    let body = read_capped(resp, what).await?;
    if status.is_server_error() || matches!(status.as_u16(), 408 | 429) {
        return Err(Error::ProviderUnavailable(format!(
            "{what} answered HTTP {status}"
        )));
    }
    Ok((status, body))
}

/// GETs a JSON document, mapping transport errors and 5xx to `ProviderUnavailable`.
pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
) -> Result<T, Error> {
    get_json_with(client, url, None, &[]).await
}

/// [`get_json`] with a bearer token and extra request headers.
pub(crate) async fn get_json_with<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
    headers: &[(&str, &str)],
) -> Result<T, Error> {
    let mut req = client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json");
    if let Some(token) = bearer {
        req = req.bearer_auth(token);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| transport_error(&format!("GET {url}"), &e))?;
    let status = resp.status();
    let body = read_capped(resp, &format!("GET {url}")).await?;
    if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        return Err(Error::ProviderUnavailable(format!(
            "GET {url}: HTTP {status}"
        )));
    }
    if !status.is_success() {
        return Err(Error::ProviderInvalid(format!("GET {url}: HTTP {status}")));
    }
    serde_json::from_slice(&body)
        .map_err(|e| Error::ProviderInvalid(format!("GET {url}: bad JSON: {e}")))
}

/// Flattens an error and its sources into one line (no secrets are in these).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
