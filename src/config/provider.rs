//! The provider keys: issuer, client id and secret, TLS towards the
//! provider, the authorization request (scopes, PKCE, audience, extra
//! parameters) and endpoint overrides. Client authentication has its own
//! file (`client_auth`).
//!
//! Owns the refusals of these keys. `resource` (RFC 8707) is checked here:
//! an absolute URI without a fragment, never overridden by
//! `extraAuthParams`. The plugin's `oidcEndSessionURL`, which oidcgate does
//! not act on yet, is accepted, checked, and named in a warning when set.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::Report;
use super::checks::{check_pem, check_url, dedup, optional_url};
use crate::gate::DEFAULT_SCOPES;
use crate::oidc::{HttpSettings, ProviderSettings};
use crate::session::SecretString;

/// The values `providerType` accepts.
pub(super) const PROVIDER_TYPES: &[&str] = &[
    "oidc",
    super::github::GITHUB_PROVIDER_TYPE,
    "entra",
    "google",
    "keycloak",
    "auth0",
    "okta",
    "cognito",
    "gitlab",
    "authentik",
    "zitadel",
];

/// Longest accepted `providerTimeout` / `providerConnectTimeout`, seconds.
const MAX_PROVIDER_TIMEOUT_SECONDS: u64 = 300;

/// The provider keys as written.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct Raw {
    /// Issuer URL.
    #[serde(rename = "providerURL")]
    pub(super) provider_url: String,
    /// The kind of provider (`oidc`, `github`); unset means OpenID Connect
    /// unless `providerURL` is `https://github.com`.
    #[serde(rename = "providerType")]
    pub(super) provider_type: Option<String>,
    /// OAuth client id.
    #[serde(rename = "clientID")]
    pub(super) client_id: String,
    /// OAuth client secret.
    #[serde(rename = "clientSecret")]
    pub(super) client_secret: SecretString,
    /// CA bundle file.
    #[serde(rename = "caCertPath")]
    pub(super) ca_cert_path: Option<String>,
    /// Inline CA bundle.
    #[serde(rename = "caCertPEM")]
    pub(super) ca_cert_pem: Option<String>,
    /// Seconds one provider call may take, answer body included.
    #[serde(rename = "providerTimeout")]
    pub(super) provider_timeout: Option<u64>,
    /// Seconds to wait for the provider to accept a connection.
    #[serde(rename = "providerConnectTimeout")]
    pub(super) provider_connect_timeout: Option<u64>,
    /// Skip provider TLS verification (development only).
    #[serde(rename = "insecureSkipVerify")]
    pub(super) insecure_skip_verify: bool,
    /// Extra scopes.
    #[serde(rename = "scopes")]
    pub(super) scopes: Vec<String>,
    /// Use `scopes` verbatim.
    #[serde(rename = "overrideScopes")]
    pub(super) override_scopes: bool,
    /// PKCE (default true).
    #[serde(rename = "enablePKCE")]
    pub(super) enable_pkce: Option<bool>,
    /// Expected access-token audience.
    #[serde(rename = "audience")]
    pub(super) audience: Option<String>,
    /// Extra authorization-request parameters.
    #[serde(rename = "extraAuthParams")]
    pub(super) extra_auth_params: BTreeMap<String, String>,
    /// RFC 7009 endpoint overriding discovery's `revocation_endpoint`.
    #[serde(rename = "revocationURL")]
    pub(super) revocation_url: Option<String>,
    /// End-session endpoint overriding discovery's `end_session_endpoint`.
    #[serde(rename = "oidcEndSessionURL")]
    pub(super) end_session_url: Option<String>,
    /// RFC 8707 resource indicator.
    #[serde(rename = "resource")]
    pub(super) resource: Option<String>,
    /// Refuse sessions whose access token fails the audience check.
    #[serde(rename = "strictAudienceValidation")]
    pub(super) strict_audience_validation: bool,
}

/// What the provider keys configure.
pub(super) struct Parts {
    /// The provider client.
    pub(super) provider: ProviderSettings,
    /// Scopes requested (merged with the defaults).
    pub(super) scopes: Vec<String>,
    /// `overrideScopes`.
    pub(super) override_scopes: bool,
    /// PKCE.
    pub(super) pkce: bool,
    /// Expected access-token audience.
    pub(super) audience: Option<String>,
    /// `strictAudienceValidation`.
    pub(super) strict_audience: bool,
    /// Extra authorization-request parameters.
    pub(super) extra_auth_params: Vec<(String, String)>,
}

