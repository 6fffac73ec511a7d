//! The listener's router: health by path, the auth_request door, and either
//! the reverse proxy (when `upstream` is set) or the forward-auth door.

use std::task::{Context, Poll};

use http::{Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use tower::{Layer, Service, ServiceExt};

use super::allow::AllowService;
use super::layer::{OidcLayer, OidcService, ViewSource};
use super::proxy::ProxyService;
use super::trust::TrustedProxies;
use super::{Body, BoxError, full};
use crate::gate::Gate;

/// Liveness path.
pub const HEALTHZ_PATH: &str = "/healthz";
/// Readiness path (200 once the provider was discovered).
pub const READYZ_PATH: &str = "/readyz";
/// oauth2-proxy's auth_request path.
pub const AUTH_PATH: &str = "/oauth2/auth";

/// Settings of the listener's doors.
#[derive(Clone, Debug, Default)]
pub struct AppSettings {
    /// Reverse-proxy target; `None` = forward-auth mode.
    pub upstream: Option<Uri>,
    /// Peers whose X-Forwarded-* are believed.
    pub trusted: TrustedProxies,
}

/// The router serving every door on one listener.
#[derive(Clone)]
pub struct App {
    gate: Gate,
    auth_request: OidcService<AllowService>,
    main: Main,
}

#[derive(Clone)]
enum Main {
    ForwardAuth(OidcService<AllowService>),
    Proxy(OidcService<ProxyService>),
}

impl App {
    /// Builds the router for `gate`.
    pub fn new(gate: Gate, settings: AppSettings) -> Self {
        let policy = gate.policy().clone();
        let auth_request = OidcLayer::new(
            gate.clone(),
            settings.trusted.clone(),
            ViewSource::Forwarded,
        )
        .probe()
        .layer(AllowService::auth_request(policy.clone()));
        let main = match settings.upstream {
            Some(up) => Main::Proxy(
                OidcLayer::new(gate.clone(), settings.trusted.clone(), ViewSource::Direct)
                    .layer(ProxyService::new(up, settings.trusted)),
            ),
            None => Main::ForwardAuth(
                OidcLayer::new(gate.clone(), settings.trusted, ViewSource::Forwarded)
                    .layer(AllowService::forward_auth(policy)),
            ),
        };
        Self {
            gate,
            auth_request,
            main,
        }
    }
}

impl Service<Request<Incoming>> for App {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = super::ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let backchannel = this.gate.settings().backchannel_path.as_deref();
            if req.method() == http::Method::POST && backchannel == Some(req.uri().path()) {
                return Ok(this.secured(this.backchannel(req).await));
            }
            match req.uri().path() {
                HEALTHZ_PATH => Ok(this.secured(text(StatusCode::OK, "ok"))),
                READYZ_PATH => {
                    let ready = this.gate.is_ready() || this.gate.warm_up().await.is_ok();
                    Ok(this.secured(if ready {
                        text(StatusCode::OK, "ready")
                    } else {
                        text(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "provider not discovered yet",
                        )
                    }))
                }
                AUTH_PATH => this.auth_request.oneshot(req).await,
                _ => match this.main {
                    Main::ForwardAuth(s) => s.oneshot(req).await,
                    Main::Proxy(s) => s.oneshot(req).await,
                },
            }
        })
    }
}

impl App {
    /// `resp` with the security headers (answers outside the doors; no
    /// request view, so no HSTS and no CORS).
    fn secured(&self, mut resp: Response<Body>) -> Response<Body> {
        self.gate
            .policy()
            .security_headers()
            .for_request(false, None)
            .apply(resp.headers_mut(), false);
        resp
    }

    /// The provider's server-to-server logout POST: read the (capped) body
    /// and hand it to the engine.
    async fn backchannel(&self, req: Request<Incoming>) -> Response<Body> {
        use http_body_util::BodyExt;
        let limited =
            http_body_util::Limited::new(req.into_body(), crate::gate::MAX_LOGOUT_BODY_BYTES);
        match limited.collect().await {
            Ok(body) => super::render::not_allowed(
                self.gate.backchannel_logout(&body.to_bytes()).await,
                false,
            ),
            Err(_) => text(StatusCode::PAYLOAD_TOO_LARGE, "logout request too large"),
        }
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    r
}
