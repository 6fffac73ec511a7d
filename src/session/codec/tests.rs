//! Tests of [`SessionCodec`]: round trips, chunking, tampering, rotation,
//! lifetimes, settings validation, the login cookie and cookie stripping.

use std::collections::BTreeMap;
use std::time::Duration;

use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};

use super::*;
use crate::session::model::PendingLogin;

const KEY_A: &str = "A-session-key-for-tests-0123456789";
const KEY_B: &str = "B-session-key-for-tests-9876543210";
const NOW: u64 = 1_700_000_000;

fn settings(keys: &[&str]) -> SessionSettings {
    SessionSettings::with_keys(keys.iter().map(|k| SecretString::from(*k)).collect())
}

fn codec(keys: &[&str]) -> SessionCodec {
    SessionCodec::new(settings(keys)).unwrap()
}

fn codec_with(f: impl FnOnce(&mut SessionSettings)) -> SessionCodec {
    let mut s = settings(&[KEY_A]);
    f(&mut s);
    SessionCodec::new(s).unwrap()
}

fn session(token_len: usize) -> Session {
    Session {
        sid: "c2lkLXRlc3Q".into(),
        created_at: NOW,
        renewed_at: None,
        identifier: "alice".into(),
        subject: "0f6c2a".into(),
        idp_sid: Some("idp-session".into()),
        email: Some("alice@example.org".into()),
        groups: vec!["staff".into(), "admins".into()],
        roles: vec!["reader".into()],
        id_token: Some("i".repeat(token_len)),
        access_token: Some("a".repeat(token_len)),
        refresh_token: Some("r".repeat(token_len)),
        refresh_token_issued_at: Some(NOW),
        expires_at: NOW + 300,
        server_secret: None,
    }
}

fn pending(state: &str, created_at: u64) -> PendingLogin {
    PendingLogin {
        state: state.into(),
        nonce: format!("n-{state}"),
        pkce_verifier: Some(format!("v-{state}")),
        redirect_uri: "https://gate.example/callback".into(),
        return_to: format!("https://app.example/{state}"),
        created_at,
    }
}

/// A minimal browser cookie jar: applies `Set-Cookie` values and renders a
/// `Cookie` header. Order of names is kept by a sorted map.
#[derive(Default, Clone)]
struct Jar(BTreeMap<String, String>);

