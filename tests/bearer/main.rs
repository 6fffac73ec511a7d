//! Machine-to-machine bearer tokens end to end: a test OpenID Provider, an
//! echo upstream and the gate on loopback sockets, driven through the
//! reverse-proxy door and the forward-auth door (what Traefik sends).
//!
//! Client addresses are simulated with `X-Forwarded-For` from the loopback
//! peer, which the default `trustedProxies` believes, so every case of the
//! attack matrix has its own address and the failure penalty of one case
//! never leaks into another.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, StatusCode};
use oidcgate::clock::{ManualClock, SharedClock, SystemClock};
use oidcgate::gate::Gate;
use serde_json::{Value, json};
use testkit::served::Served;
use testkit::upstream::EchoUpstream;
use testkit::{AccessTokenFormat, Endpoint, Fault, IdpConfig, KeyChoice, Mint, TestIdp};

/// The API audience every gate of these tests expects.
const AUDIENCE: &str = "api://default";
/// Session key of the gates.
const SESSION_KEY: &str = "bearer-test-session-key-0123456789abcdef";
/// Application host in the forward-auth door.
const APP_HOST: &str = "app.test";
/// Upper bound on one HTTP exchange.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// How requests reach the protected application.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Door {
    /// The gate is a reverse proxy in front of the echo upstream.
    Proxy,
    /// Traefik ForwardAuth: `GET /` with `X-Forwarded-*`.
    ForwardAuth,
}

const DOORS: [Door; 2] = [Door::Proxy, Door::ForwardAuth];

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A gate serving on loopback, with a handle on its engine.
struct GateServer {
    served: Served,
    gate: Gate,
}

impl GateServer {
    async fn start(yaml: &str, clock: SharedClock) -> GateServer {
        let cfg = oidcgate::config::Config::from_yaml(yaml, &|_| None)
            .unwrap_or_else(|e| panic!("config refused: {e}\n{yaml}"));
        let gate = oidcgate::assemble(&cfg, oidcgate::cache::Caches::memory(), clock).unwrap();
        let (engine, app) = (gate.clone(), cfg.app.clone());
        let served =
            Served::start(|listener, stop| oidcgate::run(engine, app, listener, stop)).await;
        GateServer { served, gate }
    }
}

/// Provider, upstream and one gate behind one door.
struct Env {
    idp: TestIdp,
    _upstream: EchoUpstream,
    server: GateServer,
    door: Door,
    http: reqwest::Client,
}

/// One answer as the client (or the front proxy) saw it.
#[derive(Debug)]
struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// What the upstream received (proxy door).
    fn upstream_headers(&self) -> BTreeMap<String, String> {
        let v: Value = serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not an echo answer ({e}): {}", self.body));
        v["headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect()
    }

    /// The identity header the request carries onward.
    fn user(&self, door: Door) -> Option<String> {
        match door {
            Door::Proxy => self.upstream_headers().get("x-forwarded-user").cloned(),
            Door::ForwardAuth => self.header("x-forwarded-user").map(str::to_owned),
        }
        .filter(|u| !u.is_empty())
    }
}

fn gate_yaml(idp: &TestIdp, upstream: Option<&str>, extra: &str) -> String {
    let mut y = format!(
        "providerURL: {}\nclientID: {}\nclientSecret: {}\nsessionEncryptionKey: {SESSION_KEY}\n\
         logLevel: error\naudience: {AUDIENCE}\n",
        idp.issuer(),
        idp.client_id(),
        idp.client_secret()
    );
    if let Some(u) = upstream {
        y.push_str(&format!("upstream: {u}\n"));
    }
    y.push_str(extra);
    y.push('\n');
    y
}

impl Env {
    async fn start(door: Door, extra: &str) -> Env {
        Self::with_idp(door, IdpConfig::default(), extra).await
    }

    async fn with_idp(door: Door, cfg: IdpConfig, extra: &str) -> Env {
        Self::with_clock(door, cfg, extra, Arc::new(SystemClock)).await
    }

    async fn with_clock(door: Door, cfg: IdpConfig, extra: &str, clock: SharedClock) -> Env {
        let idp = TestIdp::start(cfg).await;
        let upstream = EchoUpstream::start().await;
        let up = (door == Door::Proxy).then(|| upstream.url());
        let server = GateServer::start(&gate_yaml(&idp, up.as_deref(), extra), clock).await;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .unwrap();
        Env {
            idp,
            _upstream: upstream,
            server,
            door,
            http,
        }
    }

    fn gate(&self) -> &Gate {
        &self.server.gate
    }

