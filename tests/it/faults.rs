//! The provider misbehaving: every endpoint the gate calls answering 5xx,
//! a body that is not JSON, or nothing at all. Each is a classified error
//! (never a panic), and a request meeting one gets a clear status within the
//! configured `providerTimeout` instead of hanging.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use oidcgate::clock::SystemClock;
use oidcgate::oidc::{Error, Provider, ProviderSettings};
use testkit::{Endpoint, Fault, IdpConfig, TestIdp};

use super::support::{Door, Harness, SESSION_COOKIE, gate_yaml};

/// The provider timeout of these tests, far below the 10 s default.
const TIMEOUT: Duration = Duration::from_secs(1);
/// Bound on one answer: the timeout with ample slack, yet below the default
/// timeout, so a call that ignored `providerTimeout` fails it. Not a speed
/// check: a hang is what it catches.
const ANSWER_BOUND: Duration = Duration::from_secs(8);

/// The faults every endpoint is put through.
const FAULTS: [Fault; 4] = [
    Fault::Status(500),
    Fault::Status(503),
    Fault::Malformed,
    Fault::Hang,
];

/// How an error is classified, as the gate acts on it.
#[derive(Debug, PartialEq, Eq)]
enum Class {
    Ok,
    Unavailable,
    Timeout,
    Invalid,
    Other,
}

fn class<T>(r: &Result<T, Error>) -> Class {
    match r {
        Ok(_) => Class::Ok,
        Err(Error::ProviderUnavailable(_)) => Class::Unavailable,
        Err(Error::ProviderTimeout(_)) => Class::Timeout,
        Err(Error::ProviderInvalid(_)) => Class::Invalid,
        Err(_) => Class::Other,
    }
}

/// What a fault must become.
fn expected(fault: Fault) -> Class {
    match fault {
        Fault::Status(_) => Class::Unavailable,
        Fault::Malformed => Class::Invalid,
        Fault::Hang => Class::Timeout,
        other => panic!("no expectation for {other:?}"),
    }
}

fn provider(idp: &TestIdp) -> Provider {
    let mut s = ProviderSettings::new(&idp.issuer(), idp.client_id(), idp.client_secret());
    s.http.timeout = TIMEOUT;
    s.http.connect_timeout = TIMEOUT;
    Provider::new(s, Arc::new(SystemClock)).unwrap()
}

async fn bounded<T>(what: &str, call: impl Future<Output = T>) -> T {
    tokio::time::timeout(ANSWER_BOUND, call)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {ANSWER_BOUND:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_provider_endpoint_fault_is_a_classified_error() {
    let idp = TestIdp::start(IdpConfig::default()).await;
    // Discovery (JWKS is part of it): a fresh provider per case, as a failed
    // discovery throttles the next attempt.
    for endpoint in [Endpoint::Discovery, Endpoint::Jwks] {
        for fault in FAULTS {
            idp.clear_faults();
            idp.inject(endpoint, fault, 1);
            let p = provider(&idp);
            let r = bounded("discovery", p.discovered()).await;
            assert_eq!(
                class(&r),
                expected(fault),
                "{endpoint:?} {fault:?}: {:?}",
                r.err()
            );
        }
    }
    idp.clear_faults();
    let p = provider(&idp);
    p.discovered().await.unwrap();
    let token = idp.access_token(serde_json::json!({}));
    for fault in FAULTS {
        idp.inject(Endpoint::Token, fault, 1);
        let r = bounded("refresh grant", p.refresh("some-refresh-token")).await;
        assert_eq!(class(&r), expected(fault), "token {fault:?}: {r:?}");
        idp.inject(Endpoint::Token, fault, 1);
        let r = bounded(
            "code grant",
            p.exchange_code("some-code", "http://app.test/oauth2/callback", None),
        )
        .await;
        assert_eq!(class(&r), expected(fault), "code {fault:?}: {r:?}");
        idp.inject(Endpoint::Introspection, fault, 1);
        let r = bounded("introspection", p.introspect(&token)).await;
        assert_eq!(class(&r), expected(fault), "introspection {fault:?}: {r:?}");
        idp.inject(Endpoint::Revocation, fault, 1);
        let r = bounded("revocation", p.revoke(&token, "access_token")).await;
        // RFC 7009: a 200 is success whatever its body says.
        let want = match fault {
            Fault::Malformed => Class::Ok,
            f => expected(f),
        };
        assert_eq!(class(&r), want, "revocation {fault:?}: {r:?}");
    }
    // Nothing sticks: with the faults gone every endpoint answers again.
    idp.clear_faults();
    assert!(p.introspect(&token).await.unwrap()["active"] == true);
    assert!(matches!(
        p.refresh("some-refresh-token").await,
        Err(Error::OAuth { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_meeting_a_token_endpoint_fault_gets_a_clear_status() {
    let h = Harness::start(Door::Proxy, "providerTimeout: 1").await;
    for (fault, status) in [
        (Fault::Hang, StatusCode::GATEWAY_TIMEOUT),
        (Fault::Status(500), StatusCode::SERVICE_UNAVAILABLE),
        (Fault::Malformed, StatusCode::BAD_GATEWAY),
    ] {
        let mut b = h.browser();
        let start = b.get_app("/page").await;
        assert_eq!(start.status, StatusCode::FOUND, "{start:?}");
        let at_idp = b.get(&start.location().unwrap()).await;
        let callback = at_idp.location().unwrap();
        h.idp.inject(Endpoint::Token, fault, 1);
        let r = bounded("callback", b.get(&callback)).await;
        assert_eq!(r.status, status, "{fault:?}: {r:?}");
        assert!(r.set_cookie(SESSION_COOKIE).is_none());
        // The failed exchange ended that login; a new one succeeds.
        let mut again = h.browser();
        let trace = again.login(&h, "/page").await;
        assert_eq!(trace.landed.status, StatusCode::OK, "{fault:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_start_while_discovery_hangs_is_answered_within_the_timeout() {
    let idp = TestIdp::start(IdpConfig::default()).await;
    // Discovery meets a provider that accepts the connection and never
    // answers.
    idp.inject(Endpoint::Discovery, Fault::Hang, 3);
    let yaml = gate_yaml(&idp, Some("http://127.0.0.1:9"), "providerTimeout: 1");
    let cfg = oidcgate::config::Config::from_yaml(&yaml, &|_| None).unwrap();
    let gate = oidcgate::assemble(
        &cfg,
        oidcgate::cache::Caches::memory(),
        Arc::new(SystemClock),
    )
    .unwrap();
    let app = cfg.app.clone();
    let server =
        testkit::served::Served::start(|listener, stop| oidcgate::run(gate, app, listener, stop))
            .await;
    let addr = server.addr();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for _ in 0..2 {
        let r = bounded(
            "login start",
            client
                .get(format!("http://{addr}/page"))
                .header("accept", "text/html")
                .send(),
        )
        .await
        .unwrap();
        // 504 when this request's own discovery timed out, 503 (retry
        // throttled) when it waited for the start-up discovery's failure.
        assert!(
            matches!(
                r.status(),
                StatusCode::GATEWAY_TIMEOUT | StatusCode::SERVICE_UNAVAILABLE
            ),
            "{r:?}"
        );
    }
    drop(server);
}
