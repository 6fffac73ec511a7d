//! Property tests over the parsers of attacker input: the path normaliser,
//! the redirect validator, the cookie codec and forwarded-header parsing
//! (the JWT header pre-check has its own in `oidc::verify`); and over the
//! configuration loader (any text, any key set to any value: never a panic,
//! every error names a key path) and header templates (any text compiles or
//! is refused without a panic; rendering over hostile claim values is bounded
//! and never sends CR, LF or NUL).
//!
//! Each property states an invariant that must hold for every input. CI runs
//! a modest number of cases; `PROPTEST_CASES=100000 cargo test --test
//! properties` runs a long search.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::IpAddr;

use http::{HeaderMap, HeaderValue};
use oidcgate::doors::TrustedProxies;
use oidcgate::doors::trust::parse_forwarded_for;
use oidcgate::gate::{encode_path, normalize_path, safe_redirect, split_target};
use oidcgate::session::{SecretString, Session, SessionCodec, SessionSettings};
use proptest::prelude::*;

/// Cases per property: `PROPTEST_CASES`, else a CI-sized default.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Paths built from the pieces that matter: separators, dots, escapes,
/// parameters, look-alikes, plain names.
fn path_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("/".to_owned()),
        Just(".".to_owned()),
        Just("..".to_owned()),
        Just(";".to_owned()),
        Just("%2e".to_owned()),
        Just("%2E".to_owned()),
        Just("%2f".to_owned()),
        Just("%25".to_owned()),
        Just("%5c".to_owned()),
        Just("%00".to_owned()),
        Just("%".to_owned()),
        Just(" ".to_owned()),
        Just("\u{FF0E}".to_owned()),
        Just("?".to_owned()),
        "[a-zA-Z0-9_~-]{1,6}",
        "%[0-9a-fA-F]{2}",
        any::<char>().prop_map(|c| c.to_string()),
    ];
    prop::collection::vec(piece, 0..16).prop_map(|v| format!("/{}", v.concat()))
}

fn segments_ok(p: &str) -> bool {
    p.starts_with('/') && !p.contains("//") && p.split('/').all(|s| s != "." && s != "..")
}

