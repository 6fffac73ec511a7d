//! Test harness: a test OpenID Provider, an echo upstream and a gate built
//! from YAML, all on loopback sockets, plus a small "browser" that follows
//! redirects by hand and keeps its own cookie jar keyed by cookie name.
//!
//! The browser reaches the application through one of three doors:
//!
//! - [`Door::Proxy`]: the gate is the application's origin
//!   (`http://127.0.0.1:GATE`); requests go straight to it.
//! - [`Door::ForwardAuth`]: the application lives at `http://app.test`; the
//!   browser's request is turned into what Traefik sends the gate
//!   (`GET /` with `X-Forwarded-Method/-Proto/-Host/-Uri` and the browser's
//!   headers), and the gate's answer is what the browser sees (2xx = allowed).
//! - [`Door::AuthRequest`]: the application lives at `http://app.test` behind
//!   nginx; `/oauth2/*` is proxied to the gate, every other request becomes an
//!   `auth_request` subrequest to `/oauth2/auth` (`X-Original-URI`), and a 401
//!   from it becomes a 302 to its `X-Auth-Redirect` (nginx `error_page 401`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use serde_json::Value;
use testkit::served::Served;
use testkit::upstream::EchoUpstream;
use testkit::{IdpConfig, TestIdp};
use url::Url;

/// Prefix of every cookie the gate sets.
pub(crate) const GATE_COOKIE_PREFIX: &str = "_oidcgate_";
/// Name of the first session chunk.
pub(crate) const SESSION_COOKIE: &str = "_oidcgate_s_0";
/// Name of the pending-login cookie.
pub(crate) const LOGIN_COOKIE: &str = "_oidcgate_login";
/// Host of the application in the forward-auth and auth_request doors.
pub(crate) const APP_HOST: &str = "app.test";
/// The test provider's default user.
pub(crate) const USER_EMAIL: &str = "demo@example.com";
/// The test provider's default subject.
pub(crate) const USER_SUB: &str = "demo-user-1";
/// Session key shared by every gate of a test (so sessions are portable
/// between two gates with different policies).
pub(crate) const SESSION_KEY: &str = "integration-test-key-0123456789abcdef-xyz";
/// Upper bound on any single HTTP exchange in these tests.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Redirect hops a login may take before the browser gives up.
const MAX_HOPS: usize = 12;

/// How the browser reaches the protected application.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Door {
    /// The gate is a reverse proxy in front of the echo upstream.
    Proxy,
    /// Traefik ForwardAuth in front of `http://app.test`.
    ForwardAuth,
    /// nginx `auth_request` in front of `http://app.test`.
    AuthRequest,
}

impl Door {
    /// Every door.
    pub(crate) const ALL: [Door; 3] = [Door::Proxy, Door::ForwardAuth, Door::AuthRequest];

    /// Status of an allowed request: the upstream's 200 (proxy), the
    /// forward-auth 200, or the auth_request 202.
    pub(crate) fn allowed_status(self) -> StatusCode {
        match self {
            Door::AuthRequest => StatusCode::ACCEPTED,
            _ => StatusCode::OK,
        }
    }
}

/// A gate serving on `127.0.0.1:PORT`; shut down when dropped.
pub(crate) struct GateServer(Served);

impl GateServer {
    /// Builds a gate from `yaml` and serves it on an ephemeral port.
    pub(crate) async fn start(yaml: &str) -> GateServer {
        Self::start_with_clock(yaml, Arc::new(oidcgate::clock::SystemClock)).await
    }

    /// [`GateServer::start`] with the gate reading time from `clock`.
    pub(crate) async fn start_with_clock(
        yaml: &str,
        clock: oidcgate::clock::SharedClock,
    ) -> GateServer {
        Self::start_with_parts(
            yaml,
            clock,
            oidcgate::telemetry::metrics::Metrics::disabled(),
        )
        .await
    }

