//! The one place where an error becomes a response.
//!
//! Every failure in the engine is an [`Error`]; [`rescue`] maps it to a status
//! and a message in one `match`. The doors' own failures (an unreachable
//! upstream, an inner service that failed) are errors of this table too,
//! rendered through [`error_reply`]. A 500 here means a bug.

use http::StatusCode;

use super::GateSettings;
use super::bearer::{BearerReject, challenge_header};
use super::decision::{Decision, Reply};
use super::pages::{self, PageKind};
use super::view::RequestView;
use crate::oidc;
use crate::policy::{Forbid, IdentityError};

/// Everything that stops a request inside the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No session, and the caller is not a browser navigation.
    #[error("authentication required")]
    Unauthenticated,
    /// Logged in but not allowed.
    #[error("access denied")]
    Forbidden {
        /// Which rule refused.
        why: Forbid,
        /// The refused user's identifier (shown on the page, never logged here).
        user: String,
    },
    /// An identity-header spelling a proxy might pass on was sent.
    #[error("ambiguous identity header in request")]
    AmbiguousIdentityHeader,
    /// A redirect target is not a safe relative path or allowed host.
    #[error("unsafe redirect target")]
    UnsafeRedirect,
    /// The endpoint does not accept this method.
    #[error("method not allowed")]
    MethodNotAllowed(&'static str),
    /// The login callback is malformed or does not match a pending login.
    #[error("bad callback: {0}")]
    BadCallback(CallbackFault),
    /// A back- or front-channel logout request from the provider is malformed,
    /// replayed, or names another issuer.
    #[error("bad logout request: {0}")]
    BadLogoutRequest(LogoutFault),
    /// The provider sent the user back with an error.
    #[error("provider error: {0}")]
    ProviderDenied(String),
    /// The session needs a refresh and the provider cannot give one now.
    #[error("refresh unavailable")]
    RefreshUnavailable,
    /// Too many login round trips without success.
    #[error("login loop")]
    LoginLoop,
    /// Claims do not yield a usable identity.
    #[error("identity: {0}")]
    Identity(#[from] IdentityError),
    /// Provider or token trouble.
    #[error(transparent)]
    Oidc(#[from] oidc::Error),
    /// The server-side session store refused a write.
    #[error("session store: {0}")]
    SessionStore(String),
    /// A session could not be stored (too large, RNG failure).
    #[error("session: {0}")]
    Session(#[from] crate::session::Error),
    /// A bearer token was refused (401, with an RFC 6750 challenge when
    /// `challenge` is set).
    #[error("bearer token refused: {reason}")]
    BearerRejected {
        /// Why.
        reason: BearerReject,
        /// Send `WWW-Authenticate: Bearer error=...`.
        challenge: bool,
    },
    /// Too many refused bearer tokens from this client address (429).
    #[error("bearer requests from this address are paused")]
    BearerThrottled {
        /// Seconds until the penalty ends, sent as `Retry-After`.
        retry_after: u64,
    },
    /// The address to return to after login is longer than
    /// [`super::MAX_RETURN_URL_BYTES`] (414).
    #[error("return URL too long")]
    ReturnUrlTooLong,
    /// Too many front-channel logout requests from this client address (429).
    #[error("front-channel logout requests from this address are paused")]
    FrontchannelThrottled {
        /// Seconds until the penalty ends, sent as `Retry-After`.
        retry_after: u64,
    },
    /// The user's groups did not fit in the token, Microsoft Graph could not
    /// give them, and a rule needs them (503).
    #[error("group memberships unavailable")]
    GroupsUnavailable,
    /// The revocation store cannot answer, so a token cannot be cleared (503).
    #[error("revocation state unavailable")]
    RevocationUnavailable,
    /// A door could not reach the upstream, or could not build its address
    /// (502).
    #[error("upstream unreachable")]
    UpstreamUnreachable,
    /// The judged request target cannot be sent to the upstream (400).
    #[error("request target cannot be forwarded")]
    UnforwardableTarget,
    /// A door's inner service failed: a bug, or a transport that broke (500).
    #[error("internal error: {0}")]
    Internal(String),
    /// Too many new logins or requests to the gate's own endpoints from this
    /// source address (429; `perSourceLoginRateLimit`, `rateLimit`).
    #[error("rate limit reached for this source address")]
    RateLimited {
        /// Seconds until the next event is admitted, sent as `Retry-After`.
        retry_after: u64,
    },
    /// With `requireTokenIntrospection`, the provider could not say whether
    /// a session's access token is still active (503).
    #[error("session token introspection unavailable: {0}")]
    IntrospectionUnavailable(String),
}

impl Error {
    /// True for a configuration error no retry fixes (discovery names
    /// another issuer): a process should stop rather than serve.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Oidc(oidc::Error::IssuerMismatch { .. }))
    }
}

/// Longest part of a request path written to a log line.
const MAX_LOGGED_PATH_CHARS: usize = 200;

/// `path` cut to [`MAX_LOGGED_PATH_CHARS`] characters, so one request cannot
/// write kilobytes to the log.
fn logged_path(path: &str) -> &str {
    match path.char_indices().nth(MAX_LOGGED_PATH_CHARS) {
        Some((i, _)) => &path[..i],
        None => path,
    }
}

/// Why a login callback was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CallbackFault {
    /// No `state` parameter.
    #[error("missing state")]
    MissingState,
    /// The browser carries no login cookie (missing or expired).
    #[error("no login in progress (cookie missing or expired)")]
    NoLoginInProgress,
    /// `state` matches no login this browser started.
    #[error("state mismatch")]
    StateMismatch,
    /// The login was already completed (a replayed callback).
    #[error("login already used")]
    LoginAlreadyUsed,
    /// No `code` parameter.
    #[error("missing code")]
    MissingCode,
}

/// Why a logout request from the provider was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LogoutFault {
    /// The back-channel body is larger than a logout token can be.
    #[error("logout request too large")]
    TooLarge,
    /// The back-channel body carries no `logout_token`.
    #[error("missing logout_token")]
    MissingToken,
    /// The logout token's `jti` was seen before.
    #[error("logout token replayed")]
    Replayed,
    /// Front-channel `iss` names another provider.
    #[error("iss does not match the provider")]
    IssuerMismatch,
    /// Front-channel `iss` is missing though the provider declares it sends it.
    #[error("missing iss")]
    MissingIssuer,
    /// Front-channel `sid` is missing, empty or too long.
    #[error("missing sid")]
    MissingSid,
}