impl Jar {
    fn apply(&mut self, set_cookies: &[HeaderValue]) {
        for v in set_cookies {
            let text = v.to_str().unwrap();
            let (pair, attrs) = text.split_once(';').unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if attrs.contains("Max-Age=0;") {
                self.0.remove(name);
            } else {
                self.0.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    fn with(mut self, name: &str, value: &str) -> Self {
        self.0.insert(name.to_owned(), value.to_owned());
        self
    }

    fn without(mut self, name: &str) -> Self {
        self.0.remove(name);
        self
    }

    fn headers(&self) -> HeaderMap {
        cookie_headers(
            &self
                .0
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join("; "),
        )
    }
}

fn cookie_headers(header: &str) -> HeaderMap {
    let mut map = HeaderMap::new();
    if !header.is_empty() {
        map.insert(COOKIE, HeaderValue::from_str(header).unwrap());
    }
    map
}

fn names(set_cookies: &[HeaderValue]) -> Vec<String> {
    set_cookies
        .iter()
        .map(|v| v.to_str().unwrap().split('=').next().unwrap().to_owned())
        .collect()
}

fn stored(codec: &SessionCodec, s: &Session) -> Jar {
    let mut jar = Jar::default();
    jar.apply(&codec.store(s, &HeaderMap::new(), true, NOW).unwrap());
    jar
}

#[test]
fn round_trip_small_session() {
    let c = codec(&[KEY_A]);
    let s = session(40);
    let out = c.store(&s, &HeaderMap::new(), false, NOW).unwrap();
    assert_eq!(names(&out), ["_oidcgate_s_0"]);
    let line = out[0].to_str().unwrap();
    assert!(line.starts_with("_oidcgate_s_0=1."), "chunk header");
    assert!(
        line.ends_with("; Max-Age=86400; Path=/; HttpOnly; SameSite=Lax"),
        "{line}"
    );
    let mut jar = Jar::default();
    jar.apply(&out);
    assert_eq!(c.load(&jar.headers(), NOW + 10), Some(s));
}

#[test]
fn round_trip_large_session_in_chunks() {
    let c = codec_with(|s| s.cookie_domain = Some("example.org".into()));
    // Three 4 KB tokens: a 12 KB token set.
    let s = session(4096);
    let out = c.store(&s, &HeaderMap::new(), true, NOW).unwrap();
    assert!(out.len() >= 4, "{} chunks", out.len());
    let want: Vec<String> = (0..out.len()).map(|i| format!("_oidcgate_s_{i}")).collect();
    assert_eq!(names(&out), want);
    for v in &out {
        let text = v.to_str().unwrap();
        let value = text.split(';').next().unwrap().split_once('=').unwrap().1;
        assert!(value.len() <= MAX_COOKIE_VALUE);
        assert!(format!("Set-Cookie: {text}").len() < MAX_SET_COOKIE_LEN);
        for attr in [
            "; Path=/",
            "; Domain=example.org",
            "; HttpOnly",
            "; SameSite=Lax",
            "; Secure",
        ] {
            assert!(text.contains(attr), "{attr} missing");
        }
    }
    let mut jar = Jar::default();
    jar.apply(&out);
    assert_eq!(c.load(&jar.headers(), NOW), Some(s.clone()));

    // The same cookies split over several Cookie headers, mixed with foreign ones.
    let mut split = HeaderMap::new();
    split.append(
        COOKIE,
        HeaderValue::from_static("idp_session=xyz; theme=dark"),
    );
    for (n, v) in &jar.0 {
        split.append(
            COOKIE,
            HeaderValue::from_str(&format!("{n}={v}; other=1")).unwrap(),
        );
    }
    assert_eq!(c.load(&split, NOW), Some(s));
}

#[test]
fn chunk_boundaries_round_trip() {
    let c = codec(&[KEY_A]);
    let base = Keyring::sealed_text_len(serde_json::to_vec(&session(0)).unwrap().len());
    // Token lengths around the one- and two-chunk limits.
    for target in [MAX_COOKIE_VALUE, 2 * MAX_COOKIE_VALUE] {
        let around = (target.saturating_sub(base) / 3).saturating_sub(8)
            ..(target.saturating_sub(base) / 3 + 8);
        for len in around {
            let s = session(len);
            let out = c.store(&s, &HeaderMap::new(), true, NOW).unwrap();
            let mut jar = Jar::default();
            jar.apply(&out);
            assert_eq!(
                c.load(&jar.headers(), NOW).as_ref(),
                Some(&s),
                "token len {len}"
            );
        }
    }
}

#[test]
fn too_large_session_is_an_error() {
    let c = codec(&[KEY_A]);
    let err = c
        .store(&session(13_000), &HeaderMap::new(), true, NOW)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooLarge {
                what: "session",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn stale_chunks_cleared_when_session_shrinks() {
    let c = codec(&[KEY_A]);
    let big = stored(&c, &session(4096));
    let big_count = big.0.len();
    assert!(big_count >= 4);
    let small = session(10);
    let out = c.store(&small, &big.headers(), true, NOW).unwrap();
    let expected: Vec<String> = (0..big_count).map(|i| format!("_oidcgate_s_{i}")).collect();
    assert_eq!(names(&out), expected);
    for v in &out[1..] {
        assert!(v.to_str().unwrap().contains("=; Max-Age=0;"), "{v:?}");
    }
    let mut jar = big.clone();
    jar.apply(&out);
    assert_eq!(jar.0.len(), 1);
    assert_eq!(c.load(&jar.headers(), NOW), Some(small.clone()));

    // If the deletions never reached the browser, the leftover chunks are ignored.
    let mut leftover = big;
    leftover.apply(&out[..1]);
    assert_eq!(leftover.0.len(), big_count);
    assert_eq!(c.load(&leftover.headers(), NOW), Some(small));
}

#[test]
fn tampered_byte_in_any_chunk_is_no_session() {
    let c = codec(&[KEY_A]);
    let jar = stored(&c, &session(4096));
    assert!(c.load(&jar.headers(), NOW).is_some());
    for (name, value) in &jar.0 {
        for pos in [2, value.len() / 2, value.len() - 1] {
            let mut bytes = value.clone().into_bytes();
            bytes[pos] = if bytes[pos] == b'A' { b'B' } else { b'A' };
            let bad = jar.clone().with(name, std::str::from_utf8(&bytes).unwrap());
            assert_eq!(c.load(&bad.headers(), NOW), None, "{name} at {pos}");
        }
    }
    // Header tampering: a different declared count.
    let first = jar.0["_oidcgate_s_0"].clone();
    let (_, rest) = first.split_once('.').unwrap();
    for header in ["1", "3", "9", "10", "11", "04", "0", "-4", "", "x"] {
        let bad = jar
            .clone()
            .with("_oidcgate_s_0", &format!("{header}.{rest}"));
        assert_eq!(c.load(&bad.headers(), NOW), None, "header {header:?}");
    }
    let bad = jar.clone().with("_oidcgate_s_0", rest);
    assert_eq!(c.load(&bad.headers(), NOW), None, "no header");
}

#[test]
fn truncated_session_is_no_session() {
    let c = codec(&[KEY_A]);
    let jar = stored(&c, &session(4096));
    for name in jar.0.keys() {
        let missing = jar.clone().without(name);
        assert_eq!(c.load(&missing.headers(), NOW), None, "without {name}");
    }
    // A chunk cut short.
    let value = &jar.0["_oidcgate_s_1"];
    let cut = jar
        .clone()
        .with("_oidcgate_s_1", &value[..value.len() - 10]);
    assert_eq!(c.load(&cut.headers(), NOW), None);
    // An over-long chunk is rejected before decoding.
    let long = jar
        .clone()
        .with("_oidcgate_s_1", &"A".repeat(MAX_COOKIE_VALUE + 1));
    assert_eq!(c.load(&long.headers(), NOW), None);
}

#[test]
fn chunks_from_two_sessions_mixed_are_no_session() {
    let c = codec(&[KEY_A]);
    let s1 = stored(&c, &session(4096));
    let s2 = stored(&c, &session(4096));
    assert_eq!(s1.0.len(), s2.0.len());
    for name in s1.0.keys() {
        let mixed = s1.clone().with(name, &s2.0[name]);
        assert_eq!(
            c.load(&mixed.headers(), NOW),
            None,
            "{name} from the other session"
        );
    }
}

#[test]
fn foreign_cookies_are_no_session() {
    let ours = codec(&[KEY_A]);
    let other_prefix = codec_with(|s| s.cookie_prefix = "_other_".into());
    let other_key = codec(&[KEY_B]);
    let s = session(20);

    // Another key, same names.
    let jar = stored(&other_key, &s);
    assert_eq!(ours.load(&jar.headers(), NOW), None);

    // Another prefix: not even read, and renamed into our names it does not open.
    let jar = stored(&other_prefix, &s);
    assert_eq!(other_prefix.load(&jar.headers(), NOW), Some(s.clone()));
    assert_eq!(ours.load(&jar.headers(), NOW), None);
    let renamed = Jar::default().with("_oidcgate_s_0", &jar.0["_other_s_0"]);
    assert_eq!(ours.load(&renamed.headers(), NOW), None);
}

#[test]
fn login_cookie_is_never_a_session_and_vice_versa() {
    let c = codec(&[KEY_A]);
    let mut login = LoginState::default();
    login.push(pending("st", NOW), NOW);
    let mut jar = Jar::default();
    jar.apply(&[c.store_login(&login, true).unwrap()]);
    let login_value = jar.0["_oidcgate_login"].clone();

    let as_session = Jar::default().with("_oidcgate_s_0", &format!("1.{login_value}"));
    assert_eq!(c.load(&as_session.headers(), NOW), None);

    let session_jar = stored(&c, &session(10));
    let sealed = session_jar.0["_oidcgate_s_0"]
        .split_once('.')
        .unwrap()
        .1
        .to_owned();
    let as_login = Jar::default().with("_oidcgate_login", &sealed);
    assert_eq!(c.load_login(&as_login.headers(), NOW), None);
}

#[test]
fn key_rotation_old_key_opens_new_key_seals() {
    let old = codec(&[KEY_A]);
    let rotated = codec(&[KEY_B, KEY_A]);
    let only_new = codec(&[KEY_B]);
    let s = session(3000);

    let old_jar = stored(&old, &s);
    assert_eq!(rotated.load(&old_jar.headers(), NOW), Some(s.clone()));

    let new_jar = stored(&rotated, &s);
    assert_eq!(old.load(&new_jar.headers(), NOW), None);
    assert_eq!(only_new.load(&new_jar.headers(), NOW), Some(s.clone()));

    // Once the old key is retired, old cookies stop opening.
    assert_eq!(only_new.load(&old_jar.headers(), NOW), None);

    // Login cookies rotate the same way.
    let mut login = LoginState::default();
    login.push(pending("st", NOW), NOW);
    let mut jar = Jar::default();
    jar.apply(&[old.store_login(&login, true).unwrap()]);
    assert_eq!(rotated.load_login(&jar.headers(), NOW), Some(login));
}

#[test]
fn lifetime_counts_from_the_login_until_a_refresh() {
    let c = codec_with(|s| s.max_age = Duration::from_secs(3600));
    let s = session(10);
    let jar = stored(&c, &s);
    assert_eq!(c.session_deadline(&s), NOW + 3600);
    // Table: time of load, session expected.
    for (now, ok) in [
        (NOW, true),
        (NOW + 3599, true),
        (NOW + 3600, false),
        (u64::MAX, false),
    ] {
        assert_eq!(
            c.load(&jar.headers(), now).is_some(),
            ok,
            "at +{}",
            now.wrapping_sub(NOW)
        );
    }

    // Max-Age is the remaining lifetime, at least 1, at most max_age.
    // Table: time of store, expected Max-Age.
    for (now, max_age) in [
        (NOW, 3600),
        (NOW + 600, 3000),
        (NOW + 3599, 1),
        (NOW + 9999, 1),
        (NOW - 50, 3600),
    ] {
        let out = c.store(&s, &HeaderMap::new(), true, now).unwrap();
        let text = out[0].to_str().unwrap();
        assert!(
            text.contains(&format!("; Max-Age={max_age};")),
            "at {now}: {text}"
        );
    }

    // Tokens that change without a recorded refresh do not extend it.
    let refreshed = Session {
        access_token: Some("new".into()),
        expires_at: NOW + 7200,
        server_secret: None,
        ..s
    };
    let jar = stored(&c, &refreshed);
    assert_eq!(c.load(&jar.headers(), NOW + 3600), None);
}

#[test]
fn a_refresh_slides_the_lifetime_within_the_absolute_limit() {
    let hour = Duration::from_secs(3600);
    let sliding = codec_with(|s| s.max_age = hour);
    let capped = codec_with(|s| {
        s.max_age = hour;
        s.absolute_max_age = Some(Duration::from_secs(5000));
    });
    // Refreshed 3000 s after the login.
    let s = Session {
        renewed_at: Some(NOW + 3000),
        ..session(10)
    };
    assert_eq!(sliding.session_deadline(&s), NOW + 6600);
    assert_eq!(capped.session_deadline(&s), NOW + 5000);
    // A renewal time before the login (a forged or confused value) does
    // not shorten or lengthen anything.
    let odd = Session {
        renewed_at: Some(NOW - 10_000),
        ..session(10)
    };
    assert_eq!(sliding.session_deadline(&odd), NOW + 3600);
    // Table: codec, time of load, session expected.
    for (c, name, now, ok) in [
        (&sliding, "sliding", NOW + 3600, true),
        (&sliding, "sliding", NOW + 6599, true),
        (&sliding, "sliding", NOW + 6600, false),
        (&capped, "capped", NOW + 4999, true),
        (&capped, "capped", NOW + 5000, false),
    ] {
        let jar = stored(c, &s);
        assert_eq!(
            c.load(&jar.headers(), now).is_some(),
            ok,
            "{name} at +{}",
            now - NOW
        );
    }
    // Max-Age after the refresh: the whole sliding lifetime, or what is
    // left of the absolute one.
    for (c, max_age) in [(&sliding, 3600), (&capped, 2000)] {
        let out = c.store(&s, &HeaderMap::new(), true, NOW + 3000).unwrap();
        let text = out[0].to_str().unwrap();
        assert!(text.contains(&format!("; Max-Age={max_age};")), "{text}");
    }
}

#[test]
fn bad_settings_are_rejected_with_a_clear_error() {
    type Edit = fn(&mut SessionSettings);
    let table: [(&str, Edit, &str); 14] = [
        (
            "no key",
            |s| s.keys.clear(),
            "at least one session key is required",
        ),
        (
            "short key",
            |s| s.keys = vec!["short".into()],
            "key #0 is 5 bytes long",
        ),
        (
            "short previous key",
            |s| s.keys.push(SecretString::from("x".repeat(31))),
            "key #1 is 31 bytes long",
        ),
        (
            "empty prefix",
            |s| s.cookie_prefix.clear(),
            "prefix must not be empty",
        ),
        (
            "prefix with ;",
            |s| s.cookie_prefix = "a;b".into(),
            "contains ';'",
        ),
        (
            "prefix with space",
            |s| s.cookie_prefix = "a b".into(),
            "contains ' '",
        ),
        (
            "prefix with =",
            |s| s.cookie_prefix = "a=".into(),
            "contains '='",
        ),
        (
            "long prefix",
            |s| s.cookie_prefix = "p".repeat(65),
            "at most 64",
        ),
        (
            "empty domain",
            |s| s.cookie_domain = Some(String::new()),
            "cookie_domain: must not be empty",
        ),
        (
            "bad domain",
            |s| s.cookie_domain = Some("a.com; x".into()),
            "cookie_domain",
        ),
        (
            "relative path",
            |s| s.cookie_path = "app".into(),
            "must start with '/'",
        ),
        (
            "path with ;",
            |s| s.cookie_path = "/a;b".into(),
            "contains ';'",
        ),
        (
            "zero max age",
            |s| s.max_age = Duration::from_millis(500),
            "max_age: must be at least one second",
        ),
        (
            "__Host- with domain",
            |s| {
                s.cookie_prefix = "__Host-gate_".into();
                s.cookie_domain = Some("example.org".into());
            },
            "__Host-",
        ),
    ];
    for (what, edit, message) in table {
        let mut s = settings(&[KEY_A]);
        edit(&mut s);
        let err = SessionCodec::new(s).unwrap_err().to_string();
        assert!(err.contains(message), "{what}: {err}");
        assert!(!err.contains(KEY_A), "{what}: key leaked");
    }

    let err = SessionCodec::new(SessionSettings {
        login_ttl: Duration::ZERO,
        ..settings(&[KEY_A])
    })
    .unwrap_err();
    assert!(err.to_string().contains("login_ttl"), "{err}");

    let err = SessionCodec::new(SessionSettings {
        cookie_path: format!("/{}", "p".repeat(300)),
        cookie_domain: Some(format!("{}.example.org", "d".repeat(60))),
        ..settings(&[KEY_A])
    })
    .unwrap_err();
    assert!(err.to_string().contains("attributes are too long"), "{err}");

    assert!(matches!(
        SessionCodec::new(SessionSettings::default()),
        Err(Error::NoKeys)
    ));
}

#[test]
fn host_prefix_forces_secure() {
    let c = codec_with(|s| s.cookie_prefix = "__Host-gate_".into());
    let out = c
        .store(&session(10), &HeaderMap::new(), false, NOW)
        .unwrap();
    assert!(out[0].to_str().unwrap().ends_with("; Secure"));
    assert!(c.clear_login(false).to_str().unwrap().ends_with("; Secure"));
    let plain = codec(&[KEY_A]);
    assert!(
        !plain
            .clear_login(false)
            .to_str()
            .unwrap()
            .contains("Secure")
    );
    assert!(
        plain
            .clear_login(true)
            .to_str()
            .unwrap()
            .ends_with("; Secure")
    );
}

#[test]
fn login_state_round_trip_and_expiry() {
    let c = codec_with(|s| s.login_ttl = Duration::from_secs(600));
    let mut login = LoginState::default();
    // Tab 1 at NOW, tab 2 at NOW+100, tab 3 at NOW+200.
    for (i, state) in ["tab1", "tab2", "tab3"].iter().enumerate() {
        let at = NOW + 100 * i as u64;
        login.push(pending(state, at), at);
    }
    let out = c.store_login(&login, true).unwrap();
    let text = out.to_str().unwrap();
    assert!(text.starts_with("_oidcgate_login="));
    assert!(text.contains("; Max-Age=600;"));
    let mut jar = Jar::default();
    jar.apply(&[out]);

    // Table: time of load, states still pending.
    let table: [(u64, &[&str]); 4] = [
        (NOW + 200, &["tab3", "tab2", "tab1"]),
        (NOW + 600, &["tab3", "tab2"]),
        (NOW + 799, &["tab3"]),
        (NOW + 800, &[]),
    ];
    for (now, states) in table {
        let loaded = c.load_login(&jar.headers(), now).unwrap();
        let got: Vec<&str> = loaded.pending.iter().map(|p| p.state.as_str()).collect();
        assert_eq!(got, states, "at +{}", now - NOW);
        assert_eq!(loaded.attempts, 3);
    }

    // The callback of tab 2 takes its entry; the rest is written back.
    let mut loaded = c.load_login(&jar.headers(), NOW + 300).unwrap();
    let taken = loaded.take("tab2").unwrap();
    assert_eq!(taken.return_to, "https://app.example/tab2");
    assert!(loaded.take("tab2").is_none());
    jar.apply(&[c.store_login(&loaded, true).unwrap()]);
    let again = c.load_login(&jar.headers(), NOW + 300).unwrap();
    assert_eq!(again.pending.len(), 2);
    assert!(again.clone().take("tab1").is_some());
    assert!(again.clone().take("tab3").is_some());

    // Missing or garbage cookie: no login state.
    assert_eq!(c.load_login(&HeaderMap::new(), NOW), None);
    let garbage = Jar::default().with("_oidcgate_login", "AAAA");
    assert_eq!(c.load_login(&garbage.headers(), NOW), None);

    // Clearing.
    assert_eq!(
        c.clear_login(true).to_str().unwrap(),
        "_oidcgate_login=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax; Secure"
    );
}

#[test]
fn oversized_login_state_drops_oldest_then_errors() {
    let c = codec(&[KEY_A]);
    let mut login = LoginState::default();
    for state in ["old", "mid", "new"] {
        let mut p = pending(state, NOW);
        p.return_to = format!("https://app.example/{}", "x".repeat(1200));
        login.push(p, NOW);
    }
    let out = c.store_login(&login, true).unwrap();
    assert!(out.len() < MAX_SET_COOKIE_LEN);
    let mut jar = Jar::default();
    jar.apply(&[out]);
    let loaded = c.load_login(&jar.headers(), NOW).unwrap();
    let got: Vec<&str> = loaded.pending.iter().map(|p| p.state.as_str()).collect();
    assert_eq!(got, ["new", "mid"]);

    let mut huge = LoginState::default();
    let mut p = pending("only", NOW);
    p.return_to = "x".repeat(4000);
    huge.push(p, NOW);
    assert!(matches!(
        c.store_login(&huge, true),
        Err(Error::TooLarge {
            what: "login state",
            ..
        })
    ));
}

#[test]
fn clear_expires_what_the_request_carried() {
    let c = codec(&[KEY_A]);
    let jar = stored(&c, &session(4096))
        .with("_oidcgate_login", "x")
        .with("idp", "keep");
    let out = c.clear(&jar.headers(), true);
    let mut want: Vec<String> = (0..jar.0.len() - 2)
        .map(|i| format!("_oidcgate_s_{i}"))
        .collect();
    want.push("_oidcgate_login".into());
    assert_eq!(names(&out), want);
    for v in &out {
        let text = v.to_str().unwrap();
        assert!(
            text.contains("=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax; Secure"),
            "{text}"
        );
    }
    let mut after = jar.clone();
    after.apply(&out);
    assert_eq!(after.0.keys().collect::<Vec<_>>(), ["idp"]);

    // Nothing carried: s_0 is still deleted.
    assert_eq!(names(&c.clear(&HeaderMap::new(), false)), ["_oidcgate_s_0"]);
    // A stray high chunk is deleted too.
    let stray = Jar::default().with("_oidcgate_s_7", "x");
    assert_eq!(
        names(&c.clear(&stray.headers(), false)),
        ["_oidcgate_s_0", "_oidcgate_s_7"]
    );
}

#[test]
fn store_leaves_the_login_cookie_alone() {
    let c = codec(&[KEY_A]);
    let jar = Jar::default().with("_oidcgate_login", "x");
    let out = c.store(&session(10), &jar.headers(), true, NOW).unwrap();
    assert_eq!(names(&out), ["_oidcgate_s_0"]);
}

#[test]
fn duplicate_names_take_the_first() {
    let c = codec(&[KEY_A]);
    let s1 = session(10);
    let s2 = Session {
        identifier: "bob".into(),
        ..session(10)
    };
    let v1 = stored(&c, &s1).0["_oidcgate_s_0"].clone();
    let v2 = stored(&c, &s2).0["_oidcgate_s_0"].clone();
    let headers = cookie_headers(&format!("_oidcgate_s_0={v2}; x=1; _oidcgate_s_0={v1}"));
    assert_eq!(c.load(&headers, NOW), Some(s2));
    let headers = cookie_headers(&format!("_oidcgate_s_0=garbage; _oidcgate_s_0={v1}"));
    assert_eq!(c.load(&headers, NOW), None);
}

#[test]
fn cookie_names_and_ownership() {
    let c = codec(&[KEY_A]);
    let names = c.cookie_names();
    assert_eq!(names.len(), MAX_CHUNKS + 1);
    assert_eq!(names[0], "_oidcgate_s_0");
    assert_eq!(names[9], "_oidcgate_s_9");
    assert_eq!(names[10], "_oidcgate_login");
    for name in &names {
        assert!(c.is_own_cookie(name), "{name}");
    }
    for name in [
        "_oidcgate_s_10",
        "_oidcgate_s_01",
        "_oidcgate_s_",
        "_oidcgate_s_x",
        "_oidcgate_s_-1",
        "_oidcgate_login2",
        "_oidcgate_",
        "_OIDCGATE_s_0",
        "x_oidcgate_s_0",
        "session",
    ] {
        assert!(!c.is_own_cookie(name), "{name}");
    }
}

#[test]
fn strip_own_cookies_keeps_foreign_cookies() {
    let c = codec(&[KEY_A]);
    // Table: Cookie header in, Cookie header out.
    let table: [(&str, Option<&str>); 5] = [
        (
            "KEYCLOAK_SESSION=k; _oidcgate_s_0=1.abc; _oidcgate_s_1=def; theme=dark",
            Some("KEYCLOAK_SESSION=k; theme=dark"),
        ),
        ("_oidcgate_s_0=1.abc;_oidcgate_login=zz", None),
        ("a=1;  _oidcgate_login=zz ;b=2", Some("a=1; b=2")),
        (
            "_oidcgate_s_10=keep; _other_s_0=keep",
            Some("_oidcgate_s_10=keep; _other_s_0=keep"),
        ),
        ("", None),
    ];
    for (input, want) in table {
        assert_eq!(c.strip_own_cookies(input).as_deref(), want, "{input}");
    }

    let mut headers = HeaderMap::new();
    headers.append(COOKIE, HeaderValue::from_static("_oidcgate_s_0=1.abc"));
    headers.append(
        COOKIE,
        HeaderValue::from_bytes(b"x=\xff; _oidcgate_s_1=def").unwrap(),
    );
    headers.append(COOKIE, HeaderValue::from_static("y=2"));
    headers.insert("x-other", HeaderValue::from_static("v"));
    c.strip_own_cookie_headers(&mut headers);
    let left: Vec<&[u8]> = headers
        .get_all(COOKIE)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    assert_eq!(left, [&b"x=\xff"[..], &b"y=2"[..]]);
    assert_eq!(headers.get("x-other").unwrap(), "v");

    let mut none = HeaderMap::new();
    c.strip_own_cookie_headers(&mut none);
    assert!(none.is_empty());
}

#[test]
fn debug_does_not_print_keys() {
    let text = format!("{:?}", codec(&[KEY_A]));
    assert!(!text.contains(KEY_A), "{text}");
    let text = format!("{:?}", settings(&[KEY_A]));
    assert!(!text.contains(KEY_A), "{text}");
    assert!(text.contains("[redacted]"));
}

#[test]
fn codec_is_cheap_to_share() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<SessionCodec>();
}