proptest! {
    #![proptest_config(config())]

    /// Normalising never panics; a result starts with `/`, holds no empty,
    /// `.` or `..` segment, and is a fixed point — also after the proxy
    /// re-encodes it for the wire.
    #[test]
    fn normalize_is_idempotent(raw in path_like()) {
        if let Ok(n) = normalize_path(&raw) {
            prop_assert!(segments_ok(&n), "{raw:?} -> {n:?}");
            let again = normalize_path(&n);
            prop_assert_eq!(again.as_deref(), Ok(n.as_str()), "{:?}", raw);
            let wire = normalize_path(&encode_path(&n));
            prop_assert_eq!(wire.as_deref(), Ok(n.as_str()), "{:?}", raw);
        }
    }

    /// Any string at all: no panic from the request-target splitter.
    #[test]
    fn split_target_never_panics(raw in ".{0,64}") {
        let _ = split_target(&raw);
        let _ = split_target(&format!("/{raw}"));
    }

    /// A safe redirect is a host-relative path that cannot be read as
    /// another host, or an absolute URL on the request's origin or an
    /// allowed host.
    #[test]
    fn safe_redirect_never_leaves_the_allowed_hosts(
        target in prop_oneof![
            ".{0,40}",
            "(https?:)?(//|/\\\\|\\\\\\\\|/%2[fF]|/%5[cC])?[a-z.@:%0-9\\t ]{0,20}(/[a-z%0-9]{0,8})?",
            "https?://[a-z.]{1,12}(:[0-9]{1,5})?(/.{0,8})?",
        ],
        https in any::<bool>(),
    ) {
        let allowed = vec!["ok.example".to_owned(), "*.corp.example".to_owned()];
        if let Some(t) = safe_redirect(&target, "app.test:8080", https, &allowed) {
            if t.starts_with('/') {
                prop_assert!(!t.starts_with("//") && !t.contains('\\'), "{target:?} -> {t:?}");
                let resolved = url::Url::parse("http://app.test:8080/").unwrap().join(&t).unwrap();
                prop_assert_eq!(resolved.host_str(), Some("app.test"), "{:?}", target);
            } else {
                let u = url::Url::parse(&t).unwrap();
                let host = u.host_str().unwrap();
                let own = host == "app.test" && u.port_or_known_default() == Some(8080)
                    && (u.scheme() == "https") == https;
                let listed = host == "ok.example" || host.ends_with(".corp.example");
                prop_assert!(own || listed, "{target:?} -> {t:?}");
                prop_assert!(u.username().is_empty() && u.password().is_none());
            }
        }
    }

    /// A sealed session opens only with its key and its prefix; any cookie
    /// header at all is "no session" or a session, never a panic.
    #[test]
    fn sealed_cookie_opens_only_with_its_key_and_prefix(
        identifier in "[a-z@.]{1,40}",
        token in "[A-Za-z0-9._-]{0,3000}",
        junk in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let codec = |key: &str, prefix: &str| {
            let mut s = SessionSettings::with_keys(vec![SecretString::new(key)]);
            s.cookie_prefix = prefix.to_owned();
            SessionCodec::new(s).unwrap()
        };
        let key_a = "property-key-aaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        let key_b = "property-key-bbbbbbbbbbbbbbbbbbbbbbbbbbbb";
        let a = codec(key_a, "p_");
        let session = Session {
            sid: "sid".into(),
            created_at: 1_000,
            renewed_at: None,
            identifier,
            subject: "sub".into(),
            idp_sid: None,
            email: None,
            groups: Vec::new(),
            roles: Vec::new(),
            id_token: None,
            access_token: Some(token),
            refresh_token: None,
            refresh_token_issued_at: None,
            expires_at: 2_000,
            server_secret: None,
        };
        let set = a.store(&session, &HeaderMap::new(), true, 1_000).unwrap();
        let pairs: Vec<String> = set
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
            .collect();
        let header = |pairs: &[String]| {
            let mut h = HeaderMap::new();
            h.insert(http::header::COOKIE, HeaderValue::from_str(&pairs.join("; ")).unwrap());
            h
        };
        prop_assert!(a.load(&header(&pairs), 1_001) == Some(session.clone()));
        prop_assert!(codec(key_b, "p_").load(&header(&pairs), 1_001).is_none());
        let renamed: Vec<String> = pairs.iter().map(|p| format!("q_{}", &p[2..])).collect();
        prop_assert!(codec(key_a, "q_").load(&header(&renamed), 1_001).is_none());
        if let Ok(v) = HeaderValue::from_bytes(&junk) {
            let mut h = HeaderMap::new();
            h.insert(http::header::COOKIE, v);
            let _ = a.load(&h, 1_001);
            let _ = a.load_login(&h, 1_001);
            a.strip_own_cookie_headers(&mut h);
        }
    }

    /// The client address from `X-Forwarded-For` is the peer, or an address
    /// that occurs in the header; from an untrusted peer, always the peer.
    #[test]
    fn forwarded_for_names_the_peer_or_a_listed_address(
        entries in prop::collection::vec(
            prop_oneof![
                "10\\.0\\.0\\.[0-9]{1,2}",
                "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}(:[0-9]{1,5})?",
                "\\[?[0-9a-f:]{2,20}\\]?(:[0-9]{1,4})?",
                ".{0,8}",
            ],
            0..6,
        ),
        peer_trusted in any::<bool>(),
    ) {
        let t = TrustedProxies::parse(&["10.0.0.0/8".into()]).unwrap();
        let peer: IpAddr = if peer_trusted { "10.9.9.9" } else { "192.0.2.1" }.parse().unwrap();
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&entries.join(",")) {
            h.insert("x-forwarded-for", v);
        }
        let ip = t.client_ip(peer, &h);
        if !peer_trusted {
            prop_assert_eq!(ip, peer);
        } else {
            let listed: Vec<IpAddr> = entries
                .iter()
                .flat_map(|e| e.split(','))
                .filter_map(parse_forwarded_for)
                .collect();
            prop_assert!(ip == peer || listed.contains(&ip), "{entries:?} -> {ip}");
        }
    }
}