    /// [`GateServer::start`], recording into `metrics`.
    pub(crate) async fn start_with_metrics(
        yaml: &str,
        metrics: oidcgate::telemetry::metrics::Metrics,
    ) -> GateServer {
        Self::start_with_parts(yaml, Arc::new(oidcgate::clock::SystemClock), metrics).await
    }

    /// [`GateServer::start`] with the gate's clock and metrics.
    async fn start_with_parts(
        yaml: &str,
        clock: oidcgate::clock::SharedClock,
        metrics: oidcgate::telemetry::metrics::Metrics,
    ) -> GateServer {
        if std::env::var_os("IT_LOG").is_some() {
            // Debug aid: `IT_LOG=1 cargo test --test it -- NAME --nocapture`.
            let _ = tracing_subscriber::fmt()
                .with_env_filter("oidcgate=debug")
                .with_test_writer()
                .try_init();
        }
        let cfg = oidcgate::config::Config::from_yaml(yaml, &|_| None)
            .unwrap_or_else(|e| panic!("config refused: {e}\n{yaml}"));
        let gate = oidcgate::assemble_with(&cfg, oidcgate::cache::Caches::memory(), clock, metrics)
            .unwrap();
        // Discover before serving, as a readiness probe would wait for: a
        // request racing the background start-up discovery gets 503 (see
        // `doors::request_during_startup_discovery_is_not_refused`). A dead
        // provider simply stays undiscovered.
        let _ = gate.warm_up().await;
        let app = cfg.app.clone();
        GateServer(Served::start(|listener, stop| oidcgate::run(gate, app, listener, stop)).await)
    }

    /// The listening address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.0.addr()
    }

    /// `http://127.0.0.1:PORT`.
    pub(crate) fn url(&self) -> String {
        self.0.url()
    }
}

/// Everything one test needs: provider, upstream, gate, door.
pub(crate) struct Harness {
    /// The test OpenID Provider.
    pub(crate) idp: TestIdp,
    /// The echo upstream (used by the proxy door).
    pub(crate) upstream: EchoUpstream,
    /// The gate under test.
    pub(crate) gate: GateServer,
    /// How browsers reach the application.
    pub(crate) door: Door,
}

impl Harness {
    /// Starts provider, upstream and a gate for `door` with `extra` YAML lines.
    pub(crate) async fn start(door: Door, extra: &str) -> Harness {
        Self::start_with(door, IdpConfig::default(), extra).await
    }

    /// [`Harness::start`] with a provider configured by `idp_cfg`.
    pub(crate) async fn start_with(door: Door, idp_cfg: IdpConfig, extra: &str) -> Harness {
        let idp = TestIdp::start(idp_cfg).await;
        let upstream = EchoUpstream::start().await;
        let yaml = gate_yaml(&idp, door_upstream(door, &upstream).as_deref(), extra);
        let gate = GateServer::start(&yaml).await;
        Harness {
            idp,
            upstream,
            gate,
            door,
        }
    }

    /// Another gate on the same provider, upstream and session key, with
    /// different `extra` YAML lines.
    pub(crate) async fn second_gate(&self, extra: &str) -> GateServer {
        let yaml = gate_yaml(
            &self.idp,
            door_upstream(self.door, &self.upstream).as_deref(),
            extra,
        );
        GateServer::start(&yaml).await
    }

    /// A browser with an empty cookie jar, using this harness's gate.
    pub(crate) fn browser(&self) -> Browser {
        Browser::new(self.door, &self.gate, &self.idp)
    }

    /// The application's origin as the browser sees it.
    pub(crate) fn app_origin(&self) -> String {
        app_origin(self.door, &self.gate)
    }

    /// The redirect URI the gate must register for plain-http requests.
    pub(crate) fn redirect_uri(&self) -> String {
        format!("{}/oauth2/callback", self.app_origin())
    }

    /// A browser that has completed a login (landing on `/`).
    pub(crate) async fn logged_in_browser(&self) -> Browser {
        let mut b = self.browser();
        let trace = b.login(self, "/").await;
        assert_eq!(trace.landed.status, self.door.allowed_status());
        b
    }
}