    /// A request to `path` of the application from client address `ip`.
    async fn get(&self, path: &str, ip: &str, headers: &[(&str, &str)]) -> Resp {
        let gate = self.server.served.url();
        let mut req = match self.door {
            Door::Proxy => self.http.get(format!("{gate}{path}")),
            Door::ForwardAuth => self
                .http
                .get(format!("{gate}/"))
                .header("x-forwarded-method", "GET")
                .header("x-forwarded-proto", "http")
                .header("x-forwarded-host", APP_HOST)
                .header("x-forwarded-uri", path),
        };
        req = req.header("x-forwarded-for", ip);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        Resp {
            status: resp.status(),
            headers: resp.headers().clone(),
            body: resp.text().await.unwrap(),
        }
    }

    /// A request carrying `Authorization: Bearer <token>`.
    async fn bearer(&self, token: &str, ip: &str) -> Resp {
        let auth = format!("Bearer {token}");
        self.get(
            "/api/data",
            ip,
            &[("authorization", &auth), ("accept", "application/json")],
        )
        .await
    }

    /// An opaque access token (and its refresh token) from a code flow at
    /// the provider.
    async fn code_flow_tokens(&self) -> (String, Option<String>) {
        let redirect = "http://127.0.0.1:9/cb";
        let authorize = url::Url::parse_with_params(
            &format!("{}/authorize", self.idp.issuer()),
            &[
                ("response_type", "code"),
                ("client_id", self.idp.client_id()),
                ("redirect_uri", redirect),
                ("scope", "openid profile email"),
                ("state", "state-0123456789abcdef"),
                ("nonce", "nonce-0123456789abcdef"),
            ],
        )
        .unwrap();
        let auth = self.http.get(authorize.as_str()).send().await.unwrap();
        assert_eq!(auth.status(), StatusCode::FOUND);
        let loc = url::Url::parse(auth.headers()["location"].to_str().unwrap()).unwrap();
        let code = loc
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .unwrap();
        let tokens: Value = self
            .http
            .post(format!("{}/token", self.idp.issuer()))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", redirect),
                ("client_id", self.idp.client_id()),
                ("client_secret", self.idp.client_secret()),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (
            tokens["access_token"].as_str().unwrap().to_owned(),
            tokens["refresh_token"].as_str().map(str::to_owned),
        )
    }
}

/// Asserts a refused token: 401 with an RFC 6750 challenge and no echo of
/// the token.
fn assert_refused(r: &Resp, token: &str, what: &str) {
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}: {r:?}");
    let challenge = r.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer error=\"invalid_token\", error_description=\""),
        "{what}: challenge {challenge:?}"
    );
    if token.len() > 8 {
        assert!(!r.body.contains(token), "{what}: the body echoes the token");
        assert!(
            !challenge.contains(token),
            "{what}: the challenge echoes the token"
        );
    }
}

/// One row of the attack matrix.
struct Case {
    name: &'static str,
    token: String,
    accept: bool,
}

fn refuse(name: &'static str, token: String) -> Case {
    Case {
        name,
        token,
        accept: false,
    }
}

fn accept(name: &'static str, token: String) -> Case {
    Case {
        name,
        token,
        accept: true,
    }
}

