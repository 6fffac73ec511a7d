//! Configuration tests: the file schema, environment overrides, defaults and
//! every validation error naming its key.

use std::collections::HashMap;

use super::*;

const BASE: &str = "providerURL: https://idp.example.com/\nclientID: web\nclientSecret: s3cret\n\
                    sessionEncryptionKey: 0123456789abcdef0123456789abcdef\n";

fn no_env(_: &str) -> Option<String> {
    None
}

/// BASE with the keys of `extra` replaced or added.
fn yaml_with(extra: &str) -> String {
    let keys: Vec<&str> = extra.lines().filter_map(|l| l.split(':').next()).collect();
    let mut out: String = BASE
        .lines()
        .filter(|l| !keys.contains(&l.split(':').next().unwrap_or("")))
        .map(|l| format!("{l}\n"))
        .collect();
    out.push_str(extra);
    out
}

fn load(extra: &str) -> Result<Config, ConfigError> {
    Config::from_yaml(&yaml_with(extra), &no_env)
}

#[test]
fn defaults_are_the_documented_ones() {
    let c = load("").unwrap();
    assert_eq!(c.provider.issuer, "https://idp.example.com");
    assert_eq!(c.gate.callback_path, "/oauth2/callback");
    assert_eq!(c.gate.logout_path, "/oauth2/callback/logout");
    assert_eq!(c.gate.post_logout_redirect, "/");
    assert_eq!(c.gate.scopes, ["openid", "profile", "email"]);
    assert!(c.gate.pkce);
    assert!(!c.gate.force_https);
    assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
    assert!(c.app.upstream.is_none());
    assert_eq!(c.session.cookie_prefix, "_oidcgate_");
    assert_eq!(c.session.max_age.as_secs(), 86_400);
    assert!(c.gate.strip_auth_cookies);
    assert!(!c.policy.insecure_allow_unverified_email);
    assert_eq!(c.policy.user_identifier_claim, "email");
    assert!(c.app.trusted.contains("127.0.0.1".parse().unwrap()));
    assert!(!c.app.trusted.contains("10.1.2.3".parse().unwrap()));
}

#[test]
fn traefikoidc_block_is_accepted_as_is() {
    let c = load(
        "callbackURL: /oidc/callback\nlogoutURL: /oidc/logout\npostLogoutRedirectURI: /bye\n\
         scopes: [groups, email]\nenablePKCE: false\nforceHTTPS: true\nexcludedURLs: [/public, /health]\n\
         userIdentifierClaim: preferred_username\ncookieDomain: example.com\ncookiePrefix: _app_\n\
         sessionMaxAge: 3600\nminimalHeaders: true\nstripAuthCookies: true\nallowedUsers: [a@b.c]\n\
         allowedUserDomains: [example.com]\nlogLevel: debug\nrateLimit: 100\n",
    )
    .unwrap();
    assert_eq!(c.gate.callback_path, "/oidc/callback");
    assert_eq!(c.gate.logout_path, "/oidc/logout");
    assert_eq!(c.gate.scopes, ["openid", "profile", "email", "groups"]);
    assert!(!c.gate.pkce && c.gate.force_https && c.gate.strip_auth_cookies);
    assert_eq!(c.session.cookie_domain.as_deref(), Some("example.com"));
    assert_eq!(c.session.max_age.as_secs(), 3600);
    assert!(c.policy.minimal_headers);
    assert_eq!(c.log_level, LogLevel::Debug);
}

#[test]
fn override_scopes_uses_the_list_verbatim() {
    let c = load("overrideScopes: true\nscopes: [openid, custom]\n").unwrap();
    assert_eq!(c.gate.scopes, ["openid", "custom"]);
    assert_eq!(
        load("overrideScopes: true\nscopes: [custom]\n")
            .unwrap_err()
            .key,
        "scopes"
    );
}

