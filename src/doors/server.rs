//! The listener: accept loop, connection limits, header timeout and graceful
//! shutdown. Knows nothing about authentication.
//!
//! Connections speak HTTP/1.1 (with upgrades). With [`ServerLimits::http2`]
//! set, every connection is first sniffed for the HTTP/2 preface (cleartext
//! h2c with prior knowledge) and served by whichever protocol it speaks;
//! without it, no connection pays for the sniffing.
//!
//! Limits (defaults in the `DEFAULT_*` constants):
//!
//! - at most [`ServerLimits::max_connections`] connections are served at
//!   once; further connections wait in the kernel's accept queue until one
//!   closes, so memory is bounded however many clients connect;
//! - a client gets [`ServerLimits::header_read_timeout`] to send a complete
//!   request head; a client that is too slow gets `408 Request Timeout` and
//!   the connection is closed. The same clock runs while a keep-alive
//!   connection waits for its next request, so an idle connection is closed
//!   (without an answer) after that time;
//! - a request head larger than [`ServerLimits::max_header_bytes`] or with
//!   more than [`MAX_HEADERS`] header fields is answered
//!   `431 Request Header Fields Too Large`.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tower::{Service, ServiceExt};

use super::{Body, BoxError};

/// Most connections served at once; further accepts wait. With the
/// per-connection memory of an idle keep-alive connection (about 20 KiB:
/// hyper's read and write buffers and the task), this bounds the
/// listener's connection memory to about 200 MiB.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Time a client has to send a complete request head, and the longest a
/// keep-alive connection stays open waiting for its next request.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head (request line and header fields) read; larger heads
/// are answered 431. Three-cookie sessions take about 8 KiB.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;
/// Most header fields in one request; more are answered 431. This is
/// hyper's own limit and is not configurable: a configured count moves the
/// parser's header array from the stack to the heap for every request.
pub const MAX_HEADERS: usize = 100;
/// Time in-flight requests get to finish at shutdown.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(15);

/// What the listener accepts and how long it waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    /// Most connections served at once.
    pub max_connections: usize,
    /// Time to send a request head; also the keep-alive idle timeout.
    pub header_read_timeout: Duration,
    /// Largest request head, in bytes (at least 8 KiB).
    pub max_header_bytes: usize,
    /// Also serve HTTP/2 over cleartext (h2c, prior knowledge).
    pub http2: bool,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            http2: false,
        }
    }
}

/// The peer address of the connection a request arrived on.
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub SocketAddr);

/// hyper's smallest read buffer (it refuses a smaller one).
const MIN_BUF_SIZE: usize = 8192;

/// The answer to a client that did not send its request head in time.
const REQUEST_TIMEOUT: &[u8] =
    b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";

/// Serves `service` on `listener` with the default [`ServerLimits`] until
/// `shutdown` completes, then lets in-flight requests finish (bounded by
/// [`DEFAULT_SHUTDOWN_GRACE`]).
pub async fn serve<S>(listener: TcpListener, service: S, shutdown: impl Future<Output = ()>)
where
    S: Service<Request<Incoming>, Response = Response<Body>, Error = BoxError>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    serve_with(listener, service, ServerLimits::default(), shutdown).await;
}

