//! The listener's router: health by path, the auth_request door, and either
//! the reverse proxy (when `upstream` is set) or the forward-auth door.

use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use tower::{Layer, Service, ServiceExt};
use tracing::Instrument;

use super::allow::AllowService;
use super::layer::{OidcLayer, OidcService, ViewSource};
use super::proxy::ProxyService;
use super::server::PeerAddr;
use super::trust::TrustedProxies;
use super::{Body, BoxError, full};
use crate::gate::Gate;
use crate::telemetry::{RequestIds, valid_request_id};

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
    /// The listener's protocols and limits.
    pub server: super::ServerLimits,
}

/// The request id header: believed from trusted proxies, otherwise set by
/// the gate; passed upstream and returned to the client.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The router serving every door on one listener.
#[derive(Clone)]
pub struct App {
    gate: Gate,
    auth_request: OidcService<AllowService>,
    main: Main,
    trusted: TrustedProxies,
    ids: std::sync::Arc<RequestIds>,
}

#[derive(Clone)]
enum Main {
    ForwardAuth(OidcService<AllowService>),
    Proxy(Box<OidcService<ProxyService>>),
}

impl App {
    /// Builds the router for `gate`.
    pub fn new(gate: Gate, settings: AppSettings) -> Self {
        let policy = gate.policy().clone();
        let trusted = settings.trusted.clone();
        let auth_request = OidcLayer::new(
            gate.clone(),
            settings.trusted.clone(),
            ViewSource::Forwarded,
        )
        .probe()
        .layer(AllowService::auth_request(policy.clone()));
        let main = match settings.upstream {
            Some(up) => Main::Proxy(Box::new(
                OidcLayer::new(gate.clone(), settings.trusted.clone(), ViewSource::Direct)
                    .door(crate::telemetry::metrics::Door::Proxy)
                    .layer(ProxyService::new(up, settings.trusted)),
            )),
            None => Main::ForwardAuth(
                OidcLayer::new(gate.clone(), settings.trusted, ViewSource::Forwarded)
                    .layer(AllowService::forward_auth(policy)),
            ),
        };
        Self {
            gate,
            auth_request,
            main,
            trusted,
            ids: std::sync::Arc::new(RequestIds::new()),
        }
    }

    /// The request's id: a trusted proxy's `X-Request-Id`, else a new one.
    fn request_id<B>(&self, req: &Request<B>) -> HeaderValue {
        let believed = req
            .extensions()
            .get::<PeerAddr>()
            .is_some_and(|p| self.trusted.contains(p.0.ip()));
        let given = believed
            .then(|| req.headers().get(REQUEST_ID_HEADER))
            .flatten()
            .filter(|v| v.to_str().is_ok_and(valid_request_id));
        match given {
            Some(v) => v.clone(),
            None => HeaderValue::from_str(&self.ids.next_id())
                .unwrap_or_else(|_| HeaderValue::from_static("0")),
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

    fn call(&mut self, mut req: Request<Incoming>) -> Self::Future {
        let this = self.clone();
        let id = this.request_id(&req);
        req.headers_mut().insert(REQUEST_ID_HEADER, id.clone());
        let span = tracing::info_span!("request", request_id = id.to_str().unwrap_or(""));
        let answer = async move {
            let backchannel = this.gate.settings().backchannel_path.as_deref();
            if req.method() == http::Method::POST && backchannel == Some(req.uri().path()) {
                return Ok(this.secured(this.backchannel(req).await));
            }
            match req.uri().path() {
                HEALTHZ_PATH => Ok(this.secured(super::ops::health(&this.gate, &req))),
                READYZ_PATH => Ok(this.secured(super::ops::ready(&this.gate).await)),
                AUTH_PATH => this.auth_request.oneshot(req).await,
                _ => match this.main {
                    Main::ForwardAuth(s) => s.oneshot(req).await,
                    Main::Proxy(s) => (*s).oneshot(req).await,
                },
            }
        };
        Box::pin(
            async move {
                let mut resp = answer.await?;
                resp.headers_mut().insert(REQUEST_ID_HEADER, id);
                Ok(resp)
            }
            .instrument(span),
        )
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

    /// The gate this router serves.
    pub fn gate(&self) -> &Gate {
        &self.gate
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
