//! A fake of the one Microsoft Graph call oidcgate makes for Entra ID group
//! overage: `GET /v1.0/me/transitiveMemberOf`, written from Graph's
//! documented contract (OData pages of directory objects with
//! `@odata.type`, an absolute `@odata.nextLink` until the last page, 401
//! without a bearer token).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tower::ServiceExt as _;

use crate::server;

struct Shared {
    base: String,
    groups: Vec<String>,
    page_size: usize,
    /// Answer every request with this status when not zero.
    fail_status: AtomicU16,
    requests: AtomicU64,
    tokens: Mutex<Vec<String>>,
}

/// A running fake Graph; stops when dropped.
pub struct FakeGraph {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for FakeGraph {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeGraph {
    /// Serves a user who belongs to `groups` (object ids), `page_size` per
    /// page; each page also lists a directory role, which is not a group.
    pub async fn start(groups: Vec<String>, page_size: usize) -> FakeGraph {
        let (listener, addr) = server::bind_loopback().await;
        let shared = Arc::new(Shared {
            base: format!("http://{addr}"),
            groups,
            page_size: page_size.max(1),
            fail_status: AtomicU16::new(0),
            requests: AtomicU64::new(0),
            tokens: Mutex::new(Vec::new()),
        });
        let router = Router::new()
            .route("/v1.0/me/transitiveMemberOf", get(member_of))
            .with_state(shared.clone());
        let task = server::spawn(listener, move |req| {
            let router = router.clone();
            async move {
                Ok(router
                    .oneshot(req.map(axum::body::Body::new))
                    .await
                    .unwrap_or_else(|never| match never {}))
            }
        });
        FakeGraph { shared, task }
    }

    /// The base URL (`microsoftGraphURL`).
    pub fn url(&self) -> String {
        self.shared.base.clone()
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.shared
            .base
            .trim_start_matches("http://")
            .parse()
            .expect("own address")
    }

    /// Answers every request with `status` from now on (0: normally).
    pub fn fail_with(&self, status: u16) {
        self.shared.fail_status.store(status, Ordering::Relaxed);
    }

    /// Requests served so far.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// The bearer tokens presented, in order.
    pub fn tokens_seen(&self) -> Vec<String> {
        self.shared.tokens.lock().clone()
    }
}

async fn member_of(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    s.requests.fetch_add(1, Ordering::Relaxed);
    let status = s.fail_status.load(Ordering::Relaxed);
    if status != 0 {
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return (
            code,
            axum::Json(json!({"error": {"code": "injected", "message": "fault"}})),
        )
            .into_response();
    }
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": {"code": "InvalidAuthenticationToken"}})),
        )
            .into_response();
    };
    s.tokens.lock().push(token.to_owned());
    let query = query.unwrap_or_default();
    let skip: usize = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("$skiptoken="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let end = (skip + s.page_size).min(s.groups.len());
    let mut value: Vec<Value> = s.groups[skip.min(end)..end]
        .iter()
        .map(|id| json!({"@odata.type": "#microsoft.graph.group", "id": id}))
        .collect();
    value.push(json!({"@odata.type": "#microsoft.graph.directoryRole", "id": "role-not-a-group"}));
    let mut page = json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#directoryObjects(id)",
        "value": value,
    });
    if end < s.groups.len() {
        page["@odata.nextLink"] = Value::from(format!(
            "{}/v1.0/me/transitiveMemberOf?$select=id&$skiptoken={end}",
            s.base
        ));
    }
    axum::Json(page).into_response()
}
