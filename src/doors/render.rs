//! Turns a non-allow [`Decision`] into an HTTP response, the same for every door.

use http::{HeaderValue, Response, StatusCode, header};

use super::{Body, full};
use crate::gate::{Decision, Error, Reply, error_reply};

/// Headers on every response the gate writes itself.
fn harden(resp: &mut Response<Body>) {
    harden_framing(resp, false);
}

/// As [`harden`]; `frameable` leaves out `X-Frame-Options` (front-channel
/// logout pages are shown in the provider's iframe).
fn harden_framing(resp: &mut Response<Body>, frameable: bool) {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if !frameable {
        h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    }
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
}

/// Renders a reply.
pub(crate) fn reply(r: Reply) -> Response<Body> {
    let frameable = r.frameable;
    let mut resp = Response::new(full(r.body));
    *resp.status_mut() = r.status;
    *resp.headers_mut() = r.headers;
    for c in r.set_cookies {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    harden_framing(&mut resp, frameable);
    resp
}

/// Renders the one reply of the gate's error table for `e` (a door's own
/// failure: unreachable upstream, failed inner service).
pub(crate) fn error(e: Error) -> Response<Body> {
    reply(error_reply(e))
}

/// Renders a redirect (302).
pub(crate) fn redirect(location: &str, set_cookies: Vec<HeaderValue>) -> Response<Body> {
    let mut resp = Response::new(full(""));
    *resp.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    for c in set_cookies {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    harden(&mut resp);
    resp
}

/// Renders any decision that is not `Allow` (an `Allow` is the inner service's business).
pub(crate) fn not_allowed(d: Decision, probe: bool) -> Response<Body> {
    match d {
        Decision::Respond(r) => reply(r),
        Decision::Redirect {
            location,
            set_cookies,
        } if probe => {
            // auth_request accepts only 2xx/401/403: a redirect becomes a 401
            // that tells nginx where the login starts.
            let r = Reply::error(StatusCode::UNAUTHORIZED, "Authentication required", false)
                .with_header(http::HeaderName::from_static("x-auth-redirect"), &location)
                .with_cookies(set_cookies);
            reply(r)
        }
        Decision::Redirect {
            location,
            set_cookies,
        } => redirect(&location, set_cookies),
        Decision::Allow(_) => error(Error::Internal("an allow was rendered as a refusal".into())),
    }
}
