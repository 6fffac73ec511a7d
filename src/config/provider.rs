//! The provider-specific keys: client authentication (`clientAuthMethod`,
//! the `clientAssertion*` keys of `private_key_jwt`).
//!
//! Owns the start-up refusals of client authentication: an unknown method, a
//! method without the credential it needs, and a private key that does not
//! parse or does not fit its algorithm (the error names the key).

use std::sync::Arc;

use serde::Deserialize;

use super::raw::RawConfig;
use super::{ConfigError, bad};
use crate::oidc::{
    ASSERTION_KEY_ALGS, AssertionAudience, AssertionKey, ClientAuthMethod, ProviderSettings,
};
use crate::session::SecretString;

/// Default algorithm of a `private_key_jwt` key (`clientAssertionAlg`).
pub const DEFAULT_ASSERTION_ALG: &str = "RS256";

/// The provider-specific keys of the file.
#[derive(Clone, Default, Deserialize)]
#[serde(default)]
pub struct RawProviderKeys {
    /// PEM private key for `private_key_jwt`, inline.
    #[serde(rename = "clientAssertionPrivateKey")]
    pub client_assertion_private_key: SecretString,
    /// PEM private key for `private_key_jwt`, from a file.
    #[serde(rename = "clientAssertionKeyPath")]
    pub client_assertion_key_path: Option<String>,
    /// `kid` of the assertion key (default: its RFC 7638 thumbprint).
    #[serde(rename = "clientAssertionKeyID")]
    pub client_assertion_key_id: Option<String>,
    /// `RS256` (default), `PS256` or `ES256`.
    #[serde(rename = "clientAssertionAlg")]
    pub client_assertion_alg: Option<String>,
    /// `issuer` (default), `token_endpoint`, or a literal audience.
    #[serde(rename = "clientAssertionAudience")]
    pub client_assertion_audience: Option<String>,
}

/// Validates the client-authentication keys into `provider`.
pub(super) fn apply_client_auth(
    raw: &RawConfig,
    provider: &mut ProviderSettings,
) -> Result<(), ConfigError> {
    let keys = &raw.provider_keys;
    let method = match raw.client_auth_method.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(name) => Some(ClientAuthMethod::parse(name).ok_or_else(|| {
            bad(
                "clientAuthMethod",
                format!(
                    "expected client_secret_basic, client_secret_post, client_secret_jwt or \
                     private_key_jwt, got {name:?}"
                ),
            )
        })?),
    };
    let inline = keys.client_assertion_private_key.expose().trim();
    let (key_name, pem) = match (&keys.client_assertion_key_path, inline.is_empty()) {
        (Some(_), false) => {
            return Err(bad(
                "clientAssertionKeyPath",
                "set either clientAssertionKeyPath or clientAssertionPrivateKey, not both",
            ));
        }
        (Some(path), true) => {
            let pem = std::fs::read(path)
                .map_err(|e| bad("clientAssertionKeyPath", format!("cannot read {path}: {e}")))?;
            ("clientAssertionKeyPath", Some(pem))
        }
        (None, false) => (
            "clientAssertionPrivateKey",
            Some(inline.as_bytes().to_vec()),
        ),
        (None, true) => ("clientAssertionKeyPath", None),
    };
    let alg_name = keys
        .client_assertion_alg
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .unwrap_or(DEFAULT_ASSERTION_ALG);
    let alg = alg_name
        .parse::<jsonwebtoken::Algorithm>()
        .ok()
        .filter(|a| ASSERTION_KEY_ALGS.contains(a))
        .ok_or_else(|| {
            bad(
                "clientAssertionAlg",
                format!("expected RS256, PS256 or ES256, got {alg_name:?}"),
            )
        })?;
    provider.assertion_key = match pem {
        Some(pem) => Some(Arc::new(
            AssertionKey::from_pem(&pem, alg, keys.client_assertion_key_id.as_deref())
                .map_err(|e| bad(key_name, strip_config_prefix(&e.to_string())))?,
        )),
        None => None,
    };
    let has_secret = !raw.client_secret.expose().is_empty();
    match method {
        Some(ClientAuthMethod::PrivateKeyJwt) if provider.assertion_key.is_none() => {
            return Err(bad(
                "clientAssertionKeyPath",
                "private_key_jwt needs clientAssertionKeyPath or clientAssertionPrivateKey",
            ));
        }
        Some(ClientAuthMethod::PrivateKeyJwt) => {}
        Some(_) | None if !has_secret && provider.assertion_key.is_none() => {
            return Err(bad(
                "clientSecret",
                "is required (or a private key with clientAuthMethod: private_key_jwt)",
            ));
        }
        Some(m) if !has_secret => {
            return Err(bad("clientSecret", format!("is required by {m}")));
        }
        _ => {}
    }
    provider.client_auth = method;
    provider.assertion_audience = match keys.client_assertion_audience.as_deref().map(str::trim) {
        None | Some("") | Some("issuer") => AssertionAudience::Issuer,
        Some("token_endpoint") => AssertionAudience::TokenEndpoint,
        Some(literal) => AssertionAudience::Literal(literal.to_owned()),
    };
    Ok(())
}