/// The page a browser sees for `e`.
fn page_kind(e: &Error) -> PageKind {
    match e {
        Error::Forbidden { .. } | Error::Identity(_) => PageKind::Forbidden,
        Error::BadCallback(_)
        | Error::ProviderDenied(_)
        | Error::LoginLoop
        | Error::ReturnUrlTooLong => PageKind::LoginFailed,
        Error::Oidc(oidc::Error::TenantNotAllowed) => PageKind::Forbidden,
        Error::Oidc(o) if o.is_token_fault() => PageKind::LoginFailed,
        Error::Oidc(oidc::Error::OAuth {
            kind: oidc::OAuthErrorKind::InvalidGrant,
            ..
        }) => PageKind::LoginFailed,
        Error::Oidc(_)
        | Error::RefreshUnavailable
        | Error::SessionStore(_)
        | Error::GroupsUnavailable
        | Error::RevocationUnavailable
        | Error::UpstreamUnreachable
        | Error::IntrospectionUnavailable(_) => PageKind::Unavailable,
        Error::Unauthenticated
        | Error::AmbiguousIdentityHeader
        | Error::UnsafeRedirect
        | Error::MethodNotAllowed(_)
        | Error::BadLogoutRequest(_)
        | Error::Session(_)
        | Error::BearerRejected { .. }
        | Error::BearerThrottled { .. }
        | Error::FrontchannelThrottled { .. }
        | Error::UnforwardableTarget
        | Error::Internal(_)
        | Error::RateLimited { .. } => PageKind::Error,
    }
}