/// Every attack on the bearer path, with the provider's real key where the
/// attack needs it.
fn matrix(idp: &TestIdp) -> Vec<Case> {
    let t = now();
    let at = |extra: Value| idp.access_token(extra);
    let kid = idp.current_kid();
    let valid = at(json!({}));
    let truncated = valid[..valid.len() - 12].to_owned();
    let huge = at(json!({ "pad": "x".repeat(20 * 1024) }));
    vec![
        accept("valid access token", valid),
        accept(
            "client-credentials token",
            idp.client_credentials_token(AUDIENCE),
        ),
        accept(
            "several audiences with azp = clientID",
            at(json!({"aud": [AUDIENCE, "other-api"], "azp": "oidcgate"})),
        ),
        refuse("expired", at(json!({"exp": t - 300, "iat": t - 600}))),
        refuse("not yet valid (nbf)", at(json!({"nbf": t + 600}))),
        refuse(
            "iat older than maxTokenAgeSeconds",
            at(json!({"iat": t - 90_000})),
        ),
        refuse("iat in the future", at(json!({"iat": t + 600}))),
        refuse("iat missing", at(json!({"iat": null}))),
        refuse("exp missing", at(json!({"exp": null}))),
        refuse("exp as a string", at(json!({"exp": (t + 300).to_string()}))),
        refuse("wrong issuer", at(json!({"iss": "https://evil.example"}))),
        refuse("wrong audience", at(json!({"aud": "api://other"}))),
        refuse("no audience", at(json!({"aud": null}))),
        refuse(
            "several audiences without azp",
            at(json!({"aud": [AUDIENCE, "other-api"]})),
        ),
        refuse(
            "several audiences with a wrong azp",
            at(json!({"aud": [AUDIENCE, "other-api"], "azp": "someone-else"})),
        ),
        refuse(
            "alg none",
            idp.mint(Mint {
                claims: json!({"iss": idp.issuer(), "aud": AUDIENCE, "sub": "x",
                               "iat": t, "exp": t + 300, "scope": "api"}),
                key: KeyChoice::None,
                ..Mint::default()
            }),
        ),
        refuse(
            "HS256 keyed with the public key (DER)",
            idp.mint(Mint {
                claims: json!({"iss": idp.issuer(), "aud": AUDIENCE, "sub": "x",
                               "iat": t, "exp": t + 300, "scope": "api"}),
                key: KeyChoice::Hs256WithSecret(idp.current_public_key_der()),
                ..Mint::default()
            }),
        ),
        refuse(
            "HS256 keyed with the public key (PEM)",
            idp.mint(Mint {
                claims: json!({"iss": idp.issuer(), "aud": AUDIENCE, "sub": "x",
                               "iat": t, "exp": t + 300, "scope": "api"}),
                key: KeyChoice::Hs256WithSecret(idp.current_public_key_pem().into_bytes()),
                ..Mint::default()
            }),
        ),
        refuse(
            "signed by an unpublished key under the current kid",
            idp.mint(Mint {
                header: json!({"kid": kid}),
                claims: json!({"iss": idp.issuer(), "aud": AUDIENCE, "sub": "x",
                               "iat": t, "exp": t + 300, "scope": "api"}),
                key: KeyChoice::Unpublished,
                ..Mint::default()
            }),
        ),
        refuse(
            "300-byte kid",
            idp.mint(Mint {
                header: json!({"kid": "k".repeat(300)}),
                claims: json!({"iss": idp.issuer(), "aud": AUDIENCE, "sub": "x",
                               "iat": t, "exp": t + 300}),
                ..Mint::default()
            }),
        ),
        refuse(
            "kid with ../",
            idp.mint(Mint {
                header: json!({"kid": "../../jwks"}),
                claims: json!({"iss": idp.issuer(), "aud": AUDIENCE, "sub": "x",
                               "iat": t, "exp": t + 300}),
                ..Mint::default()
            }),
        ),
        refuse(
            "kid with quotes",
            idp.mint(Mint {
                header: json!({"kid": "a\"b'c"}),
                claims: json!({"iss": idp.issuer(), "aud": AUDIENCE, "sub": "x",
                               "iat": t, "exp": t + 300}),
                ..Mint::default()
            }),
        ),
        refuse(
            "crit header",
            idp.mint(Mint {
                header: json!({"crit": ["exp"]}),
                claims: json!({"iss": idp.issuer(), "aud": AUDIENCE, "sub": "x",
                               "iat": t, "exp": t + 300}),
                ..Mint::default()
            }),
        ),
        refuse(
            "logout token (typ logout+jwt)",
            idp.mint(Mint {
                header: json!({"typ": "logout+jwt"}),
                claims: json!({"iss": idp.issuer(), "aud": AUDIENCE, "sub": "x",
                               "iat": t, "exp": t + 300, "scope": "api"}),
                ..Mint::default()
            }),
        ),
        refuse(
            "ID token (aud names the client, no scope)",
            idp.id_token(json!({"aud": [AUDIENCE, "oidcgate"], "azp": "oidcgate"})),
        ),
        refuse(
            "ID token with a nonce",
            idp.id_token(json!({"aud": AUDIENCE, "nonce": "n-123"})),
        ),
        refuse(
            "access token marked token_use id",
            at(json!({"token_use": "id"})),
        ),
        refuse("truncated signature", truncated),
        refuse("20 KiB token", huge),
        refuse("two segments", "aaaa.bbbb".into()),
        refuse(
            "opaque token while opaque tokens are off",
            "opaque-0123456789abcdef".into(),
        ),
        refuse(
            "bidi override in the identifier",
            at(json!({"sub": "admin\u{202E}resu"})),
        ),
        refuse(
            "semicolon in the identifier",
            at(json!({"sub": "svc;role=admin"})),
        ),
        refuse(
            "control character in the identifier",
            at(json!({"sub": "svc\nx"})),
        ),
        refuse("empty identifier", at(json!({"sub": ""}))),
    ]
}

/// The reason the gate logs for each refused case of the matrix
/// (alternatives separated by `|`).
fn expected_reason(case: &str) -> &'static str {
    match case {
        "expired" => "token expired",
        "not yet valid (nbf)" => "claim check failed: nbf",
        "iat older than maxTokenAgeSeconds" => "token too old",
        "iat in the future" | "iat missing" => "claim check failed: iat",
        "exp missing" | "exp as a string" => "malformed token: claims",
        "wrong issuer" => "claim check failed: iss",
        "wrong audience" | "no audience" => "claim check failed: aud",
        "several audiences without azp" | "several audiences with a wrong azp" => {
            "claim check failed: azp"
        }
        "alg none"
        | "HS256 keyed with the public key (DER)"
        | "HS256 keyed with the public key (PEM)" => "algorithm not allowed",
        "signed by an unpublished key under the current kid" => "bad signature",
        "300-byte kid" | "kid with ../" | "kid with quotes" => "malformed token: kid shape",
        "crit header" => "malformed token: crit header",
        "logout token (typ logout+jwt)" => "malformed token: typ",
        "ID token (aud names the client, no scope)"
        | "ID token with a nonce"
        | "access token marked token_use id" => "ID token presented",
        "truncated signature" => "bad signature|malformed token",
        "20 KiB token" => "token too large",
        "two segments" | "opaque token while opaque tokens are off" => "opaque token not accepted",
        "bidi override in the identifier"
        | "semicolon in the identifier"
        | "control character in the identifier"
        | "empty identifier" => "no usable identifier",
        other => panic!("no expected reason for {other:?}"),
    }
}

