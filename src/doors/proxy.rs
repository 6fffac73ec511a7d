//! The reverse-proxy service: forwards allowed requests to `upstream`.
//!
//! Bodies are streamed both ways; hop-by-hop headers are removed; WebSocket
//! requests (and no other `Upgrade`) are upgraded end to end; client-address
//! headers carry what the gate vouches for. The request target
//! sent upstream is the gate's normalised path, so what the policy judged is
//! exactly what the upstream serves.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Uri, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tower::Service;

use super::hop::{is_websocket_upgrade, strip_hop_by_hop};
use super::layer::view_of;
use super::trust::TrustedProxies;
use super::{Body, full, render};
use crate::gate::Error;

/// Time allowed to connect to the upstream.
pub const DEFAULT_UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

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
    type Error = Infallible;
    type Future =
        Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send + 'static>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
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
            None => match view_of(&mut req, &self.trusted, super::ViewSource::Direct) {
                Ok(mut v) => {
                    *req.headers_mut() = std::mem::take(&mut v.headers);
                    v
                }
                Err(refusal) => return render::reply(*refusal),
            },
        };
        let base = self.upstream.path().trim_end_matches('/');
        let target = format!("{base}{}", view.path_and_query());
        let mut parts = self.upstream.clone().into_parts();
        parts.path_and_query = match target.parse() {
            Ok(pq) => Some(pq),
            Err(_) => return render::error(Error::UnforwardableTarget),
        };
        let Ok(uri) = Uri::from_parts(parts) else {
            return render::error(Error::UpstreamUnreachable);
        };

        let req_peer = req.extensions().get::<super::PeerAddr>().map(|p| p.0.ip());
        // Only WebSocket is tunnelled: any other upgrade (h2c on an excluded
        // path would be a tunnel past the gate) goes on as a plain request.
        let websocket = is_websocket_upgrade(req.headers());
        let client_upgrade = websocket.then(|| hyper::upgrade::on(&mut req));
        *req.uri_mut() = uri;
        let headers = req.headers_mut();
        strip_hop_by_hop(headers);
        if websocket {
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        }
        let peer_trusted = req_peer.is_some_and(|p| self.trusted.contains(p));
        let hop = req_peer.unwrap_or(view.client_ip);
        set_forwarded(req.headers_mut(), &view, hop, peer_trusted);

        let mut resp = match self.client.request(req).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %crate::doors::server::chain(&e), "upstream unreachable");
                return render::error(Error::UpstreamUnreachable);
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

/// Client-address headers: what the client sent is replaced by what the gate
/// vouches for (a trusted proxy's chain is extended instead).
const CLIENT_ADDRESS_HEADERS: &[&str] = &["forwarded", "x-real-ip", "true-client-ip"];

/// Sets `X-Forwarded-For/-Proto/-Host`, `X-Real-IP` and `Forwarded` for the
/// upstream. `X-Forwarded-For` and `Forwarded` from a trusted peer are
/// extended with that peer's address (`hop`); from anyone else they are
/// replaced. `X-Real-IP` is the client address the gate judged;
/// `True-Client-IP` is removed.
fn set_forwarded(
    h: &mut HeaderMap,
    view: &crate::gate::RequestView,
    hop: std::net::IpAddr,
    peer_trusted: bool,
) {
    let joined = |h: &HeaderMap, name: &str| -> Option<String> {
        let parts: Vec<&str> = h
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect();
        (peer_trusted && !parts.is_empty()).then(|| parts.join(", "))
    };
    let hop_text = hop.to_string();
    let xff = match joined(h, "x-forwarded-for") {
        Some(prev) => format!("{prev}, {hop_text}"),
        None => hop_text,
    };
    let proto = if view.https { "https" } else { "http" };
    let node = match hop {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => format!("\"[{v6}]\""),
    };
    let element = format!("for={node};proto={proto}");
    // A host with a port or brackets is not an RFC 7239 token: quote it.
    let element = if view
        .host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
    {
        format!("{element};host={}", view.host)
    } else {
        format!("{element};host=\"{}\"", view.host)
    };
    let forwarded = match joined(h, "forwarded") {
        Some(prev) => format!("{prev}, {element}"),
        None => element,
    };
    for name in CLIENT_ADDRESS_HEADERS {
        h.remove(*name);
    }
    h.remove("x-forwarded-for");
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    put("x-forwarded-for", &xff);
    put("forwarded", &forwarded);
    put("x-real-ip", &view.client_ip.to_string());
    put("x-forwarded-proto", proto);
    put("x-forwarded-host", &view.host);
}
