//! The provider side of the soak run (`bench/soak.sh`): starts the
//! in-process test OpenID Provider with short token lifetimes (so sessions
//! refresh during the run), writes the provider part of an oidcgate
//! configuration, and keeps the provider up for the run.
//!
//! `cargo run --release --example soak_idp -- --dir DIR [--lifetime SECS] [--token-ttl SECS]`
//!
//! Writes `DIR/provider.yaml` (providerURL, client credentials, a fresh
//! random session key, the bearer audience) and `DIR/client` (`id secret
//! token-endpoint`, for the bearer traffic), prints `ready`, and exits after
//! the lifetime (default 2000 s).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::time::Duration;

use oidcgate::session::random_token;
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
    let lifetime: u64 = arg("--lifetime").map_or(2000, |s| s.parse().expect("--lifetime SECS"));
    let ttl: u64 = arg("--token-ttl").map_or(60, |s| s.parse().expect("--token-ttl SECS"));
    let idp = TestIdp::start(IdpConfig {
        access_token_ttl: Duration::from_secs(ttl),
        id_token_ttl: Duration::from_secs(ttl),
        rotate_refresh_tokens: true,
        ..IdpConfig::default()
    })
    .await;
    let provider_yaml = format!(
        "providerURL: {}\nclientID: {}\nclientSecret: {}\nsessionEncryptionKey: {}\n\
         enableBearerAuth: true\naudience: {}\n",
        idp.issuer(),
        idp.client_id(),
        idp.client_secret(),
        random_token(32).expect("random"),
        IdpConfig::default().api_audience,
    );
    std::fs::write(dir.join("provider.yaml"), provider_yaml).expect("provider.yaml");
    std::fs::write(
        dir.join("client"),
        format!(
            "{} {} {}/token\n",
            idp.client_id(),
            idp.client_secret(),
            idp.issuer()
        ),
    )
    .expect("client");
    println!("ready {}", idp.issuer());
    tokio::time::sleep(Duration::from_secs(lifetime)).await;
}
