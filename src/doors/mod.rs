//! Doors: thin adapters between a transport and the engine.
//!
//! Each door turns what it receives into a [`crate::gate::RequestView`], calls
//! [`crate::gate::Gate::decide`], and renders the [`crate::gate::Decision`].
//! Doors make no authentication or authorization decision of their own.
//!
//! - [`layer`]: [`OidcLayer`], the tower layer every other door is built from;
//! - [`allow`]: the "allow" service behind forward-auth (200) and auth_request (202);
//! - [`proxy`]: the reverse-proxy service (streaming, WebSocket upgrades);
//! - `hop`: hop-by-hop header hygiene and which upgrades may pass;
//! - [`trust`]: which peers' `X-Forwarded-*` headers are believed;
//! - [`app`]: the listener's router (health, auth_request, forward-auth or proxy);
//! - [`ops`]: health, readiness, metrics, and the live router a reload swaps;
//! - [`server`]: the accept loop, limits and graceful shutdown.

pub mod allow;
pub mod app;
mod hop;
pub mod layer;
pub mod ops;
pub mod proxy;
mod render;
pub mod server;
pub mod trust;

pub use app::{App, AppSettings};
pub use layer::{OidcLayer, OidcService, Principal, ViewSource};
pub use ops::{Live, OpsService, OpsSettings};
pub use server::{PeerAddr, ServerLimits, serve, serve_with};
pub use trust::TrustedProxies;

/// The response body type of every door.
pub type Body = http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, BoxError>;
/// The future of every door service that answers asynchronously.
pub type ResponseFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<http::Response<Body>, BoxError>> + Send>,
>;
/// Errors carried by bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A body holding `bytes`.
pub fn full(bytes: impl Into<bytes::Bytes>) -> Body {
    use http_body_util::BodyExt;
    http_body_util::Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}
