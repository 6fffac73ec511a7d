//! An in-process fake of GitHub's OAuth web flow and the REST API endpoints
//! a login reads, written from GitHub's documented contract.
//!
//! - `GET /login/oauth/authorize` logs in the current [`GitHubAccount`]
//!   without interaction and redirects to `redirect_uri` with `code` and
//!   `state`; a PKCE `code_challenge` must use `S256`.
//! - `POST /login/oauth/access_token` takes `client_id`, `client_secret`,
//!   `code`, `redirect_uri` and `code_verifier` in the form body and answers
//!   JSON when asked (`Accept: application/json`), form-encoded otherwise.
//!   Refusals are HTTP 200 with `error` (`incorrect_client_credentials`,
//!   `bad_verification_code`, `redirect_uri_mismatch`), as GitHub does.
//! - `GET /api/v3/user`, `/api/v3/user/emails`, `/api/v3/user/orgs`,
//!   `/api/v3/user/teams` with `Authorization: Bearer` (or `token`); lists
//!   honour `per_page` (at most 100) and `page`; a request without
//!   `User-Agent` is refused with 403, as the REST API does. `orgs` and
//!   `teams` need the `read:org` scope, `emails` the `user:email` scope.
//!
//! The API base is `http://127.0.0.1:PORT/api/v3`, the layout of GitHub
//! Enterprise Server.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tower::ServiceExt as _;

use crate::server;

/// One e-mail address of a GitHub account.
#[derive(Clone, Debug)]
pub struct GitHubEmail {
    /// The address.
    pub email: String,
    /// The account's primary address.
    pub primary: bool,
    /// GitHub has verified it.
    pub verified: bool,
}

/// The account `/login/oauth/authorize` logs in.
#[derive(Clone, Debug)]
pub struct GitHubAccount {
    /// Numeric id.
    pub id: u64,
    /// Login.
    pub login: String,
    /// Display name.
    pub name: Option<String>,
    /// E-mail addresses (`/user/emails`).
    pub emails: Vec<GitHubEmail>,
    /// Organization logins (`/user/orgs`).
    pub orgs: Vec<String>,
    /// Teams as `(org, slug)` (`/user/teams`).
    pub teams: Vec<(String, String)>,
}

impl GitHubAccount {
    /// An account with a verified primary address and no memberships.
    pub fn new(id: u64, login: &str, email: &str) -> Self {
        Self {
            id,
            login: login.to_owned(),
            name: None,
            emails: vec![GitHubEmail {
                email: email.to_owned(),
                primary: true,
                verified: true,
            }],
            orgs: Vec::new(),
            teams: Vec::new(),
        }
    }
}

struct Grant {
    redirect_uri: String,
    challenge: Option<String>,
    scopes: String,
}

struct Shared {
    client_id: String,
    client_secret: String,
    account: Mutex<GitHubAccount>,
    codes: Mutex<HashMap<String, Grant>>,
    tokens: Mutex<HashMap<String, String>>,
    api_failure: Mutex<Option<u16>>,
    next: AtomicU64,
    api_calls: AtomicUsize,
}

