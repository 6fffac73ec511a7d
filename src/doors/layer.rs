//! [`OidcLayer`]: the gate as a tower layer.
//!
//! The service builds the request view, asks the gate, and either answers
//! itself (redirects, denials, own endpoints) or passes the request on to the
//! inner service with its headers edited as the gate decided
//! ([`Gate::edit_upstream_headers`]: client identity headers out, the gate's
//! in). Forward-auth, auth_request and the reverse proxy are this layer over
//! different inner services. As tower-http's `async_require_authorization`,
//! the service fails only when the inner service does (`Error = S::Error`).
//!
//! ```no_run
//! # async fn example(gate: oidcgate::gate::Gate) {
//! use oidcgate::doors::{OidcLayer, ViewSource, TrustedProxies};
//! use tower::{Layer, ServiceExt};
//! let app = tower::service_fn(|req: http::Request<String>| async move {
//!     let user = req.headers().get("x-forwarded-user").cloned();
//!     Ok::<_, std::convert::Infallible>(http::Response::new(format!("hello {user:?}")))
//! });
//! let svc = OidcLayer::new(gate, TrustedProxies::default(), ViewSource::Direct).layer(app);
//! # let _ = svc;
//! # }
//! ```

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, header};
use http_body_util::BodyExt;
use tower::{Layer, Service};

use super::render;
use super::server::PeerAddr;
use super::trust::TrustedProxies;
use super::{Body, BoxError};
use crate::gate::{Decision, Gate, Reply, RequestView};
use crate::telemetry::metrics::Door;

/// Where the original request's method, scheme, host and target come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViewSource {
    /// The request itself (reverse proxy, tower layer); `X-Forwarded-Proto`
    /// and `-Host` are believed from trusted peers.
    Direct,
    /// `X-Forwarded-Method/-Proto/-Host/-Uri` from a trusted peer (Traefik
    /// ForwardAuth, Caddy forward_auth, nginx auth_request), falling back to
    /// the request itself when they are absent or the peer is not trusted.
    Forwarded,
}

/// The gate as a tower layer. Cheap to clone: the gate and the trusted
/// networks are shared.
///
/// The client's address comes from the [`PeerAddr`] request extension,
/// which oidcgate's own server inserts; a service that embeds the layer
/// inserts it from its connection info (`examples/axum.rs` shows how).
/// Without it every caller is one address to the per-address limits.
#[derive(Clone)]
pub struct OidcLayer {
    gate: Gate,
    trusted: Arc<TrustedProxies>,
    source: ViewSource,
    probe: bool,
    door: Door,
}

impl OidcLayer {
    /// A layer reading views from `source`.
    pub fn new(gate: Gate, trusted: TrustedProxies, source: ViewSource) -> Self {
        let door = match source {
            ViewSource::Direct => Door::Tower,
            ViewSource::Forwarded => Door::ForwardAuth,
        };
        Self {
            gate,
            trusted: Arc::new(trusted),
            source,
            probe: false,
            door,
        }
    }

    /// Probe mode (auth_request): never redirect, answer 401 instead.
    pub fn probe(mut self) -> Self {
        self.probe = true;
        self.door = Door::AuthRequest;
        self
    }

    /// The door this layer's decisions are counted under.
    pub fn door(mut self, door: Door) -> Self {
        self.door = door;
        self
    }
}

impl<S> Layer<S> for OidcLayer {
    type Service = OidcService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OidcService {
            layer: self.clone(),
            inner,
        }
    }
}

/// The service made by [`OidcLayer`].
#[derive(Clone)]
pub struct OidcService<S> {
    layer: OidcLayer,
    inner: S,
}

/// The future of [`OidcService`]: the gate's decision, then the inner
/// service's answer (or the gate's own). Fails only when the inner service
/// does.
pub struct ResponseFuture<E> {
    inner: Pin<Box<dyn Future<Output = Result<Response<Body>, E>> + Send>>,
}

