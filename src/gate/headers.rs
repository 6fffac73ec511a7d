//! The upstream headers of an allowed request and the requests allowed
//! without a principal.
//!
//! Owns where the data of header templates comes from: on the cookie path
//! the claims of the session's ID token (verified when the session was made
//! or refreshed, carried in the sealed session) and the session's tokens; on
//! the bearer path the verified claims of the presented token and the token
//! itself. Rendering and the header rules belong to `policy`.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, Method, header};
use serde_json::{Map, Value};

use super::{Allow, Gate, RequestView};
use crate::policy::Identity;
use crate::policy::token_headers::Tokens;
use crate::session::Session;

/// Most sessions whose decoded ID-token claims are kept.
pub(super) const CLAIMS_MEMO_ENTRIES: u64 = 10_000;
/// How long decoded claims are kept after their last use.
pub(super) const CLAIMS_MEMO_IDLE: Duration = Duration::from_secs(600);

/// The decoded ID-token claims of recent sessions, so that a request does not
/// parse its session's ID token again. Keyed by the session id (looked up
/// without allocating); an entry holds the fingerprint of the ID token it
/// was decoded from (its length and the end of its signature), so a
/// refreshed ID token replaces it.
pub(super) struct ClaimsMemo {
    cache: Option<moka::sync::Cache<String, Arc<MemoEntry>>>,
}

/// Decoded claims and the ID token they came from.
struct MemoEntry {
    id_token_len: usize,
    id_token_tail: String,
    claims: Arc<Map<String, Value>>,
}

impl ClaimsMemo {
    /// A memo, or none when no header template reads claims.
    pub(super) fn new(needed: bool) -> Self {
        Self {
            cache: needed.then(|| {
                moka::sync::Cache::builder()
                    .max_capacity(CLAIMS_MEMO_ENTRIES)
                    .time_to_idle(CLAIMS_MEMO_IDLE)
                    .build()
            }),
        }
    }

    /// The claims of `session`'s ID token (empty without one, or when no
    /// template reads claims).
    fn claims(&self, session: &Session) -> Arc<Map<String, Value>> {
        let (Some(cache), Some(id_token)) = (&self.cache, session.id_token.as_deref()) else {
            return Arc::default();
        };
        let tail = id_token
            .char_indices()
            .rev()
            .nth(31)
            .map_or(id_token, |(i, _)| &id_token[i..]);
        if let Some(hit) = cache.get(session.sid.as_str()) {
            if hit.id_token_len == id_token.len() && hit.id_token_tail == tail {
                return hit.claims.clone();
            }
        }
        let claims = Arc::new(stored_claims(id_token));
        cache.insert(
            session.sid.clone(),
            Arc::new(MemoEntry {
                id_token_len: id_token.len(),
                id_token_tail: tail.to_owned(),
                claims: claims.clone(),
            }),
        );
        claims
    }
}

impl Gate {
    /// The complete upstream headers for a session's request.
    pub(super) fn session_headers(&self, id: &Identity, session: &Session) -> HeaderMap {
        let policy = &self.inner.policy;
        let claims = self.inner.claims_memo.claims(session);
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
/// `Access-Control-Request-Method`, and without a body (a browser's
/// preflight never has one): an `OPTIONS` carrying a body is an ordinary
/// request, so nothing a client writes reaches the upstream without
/// authentication.
pub(super) fn is_preflight(view: &RequestView) -> bool {
    view.method == Method::OPTIONS
        && view.headers.contains_key(header::ORIGIN)
        && view
            .headers
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        && !has_body(&view.headers)
}

/// True when the request says it has a body: any `Transfer-Encoding`, or
/// a `Content-Length` other than 0.
fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get_all(header::CONTENT_LENGTH)
            .iter()
            .any(|v| v.as_bytes().trim_ascii() != b"0")
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

    fn session(sid: &str, claims: &str, signature: &str) -> Session {
        let payload = URL_SAFE_NO_PAD.encode(claims.as_bytes());
        serde_json::from_value(serde_json::json!({
            "i": sid, "c": 1, "u": "u", "s": "s", "x": 2,
            "it": format!("h.{payload}.{signature}"),
        }))
        .unwrap()
    }

    #[test]
    fn the_memo_follows_a_refreshed_id_token_and_keeps_sessions_apart() {
        let memo = ClaimsMemo::new(true);
        let sig = "s".repeat(40);
        let first = session("sid-1", r#"{"email":"old@example.com"}"#, &sig);
        assert_eq!(memo.claims(&first)["email"], "old@example.com");
        // Same session, a refreshed ID token (new signature, same length):
        // the claims of the new token, not the remembered ones.
        let refreshed = session("sid-1", r#"{"email":"new@example.com"}"#, &"t".repeat(40));
        assert_eq!(memo.claims(&refreshed)["email"], "new@example.com");
        // Another session never gets this one's claims.
        let other = session("sid-2", r#"{"email":"other@example.com"}"#, &sig);
        assert_eq!(memo.claims(&other)["email"], "other@example.com");
        assert_eq!(memo.claims(&refreshed)["email"], "new@example.com");
        // Without templates reading claims, nothing is decoded.
        assert!(ClaimsMemo::new(false).claims(&first).is_empty());
    }

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
