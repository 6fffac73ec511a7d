//! Provider metadata (`/.well-known/openid-configuration`).

use serde::Deserialize;

use super::Error;
use super::http::get_json;
use super::profile::Profile;

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
    /// Whether the provider sends `iss` and `sid` with front-channel logout
    /// requests (OIDC Front-Channel Logout §3).
    #[serde(default)]
    pub frontchannel_logout_session_supported: Option<bool>,
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
    profile: &Profile,
) -> Result<ProviderMetadata, Error> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let meta: ProviderMetadata = get_json(client, &url).await?;
    if !profile.issuer_matches(issuer, &meta.issuer) {
        return Err(Error::IssuerMismatch {
            configured: issuer.to_owned(),
            discovered: meta.issuer,
        });
    }
    check_endpoints(issuer, &meta)?;
    Ok(meta)
}

/// Every endpoint is an http(s) URL, and `https` when the issuer is: a
/// document served over TLS must not send codes, tokens or key fetches
/// over plain HTTP.
fn check_endpoints(issuer: &str, meta: &ProviderMetadata) -> Result<(), Error> {
    let tls_issuer = issuer.starts_with("https://");
    let optional = [
        ("end_session_endpoint", &meta.end_session_endpoint),
        ("introspection_endpoint", &meta.introspection_endpoint),
        ("revocation_endpoint", &meta.revocation_endpoint),
        ("userinfo_endpoint", &meta.userinfo_endpoint),
        ("registration_endpoint", &meta.registration_endpoint),
    ];
    let endpoints = [
        ("authorization_endpoint", Some(&meta.authorization_endpoint)),
        ("token_endpoint", Some(&meta.token_endpoint)),
        ("jwks_uri", Some(&meta.jwks_uri)),
    ]
    .into_iter()
    .chain(optional.into_iter().map(|(n, v)| (n, v.as_ref())));
    for (name, v) in endpoints {
        let Some(v) = v else { continue };
        let u = url::Url::parse(v)
            .map_err(|_| Error::ProviderInvalid(format!("discovery {name} is not a URL")))?;
        match u.scheme() {
            "https" => {}
            "http" if !tls_issuer => {}
            "http" => {
                return Err(Error::ProviderInvalid(format!(
                    "discovery {name} is http:// under an https:// issuer"
                )));
            }
            _ => {
                return Err(Error::ProviderInvalid(format!(
                    "discovery {name} is not http(s)"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(issuer: &str, token: &str, end_session: Option<&str>) -> ProviderMetadata {
        serde_json::from_value(serde_json::json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": token,
            "jwks_uri": format!("{issuer}/jwks"),
            "end_session_endpoint": end_session,
        }))
        .unwrap()
    }

    #[test]
    fn issue12_f10_http_endpoint_under_https_issuer_is_refused() {
        let i = "https://idp.example";
        assert!(check_endpoints(i, &meta(i, "https://idp.example/token", None)).is_ok());
        assert!(check_endpoints(i, &meta(i, "http://idp.example/token", None)).is_err());
        let m = meta(
            i,
            "https://idp.example/token",
            Some("http://idp.example/logout"),
        );
        assert!(check_endpoints(i, &m).is_err());
        // A plain-http issuer (a loopback test provider) keeps working.
        let l = "http://127.0.0.1:9000";
        assert!(check_endpoints(l, &meta(l, "http://127.0.0.1:9000/token", None)).is_ok());
        assert!(check_endpoints(l, &meta(l, "ftp://127.0.0.1/token", None)).is_err());
    }
}
