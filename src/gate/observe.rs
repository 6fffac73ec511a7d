//! What the engine tells telemetry: its errors and decisions as closed label
//! values.
//!
//! Owns the mapping from gate types ([`Decision`], [`Error`],
//! [`BearerReject`]) to the label enums of [`crate::telemetry::metrics`], and
//! [`Gate::decide_at`], the entry point doors use so that every decision is
//! counted and timed in one place. Must not: read a token, a path or a user
//! into a label.

use tokio::time::Instant;

use super::Gate;
use super::bearer::BearerReject;
use super::decision::Decision;
use super::rescue::Error;
use super::view::RequestView;

use crate::telemetry::TokenHash;
use crate::telemetry::metrics::{BearerReason, CallbackResult, Door, Label, Outcome};

impl Gate {
    /// [`Gate::decide`] for a request that came through `door`: counted,
    /// timed, and logged at debug level (door, named provider, outcome,
    /// status, latency, and a short hash of the presented credential, never
    /// the credential).
    pub async fn decide_at(&self, door: Door, view: &RequestView) -> Decision {
        let metrics = &self.inner.metrics;
        if !metrics.enabled() && !tracing::enabled!(tracing::Level::DEBUG) {
            return self.decide(view).await;
        }
        let started = Instant::now();
        let d = self.decide(view).await;
        let took = started.elapsed();
        let outcome = outcome_of(&d);
        metrics.decision(door, outcome, took);
        if tracing::enabled!(tracing::Level::DEBUG) {
            let credential = credential_hash(view);
            // Which of several providers answered (none: the top-level one).
            let provider = self.chosen(view).inner.settings.provider_name.as_deref();
            tracing::debug!(
                door = door.as_str(),
                provider,
                decision = outcome.as_str(),
                status = status_of(&d),
                latency_us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
                credential = credential.as_ref().map(tracing::field::display),
                "access"
            );
        }
        d
    }
}

/// The label of a decision.
pub(crate) fn outcome_of(d: &Decision) -> Outcome {
    match d {
        Decision::Allow(_) => Outcome::Allow,
        Decision::Redirect { .. } => Outcome::LoginRedirect,
        Decision::Respond(r) => Outcome::of_status(r.status.as_u16()),
    }
}

fn status_of(d: &Decision) -> u16 {
    match d {
        Decision::Allow(_) => 200,
        Decision::Redirect { .. } => 302,
        Decision::Respond(r) => r.status.as_u16(),
    }
}

/// A short hash of the bearer token or the session cookie, for correlating
/// log lines of one client.
fn credential_hash(view: &RequestView) -> Option<TokenHash> {
    let auth = view
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if let Some(a) = auth {
        return Some(TokenHash::of(a));
    }
    view.headers
        .get(http::header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .map(TokenHash::of)
}

/// The label of a callback that failed with `e`.
pub(crate) fn callback_failure(e: &Error) -> CallbackResult {
    match e {
        Error::Forbidden { .. } | Error::Identity(_) => CallbackResult::Forbidden,
        Error::ProviderDenied(_) => CallbackResult::ProviderError,
        Error::BadCallback(_) | Error::MethodNotAllowed(_) => CallbackResult::Invalid,
        Error::Oidc(o) if o.is_transient() => CallbackResult::Unavailable,
        Error::GroupsUnavailable => CallbackResult::Unavailable,
        Error::Oidc(_) => CallbackResult::Rejected,
        _ => CallbackResult::Error,
    }
}

/// The label of a refused bearer token, if the error is one.
pub(crate) fn bearer_reason(e: &Error) -> Option<BearerReason> {
    let Error::BearerRejected { reason, .. } = e else {
        return None;
    };
    Some(match reason {
        BearerReject::Missing => BearerReason::Missing,
        BearerReject::BadHeader | BearerReject::Malformed(_) => BearerReason::Malformed,
        BearerReject::TooLarge => BearerReason::TooLarge,
        BearerReject::Opaque => BearerReason::Opaque,
        BearerReject::Algorithm => BearerReason::Algorithm,
        BearerReject::UnknownKey => BearerReason::UnknownKey,
        BearerReject::Signature => BearerReason::Signature,
        BearerReject::Claim(_) => BearerReason::Claim,
        BearerReject::Expired => BearerReason::Expired,
        BearerReject::TooOld => BearerReason::TooOld,
        BearerReject::IdToken => BearerReason::IdToken,
        BearerReject::Inactive => BearerReason::Inactive,
        BearerReject::Revoked => BearerReason::Revoked,
        _ => BearerReason::Other,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::oidc;

    #[test]
    fn callback_results_by_error_kind() {
        let cases = [
            (
                Error::BadCallback(crate::gate::CallbackFault::StateMismatch),
                CallbackResult::Invalid,
            ),
            (
                Error::ProviderDenied("x".into()),
                CallbackResult::ProviderError,
            ),
            (
                Error::Oidc(oidc::Error::ProviderUnavailable("down".into())),
                CallbackResult::Unavailable,
            ),
            (
                Error::Oidc(oidc::Error::TokenSignature),
                CallbackResult::Rejected,
            ),
            (Error::LoginLoop, CallbackResult::Error),
        ];
        for (e, want) in cases {
            assert_eq!(callback_failure(&e), want);
        }
    }
}
