//! What the gate answers: plain data every door renders the same way.

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::policy::Identity;

/// The outcome of [`crate::gate::Gate::decide`].
#[derive(Debug)]
pub enum Decision {
    /// Let the request through.
    Allow(Allow),
    /// Send the browser elsewhere (to the provider, back to the app, to logout).
    Redirect {
        /// Absolute or host-relative target.
        location: String,
        /// Cookies to set on the response.
        set_cookies: Vec<HeaderValue>,
    },
    /// Refuse, or answer directly (the gate's own endpoints).
    Respond(Reply),
}

/// A request that may pass.
#[derive(Debug, Default)]
pub struct Allow {
    /// Who is calling; `None` on excluded URLs.
    pub principal: Option<Identity>,
    /// Identity headers for the upstream (already sanitised).
    pub upstream_headers: HeaderMap,
    /// Cookies to set on the response (a refreshed session, a cleared login).
    pub set_cookies: Vec<HeaderValue>,
    /// Remove the client's `Authorization` header before the request goes
    /// upstream (`stripAuthorizationHeader`).
    pub strip_authorization: bool,
    /// Remove the gate's own cookies from the request before it goes
    /// upstream (`stripAuthCookies`).
    pub strip_auth_cookies: bool,
}

/// A complete response the gate produces itself.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: StatusCode,
    /// Headers (content type, cache control, WWW-Authenticate, ...).
    pub headers: HeaderMap,
    /// Body.
    pub body: String,
    /// Cookies to set.
    pub set_cookies: Vec<HeaderValue>,
    /// The page may be shown in a frame (front-channel logout); every other
    /// reply of the gate refuses framing.
    pub frameable: bool,
}

impl Reply {
    /// A reply with a body of `content_type` that is never cached.
    pub fn new(status: StatusCode, content_type: &'static str, body: String) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static(content_type),
        );
        headers.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
        Self {
            status,
            headers,
            body,
            set_cookies: Vec::new(),
            frameable: false,
        }
    }

    /// An error reply: JSON `{"error","error_description","status_code"}` for
    /// JSON callers, a small HTML page otherwise.
    pub fn error(status: StatusCode, message: &str, json: bool) -> Self {
        if json {
            let body = serde_json::json!({
                "error": status.canonical_reason().unwrap_or("Error"),
                "error_description": message,
                "status_code": status.as_u16(),
            })
            .to_string();
            Self::new(status, "application/json", body)
        } else {
            let body = format!(
                "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
                 <body><h1>{title}</h1><p>{msg}</p><p><a href=\"/\">Return to the application</a></p></body></html>\n",
                title = html_escape(status.canonical_reason().unwrap_or("Error")),
                msg = html_escape(message),
            );
            Self::new(status, "text/html; charset=utf-8", body)
        }
    }

    /// Adds a header (ignored if the value is not a valid header value).
    pub fn with_header(mut self, name: HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(name, v);
        }
        self
    }

    /// Adds cookies.
    pub fn with_cookies(mut self, cookies: Vec<HeaderValue>) -> Self {
        self.set_cookies.extend(cookies);
        self
    }
}

/// Escapes text for HTML.
pub(crate) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
