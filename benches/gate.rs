//! CPU time of `Gate::decide` on its main paths, against the in-process test
//! provider (discovery done before measuring), and of the session codec
//! alone.
//!
//! - `valid_session`: a readable session cookie that is not due for refresh,
//!   caches warm (the hot path), for a typical one-chunk session and a
//!   three-chunk one, with memory caches; with `redis` and `hybrid` caches
//!   when `redis-server` is installed (a local server started by the bench).
//! - `valid_session_metrics`: the hot path through `decide_at` (what the
//!   doors call) with metrics off and on; the ratio is the cost of counting.
//! - `excluded_url`: a path under `excludedURLs`, no cookie.
//! - `login_start`: a browser navigation without a session, answered with a
//!   302 to the provider (state, nonce and PKCE verifier made and sealed
//!   into the login cookie).
//! - `codec_load` / `codec_store`: `SessionCodec::load` and `store` alone.
//! - `block_on_baseline`: an empty future driven the same way as every
//!   `decide` above; subtract it to get the engine's own time.
//!
//! Run with `cargo bench --bench gate`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use divan::Bencher;
use http::{HeaderMap, HeaderValue, Method};
use oidcgate::clock::{Clock as _, SystemClock};
use oidcgate::config::Config;
use oidcgate::gate::{Decision, Gate, RequestView};
use oidcgate::session::{SID_BYTES, Session, SessionCodec, random_token};
use oidcgate::telemetry::metrics::{Door, Metrics, Outcome};
use serde_json::json;
use testkit::redis::RedisServer;
use testkit::{IdpConfig, TestIdp};
use tokio::runtime::Runtime;

const HOST: &str = "app.bench";
const KEY: &str = "gate-bench-session-key-0123456789abcdef0123";

fn main() {
    // The sizes of the sessions measured below, printed once.
    let fx = fixture("memory").unwrap();
    for chunks in [1, 3] {
        let (s, cookie) = session_with_chunks(&fx, chunks);
        eprintln!(
            "{chunks}-chunk session: {} groups, Cookie header of {} bytes",
            s.groups.len(),
            cookie.len()
        );
    }
    drop(fx);
    divan::main();
}

struct Fixture {
    rt: Runtime,
    idp: TestIdp,
    gate: Gate,
    codec: SessionCodec,
    _redis: Option<RedisServer>,
}

/// A gate in front of a fresh test provider, discovered before returning.
/// `cache_mode` is `memory`, `redis` or `hybrid`; `None` when Redis is
/// asked for but `redis-server` cannot be started.
fn fixture(cache_mode: &str) -> Option<Fixture> {
    fixture_with(cache_mode, Metrics::disabled())
}

/// As [`fixture`], with the gate recording into `metrics`.
fn fixture_with(cache_mode: &str, metrics: Metrics) -> Option<Fixture> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let idp = rt.block_on(TestIdp::start(IdpConfig::default()));
    let mut yaml = format!(
        "providerURL: {}\nclientID: {}\nclientSecret: {}\nsessionEncryptionKey: {KEY}\n\
         logLevel: error\nexcludedURLs: [/public]\n",
        idp.issuer(),
        idp.client_id(),
        idp.client_secret()
    );
    let redis = if cache_mode == "memory" {
        None
    } else {
        match RedisServer::start() {
            Ok(s) => {
                yaml.push_str(&format!(
                    "redis:\n  enabled: true\n  address: {}\n  cacheMode: {cache_mode}\n",
                    s.address()
                ));
                Some(s)
            }
            Err(e) => {
                eprintln!("skipping {cache_mode}: {e}");
                return None;
            }
        }
    };
    let cfg = Config::from_yaml(&yaml, &|_| None).unwrap();
    let codec = SessionCodec::new(cfg.session.clone()).unwrap();
    let caches = rt
        .block_on(oidcgate::cache::Caches::new(cfg.cache.clone()))
        .unwrap();
    let gate = oidcgate::assemble_with(&cfg, caches, Arc::new(SystemClock), metrics).unwrap();
    rt.block_on(gate.warm_up()).unwrap();
    Some(Fixture {
        rt,
        idp,
        gate,
        codec,
        _redis: redis,
    })
}

/// Group names of the kind large directories put into tokens.
fn groups(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("sg-app-{i:04}-contributors-eu-west"))
        .collect()
}

/// A session as a login would store it: ID, access and refresh tokens from
/// the provider, `n_groups` groups in both the ID token and the session.
/// Built from its serialized form so that fields added later keep their
/// defaults.
fn session(idp: &TestIdp, n_groups: usize) -> Session {
    let now = SystemClock.now();
    let groups = groups(n_groups);
    serde_json::from_value(json!({
        "i": random_token(SID_BYTES).unwrap(),
        "c": now,
        "u": "jane@example.com",
        "s": "248289761001",
        "p": "idp-session-7f3a",
        "e": "jane@example.com",
        "g": groups,
        "r": ["reader"],
        "it": idp.id_token(json!({ "groups": groups })),
        "at": idp.access_token(json!({})),
        "rt": random_token(32).unwrap(),
        "ri": now,
        "x": now + 3600,
    }))
    .unwrap()
}

/// The `Cookie` header carrying `session`, and the number of chunks used.
fn cookie_for(codec: &SessionCodec, session: &Session) -> (String, usize) {
    let set = codec
        .store(session, &HeaderMap::new(), false, SystemClock.now())
        .unwrap();
    let pairs: Vec<&str> = set
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap())
        .collect();
    (pairs.join("; "), pairs.len())
}

