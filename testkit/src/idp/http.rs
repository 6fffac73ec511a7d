//! HTTP surface of the test provider.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper::Request;
use hyper::body::Incoming;
use serde_json::{Value, json};
use tower::ServiceExt as _;
use url::Url;

use super::core::{CODE_TTL, CodeGrant, IssuedTokens, RtStatus, Shared, bump};
use super::{Endpoint, Fault, RefreshTokenRule, client_auth};
use crate::jose;

type BoxedResponse = Pin<Box<dyn Future<Output = Result<Response, io::Error>> + Send>>;

/// The connection-level request handler: applies injected faults, then
/// dispatches to the router.
pub(crate) fn handler(
    shared: Arc<Shared>,
) -> impl Fn(Request<Incoming>) -> BoxedResponse + Clone + Send + Sync + 'static {
    let router = routes(shared.clone());
    move |req: Request<Incoming>| {
        let router = router.clone();
        let shared = shared.clone();
        Box::pin(async move {
            let path = req.uri().path();
            let endpoint = endpoint_of(
                path.strip_prefix(shared.cfg.issuer_path.as_str())
                    .unwrap_or(path),
            );
            if let Some(fault) = shared.take_fault(endpoint) {
                match fault {
                    Fault::Delay(d) => tokio::time::sleep(d).await,
                    Fault::Status(code) => {
                        shared.counters.count_faulted(endpoint);
                        let status =
                            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                        let body = json!({
                            "error": "server_error",
                            "error_description": "injected fault",
                        });
                        return Ok(json_response(status, &body));
                    }
                    Fault::OAuthError(code) => {
                        shared.counters.count_faulted(endpoint);
                        let status = if code == "invalid_client" {
                            StatusCode::UNAUTHORIZED
                        } else {
                            StatusCode::BAD_REQUEST
                        };
                        return Ok(json_response(status, &json!({ "error": code })));
                    }
                    Fault::Down => {
                        shared.counters.count_faulted(endpoint);
                        return Err(io::Error::other("injected fault: connection dropped"));
                    }
                    Fault::Hang => {
                        shared.counters.count_faulted(endpoint);
                        std::future::pending::<()>().await;
                    }
                    Fault::Malformed => {
                        shared.counters.count_faulted(endpoint);
                        let mut resp = (StatusCode::OK, "{\"truncated\": [1, 2").into_response();
                        resp.headers_mut().insert(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("application/json"),
                        );
                        return Ok(resp);
                    }
                }
            }
            let response = router.oneshot(req).await;
            Ok(response.unwrap_or_else(|never| match never {}))
        }) as BoxedResponse
    }
}

fn endpoint_of(path: &str) -> Endpoint {
    match path {
        "/.well-known/openid-configuration" => Endpoint::Discovery,
        "/jwks" => Endpoint::Jwks,
        "/authorize" => Endpoint::Authorize,
        "/token" => Endpoint::Token,
        "/introspect" => Endpoint::Introspection,
        "/revoke" => Endpoint::Revocation,
        "/userinfo" => Endpoint::Userinfo,
        "/session/end" => Endpoint::EndSession,
        "/register" => Endpoint::Registration,
        _ => Endpoint::Any,
    }
}

fn routes(shared: Arc<Shared>) -> Router {
    let mut router = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .route("/introspect", post(introspect))
        .route("/revoke", post(revoke))
        .route("/userinfo", get(userinfo).post(userinfo));
    if shared.cfg.with_end_session {
        router = router.route("/session/end", get(end_session));
    }
    if shared.cfg.registration {
        router = router.route("/register", post(register));
    }
    let prefix = shared.cfg.issuer_path.clone();
    let router = router.with_state(shared);
    if prefix.is_empty() {
        router
    } else {
        Router::new().nest(&prefix, router)
    }
}

// ---------------------------------------------------------------------------
// Response helpers

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut resp = (status, axum::Json(body)).into_response();
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

