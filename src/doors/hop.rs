//! Connection-level header hygiene shared by the doors: which headers
//! describe one hop and must not travel on, and which upgrades may.
//!
//! Invariant: headers named in a client's `Connection` are removed before
//! the gate adds its own, so `Connection: x-forwarded-user` cannot delete an
//! identity header the gate vouches for; only WebSocket upgrades pass.

use http::{HeaderMap, HeaderName, HeaderValue, header};

/// Headers that describe one connection and never travel through a proxy
/// (RFC 9110 §7.6.1, plus `HTTP2-Settings` of the h2c upgrade).
pub(crate) const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "http2-settings",
];

/// `Connection` tokens that name no other header.
const CONNECTION_OPTIONS: &[&str] = &["upgrade", "close", "keep-alive"];

fn connection_tokens(h: &HeaderMap) -> Vec<String> {
    h.get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Removes the headers a client named in `Connection` and keeps only the
/// connection options in it (`upgrade`, `close`, `keep-alive`). Runs on
/// every allowed request before the gate adds its headers.
pub(crate) fn drop_connection_named(h: &mut HeaderMap) {
    let tokens = connection_tokens(h);
    if tokens.is_empty() {
        return;
    }
    let mut kept = Vec::new();
    for t in tokens {
        if CONNECTION_OPTIONS.contains(&t.as_str()) {
            kept.push(t);
        } else if let Ok(name) = HeaderName::from_bytes(t.as_bytes()) {
            h.remove(name);
        }
    }
    h.remove(header::CONNECTION);
    if let Ok(v) = HeaderValue::from_str(&kept.join(", ")) {
        if !kept.is_empty() {
            h.insert(header::CONNECTION, v);
        }
    }
}

/// True when the request asks for a WebSocket upgrade (`Connection:
/// upgrade` and `Upgrade: websocket`, nothing else offered).
pub(crate) fn is_websocket_upgrade(h: &HeaderMap) -> bool {
    let conn_upgrade = connection_tokens(h).iter().any(|t| t == "upgrade");
    let mut offers = h
        .get_all(header::UPGRADE)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("\u{0}").split(','))
        .map(str::trim);
    let websocket = offers
        .next()
        .is_some_and(|o| o.eq_ignore_ascii_case("websocket"));
    conn_upgrade && websocket && offers.next().is_none()
}

/// Removes every hop-by-hop header, including those named in `Connection`.
pub(crate) fn strip_hop_by_hop(h: &mut HeaderMap) {
    for t in connection_tokens(h) {
        if let Ok(name) = HeaderName::from_bytes(t.as_bytes()) {
            h.remove(name);
        }
    }
    for n in HOP_BY_HOP {
        h.remove(*n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn connection_named_headers_go_options_stay() {
        let mut h = map(&[
            ("connection", "X-Forwarded-User, upgrade, authorization"),
            ("x-forwarded-user", "mallory"),
            ("authorization", "Bearer x"),
            ("upgrade", "websocket"),
            ("accept", "*/*"),
        ]);
        drop_connection_named(&mut h);
        assert!(h.get("x-forwarded-user").is_none());
        assert!(h.get("authorization").is_none());
        assert_eq!(h["connection"], "upgrade");
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["accept"], "*/*");
    }

    #[test]
    fn only_websocket_upgrades() {
        for (conn, up, ok) in [
            ("Upgrade", "websocket", true),
            ("keep-alive, upgrade", "WebSocket", true),
            ("upgrade", "h2c", false),
            ("upgrade", "websocket, h2c", false),
            ("upgrade", "h2c, websocket", false),
            ("close", "websocket", false),
        ] {
            let h = map(&[("connection", conn), ("upgrade", up)]);
            assert_eq!(is_websocket_upgrade(&h), ok, "{conn} / {up}");
        }
    }
}
