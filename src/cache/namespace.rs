//! The named caches: one [`Namespace`] variant per cache, each declaring its key
//! prefix, default TTL, write class, failure policy and memory-tier bounds.
//!
//! Owns: the table of named caches. Must not: know what the stored values mean
//! beyond the doc comment of each variant (the cache layer stores opaque typed
//! values), or decide from a key's text which cache it belongs to.

use std::fmt;
use std::time::Duration;

const MIB: u64 = 1024 * 1024;

/// Default TTL of [`Namespace::VerifiedClaims`] entries (callers usually pass
/// the time left until the token's `exp`).
pub const DEFAULT_VERIFIED_CLAIMS_TTL: Duration = Duration::from_secs(60 * 60);
/// Default TTL of [`Namespace::Revoked`] markers.
pub const DEFAULT_REVOKED_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// Default TTL of [`Namespace::Introspection`] results.
pub const DEFAULT_INTROSPECTION_TTL: Duration = Duration::from_secs(5 * 60);
/// Default TTL of [`Namespace::SessionInvalidation`] markers: one hour longer
/// than the longest default session so a marker outlives what it invalidates.
pub const DEFAULT_SESSION_INVALIDATION_TTL: Duration = Duration::from_secs(25 * 60 * 60);
/// Default TTL of [`Namespace::RefreshResult`] entries: how long a successful
/// refresh is reused for the same old refresh token, so that requests still
/// carrying the old cookie (on any replica) reuse the winner's tokens instead
/// of presenting a rotated refresh token.
pub const DEFAULT_REFRESH_RESULT_TTL: Duration = Duration::from_secs(30);
/// Default TTL of [`Namespace::RefreshLock`] marks: longer than a token
/// endpoint call takes, short enough that the mark of a replica that died
/// mid-refresh frees itself.
pub const DEFAULT_REFRESH_LOCK_TTL: Duration = Duration::from_secs(15);
/// Default TTL of [`Namespace::ReplayMark`] entries (callers usually pass the
/// time left until the token's `exp`).
pub const DEFAULT_REPLAY_MARK_TTL: Duration = Duration::from_secs(60 * 60);
/// Default TTL of [`Namespace::ProviderSession`] records (callers pass the
/// session lifetime).
pub const DEFAULT_PROVIDER_SESSION_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// Default TTL of [`Namespace::Session`] server-side sessions.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// Default TTL of [`Namespace::ClientRegistration`] records (renewed at every
/// start-up that reads one).
pub const DEFAULT_CLIENT_REGISTRATION_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// How a write reaches the shared tier in hybrid mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriteClass {
    /// The write goes to Redis before the call returns, and other replicas are
    /// told to drop their local copy. Used where another replica acting on a
    /// stale value is a security or correctness problem.
    Sync,
    /// The write is applied locally and handed to a bounded queue drained by one
    /// background worker; when the queue is full the write is dropped and
    /// counted. Used for caches of data that can be fetched again.
    Async,
}

/// What a namespace's operations do when Redis cannot be reached (connection
/// error, timeout, or open circuit breaker).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailurePolicy {
    /// Behave like a cache: a read is a miss (or a local hit in hybrid mode), a
    /// write is kept locally (hybrid) or dropped, and the outage is counted.
    /// The caller never sees an error.
    Degrade,
    /// Return [`Error::Unavailable`](super::Error::Unavailable) whenever the
    /// answer cannot be trusted: a write that did not reach Redis (in hybrid
    /// mode it is still applied locally first), or a read whose local answer
    /// is not authoritative. A local hit is still returned. The caller applies
    /// its own security rule.
    Report,
}