/// Maps an engine error to the reply the client sees: JSON for API
/// clients, otherwise the page of its [`PageKind`] from `settings.pages`.
pub(crate) fn rescue(e: Error, view: &RequestView, settings: &GateSettings) -> Decision {
    let (status, msg) = provider_refusal(&e).unwrap_or_else(|| status_and_message(&e));
    log(&e, status, logged_path(&view.path));
    let reply = if view.wants_json() {
        Reply::error(status, &msg, true)
    } else {
        let user = match &e {
            Error::Forbidden { user, .. } => user.as_str(),
            _ => "",
        };
        pages::page(settings, view, page_kind(&e), status, &msg, user)
    };
    Decision::Respond(with_headers(reply, e, status))
}

/// The reply to `e` for a door that has no request view (a small HTML page).
pub fn error_reply(e: Error) -> Reply {
    let (status, msg) = provider_refusal(&e).unwrap_or_else(|| status_and_message(&e));
    log(&e, status, "-");
    with_headers(Reply::error(status, &msg, false), e, status)
}

fn log(e: &Error, status: StatusCode, path: &str) {
    if status.is_server_error() {
        tracing::warn!(error = %e, status = status.as_u16(), path, "request failed");
    } else {
        tracing::debug!(error = %e, status = status.as_u16(), path, "request refused");
    }
}

/// The headers that go with `e`'s status (`Allow`, a bearer challenge,
/// `Retry-After`).
fn with_headers(mut reply: Reply, e: Error, status: StatusCode) -> Reply {
    match e {
        Error::MethodNotAllowed(allow) => reply = reply.with_header(http::header::ALLOW, allow),
        Error::BearerRejected {
            reason,
            challenge: true,
        } => {
            if let Some(v) = challenge_header(reason) {
                reply.headers.insert(http::header::WWW_AUTHENTICATE, v);
            }
        }
        Error::BearerThrottled { retry_after }
        | Error::FrontchannelThrottled { retry_after }
        | Error::RateLimited { retry_after } => {
            reply = reply.with_header(http::header::RETRY_AFTER, &retry_after.to_string());
        }
        _ => {}
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        reply = reply.with_header(http::header::RETRY_AFTER, "30");
    }
    reply
}

/// The message of [`Error::RateLimited`].
const RATE_LIMITED: &str = "Too many sign-in requests from your address; try again shortly";

/// The table: the status and message of every error.
/// The answers to refusals a provider profile brings (Entra ID tenants
/// and group overage).
fn provider_refusal(e: &Error) -> Option<(StatusCode, String)> {
    match e {
        Error::GroupsUnavailable => Some((
            StatusCode::SERVICE_UNAVAILABLE,
            "You are in more groups than your sign-in token can carry, and they could not be \
             read from Microsoft Graph, so access cannot be checked. Please try again shortly; \
             if this persists, ask your administrator to grant the application the User.Read \
             permission."
                .into(),
        )),
        Error::Oidc(oidc::Error::TenantNotAllowed) => Some((
            StatusCode::FORBIDDEN,
            "Access denied: accounts of your organization (tenant) are not allowed here".into(),
        )),
        _ => None,
    }
}

/// The status and message of a session that could not be stored.
fn session_status(e: &crate::session::Error) -> (StatusCode, String) {
    match e {
        crate::session::Error::TooLarge { .. } => (
            StatusCode::BAD_GATEWAY,
            "The identity provider's tokens are too large to keep in cookies; \
             the operator can keep sessions server-side (sessionStore: redis)"
                .into(),
        ),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Session could not be stored".into(),
        ),
    }
}