fn strip_config_prefix(msg: &str) -> String {
    msg.strip_prefix("configuration: ")
        .unwrap_or(msg)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const BASE: &str = "providerURL: https://idp.example.com/\nclientID: web\n\
                        sessionEncryptionKey: 0123456789abcdef0123456789abcdef\n";

    fn load(extra: &str) -> Result<Config, ConfigError> {
        Config::from_yaml(&format!("{BASE}{extra}"), &|_| None)
    }

    fn indented(pem: &str) -> String {
        pem.lines().map(|l| format!("  {l}\n")).collect()
    }

    #[test]
    fn client_auth_refusals_name_their_key() {
        let ec = crate::oidc::client_auth_test_pem("ec256");
        let ec_inline = format!("clientAssertionPrivateKey: |\n{}", indented(&ec));
        let cases: Vec<(String, &str)> = vec![
            (
                "clientAuthMethod: private_key_jwt\n".into(),
                "clientAssertionKeyPath",
            ),
            (
                "clientAuthMethod: client_secret_basic\n".into(),
                "clientSecret",
            ),
            (String::new(), "clientSecret"),
            (
                "clientAuthMethod: bogus\nclientSecret: s\n".into(),
                "clientAuthMethod",
            ),
            (
                "clientAssertionKeyPath: /nonexistent/key.pem\n".into(),
                "clientAssertionKeyPath",
            ),
            (
                "clientAssertionPrivateKey: not a key\n".into(),
                "clientAssertionPrivateKey",
            ),
            // An EC key with the default RS256 does not fit.
            (ec_inline.clone(), "clientAssertionPrivateKey"),
            (
                format!("{ec_inline}clientAssertionAlg: HS256\n"),
                "clientAssertionAlg",
            ),
        ];
        for (yaml, key) in &cases {
            let err = load(yaml).expect_err(yaml);
            assert_eq!(err.key, *key, "{yaml} → {err}");
        }
    }

    #[test]
    fn private_key_jwt_from_inline_pem() {
        let ec = crate::oidc::client_auth_test_pem("ec256");
        let c = load(&format!(
            "clientAuthMethod: private_key_jwt\nclientAssertionAlg: ES256\n\
             clientAssertionAudience: token_endpoint\nclientAssertionPrivateKey: |\n{}",
            indented(&ec)
        ))
        .unwrap();
        assert_eq!(
            c.provider.client_auth,
            Some(ClientAuthMethod::PrivateKeyJwt)
        );
        assert_eq!(
            c.provider.assertion_audience,
            AssertionAudience::TokenEndpoint
        );
        let key = c.provider.assertion_key.as_ref().unwrap();
        assert_eq!(key.alg(), jsonwebtoken::Algorithm::ES256);
        // Unset method: discovery chooses later.
        let c = load("clientSecret: s\n").unwrap();
        assert_eq!(c.provider.client_auth, None);
    }
}