/// Log lines written by the gate while a test runs on this thread.
#[derive(Clone, Default)]
struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

impl Logs {
    fn take(&self) -> String {
        String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap())).unwrap()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;

    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

#[tokio::test]
async fn attack_matrix_through_both_doors() {
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("oidcgate=debug"))
        .with_ansi(false)
        .with_writer(logs.clone())
        .finish();
    // The test runtime is single-threaded: the gate's tasks log here too.
    let _guard = tracing::subscriber::set_default(subscriber);
    for door in DOORS {
        let env = Env::start(door, "enableBearerAuth: true").await;
        for (i, case) in matrix(&env.idp).into_iter().enumerate() {
            let ip = format!("10.1.{}.{i}", door as u8);
            logs.take();
            let r = env.bearer(&case.token, &ip).await;
            let what = format!("{door:?} / {}", case.name);
            let logged = logs.take();
            assert!(
                !logged.contains(&case.token),
                "{what}: the token was logged"
            );
            if case.accept {
                assert_eq!(r.status, StatusCode::OK, "{what}: {r:?}");
                assert!(r.user(door).is_some(), "{what}: no identity forwarded");
                assert!(r.header("www-authenticate").is_none(), "{what}");
                continue;
            }
            assert_refused(&r, &case.token, &what);
            let line = logged
                .lines()
                .find(|l| l.contains("bearer token refused"))
                .unwrap_or_else(|| panic!("{what}: no refusal logged:\n{logged}"));
            let hash = oidcgate::telemetry::TokenHash::of(&case.token).to_string();
            assert!(line.contains(&hash), "{what}: no token hash in {line}");
            let want = expected_reason(case.name);
            assert!(
                want.split('|').any(|w| line.contains(w)),
                "{what}: expected {want:?} in {line}"
            );
        }
    }
}

#[tokio::test]
async fn a_valid_token_is_reused_until_exp_and_names_its_subject() {
    for door in DOORS {
        let env = Env::start(door, "enableBearerAuth: true").await;
        let token = env.idp.access_token(json!({}));
        let first = env.bearer(&token, "10.2.0.1").await;
        assert_eq!(first.status, StatusCode::OK, "{door:?}: {first:?}");
        let fetches = env.idp.counters().jwks_fetches;
        for n in 0..100 {
            let r = env.bearer(&token, "10.2.0.1").await;
            assert_eq!(r.status, StatusCode::OK, "{door:?}: reuse {n}: {r:?}");
            assert_eq!(r.user(door).as_deref(), Some("demo-user-1"));
        }
        assert_eq!(
            env.idp.counters().jwks_fetches,
            fetches,
            "no key traffic on reuse"
        );
        assert_eq!(env.idp.counters().introspections, 0);
        if door == Door::ForwardAuth {
            assert_eq!(first.header("x-user-roles"), Some("reader"));
            assert_eq!(first.header("x-user-groups"), Some("staff"));
            assert!(
                first.header("set-cookie").is_none(),
                "no session is created"
            );
        }
    }
}

#[tokio::test]
async fn unknown_kid_refetches_the_keys_once_then_is_rate_limited() {
    let clock = ManualClock::starting_now();
    let env = Env::with_clock(
        Door::ForwardAuth,
        IdpConfig::default(),
        "enableBearerAuth: true",
        clock.clone(),
    )
    .await;
    let ok = env
        .bearer(&env.idp.access_token(json!({})), "10.3.0.1")
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    // Past the JWKS refresh interval since the keys were loaded.
    clock.advance(oidcgate::oidc::DEFAULT_JWKS_MIN_REFRESH_INTERVAL.as_secs() + 1);
    let base = env.idp.counters().jwks_fetches;
    let t = now();
    let with_kid = |kid: &str| {
        env.idp.mint(Mint {
            header: json!({ "kid": kid }),
            claims: json!({"iss": env.idp.issuer(), "aud": AUDIENCE, "sub": "x",
                           "iat": t, "exp": t + 300, "scope": "api"}),
            ..Mint::default()
        })
    };
    let first = with_kid("unknown-kid-1");
    assert_refused(&env.bearer(&first, "10.3.0.2").await, &first, "unknown kid");
    assert_eq!(env.idp.counters().jwks_fetches, base + 1, "one refetch");
    for n in 0..5 {
        let tok = with_kid(&format!("unknown-kid-{}", n + 2));
        assert_refused(
            &env.bearer(&tok, "10.3.0.3").await,
            &tok,
            "another unknown kid",
        );
    }
    let bad_shapes = [
        with_kid(&"k".repeat(300)),
        with_kid("../x"),
        with_kid("a\"b"),
    ];
    for tok in &bad_shapes {
        assert_refused(&env.bearer(tok, "10.3.0.4").await, tok, "kid shape");
    }
    assert_eq!(
        env.idp.counters().jwks_fetches,
        base + 1,
        "unknown kids within the refresh interval and malformed kids cause no fetch"
    );
    clock.advance(oidcgate::oidc::DEFAULT_JWKS_MIN_REFRESH_INTERVAL.as_secs() + 1);
    let later = with_kid("unknown-kid-later");
    assert_refused(
        &env.bearer(&later, "10.3.0.5").await,
        &later,
        "unknown kid later",
    );
    assert_eq!(
        env.idp.counters().jwks_fetches,
        base + 2,
        "one more after the interval"
    );
}