#[test]
fn bad_values_name_their_key() {
    let cases: &[(&str, &str)] = &[
        ("providerURL: http://idp.example.com\n", "providerURL"),
        ("providerURL: ftp://idp\n", "providerURL"),
        ("providerURL: ''\n", "providerURL"),
        ("clientID: ''\n", "clientID"),
        ("sessionEncryptionKey: short\n", "sessionEncryptionKey"),
        ("callbackURL: https://app/callback\n", "callbackURL"),
        ("logoutURL: logout\n", "logoutURL"),
        (
            "postLogoutRedirectURI: http://evil.example\n",
            "postLogoutRedirectURI",
        ),
        ("excludedURLs: [public]\n", "excludedURLs[0]"),
        ("excludedURLs: [/ok, /a/../b]\n", "excludedURLs[1]"),
        ("excludedURLs: ['/*']\n", "excludedURLs[0]"),
        ("excludedURLs: [/]\n", "excludedURLs[0]"),
        ("excludedURLs: [/oauth2]\n", "excludedURLs[0]"),
        ("listen: nowhere\n", "listen"),
        ("upstream: https://app.internal\n", "upstream"),
        ("upstream: not a url\n", "upstream"),
        ("trustedProxies: [0.0.0.0/0]\n", "trustedProxies"),
        ("trustedProxies: [junk]\n", "trustedProxies"),
        ("logLevel: loud\n", "logLevel"),
        ("logFormat: xml\n", "logFormat"),
        ("clientAuthMethod: tls_client_auth\n", "clientAuthMethod"),
        ("sessionMaxAge: 0\n", "sessionMaxAge"),
        ("cookiePrefix: 'bad prefix'\n", "session"),
        ("providerUrl: https://typo\n", "providerUrl"),
        ("headers: [{name: X-Team, value: x}]\n", "headers"),
        (
            "enableBackchannelLogout: true\nbackchannelLogoutURL: 'a b'\n",
            "backchannelLogoutURL",
        ),
        ("caCertPath: /nonexistent/ca.pem\n", "caCertPath"),
        ("caCertPEM: not a pem\n", "caCertPEM"),
        ("redis: {cacheMode: foo}\n", "redis.cacheMode"),
    ];
    for (yaml, key) in cases {
        let err = load(yaml).expect_err(yaml);
        assert_eq!(err.key, *key, "{yaml} → {err}");
        assert!(!err.message.is_empty());
    }
}

#[test]
fn loopback_providers_may_use_plain_http() {
    for p in [
        "http://127.0.0.1:9000",
        "http://localhost:9000/realms/x",
        "http://[::1]:9000",
    ] {
        let yaml = BASE.replace("https://idp.example.com/", p);
        assert!(Config::from_yaml(&yaml, &no_env).is_ok(), "{p}");
    }
}

#[test]
fn switched_off_future_keys_are_accepted() {
    let r = load("enableBackchannelLogout: false\nheaders: []\n");
    assert!(r.is_ok(), "{r:?}");
}

#[test]
fn environment_overrides_every_kind_of_value() {
    let env: HashMap<&str, &str> = [
        ("OIDCGATE_CLIENT_ID", "from-env"),
        ("OIDCGATE_FORCE_HTTPS", "true"),
        ("OIDCGATE_SESSION_MAX_AGE", "120"),
        ("OIDCGATE_EXCLUDED_URLS", "/a, /b"),
        ("OIDCGATE_LISTEN", "127.0.0.1:5000"),
    ]
    .into_iter()
    .collect();
    let c = Config::from_yaml(BASE, &|k| env.get(k).map(|v| (*v).to_owned())).unwrap();
    assert_eq!(c.provider.client_id, "from-env");
    assert!(c.gate.force_https);
    assert_eq!(c.session.max_age.as_secs(), 120);
    assert_eq!(c.gate.excluded, ["/a", "/b"]);
    assert_eq!(c.listen.port(), 5000);
    let bad_bool = Config::from_yaml(BASE, &|k| {
        (k == "OIDCGATE_FORCE_HTTPS").then(|| "maybe".into())
    });
    assert_eq!(bad_bool.unwrap_err().key, "OIDCGATE_FORCE_HTTPS");
}

