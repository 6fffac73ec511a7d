//! [`Served`]: a server the test started on an ephemeral loopback port,
//! stopped when dropped. One harness for every integration test that runs
//! the gate (`oidcgate::run`) or anything else with the same
//! `(listener, shutdown)` shape.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The shutdown signal handed to the served future.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A server running on `127.0.0.1:PORT`; shut down when dropped.
pub struct Served {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Served {
    /// Binds an ephemeral loopback port and spawns `serve(listener, shutdown)`.
    pub async fn start<F, Fut>(serve: F) -> Served
    where
        F: FnOnce(TcpListener, Shutdown) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        Served::on(listener, serve)
    }

    /// As [`Served::start`] on a listener the caller bound.
    pub fn on<F, Fut>(listener: TcpListener, serve: F) -> Served
    where
        F: FnOnce(TcpListener, Shutdown) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(
            listener,
            Box::pin(async {
                let _ = rx.await;
            }),
        ));
        Served {
            addr,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // Open keep-alive connections would hold graceful shutdown for its
        // whole grace period; the runtime of the test ends anyway.
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