/// One named cache. Every cache the gate uses is a variant here; there is no
/// way to store a value outside a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Namespace {
    /// Verified token claims, keyed by a hash of the token.
    VerifiedClaims,
    /// Revocation markers (token hashes or `jti` values).
    Revoked,
    /// Token introspection results, keyed by a hash of the token.
    Introspection,
    /// Logout markers keyed by `sid` or `sub`.
    SessionInvalidation,
    /// Results of a refresh-token exchange, keyed by a hash of the refresh
    /// token, so that replicas racing on the same refresh token reuse one
    /// exchange. Callers store successful results only, never errors.
    RefreshResult,
    /// "Refresh in progress" marks, keyed by a hash of the refresh token and
    /// written with [`set_if_absent`](super::Caches::set_if_absent): the
    /// replica that writes the mark sends the grant, the others wait for its
    /// [`RefreshResult`](Namespace::RefreshResult).
    RefreshLock,
    /// Replay marks (`jti` values seen once), written with
    /// [`set_if_absent`](super::Caches::set_if_absent).
    ReplayMark,
    /// Server-side sessions, keyed by session id.
    Session,
    /// Provider session ids (`sid`) this gate issued sessions for, keyed by
    /// a hash: front-channel logout acts on these only.
    ProviderSession,
    /// The OAuth client obtained by dynamic client registration (RFC 7591),
    /// shared by every replica, and the start-up mark of the replica that is
    /// registering (written with [`set_if_absent`](super::Caches::set_if_absent)).
    ClientRegistration,
}

impl Namespace {
    /// Every namespace, in declaration order.
    pub const ALL: [Namespace; 10] = [
        Namespace::VerifiedClaims,
        Namespace::Revoked,
        Namespace::Introspection,
        Namespace::SessionInvalidation,
        Namespace::RefreshResult,
        Namespace::RefreshLock,
        Namespace::ReplayMark,
        Namespace::Session,
        Namespace::ProviderSession,
        Namespace::ClientRegistration,
    ];

    /// Number of namespaces.
    pub const COUNT: usize = Self::ALL.len();

