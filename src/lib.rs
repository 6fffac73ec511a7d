//! oidcgate: an OpenID Connect authentication gateway.
//!
//! One engine ([`gate::Gate::decide`]) serves every door: forward-auth (Traefik,
//! Caddy), nginx `auth_request`, a reverse proxy, and a tower layer. See
//! `ARCHITECTURE.md` for the code map.
//!
//! # In a Rust service
//!
//! [`doors::OidcLayer`] puts the gate in front of any tower service: it
//! answers its own endpoints (callback, logout), sends browsers without a
//! session to the provider, and hands every request it lets through to the
//! inner service with the caller's [`doors::Principal`] in its extensions.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use oidcgate::doors::{OidcLayer, Principal, TrustedProxies, ViewSource};
//! use tower::{Layer, service_fn};
//!
//! let yaml = "providerURL: https://idp.example.com\nclientID: app\nclientSecret: s3cret\n\
//!             sessionEncryptionKey: a-key-of-at-least-thirty-two-bytes!!\n";
//! let cfg = oidcgate::config::Config::from_yaml(yaml, &|_| None)?;
//! let gate = oidcgate::build(&cfg, std::sync::Arc::new(oidcgate::clock::SystemClock)).await?;
//! let app = service_fn(|req: http::Request<String>| async move {
//!     let who = req.extensions().get::<Principal>().and_then(|p| p.0.clone());
//!     Ok::<_, std::convert::Infallible>(http::Response::new(format!("hello {who:?}")))
//! });
//! let service = OidcLayer::new(gate, TrustedProxies::default(), ViewSource::Direct).layer(app);
//! # let _ = service; Ok(()) }
//! ```
//!
//! `examples/axum.rs` is the same in an axum router, with a public and a
//! protected route.

pub mod breaker;
pub mod cache;
pub mod clock;
pub mod config;
pub mod doors;
pub mod gate;
pub mod oidc;
pub mod policy;
pub mod runtime;
pub mod session;
pub mod telemetry;

use std::future::Future;

/// Why the gate could not be assembled from a valid configuration.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The provider client could not be built (CA bundle, TLS).
    #[error("provider: {0}")]
    Provider(#[from] oidc::Error),
    /// The session codec refused its settings.
    #[error("session: {0}")]
    Session(#[from] session::Error),
    /// The cache backend could not be built.
    #[error("cache: {0}")]
    Cache(#[from] cache::Error),
}

/// Assembles the engine with the caches the configuration asks for (memory,
/// Redis or hybrid). Must run inside a Tokio runtime.
pub async fn build(
    cfg: &config::Config,
    clock: clock::SharedClock,
) -> Result<gate::Gate, BuildError> {
    let caches = cache::Caches::new(cfg.cache.clone()).await?;
    assemble(cfg, caches, clock)
}

/// Assembles the engine around the given caches (tests share one `Caches`
/// between two gates to act as two replicas).
pub fn assemble(
    cfg: &config::Config,
    caches: cache::Caches,
    clock: clock::SharedClock,
) -> Result<gate::Gate, BuildError> {
    assemble_with(cfg, caches, clock, telemetry::metrics::Metrics::disabled())
}

/// As [`assemble`], recording into `metrics` (shared by every gate a
/// process builds, so counts survive configuration reloads).
pub fn assemble_with(
    cfg: &config::Config,
    caches: cache::Caches,
    clock: clock::SharedClock,
    metrics: telemetry::metrics::Metrics,
) -> Result<gate::Gate, BuildError> {
    let one = |gate: &gate::GateSettings,
               provider: &oidc::ProviderSettings,
               session: &session::SessionSettings,
               policy: &policy::PolicySettings|
     -> Result<gate::Gate, BuildError> {
        let provider =
            oidc::Provider::with_metrics(provider.clone(), clock.clone(), metrics.clone())?;
        let sessions = session::SessionCodec::new(session.clone())?;
        Ok(gate::Gate::new(
            gate.clone(),
            provider,
            sessions,
            policy::Policy::new(policy.clone()),
            caches.clone(),
            clock.clone(),
            metrics.clone(),
        ))
    };
    let default = one(&cfg.gate, &cfg.provider, &cfg.session, &cfg.policy)?;
    if cfg.providers.is_empty() {
        return Ok(default);
    }
    // Several providers: one gate each, sharing caches, clock and metrics.
    let mut named = Vec::with_capacity(cfg.providers.len());
    for e in &cfg.providers {
        let g = one(&e.gate, &e.provider, &e.session, &e.policy)?;
        named.push((e.name.clone(), e.routes.clone(), g));
    }
    Ok(default.with_providers(named))
}

/// Serves `gate` on `listener` until `shutdown` completes. Discovery is
/// attempted at once in the background; requests retry it on demand.
pub async fn run(
    gate: gate::Gate,
    app: doors::AppSettings,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) {
    let warm = gate.clone();
    let warm_task = tokio::spawn(async move {
        if let Err(e) = warm.warm_up().await {
            tracing::warn!(error = %e, "provider not reachable at start-up; will retry on demand");
        }
    });
    let limits = app.server;
    doors::serve_with(listener, doors::App::new(gate, app), limits, shutdown).await;
    warm_task.abort();
}
