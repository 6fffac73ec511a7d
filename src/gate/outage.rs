//! What a security check does when the shared store cannot answer it
//! (`securityOutagePolicy`).
//!
//! Owns: the [`OutagePolicy`] choice and its per-check defaults. Must not:
//! override a mark the gate already knows: a logout or revocation once seen
//! (read, or pushed by another replica) is enforced whatever the policy.

/// The outcome of a security check (session invalidation, bearer
/// revocation) that the shared store cannot answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutagePolicy {
    /// Let the request through: availability first. A logout or revocation
    /// made on another replica during the outage is enforced here once the
    /// store answers again (or as soon as it is pushed).
    Open,
    /// Refuse the request with 503: no request passes a check that could
    /// not be made.
    Closed,
}

impl OutagePolicy {
    /// The policy of the browser-session checks when none is configured:
    /// open (the session cookie itself is verified; only a logout made on
    /// another replica during the outage waits for the store).
    pub const DEFAULT_FOR_SESSIONS: OutagePolicy = OutagePolicy::Open;
    /// The policy of the bearer revocation check when none is configured:
    /// closed (a token has no logout page to fall back on, and revocation
    /// is usually an incident response).
    pub const DEFAULT_FOR_BEARER: OutagePolicy = OutagePolicy::Closed;
}