#[test]
fn a_config_from_the_environment_alone_works() {
    let env: HashMap<&str, &str> = [
        ("OIDCGATE_PROVIDER_URL", "https://idp.example.com"),
        ("OIDCGATE_CLIENT_ID", "web"),
        ("OIDCGATE_CLIENT_SECRET", "12345"),
        (
            "OIDCGATE_SESSION_ENCRYPTION_KEY",
            "0123456789abcdef0123456789abcdef",
        ),
    ]
    .into_iter()
    .collect();
    let c = Config::from_yaml("", &|k| env.get(k).map(|v| (*v).to_owned())).unwrap();
    assert_eq!(c.provider.client_secret.expose(), "12345");
}

#[test]
fn env_names_follow_the_documented_rule() {
    for (key, env) in [
        ("providerURL", "OIDCGATE_PROVIDER_URL"),
        ("clientID", "OIDCGATE_CLIENT_ID"),
        ("caCertPEM", "OIDCGATE_CA_CERT_PEM"),
        ("enablePKCE", "OIDCGATE_ENABLE_PKCE"),
        ("forceHTTPS", "OIDCGATE_FORCE_HTTPS"),
        ("excludedURLs", "OIDCGATE_EXCLUDED_URLS"),
        ("postLogoutRedirectURI", "OIDCGATE_POST_LOGOUT_REDIRECT_URI"),
        ("sessionEncryptionKey", "OIDCGATE_SESSION_ENCRYPTION_KEY"),
    ] {
        assert_eq!(env_name(key), env, "{key}");
    }
}

#[test]
fn every_env_key_is_a_file_key() {
    // Each overridable key must deserialize as a file key (no typo in the table).
    for (key, kind) in ENV_KEYS {
        let value = match kind {
            EnvKind::Str => "x".to_owned(),
            EnvKind::Bool => "false".to_owned(),
            EnvKind::Int => "1".to_owned(),
            EnvKind::List => "[]".to_owned(),
        };
        let r = RawConfig::parse(&format!("{key}: {value}\n"), &no_env).unwrap();
        assert!(
            r.unsupported.is_empty(),
            "{key} is not a field of RawConfig"
        );
    }
}

#[test]
fn debug_output_never_shows_secrets() {
    let c = load("").unwrap();
    let dbg = format!("{:?}", c.session);
    assert!(!dbg.contains("0123456789abcdef"), "{dbg}");
}

#[test]
fn security_outage_policy_is_open_closed_or_unset() {
    use crate::gate::OutagePolicy;
    assert_eq!(load("").unwrap().gate.security_outage_policy, None);
    for (text, want) in [
        ("open", OutagePolicy::Open),
        ("closed", OutagePolicy::Closed),
    ] {
        let c = load(&format!("securityOutagePolicy: {text}\n")).unwrap();
        assert_eq!(c.gate.security_outage_policy, Some(want));
    }
    let e = load("securityOutagePolicy: sometimes\n").unwrap_err();
    assert!(e.to_string().contains("securityOutagePolicy"), "{e}");
}

#[test]
fn issue12_f9_https_host_only_cookies_take_the_host_prefix() {
    let c = load("forceHTTPS: true").unwrap();
    assert_eq!(c.session.cookie_prefix, "__Host-_oidcgate_");
    for extra in [
        "forceHTTPS: false",
        "forceHTTPS: true\ncookieDomain: example.com",
        "forceHTTPS: true\ncookiePath: /app",
        "forceHTTPS: true\ncookiePrefix: _mine_",
    ] {
        let c = load(extra).unwrap();
        assert!(!c.session.cookie_prefix.starts_with("__Host-"), "{extra}");
    }
    let c = load("stripAuthCookies: false").unwrap();
    assert!(!c.gate.strip_auth_cookies);
}

#[test]
fn issue12_f10_debug_never_prints_the_client_secret() {
    let c = load("clientSecret: sup3r-s3cret-value").unwrap();
    assert_eq!(c.provider.client_secret.expose(), "sup3r-s3cret-value");
    for text in [format!("{c:?}"), format!("{:?}", c.provider)] {
        assert!(!text.contains("sup3r-s3cret-value"), "{text}");
        assert!(text.contains("[redacted]"));
    }
}