/// Validates the provider keys; `registers` says whether dynamic client
/// registration supplies the client when `clientID` is empty.
pub(super) fn settings(mut raw: Raw, registers: bool, r: &mut Report) -> Parts {
    let issuer = raw.provider_url.trim().trim_end_matches('/').to_owned();
    if issuer.is_empty() {
        r.error(
            "providerURL",
            "is required (the issuer URL of your OpenID Provider)",
        );
    } else {
        r.check(check_url("providerURL", &issuer));
    }
    if raw.client_id.trim().is_empty() && !registers {
        r.error(
            "clientID",
            "is required (or dynamicClientRegistration with enabled: true)",
        );
    }
    if let Some(t) = raw
        .provider_type
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        && !PROVIDER_TYPES.contains(&t.to_ascii_lowercase().as_str())
    {
        r.error(
            "providerType",
            format!("expected one of {}, got {t:?}", PROVIDER_TYPES.join(", ")),
        );
    }
    let oidc = !super::github::is_github(&issuer, raw.provider_type.as_deref());
    let http = http_settings(&raw, r);

    let scopes = scopes(
        raw.override_scopes,
        std::mem::take(&mut raw.scopes),
        oidc,
        r,
    );
    warn_not_yet_effective(&raw, r);
    let resource = resource(raw.resource.as_deref(), oidc, r);
    let extra_auth_params = extra_auth_params(
        std::mem::take(&mut raw.extra_auth_params),
        resource.is_some(),
        r,
    );

    let mut provider =
        ProviderSettings::new(&issuer, raw.client_id.trim(), raw.client_secret.expose());
    provider.http = http;
    provider.revocation_url = optional_url("revocationURL", raw.revocation_url.as_deref(), r);
    provider.resource = resource;
    Parts {
        provider,
        scopes,
        override_scopes: raw.override_scopes,
        pkce: raw.enable_pkce.unwrap_or(true),
        audience: raw.audience.filter(|a| !a.is_empty()),
        strict_audience: raw.strict_audience_validation,
        extra_auth_params,
    }
}

/// `resource` (RFC 8707 §2): an absolute URI without a fragment; empty
/// means unset. GitHub's OAuth endpoints know no resource indicators.
fn resource(v: Option<&str>, oidc: bool, r: &mut Report) -> Option<String> {
    let v = v.map(str::trim).filter(|v| !v.is_empty())?;
    let absolute = url::Url::parse(v).is_ok();
    if !absolute {
        r.error(
            "resource",
            format!("{v:?} must be an absolute URI (RFC 8707), such as https://api.example.com"),
        );
        return None;
    }
    if v.contains('#') {
        r.error("resource", "must not contain a fragment (#...) (RFC 8707)");
        return None;
    }
    if !oidc {
        r.error(
            "resource",
            "is not supported with GitHub login (GitHub knows no resource indicators)",
        );
        return None;
    }
    Some(v.to_owned())
}

/// `extraAuthParams`, without a `resource` entry when the `resource` key
/// is set: that key alone says which resource is asked for.
fn extra_auth_params(
    params: BTreeMap<String, String>,
    resource_set: bool,
    r: &mut Report,
) -> Vec<(String, String)> {
    params
        .into_iter()
        .filter(|(k, _)| {
            let shadowed = resource_set && k == "resource";
            if shadowed {
                r.warn(
                    "extraAuthParams.resource",
                    "ignored: the resource key is sent instead",
                );
            }
            !shadowed
        })
        .collect()
}

/// TLS and timeouts towards the provider.
fn http_settings(raw: &Raw, r: &mut Report) -> HttpSettings {
    let mut http = HttpSettings::default();
    timeouts(raw, &mut http, r);
    if raw.insecure_skip_verify && (raw.ca_cert_path.is_some() || raw.ca_cert_pem.is_some()) {
        r.error(
            "insecureSkipVerify",
            "cannot be combined with caCertPath/caCertPEM",
        );
    }
    http.insecure_skip_verify = raw.insecure_skip_verify;
    if let Some(p) = &raw.ca_cert_path {
        match std::fs::read(p) {
            Ok(pem) => {
                if r.check(check_pem("caCertPath", &pem)).is_some() {
                    http.extra_ca_pem.push(pem);
                }
            }
            Err(e) => r.error("caCertPath", format!("cannot read {p}: {e}")),
        }
    }
    if let Some(pem) = &raw.ca_cert_pem
        && r.check(check_pem("caCertPEM", pem.as_bytes())).is_some()
    {
        http.extra_ca_pem.push(pem.clone().into_bytes());
    }
    http
}