#[tokio::test]
async fn a_revoked_token_is_refused_at_once() {
    for door in DOORS {
        let env = Env::start(door, "enableBearerAuth: true").await;
        let token = env.idp.access_token(json!({}));
        let other = env.idp.access_token(json!({}));
        assert_eq!(env.bearer(&token, "10.4.0.1").await.status, StatusCode::OK);
        env.gate().revoke_token(&token).await.unwrap();
        assert_refused(
            &env.bearer(&token, "10.4.0.1").await,
            &token,
            "revoked token",
        );
        assert_eq!(env.bearer(&other, "10.4.0.1").await.status, StatusCode::OK);
        let by_jti = env.idp.access_token(json!({"jti": "revoked-jti-1"}));
        assert_eq!(env.bearer(&by_jti, "10.4.0.2").await.status, StatusCode::OK);
        env.gate().revoke_jti("revoked-jti-1").await.unwrap();
        assert_refused(
            &env.bearer(&by_jti, "10.4.0.2").await,
            &by_jti,
            "revoked jti",
        );
    }
}

#[tokio::test]
async fn twenty_failures_from_one_address_pause_it_and_only_it() {
    for door in DOORS {
        let env = Env::start(door, "enableBearerAuth: true").await;
        let good = env.idp.access_token(json!({}));
        let bad = env.idp.access_token(json!({"aud": "api://other"}));
        for n in 0..20 {
            let r = env.bearer(&bad, "10.5.0.1").await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{door:?}: failure {n}");
        }
        let paused = env.bearer(&good, "10.5.0.1").await;
        assert_eq!(
            paused.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{door:?}: {paused:?}"
        );
        let retry: u64 = paused.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry), "Retry-After {retry}");
        assert!(paused.header("www-authenticate").is_none());
        let other = env.bearer(&good, "10.5.0.2").await;
        assert_eq!(
            other.status,
            StatusCode::OK,
            "{door:?}: another address passes"
        );
    }
}