fn found(location: &str) -> Response {
    let mut resp = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// An OAuth 2.0 error response (`{"error", "error_description"}`).
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
        }
    }
    fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", d)
    }
    fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", d)
    }
    fn invalid_client(d: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", d)
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.error, "error_description": self.description });
        let mut resp = json_response(self.status, &body);
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"testkit\""),
            );
        }
        resp
    }
}

// ---------------------------------------------------------------------------
// Request helpers

type Params = HashMap<String, String>;

/// Parses `application/x-www-form-urlencoded` data; the first occurrence of
/// a parameter wins.
fn parse_params(data: &[u8]) -> Params {
    let mut out = Params::new();
    for (k, v) in url::form_urlencoded::parse(data) {
        out.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    out
}

/// The parameters `keep` accepts, sorted by name.
fn sorted(p: &Params, keep: impl Fn(&str) -> bool) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = p
        .iter()
        .filter(|(k, _)| keep(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    v.sort();
    v
}

fn param<'a>(p: &'a Params, name: &str) -> Option<&'a str> {
    p.get(name).map(String::as_str).filter(|v| !v.is_empty())
}

/// Reverses the form-urlencoding that RFC 6749 §2.3.1 applies to the client
/// id and secret inside HTTP Basic credentials.
fn form_decode(s: &str) -> Option<String> {
    let plus_as_space = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// Authenticates the single registered client with the methods it is
/// allowed (see [`client_auth`](super::client_auth)); records the method.
fn authenticate_client(s: &Shared, headers: &HeaderMap, form: &Params) -> Result<(), OAuthError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("basic").then(|| rest.trim())
        });
    let basic = match basic {
        Some(encoded) => {
            let decoded = jose::b64std_decode(encoded)
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))?;
            let (id, secret) = decoded
                .split_once(':')
                .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))?;
            match (form_decode(id), form_decode(secret)) {
                (Some(id), Some(secret)) => Some((id, secret)),
                _ => return Err(OAuthError::invalid_client("malformed Basic credentials")),
            }
        }
        None => None,
    };
    let token_endpoint = format!("{}/token", s.issuer);
    let reg = client_auth::Registration {
        client_id: &s.cfg.client_id,
        client_secret: &s.cfg.client_secret,
        methods: &s.cfg.token_endpoint_auth_methods,
        jwk: s.cfg.client_jwk.as_ref(),
        expected_aud: match s.cfg.assertion_aud {
            client_auth::AssertionAud::Issuer => &s.issuer,
            client_auth::AssertionAud::TokenEndpoint => &token_endpoint,
        },
    };
    let presented = client_auth::Presented {
        basic,
        form_id: param(form, "client_id"),
        form_secret: param(form, "client_secret"),
        assertion_type: param(form, "client_assertion_type"),
        assertion: param(form, "client_assertion"),
    };
    let mut st = s.state.lock();
    let method = client_auth::check(&reg, &presented, &mut st.seen_jtis)
        .map_err(OAuthError::invalid_client)?;
    st.client_auth_log.push(method);
    Ok(())
}

fn valid_redirect(uri: &str) -> bool {
    Url::parse(uri)
        .map(|u| matches!(u.scheme(), "http" | "https") && u.fragment().is_none())
        .unwrap_or(false)
}

fn with_query(base: &str, pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return base.to_owned();
    }
    match Url::parse(base) {
        Ok(mut url) => {
            {
                let mut q = url.query_pairs_mut();
                for (k, v) in pairs {
                    q.append_pair(k, v);
                }
            }
            url.to_string()
        }
        Err(_) => base.to_owned(),
    }
}