/// `providerTimeout` and `providerConnectTimeout`: each 1 to
/// [`MAX_PROVIDER_TIMEOUT_SECONDS`], the connect timeout no longer than the
/// whole call's (by default the smaller of its default and the whole call's).
fn timeouts(raw: &Raw, http: &mut HttpSettings, r: &mut Report) {
    let mut seconds = |key: &str, v: Option<u64>| match v {
        Some(s) if !(1..=MAX_PROVIDER_TIMEOUT_SECONDS).contains(&s) => {
            r.error(
                key,
                format!("must be between 1 and {MAX_PROVIDER_TIMEOUT_SECONDS} seconds"),
            );
            None
        }
        other => other.map(Duration::from_secs),
    };
    let total = seconds("providerTimeout", raw.provider_timeout);
    let connect = seconds("providerConnectTimeout", raw.provider_connect_timeout);
    if let Some(total) = total {
        http.timeout = total;
    }
    match connect {
        Some(c) if c > http.timeout => r.error(
            "providerConnectTimeout",
            "must not exceed providerTimeout (the whole call includes the connection)",
        ),
        Some(c) => http.connect_timeout = c,
        None => http.connect_timeout = http.connect_timeout.min(http.timeout),
    }
}

/// The requested scopes: the defaults plus `scopes`, or `scopes` alone
/// (which must include `openid` for an OpenID Provider).
fn scopes(override_scopes: bool, listed: Vec<String>, oidc: bool, r: &mut Report) -> Vec<String> {
    if override_scopes {
        let scopes = dedup(listed);
        if scopes.is_empty() {
            r.error("scopes", "overrideScopes is true but scopes is empty");
        } else if oidc && !scopes.iter().any(|s| s == "openid") {
            r.error("scopes", "must include openid");
        }
        scopes
    } else {
        dedup(
            DEFAULT_SCOPES
                .iter()
                .map(|s| (*s).to_owned())
                .chain(listed)
                .collect(),
        )
    }
}