/// As [`serve`], with explicit limits.
pub async fn serve_with<S>(
    listener: TcpListener,
    service: S,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) where
    S: Service<Request<Incoming>, Response = Response<Body>, Error = BoxError>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let limit = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    // Every connection task holds a receiver; shutdown is announced by a
    // send and is over when every receiver is gone.
    let (stop, _) = tokio::sync::watch::channel(());
    let mut h1 = hyper::server::conn::http1::Builder::new();
    h1.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes)
        .max_buf_size(limits.max_header_bytes.max(MIN_BUF_SIZE));
    let auto = limits.http2.then(|| {
        let mut b = auto::Builder::new(TokioExecutor::new());
        b.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(limits.max_header_bytes.max(MIN_BUF_SIZE));
        b.http2().timer(TokioTimer::new());
        b
    });
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let stream = Arc::new(Socket {
            stream,
            unanswered: AtomicBool::new(false),
        });
        let io = TokioIo::new(SharedStream(stream.clone()));
        let svc = service.clone();
        let hyper_svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(PeerAddr(peer));
            let svc = svc.clone();
            async move {
                match svc.oneshot(req).await {
                    Ok(resp) => Ok::<_, Infallible>(resp),
                    Err(e) => {
                        tracing::error!(error = %e, "request failed inside the gate");
                        Ok(super::render::error(crate::gate::Error::Internal(
                            e.to_string(),
                        )))
                    }
                }
            }
        });
        let mut stopping = stop.subscribe();
        match &auto {
            None => {
                let conn = h1.serve_connection(io, hyper_svc).with_upgrades();
                tokio::spawn(async move {
                    tokio::pin!(conn);
                    let res = tokio::select! {
                        biased;
                        r = conn.as_mut() => r,
                        _ = stopping.changed() => {
                            conn.as_mut().graceful_shutdown();
                            conn.await
                        }
                    };
                    if let Err(e) = res {
                        ended(&stream, &e);
                    }
                    drop((permit, stopping));
                });
            }
            Some(auto) => {
                let conn = auto
                    .serve_connection_with_upgrades(io, hyper_svc)
                    .into_owned();
                tokio::spawn(async move {
                    tokio::pin!(conn);
                    let res = tokio::select! {
                        biased;
                        r = conn.as_mut() => r,
                        _ = stopping.changed() => {
                            conn.as_mut().graceful_shutdown();
                            conn.await
                        }
                    };
                    if let Err(e) = res {
                        match e.downcast_ref::<hyper::Error>() {
                            Some(e) => ended(&stream, e),
                            None => {
                                tracing::debug!(error = %chain(e.as_ref()), "connection ended with an error")
                            }
                        }
                    }
                    drop((permit, stopping));
                });
            }
        }
    }
    drop(listener);
    let _ = stop.send(());
    tokio::select! {
        () = stop.closed() => {}
        () = tokio::time::sleep(DEFAULT_SHUTDOWN_GRACE) => {
            tracing::warn!("shutdown grace period over; dropping remaining connections");
        }
    }
}

/// Logs how a connection ended, and answers 408 to a client that started a
/// request head and did not finish it in time (hyper closes such connections
/// without an answer). An idle keep-alive connection is closed silently.
fn ended(socket: &Socket, e: &hyper::Error) {
    if e.is_timeout() {
        if socket.unanswered.load(Ordering::Relaxed) {
            // Nothing was written since these bytes arrived, so the send
            // buffer is empty: this short write cannot block or be partial.
            let _ = socket.stream.try_write(REQUEST_TIMEOUT);
            tracing::debug!("request head not received in time: 408");
        }
    } else {
        tracing::debug!(error = %chain(e), "connection ended with an error");
    }
}

/// A connection's socket, shared between hyper and the listener so that the
/// listener can still answer 408 after hyper gave up on a slow head.
struct Socket {
    stream: TcpStream,
    /// Bytes arrived since the last write: a request head was started.
    unanswered: AtomicBool,
}

/// hyper's handle on a [`Socket`].
struct SharedStream(Arc<Socket>);