impl<E> Future for ResponseFuture<E> {
    type Output = Result<Response<Body>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

/// The view of `req`, or the reply refusing it. The request's headers move
/// into the view (no copy); the caller gives them back with
/// `std::mem::take(&mut view.headers)` before passing the request on.
pub(crate) fn view_of<B>(
    req: &mut Request<B>,
    trusted: &TrustedProxies,
    source: ViewSource,
) -> Result<RequestView, Box<Reply>> {
    let peer = req
        .extensions()
        .get::<PeerAddr>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.0.ip());
    let owned_headers = std::mem::take(req.headers_mut());
    let headers = &owned_headers;
    let bad = |msg: &str| Box::new(Reply::error(http::StatusCode::BAD_REQUEST, msg, false));
    // RFC 9112 §3.2: two Host lines are refused; the gate would judge one
    // host while the upstream, which receives both, may pick the other.
    if headers.get_all(header::HOST).iter().nth(1).is_some() {
        return Err(bad("More than one Host header"));
    }
    // An absolute-form request line names its own host: one that differs
    // from `Host` would be judged for one host and forwarded for another.
    if let (Some(authority), Some(host)) = (req.uri().authority(), headers.get(header::HOST)) {
        if !authority
            .as_str()
            .as_bytes()
            .eq_ignore_ascii_case(host.as_bytes())
        {
            return Err(bad("The request line and Host name different hosts"));
        }
    }
    let believed = trusted.contains(peer);
    let fwd = |name: &str| {
        if believed {
            one_listed(headers, name).map_err(|()| bad(&format!("Conflicting {name} headers")))
        } else {
            Ok(None)
        }
    };
    let own_host = req
        .uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| headers.get(header::HOST).and_then(|v| v.to_str().ok()))
        .unwrap_or("localhost");
    let host = fwd("x-forwarded-host")?.unwrap_or(own_host);
    let https = match fwd("x-forwarded-proto")? {
        Some(p) => p.eq_ignore_ascii_case("https"),
        None => req.uri().scheme_str() == Some("https"),
    };
    let own_target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let mut verdict = false;
    let (method, target) = match source {
        ViewSource::Forwarded if believed => {
            match agreed(headers, &ORIGINAL_URI_HEADERS)
                .map_err(|()| bad("Conflicting original-URI headers"))?
            {
                Some(t) => {
                    verdict = true;
                    let m = agreed(headers, &ORIGINAL_METHOD_HEADERS)
                        .map_err(|()| bad("Conflicting original-method headers"))?
                        .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
                        .unwrap_or(Method::GET);
                    (m, t)
                }
                None => (req.method().clone(), own_target),
            }
        }
        _ => (req.method().clone(), own_target),
    };
    if !valid_host(host) {
        return Err(Box::new(Reply::error(
            http::StatusCode::BAD_REQUEST,
            "Invalid host",
            false,
        )));
    }
    let client_ip = trusted.client_ip(peer, headers);
    let mut view = RequestView::new(method, https, host, target, HeaderMap::new(), client_ip)
        .map_err(|e| bad(&format!("Invalid request: {e}")))?;
    view.verdict = verdict;
    // Host and target were copied out of the headers above; the map itself
    // moves into the view.
    view.headers = owned_headers;
    Ok(view)
}

/// Headers that carry the original request target to the forwarded doors:
/// Traefik and Caddy send `X-Forwarded-Uri`; nginx sends whichever its
/// `auth_request` location sets (`X-Forwarded-Uri` in our snippets,
/// `X-Original-URI` in oauth2-proxy's). Proxies pass client headers on, so
/// every line of every candidate must carry the same value.
const ORIGINAL_URI_HEADERS: [&str; 2] = ["x-forwarded-uri", "x-original-uri"];
/// Headers that carry the original method, under the same rule.
const ORIGINAL_METHOD_HEADERS: [&str; 2] = ["x-forwarded-method", "x-original-method"];

/// The one value all lines of the `names` headers agree on (`None` when
/// none is present); `Err` when two differ or one is not text. A value is
/// taken whole: a comma belongs to a URI, it does not separate a list.
fn agreed<'a>(headers: &'a HeaderMap, names: &[&str]) -> Result<Option<&'a str>, ()> {
    let mut found: Option<&str> = None;
    for name in names {
        for v in headers.get_all(*name) {
            let v = v.to_str().map_err(|_| ())?.trim();
            match found {
                Some(f) if f != v => return Err(()),
                _ => found = Some(v),
            }
        }
    }
    Ok(found.filter(|v| !v.is_empty()))
}