/// A warning for the plugin provider key that is set but not acted on yet.
fn warn_not_yet_effective(raw: &Raw, r: &mut Report) {
    optional_url("oidcEndSessionURL", raw.end_session_url.as_deref(), r).inspect(|_| {
        r.warn(
            "oidcEndSessionURL",
            "accepted, not yet effective: the discovered end_session_endpoint is used",
        );
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::super::tests::{check_refusals, load};

    #[test]
    fn refusals_name_their_key() {
        let cases: &[(&str, &[&str])] = &[
            ("providerURL: http://idp.example.com\n", &["providerURL"]),
            ("providerURL: ftp://idp\n", &["providerURL"]),
            ("providerURL: ''\n", &["providerURL"]),
            ("clientID: ''\n", &["clientID"]),
            ("clientSecret: ''\n", &["clientSecret"]),
            ("caCertPath: /nonexistent/ca.pem\n", &["caCertPath"]),
            ("caCertPEM: not a pem\n", &["caCertPEM"]),
            (
                "insecureSkipVerify: true\ncaCertPEM: not a pem\n",
                &["insecureSkipVerify", "caCertPEM"],
            ),
            ("overrideScopes: true\nscopes: []\n", &["scopes"]),
            ("overrideScopes: true\nscopes: [custom]\n", &["scopes"]),
            (
                "revocationURL: http://idp.example.com/r\n",
                &["revocationURL"],
            ),
            ("oidcEndSessionURL: nope\n", &["oidcEndSessionURL"]),
            ("scopes: openid\n", &["scopes"]),
            ("extraAuthParams: [a]\n", &["extraAuthParams"]),
            ("providerTimeout: 0\n", &["providerTimeout"]),
            ("providerTimeout: 301\n", &["providerTimeout"]),
            ("providerTimeout: -1\n", &["providerTimeout"]),
            ("providerTimeout: soon\n", &["providerTimeout"]),
            ("providerConnectTimeout: 0\n", &["providerConnectTimeout"]),
            ("resource: api\n", &["resource"]),
            ("resource: /api\n", &["resource"]),
            ("resource: https://api.example.com/#v1\n", &["resource"]),
            (
                "providerType: github\nresource: https://api.example.com\n",
                &["resource"],
            ),
            (
                "providerTimeout: 3\nproviderConnectTimeout: 4\n",
                &["providerConnectTimeout"],
            ),
        ];
        check_refusals(cases);
    }

    #[test]
    fn plugin_provider_keys_are_accepted() {
        let c = load(
            "dynamicClientRegistration: {enabled: true, persistCredentials: true}\n\
             revocationURL: https://idp.example.com/revoke\n",
        )
        .unwrap();
        assert_eq!(
            c.provider.revocation_url.as_deref(),
            Some("https://idp.example.com/revoke")
        );
        assert!(c.warnings.iter().all(|w| w.key != "revocationURL"));
        let warned: Vec<&str> = c.warnings.iter().map(|w| w.key.as_str()).collect();
        assert!(warned.contains(&"dynamicClientRegistration"), "{warned:?}");
        let quiet = load("strictAudienceValidation: false\nresource: ''\n").unwrap();
        assert!(quiet.warnings.is_empty(), "{:?}", quiet.warnings);
        assert_eq!(quiet.provider.resource, None);
    }

    #[test]
    fn resource_and_strict_audience_take_effect_without_warnings() {
        let c = load(
            "resource: https://api.example.com/v1\nstrictAudienceValidation: true\n\
             extraAuthParams: {resource: https://other.example.com, prompt: login}\n",
        )
        .unwrap();
        assert_eq!(
            c.provider.resource.as_deref(),
            Some("https://api.example.com/v1")
        );
        assert!(c.gate.strict_audience);
        // The resource key wins over an extra parameter of the same name.
        assert_eq!(
            c.gate.extra_auth_params,
            [("prompt".into(), "login".into())]
        );
        let warned: Vec<&str> = c.warnings.iter().map(|w| w.key.as_str()).collect();
        assert_eq!(warned, ["extraAuthParams.resource"]);
        // A URN is an absolute URI too; without the resource key an extra
        // `resource` parameter is the operator's own.
        let c = load("resource: urn:example:api\n").unwrap();
        assert_eq!(c.provider.resource.as_deref(), Some("urn:example:api"));
        let c = load("extraAuthParams: {resource: https://api.example.com}\n").unwrap();
        assert_eq!(c.gate.extra_auth_params.len(), 1);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert!(!c.gate.strict_audience);
    }

    #[test]
    fn each_provider_entry_has_its_own_resource_and_inherits_strictness() {
        let c = load(
            "resource: https://api.example.com\nstrictAudienceValidation: true\nproviders:\n\
             \x20 - name: b\n    providerURL: https://b.example.com\n    clientID: cb\n\
             \x20   clientSecret: sb\n    routes: [{host: b.example.com}]\n\
             \x20 - name: c\n    providerURL: https://c.example.com\n    clientID: cc\n\
             \x20   clientSecret: sc\n    routes: [{host: c.example.com}]\n\
             \x20   resource: urn:example:c\n    strictAudienceValidation: false\n",
        )
        .unwrap();
        let (b, e) = (&c.providers[0], &c.providers[1]);
        assert_eq!(
            c.provider.resource.as_deref(),
            Some("https://api.example.com")
        );
        assert_eq!(b.provider.resource, None, "a resource is not inherited");
        assert!(b.gate.strict_audience, "strictness is");
        assert_eq!(e.provider.resource.as_deref(), Some("urn:example:c"));
        assert!(!e.gate.strict_audience);
    }

    #[test]
    fn provider_timeouts_reach_the_http_client_settings() {
        use std::time::Duration;

        use crate::oidc::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_HTTP_TIMEOUT};
        let http = |yaml: &str| load(yaml).unwrap().provider.http;
        let d = http("");
        assert_eq!(
            (d.timeout, d.connect_timeout),
            (DEFAULT_HTTP_TIMEOUT, DEFAULT_CONNECT_TIMEOUT)
        );
        let both = http("providerTimeout: 30\nproviderConnectTimeout: 2\n");
        assert_eq!(
            (both.timeout, both.connect_timeout),
            (Duration::from_secs(30), Duration::from_secs(2))
        );
        let short = http("providerTimeout: 2\n");
        assert_eq!(
            (short.timeout, short.connect_timeout),
            (Duration::from_secs(2), Duration::from_secs(2)),
            "the connect timeout never exceeds the whole call's"
        );
    }

    #[test]
    fn override_scopes_uses_the_list_verbatim() {
        let c = load("overrideScopes: true\nscopes: [openid, custom]\n").unwrap();
        assert_eq!(c.gate.scopes, ["openid", "custom"]);
        let c = load("scopes: [groups, email]\n").unwrap();
        assert_eq!(c.gate.scopes, ["openid", "profile", "email", "groups"]);
    }
}
