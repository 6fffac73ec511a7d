//! The operator's endpoints: health, readiness and metrics, and the live
//! handle that lets a configuration reload swap the whole router.
//!
//! - [`health`] and [`ready`]: `/healthz` (the health report in JSON when the
//!   client accepts JSON, `ok` otherwise; always 200 while the process
//!   serves) and `/readyz` (503 only when no login can be served: the
//!   provider cannot be discovered). Answered by path only.
//! - [`OpsService`]: the `metricsAddress` listener: `/metrics`, `/healthz`,
//!   `/readyz`, nothing else.
//! - [`Live`]: the router currently serving; a reload stores a new one and
//!   requests in flight finish on the one they started with.

use std::sync::Arc;
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use tower::Service;

use super::app::{App, HEALTHZ_PATH, READYZ_PATH};
use super::{Body, BoxError, full};
use crate::gate::Gate;
use crate::telemetry::metrics::{Exporter, Format};

/// The metrics path on the `metricsAddress` listener.
pub const METRICS_PATH: &str = "/metrics";
/// The metrics port the examples, manifests and dashboards use
/// (`metricsAddress` has no default: metrics are off until it is set).
pub const CONVENTIONAL_METRICS_PORT: u16 = 9464;
/// How often `watchConfig` looks at the configuration file.
pub const DEFAULT_WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// Settings of the operator's side of the process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpsSettings {
    /// Where `/metrics`, `/healthz` and `/readyz` are served (`metricsAddress`);
    /// `None`: no metrics listener and no metric is recorded.
    pub metrics_address: Option<std::net::SocketAddr>,
    /// Metric name prefix (`metricsPrefix`).
    pub metrics_prefix: String,
    /// Reload when the configuration file changes (`watchConfig`), besides
    /// on `SIGHUP`.
    pub watch_config: bool,
}

impl Default for OpsSettings {
    fn default() -> Self {
        Self {
            metrics_address: None,
            metrics_prefix: crate::telemetry::metrics::DEFAULT_PREFIX.to_owned(),
            watch_config: false,
        }
    }
}

/// The router serving requests now; cheap to clone, shared by the listener
/// and the reload task.
#[derive(Clone)]
pub struct Live {
    app: Arc<ArcSwap<App>>,
}

impl Live {
    /// Serves `app` until [`Live::swap`] replaces it.
    pub fn new(app: App) -> Self {
        Self {
            app: Arc::new(ArcSwap::from_pointee(app)),
        }
    }

    /// Replaces the router; requests already running keep the old one.
    pub fn swap(&self, app: App) {
        self.app.store(Arc::new(app));
    }

    /// The gate of the router serving now.
    pub fn gate(&self) -> Gate {
        self.app.load().gate().clone()
    }
}

impl Service<Request<Incoming>> for Live {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = super::ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let mut app = App::clone(&self.app.load());
        app.call(req)
    }
}

/// `/healthz`: the report in JSON when the client accepts JSON, `ok`
/// otherwise.
pub fn health<B>(gate: &Gate, req: &Request<B>) -> Response<Body> {
    if !accepts_json(req) {
        return text(StatusCode::OK, "text/plain", "ok".into());
    }
    match serde_json::to_string(&gate.health()) {
        Ok(body) => text(StatusCode::OK, "application/json", body),
        Err(_) => text(StatusCode::OK, "text/plain", "ok".into()),
    }
}

/// `/readyz`: 200 once the provider is discovered (discovering it now if
/// needed), 503 while no login can be served.
pub async fn ready(gate: &Gate) -> Response<Body> {
    if gate.is_ready() || gate.warm_up().await.is_ok() {
        text(StatusCode::OK, "text/plain", "ready".into())
    } else {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "provider not discovered yet".into(),
        )
    }
}

fn accepts_json<B>(req: &Request<B>) -> bool {
    req.headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/json"))
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The `metricsAddress` listener's router.
#[derive(Clone)]
pub struct OpsService {
    live: Live,
    exporter: Arc<Exporter>,
}

impl OpsService {
    /// Serves `exporter` and the health of whatever `live` serves.
    pub fn new(live: Live, exporter: Arc<Exporter>) -> Self {
        Self { live, exporter }
    }
}

impl Service<Request<Incoming>> for OpsService {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = super::ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let gate = this.live.gate();
            Ok(match req.uri().path() {
                METRICS_PATH => {
                    let format = Format::from_accept(
                        req.headers()
                            .get(header::ACCEPT)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or(""),
                    );
                    match this.exporter.encode_as(format) {
                        Some(body) => text(StatusCode::OK, format.content_type(), body),
                        None => text(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "text/plain",
                            "metrics could not be encoded".into(),
                        ),
                    }
                }
                HEALTHZ_PATH => health(&gate, &req),
                READYZ_PATH => ready(&gate).await,
                _ => text(StatusCode::NOT_FOUND, "text/plain", "not found".into()),
            })
        })
    }
}