// Header templates.

/// Claim names the templates below read (all on the default allowlist).
const TEMPLATE_CLAIMS: [&str; 4] = ["email", "groups", "roles", "realm_access"];

/// Well-formed templates over the claims above: text, fields, pipelines,
/// and nested `if` / `with` / `range` blocks.
fn well_formed_template() -> impl Strategy<Value = String> {
    let claim = prop::sample::select(TEMPLATE_CLAIMS.to_vec());
    let leaf = prop_oneof![
        "[a-zA-Z0-9 ,;:=/_-]{0,12}",
        claim.clone().prop_map(|c| format!("{{{{.Claims.{c}}}}}")),
        claim
            .clone()
            .prop_map(|c| format!("{{{{toJson .Claims.{c}}}}}")),
        claim
            .clone()
            .prop_map(|c| format!("{{{{.Claims.{c} | default \"none\"}}}}")),
        Just("{{.AccessToken}}".to_owned()),
        Just("{{.IdToken}}".to_owned()),
        Just("{{- \" \" -}}".to_owned()),
    ];
    leaf.prop_recursive(4, 48, 4, move |inner| {
        let claim = prop::sample::select(TEMPLATE_CLAIMS.to_vec());
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(|v| v.concat()),
            (claim.clone(), inner.clone())
                .prop_map(|(c, b)| format!("{{{{range .Claims.{c}}}}}{b}{{{{.}}}}{{{{end}}}}")),
            (claim.clone(), inner.clone()).prop_map(|(c, b)| format!(
                "{{{{range $i, $v := .Claims.{c}}}}}{b}{{{{$v}}}}{{{{end}}}}"
            )),
            (claim.clone(), inner.clone(), inner.clone()).prop_map(|(c, a, b)| format!(
                "{{{{if .Claims.{c}}}}}{a}{{{{else}}}}{b}{{{{end}}}}"
            )),
            (claim, inner)
                .prop_map(|(c, b)| format!("{{{{with .Claims.{c}}}}}{b}{{{{.}}}}{{{{end}}}}")),
        ]
    })
}

/// Template-like text: the grammar's pieces in any order.
fn template_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("{{".to_owned()),
        Just("}}".to_owned()),
        Just("{{- ".to_owned()),
        Just(" -}}".to_owned()),
        Just("{{/* c */}}".to_owned()),
        Just(".Claims.email".to_owned()),
        Just(".Claims.groups".to_owned()),
        Just(".Claims".to_owned()),
        Just(".AccessToken".to_owned()),
        Just(".".to_owned()),
        Just("range ".to_owned()),
        Just("if ".to_owned()),
        Just("with ".to_owned()),
        Just("else".to_owned()),
        Just("end".to_owned()),
        Just("$x".to_owned()),
        Just(" := ".to_owned()),
        Just(" | ".to_owned()),
        Just("get ".to_owned()),
        Just("default ".to_owned()),
        Just("toJson ".to_owned()),
        Just("printf ".to_owned()),
        Just("(".to_owned()),
        Just(")".to_owned()),
        Just("\"s\\n\"".to_owned()),
        Just("`raw`".to_owned()),
        Just(" ".to_owned()),
        "[a-z]{1,5}",
        any::<char>().prop_map(|c| c.to_string()),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