#[tokio::test]
async fn success_clears_the_failure_count() {
    let env = Env::start(
        Door::ForwardAuth,
        "enableBearerAuth: true\nbearerFailureThreshold: 3",
    )
    .await;
    let good = env.idp.access_token(json!({}));
    let bad = "aaaa.bbbb.cccc";
    for _ in 0..3 {
        for _ in 0..2 {
            assert_eq!(
                env.bearer(bad, "10.6.0.1").await.status,
                StatusCode::UNAUTHORIZED
            );
        }
        assert_eq!(env.bearer(&good, "10.6.0.1").await.status, StatusCode::OK);
    }
    for _ in 0..3 {
        env.bearer(bad, "10.6.0.1").await;
    }
    assert_eq!(
        env.bearer(&good, "10.6.0.1").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// A `Cookie` header holding a session for `cookie-user`.
fn session_cookie(gate: &Gate) -> String {
    let t = now() as u64;
    let session: oidcgate::session::Session = serde_json::from_value(json!({
        "i": "sid-0123456789abcdef0123", "c": t, "u": "cookie-user", "s": "cookie-sub",
        "x": t + 3600,
    }))
    .unwrap();
    let set = gate
        .sessions()
        .store(&session, &HeaderMap::new(), false, t)
        .unwrap();
    set.iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join("; ")
}

#[tokio::test]
async fn cookie_wins_over_bearer_unless_told_otherwise() {
    for door in DOORS {
        for overrides in [false, true] {
            let env = Env::start(
                door,
                &format!("enableBearerAuth: true\nbearerOverridesCookie: {overrides}"),
            )
            .await;
            let cookie = session_cookie(env.gate());
            let token = env.idp.access_token(json!({}));
            let auth = format!("Bearer {token}");
            let r = env
                .get(
                    "/",
                    "10.7.0.1",
                    &[("cookie", &cookie), ("authorization", &auth)],
                )
                .await;
            assert_eq!(
                r.status,
                StatusCode::OK,
                "{door:?} overrides={overrides}: {r:?}"
            );
            let want = if overrides {
                "demo-user-1"
            } else {
                "cookie-user"
            };
            assert_eq!(
                r.user(door).as_deref(),
                Some(want),
                "{door:?} overrides={overrides}"
            );
            let junk = env
                .get(
                    "/",
                    "10.7.0.2",
                    &[
                        ("cookie", &cookie),
                        ("authorization", "Bearer aaaa.bbbb.cccc"),
                    ],
                )
                .await;
            let want = if overrides {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::OK
            };
            assert_eq!(
                junk.status, want,
                "{door:?} overrides={overrides}: junk bearer"
            );
        }
    }
}

#[tokio::test]
async fn authorization_is_stripped_upstream_also_on_excluded_urls() {
    let env = Env::start(
        Door::Proxy,
        "enableBearerAuth: true\nexcludedURLs: [/public]",
    )
    .await;
    let token = env.idp.access_token(json!({}));
    let r = env.bearer(&token, "10.8.0.1").await;
    assert_eq!(r.status, StatusCode::OK);
    let up = r.upstream_headers();
    assert!(!up.contains_key("authorization"), "{up:?}");
    assert_eq!(
        up.get("x-forwarded-user").map(String::as_str),
        Some("demo-user-1")
    );
    let auth = format!("Bearer {token}");
    let public = env
        .get("/public/x", "10.8.0.1", &[("authorization", &auth)])
        .await;
    assert_eq!(public.status, StatusCode::OK);
    assert!(!public.upstream_headers().contains_key("authorization"));
    let cookie = session_cookie(env.gate());
    let basic = env
        .get(
            "/",
            "10.8.0.1",
            &[("cookie", &cookie), ("authorization", "Basic dTpw")],
        )
        .await;
    assert_eq!(basic.status, StatusCode::OK);
    assert!(!basic.upstream_headers().contains_key("authorization"));

    let keep = Env::start(
        Door::Proxy,
        "enableBearerAuth: true\nstripAuthorizationHeader: false\nexcludedURLs: [/public]",
    )
    .await;
    let token = keep.idp.access_token(json!({}));
    let r = keep.bearer(&token, "10.8.0.2").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.upstream_headers()
            .get("authorization")
            .map(String::as_str),
        Some(format!("Bearer {token}").as_str())
    );
}

#[tokio::test]
async fn bearer_path_off_ignores_the_header() {
    let env = Env::start(Door::Proxy, "excludedURLs: [/public]").await;
    let token = env.idp.access_token(json!({}));
    let r = env.bearer(&token, "10.9.0.1").await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "cookie flow answers scripts with 401"
    );
    assert!(r.header("www-authenticate").is_none());
    let auth = format!("Bearer {token}");
    let nav = env
        .get(
            "/app",
            "10.9.0.1",
            &[("authorization", &auth), ("accept", "text/html")],
        )
        .await;
    assert_eq!(nav.status, StatusCode::FOUND, "browsers are sent to log in");
    // stripAuthorizationHeader (default true) holds without the bearer
    // path too; turned off, the client's header reaches the upstream.
    let public = env
        .get("/public/x", "10.9.0.1", &[("authorization", &auth)])
        .await;
    assert!(!public.upstream_headers().contains_key("authorization"));
    let keep = Env::start(
        Door::Proxy,
        "stripAuthorizationHeader: false\nexcludedURLs: [/public]",
    )
    .await;
    let public = keep
        .get("/public/x", "10.9.0.1", &[("authorization", &auth)])
        .await;
    assert_eq!(public.upstream_headers().get("authorization"), Some(&auth));
}

#[tokio::test]
async fn challenges_follow_rfc6750_and_can_be_turned_off() {
    let env = Env::start(Door::ForwardAuth, "enableBearerAuth: true").await;
    for (header, code) in [
        ("Bearer ", "invalid_request"),
        ("Bearer a b", "invalid_request"),
        ("bearer aaaa.bbbb.cccc", "invalid_token"),
    ] {
        let r = env
            .get("/", "10.10.0.1", &[("authorization", header)])
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{header:?}");
        let c = r.header("www-authenticate").unwrap();
        assert!(
            c.starts_with(&format!("Bearer error=\"{code}\"")),
            "{header:?}: {c}"
        );
    }
    let expired = env
        .idp
        .access_token(json!({"exp": now() - 300, "iat": now() - 600}));
    let r = env.bearer(&expired, "10.10.0.2").await;
    assert!(r.header("www-authenticate").unwrap().contains("expired"));

    let quiet = Env::start(
        Door::ForwardAuth,
        "enableBearerAuth: true\nbearerEmitWWWAuthenticate: false",
    )
    .await;
    let r = quiet.bearer("aaaa.bbbb.cccc", "10.10.0.3").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.header("www-authenticate").is_none());
}