/// The one value of a list header (`X-Forwarded-Host`, `X-Forwarded-Proto`)
/// that every element of every line agrees on, compared ignoring ASCII case;
/// `None` when absent or empty. `Err` when two elements differ or a line is
/// not text: which one a proxy would use is not knowable, so "first wins"
/// could judge a different origin than the one the browser sees.
fn one_listed<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ()> {
    let mut found: Option<&str> = None;
    for line in headers.get_all(name) {
        for v in line.to_str().map_err(|_| ())?.split(',') {
            let v = v.trim();
            if v.is_empty() {
                continue;
            }
            match found {
                Some(f) if !f.eq_ignore_ascii_case(v) => return Err(()),
                _ => found = Some(v),
            }
        }
    }
    Ok(found)
}

/// A host (with optional port) that is safe to build URLs from.
fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']' | b'_')
        })
        && valid_port(h)
}

/// True when `h` has no port, or a port from 1 to 65535.
fn valid_port(h: &str) -> bool {
    let rest = match h.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((_, rest)) => rest,
            None => return false,
        },
        None => h,
    };
    match rest.rsplit_once(':') {
        None => true,
        Some((_, port)) => port.parse::<u16>().is_ok_and(|p| p != 0),
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for OidcService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: 'static,
    ReqB: Send + 'static,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        // Take the service that was driven to readiness; leave a clone behind.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture {
            inner: Box::pin(judge(self.layer.clone(), inner, req)),
        }
    }
}

/// Asks the gate about `req` and answers: the inner service's response for
/// an allowed request (its headers edited as the gate decided), the gate's
/// own answer otherwise.
async fn judge<S, ReqB, ResB>(
    layer: OidcLayer,
    mut inner: S,
    mut req: Request<ReqB>,
) -> Result<Response<Body>, S::Error>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    let security = layer.gate.policy().security_headers();
    let origin = req.headers().get(header::ORIGIN).cloned();
    let mut view = match view_of(&mut req, &layer.trusted, layer.source) {
        Ok(v) => v,
        Err(reply) => {
            let mut resp = render::reply(*reply);
            let https = req.uri().scheme_str() == Some("https");
            security
                .for_request(https, origin.as_ref())
                .apply(resp.headers_mut(), false);
            return Ok(resp);
        }
    };
    view.probe = layer.probe;
    let answer = security.for_request(view.https, origin.as_ref());
    match layer.gate.decide_at(layer.door, &view).await {
        Decision::Allow(allow) => {
            // The headers go back to the request that is passed on.
            *req.headers_mut() = std::mem::take(&mut view.headers);
            // Before the gate edits anything: a header the client names in
            // `Connection` must not take the gate's with it.
            super::hop::drop_connection_named(req.headers_mut());
            layer.gate.edit_upstream_headers(&allow, req.headers_mut());
            // The allow service answers with exactly these (the complete
            // set, empty values included); built once.
            req.extensions_mut()
                .insert(IdentityHeaders(allow.upstream_headers));
            req.extensions_mut().insert(Principal(allow.principal));
            // The inner service (the reverse proxy) forwards exactly what
            // was judged, without interpreting the request again.
            req.extensions_mut().insert(view);
            let resp = inner.call(req).await?;
            let mut resp = finish(resp, allow.set_cookies);
            answer.apply(resp.headers_mut(), false);
            Ok(resp)
        }
        other => {
            let frameable = matches!(&other, Decision::Respond(r) if r.frameable);
            let mut resp = render::not_allowed(other, layer.probe);
            answer.apply(resp.headers_mut(), frameable);
            Ok(resp)
        }
    }
}

/// The identity headers the gate computed for an allowed request, for doors
/// that answer with them (forward-auth, auth_request).
#[derive(Clone, Debug)]
pub(crate) struct IdentityHeaders(pub(crate) http::HeaderMap);

/// The authenticated identity, attached to requests the gate let through
/// (`None` on excluded paths). Inner services may read it from the extensions.
#[derive(Clone, Debug)]
pub struct Principal(pub Option<crate::policy::Identity>);

