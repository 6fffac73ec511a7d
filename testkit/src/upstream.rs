//! An upstream HTTP server that describes every request it receives.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{
    Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection,
};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use hyper::Request;
use hyper::body::Incoming;
use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;
use tower::ServiceExt as _;

use crate::server;

/// An HTTP server on `127.0.0.1` that answers every request with `200` and
/// a JSON description of it:
///
/// ```json
/// {"method": "GET", "path": "/a", "query": "x=1",
///  "headers": {"host": "127.0.0.1:1234", "accept": "*/*"}, "body": ""}
/// ```
///
/// Header names are lowercase; repeated headers are joined with `", "`;
/// `query` is the raw query string (empty when absent) and `body` the request
/// body decoded as UTF-8 (lossily). A WebSocket upgrade request to `/ws` is
/// accepted instead, and every text or binary message is echoed back.
///
/// The server stops when this value is dropped.
pub struct EchoUpstream {
    addr: SocketAddr,
    requests: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for EchoUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EchoUpstream")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for EchoUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EchoUpstream {
    /// Binds `127.0.0.1:0` and starts serving.
    pub async fn start() -> EchoUpstream {
        let (listener, addr) = server::bind_loopback().await;
        let requests = Arc::new(AtomicU64::new(0));
        let router = Router::new()
            .route("/ws", any(ws_or_echo))
            .fallback(echo)
            .with_state(requests.clone());
        let task = server::spawn(listener, move |req: Request<Incoming>| {
            let router = router.clone();
            async move {
                let response = router.oneshot(req).await;
                Ok::<_, io::Error>(response.unwrap_or_else(|never| match never {}))
            }
        });
        EchoUpstream {
            addr,
            requests,
            task,
        }
    }

    /// The socket address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL, `http://127.0.0.1:PORT` without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The WebSocket echo URL, `ws://127.0.0.1:PORT/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// How many requests (including WebSocket upgrades) have arrived.
    pub fn request_count(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

type Requests = Arc<AtomicU64>;

fn describe(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Value {
    let mut names = Map::new();
    for name in headers.keys() {
        let joined = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(", ");
        names.insert(name.as_str().to_owned(), Value::from(joined));
    }
    json!({
        "method": method.as_str(),
        "path": uri.path(),
        "query": uri.query().unwrap_or_default(),
        "headers": names,
        "body": String::from_utf8_lossy(body),
    })
}

async fn echo(
    axum::extract::State(requests): axum::extract::State<Requests>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    requests.fetch_add(1, Ordering::Relaxed);
    axum::Json(describe(&method, &uri, &headers, &body)).into_response()
}

async fn ws_or_echo(
    state: axum::extract::State<Requests>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match upgrade {
        Ok(upgrade) => {
            state.0.fetch_add(1, Ordering::Relaxed);
            upgrade.on_upgrade(echo_socket).into_response()
        }
        Err(_) => echo(state, method, uri, headers, body).await,
    }
}

async fn echo_socket(mut socket: WebSocket) {
    while let Some(Ok(msg)) = socket.recv().await {
        match msg {
            Message::Text(_) | Message::Binary(_) => {
                if socket.send(msg).await.is_err() {
                    break;
                }
            }
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => {}
        }
    }
}
