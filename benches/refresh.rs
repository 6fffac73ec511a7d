//! The refresh stampede path of the engine against the in-process test
//! provider: `N` concurrent `Gate::decide` calls carrying one session that is
//! due for refresh (one grant at the provider, every caller gets the new
//! session cookie), next to the warm path (a valid session, no refresh) as the
//! baseline of the same run.
//!
//! Each stampede iteration feeds on the previous one's result: the refreshed
//! session is due again (access tokens live less than the grace period) and
//! holds the rotated refresh token, so every iteration costs one real grant.
//! The grants issued per stampede are printed after the table.
//!
//! `late_arrival_reuses_result` is the path of a request that still carries
//! the pre-refresh cookie after the refresh finished: the cached result is
//! sealed into a new cookie, with no grant.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use divan::Bencher;
use divan::counter::ItemsCount;
use http::{HeaderMap, HeaderValue, Method};
use oidcgate::clock::{Clock as _, SystemClock};
use oidcgate::gate::{Decision, Gate, RequestView};
use oidcgate::session::{Session, SessionCodec};
use testkit::{IdpConfig, TestIdp};
use tokio::runtime::Runtime;

const HOST: &str = "app.bench";
const KEY: &str = "refresh-bench-session-key-0123456789abcdef";

/// One line per stampede bench: stampedes run and grants the provider saw.
static GRANT_REPORT: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn main() {
    divan::main();
    for line in GRANT_REPORT.lock().unwrap().iter() {
        println!("{line}");
    }
}

struct Fixture {
    rt: Runtime,
    idp: TestIdp,
    gate: Gate,
    codec: SessionCodec,
}

/// A gate in front of a provider whose access tokens live `ttl`; the grace
/// period is 60 s, so a 20 s lifetime makes every session due.
fn fixture(ttl: Duration) -> Fixture {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let idp = rt.block_on(TestIdp::start(IdpConfig {
        access_token_ttl: ttl,
        rotate_refresh_tokens: true,
        ..IdpConfig::default()
    }));
    let yaml = format!(
        "providerURL: {}\nclientID: {}\nclientSecret: {}\nsessionEncryptionKey: {KEY}\n\
         logLevel: error\nrefreshGracePeriodSeconds: 60\n",
        idp.issuer(),
        idp.client_id(),
        idp.client_secret()
    );
    let cfg = oidcgate::config::Config::from_yaml(&yaml, &|_| None).unwrap();
    let codec = SessionCodec::new(cfg.session.clone()).unwrap();
    let gate = oidcgate::assemble(
        &cfg,
        oidcgate::cache::Caches::memory(),
        Arc::new(SystemClock),
    )
    .unwrap();
    Fixture {
        rt,
        idp,
        gate,
        codec,
    }
}

