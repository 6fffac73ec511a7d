//! CPU cost of header templates: `Gate::decide` for a valid one-cookie
//! session with warm memory caches, without templates (`plain`) and with
//! five templated headers (`templated`), in the same run so that their
//! ratio carries over to another machine. Also the rendering alone
//! (`render_only`). Run with `cargo bench --bench headers`.
//!
//! The five headers: the e-mail claim, `Authorization: Bearer` with the
//! access token, the groups joined by a `range`, a `default` over a claim
//! the token lacks, and `toJson` of the groups.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use divan::Bencher;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use oidcgate::clock::{Clock as _, SystemClock};
use oidcgate::config::Config;
use oidcgate::gate::{Decision, Gate, RequestView};
use oidcgate::policy::template::{ClaimAllowlist, Template, TemplateData};
use oidcgate::policy::token_headers::{HeaderTemplate, TokenHeaderSettings};
use oidcgate::session::{SID_BYTES, Session, SessionCodec, random_token};
use serde_json::{Map, Value, json};
use testkit::{IdpConfig, TestIdp};
use tokio::runtime::Runtime;

const KEY: &str = "headers-bench-session-key-0123456789abcdef01";

const TEMPLATES: &[(&str, &str)] = &[
    ("x-user-email", "{{.Claims.email}}"),
    ("authorization", "Bearer {{.AccessToken}}"),
    (
        "x-groups",
        "{{range $i, $g := .Claims.groups}}{{if $i}},{{end}}{{$g}}{{end}}",
    ),
    (
        "x-user-name",
        "{{default \"anonymous\" .Claims.preferred_username}}",
    ),
    ("x-groups-json", "{{toJson .Claims.groups}}"),
];

fn main() {
    divan::main();
}

struct Fixture {
    rt: Runtime,
    _idp: TestIdp,
    gate: Gate,
    view: RequestView,
}

fn token_headers() -> TokenHeaderSettings {
    let allow = ClaimAllowlist::default();
    TokenHeaderSettings {
        templates: TEMPLATES
            .iter()
            .map(|(n, v)| HeaderTemplate {
                name: HeaderName::from_static(n),
                template: Arc::new(Template::compile(v, &allow).unwrap()),
            })
            .collect(),
        ..TokenHeaderSettings::default()
    }
}

fn fixture(templated: bool) -> Fixture {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let idp = rt.block_on(TestIdp::start(IdpConfig::default()));
    let yaml = format!(
        "providerURL: {}\nclientID: {}\nclientSecret: {}\nsessionEncryptionKey: {KEY}\nlogLevel: error\n",
        idp.issuer(),
        idp.client_id(),
        idp.client_secret()
    );
    let mut cfg = Config::from_yaml(&yaml, &|_| None).unwrap();
    if templated {
        cfg.policy.token_headers = token_headers();
    }
    let codec = SessionCodec::new(cfg.session.clone()).unwrap();
    let gate = rt
        .block_on(oidcgate::build(&cfg, Arc::new(SystemClock)))
        .unwrap();
    rt.block_on(gate.warm_up()).unwrap();
    let now = SystemClock.now();
    let groups = ["staff", "developers"];
    let session: Session = serde_json::from_value(json!({
        "i": random_token(SID_BYTES).unwrap(),
        "c": now,
        "u": "jane@example.com",
        "s": "248289761001",
        "e": "jane@example.com",
        "g": groups,
        "it": idp.id_token(json!({ "groups": groups, "email": "jane@example.com" })),
        "at": idp.access_token(json!({})),
        "rt": random_token(32).unwrap(),
        "ri": now,
        "x": now + 3600,
    }))
    .unwrap();
    let set = codec
        .store(&session, &HeaderMap::new(), false, now)
        .unwrap();
    let cookie: Vec<&str> = set
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap())
        .collect();
    assert_eq!(cookie.len(), 1, "one-cookie session");
    let mut h = HeaderMap::new();
    h.insert(http::header::ACCEPT, HeaderValue::from_static("text/html"));
    h.insert(
        http::header::COOKIE,
        HeaderValue::from_str(&cookie.join("; ")).unwrap(),
    );
    let view = RequestView::new(
        Method::GET,
        false,
        "app.bench",
        "/app/dashboard?tab=2",
        h,
        IpAddr::V4(Ipv4Addr::LOCALHOST),
    )
    .unwrap();
    Fixture {
        rt,
        _idp: idp,
        gate,
        view,
    }
}

fn bench_decide(bencher: Bencher, templated: bool) {
    let fx = fixture(templated);
    let d = fx.rt.block_on(fx.gate.decide(&fx.view));
    let Decision::Allow(a) = &d else {
        panic!("not allowed")
    };
    if templated {
        assert_eq!(a.upstream_headers["x-user-email"], "jane@example.com");
        assert_eq!(a.upstream_headers["x-groups"], "staff,developers");
        assert!(!a.upstream_headers["x-user-name"].is_empty());
    }
    bencher.bench_local(|| {
        let d = fx.rt.block_on(fx.gate.decide(&fx.view));
        assert!(matches!(&d, Decision::Allow(a) if a.principal.is_some()));
        d
    });
}

/// The warm decision without templates: the baseline of the ratio.
#[divan::bench]
fn plain(bencher: Bencher) {
    bench_decide(bencher, false);
}

/// The same decision with the five templated headers.
#[divan::bench]
fn templated(bencher: Bencher) {
    bench_decide(bencher, true);
}

/// Rendering the five headers alone, claims already decoded.
#[divan::bench]
fn render_only(bencher: Bencher) {
    let th = token_headers();
    let claims: Map<String, Value> = serde_json::from_value(json!({
        "sub": "248289761001", "email": "jane@example.com",
        "groups": ["staff", "developers"], "iss": "https://idp.example", "aud": "client"
    }))
    .unwrap();
    let data = TemplateData {
        claims: &claims,
        access_token: "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln",
        id_token: "",
        refresh_token: "",
    };
    let mut out = String::new();
    bencher.bench_local(|| {
        for t in &th.templates {
            t.template.render_into(&data, &mut out).unwrap();
            divan::black_box(&out);
        }
    });
}
