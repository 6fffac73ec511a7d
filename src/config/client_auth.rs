//! The client-authentication keys: `clientAuthMethod` and the
//! `clientAssertion*` keys of `private_key_jwt`.
//!
//! Owns the start-up refusals of client authentication: an unknown method, a
//! method without the credential it needs, and a private key that does not
//! parse or does not fit its algorithm (the error names the key).

use std::sync::Arc;

use serde::Deserialize;

use super::Report;
use crate::oidc::{
    ASSERTION_KEY_ALGS, AssertionAudience, AssertionKey, ClientAuthMethod, ProviderSettings,
};
use crate::session::SecretString;

/// Default algorithm of a `private_key_jwt` key (`clientAssertionAlg`).
pub const DEFAULT_ASSERTION_ALG: &str = "RS256";

/// The client-authentication keys as written.
#[derive(Clone, Default, Deserialize)]
#[serde(default)]
pub(super) struct Raw {
    /// `client_secret_basic`, `client_secret_post`, `client_secret_jwt` or
    /// `private_key_jwt`; unset lets the provider's discovery choose.
    #[serde(rename = "clientAuthMethod")]
    pub(super) client_auth_method: Option<String>,
    /// PEM private key for `private_key_jwt`, inline.
    #[serde(rename = "clientAssertionPrivateKey")]
    pub(super) client_assertion_private_key: SecretString,
    /// PEM private key for `private_key_jwt`, from a file.
    #[serde(rename = "clientAssertionKeyPath")]
    pub(super) client_assertion_key_path: Option<String>,
    /// `kid` of the assertion key (default: its RFC 7638 thumbprint).
    #[serde(rename = "clientAssertionKeyID")]
    pub(super) client_assertion_key_id: Option<String>,
    /// `RS256` (default), `PS256` or `ES256`.
    #[serde(rename = "clientAssertionAlg")]
    pub(super) client_assertion_alg: Option<String>,
    /// `issuer` (default), `token_endpoint`, or a literal audience.
    #[serde(rename = "clientAssertionAudience")]
    pub(super) client_assertion_audience: Option<String>,
}

/// The method named by `clientAuthMethod`, if any.
fn method(raw: &Raw, r: &mut Report) -> Option<ClientAuthMethod> {
    let name = raw
        .client_auth_method
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())?;
    let m = ClientAuthMethod::parse(name);
    if m.is_none() {
        r.error(
            "clientAuthMethod",
            format!(
                "expected client_secret_basic, client_secret_post, client_secret_jwt or \
                 private_key_jwt, got {name:?}"
            ),
        );
    }
    m
}

/// The assertion key, read and checked against its algorithm.
fn assertion_key(raw: &Raw, r: &mut Report) -> Option<Arc<AssertionKey>> {
    let inline = raw.client_assertion_private_key.expose().trim();
    let (key_name, pem) = match (&raw.client_assertion_key_path, inline.is_empty()) {
        (Some(_), false) => {
            r.error(
                "clientAssertionKeyPath",
                "set either clientAssertionKeyPath or clientAssertionPrivateKey, not both",
            );
            return None;
        }
        (Some(path), true) => match std::fs::read(path) {
            Ok(pem) => ("clientAssertionKeyPath", pem),
            Err(e) => {
                r.error("clientAssertionKeyPath", format!("cannot read {path}: {e}"));
                return None;
            }
        },
        (None, false) => ("clientAssertionPrivateKey", inline.as_bytes().to_vec()),
        (None, true) => return None,
    };
    let alg_name = raw
        .client_assertion_alg
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .unwrap_or(DEFAULT_ASSERTION_ALG);
    let Some(alg) = alg_name
        .parse::<jsonwebtoken::Algorithm>()
        .ok()
        .filter(|a| ASSERTION_KEY_ALGS.contains(a))
    else {
        r.error(
            "clientAssertionAlg",
            format!("expected RS256, PS256 or ES256, got {alg_name:?}"),
        );
        return None;
    };
    match AssertionKey::from_pem(&pem, alg, raw.client_assertion_key_id.as_deref()) {
        Ok(k) => Some(Arc::new(k)),
        Err(crate::oidc::Error::Config(why)) => {
            r.error(key_name, why);
            None
        }
        Err(e) => {
            r.error(key_name, e.to_string());
            None
        }
    }
}

/// Validates the client-authentication keys into `provider`; `has_secret`
/// says whether `clientSecret` is set.
pub(super) fn settings(
    raw: Raw,
    has_secret: bool,
    provider: &mut ProviderSettings,
    r: &mut Report,
) {
    let method = method(&raw, r);
    let key_named = raw.client_assertion_key_path.is_some()
        || !raw.client_assertion_private_key.expose().trim().is_empty();
    provider.assertion_key = assertion_key(&raw, r);
    match method {
        Some(ClientAuthMethod::PrivateKeyJwt) if !key_named => r.error(
            "clientAssertionKeyPath",
            "private_key_jwt needs clientAssertionKeyPath or clientAssertionPrivateKey",
        ),
        Some(ClientAuthMethod::PrivateKeyJwt) => {}
        Some(_) | None if !has_secret && !key_named => r.error(
            "clientSecret",
            "is required (or a private key with clientAuthMethod: private_key_jwt)",
        ),
        Some(m) if !has_secret => r.error("clientSecret", format!("is required by {m}")),
        _ => {}
    }
    provider.client_auth = method;
    provider.assertion_audience = match raw.client_assertion_audience.as_deref().map(str::trim) {
        None | Some("") | Some("issuer") => AssertionAudience::Issuer,
        Some("token_endpoint") => AssertionAudience::TokenEndpoint,
        Some(literal) => AssertionAudience::Literal(literal.to_owned()),
    };
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::config::{Config, ConfigErrors};

    const BASE: &str = "providerURL: https://idp.example.com/\nclientID: web\n\
                        sessionEncryptionKey: 0123456789abcdef0123456789abcdef\n";

    fn load(extra: &str) -> Result<Config, ConfigErrors> {
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
                "clientAuthMethod: tls_client_auth\nclientSecret: s\n".into(),
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
            assert_eq!(err.keys(), [*key], "{yaml} → {err}");
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