#[tokio::test]
async fn bearer_identities_go_through_the_same_policy() {
    for door in DOORS {
        let env = Env::start(
            door,
            "enableBearerAuth: true\nallowedRolesAndGroups: [admin]",
        )
        .await;
        let reader = env.idp.access_token(json!({}));
        let r = env.bearer(&reader, "10.11.0.1").await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{door:?}: {r:?}");
        let admin = env.idp.access_token(json!({"roles": ["admin"]}));
        let r = env.bearer(&admin, "10.11.0.1").await;
        assert_eq!(r.status, StatusCode::OK, "{door:?}");
        if door == Door::ForwardAuth {
            assert_eq!(r.header("x-user-roles"), Some("admin"));
        }
        let users = Env::start(
            door,
            "enableBearerAuth: true\nbearerIdentifierClaim: client_id\nallowedUsers: [oidcgate]",
        )
        .await;
        let svc = users.idp.client_credentials_token(AUDIENCE);
        let r = users.bearer(&svc, "10.11.0.2").await;
        assert_eq!(r.status, StatusCode::OK, "{door:?}: {r:?}");
        assert_eq!(r.user(door).as_deref(), Some("oidcgate"));
        let no_claim = users.idp.access_token(json!({"client_id": null}));
        let r = users.bearer(&no_claim, "10.11.0.3").await;
        assert_eq!(
            r.status,
            StatusCode::FORBIDDEN,
            "falls back to sub, not allowed"
        );
    }
}

#[tokio::test]
async fn opaque_tokens_are_introspected_and_cached() {
    let cfg = IdpConfig {
        access_token_format: AccessTokenFormat::Opaque,
        ..IdpConfig::default()
    };
    for door in DOORS {
        let env = Env::with_idp(
            door,
            cfg.clone(),
            "enableBearerAuth: true\nallowOpaqueTokens: true\nrequireTokenIntrospection: true",
        )
        .await;
        let (opaque, refresh) = env.code_flow_tokens().await;
        assert!(!opaque.contains('.'), "the provider issues opaque tokens");
        let before = env.idp.counters().introspections;
        for _ in 0..5 {
            let r = env.bearer(&opaque, "10.12.0.1").await;
            assert_eq!(r.status, StatusCode::OK, "{door:?}: {r:?}");
            assert_eq!(r.user(door).as_deref(), Some("demo-user-1"));
        }
        assert_eq!(
            env.idp.counters().introspections,
            before + 1,
            "one introspection, then the cached answer"
        );

        let inactive = "opaque-never-issued-0123456789";
        assert_refused(
            &env.bearer(inactive, "10.12.0.2").await,
            inactive,
            "inactive",
        );
        if let Some(rt) = refresh {
            assert_refused(&env.bearer(&rt, "10.12.0.3").await, &rt, "refresh token");
        }

        env.gate().revoke_token(&opaque).await.unwrap();
        assert_refused(
            &env.bearer(&opaque, "10.12.0.1").await,
            &opaque,
            "revoked opaque",
        );

        let (fresh, _) = env.code_flow_tokens().await;
        env.idp.inject(Endpoint::Introspection, Fault::Down, 1);
        let down = env.bearer(&fresh, "10.12.0.4").await;
        assert_eq!(
            down.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{door:?}: {down:?}"
        );
        env.idp
            .inject(Endpoint::Introspection, Fault::Status(500), 1);
        let err = env.bearer(&fresh, "10.12.0.4").await;
        assert_eq!(
            err.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{door:?}: {err:?}"
        );
        let back = env.bearer(&fresh, "10.12.0.4").await;
        assert_eq!(back.status, StatusCode::OK, "the endpoint is back");

        let jwt = env.idp.client_credentials_token(AUDIENCE);
        let r = env.bearer(&jwt, "10.12.0.5").await;
        assert_eq!(r.status, StatusCode::OK, "JWTs are introspected as well");
    }
}

#[tokio::test]
async fn opaque_tokens_are_refused_unless_allowed() {
    let cfg = IdpConfig {
        access_token_format: AccessTokenFormat::Opaque,
        ..IdpConfig::default()
    };
    let env = Env::with_idp(Door::ForwardAuth, cfg, "enableBearerAuth: true").await;
    let (opaque, _) = env.code_flow_tokens().await;
    assert_refused(
        &env.bearer(&opaque, "10.13.0.1").await,
        &opaque,
        "opaque, not allowed",
    );
    assert_eq!(env.idp.counters().introspections, 0);
}

