//! The bearer decision (`Gate::decide` on a request with
//! `Authorization: Bearer <JWT>`), without HTTP: warm (the same token again,
//! answered from the verified-claims cache) against cold (a token never seen,
//! so the RS256 signature is checked). Tokens come from the in-process test
//! provider; minting them is outside the timed region.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use divan::Bencher;
use http::{HeaderMap, HeaderValue, Method};
use oidcgate::gate::{Decision, Gate, RequestView};
use serde_json::json;
use testkit::{IdpConfig, TestIdp};
use tokio::runtime::Runtime;

fn main() {
    divan::main();
}

struct Fixture {
    rt: Runtime,
    idp: TestIdp,
    gate: Gate,
}

fn fixture() -> Fixture {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (idp, gate) = rt.block_on(async {
        let idp = TestIdp::start(IdpConfig::default()).await;
        let yaml = format!(
            "providerURL: {}\nclientID: {}\nclientSecret: {}\n\
             sessionEncryptionKey: bench-session-key-0123456789abcdef-xyz\n\
             logLevel: error\naudience: api://default\nenableBearerAuth: true\n",
            idp.issuer(),
            idp.client_id(),
            idp.client_secret()
        );
        let cfg = oidcgate::config::Config::from_yaml(&yaml, &|_| None).unwrap();
        let gate = oidcgate::assemble(
            &cfg,
            oidcgate::cache::Caches::memory(),
            Arc::new(oidcgate::clock::SystemClock),
        )
        .unwrap();
        gate.warm_up().await.unwrap();
        (idp, gate)
    });
    Fixture { rt, idp, gate }
}

fn view(token: &str) -> RequestView {
    let mut h = HeaderMap::new();
    h.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    h.insert(
        http::header::ACCEPT,
        HeaderValue::from_static("application/json"),
    );
    RequestView::new(
        Method::GET,
        true,
        "api.example",
        "/v1/items?page=2",
        h,
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
    )
    .unwrap()
}

fn assert_allowed(d: &Decision) {
    assert!(matches!(d, Decision::Allow(_)), "{d:?}");
}

/// The same token every time: verified-claims cache hit, no signature check.
#[divan::bench(sample_count = 200, sample_size = 50)]
fn warm_claims_cache(b: Bencher) {
    let f = fixture();
    let v = view(&f.idp.access_token(json!({})));
    assert_allowed(&f.rt.block_on(f.gate.decide(&v)));
    b.bench_local(|| f.rt.block_on(f.gate.decide(&v)));
}

/// A new token every time: parse, JOSE pre-check, RS256 verification,
/// claim checks and the cache write.
#[divan::bench(sample_count = 100, sample_size = 10)]
fn cold_signature_check(b: Bencher) {
    let f = fixture();
    assert_allowed(
        &f.rt
            .block_on(f.gate.decide(&view(&f.idp.access_token(json!({}))))),
    );
    b.with_inputs(|| view(&f.idp.access_token(json!({}))))
        .bench_local_refs(|v| f.rt.block_on(f.gate.decide(v)));
}