/// The fake GitHub; stops when dropped.
pub struct FakeGitHub {
    shared: Arc<Shared>,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeGitHub {
    /// Serves the fake on an ephemeral loopback port with one OAuth app
    /// and `account` as the signed-in user.
    pub async fn start(account: GitHubAccount) -> FakeGitHub {
        let (listener, addr) = server::bind_loopback().await;
        let shared = Arc::new(Shared {
            client_id: "Iv1.fakegithubapp".into(),
            client_secret: "fake-github-secret".into(),
            account: Mutex::new(account),
            codes: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
            api_failure: Mutex::new(None),
            next: AtomicU64::new(1),
            api_calls: AtomicUsize::new(0),
        });
        let router = routes(shared.clone());
        let task = server::spawn(listener, move |req| {
            let router = router.clone();
            async move {
                let r = router.oneshot(req).await;
                Ok(r.unwrap_or_else(|never| match never {}))
            }
        });
        FakeGitHub { shared, addr, task }
    }

    /// `http://127.0.0.1:PORT`: the web origin (`providerURL`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The OAuth app's client id.
    pub fn client_id(&self) -> &str {
        &self.shared.client_id
    }

    /// The OAuth app's client secret.
    pub fn client_secret(&self) -> &str {
        &self.shared.client_secret
    }

    /// Replaces the account the next authorization logs in.
    pub fn set_account(&self, account: GitHubAccount) {
        *self.shared.account.lock() = account;
    }

    /// Makes every API call answer `status` (`None` restores service).
    pub fn fail_api(&self, status: Option<u16>) {
        *self.shared.api_failure.lock() = status;
    }

    /// REST API requests served so far (failed ones included).
    pub fn api_calls(&self) -> usize {
        self.shared.api_calls.load(Ordering::Relaxed)
    }
}

fn routes(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/login/oauth/authorize", get(authorize))
        .route("/login/oauth/access_token", post(access_token))
        .route("/api/v3/user", get(user))
        .route("/api/v3/user/emails", get(emails))
        .route("/api/v3/user/orgs", get(orgs))
        .route("/api/v3/user/teams", get(teams))
        .with_state(shared)
}

fn params(q: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(q.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

async fn authorize(State(s): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    let p = params(q.as_deref().unwrap_or(""));
    if p.get("client_id") != Some(&s.client_id) {
        return (StatusCode::NOT_FOUND, "unknown client_id").into_response();
    }
    let Some(redirect_uri) = p.get("redirect_uri").cloned() else {
        return (StatusCode::BAD_REQUEST, "redirect_uri required").into_response();
    };
    let challenge = p.get("code_challenge").cloned();
    if challenge.is_some() && p.get("code_challenge_method").map(String::as_str) != Some("S256") {
        return (
            StatusCode::BAD_REQUEST,
            "code_challenge_method must be S256",
        )
            .into_response();
    }
    let code = format!("code{}", s.next.fetch_add(1, Ordering::Relaxed));
    s.codes.lock().insert(
        code.clone(),
        Grant {
            redirect_uri: redirect_uri.clone(),
            challenge,
            scopes: p.get("scope").cloned().unwrap_or_default(),
        },
    );
    let mut url = url::Url::parse(&redirect_uri).expect("redirect_uri is a URL");
    url.query_pairs_mut().append_pair("code", &code);
    if let Some(state) = p.get("state") {
        url.query_pairs_mut().append_pair("state", state);
    }
    (StatusCode::FOUND, [(header::LOCATION, url.to_string())]).into_response()
}

/// GitHub answers refusals with HTTP 200 and an `error` member.
fn token_error(code: &str) -> Value {
    json!({
        "error": code,
        "error_description": format!("fake GitHub: {code}"),
        "error_uri": "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors",
    })
}

async fn access_token(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let p = params(std::str::from_utf8(&body).unwrap_or(""));
    let answer = exchange(&s, &p);
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"));
    if wants_json {
        return json_response(StatusCode::OK, &answer);
    }
    let form: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(
            answer
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_str().map_or(v.to_string(), str::to_owned))),
        )
        .finish();
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-www-form-urlencoded")],
        form,
    )
        .into_response()
}

fn exchange(s: &Shared, p: &HashMap<String, String>) -> Value {
    if p.get("client_id") != Some(&s.client_id) || p.get("client_secret") != Some(&s.client_secret)
    {
        return token_error("incorrect_client_credentials");
    }
    let Some(grant) = p.get("code").and_then(|c| s.codes.lock().remove(c)) else {
        return token_error("bad_verification_code");
    };
    if p.get("redirect_uri")
        .is_some_and(|r| *r != grant.redirect_uri)
    {
        return token_error("redirect_uri_mismatch");
    }
    if let Some(challenge) = &grant.challenge {
        let Some(verifier) = p.get("code_verifier") else {
            return token_error("bad_verification_code");
        };
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
        let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref());
        if computed != *challenge {
            return token_error("bad_verification_code");
        }
    }
    let token = format!("gho_fake{}", s.next.fetch_add(1, Ordering::Relaxed));
    // GitHub reports the granted scopes comma-separated.
    let scope = grant
        .scopes
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(",");
    s.tokens.lock().insert(token.clone(), scope.clone());
    json!({ "access_token": token, "token_type": "bearer", "scope": scope })
}