fn is_pkce_value(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

// ---------------------------------------------------------------------------
// Endpoints

async fn discovery(State(s): State<Arc<Shared>>) -> Response {
    bump(&s.counters.discovery_fetches);
    let iss = &s.issuer;
    let mut doc = json!({
        "issuer": s.advertised_iss,
        "authorization_endpoint": format!("{iss}/authorize"),
        "token_endpoint": format!("{iss}/token"),
        "jwks_uri": format!("{iss}/jwks"),
        "userinfo_endpoint": format!("{iss}/userinfo"),
        "introspection_endpoint": format!("{iss}/introspect"),
        "revocation_endpoint": format!("{iss}/revoke"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "scopes_supported": s.cfg.scopes_supported,
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": s.cfg.token_endpoint_auth_methods,
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "PS256", "ES256", "HS256"],
        "introspection_endpoint_auth_methods_supported": s.cfg.token_endpoint_auth_methods,
        "revocation_endpoint_auth_methods_supported": s.cfg.token_endpoint_auth_methods,
        "claims_supported": [
            "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "sid", "email",
            "email_verified", "name", "preferred_username", "groups", "roles"
        ],
        "authorization_response_iss_parameter_supported": true,
    });
    if s.cfg.frontchannel_logout_session {
        doc["frontchannel_logout_session_supported"] = Value::from(true);
    }
    if s.cfg.with_end_session {
        doc["end_session_endpoint"] = Value::from(format!("{iss}/session/end"));
    }
    if s.cfg.registration {
        doc["registration_endpoint"] = Value::from(format!("{iss}/register"));
    }
    json_response(StatusCode::OK, &doc)
}

async fn jwks(State(s): State<Arc<Shared>>) -> Response {
    bump(&s.counters.jwks_fetches);
    let mut resp = axum::Json(s.jwks()).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

async fn authorize(State(s): State<Arc<Shared>>, RawQuery(query): RawQuery) -> Response {
    bump(&s.counters.authorize);
    let p = parse_params(query.unwrap_or_default().as_bytes());
    s.state.lock().authorize_log.push(sorted(&p, |_| true));

    if param(&p, "client_id") != Some(s.cfg.client_id.as_str()) {
        return OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "unknown or missing client_id",
        )
        .into_response();
    }
    let redirect_uri = match param(&p, "redirect_uri") {
        Some(r) if valid_redirect(r) => r.to_owned(),
        _ => {
            return OAuthError::invalid_request("missing or invalid redirect_uri").into_response();
        }
    };
    let state = param(&p, "state");
    let fail = |error: &str, description: &str| {
        let mut pairs = vec![("error", error), ("error_description", description)];
        if let Some(state) = state {
            pairs.push(("state", state));
        }
        pairs.push(("iss", s.token_iss.as_str()));
        found(&with_query(&redirect_uri, &pairs))
    };

    if param(&p, "response_type") != Some("code") {
        return fail(
            "unsupported_response_type",
            "only response_type=code is supported",
        );
    }
    let scope = param(&p, "scope").unwrap_or_default();
    if !scope.split(' ').any(|x| x == "openid") {
        return fail("invalid_scope", "scope must include openid");
    }
    let google = s.cfg.refresh_token_rule == RefreshTokenRule::GoogleOffline;
    if google && scope.split(' ').any(|x| x == "offline_access") {
        return fail("invalid_scope", "Some requested scopes were invalid");
    }
    let offline = param(&p, "access_type") == Some("offline")
        && param(&p, "prompt").is_some_and(|v| v.split(' ').any(|x| x == "consent"));
    let Some(state) = state else {
        return fail("invalid_request", "state is required");
    };
    let Some(nonce) = param(&p, "nonce") else {
        return fail("invalid_request", "nonce is required");
    };
    let code_challenge = match (
        param(&p, "code_challenge"),
        param(&p, "code_challenge_method"),
    ) {
        (None, None) => None,
        (Some(c), Some("S256")) if is_pkce_value(c) => Some(c.to_owned()),
        (Some(_), Some("S256")) => return fail("invalid_request", "malformed code_challenge"),
        (Some(_), _) => {
            return fail(
                "invalid_request",
                "only code_challenge_method=S256 is supported",
            );
        }
        (None, Some(_)) => {
            return fail(
                "invalid_request",
                "code_challenge_method without code_challenge",
            );
        }
    };

    let login = s.new_login(scope);
    let code = jose::random_token(24);
    s.state.lock().codes.insert(
        code.clone(),
        CodeGrant {
            login,
            redirect_uri: redirect_uri.clone(),
            nonce: nonce.to_owned(),
            code_challenge,
            offline,
            issued: tokio::time::Instant::now(),
            used: false,
            family: None,
        },
    );
    found(&with_query(
        &redirect_uri,
        &[
            ("code", code.as_str()),
            ("state", state),
            ("iss", s.token_iss.as_str()),
        ],
    ))
}

async fn token(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let form = parse_params(&body);
    s.state.lock().token_log.push(sorted(&form, |k| {
        k != "client_secret" && k != "client_assertion"
    }));
    let c = &s.counters;
    let result = match param(&form, "grant_type") {
        Some("authorization_code") => {
            bump(&c.code_grants);
            token_delay(&s).await;
            code_grant(&s, &headers, &form)
        }
        Some("refresh_token") => {
            bump(&c.refresh_grants);
            token_delay(&s).await;
            refresh_grant(&s, &headers, &form)
        }
        Some("client_credentials") => {
            bump(&c.client_credentials_grants);
            token_delay(&s).await;
            client_credentials_grant(&s, &headers, &form)
        }
        Some(_) => Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant type not supported",
        )),
        None => Err(OAuthError::invalid_request("grant_type is required")),
    };
    match result {
        Ok(body) => json_response(StatusCode::OK, &body),
        Err(e) => {
            bump(&c.failed_grants);
            e.into_response()
        }
    }
}

