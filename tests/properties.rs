//! Property tests over the parsers of attacker input: the path normaliser,
//! the redirect validator, the cookie codec and forwarded-header parsing
//! (the JWT header pre-check has its own in `oidc::verify`).
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
