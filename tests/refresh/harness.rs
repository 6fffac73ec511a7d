//! The harness of the refresh tests: a test provider, an echo upstream and a
//! gate built from YAML on `127.0.0.1:0`, reached either as a reverse proxy
//! or as a forward-auth server; and a client that follows redirects by hand
//! with its own cookie jar.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, StatusCode};
use oidcgate::clock::Clock as _;
use oidcgate::session::{Session, SessionCodec};
use testkit::served::Served;
use testkit::upstream::EchoUpstream;
use testkit::{IdpConfig, TestIdp};
use url::Url;

/// Prefix of every cookie the gate sets.
pub(crate) const GATE_PREFIX: &str = "_oidcgate_";
/// First session chunk.
pub(crate) const SESSION_COOKIE: &str = "_oidcgate_s_0";
/// Host of the application behind the forward-auth door.
pub(crate) const APP_HOST: &str = "app.test";
/// Session key of every gate in these tests.
pub(crate) const SESSION_KEY: &str = "refresh-tests-session-key-0123456789abcdef";
/// Upper bound on one HTTP exchange.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Access-token lifetime at the provider: below the grace period below, so
/// every fresh session is due for refresh on its next request.
pub(crate) const ACCESS_TTL: Duration = Duration::from_secs(20);
/// `refreshGracePeriodSeconds` of every gate in these tests.
pub(crate) const GRACE_SECS: u64 = 60;

/// How the client reaches the application.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Door {
    /// The gate proxies to the echo upstream.
    Proxy,
    /// Traefik-style forward auth: `GET /` with `X-Forwarded-*`.
    ForwardAuth,
}

/// What kind of request the client sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A browser navigation (`Accept: text/html`).
    Nav,
    /// A script (`Accept: application/json`).
    Xhr,
}

/// A cookie jar: gate cookie name → value.
pub(crate) type Jar = BTreeMap<String, String>;

/// One answer as the client saw it.
#[derive(Debug, Clone)]
pub(crate) struct Resp {
    /// Status code.
    pub(crate) status: StatusCode,
    /// Headers.
    pub(crate) headers: HeaderMap,
    /// Body text.
    pub(crate) body: String,
}

impl Resp {
    /// A header as text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every `Set-Cookie` line.
    pub(crate) fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect()
    }

    /// Gate session chunks this answer sets (name → value), deletions excluded.
    pub(crate) fn session_chunks(&self) -> Jar {
        self.set_cookies()
            .iter()
            .filter(|l| !is_deletion(l))
            .filter_map(|l| name_value(l))
            .filter(|(n, v)| n.starts_with(&format!("{GATE_PREFIX}s_")) && !v.is_empty())
            .collect()
    }

    /// True when this answer deletes the first session chunk.
    pub(crate) fn clears_session(&self) -> bool {
        self.set_cookies()
            .iter()
            .any(|l| is_deletion(l) && name_value(l).is_some_and(|(n, _)| n == SESSION_COOKIE))
    }
}

fn name_value(line: &str) -> Option<(String, String)> {
    let (n, v) = line.split(';').next()?.split_once('=')?;
    Some((n.trim().to_owned(), v.trim().to_owned()))
}

fn is_deletion(line: &str) -> bool {
    line.split(';')
        .skip(1)
        .any(|a| a.trim().eq_ignore_ascii_case("max-age=0"))
}

/// Applies the `Set-Cookie` lines of `resp` to `jar`.
pub(crate) fn absorb(jar: &mut Jar, resp: &Resp) {
    for line in resp.set_cookies() {
        let Some((name, value)) = name_value(&line) else {
            continue;
        };
        if is_deletion(&line) || value.is_empty() {
            jar.remove(&name);
        } else {
            jar.insert(name, value);
        }
    }
}

/// A gate serving on an ephemeral port; stopped when dropped.
pub(crate) struct GateServer {
    /// Listening address.
    pub(crate) addr: SocketAddr,
    /// The engine (for its grant counter).
    pub(crate) gate: oidcgate::gate::Gate,
    _served: Served,
}

/// A login between the provider and the callback.
pub(crate) struct PendingLogin {
    jar: Jar,
    target: String,
}

