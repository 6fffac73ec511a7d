//! The provider side of the load benchmark (`bench/load.sh`): starts the
//! in-process test OpenID Provider, writes the provider part of an oidcgate
//! configuration and a valid session cookie for it, then keeps the provider
//! up so that the real `oidcgate` binary can discover it.
//!
//! `cargo run --release --example bench_gate -- --dir DIR [--lifetime SECS] [--groups N]`
//!
//! Writes `DIR/provider.yaml` (providerURL, client credentials and a fresh
//! random session key) and `DIR/cookie` (a `Cookie` header value holding a
//! session with ID, access and refresh tokens and `N` groups, default 2,
//! valid for the lifetime plus an hour), prints `ready`, and exits after the
//! lifetime (default 600 s).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use http::HeaderMap;
use oidcgate::clock::{Clock as _, SystemClock};
use oidcgate::config::Config;
use oidcgate::session::{SID_BYTES, Session, SessionCodec, random_token};
use serde_json::json;
use testkit::{IdpConfig, TestIdp};

fn arg(name: &str) -> Option<String> {
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == name {
            return args.next();
        }
    }
    None
}

#[tokio::main]
async fn main() {
    let dir = PathBuf::from(arg("--dir").expect("--dir DIR"));
    let lifetime: u64 = arg("--lifetime").map_or(600, |s| s.parse().expect("--lifetime SECS"));
    let n_groups: usize = arg("--groups").map_or(2, |s| s.parse().expect("--groups N"));

    let idp = TestIdp::start(IdpConfig::default()).await;
    let provider_yaml = format!(
        "providerURL: {}\nclientID: {}\nclientSecret: {}\nsessionEncryptionKey: {}\n",
        idp.issuer(),
        idp.client_id(),
        idp.client_secret(),
        random_token(32).expect("random"),
    );
    let cfg = Config::from_yaml(&provider_yaml, &|_| None).expect("provider configuration");
    let codec = SessionCodec::new(cfg.session.clone()).expect("session codec");

    let now = SystemClock.now();
    let groups: Vec<String> = (0..n_groups)
        .map(|i| format!("sg-app-{i:04}-contributors-eu-west"))
        .collect();
    // Built from the serialized form so that fields added later keep their
    // defaults.
    let session: Session = serde_json::from_value(json!({
        "i": random_token(SID_BYTES).expect("random"),
        "c": now,
        "u": "jane@example.com",
        "s": "248289761001",
        "p": "idp-session-7f3a",
        "e": "jane@example.com",
        "g": groups,
        "r": ["reader"],
        "it": idp.id_token(json!({ "groups": groups })),
        "at": idp.access_token(json!({})),
        "rt": random_token(32).expect("random"),
        "ri": now,
        "x": now + lifetime + 3600,
    }))
    .expect("session");
    let set_cookies = codec
        .store(&session, &HeaderMap::new(), false, now)
        .expect("session cookie");
    let cookie = set_cookies
        .iter()
        .map(|v| v.to_str().expect("ascii").split(';').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("; ");

    std::fs::write(dir.join("provider.yaml"), provider_yaml).expect("write provider.yaml");
    std::fs::write(dir.join("cookie"), &cookie).expect("write cookie");
    println!(
        "ready: provider {} ({} session chunk(s), Cookie header of {} bytes)",
        idp.issuer(),
        set_cookies.len(),
        cookie.len()
    );
    std::io::stdout().flush().expect("stdout");

    tokio::select! {
        () = tokio::time::sleep(Duration::from_secs(lifetime)) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
