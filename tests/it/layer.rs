//! `OidcLayer` and `Gate::decide` without sockets: the layer is built with
//! `ServiceBuilder` around a `service_fn` and driven with `oneshot`, as a Rust
//! service would use it; the engine is asked directly.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::{Method, Request, Response, StatusCode};
use oidcgate::doors::{OidcLayer, Principal, TrustedProxies, ViewSource};
use oidcgate::gate::{Decision, Gate, RequestView};
use testkit::{IdpConfig, TestIdp};
use tower::{ServiceBuilder, ServiceExt, service_fn};

use crate::support::gate_yaml;

async fn gate(idp: &TestIdp) -> Gate {
    let yaml = gate_yaml(idp, None, "excludedURLs: [/public]\n");
    let cfg = oidcgate::config::Config::from_yaml(&yaml, &|_| None).unwrap();
    oidcgate::assemble(
        &cfg,
        oidcgate::cache::Caches::memory(),
        Arc::new(oidcgate::clock::SystemClock),
    )
    .unwrap()
}

fn request(path: &str) -> Request<String> {
    Request::builder()
        .uri(path)
        .header("host", "app.example")
        .body(String::new())
        .unwrap()
}

/// What the inner service saw: the request's identity header and principal.
#[derive(Debug, Default)]
struct Seen {
    calls: AtomicUsize,
}

#[tokio::test]
async fn layer_passes_excluded_paths_with_client_identity_headers_removed() {
    let idp = TestIdp::start(IdpConfig::default()).await;
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    let inner = service_fn(move |req: Request<String>| {
        let s = s.clone();
        async move {
            s.calls.fetch_add(1, Ordering::SeqCst);
            assert!(
                req.headers().get("x-forwarded-user").is_none(),
                "the client's identity header reached the app"
            );
            assert!(matches!(
                req.extensions().get::<Principal>(),
                Some(Principal(None))
            ));
            Ok::<_, Infallible>(Response::new(String::from("public page")))
        }
    });
    let svc = ServiceBuilder::new()
        .layer(OidcLayer::new(
            gate(&idp).await,
            TrustedProxies::default(),
            ViewSource::Direct,
        ))
        .service(inner);
    let mut req = request("/public/page");
    req.headers_mut()
        .insert("x-forwarded-user", "admin@example.com".parse().unwrap());
    let resp = svc.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(seen.calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        resp.headers()["x-content-type-options"],
        "nosniff",
        "security headers on the app's answer"
    );
}

#[tokio::test]
async fn layer_answers_itself_when_the_caller_is_not_logged_in() {
    let idp = TestIdp::start(IdpConfig::default()).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let inner = service_fn(move |_req: Request<String>| {
        c.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, Infallible>(Response::new(String::from("secret"))) }
    });
    let layer = OidcLayer::new(
        gate(&idp).await,
        TrustedProxies::default(),
        ViewSource::Direct,
    );
    // A script gets 401.
    let mut xhr = request("/private");
    xhr.headers_mut()
        .insert("accept", "application/json".parse().unwrap());
    let resp = ServiceBuilder::new()
        .layer(layer.clone())
        .service(inner.clone())
        .oneshot(xhr)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // A browser is sent to the provider.
    let mut nav = request("/private");
    nav.headers_mut()
        .insert("accept", "text/html".parse().unwrap());
    nav.headers_mut()
        .insert("sec-fetch-mode", "navigate".parse().unwrap());
    let resp = ServiceBuilder::new()
        .layer(layer)
        .service(inner)
        .oneshot(nav)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let location = resp.headers()["location"].to_str().unwrap();
    assert!(location.starts_with(&idp.issuer()), "{location}");
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the app was never called");
}

#[tokio::test]
async fn layer_passes_the_inner_services_error_through() {
    let idp = TestIdp::start(IdpConfig::default()).await;
    let inner =
        service_fn(|_req: Request<String>| async { Err::<Response<String>, _>("inner failed") });
    let err = ServiceBuilder::new()
        .layer(OidcLayer::new(
            gate(&idp).await,
            TrustedProxies::default(),
            ViewSource::Direct,
        ))
        .service(inner)
        .oneshot(request("/public"))
        .await
        .unwrap_err();
    assert_eq!(err, "inner failed", "Error = S::Error: the same value");
}

#[tokio::test]
async fn decide_allows_excluded_paths_and_refuses_ambiguous_identity_headers() {
    let idp = TestIdp::start(IdpConfig::default()).await;
    let gate = gate(&idp).await;
    let view = |headers: http::HeaderMap| {
        RequestView::new(
            Method::GET,
            false,
            "app.example",
            "/public/x",
            headers,
            std::net::IpAddr::from([127, 0, 0, 1]),
        )
        .unwrap()
    };
    match gate.decide(&view(http::HeaderMap::new())).await {
        Decision::Allow(allow) => {
            assert!(allow.principal.is_none());
            assert!(allow.strip_auth_cookies, "stripAuthCookies defaults to on");
            assert_eq!(allow.upstream_headers["x-forwarded-user"], "");
        }
        other => panic!("excluded path not allowed: {other:?}"),
    }
    let mut spoof = http::HeaderMap::new();
    spoof.insert("x_forwarded_user", "admin".parse().unwrap());
    match gate.decide(&view(spoof)).await {
        Decision::Respond(r) => assert_eq!(r.status, StatusCode::BAD_REQUEST),
        other => panic!("ambiguous identity header passed: {other:?}"),
    }
}