/// Provider, upstream and gate of one test.
pub(crate) struct Env {
    /// The test provider.
    pub(crate) idp: TestIdp,
    /// The gate.
    pub(crate) gate: GateServer,
    /// A codec with the gate's session settings (reads and mints cookies).
    pub(crate) codec: SessionCodec,
    /// The door the client uses.
    pub(crate) door: Door,
    cfg: oidcgate::config::Config,
    caches: oidcgate::cache::Caches,
    _upstream: EchoUpstream,
    http: reqwest::Client,
}

/// Builds a gate around `caches` and serves it on an ephemeral port.
async fn serve(cfg: &oidcgate::config::Config, caches: oidcgate::cache::Caches) -> GateServer {
    let gate =
        oidcgate::assemble(cfg, caches, Arc::new(oidcgate::clock::SystemClock)).expect("gate");
    let (engine, app) = (gate.clone(), cfg.app.clone());
    let served = Served::start(|listener, stop| oidcgate::run(engine, app, listener, stop)).await;
    GateServer {
        addr: served.addr(),
        gate,
        _served: served,
    }
}

/// A provider whose access tokens live [`ACCESS_TTL`] and rotate on refresh.
pub(crate) fn idp_config() -> IdpConfig {
    IdpConfig {
        access_token_ttl: ACCESS_TTL,
        id_token_ttl: Duration::from_secs(300),
        rotate_refresh_tokens: true,
        ..IdpConfig::default()
    }
}

impl Env {
    /// Starts everything; `extra` is appended to the gate's YAML.
    pub(crate) async fn start(door: Door, idp: IdpConfig, extra: &str) -> Env {
        let idp = TestIdp::start(idp).await;
        let upstream = EchoUpstream::start().await;
        let mut yaml = format!(
            "providerURL: {issuer}\nclientID: {id}\nclientSecret: {secret}\n\
             sessionEncryptionKey: {SESSION_KEY}\nlogLevel: error\n\
             refreshGracePeriodSeconds: {GRACE_SECS}\n",
            issuer = idp.issuer(),
            id = idp.client_id(),
            secret = idp.client_secret(),
        );
        match door {
            Door::Proxy => yaml.push_str(&format!("upstream: {}\n", upstream.url())),
            Door::ForwardAuth => yaml.push_str("trustedProxies: [127.0.0.1/32]\n"),
        }
        yaml.push_str(extra);
        yaml.push('\n');
        let cfg = oidcgate::config::Config::from_yaml(&yaml, &|_| None)
            .unwrap_or_else(|e| panic!("config refused: {e}\n{yaml}"));
        let codec = SessionCodec::new(cfg.session.clone()).expect("session codec");
        let caches = oidcgate::cache::Caches::memory();
        let gate = serve(&cfg, caches.clone()).await;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .pool_max_idle_per_host(64)
            .build()
            .expect("client");
        Env {
            idp,
            gate,
            codec,
            door,
            cfg,
            caches,
            _upstream: upstream,
            http,
        }
    }

    /// A second gate with the same configuration sharing this gate's caches
    /// (another replica).
    pub(crate) async fn replica(&self) -> GateServer {
        serve(&self.cfg, self.caches.clone()).await
    }

    /// The application origin as the client sees it.
    pub(crate) fn origin(&self) -> String {
        match self.door {
            Door::Proxy => format!("http://{}", self.gate.addr),
            Door::ForwardAuth => format!("http://{APP_HOST}"),
        }
    }

    /// Logs the provider's current user in and stops right after the
    /// callback: the jar then holds a fresh session.
    pub(crate) async fn login(&self) -> Jar {
        let pending = self.begin_login().await;
        self.finish_login(pending).await
    }

    /// The first half of [`Env::login`]: the provider has authenticated its
    /// current user and sent the client back towards the callback.
    pub(crate) async fn begin_login(&self) -> PendingLogin {
        let mut jar = Jar::new();
        let start = self.app(&jar, Kind::Nav, "/app/home").await;
        assert_eq!(start.status, StatusCode::FOUND, "login start: {start:?}");
        absorb(&mut jar, &start);
        let authorize = start.header("location").expect("location").to_owned();
        assert!(
            authorize.starts_with(&self.idp.issuer()),
            "login must go to the provider: {authorize}"
        );
        let at_idp = self.http.get(&authorize).send().await.expect("authorize");
        assert_eq!(at_idp.status(), StatusCode::FOUND, "provider answer");
        let callback = at_idp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .expect("callback location")
            .to_owned();
        let callback = Url::parse(&callback).expect("callback URL");
        assert!(
            callback.as_str().starts_with(&self.origin()),
            "callback goes back to the application: {callback}"
        );
        let target = match callback.query() {
            Some(q) => format!("{}?{q}", callback.path()),
            None => callback.path().to_owned(),
        };
        PendingLogin { jar, target }
    }

