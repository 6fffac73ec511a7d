//! A tiny HTTP server loop shared by the test servers.
//!
//! Every accepted connection is served on a task owned by the accept task, so
//! aborting the returned handle tears down the listener and all open
//! connections at once. A handler that returns `Err` makes the connection
//! close without a response, which is how "server down" faults are simulated.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use axum::body::Body;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// Binds a listener on an ephemeral loopback port.
pub(crate) async fn bind_loopback() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("listener address");
    (listener, addr)
}

/// Serves `handler` on `listener` until the returned task is aborted.
pub(crate) fn spawn<F, Fut>(listener: TcpListener, handler: F) -> JoinHandle<()>
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Body>, io::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _peer)) = accepted else {
                        // Transient accept errors (e.g. too many open files):
                        // back off briefly instead of spinning.
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let handler = handler.clone();
                    connections.spawn(async move {
                        let service = hyper::service::service_fn(handler);
                        let builder = auto::Builder::new(TokioExecutor::new());
                        // Connection-level errors (client went away, injected
                        // drops) are expected in tests and not reported.
                        let _ = builder
                            .serve_connection_with_upgrades(TokioIo::new(stream), service)
                            .await;
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    })
}