async fn token_delay(s: &Shared) {
    if !s.cfg.token_endpoint_delay.is_zero() {
        tokio::time::sleep(s.cfg.token_endpoint_delay).await;
    }
}

fn token_response(s: &Shared, t: IssuedTokens) -> Value {
    let mut body = json!({
        "access_token": t.access_token,
        "token_type": "Bearer",
        "expires_in": s.cfg.access_token_ttl.as_secs(),
        "id_token": t.id_token,
        "scope": t.scope,
    });
    if let Some(rt) = t.refresh_token {
        body["refresh_token"] = Value::from(rt);
    }
    body
}

fn code_grant(s: &Shared, headers: &HeaderMap, form: &Params) -> Result<Value, OAuthError> {
    authenticate_client(s, headers, form)?;
    let code =
        param(form, "code").ok_or_else(|| OAuthError::invalid_request("code is required"))?;
    let (login, nonce, family, offline) = {
        let mut st = s.state.lock();
        let family = st.new_family();
        let Some(grant) = st.codes.get_mut(code) else {
            return Err(OAuthError::invalid_grant("unknown authorization code"));
        };
        if grant.used {
            // A replayed code revokes whatever was issued from it.
            if let Some(f) = grant.family {
                st.revoke_family(f);
            }
            return Err(OAuthError::invalid_grant("authorization code already used"));
        }
        // A code is consumed by its first redemption attempt, even a failed one.
        grant.used = true;
        if grant.issued.elapsed() > CODE_TTL {
            return Err(OAuthError::invalid_grant("authorization code expired"));
        }
        if grant.login.client_id != s.cfg.client_id {
            return Err(OAuthError::invalid_grant(
                "code was issued to another client",
            ));
        }
        if param(form, "redirect_uri") != Some(grant.redirect_uri.as_str()) {
            return Err(OAuthError::invalid_grant("redirect_uri mismatch"));
        }
        let verifier = param(form, "code_verifier");
        match (&grant.code_challenge, verifier) {
            (None, None) => {}
            (None, Some(_)) => {
                return Err(OAuthError::invalid_grant(
                    "code_verifier sent but no code_challenge was",
                ));
            }
            (Some(_), None) => return Err(OAuthError::invalid_grant("code_verifier is required")),
            (Some(challenge), Some(verifier)) => {
                let computed = jose::b64url(jose::sha256(verifier.as_bytes()));
                if !is_pkce_value(verifier) || &computed != challenge {
                    return Err(OAuthError::invalid_grant("PKCE verification failed"));
                }
            }
        }
        grant.family = Some(family);
        let offline = match s.cfg.refresh_token_rule {
            RefreshTokenRule::Always => true,
            RefreshTokenRule::GoogleOffline => grant.offline,
        };
        (grant.login.clone(), grant.nonce.clone(), family, offline)
    };
    let tokens = s.issue_tokens(
        &login,
        family,
        Some(&nonce),
        s.cfg.issue_refresh_tokens && offline,
        param(form, "resource"),
    );
    Ok(token_response(s, tokens))
}