    /// The second half of [`Env::login`]: the callback (code exchange).
    pub(crate) async fn finish_login(&self, pending: PendingLogin) -> Jar {
        let PendingLogin { mut jar, target } = pending;
        let done = self.app(&jar, Kind::Nav, &target).await;
        assert_eq!(done.status, StatusCode::FOUND, "callback: {done:?}");
        absorb(&mut jar, &done);
        assert!(
            jar.contains_key(SESSION_COOKIE),
            "no session after the callback: {done:?}"
        );
        jar
    }

    /// Sends one request to the application path `target` through the door.
    pub(crate) async fn app(&self, jar: &Jar, kind: Kind, target: &str) -> Resp {
        self.app_at(&self.gate, jar, kind, target).await
    }

    /// [`Env::app`] through the gate `via`.
    pub(crate) async fn app_at(
        &self,
        via: &GateServer,
        jar: &Jar,
        kind: Kind,
        target: &str,
    ) -> Resp {
        let gate = format!("http://{}", via.addr);
        let mut req = match self.door {
            Door::Proxy => self.http.get(format!("{gate}{target}")),
            Door::ForwardAuth => self
                .http
                .get(format!("{gate}/"))
                .header("x-forwarded-method", "GET")
                .header("x-forwarded-proto", "http")
                .header("x-forwarded-host", APP_HOST)
                .header("x-forwarded-uri", target),
        };
        req = match kind {
            Kind::Nav => req
                .header("accept", "text/html,application/xhtml+xml")
                .header("sec-fetch-mode", "navigate"),
            Kind::Xhr => req.header("accept", "application/json"),
        };
        let cookies: Vec<String> = jar
            .iter()
            .filter(|(n, _)| n.starts_with(GATE_PREFIX))
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        if !cookies.is_empty() {
            req = req.header("cookie", cookies.join("; "));
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {target}: {e}"));
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.text().await.unwrap_or_default();
        Resp {
            status,
            headers,
            body,
        }
    }

    /// The session stored in `jar`.
    pub(crate) fn session_in(&self, jar: &Jar) -> Session {
        self.decode(jar).expect("the jar holds a readable session")
    }

    /// The session a response sets, if any.
    pub(crate) fn session_set_by(&self, resp: &Resp) -> Option<Session> {
        let chunks = resp.session_chunks();
        if chunks.is_empty() {
            return None;
        }
        self.decode(&chunks)
    }

    fn decode(&self, jar: &Jar) -> Option<Session> {
        let cookie: Vec<String> = jar.iter().map(|(n, v)| format!("{n}={v}")).collect();
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::COOKIE,
            HeaderValue::from_str(&cookie.join("; ")).ok()?,
        );
        self.codec.load(&headers, now())
    }

    /// A jar holding `session`, sealed with the gate's key.
    pub(crate) fn jar_with(&self, session: &Session) -> Jar {
        let lines = self
            .codec
            .store(session, &HeaderMap::new(), false, now())
            .expect("session fits in cookies");
        let mut jar = Jar::new();
        for line in lines {
            let line = line.to_str().expect("ascii cookie").to_owned();
            if let Some((n, v)) = name_value(&line) {
                jar.insert(n, v);
            }
        }
        jar
    }
}

/// Unix seconds.
pub(crate) fn now() -> u64 {
    oidcgate::clock::SystemClock.now()
}

/// True when `resp` sends a browser to the provider's authorization endpoint.
pub(crate) fn is_login_redirect(env: &Env, resp: &Resp) -> bool {
    resp.status == StatusCode::FOUND
        && resp
            .header("location")
            .is_some_and(|l| l.starts_with(&format!("{}/authorize", env.idp.issuer())))
}