/// The status and message of `e` (after [`provider_refusal`]).
fn status_and_message(e: &Error) -> (StatusCode, String) {
    match e {
        Error::Unauthenticated => (StatusCode::UNAUTHORIZED, "Authentication required".into()),
        Error::Forbidden { why: Forbid::User, .. } => (
            StatusCode::FORBIDDEN,
            "Access denied: you are not authorized to access this resource.".into(),
        ),
        Error::Forbidden { why: Forbid::RoleOrGroup, .. } => (
            StatusCode::FORBIDDEN,
            "Access denied: you do not have any of the allowed roles or groups.".into(),
        ),
        Error::Forbidden { why: Forbid::Organization, .. } => (
            StatusCode::FORBIDDEN,
            "Access denied: you are not a member of an allowed GitHub organization.".into(),
        ),
        Error::Forbidden { why: Forbid::Team, .. } => (
            StatusCode::FORBIDDEN,
            "Access denied: you are not a member of an allowed GitHub team.".into(),
        ),
        Error::AmbiguousIdentityHeader => (
            StatusCode::BAD_REQUEST,
            "Request carries a forbidden identity header".into(),
        ),
        Error::UnsafeRedirect => (StatusCode::BAD_REQUEST, "Invalid redirect target".into()),
        Error::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "Method not allowed".into()),
        Error::BadCallback(why) => (StatusCode::BAD_REQUEST, format!("Invalid login callback: {why}")),
        Error::BadLogoutRequest(why) => (StatusCode::BAD_REQUEST, format!("Invalid logout request: {why}")),
        Error::ProviderDenied(desc) => {
            (StatusCode::BAD_REQUEST, format!("Authentication error from provider: {desc}"))
        }
        Error::RefreshUnavailable | Error::GroupsUnavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "The identity provider is unavailable; please try again shortly".into(),
        ),
        Error::LoginLoop => (
            StatusCode::LOOP_DETECTED,
            "Login keeps failing: too many redirects. Check that cookies are enabled and the gate's \
             cookie domain matches this site, then try again."
                .into(),
        ),
        Error::Identity(IdentityError::UnverifiedEmail) => (
            StatusCode::FORBIDDEN,
            "Access denied: the identity provider has not verified your e-mail address".into(),
        ),
        Error::Identity(_) => (StatusCode::FORBIDDEN, "Access denied: no usable user identifier".into()),
        Error::Oidc(o) if o.is_token_fault() => {
            (StatusCode::UNAUTHORIZED, "Authentication failed: token rejected".into())
        }
        Error::Oidc(oidc::Error::OAuth { kind: oidc::OAuthErrorKind::InvalidGrant, .. }) => (
            StatusCode::BAD_REQUEST,
            "Authentication failed: the authorization code was rejected".into(),
        ),
        Error::Oidc(oidc::Error::ProviderTimeout(_)) => (
            StatusCode::GATEWAY_TIMEOUT,
            "The identity provider did not answer in time; please try again shortly".into(),
        ),
        Error::Oidc(o) if o.is_transient() => (
            StatusCode::SERVICE_UNAVAILABLE,
            "The identity provider is unavailable; please try again shortly".into(),
        ),
        Error::Oidc(_) => (
            StatusCode::BAD_GATEWAY,
            "The identity provider answered unexpectedly".into(),
        ),
        Error::SessionStore(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "The session store is unavailable; please try again shortly".into(),
        ),
        Error::Session(e) => session_status(e),
        Error::BearerRejected { .. } => {
            (StatusCode::UNAUTHORIZED, "Authentication failed: token rejected".into())
        }
        Error::BearerThrottled { .. } => (
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed authentication attempts; try again later".into(),
        ),
        Error::ReturnUrlTooLong => (
            StatusCode::URI_TOO_LONG,
            "The address is too long to return to after login".into(),
        ),
        Error::FrontchannelThrottled { .. } => (
            StatusCode::TOO_MANY_REQUESTS,
            "Too many logout requests; try again later".into(),
        ),
        Error::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, RATE_LIMITED.into()),
        Error::RevocationUnavailable | Error::IntrospectionUnavailable(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Token state is unavailable; please try again shortly".into(),
        ),
        Error::UpstreamUnreachable => (
            StatusCode::BAD_GATEWAY,
            "The application behind the gate cannot be reached".into(),
        ),
        Error::UnforwardableTarget => {
            (StatusCode::BAD_REQUEST, "The request target cannot be forwarded".into())
        }
        Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "Internal error".into()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::policy::Forbid;

    /// Whose fault each error is decides its status: the client's (4xx),
    /// the provider's or the upstream's (502/503), ours (500 only for bugs).
    #[test]
    fn every_error_has_its_status() {
        let cases: Vec<(Error, StatusCode)> = vec![
            (Error::Unauthenticated, StatusCode::UNAUTHORIZED),
            (
                Error::Forbidden {
                    why: Forbid::User,
                    user: "u".into(),
                },
                StatusCode::FORBIDDEN,
            ),
            (
                Error::Forbidden {
                    why: Forbid::RoleOrGroup,
                    user: "u".into(),
                },
                StatusCode::FORBIDDEN,
            ),
            (Error::AmbiguousIdentityHeader, StatusCode::BAD_REQUEST),
            (Error::UnsafeRedirect, StatusCode::BAD_REQUEST),
            (
                Error::MethodNotAllowed("GET"),
                StatusCode::METHOD_NOT_ALLOWED,
            ),
            (
                Error::BadCallback(CallbackFault::StateMismatch),
                StatusCode::BAD_REQUEST,
            ),
            (
                Error::BadLogoutRequest(LogoutFault::MissingSid),
                StatusCode::BAD_REQUEST,
            ),
            (Error::ProviderDenied("x".into()), StatusCode::BAD_REQUEST),
            (Error::RefreshUnavailable, StatusCode::SERVICE_UNAVAILABLE),
            (Error::LoginLoop, StatusCode::LOOP_DETECTED),
            (
                Error::Identity(IdentityError::UnverifiedEmail),
                StatusCode::FORBIDDEN,
            ),
            (
                Error::Oidc(oidc::Error::TokenExpired),
                StatusCode::UNAUTHORIZED,
            ),
            (
                Error::Oidc(oidc::Error::ProviderUnavailable("down".into())),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                Error::Oidc(oidc::Error::ProviderTimeout("slow".into())),
                StatusCode::GATEWAY_TIMEOUT,
            ),
            (
                Error::SessionStore("down".into()),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                Error::Session(crate::session::Error::TooLarge {
                    what: "session",
                    needed: 38_682,
                    max: 38_000,
                }),
                StatusCode::BAD_GATEWAY,
            ),
            (
                Error::BearerRejected {
                    reason: BearerReject::Expired,
                    challenge: false,
                },
                StatusCode::UNAUTHORIZED,
            ),
            (
                Error::BearerThrottled { retry_after: 7 },
                StatusCode::TOO_MANY_REQUESTS,
            ),
            (Error::ReturnUrlTooLong, StatusCode::URI_TOO_LONG),
            (
                Error::FrontchannelThrottled { retry_after: 7 },
                StatusCode::TOO_MANY_REQUESTS,
            ),
            (
                Error::RevocationUnavailable,
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                Error::IntrospectionUnavailable("down".into()),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                Error::RateLimited { retry_after: 2 },
                StatusCode::TOO_MANY_REQUESTS,
            ),
            (Error::UpstreamUnreachable, StatusCode::BAD_GATEWAY),
            (Error::UnforwardableTarget, StatusCode::BAD_REQUEST),
            (
                Error::Internal("bug".into()),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
        ];
        for (e, status) in cases {
            let text = e.to_string();
            let r = error_reply(e);
            assert_eq!(r.status, status, "{text}");
            assert!(!r.body.is_empty(), "{text}: a page says what happened");
        }
    }

    #[test]
    fn headers_that_go_with_a_status() {
        let r = error_reply(Error::MethodNotAllowed("POST"));
        assert_eq!(r.headers[http::header::ALLOW], "POST");
        let r = error_reply(Error::BearerThrottled { retry_after: 7 });
        assert_eq!(r.headers[http::header::RETRY_AFTER], "7");
        let r = error_reply(Error::RateLimited { retry_after: 2 });
        assert_eq!(r.headers[http::header::RETRY_AFTER], "2");
        let r = error_reply(Error::RevocationUnavailable);
        assert_eq!(r.headers[http::header::RETRY_AFTER], "30");
        let r = error_reply(Error::BearerRejected {
            reason: BearerReject::Expired,
            challenge: true,
        });
        assert!(r.headers.contains_key(http::header::WWW_AUTHENTICATE));
        let r = error_reply(Error::Internal("secret detail".into()));
        assert!(
            !r.body.contains("secret detail"),
            "internals stay in the log"
        );
    }
}
