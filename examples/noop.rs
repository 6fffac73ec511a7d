//! A no-op HTTP server: answers every request with an empty `200`. The
//! baseline of the load benchmark (`bench/load.sh`): the same Tokio and
//! hyper HTTP/1.1 connection as oidcgate's listener (with its header read
//! timeout), without the gate.
//!
//! `cargo run --release --example noop -- [--listen ADDR] [--lifetime SECS]`
//!
//! Prints `listening on http://ADDR` once bound, then serves until the
//! lifetime (default 600 s) is over or the process is stopped.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::convert::Infallible;
use std::io::Write as _;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};

fn arg(name: &str) -> Option<String> {
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == name {
            return args.next();
        }
    }
    None
}

#[tokio::main]
async fn main() {
    let listen = arg("--listen").unwrap_or_else(|| "127.0.0.1:0".into());
    let lifetime: u64 = arg("--lifetime").map_or(600, |s| s.parse().expect("--lifetime SECS"));
    let listener = tokio::net::TcpListener::bind(&listen).await.expect("bind");
    let addr = listener.local_addr().expect("local address");
    println!("listening on http://{addr}");
    std::io::stdout().flush().expect("stdout");

    let serve = async move {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(oidcgate::doors::server::DEFAULT_HEADER_READ_TIMEOUT);
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let builder = builder.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|_req: Request<Incoming>| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
                });
                let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    };
    tokio::select! {
        _ = serve => {}
        () = tokio::time::sleep(Duration::from_secs(lifetime)) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
