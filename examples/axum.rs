//! oidcgate as a tower layer in an axum service: `/public` answers everyone,
//! `/me` only logged-in users, and handlers read who is calling from the
//! request's extensions.
//!
//! Run it against any OpenID Provider that lets `http://127.0.0.1:3000/oauth2/callback`
//! be a redirect URI, for instance the demo's test provider:
//!
//! ```text
//! cargo run --example demo     # prints the provider URL, client id and secret
//! OIDC_PROVIDER_URL=http://127.0.0.1:<port> OIDC_CLIENT_ID=<id> \
//!   OIDC_CLIENT_SECRET=<secret> cargo run --example axum
//! ```
//!
//! then open <http://127.0.0.1:3000/me>. `OIDC_SESSION_KEY` (32 bytes or more)
//! replaces the example's fixed session key; `LISTEN` the listen address.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use oidcgate::clock::SystemClock;
use oidcgate::config::Config;
use oidcgate::doors::{OidcLayer, PeerAddr, Principal, TrustedProxies, ViewSource};

/// Hands the connection's address to the gate, which keeps its per-address
/// limits (failed bearer tokens, logins) per client only when it knows it.
async fn peer_addr(
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    req.extensions_mut().insert(PeerAddr(addr));
    next.run(req).await
}

/// Answers everyone: `/public` is an excluded URL, so the gate lets it
/// through without a session (and without an identity).
async fn public() -> &'static str {
    "anyone may read this\n"
}

/// Answers logged-in users only: the gate sends everyone else to the
/// provider first.
async fn me(Extension(Principal(who)): Extension<Principal>) -> String {
    match who {
        Some(id) => format!(
            "hello {} (subject {}, groups {:?})\n",
            id.identifier, id.subject, id.groups
        ),
        None => "no identity on this path\n".to_owned(),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let provider = std::env::var("OIDC_PROVIDER_URL")
        .map_err(|_| "set OIDC_PROVIDER_URL (see the example's documentation)")?;
    let listen = env("LISTEN", "127.0.0.1:3000");
    let yaml = format!(
        "providerURL: {provider}\nclientID: {id}\nclientSecret: {secret}\n\
         sessionEncryptionKey: {key}\nexcludedURLs: [/public]\n",
        id = env("OIDC_CLIENT_ID", "axum-example"),
        secret = env("OIDC_CLIENT_SECRET", ""),
        key = env(
            "OIDC_SESSION_KEY",
            "example-only-key-0123456789abcdef012345"
        ),
    );
    let cfg = Config::from_yaml(&yaml, &|_| None)?;
    let gate = oidcgate::build(&cfg, Arc::new(SystemClock)).await?;

    // The layer answers its own endpoints (callback, logout) and refusals;
    // every request it lets through reaches the router with a `Principal`.
    let app = Router::new()
        .route("/public", get(public))
        .route("/me", get(me))
        .fallback(|| async { "not found\n" })
        .layer(OidcLayer::new(
            gate,
            TrustedProxies::default(),
            ViewSource::Direct,
        ))
        .layer(middleware::from_fn(peer_addr));
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("open http://{listen}/me (and http://{listen}/public)");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