/// An answer carrying the gate's cookies must not be stored by a shared
/// cache: `public` and `s-maxage` go, `private` is added (unless the answer
/// is already `private` or `no-store`).
fn private_cache(h: &mut http::HeaderMap) {
    let directives: Vec<String> = h
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty())
        .collect();
    let name = |d: &str| {
        d.split('=')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    };
    let mut kept: Vec<String> = directives
        .into_iter()
        .filter(|d| !matches!(name(d).as_str(), "public" | "s-maxage"))
        .collect();
    if !kept
        .iter()
        .any(|d| matches!(name(d).as_str(), "private" | "no-store"))
    {
        kept.insert(0, "private".into());
    }
    if let Ok(v) = HeaderValue::from_str(&kept.join(", ")) {
        h.insert(header::CACHE_CONTROL, v);
    }
}

fn finish<B>(resp: Response<B>, set_cookies: Vec<HeaderValue>) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let (mut parts, body) = resp.into_parts();
    if !set_cookies.is_empty() {
        private_cache(&mut parts.headers);
    }
    for c in set_cookies {
        parts.headers.append(header::SET_COOKIE, c);
    }
    Response::from_parts(parts, into_body(body))
}

/// `body` as a door body: boxed, unless it already is one (the doors' own
/// inner services answer with [`Body`]; boxing it again would cost an
/// allocation and an indirection per request).
fn into_body<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let mut slot = Some(body);
    if let Some(own) = (&mut slot as &mut dyn std::any::Any).downcast_mut::<Option<Body>>() {
        if let Some(own) = own.take() {
            return own;
        }
    }
    match slot {
        Some(b) => b.map_err(Into::into).boxed_unsync(),
        None => super::full(Bytes::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future `f` returns.
    fn future_size<'a, Fut: std::future::Future>(
        _f: fn(&'a Gate, &'a RequestView) -> Fut,
    ) -> usize {
        std::mem::size_of::<Fut>()
    }

    /// Every request allocates and moves the layer's future, which holds
    /// `Gate::decide`'s: its cold paths (login, callback, logout, refresh,
    /// bearer) must stay boxed, or it grows to ~14 KiB.
    #[test]
    fn two_host_headers_are_refused() {
        let mut one = Request::builder()
            .uri("/x")
            .header(header::HOST, "app.example")
            .body(())
            .unwrap();
        assert!(view_of(&mut one, &TrustedProxies::default(), ViewSource::Direct).is_ok());
        let mut two = Request::builder()
            .uri("/x")
            .header(header::HOST, "app.example")
            .header(header::HOST, "evil.example")
            .body(())
            .unwrap();
        let refused = view_of(&mut two, &TrustedProxies::default(), ViewSource::Direct);
        assert_eq!(
            refused.err().map(|r| r.status),
            Some(http::StatusCode::BAD_REQUEST)
        );
    }

    #[test]
    fn a_request_line_host_other_than_host_is_refused() {
        let view = |uri: &str| {
            let mut req = Request::builder()
                .uri(uri)
                .header(header::HOST, "app.example")
                .body(())
                .unwrap();
            view_of(&mut req, &TrustedProxies::default(), ViewSource::Direct).map(|v| v.host)
        };
        assert_eq!(
            view("http://APP.example/x").ok().as_deref(),
            Some("APP.example")
        );
        assert_eq!(
            view("http://evil.example/x").err().map(|r| r.status),
            Some(http::StatusCode::BAD_REQUEST)
        );
    }

    #[test]
    fn a_host_port_must_be_a_port() {
        for ok in [
            "app.example",
            "app.example:8443",
            "[::1]",
            "[::1]:65535",
            "127.0.0.1:1",
        ] {
            assert!(valid_host(ok), "{ok}");
        }
        for bad in [
            "app.example:99999",
            "app.example:0",
            "app.example:",
            "a:b:c",
            "[::1",
            "[::1]:x",
        ] {
            assert!(!valid_host(bad), "{bad}");
        }
    }

    #[test]
    fn the_decide_future_stays_small() {
        let size = future_size(Gate::decide);
        assert!(size <= 4096, "Gate::decide's future is {size} bytes");
    }
}