fn door_upstream(door: Door, upstream: &EchoUpstream) -> Option<String> {
    (door == Door::Proxy).then(|| upstream.url())
}

/// The YAML of a gate in front of `idp`.
pub(crate) fn gate_yaml(idp: &TestIdp, upstream: Option<&str>, extra: &str) -> String {
    let mut yaml = format!(
        "providerURL: {issuer}\nclientID: {id}\nclientSecret: {secret}\n\
         sessionEncryptionKey: {SESSION_KEY}\nlogLevel: error\n",
        issuer = idp.issuer(),
        id = idp.client_id(),
        secret = idp.client_secret(),
    );
    if let Some(up) = upstream {
        yaml.push_str(&format!("upstream: {up}\n"));
    }
    yaml.push_str(extra);
    if !extra.is_empty() && !extra.ends_with('\n') {
        yaml.push('\n');
    }
    yaml
}

fn app_origin(door: Door, gate: &GateServer) -> String {
    match door {
        Door::Proxy => gate.url(),
        Door::ForwardAuth | Door::AuthRequest => format!("http://{APP_HOST}"),
    }
}

/// One HTTP response as the browser saw it.
#[derive(Debug, Clone)]
pub(crate) struct Resp {
    /// The URL the browser asked for.
    pub(crate) url: Url,
    /// Status code.
    pub(crate) status: StatusCode,
    /// Response headers.
    pub(crate) headers: HeaderMap,
    /// Body text.
    pub(crate) body: String,
}

impl Resp {
    /// A header as text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `Location` header, resolved against the request URL.
    pub(crate) fn location(&self) -> Option<Url> {
        self.header("location").map(|l| self.url.join(l).unwrap())
    }

    /// The raw `Location` header.
    pub(crate) fn raw_location(&self) -> Option<&str> {
        self.header("location")
    }

    /// Every `Set-Cookie` line.
    pub(crate) fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    /// The `Set-Cookie` line for cookie `name` (the last one wins).
    pub(crate) fn set_cookie(&self, name: &str) -> Option<String> {
        self.set_cookies()
            .into_iter()
            .rev()
            .find(|c| cookie_name(c) == name)
    }

    /// The body as JSON.
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }

    /// Headers the echo upstream received (proxy door), lower-case names.
    pub(crate) fn upstream_headers(&self) -> BTreeMap<String, String> {
        let v = self.json();
        v["headers"]
            .as_object()
            .unwrap_or_else(|| panic!("not an echo response: {}", self.body))
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect()
    }

    /// The identity headers an allowed request carries onward: what the
    /// upstream received (proxy) or what the 2xx answer tells the proxy to
    /// copy (forward-auth, auth_request).
    pub(crate) fn identity(&self, door: Door) -> BTreeMap<String, String> {
        match door {
            Door::Proxy => self.upstream_headers(),
            Door::ForwardAuth | Door::AuthRequest => self
                .headers
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
                .collect(),
        }
    }

    /// True for 301/302/303/307/308.
    pub(crate) fn is_redirect(&self) -> bool {
        self.status.is_redirection()
    }
}

/// The name in a `Set-Cookie` line.
pub(crate) fn cookie_name(set_cookie: &str) -> &str {
    set_cookie
        .split(';')
        .next()
        .and_then(|nv| nv.split_once('='))
        .map_or("", |(n, _)| n.trim())
}

/// The attributes of a `Set-Cookie` line, lower-cased (`httponly`,
/// `samesite=lax`, `max-age=0`, ...).
pub(crate) fn cookie_attrs(set_cookie: &str) -> Vec<String> {
    set_cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect()
}

/// True when a `Set-Cookie` line deletes its cookie.
pub(crate) fn is_deletion(set_cookie: &str) -> bool {
    cookie_attrs(set_cookie).iter().any(|a| a == "max-age=0")
}

