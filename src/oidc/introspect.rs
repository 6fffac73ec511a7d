//! RFC 7662 token introspection: asks the provider whether a token is active.
//!
//! The request is a POST of `token` and `token_type_hint=access_token` with
//! the same client authentication as the token endpoint. The answer is
//! returned as a JSON object whose `active` member is a boolean; judging the
//! other members (expiry, audience, issuer) is the caller's business, so a
//! cached answer can be judged again later with the same code.

use serde_json::{Map, Value};

use super::Error;
use super::client_auth::{ClientCredentials, authenticated_post};
use super::http::exchange;

/// POSTs `token` to `endpoint` and returns the provider's answer.
///
/// A timeout is [`Error::ProviderTimeout`]; other transport failures, 5xx,
/// 408 and 429 are [`Error::ProviderUnavailable`];
/// other refusals and answers without a boolean `active` are
/// [`Error::ProviderInvalid`] (usually a client-credentials problem).
pub(crate) async fn introspect(
    client: &reqwest::Client,
    endpoint: &str,
    creds: &ClientCredentials<'_>,
    token: &str,
) -> Result<Map<String, Value>, Error> {
    let form = [("token", token), ("token_type_hint", "access_token")];
    let req = authenticated_post(client, endpoint, creds, &form)?;
    let (status, body) = exchange(req, "introspection endpoint").await?;
    if matches!(status.as_u16(), 401 | 403) {
        return Err(Error::ClientRefused("introspection"));
    }
    if !status.is_success() {
        return Err(Error::ProviderInvalid(format!(
            "introspection endpoint refused the request with HTTP {status} \
             (check clientID, clientSecret and clientAuthMethod)"
        )));
    }
    let answer: Map<String, Value> = serde_json::from_slice(&body)
        .map_err(|_| Error::ProviderInvalid("introspection answer is not a JSON object".into()))?;
    if !answer.get("active").is_some_and(Value::is_boolean) {
        return Err(Error::ProviderInvalid(
            "introspection answer has no boolean `active`".into(),
        ));
    }
    Ok(answer)
}

/// Checks that an introspection endpoint is an absolute http(s) URL.
pub(crate) fn check_endpoint(endpoint: &str) -> Result<(), Error> {
    match url::Url::parse(endpoint) {
        Ok(u) if matches!(u.scheme(), "https" | "http") && u.host().is_some() => Ok(()),
        _ => Err(Error::ProviderInvalid(
            "introspection endpoint is not an http(s) URL".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_shape() {
        assert!(check_endpoint("https://idp.example/introspect").is_ok());
        assert!(check_endpoint("http://127.0.0.1:8080/i").is_ok());
        assert!(check_endpoint("file:///etc/passwd").is_err());
        assert!(check_endpoint("/relative").is_err());
    }
}