/// Checks the API request: the fault switch, `User-Agent`, the token, and
/// `scope` when given. `Err` is the status and message GitHub would answer.
fn api_check(
    s: &Shared,
    headers: &HeaderMap,
    scope: Option<&str>,
) -> Result<(), (StatusCode, String)> {
    s.api_calls.fetch_add(1, Ordering::Relaxed);
    if let Some(code) = *s.api_failure.lock() {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
        return Err((status, "Server Error".into()));
    }
    if !headers.contains_key(header::USER_AGENT) {
        return Err((
            StatusCode::FORBIDDEN,
            "Request forbidden by administrative rules. Please make sure your request has a \
             User-Agent header"
                .into(),
        ));
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| {
            scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token")
        })
        .map(|(_, t)| t.trim().to_owned());
    let granted = token.and_then(|t| s.tokens.lock().get(&t).cloned());
    let Some(granted) = granted else {
        return Err((StatusCode::UNAUTHORIZED, "Bad credentials".into()));
    };
    if let Some(needed) = scope
        && !granted.split(',').any(|g| g == needed)
    {
        return Err((StatusCode::FORBIDDEN, format!("needs the {needed} scope")));
    }
    Ok(())
}

/// The answer to a refused API request.
fn api_refusal((status, message): (StatusCode, String)) -> Response {
    json_response(status, &json!({ "message": message }))
}

/// The page of `all` that `per_page` and `page` select.
fn page(all: Vec<Value>, q: Option<&str>) -> Value {
    let p = params(q.unwrap_or(""));
    let per_page: usize = p
        .get("per_page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let page: usize = p
        .get("page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    Value::Array(
        all.into_iter()
            .skip((page - 1) * per_page)
            .take(per_page)
            .collect(),
    )
}

async fn user(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Err(e) = api_check(&s, &headers, None) {
        return api_refusal(e);
    }
    let a = s.account.lock().clone();
    // `email` is the public address only, verified or not.
    let public = a.emails.iter().find(|e| e.primary).map(|e| e.email.clone());
    json_response(
        StatusCode::OK,
        &json!({ "id": a.id, "login": a.login, "name": a.name, "email": public, "type": "User" }),
    )
}

async fn emails(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    if let Err(e) = api_check(&s, &headers, Some("user:email")) {
        return api_refusal(e);
    }
    let all = s
        .account
        .lock()
        .emails
        .iter()
        .map(|e| {
            json!({ "email": e.email, "primary": e.primary, "verified": e.verified, "visibility": "private" })
        })
        .collect();
    json_response(StatusCode::OK, &page(all, q.as_deref()))
}

async fn orgs(State(s): State<Arc<Shared>>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    if let Err(e) = api_check(&s, &headers, Some("read:org")) {
        return api_refusal(e);
    }
    let all = s
        .account
        .lock()
        .orgs
        .iter()
        .enumerate()
        .map(|(i, o)| json!({ "login": o, "id": i + 1 }))
        .collect();
    json_response(StatusCode::OK, &page(all, q.as_deref()))
}

async fn teams(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    if let Err(e) = api_check(&s, &headers, Some("read:org")) {
        return api_refusal(e);
    }
    let all = s
        .account
        .lock()
        .teams
        .iter()
        .map(|(org, slug)| json!({ "slug": slug, "name": slug, "organization": { "login": org } }))
        .collect();
    json_response(StatusCode::OK, &page(all, q.as_deref()))
}