/// The smallest session (two groups, then steps of five) that takes `chunks`
/// cookies.
fn session_with_chunks(fx: &Fixture, chunks: usize) -> (Session, String) {
    for n in (2..400).step_by(5) {
        let s = session(&fx.idp, n);
        let (cookie, used) = cookie_for(&fx.codec, &s);
        if used == chunks {
            return (s, cookie);
        }
    }
    panic!("no session of {chunks} chunks")
}

fn headers(accept: &'static str, cookie: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(http::header::ACCEPT, HeaderValue::from_static(accept));
    h.insert(
        http::header::USER_AGENT,
        HeaderValue::from_static("Mozilla/5.0 (X11; Linux x86_64) bench"),
    );
    if !cookie.is_empty() {
        h.insert(http::header::COOKIE, HeaderValue::from_str(cookie).unwrap());
    }
    h
}

fn view(target: &str, h: HeaderMap) -> RequestView {
    RequestView::new(
        Method::GET,
        false,
        HOST,
        target,
        h,
        IpAddr::V4(Ipv4Addr::LOCALHOST),
    )
    .unwrap()
}

#[divan::bench]
fn block_on_baseline(bencher: Bencher) {
    let fx = fixture("memory").unwrap();
    bencher.bench_local(|| fx.rt.block_on(async { divan::black_box(1u8) }));
}

/// Hot path: `chunks` is 1 (typical) or 3 (a session with many groups).
#[divan::bench(args = [1, 3])]
fn valid_session(bencher: Bencher, chunks: usize) {
    let fx = fixture("memory").unwrap();
    let (_, cookie) = session_with_chunks(&fx, chunks);
    let v = view("/app/dashboard?tab=2", headers("text/html", &cookie));
    bencher.bench_local(|| {
        let d = fx.rt.block_on(fx.gate.decide(&v));
        assert!(matches!(&d, Decision::Allow(a) if a.principal.is_some()));
        d
    });
}

/// Hot path through a door's entry point (`decide_at`), with metrics off
/// (the handle records nothing) and on (counter and histogram updated):
/// the cost of recording a decision.
#[divan::bench(args = ["off", "on"])]
fn valid_session_metrics(bencher: Bencher, metrics: &str) {
    let m = if metrics == "on" {
        Metrics::new()
    } else {
        Metrics::disabled()
    };
    let fx = fixture_with("memory", m.clone()).unwrap();
    let (_, cookie) = session_with_chunks(&fx, 1);
    let v = view("/app/dashboard?tab=2", headers("text/html", &cookie));
    bencher.bench_local(|| {
        let d = fx.rt.block_on(fx.gate.decide_at(Door::ForwardAuth, &v));
        assert!(matches!(&d, Decision::Allow(a) if a.principal.is_some()));
        d
    });
    assert_eq!(
        m.enabled(),
        m.decisions(Door::ForwardAuth, Outcome::Allow) > 0
    );
}

/// Hot path with shared caches: every request asks whether its session was
/// ended on another replica.
#[divan::bench(args = ["redis", "hybrid"])]
fn valid_session_shared_cache(bencher: Bencher, mode: &str) {
    let Some(fx) = fixture(mode) else { return };
    let (_, cookie) = session_with_chunks(&fx, 1);
    let v = view("/app/dashboard?tab=2", headers("text/html", &cookie));
    // Warm-up: lets the hybrid tier subscribe and cache the negative answer.
    for _ in 0..100 {
        let d = fx.rt.block_on(fx.gate.decide(&v));
        assert!(matches!(&d, Decision::Allow(a) if a.principal.is_some()));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    bencher.bench_local(|| {
        let d = fx.rt.block_on(fx.gate.decide(&v));
        assert!(matches!(&d, Decision::Allow(a) if a.principal.is_some()));
        d
    });
}

#[divan::bench]
fn excluded_url(bencher: Bencher) {
    let fx = fixture("memory").unwrap();
    let v = view("/public/css/site.css", headers("text/css,*/*;q=0.1", ""));
    bencher.bench_local(|| {
        let d = fx.rt.block_on(fx.gate.decide(&v));
        assert!(matches!(&d, Decision::Allow(a) if a.principal.is_none()));
        d
    });
}

#[divan::bench]
fn login_start(bencher: Bencher) {
    let fx = fixture("memory").unwrap();
    let v = view(
        "/app/dashboard?tab=2",
        headers("text/html,application/xhtml+xml", ""),
    );
    bencher.bench_local(|| {
        let d = fx.rt.block_on(fx.gate.decide(&v));
        assert!(matches!(&d, Decision::Redirect { .. }), "{d:?}");
        d
    });
}

#[divan::bench(args = [1, 3])]
fn codec_load(bencher: Bencher, chunks: usize) {
    let fx = fixture("memory").unwrap();
    let (_, cookie) = session_with_chunks(&fx, chunks);
    let h = headers("text/html", &cookie);
    let now = SystemClock.now();
    bencher.bench_local(|| fx.codec.load(&h, now).unwrap());
}

#[divan::bench(args = [1, 3])]
fn codec_store(bencher: Bencher, chunks: usize) {
    let fx = fixture("memory").unwrap();
    let (session, cookie) = session_with_chunks(&fx, chunks);
    let h = headers("text/html", &cookie);
    let now = SystemClock.now();
    bencher.bench_local(|| fx.codec.store(&session, &h, false, now).unwrap());
}
