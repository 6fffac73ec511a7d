//! Configuration tests across concerns: defaults, a whole plugin block, all
//! errors of a file at once, unknown keys, the environment, warnings. Each
//! concern's own refusals are tested in its file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;

use super::*;

/// The smallest valid configuration.
pub(crate) const BASE: &str = "providerURL: https://idp.example.com/\nclientID: web\n\
                               clientSecret: s3cret\n\
                               sessionEncryptionKey: 0123456789abcdef0123456789abcdef\n";

fn no_env(_: &str) -> Option<String> {
    None
}

/// BASE with the keys of `extra` replaced or added.
fn yaml_with(extra: &str) -> String {
    let keys: Vec<&str> = extra
        .lines()
        .filter(|l| !l.starts_with(' '))
        .filter_map(|l| l.split(':').next())
        .collect();
    let mut out: String = BASE
        .lines()
        .filter(|l| !keys.contains(&l.split(':').next().unwrap_or("")))
        .map(|l| format!("{l}\n"))
        .collect();
    out.push_str(extra);
    out
}

/// Asserts that each YAML fragment is refused with exactly these key paths.
pub(crate) fn check_refusals(cases: &[(&str, &[&str])]) {
    for (yaml, keys) in cases {
        assert_eq!(keys_of(yaml), *keys, "{yaml}");
    }
}

/// BASE with `extra`, loaded without environment.
pub(crate) fn load(extra: &str) -> Result<Config, ConfigErrors> {
    Config::from_yaml(&yaml_with(extra), &no_env)
}

/// The key paths of every error of BASE with `extra`, in order.
pub(crate) fn keys_of(extra: &str) -> Vec<String> {
    match load(extra) {
        Ok(_) => Vec::new(),
        Err(e) => e.0.into_iter().map(|e| e.key).collect(),
    }
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
    assert!(c.warnings.is_empty());
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
fn every_key_of_the_plugin_reference_is_accepted() {
    // traefikoidc's configuration reference, every key but the header ones.
    let plugin_keys = [
        "providerURL",
        "clientID",
        "clientSecret",
        "callbackURL",
        "logoutURL",
        "postLogoutRedirectURI",
        "scopes",
        "overrideScopes",
        "audience",
        "resource",
        "strictAudienceValidation",
        "allowOpaqueTokens",
        "requireTokenIntrospection",
        "introspectionURL",
        "revocationURL",
        "oidcEndSessionURL",
        "enablePKCE",
        "extraAuthParams",
        "clientAuthMethod",
        "clientAssertionPrivateKey",
        "clientAssertionKeyPath",
        "clientAssertionKeyID",
        "clientAssertionAlg",
        "logLevel",
        "rateLimit",
        "perSourceLoginRateLimit",
        "allowPrivateIPAddresses",
        "caCertPath",
        "caCertPEM",
        "insecureSkipVerify",
        "sessionEncryptionKey",
        "cookiePrefix",
        "cookieDomain",
        "cookiePath",
        "sessionMaxAge",
        "refreshGracePeriodSeconds",
        "maxRefreshTokenAgeSeconds",
        "minimalHeaders",
        "stripAuthCookies",
        "allowedUserDomains",
        "allowedUsers",
        "allowedRolesAndGroups",
        "roleClaimName",
        "groupClaimName",
        "userIdentifierClaim",
        "excludedURLs",
        "headers",
        "allowedClaims",
        "allowUnauthenticatedPreflight",
        "enableBackchannelLogout",
        "backchannelLogoutURL",
        "enableFrontchannelLogout",
        "frontchannelLogoutURL",
        "enableBearerAuth",
        "bearerIdentifierClaim",
        "stripAuthorizationHeader",
        "bearerEmitWWWAuthenticate",
        "bearerOverridesCookie",
        "maxTokenAgeSeconds",
        "maxIdentifierLength",
        "bearerFailureThreshold",
        "bearerFailureWindowSeconds",
        "bearerFailurePenaltySeconds",
        "securityHeaders",
        "redis",
        "dynamicClientRegistration",
        "disableReplayDetection",
    ];
    let known = known_keys();
    for key in plugin_keys {
        assert!(known.contains(&key), "{key}");
    }
}

#[test]
fn every_problem_of_a_file_is_reported_at_once() {
    let e = load(
        "providerURL: http://idp.example.com\nclientID: ''\nsessionMaxAge: x\n\
         excludedURLs: [/ok, bad]\nlogLevel: loud\nproviderUrl: https://typo\n\
         redis: {enabled: true, poolSize: -1, maxRetries: lots}\n",
    )
    .unwrap_err();
    let mut keys = e.keys();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "clientID",
            "excludedURLs[1]",
            "logLevel",
            "providerURL",
            "providerUrl",
            "redis.address",
            "redis.maxRetries",
            "redis.poolSize",
            "sessionMaxAge",
        ],
        "{e}"
    );
    assert_eq!(e.to_string().lines().count(), 9, "{e}");
    assert!(
        e.get("providerUrl")
            .unwrap()
            .message
            .contains("did you mean `providerURL`"),
        "{e}"
    );
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
fn a_wrapped_block_loads_like_the_block() {
    let indented: String = BASE.lines().map(|l| format!("          {l}\n")).collect();
    let traefik = format!(
        "http:\n  middlewares:\n    oidc:\n      plugin:\n        traefikoidc:\n{indented}"
    );
    let c = Config::from_yaml(&traefik, &no_env).unwrap();
    assert_eq!(c.provider.client_id, "web");
    let short: String = BASE.lines().map(|l| format!("  {l}\n")).collect();
    let c = Config::from_yaml(&format!("traefikoidc:\n{short}"), &no_env).unwrap();
    assert_eq!(c.provider.client_id, "web");
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
    assert_eq!(bad_bool.unwrap_err().keys(), ["OIDCGATE_FORCE_HTTPS"]);
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
fn debug_output_never_shows_secrets() {
    let c = load("").unwrap();
    let dbg = format!("{:?}", c.session);
    assert!(!dbg.contains("0123456789abcdef"), "{dbg}");
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

#[test]
fn metrics_and_reload_keys() {
    let c = load("").unwrap();
    assert_eq!(c.ops.metrics_address, None);
    assert_eq!(c.ops.metrics_prefix, "oidcgate");
    assert!(!c.ops.watch_config);
    let c = load("metricsAddress: 127.0.0.1:9464\nmetricsPrefix: traefikoidc\nwatchConfig: true\n")
        .unwrap();
    assert_eq!(
        c.ops.metrics_address,
        Some("127.0.0.1:9464".parse().unwrap())
    );
    assert_eq!(c.ops.metrics_prefix, "traefikoidc");
    assert!(c.ops.watch_config);
    for (extra, key) in [
        ("metricsAddress: nowhere\n", "metricsAddress"),
        ("metricsPrefix: bad-prefix\n", "metricsPrefix"),
        ("metricsPrefix: 1abc\n", "metricsPrefix"),
    ] {
        assert_eq!(keys_of(extra), [key], "{extra}");
    }
}