/// The trace of a completed login.
#[derive(Debug)]
pub(crate) struct LoginTrace {
    /// The first answer to the protected URL (302, or 401 for auth_request).
    pub(crate) first: Resp,
    /// The authorization URL the browser was sent to.
    pub(crate) authorize: Url,
    /// Every `Set-Cookie` the gate sent when starting the login.
    pub(crate) start_cookies: Vec<String>,
    /// The provider's redirect back to the callback.
    pub(crate) callback: Url,
    /// The gate's answer at the callback.
    pub(crate) callback_resp: Resp,
    /// The protected URL, fetched again after the callback.
    pub(crate) landed: Resp,
}

/// A browser: no automatic redirects, its own cookie jar keyed by name.
pub(crate) struct Browser {
    http: reqwest::Client,
    /// Cookie name → value. Gate cookies start with [`GATE_COOKIE_PREFIX`].
    pub(crate) jar: BTreeMap<String, String>,
    door: Door,
    gate: SocketAddr,
    idp: SocketAddr,
    /// Further providers the browser may be sent to (several providers in
    /// one gate).
    other_idps: Vec<SocketAddr>,
    origin: String,
    /// Headers sent with every request to the application.
    pub(crate) extra_headers: Vec<(String, String)>,
}

impl Browser {
    /// A browser reaching `gate` through `door`, logging in at `idp`.
    pub(crate) fn new(door: Door, gate: &GateServer, idp: &TestIdp) -> Browser {
        Browser {
            http: client(),
            jar: BTreeMap::new(),
            door,
            gate: gate.addr(),
            idp: idp.addr(),
            other_idps: Vec::new(),
            origin: app_origin(door, gate),
            extra_headers: Vec::new(),
        }
    }

    /// A browser reaching `gate` through `door`, logging in at a provider
    /// other than the test OpenID Provider (listening on `provider`).
    pub(crate) fn for_provider(door: Door, gate: &GateServer, provider: SocketAddr) -> Browser {
        Browser {
            http: client(),
            jar: BTreeMap::new(),
            door,
            gate: gate.addr(),
            idp: provider,
            other_idps: Vec::new(),
            origin: app_origin(door, gate),
            extra_headers: Vec::new(),
        }
    }

    /// The same cookies, reaching another gate through the same door.
    pub(crate) fn via(&self, gate: &GateServer) -> Browser {
        Browser {
            http: self.http.clone(),
            jar: self.jar.clone(),
            door: self.door,
            gate: gate.addr(),
            idp: self.idp,
            other_idps: self.other_idps.clone(),
            origin: app_origin(self.door, gate),
            extra_headers: self.extra_headers.clone(),
        }
    }

    /// Lets the browser log in at `idp` too (a gate with several providers).
    pub(crate) fn also_at(&mut self, idp: &TestIdp) {
        self.other_idps.push(idp.addr());
    }

    fn is_provider(&self, authority: &str) -> bool {
        authority == self.idp.to_string()
            || self.other_idps.iter().any(|a| a.to_string() == authority)
    }

    /// Visits the application over `https://` from now on (the front
    /// proxy reports it in `X-Forwarded-Proto`).
    pub(crate) fn use_https(&mut self) {
        self.origin = self.origin.replacen("http://", "https://", 1);
    }

    /// The application URL of `path_and_query`.
    pub(crate) fn app_url(&self, path_and_query: &str) -> Url {
        Url::parse(&format!("{}{path_and_query}", self.origin)).unwrap()
    }

