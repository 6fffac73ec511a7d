//! The reverse-proxy service: forwards allowed requests to `upstream`.
//!
//! Bodies are streamed both ways; hop-by-hop headers are removed; WebSocket
//! (and other `Upgrade`) requests are upgraded end to end. The request target
//! sent upstream is the gate's normalised path, so what the policy judged is
//! exactly what the upstream serves.

use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Uri, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tower::Service;

use super::layer::view_of;
use super::trust::TrustedProxies;
use super::{Body, BoxError, full};

/// Time allowed to connect to the upstream.
pub const DEFAULT_UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Headers that describe one connection and never travel through a proxy.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Forwards requests to one upstream origin.
#[derive(Clone)]
pub struct ProxyService {
    client: Client<HttpConnector, Incoming>,
    upstream: Uri,
    trusted: TrustedProxies,
}

impl ProxyService {
    /// A proxy to `upstream` (`http://host:port`, optionally with a base path).
    pub fn new(upstream: Uri, trusted: TrustedProxies) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(DEFAULT_UPSTREAM_CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Self {
            client,
            upstream,
            trusted,
        }
    }
}

impl Service<Request<Incoming>> for ProxyService {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = super::ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.forward(req).await) })
    }
}

impl ProxyService {
    async fn forward(self, mut req: Request<Incoming>) -> Response<Body> {
        // The gate's layer hands over the view it judged; used on its own,
        // the proxy interprets the request itself.
        let view = match req.extensions_mut().remove::<crate::gate::RequestView>() {
            Some(v) => v,
            None => match view_of(&req, &self.trusted, super::ViewSource::Direct) {
                Ok(v) => v,
                Err(_) => return status(StatusCode::BAD_REQUEST),
            },
        };
        let base = self.upstream.path().trim_end_matches('/');
        let target = format!("{base}{}", view.path_and_query());
        let mut parts = self.upstream.clone().into_parts();
        parts.path_and_query = match target.parse() {
            Ok(pq) => Some(pq),
            Err(_) => return status(StatusCode::BAD_REQUEST),
        };
        let Ok(uri) = Uri::from_parts(parts) else {
            return status(StatusCode::BAD_GATEWAY);
        };

        let req_peer = req.extensions().get::<super::PeerAddr>().map(|p| p.0.ip());
        let upgrade = upgrade_protocol(req.headers());
        let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
        *req.uri_mut() = uri;
        let headers = req.headers_mut();
        strip_hop_by_hop(headers);
        if let Some(proto) = &upgrade {
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(header::UPGRADE, proto.clone());
        }
        let peer_trusted = headers_peer_trusted(&self.trusted, req_peer);
        append_forwarded(req.headers_mut(), &view, peer_trusted);

        let mut resp = match self.client.request(req).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %crate::doors::server::chain(&e), "upstream unreachable");
                return status(StatusCode::BAD_GATEWAY);
            }
        };
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            if let Some(client_upgrade) = client_upgrade {
                let upstream_upgrade = hyper::upgrade::on(&mut resp);
                tokio::spawn(async move {
                    match tokio::try_join!(client_upgrade, upstream_upgrade) {
                        Ok((c, u)) => {
                            let _ = tokio::io::copy_bidirectional(
                                &mut TokioIo::new(c),
                                &mut TokioIo::new(u),
                            )
                            .await;
                        }
                        Err(e) => tracing::debug!(error = %e, "upgrade failed"),
                    }
                });
                let (parts, _) = resp.into_parts();
                return Response::from_parts(parts, full(""));
            }
        }
        let (mut parts, body) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        Response::from_parts(parts, body.map_err(Into::into).boxed_unsync())
    }
}

fn status(s: StatusCode) -> Response<Body> {
    let mut r = Response::new(full(s.canonical_reason().unwrap_or("")));
    *r.status_mut() = s;
    r
}

/// The protocol asked for in `Upgrade`, if the request is an upgrade.
fn upgrade_protocol(h: &HeaderMap) -> Option<HeaderValue> {
    let conn_upgrade = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        });
    conn_upgrade
        .then(|| h.get(header::UPGRADE).cloned())
        .flatten()
}

/// Removes hop-by-hop headers, including those named in `Connection`.
fn strip_hop_by_hop(h: &mut HeaderMap) {
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|t| t.trim().to_ascii_lowercase()))
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    for n in named {
        h.remove(n);
    }
    for n in HOP_BY_HOP {
        h.remove(*n);
    }
}

fn headers_peer_trusted(trusted: &TrustedProxies, peer: Option<std::net::IpAddr>) -> bool {
    peer.is_some_and(|p| trusted.contains(p))
}

/// Sets X-Forwarded-For/-Proto/-Host for the upstream. An existing
/// X-Forwarded-For chain is kept only when it came from a trusted proxy.
fn append_forwarded(h: &mut HeaderMap, view: &crate::gate::RequestView, peer_trusted: bool) {
    let ip = view.client_ip.to_string();
    let xff = match h.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prev) if peer_trusted && !prev.is_empty() => format!("{prev}, {ip}"),
        _ => ip,
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        h.insert("x-forwarded-for", v);
    }
    h.insert(
        "x-forwarded-proto",
        HeaderValue::from_static(if view.https { "https" } else { "http" }),
    );
    if let Ok(v) = HeaderValue::from_str(&view.host) {
        h.insert("x-forwarded-host", v);
    }
}