#[tokio::test]
async fn configuration_refusals_name_the_key() {
    let idp = TestIdp::start(IdpConfig::default()).await;
    let base = format!(
        "providerURL: {}\nclientID: c\nclientSecret: s\nsessionEncryptionKey: {SESSION_KEY}\n",
        idp.issuer()
    );
    let cases = [
        ("enableBearerAuth: true", "audience"),
        ("enableBearerAuth: true\naudience: \"\"", "audience"),
        (
            "enableBearerAuth: true\naudience: a\nbearerIdentifierClaim: email",
            "bearerIdentifierClaim",
        ),
        (
            "enableBearerAuth: true\naudience: a\nbearerIdentifierClaim: Email",
            "bearerIdentifierClaim",
        ),
        (
            "enableBearerAuth: true\naudience: a\nallowOpaqueTokens: true",
            "allowOpaqueTokens",
        ),
        (
            "enableBearerAuth: true\naudience: a\nbearerFailureThreshold: 0",
            "bearerFailureThreshold",
        ),
        (
            "enableBearerAuth: true\naudience: a\nbearerFailureWindowSeconds: 0",
            "bearerFailureWindowSeconds",
        ),
        (
            "enableBearerAuth: true\naudience: a\nbearerFailurePenaltySeconds: 0",
            "bearerFailurePenaltySeconds",
        ),
        ("maxIdentifierLength: 0", "maxIdentifierLength"),
        ("introspectionURL: http://example.com/i", "introspectionURL"),
    ];
    for (extra, key) in cases {
        let e = oidcgate::config::Config::from_yaml(&format!("{base}{extra}\n"), &|_| None)
            .expect_err(extra);
        assert_eq!(e.keys(), [key], "{extra}: {e}");
    }
    let ok = oidcgate::config::Config::from_yaml(
        &format!(
            "{base}enableBearerAuth: true\naudience: a\nmaxTokenAgeSeconds: 600\n\
             maxIdentifierLength: 64\nintrospectionURL: {}/introspect\n",
            idp.issuer()
        ),
        &|_| None,
    )
    .unwrap();
    let b = &ok.gate.bearer;
    assert!(b.enabled && b.emit_www_authenticate && !b.overrides_cookie);
    assert!(ok.gate.strip_authorization_header);
    assert_eq!(
        b.identifier_claim,
        oidcgate::gate::DEFAULT_BEARER_IDENTIFIER_CLAIM
    );
    assert_eq!(b.max_token_age, Duration::from_secs(600));
    assert_eq!(
        b.throttle.threshold,
        oidcgate::gate::DEFAULT_BEARER_FAILURE_THRESHOLD
    );
    assert_eq!(ok.policy.max_identifier_bytes, 64);
    assert!(ok.provider.introspection_url.is_some());
    for key in [
        "enableBearerAuth",
        "allowOpaqueTokens",
        "maxTokenAgeSeconds",
    ] {
        assert!(oidcgate::config::known_keys().contains(&key), "{key}");
    }
    let env = |k: &str| match k {
        "OIDCGATE_ENABLE_BEARER_AUTH" => Some("true".to_owned()),
        "OIDCGATE_AUDIENCE" => Some("api".to_owned()),
        "OIDCGATE_BEARER_FAILURE_THRESHOLD" => Some("7".to_owned()),
        _ => None,
    };
    let from_env = oidcgate::config::Config::from_yaml(&base, &env).unwrap();
    assert!(from_env.gate.bearer.enabled);
    assert_eq!(from_env.gate.bearer.throttle.threshold, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotation_during_traffic_fails_no_valid_request() {
    let clock = ManualClock::starting_now();
    let env = Env::with_clock(
        Door::ForwardAuth,
        IdpConfig::default(),
        "enableBearerAuth: true",
        clock.clone(),
    )
    .await;
    let warm = env
        .bearer(&env.idp.access_token(json!({})), "10.9.0.1")
        .await;
    assert_eq!(warm.status, StatusCode::OK);
    clock.advance(oidcgate::oidc::DEFAULT_JWKS_MIN_REFRESH_INTERVAL.as_secs() + 1);
    // The provider rotates: a new kid, the old key withdrawn. Its JWKS
    // answers slowly, so that requests arrive while the refetch is in flight.
    env.idp.rotate_signing_key(testkit::SigningAlg::RS256);
    env.idp.remove_old_keys();
    env.idp
        .inject(Endpoint::Jwks, Fault::Delay(Duration::from_millis(300)), 1);
    let base = env.idp.counters().jwks_fetches;
    let tokens: Vec<String> = (0..40).map(|_| env.idp.access_token(json!({}))).collect();
    let ips: Vec<String> = (0..tokens.len()).map(|i| format!("10.9.1.{i}")).collect();
    let answers =
        futures_util::future::join_all(tokens.iter().zip(&ips).map(|(t, ip)| env.bearer(t, ip)))
            .await;
    for (i, r) in answers.iter().enumerate() {
        assert_eq!(
            r.status,
            StatusCode::OK,
            "request {i} during the rotation: {r:?}"
        );
    }
    let fetches = env.idp.counters().jwks_fetches - base;
    assert_eq!(fetches, 1, "one refetch serves every request");
}