    /// Position of this namespace in [`Namespace::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The key prefix in Redis (`<keyPrefix><prefix>:<key>`) and in
    /// invalidation messages. Lowercase ASCII letters only.
    pub const fn prefix(self) -> &'static str {
        match self {
            Namespace::VerifiedClaims => "claims",
            Namespace::Revoked => "revoked",
            Namespace::Introspection => "introspection",
            Namespace::SessionInvalidation => "sessioninvalidation",
            Namespace::RefreshResult => "refreshresult",
            Namespace::RefreshLock => "refreshlock",
            Namespace::ReplayMark => "replay",
            Namespace::Session => "session",
            Namespace::ProviderSession => "idpsession",
            Namespace::ClientRegistration => "registration",
        }
    }

    /// Looks a namespace up by its [`prefix`](Self::prefix).
    pub fn from_prefix(prefix: &str) -> Option<Namespace> {
        Self::ALL.into_iter().find(|ns| ns.prefix() == prefix)
    }

    /// The TTL to use when the caller has no better one.
    pub const fn default_ttl(self) -> Duration {
        match self {
            Namespace::VerifiedClaims => DEFAULT_VERIFIED_CLAIMS_TTL,
            Namespace::Revoked => DEFAULT_REVOKED_TTL,
            Namespace::Introspection => DEFAULT_INTROSPECTION_TTL,
            Namespace::SessionInvalidation => DEFAULT_SESSION_INVALIDATION_TTL,
            Namespace::RefreshResult => DEFAULT_REFRESH_RESULT_TTL,
            Namespace::RefreshLock => DEFAULT_REFRESH_LOCK_TTL,
            Namespace::ReplayMark => DEFAULT_REPLAY_MARK_TTL,
            Namespace::Session => DEFAULT_SESSION_TTL,
            Namespace::ProviderSession => DEFAULT_PROVIDER_SESSION_TTL,
            Namespace::ClientRegistration => DEFAULT_CLIENT_REGISTRATION_TTL,
        }
    }

    /// How writes reach Redis in hybrid mode.
    ///
    /// Sync: revocations, logout markers and replay marks (security state),
    /// server-side sessions (a replica must not serve a session another replica
    /// has rotated or deleted) and refresh results and marks (they exist so
    /// that another replica sees them within the same few milliseconds).
    pub const fn write_class(self) -> WriteClass {
        match self {
            Namespace::Revoked
            | Namespace::SessionInvalidation
            | Namespace::ReplayMark
            | Namespace::Session
            | Namespace::RefreshResult
            | Namespace::RefreshLock
            | Namespace::ProviderSession
            | Namespace::ClientRegistration => WriteClass::Sync,
            Namespace::VerifiedClaims | Namespace::Introspection => WriteClass::Async,
        }
    }

    /// What happens when Redis is unreachable.
    pub const fn failure_policy(self) -> FailurePolicy {
        match self {
            Namespace::Revoked
            | Namespace::SessionInvalidation
            | Namespace::ReplayMark
            | Namespace::Session
            | Namespace::ClientRegistration => FailurePolicy::Report,
            Namespace::VerifiedClaims
            | Namespace::Introspection
            | Namespace::RefreshResult
            | Namespace::RefreshLock
            | Namespace::ProviderSession => FailurePolicy::Degrade,
        }
    }

    /// Whether values of this namespace are authenticated (tagged with a key
    /// only the gates hold, see [`Caches::with_integrity_keys`]): every
    /// namespace whose content could let a request in. Markers are not:
    /// they can only refuse.
    ///
    /// [`Caches::with_integrity_keys`]: super::Caches::with_integrity_keys
    pub const fn is_authenticated(self) -> bool {
        !self.is_marker()
    }

    /// Whether this namespace holds markers: values that are only ever added
    /// (never deleted, only expired), small and not secret. A marker once
    /// seen by a replica stays known there until it expires, whatever
    /// happens to Redis; in hybrid mode its value travels in the
    /// invalidation message, so other replicas know it without a read.
    pub const fn is_marker(self) -> bool {
        matches!(
            self,
            Namespace::Revoked
                | Namespace::SessionInvalidation
                | Namespace::ReplayMark
                | Namespace::ProviderSession
        )
    }

    /// Maximum number of entries of this namespace in the memory tier.
    pub const fn max_entries(self) -> u64 {
        match self {
            Namespace::VerifiedClaims => 10_000,
            Namespace::Revoked => 50_000,
            Namespace::Introspection => 10_000,
            Namespace::SessionInvalidation => 50_000,
            Namespace::RefreshResult => 2_000,
            Namespace::RefreshLock => 2_000,
            Namespace::ReplayMark => 50_000,
            Namespace::Session => 10_000,
            Namespace::ProviderSession => 50_000,
            Namespace::ClientRegistration => 16,
        }
    }

    /// Maximum bytes (keys plus values plus a fixed per-entry overhead) of this
    /// namespace in the memory tier.
    pub const fn max_bytes(self) -> u64 {
        match self {
            Namespace::VerifiedClaims => 16 * MIB,
            Namespace::Revoked => 8 * MIB,
            Namespace::Introspection => 8 * MIB,
            Namespace::SessionInvalidation => 8 * MIB,
            Namespace::RefreshResult => 4 * MIB,
            Namespace::RefreshLock => MIB,
            Namespace::ReplayMark => 8 * MIB,
            Namespace::Session => 32 * MIB,
            Namespace::ProviderSession => 8 * MIB,
            Namespace::ClientRegistration => MIB,
        }
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.prefix())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn index_matches_position_in_all() {
        for (i, ns) in Namespace::ALL.into_iter().enumerate() {
            assert_eq!(ns.index(), i);
        }
    }

    #[test]
    fn prefixes_are_unique_lowercase_letters_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for ns in Namespace::ALL {
            let p = ns.prefix();
            assert!(!p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()));
            assert!(seen.insert(p), "duplicate prefix {p}");
            assert_eq!(Namespace::from_prefix(p), Some(ns));
        }
        assert_eq!(Namespace::from_prefix("nope"), None);
    }

    #[test]
    fn security_namespaces_are_sync_and_report() {
        for ns in [
            Namespace::Revoked,
            Namespace::SessionInvalidation,
            Namespace::ReplayMark,
        ] {
            assert_eq!(ns.write_class(), WriteClass::Sync);
            assert_eq!(ns.failure_policy(), FailurePolicy::Report);
            assert!(ns.is_marker());
        }
        // Markers are Sync-class: their values are pushed with the message.
        for ns in Namespace::ALL {
            assert!(!ns.is_marker() || ns.write_class() == WriteClass::Sync);
        }
    }

    #[test]
    fn declared_defaults() {
        assert_eq!(
            Namespace::Revoked.default_ttl(),
            Duration::from_secs(86_400)
        );
        assert_eq!(
            Namespace::SessionInvalidation.default_ttl(),
            Duration::from_secs(90_000)
        );
        assert_eq!(
            Namespace::RefreshResult.default_ttl(),
            Duration::from_secs(30)
        );
        for ns in Namespace::ALL {
            assert!(ns.max_entries() > 0 && ns.max_bytes() >= ns.max_entries());
            assert!(!ns.default_ttl().is_zero());
        }
    }
}