    /// The `Cookie` header for the gate (gate cookies only).
    pub(crate) fn gate_cookie_header(&self) -> Option<String> {
        let pairs: Vec<String> = self
            .jar
            .iter()
            .filter(|(n, _)| n.starts_with(GATE_COOKIE_PREFIX))
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    /// Drops every session chunk (the login cookie stays).
    pub(crate) fn drop_session_cookies(&mut self) {
        self.jar
            .retain(|n, _| !n.starts_with(&format!("{GATE_COOKIE_PREFIX}s_")));
    }

    /// Records the `Set-Cookie` lines of a response.
    pub(crate) fn absorb(&mut self, resp: &Resp) {
        for line in resp.set_cookies() {
            let name = cookie_name(&line).to_owned();
            let value = line
                .split(';')
                .next()
                .and_then(|nv| nv.split_once('='))
                .map_or("", |(_, v)| v.trim())
                .to_owned();
            if is_deletion(&line) || value.is_empty() {
                self.jar.remove(&name);
            } else {
                self.jar.insert(name, value);
            }
        }
    }

    /// A navigation (`GET`, `Accept: text/html`) to `url`.
    pub(crate) async fn get(&mut self, url: &Url) -> Resp {
        self.request(Method::GET, url, &[("accept", "text/html")], None)
            .await
    }

    /// A navigation to an application path.
    pub(crate) async fn get_app(&mut self, path_and_query: &str) -> Resp {
        let url = self.app_url(path_and_query);
        self.get(&url).await
    }

    /// Sends one request through the door (or to the provider) and records
    /// the cookies of the answer.
    pub(crate) async fn request(
        &mut self,
        method: Method,
        url: &Url,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Resp {
        let resp = self.send_raw(method, url, headers, body).await;
        self.absorb(&resp);
        resp
    }

    async fn send_raw(
        &self,
        method: Method,
        url: &Url,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Resp {
        let authority = format!(
            "{}:{}",
            url.host_str().unwrap_or(""),
            url.port_or_known_default().unwrap_or(80)
        );
        if self.is_provider(&authority) {
            // The provider sets no cookies and gets none of the gate's.
            let resp = self.http.request(method, url.clone()).send().await.unwrap();
            return into_resp(url.clone(), resp).await;
        }
        let path_and_query = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let mut h: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        h.extend(self.extra_headers.iter().cloned());
        if let Some(c) = self.gate_cookie_header() {
            h.push(("cookie".into(), c));
        }
        let gate = format!("http://{}", self.gate);
        match self.door {
            Door::Proxy => {
                assert_eq!(
                    authority,
                    self.gate.to_string(),
                    "the browser left the application: {url}"
                );
                send(
                    &self.http,
                    method,
                    &format!("{gate}{path_and_query}"),
                    &h,
                    body,
                    url,
                )
                .await
            }
            Door::ForwardAuth => {
                assert_eq!(url.host_str(), Some(APP_HOST), "unexpected host: {url}");
                let method_name = method.as_str().to_owned();
                h.push(("x-forwarded-method".into(), method_name));
                h.push(("x-forwarded-proto".into(), url.scheme().into()));
                h.push(("x-forwarded-host".into(), APP_HOST.into()));
                h.push(("x-forwarded-uri".into(), path_and_query));
                send(&self.http, Method::GET, &format!("{gate}/"), &h, None, url).await
            }
            Door::AuthRequest => {
                assert_eq!(url.host_str(), Some(APP_HOST), "unexpected host: {url}");
                h.push(("x-forwarded-proto".into(), url.scheme().into()));
                h.push(("x-forwarded-host".into(), APP_HOST.into()));
                if path_and_query.starts_with("/oauth2/") {
                    // `location /oauth2/ { proxy_pass http://gate; }`
                    return send(
                        &self.http,
                        method,
                        &format!("{gate}{path_and_query}"),
                        &h,
                        body,
                        url,
                    )
                    .await;
                }
                h.push(("x-original-uri".into(), path_and_query));
                h.push(("x-original-method".into(), method.as_str().to_owned()));
                let auth = send(
                    &self.http,
                    Method::GET,
                    &format!("{gate}/oauth2/auth"),
                    &h,
                    None,
                    url,
                )
                .await;
                assert!(
                    !auth.is_redirect(),
                    "auth_request must never answer a redirect: {auth:?}"
                );
                auth
            }
        }
    }

    /// Follows redirects from `url` until a non-redirect answer, or a
    /// redirect leaving for a host other than the app or the provider.
    /// Returns every hop.
    pub(crate) async fn navigate(&mut self, url: &Url) -> Vec<Resp> {
        let mut hops = Vec::new();
        let mut next = url.clone();
        for _ in 0..MAX_HOPS {
            let resp = self.get(&next).await;
            let follow = self.next_hop(&resp);
            hops.push(resp);
            match follow {
                Some(u) => next = u,
                None => return hops,
            }
        }
        panic!("more than {MAX_HOPS} redirects from {url}: {hops:#?}");
    }

    /// Where the browser goes after `resp`, if anywhere: a redirect, or (in
    /// the auth_request door) nginx's `error_page 401` to `X-Auth-Redirect`.
    pub(crate) fn next_hop(&self, resp: &Resp) -> Option<Url> {
        if resp.is_redirect() {
            let loc = resp.location()?;
            let authority = format!("{}:{}", loc.host_str()?, loc.port_or_known_default()?);
            let known = loc.host_str() == Some(APP_HOST)
                || authority == self.gate.to_string()
                || self.is_provider(&authority);
            return known.then_some(loc);
        }
        if self.door == Door::AuthRequest && resp.status == StatusCode::UNAUTHORIZED {
            let target = resp.header("x-auth-redirect")?;
            return Some(self.app_url("/").join(target).unwrap());
        }
        None
    }

    /// Logs in by visiting `path`, asserting every hop of the flow.
    pub(crate) async fn login(&mut self, h: &Harness, path: &str) -> LoginTrace {
        self.login_with_redirect_uri(h, path, &h.redirect_uri())
            .await
    }

    /// [`Browser::login`] with an explicit expected redirect URI.
    pub(crate) async fn login_with_redirect_uri(
        &mut self,
        h: &Harness,
        path: &str,
        redirect_uri: &str,
    ) -> LoginTrace {
        let target = self.app_url(path);
        let first = self.get(&target).await;
        // 1. The protected URL sends the browser to the provider (through
        //    /oauth2/start in the auth_request door).
        let start = if self.door == Door::AuthRequest {
            assert_eq!(first.status, StatusCode::UNAUTHORIZED, "{first:?}");
            let redirect = first.header("x-auth-redirect").unwrap();
            assert!(redirect.starts_with("/oauth2/start?rd="), "{redirect}");
            let start_url = self.next_hop(&first).unwrap();
            assert_eq!(
                query_map(&start_url).get("rd").map(String::as_str),
                Some(path),
                "rd must carry the original path and query"
            );
            self.get(&start_url).await
        } else {
            first.clone()
        };
        assert_eq!(start.status, StatusCode::FOUND, "login start: {start:?}");
        let authorize = start.location().unwrap();
        check_authorize(&authorize, &h.idp, redirect_uri);
        let start_cookies = start.set_cookies();
        let login_cookie = start.set_cookie(LOGIN_COOKIE).expect("login cookie set");
        assert_cookie_flags(&login_cookie, redirect_uri.starts_with("https://"));

        // 2. The provider logs the user in and returns to the callback.
        let idp_resp = self.get(&authorize).await;
        assert_eq!(idp_resp.status, StatusCode::FOUND, "{idp_resp:?}");
        let callback = idp_resp.location().unwrap();
        let cq = query_map(&callback);
        assert_eq!(
            format!(
                "{}://{}{}",
                callback.scheme(),
                callback.authority(),
                callback.path()
            ),
            redirect_uri
        );
        assert_eq!(cq.get("state"), query_map(&authorize).get("state"));
        assert!(cq.contains_key("code"), "{callback}");

        // 3. The callback sets the session and returns to the original URL.
        let callback_resp = self.get(&callback).await;
        assert_eq!(
            callback_resp.status,
            StatusCode::FOUND,
            "callback: {callback_resp:?}"
        );
        // Absolute on the application's origin (forward-auth proxies would
        // resolve a relative Location against the gate's own address).
        let back = Url::parse(redirect_uri).unwrap().join(path).unwrap();
        assert_eq!(
            callback_resp.raw_location(),
            Some(back.as_str()),
            "the callback must return to the original path and query"
        );
        let session = callback_resp
            .set_cookie(SESSION_COOKIE)
            .expect("session cookie set at the callback");
        assert!(!is_deletion(&session));
        assert_cookie_flags(&session, redirect_uri.starts_with("https://"));

        // 4. Back at the protected URL, the request is allowed.
        let landed = self.get(&target).await;
        LoginTrace {
            first,
            authorize,
            start_cookies,
            callback,
            callback_resp,
            landed,
        }
    }
}

/// Checks the authorization request the gate built.
pub(crate) fn check_authorize(authorize: &Url, idp: &TestIdp, redirect_uri: &str) {
    assert_eq!(
        format!(
            "{}://{}{}",
            authorize.scheme(),
            authorize.authority(),
            authorize.path()
        ),
        format!("{}/authorize", idp.issuer()),
        "login must go to the provider's authorization endpoint"
    );
    let q = query_map(authorize);
    assert_eq!(q.get("response_type").map(String::as_str), Some("code"));
    assert_eq!(
        q.get("client_id").map(String::as_str),
        Some(idp.client_id())
    );
    assert_eq!(
        q.get("redirect_uri").map(String::as_str),
        Some(redirect_uri)
    );
    assert_eq!(
        q.get("code_challenge_method").map(String::as_str),
        Some("S256")
    );
    let challenge = q.get("code_challenge").expect("PKCE code_challenge");
    assert_eq!(challenge.len(), 43, "S256 challenge is 32 bytes base64url");
    for p in ["state", "nonce"] {
        let v = q.get(p).unwrap_or_else(|| panic!("{p} missing"));
        assert!(v.len() >= 22, "{p} too short: {v}");
    }
    assert_ne!(q.get("state"), q.get("nonce"));
    let scope: Vec<&str> = q.get("scope").unwrap().split(' ').collect();
    for s in ["openid", "profile", "email"] {
        assert!(scope.contains(&s), "scope {scope:?} lacks {s}");
    }
}

/// Gate cookies: HttpOnly, SameSite=Lax, Secure exactly when `secure`.
pub(crate) fn assert_cookie_flags(set_cookie: &str, secure: bool) {
    let attrs = cookie_attrs(set_cookie);
    assert!(attrs.iter().any(|a| a == "httponly"), "{set_cookie}");
    assert!(attrs.iter().any(|a| a == "samesite=lax"), "{set_cookie}");
    assert_eq!(
        attrs.iter().any(|a| a == "secure"),
        secure,
        "Secure flag of {set_cookie}"
    );
}

/// The decoded query parameters of `url` (first occurrence wins).
pub(crate) fn query_map(url: &Url) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for (k, v) in url.query_pairs() {
        m.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    m
}

/// A client without redirects, proxies or cookie store.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .unwrap()
}

async fn send(
    http: &reqwest::Client,
    method: Method,
    to: &str,
    headers: &[(String, String)],
    body: Option<Vec<u8>>,
    seen_as: &Url,
) -> Resp {
    let mut req = http.request(method, to);
    for (k, v) in headers {
        req = req.header(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    if let Some(b) = body {
        req = req.body(b);
    }
    let resp = req.send().await.unwrap();
    into_resp(seen_as.clone(), resp).await
}

async fn into_resp(url: Url, resp: reqwest::Response) -> Resp {
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.text().await.unwrap();
    Resp {
        url,
        status,
        headers,
        body,
    }
}

/// Sends one raw request to the gate (no door emulation, no cookies).
pub(crate) async fn raw(
    gate: &GateServer,
    method: Method,
    path_and_query: &str,
    headers: &[(&str, &str)],
) -> Resp {
    let h: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let url = Url::parse(&format!("{}{path_and_query}", gate.url())).unwrap();
    send(&client(), method, url.as_str(), &h, None, &url).await
}

/// The identity headers the gate sends onward.
pub(crate) const SENT_IDENTITY_HEADERS: &[&str] = &[
    "x-forwarded-user",
    "x-auth-request-user",
    "x-auth-request-email",
    "x-auth-request-groups",
    "x-user-groups",
    "x-user-roles",
];
