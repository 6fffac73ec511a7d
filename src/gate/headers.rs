//! The upstream headers of an allowed request and the requests allowed
//! without a principal.
//!
//! Owns where the data of header templates comes from: on the cookie path
//! the claims of the session's ID token (verified when the session was made
//! or refreshed, carried in the sealed session) and the session's tokens; on
//! the bearer path the verified claims of the presented token and the token
//! itself. Rendering and the header rules belong to `policy`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, Method, header};
use serde_json::{Map, Value};

use super::{Allow, Gate, RequestView};
use crate::policy::Identity;
use crate::policy::token_headers::Tokens;
use crate::session::Session;

impl Gate {
    /// The complete upstream headers for a session's request.
    pub(super) fn session_headers(&self, id: &Identity, session: &Session) -> HeaderMap {
        let policy = &self.inner.policy;
        let claims = if policy.headers_use_claims() {
            session
                .id_token
                .as_deref()
                .map(stored_claims)
                .unwrap_or_default()
        } else {
            Map::new()
        };
        let tokens = Tokens {
            access: session.access_token.as_deref().unwrap_or(""),
            id: session.id_token.as_deref().unwrap_or(""),
            refresh: session.refresh_token.as_deref().unwrap_or(""),
        };
        policy.allowed_headers(id, &claims, tokens)
    }

    /// The complete upstream headers for a bearer token's request:
    /// `.AccessToken` is the presented token, `.Claims` its claims.
    pub(super) fn bearer_headers(
        &self,
        id: &Identity,
        claims: &Map<String, Value>,
        token: &str,
    ) -> HeaderMap {
        let tokens = Tokens {
            access: token,
            ..Tokens::default()
        };
        self.inner.policy.allowed_headers(id, claims, tokens)
    }

    /// A request allowed without a principal (excluded path, CORS
    /// preflight): every header the gate may send, empty.
    pub(super) fn open_allow(&self) -> Allow {
        Allow {
            upstream_headers: self.inner.policy.blank_headers(),
            ..Allow::default()
        }
    }
}

/// True for a CORS preflight: `OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`.
pub(super) fn is_preflight(view: &RequestView) -> bool {
    view.method == Method::OPTIONS
        && view.headers.contains_key(header::ORIGIN)
        && view
            .headers
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The claims of an ID token stored in a session. The session is sealed
/// (AEAD) and its ID token was verified when stored, so the payload is read
/// without checking the signature again; anything unreadable is no claims.
fn stored_claims(id_token: &str) -> Map<String, Value> {
    let Some(payload) = id_token.split('.').nth(1) else {
        return Map::new();
    };
    URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|raw| serde_json::from_slice(&raw).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_claims_reads_the_payload_or_nothing() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"email":"a@b.c","groups":["g"]}"#);
        let c = stored_claims(&format!("h.{payload}.s"));
        assert_eq!(c["email"], "a@b.c");
        for bad in [
            "",
            "nodots",
            "h.!!!.s",
            &format!("h.{}.s", URL_SAFE_NO_PAD.encode(b"[1]")),
        ] {
            assert!(stored_claims(bad).is_empty(), "{bad}");
        }
    }
}