impl AsyncRead for SharedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let s = &self.0;
        loop {
            ready!(s.stream.poll_read_ready(cx))?;
            match s.stream.try_read_buf(buf) {
                Ok(n) => {
                    if n > 0 {
                        s.unanswered.store(true, Ordering::Relaxed);
                    }
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for SharedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let s = &self.0;
        s.unanswered.store(false, Ordering::Relaxed);
        loop {
            ready!(s.stream.poll_write_ready(cx))?;
            match s.stream.try_write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return Poll::Ready(r),
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let s = &self.0;
        s.unanswered.store(false, Ordering::Relaxed);
        loop {
            ready!(s.stream.poll_write_ready(cx))?;
            match s.stream.try_write_vectored(bufs) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return Poll::Ready(r),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(socket2::SockRef::from(&self.0.stream).shutdown(std::net::Shutdown::Write))
    }
}

/// Flattens an error and its sources into one line.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A listener answering every request with an empty 200, with `limits`.
    async fn start(limits: ServerLimits) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let svc = tower::service_fn(|_req: Request<Incoming>| async {
            Ok::<_, BoxError>(Response::new(super::super::full("")))
        });
        tokio::spawn(serve_with(listener, svc, limits, async {
            let _ = rx.await;
        }));
        (addr, tx)
    }

    /// Everything the server sends until it closes the connection.
    async fn read_to_close(s: &mut TcpStream) -> String {
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    const GET: &[u8] = b"GET / HTTP/1.1\r\nhost: a\r\n\r\n";

    #[tokio::test(start_paused = true)]
    async fn a_head_sent_one_byte_per_second_gets_408() {
        let (addr, _stop) = start(ServerLimits::default()).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        let started = tokio::time::Instant::now();
        // One byte a second until the server answers (the head below takes
        // longer than the timeout).
        for b in b"GET / HTTP/1.1\r\nhost: a\r\nx-slow: 1234567890\r\n" {
            s.write_all(&[*b]).await.unwrap();
            tokio::select! {
                r = s.readable() => { r.unwrap(); break; }
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        let answer = read_to_close(&mut s).await;
        assert!(answer.starts_with("HTTP/1.1 408 "), "{answer:?}");
        // Not before the timeout (time only moves forward to a timer's
        // deadline, so this bound holds however the runtime advanced it).
        assert!(started.elapsed() >= DEFAULT_HEADER_READ_TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_keep_alive_connections_are_closed_after_the_timeout() {
        let (addr, _stop) = start(ServerLimits::default()).await;
        let mut conns = Vec::new();
        for _ in 0..1000 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(GET).await.unwrap();
            let mut buf = [0u8; 512];
            let n = s.read(&mut buf).await.unwrap();
            assert!(buf[..n].starts_with(b"HTTP/1.1 200 "));
            conns.push(s);
        }
        let started = tokio::time::Instant::now();
        for s in &mut conns {
            // closed without an answer: the client sent nothing
            assert_eq!(read_to_close(s).await, "");
        }
        assert!(started.elapsed() <= DEFAULT_HEADER_READ_TIMEOUT + Duration::from_secs(1));
    }

    // Real time: with paused time the runtime would jump to the next timer
    // whenever it waits for the sockets, closing the held connections early.
    #[tokio::test]
    async fn connections_beyond_the_limit_wait_for_a_free_slot() {
        let limits = ServerLimits {
            max_connections: 2,
            ..ServerLimits::default()
        };
        let (addr, _stop) = start(limits).await;
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(GET).await.unwrap();
            let mut buf = [0u8; 512];
            assert!(s.read(&mut buf).await.unwrap() > 0);
            held.push(s);
        }
        let mut third = TcpStream::connect(addr).await.unwrap();
        third.write_all(GET).await.unwrap();
        let mut buf = [0u8; 512];
        let early = tokio::time::timeout(Duration::from_millis(300), third.read(&mut buf)).await;
        assert!(
            early.is_err(),
            "the third connection was served beyond the limit"
        );
        drop(held.pop());
        let n = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200 "));
    }

    #[tokio::test(start_paused = true)]
    async fn oversized_heads_get_431() {
        let (addr, _stop) = start(ServerLimits::default()).await;
        // one header field larger than the limit
        let mut s = TcpStream::connect(addr).await.unwrap();
        let big = "a".repeat(DEFAULT_MAX_HEADER_BYTES + 1);
        let req = format!("GET / HTTP/1.1\r\nhost: a\r\ncookie: {big}\r\n\r\n");
        let _ = s.write_all(req.as_bytes()).await;
        assert!(read_to_close(&mut s).await.starts_with("HTTP/1.1 431 "));
        // too many header fields
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut req = String::from("GET / HTTP/1.1\r\nhost: a\r\n");
        for i in 0..MAX_HEADERS {
            req.push_str(&format!("x-h{i}: v\r\n"));
        }
        req.push_str("\r\n");
        let _ = s.write_all(req.as_bytes()).await;
        assert!(read_to_close(&mut s).await.starts_with("HTTP/1.1 431 "));
        // an 8 KiB session cookie is fine
        let mut s = TcpStream::connect(addr).await.unwrap();
        let cookie = "c".repeat(8 * 1024);
        let req =
            format!("GET / HTTP/1.1\r\nhost: a\r\ncookie: {cookie}\r\nconnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        assert!(read_to_close(&mut s).await.starts_with("HTTP/1.1 200 "));
    }

    #[tokio::test]
    async fn h2c_is_served_only_when_configured() {
        use hyper_util::rt::TokioExecutor;
        async fn h2_get(addr: SocketAddr) -> Result<http::StatusCode, hyper::Error> {
            let stream = TcpStream::connect(addr).await.unwrap();
            let (mut send, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                    .await?;
            tokio::spawn(conn);
            let req = Request::get("http://a/")
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap();
            Ok(send.send_request(req).await?.status())
        }
        let (h1_only, _stop1) = start(ServerLimits::default()).await;
        assert!(h2_get(h1_only).await.is_err());
        let (both, _stop2) = start(ServerLimits {
            http2: true,
            ..ServerLimits::default()
        })
        .await;
        assert_eq!(h2_get(both).await.unwrap(), http::StatusCode::OK);
        // and HTTP/1.1 still works there
        let mut s = TcpStream::connect(both).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        assert!(read_to_close(&mut s).await.starts_with("HTTP/1.1 200 "));
    }
}
