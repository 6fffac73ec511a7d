//! Operating the gateway: the metrics listener (names, exposition checked by
//! `promtool`), the health report against a real Redis that dies and comes
//! back, and configuration reloads under load.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test support: a failed unwrap is a failed test"
)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use oidcgate::clock::SystemClock;
use oidcgate::config::Config;
use oidcgate::runtime::Running;
use serde_json::Value;
use testkit::redis::RedisServer;
use testkit::{IdpConfig, TestIdp};

mod health;
mod metrics;
mod registration;
mod reload;
mod sighup;

/// The API audience of the test provider's access tokens.
const AUDIENCE: &str = "api://default";
/// The test provider's default subject.
const USER_SUB: &str = "demo-user-1";
/// Upper bound on one HTTP exchange.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The YAML of a gate in front of `idp` in forward-auth mode.
fn gate_yaml(idp: &TestIdp, extra: &str) -> String {
    format!(
        "providerURL: {}\nclientID: {}\nclientSecret: {}\n\
         sessionEncryptionKey: ops-test-session-key-0123456789abcdef0123\n\
         logLevel: error\naudience: {AUDIENCE}\nenableBearerAuth: true\n{extra}\n",
        idp.issuer(),
        idp.client_id(),
        idp.client_secret()
    )
}

/// A gateway started through the process entry point, with its metrics
/// listener on an ephemeral port.
struct Gateway {
    addr: SocketAddr,
    running: Option<Running>,
}

impl Gateway {
    async fn start(yaml: &str, path: Option<PathBuf>, prefix: &str) -> Gateway {
        let yaml = format!("{yaml}metricsAddress: 127.0.0.1:0\nmetricsPrefix: {prefix}\n");
        let cfg = Config::from_yaml(&yaml, &|_| None)
            .unwrap_or_else(|e| panic!("config refused: {e}\n{yaml}"));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let running = oidcgate::runtime::start(cfg, path, Arc::new(SystemClock), listener)
            .await
            .unwrap();
        Gateway {
            addr,
            running: Some(running),
        }
    }

    fn running(&self) -> &Running {
        self.running.as_ref().unwrap()
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn metrics_url(&self) -> String {
        format!("http://{}", self.running().metrics_addr().unwrap())
    }

    async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(REQUEST_TIMEOUT)
        .build()
        .unwrap()
}

/// `GET /healthz` asking for JSON.
async fn health_json(http: &reqwest::Client, base: &str) -> Value {
    let r = http
        .get(format!("{base}/healthz"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// A forward-auth request carrying `token`.
async fn bearer_request(http: &reqwest::Client, gate: &str, token: &str) -> reqwest::Result<u16> {
    let r = http
        .get(format!("{gate}/"))
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-proto", "http")
        .header("x-forwarded-host", "app.test")
        .header("x-forwarded-uri", "/api")
        .header("accept", "application/json")
        .bearer_auth(token)
        .send()
        .await?;
    Ok(r.status().as_u16())
}

async fn idp() -> TestIdp {
    TestIdp::start(IdpConfig::default()).await
}

fn redis() -> RedisServer {
    RedisServer::start().unwrap()
}