/// Claim values an attacker controls at the provider: long strings, control
/// characters, nested lists and maps.
fn claim_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
        "[a\r\n\u{0}\u{7f}]{0,8}".prop_map(Value::String),
        (1usize..3000).prop_map(|n| Value::String("x".repeat(n))),
    ];
    leaf.prop_recursive(3, 200, 40, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..40).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,6}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every value the header templates send is a valid header value (no CR,
/// LF or NUL) of at most `MAX_RENDERED_BYTES`.
fn assert_sent_values_safe(
    template: &oidcgate::policy::template::Template,
    claims: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), TestCaseError> {
    use oidcgate::policy::template::{MAX_RENDERED_BYTES, TemplateData};
    use oidcgate::policy::token_headers::{HeaderTemplate, TokenHeaderSettings, Tokens};
    let tokens = Tokens {
        access: "at\r\nx-injected: 1",
        id: "id.token.value",
        refresh: "rt",
    };
    let data = TemplateData {
        claims,
        access_token: tokens.access,
        id_token: tokens.id,
        refresh_token: tokens.refresh,
    };
    if let Ok(s) = template.render(&data) {
        prop_assert!(s.len() <= MAX_RENDERED_BYTES, "rendered {} bytes", s.len());
    }
    let settings = TokenHeaderSettings {
        templates: vec![HeaderTemplate {
            name: http::HeaderName::from_static("x-templated"),
            template: std::sync::Arc::new(template.clone()),
        }],
        pass_access_token: true,
        set_authorization_header: true,
    };
    let mut out = HeaderMap::new();
    settings.render(claims, tokens, &mut out);
    for (name, v) in &out {
        prop_assert!(
            !v.as_bytes().iter().any(|b| matches!(b, b'\r' | b'\n' | 0)),
            "{name} carries CR, LF or NUL"
        );
        prop_assert!(v.len() <= MAX_RENDERED_BYTES, "{name}: {} bytes", v.len());
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// Compiling any text never panics; whatever compiles renders within
    /// the output bound and sends no CR, LF or NUL.
    #[test]
    fn template_parse_never_panics_and_renders_bounded(
        src in template_like(),
        claims in prop::collection::btree_map(
            prop::sample::select(TEMPLATE_CLAIMS.to_vec()),
            claim_value(),
            0..4,
        ),
    ) {
        let allowed = oidcgate::policy::template::ClaimAllowlist::new(Vec::<String>::new());
        let claims: serde_json::Map<String, serde_json::Value> =
            claims.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        if let Ok(t) = oidcgate::policy::template::Template::compile(&src, &allowed) {
            assert_sent_values_safe(&t, &claims)?;
        }
    }

    /// Well-formed templates, nested loops included, over hostile claim
    /// values: rendering is bounded and the sent value is a safe header.
    #[test]
    fn well_formed_templates_render_bounded_and_safe(
        src in well_formed_template(),
        claims in prop::collection::btree_map(
            prop::sample::select(TEMPLATE_CLAIMS.to_vec()),
            claim_value(),
            0..4,
        ),
    ) {
        let allowed = oidcgate::policy::template::ClaimAllowlist::new(Vec::<String>::new());
        let claims: serde_json::Map<String, serde_json::Value> =
            claims.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        match oidcgate::policy::template::Template::compile(&src, &allowed) {
            Ok(t) => assert_sent_values_safe(&t, &claims)?,
            Err(e) => {
                // Only size limits may refuse a well-formed template.
                prop_assert_eq!(
                    e.kind,
                    oidcgate::policy::template::CompileErrorKind::TooLarge,
                    "{}", src
                );
            }
        }
    }
}

// The configuration loader.

/// A configuration that loads.
fn base_config() -> serde_json::Map<String, serde_json::Value> {
    serde_json::json!({
        "providerURL": "https://idp.example.com",
        "clientID": "c",
        "clientSecret": "s",
        "sessionEncryptionKey": "property-test-key-0123456789abcdef-0123",
    })
    .as_object()
    .unwrap()
    .clone()
}

/// Keys to mutate: real ones (top level and nested) and unknown ones.
const CONFIG_KEYS: &[&str] = &[
    "providerURL",
    "clientID",
    "clientSecret",
    "sessionEncryptionKey",
    "callbackURL",
    "logoutURL",
    "excludedURLs",
    "allowedUsers",
    "allowedUserDomains",
    "allowedRolesAndGroups",
    "scopes",
    "overrideScopes",
    "forceHTTPS",
    "cookieDomain",
    "headers",
    "trustedProxies",
    "refreshGracePeriodSeconds",
    "providerTimeout",
    "providerConnectTimeout",
    "enableBearerAuth",
    "sessionStore",
    "securityOutagePolicy",
    "redis",
    "redis.enabled",
    "redis.address",
    "redis.tls",
    "redis.tls.enabled",
    "redis.poolSize",
    "redis.cacheMode",
    "noSuchKey",
    "redis.noSuchKey",
];

/// A JSON value of any shape, as an attacker-edited file may hold.
fn any_json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,16}".prop_map(Value::String),
        Just(Value::String("https://idp.example.com".into())),
        Just(Value::String("127.0.0.1:6379".into())),
    ];
    leaf.prop_recursive(2, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(".{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Sets `path` (dot-separated) in `doc` to `v`, making maps on the way.
fn set_path(
    doc: &mut serde_json::Map<String, serde_json::Value>,
    path: &str,
    v: serde_json::Value,
) {
    let (head, rest) = path.split_once('.').unwrap_or((path, ""));
    if rest.is_empty() {
        doc.insert(head.to_owned(), v);
        return;
    }
    let entry = doc
        .entry(head.to_owned())
        .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
    if !entry.is_object() {
        *entry = serde_json::Value::Object(serde_json::Map::new());
    }
    if let serde_json::Value::Object(m) = entry {
        set_path(m, rest, v);
    }
}

/// A key path as the loader writes one: `name`, `a.b`, `list[2].c`.
fn is_key_path(k: &str) -> bool {
    k.split('.').all(|seg| {
        let name = seg.split('[').next().unwrap_or_default();
        let indexes = &seg[name.len()..];
        name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && indexes.split_terminator(']').all(|i| {
                i.strip_prefix('[')
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            })
    })
}

/// Every error names a key path: non-empty, one line, and either a
/// well-formed key path or rooted at a key of the document (whose own
/// spelling may be anything).
fn assert_errors_name_keys(
    in_document: &dyn Fn(&str) -> bool,
    errs: &oidcgate::config::ConfigErrors,
) -> Result<(), TestCaseError> {
    prop_assert!(!errs.0.is_empty());
    for e in &errs.0 {
        prop_assert!(!e.key.is_empty(), "error without a key: {e}");
        prop_assert!(!e.key.contains('\n'), "{:?}", e.key);
        let root = e.key.split(['.', '[']).next().unwrap_or_default();
        let known = is_key_path(&e.key) || in_document(root);
        prop_assert!(
            known,
            "error names {:?}, not a key of the document: {e}",
            e.key
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// Any text as the configuration file: never a panic; a refusal names
    /// key paths.
    #[test]
    fn config_loader_never_panics_on_any_text(text in ".{0,200}") {
        if let Err(errs) = oidcgate::config::Config::from_yaml(&text, &|_| None) {
            assert_errors_name_keys(&|k| text.contains(k), &errs)?;
        }
    }

    /// A valid configuration with keys set to values of any shape, removed,
    /// or added, as JSON or YAML text: never a panic; every error names a
    /// key path of the document.
    #[test]
    fn config_key_mutations_are_refused_by_key(
        mutations in prop::collection::vec(
            (prop::sample::select(CONFIG_KEYS.to_vec()), prop::option::of(any_json())),
            1..5,
        ),
        as_yaml in any::<bool>(),
    ) {
        let mut doc = base_config();
        for (key, value) in mutations {
            match value {
                Some(v) => set_path(&mut doc, key, v),
                None => {
                    doc.remove(key);
                }
            }
        }
        let value = serde_json::Value::Object(doc.clone());
        let text = if as_yaml {
            serde_norway::to_string(&value).unwrap()
        } else {
            value.to_string()
        };
        if let Err(errs) = oidcgate::config::Config::from_yaml(&text, &|_| None) {
            assert_errors_name_keys(&|k| doc.contains_key(k), &errs)?;
        }
    }
}