fn view(target: &str, cookie: &str) -> RequestView {
    let mut h = HeaderMap::new();
    h.insert(
        http::header::ACCEPT,
        HeaderValue::from_static("application/json"),
    );
    if !cookie.is_empty() {
        h.insert(http::header::COOKIE, HeaderValue::from_str(cookie).unwrap());
    }
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

/// `name=value` pairs of the cookies a decision sets (deletions left out).
fn cookie_pairs(set_cookies: &[HeaderValue]) -> Vec<String> {
    set_cookies
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter(|l| !l.to_ascii_lowercase().contains("max-age=0"))
        .filter_map(|l| l.split(';').next())
        .map(str::to_owned)
        .collect()
}

impl Fixture {
    /// Logs in through the engine (start, provider, callback) and returns
    /// the session cookie header.
    fn login(&self) -> String {
        self.rt.block_on(async {
            let mut nav = HeaderMap::new();
            nav.insert(http::header::ACCEPT, HeaderValue::from_static("text/html"));
            let start = RequestView::new(
                Method::GET,
                false,
                HOST,
                "/",
                nav.clone(),
                IpAddr::V4(Ipv4Addr::LOCALHOST),
            )
            .unwrap();
            let Decision::Redirect {
                location,
                set_cookies,
            } = self.gate.decide(&start).await
            else {
                panic!("login start is a redirect")
            };
            let login_cookie = cookie_pairs(&set_cookies).join("; ");
            let http = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap();
            let at_idp = http.get(&location).send().await.unwrap();
            let callback = at_idp.headers()["location"].to_str().unwrap().to_owned();
            let target = callback.split_once(HOST).unwrap().1.to_owned();
            nav.insert(
                http::header::COOKIE,
                HeaderValue::from_str(&login_cookie).unwrap(),
            );
            let cb = RequestView::new(
                Method::GET,
                false,
                HOST,
                &target,
                nav,
                IpAddr::V4(Ipv4Addr::LOCALHOST),
            )
            .unwrap();
            let Decision::Redirect { set_cookies, .. } = self.gate.decide(&cb).await else {
                panic!("callback is a redirect")
            };
            cookie_pairs(&set_cookies)
                .into_iter()
                .filter(|c| c.starts_with("_oidcgate_s_"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    fn session(&self, cookie: &str) -> Option<Session> {
        let mut h = HeaderMap::new();
        h.insert(http::header::COOKIE, HeaderValue::from_str(cookie).ok()?);
        self.codec.load(&h, SystemClock.now())
    }
}

#[divan::bench(sample_count = 200, sample_size = 20)]
fn warm_valid_session(bencher: Bencher) {
    let fx = fixture(Duration::from_secs(3600));
    let cookie = fx.login();
    let v = view("/app", &cookie);
    bencher.counter(ItemsCount::new(1usize)).bench_local(|| {
        let d = fx.rt.block_on(fx.gate.decide(&v));
        assert!(matches!(&d, Decision::Allow(a) if a.set_cookies.is_empty()));
        d
    });
    assert_eq!(fx.gate.refresh_grants(), 0);
}

#[divan::bench(sample_count = 200, sample_size = 20)]
fn late_arrival_reuses_result(bencher: Bencher) {
    let fx = fixture(Duration::from_secs(20));
    let old = view("/app", &fx.login());
    let first = fx.rt.block_on(fx.gate.decide(&old));
    assert!(matches!(&first, Decision::Allow(a) if !a.set_cookies.is_empty()));
    let grants = fx.idp.counters().refresh_grants;
    bencher.counter(ItemsCount::new(1usize)).bench_local(|| {
        let d = fx.rt.block_on(fx.gate.decide(&old));
        assert!(matches!(&d, Decision::Allow(a) if !a.set_cookies.is_empty()));
        d
    });
    assert_eq!(
        fx.idp.counters().refresh_grants,
        grants,
        "no grant for late arrivals"
    );
}

#[divan::bench(args = [1, 10, 50, 200], sample_count = 20, sample_size = 1)]
fn stampede_one_due_session(bencher: Bencher, n: usize) {
    let fx = fixture(Duration::from_secs(20));
    let cookie = RefCell::new(fx.login());
    let grants_before = fx.idp.counters().refresh_grants;
    let iterations = RefCell::new(0u64);
    bencher.counter(ItemsCount::new(n)).bench_local(|| {
        let current = cookie.borrow().clone();
        let v = view("/app", &current);
        let decisions = fx.rt.block_on(futures_util::future::join_all(
            (0..n).map(|_| fx.gate.decide(&v)),
        ));
        let mut next = None;
        for d in &decisions {
            let Decision::Allow(a) = d else {
                panic!("allowed: {d:?}")
            };
            let pairs = cookie_pairs(&a.set_cookies);
            assert!(!pairs.is_empty(), "every caller gets the refreshed session");
            next.get_or_insert_with(|| pairs.join("; "));
        }
        let next = next.unwrap();
        assert!(fx.session(&next).is_some());
        *cookie.borrow_mut() = next;
        *iterations.borrow_mut() += 1;
    });
    let grants = fx.idp.counters().refresh_grants - grants_before;
    let iterations = *iterations.borrow();
    assert_eq!(grants, iterations, "one grant per stampede");
    GRANT_REPORT.lock().unwrap().push(format!(
        "stampede n={n}: {iterations} stampedes, {} requests, {grants} grants at the provider",
        iterations * n as u64
    ));
}
