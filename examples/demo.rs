//! A complete local demo: the test OpenID Provider, a hello upstream, and
//! oidcgate in reverse-proxy mode in front of it, all on loopback.
//!
//! Run `cargo run --example demo`, open the printed URL, and you are logged in
//! as the demo user (the test provider logs in automatically).

use std::sync::Arc;

use oidcgate::clock::SystemClock;
use oidcgate::config::Config;
use testkit::upstream::EchoUpstream;
use testkit::{IdpConfig, TestIdp, TestUser};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::var("DEMO_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(4180);
    let mut user = TestUser::new("demo-user-1", "demo@example.com");
    user.groups = vec!["staff".into()];
    let idp = TestIdp::start(IdpConfig {
        user,
        ..IdpConfig::default()
    })
    .await;
    let upstream = EchoUpstream::start().await;

    let yaml = format!(
        "providerURL: {issuer}\nclientID: {id}\nclientSecret: {secret}\n\
         sessionEncryptionKey: demo-only-key-0123456789abcdef0123456789\n\
         listen: 127.0.0.1:{port}\nupstream: {up}\nexcludedURLs: [/public]\n",
        issuer = idp.issuer(),
        id = idp.client_id(),
        secret = idp.client_secret(),
        up = upstream.url(),
    );
    let cfg = Config::from_yaml(&yaml, &|_| None)?;
    oidcgate::telemetry::init(cfg.log_level, cfg.log_format);
    let gate = oidcgate::build(&cfg, Arc::new(SystemClock)).await?;
    let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
    println!("oidcgate demo");
    println!("  open:      http://127.0.0.1:{port}/");
    println!("  user:      demo@example.com (logged in automatically by the test provider)");
    println!(
        "  provider:  {} (client id {}, secret {})",
        idp.issuer(),
        idp.client_id(),
        idp.client_secret()
    );
    println!(
        "  upstream:  {} (echoes the headers it receives)",
        upstream.url()
    );
    println!("  logout:    http://127.0.0.1:{port}/oauth2/callback/logout");
    println!("Press Ctrl-C to stop.");
    oidcgate::run(gate, cfg.app.clone(), listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
    Ok(())
}