fn refresh_grant(s: &Shared, headers: &HeaderMap, form: &Params) -> Result<Value, OAuthError> {
    authenticate_client(s, headers, form)?;
    let rt = param(form, "refresh_token")
        .ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
    let rotate = s.cfg.rotate_refresh_tokens;
    let (login, family) = {
        let mut st = s.state.lock();
        let Some(grant) = st.refresh.get(rt) else {
            return Err(OAuthError::invalid_grant("unknown refresh token"));
        };
        let family = grant.family;
        match grant.status {
            RtStatus::Active => {}
            RtStatus::Used => {
                st.revoke_family(family);
                return Err(OAuthError::invalid_grant("refresh token reuse detected"));
            }
            RtStatus::Revoked => return Err(OAuthError::invalid_grant("refresh token revoked")),
            RtStatus::Expired => return Err(OAuthError::invalid_grant("refresh token expired")),
        }
        if st.ended_sids.contains(&grant.login.sid) {
            return Err(OAuthError::invalid_grant("session has ended"));
        }
        if let Some(requested) = param(form, "scope") {
            let granted: Vec<&str> = grant.login.scope.split(' ').collect();
            if requested.split(' ').any(|x| !granted.contains(&x)) {
                return Err(OAuthError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    "requested scope exceeds the original grant",
                ));
            }
        }
        let login = grant.login.clone();
        if rotate && let Some(grant) = st.refresh.get_mut(rt) {
            grant.status = RtStatus::Used;
        }
        (login, family)
    };
    let tokens = s.issue_tokens(&login, family, None, rotate, param(form, "resource"));
    let mut body = token_response(s, tokens);
    if !s.cfg.id_token_on_refresh
        && let Some(map) = body.as_object_mut()
    {
        map.remove("id_token");
    }
    Ok(body)
}

fn client_credentials_grant(
    s: &Shared,
    headers: &HeaderMap,
    form: &Params,
) -> Result<Value, OAuthError> {
    authenticate_client(s, headers, form)?;
    let audience = param(form, "audience")
        .or_else(|| param(form, "resource"))
        .unwrap_or(&s.cfg.api_audience);
    let scope = param(form, "scope").unwrap_or("api");
    let token = s.client_credentials_token(audience, scope);
    Ok(json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": s.cfg.access_token_ttl.as_secs(),
        "scope": scope,
    }))
}

async fn introspect(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    bump(&s.counters.introspections);
    let form = parse_params(&body);
    if let Err(e) = authenticate_client(&s, &headers, &form) {
        return e.into_response();
    }
    let Some(token) = param(&form, "token") else {
        return OAuthError::invalid_request("token is required").into_response();
    };
    let st = s.state.lock();
    let body = if let Some(at) = st.access.get(token).filter(|at| at.active()) {
        let mut body = json!({
            "active": true,
            "iss": s.token_iss,
            "sub": at.sub,
            "client_id": at.client_id,
            "aud": at.aud,
            "exp": at.exp,
            "iat": at.iat,
            "scope": at.scope,
            "token_type": "Bearer",
        });
        if let Some(user) = &at.user {
            body["username"] = Value::from(user.username());
        }
        body
    } else if let Some(rt) = st
        .refresh
        .get(token)
        .filter(|rt| rt.status == RtStatus::Active && !st.ended_sids.contains(&rt.login.sid))
    {
        json!({
            "active": true,
            "iss": s.token_iss,
            "sub": rt.login.user.sub,
            "client_id": rt.login.client_id,
            "aud": rt.login.client_id,
            "iat": rt.iat,
            "scope": rt.login.scope,
            "token_type": "refresh_token",
            "username": rt.login.user.username(),
        })
    } else {
        json!({ "active": false })
    };
    drop(st);
    json_response(StatusCode::OK, &body)
}

