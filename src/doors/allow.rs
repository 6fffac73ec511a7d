//! The "allow" service behind forward-auth and auth_request: when the gate
//! lets a request through, the answer is an empty 2xx carrying the identity
//! headers for the proxy to copy onto the upstream request.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, StatusCode};
use tower::Service;

use super::layer::IdentityHeaders;
use super::{Body, full};
use crate::policy::Policy;

/// Answers `status` with the principal's identity headers. Every identity
/// header name is present (empty when unknown), so a proxy that copies them
/// overwrites anything the client sent under those names.
#[derive(Clone)]
pub struct AllowService {
    policy: Arc<Policy>,
    status: StatusCode,
}

impl AllowService {
    /// Forward-auth flavour (200).
    pub fn forward_auth(policy: Policy) -> Self {
        Self {
            policy: Arc::new(policy),
            status: StatusCode::OK,
        }
    }

    /// auth_request flavour (202, as oauth2-proxy answers).
    pub fn auth_request(policy: Policy) -> Self {
        Self {
            policy: Arc::new(policy),
            status: StatusCode::ACCEPTED,
        }
    }
}

impl<B> Service<Request<B>> for AllowService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Ready<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let mut resp = Response::new(full(""));
        *resp.status_mut() = self.status;
        *resp.headers_mut() = match req.extensions_mut().remove::<IdentityHeaders>() {
            Some(IdentityHeaders(h)) => h,
            // Only reached without `OidcLayer` in front, which always
            // attaches the headers it judged.
            None => self.policy.blank_headers(),
        };
        resp.headers_mut().insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-store"),
        );
        ready(Ok(resp))
    }
}