async fn revoke(
    State(s): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = parse_params(&body);
    if let Err(e) = authenticate_client(&s, &headers, &form) {
        return e.into_response();
    }
    let Some(token) = param(&form, "token") else {
        return OAuthError::invalid_request("token is required").into_response();
    };
    {
        let mut st = s.state.lock();
        let issued_as = if let Some(rt) = st.refresh.get_mut(token) {
            rt.status = RtStatus::Revoked;
            Some("refresh_token")
        } else if let Some(at) = st.access.get_mut(token) {
            at.revoked = true;
            Some("access_token")
        } else {
            None
        };
        st.revocations.push(super::Revocation {
            token: token.to_owned(),
            hint: param(&form, "token_type_hint").map(str::to_owned),
            issued_as,
            query,
        });
    }
    // RFC 7009 §2.2: unknown or already invalid tokens are not an error.
    StatusCode::OK.into_response()
}

async fn userinfo(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
    let claims = bearer.and_then(|token| {
        let st = s.state.lock();
        let at = st.access.get(token).filter(|at| at.active())?;
        Some(match &at.user {
            Some(user) => {
                let mut c = user.claims();
                for (k, v) in &user.userinfo_extra {
                    c.insert(k.clone(), v.clone());
                }
                Value::Object(c)
            }
            None => json!({ "sub": at.sub }),
        })
    });
    match claims {
        Some(claims) => json_response(StatusCode::OK, &claims),
        None => {
            let mut resp = json_response(
                StatusCode::UNAUTHORIZED,
                &json!({ "error": "invalid_token" }),
            );
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
            resp
        }
    }
}

async fn end_session(State(s): State<Arc<Shared>>, RawQuery(query): RawQuery) -> Response {
    bump(&s.counters.end_session_calls);
    let p = parse_params(query.unwrap_or_default().as_bytes());
    if let Some(sid) = param(&p, "id_token_hint")
        .and_then(jose::unverified_claims)
        .and_then(|c| c.get("sid").and_then(Value::as_str).map(str::to_owned))
    {
        s.state.lock().ended_sids.insert(sid);
    }
    match param(&p, "post_logout_redirect_uri") {
        Some(uri) if valid_redirect(uri) => {
            let mut pairs = Vec::new();
            if let Some(state) = param(&p, "state") {
                pairs.push(("state", state));
            }
            found(&with_query(uri, &pairs))
        }
        Some(_) => OAuthError::invalid_request("invalid post_logout_redirect_uri").into_response(),
        None => {
            let mut resp = (
                StatusCode::OK,
                "<!doctype html><title>Logged out</title><p>logged out</p>\n",
            )
                .into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            resp
        }
    }
}

/// RFC 7591 §3: registers the client described by the JSON body. The
/// provider has one client, so the answer hands out its id and secret, with
/// the metadata echoed back as §3.2.1 requires.
async fn register(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    bump(&s.counters.registrations);
    if let Some(expected) = &s.cfg.registration_token {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if presented != Some(expected.as_str()) {
            return json_response(
                StatusCode::UNAUTHORIZED,
                &json!({ "error": "invalid_token", "error_description": "initial access token required" }),
            );
        }
    }
    let Ok(Value::Object(mut md)) = serde_json::from_slice::<Value>(&body) else {
        return json_response(
            StatusCode::BAD_REQUEST,
            &json!({ "error": "invalid_client_metadata", "error_description": "body is not a JSON object" }),
        );
    };
    let uris_ok = md
        .get("redirect_uris")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty() && a.iter().all(|u| u.as_str().is_some_and(valid_redirect)));
    if !uris_ok {
        return json_response(
            StatusCode::BAD_REQUEST,
            &json!({ "error": "invalid_redirect_uri", "error_description": "redirect_uris must be absolute URLs" }),
        );
    }
    md.insert("client_id".into(), Value::from(s.cfg.client_id.clone()));
    md.insert(
        "client_secret".into(),
        Value::from(s.cfg.client_secret.clone()),
    );
    md.insert("client_id_issued_at".into(), Value::from(0));
    md.insert("client_secret_expires_at".into(), Value::from(0));
    json_response(StatusCode::CREATED, &Value::Object(md))
}
