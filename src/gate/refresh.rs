//! Token refresh that survives stampedes, rotation and outages.
//!
//! - **One grant per refresh token.** Requests needing the same refresh share
//!   one flight keyed by a hash of the refresh token (moka's coalescing
//!   `try_get_with`); every follower gets the leader's result. A success stays
//!   cached for [`DEFAULT_REFRESH_RESULT_TTL`], so requests that still carry
//!   the old cookie reuse the winner's tokens instead of presenting a rotated
//!   refresh token (which rotating providers punish by revoking the grant).
//! - **Failures.** `invalid_grant` ends that session. Transient errors (timeouts,
//!   5xx) do not: the session is cooled down for
//!   [`DEFAULT_REFRESH_COOLDOWN`], and a circuit breaker on the token endpoint
//!   stops hammering a provider that is down. A refused grant is an answer, not
//!   an outage: it never trips the breaker.
//! - **Hot path.** No lock is held per request: concurrent caches and atomics.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::breaker::{Breaker, BreakerSettings, BreakerState};
use crate::cache::{CacheKey, Caches, Namespace};
use crate::clock::SharedClock;
use crate::oidc::{self, OAuthErrorKind};
use crate::session::Session;
use crate::telemetry::TokenHash;
use crate::telemetry::metrics::{Metrics, RefreshResult, breaker_value};

/// Refresh this long before the access token (or ID token) expires.
pub const DEFAULT_REFRESH_GRACE: Duration = Duration::from_secs(60);
/// Refresh tokens older than this are treated as expired without asking the provider.
pub const DEFAULT_MAX_REFRESH_TOKEN_AGE: Duration = Duration::from_secs(6 * 3600);
/// How long a successful refresh result is reused for the same old refresh
/// token (the cache's default for refresh results).
pub use crate::cache::DEFAULT_REFRESH_RESULT_TTL;
/// Pause before a session retries after a transient refresh failure.
pub const DEFAULT_REFRESH_COOLDOWN: Duration = Duration::from_secs(10);
/// The token-endpoint breaker: five consecutive transient failures open it
/// for 30 s, then one probe is let through.
pub const DEFAULT_TOKEN_BREAKER: BreakerSettings = BreakerSettings {
    failure_threshold: 5,
    recovery_timeout: Duration::from_secs(30),
};
/// How long a replica waits for another replica's refresh of the same token.
pub const DEFAULT_CROSS_REPLICA_WAIT: Duration = Duration::from_secs(5);
/// Poll interval while waiting for another replica's result.
const CROSS_REPLICA_POLL: Duration = Duration::from_millis(50);
/// Most refresh results and cooldowns remembered at once.
pub(crate) const MAX_TRACKED_REFRESHES: u64 = 100_000;

/// Settings of the refresh machinery.
#[derive(Clone, Debug)]
pub struct RefreshSettings {
    /// Refresh when the token expires within this window.
    pub grace: Duration,
    /// Refresh-token age limit; `None` disables the rule.
    pub max_refresh_token_age: Option<Duration>,
    /// Reuse window of a successful result.
    pub result_ttl: Duration,
    /// Per-session pause after a transient failure.
    pub cooldown: Duration,
    /// The token-endpoint breaker (counts transient failures only).
    pub breaker: BreakerSettings,
}

impl Default for RefreshSettings {
    fn default() -> Self {
        Self {
            grace: DEFAULT_REFRESH_GRACE,
            max_refresh_token_age: Some(DEFAULT_MAX_REFRESH_TOKEN_AGE),
            result_ttl: DEFAULT_REFRESH_RESULT_TTL,
            cooldown: DEFAULT_REFRESH_COOLDOWN,
            breaker: DEFAULT_TOKEN_BREAKER,
        }
    }
}

/// Why a refresh did not produce a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RefreshFailure {
    /// The provider refused the grant: the session is over.
    Rejected,
    /// The provider could not be reached or failed; try again later.
    Transient,
    /// The breaker is open or this session is cooling down.
    Paused,
}

impl RefreshFailure {
    fn of(e: &super::Error) -> Self {
        match e {
            super::Error::Oidc(o) if o.is_transient() => Self::Transient,
            super::Error::Oidc(oidc::Error::OAuth {
                kind: OAuthErrorKind::InvalidGrant,
                ..
            }) => Self::Rejected,
            super::Error::Oidc(oidc::Error::ProviderInvalid(_)) => Self::Transient,
            _ => Self::Rejected,
        }
    }
}

/// The refresh coordinator of one gate.
pub(crate) struct Refresher {
    settings: RefreshSettings,
    clock: SharedClock,
    results: moka::future::Cache<String, Arc<Session>>,
    cooldowns: moka::sync::Cache<String, u64>,
    breaker: Breaker,
    grants: AtomicU64,
    caches: Caches,
    metrics: Metrics,
}

impl Refresher {
    pub(crate) fn new(
        settings: RefreshSettings,
        clock: SharedClock,
        caches: Caches,
        metrics: Metrics,
    ) -> Self {
        let results = moka::future::Cache::builder()
            .max_capacity(MAX_TRACKED_REFRESHES)
            .time_to_live(settings.result_ttl)
            .build();
        let cooldowns = moka::sync::Cache::builder()
            .max_capacity(MAX_TRACKED_REFRESHES)
            .time_to_live(settings.cooldown.max(Duration::from_secs(1)))
            .build();
        Self {
            breaker: Breaker::new(Some(settings.breaker), clock.clone()),
            settings,
            clock,
            results,
            cooldowns,
            grants: AtomicU64::new(0),
            caches,
            metrics,
        }
    }

    /// Refresh grants sent to the provider so far.
    pub(crate) fn grants(&self) -> u64 {
        self.grants.load(Ordering::Relaxed)
    }

    /// True when the session should be refreshed now.
    pub(crate) fn due(&self, session: &Session, now: u64) -> bool {
        session.expires_at <= now.saturating_add(self.settings.grace.as_secs())
    }

    /// True when the refresh token is older than the configured limit.
    pub(crate) fn refresh_token_too_old(&self, session: &Session, now: u64) -> bool {
        match (
            self.settings.max_refresh_token_age,
            session.refresh_token_issued_at,
        ) {
            (Some(max), Some(issued)) => now.saturating_sub(issued) > max.as_secs(),
            _ => false,
        }
    }

    /// Runs `grant` at most once for `refresh_token` across concurrent callers,
    /// and reuses a recent success.
    pub(crate) async fn refresh<F>(
        &self,
        refresh_token: &str,
        grant: F,
    ) -> Result<Arc<Session>, RefreshFailure>
    where
        F: std::future::Future<Output = Result<Session, super::Error>>,
    {
        let key = TokenHash::full_hex(refresh_token);
        if let Some(hit) = self.results.get(&key).await {
            self.metrics.refresh(RefreshResult::CoalescedLocal);
            return Ok(hit);
        }
        if let Some(shared) = self.shared_result(&key, refresh_token).await {
            self.metrics.refresh(RefreshResult::ReusedCluster);
            self.results.insert(key, shared.clone()).await;
            return Ok(shared);
        }
        if self.cooldowns.contains_key(&key) || !self.breaker_allows() {
            self.metrics.refresh(RefreshResult::Paused);
            return Err(RefreshFailure::Paused);
        }
        let ran = std::sync::atomic::AtomicBool::new(false);
        let result = self
            .results
            .try_get_with(key.clone(), async {
                ran.store(true, Ordering::Relaxed);
                if !self.claim_flight(&key).await {
                    // Another replica holds the grant: wait for its result.
                    let r = self.await_other_replica(&key, refresh_token).await;
                    self.metrics.refresh(match r {
                        Ok(_) => RefreshResult::ReusedCluster,
                        Err(_) => RefreshResult::Failed,
                    });
                    return r;
                }
                self.grants.fetch_add(1, Ordering::Relaxed);
                let outcome = grant.await;
                match &outcome {
                    Ok(session) => self.publish_result(&key, refresh_token, session).await,
                    // No result will follow: free the mark so that the next
                    // request asks the provider instead of waiting for it.
                    Err(_) => self.release_flight(&key).await,
                }
                match &outcome {
                    Ok(_) => self.breaker_success(),
                    Err(e) => match RefreshFailure::of(e) {
                        RefreshFailure::Transient => self.breaker_failure(),
                        _ => self.breaker_success(),
                    },
                }
                self.metrics.refresh(match &outcome {
                    Ok(_) => RefreshResult::Performed,
                    Err(e) if RefreshFailure::of(e) == RefreshFailure::Rejected => {
                        RefreshResult::Rejected
                    }
                    Err(_) => RefreshResult::Failed,
                });
                outcome.map(Arc::new).map_err(|e| {
                    tracing::info!(rt = %TokenHash::of(refresh_token), error = %e, "refresh failed");
                    RefreshFailure::of(&e)
                })
            })
            .await;
        if !ran.load(Ordering::Relaxed) {
            self.metrics.refresh(RefreshResult::CoalescedLocal);
        }
        result.map_err(|e| {
            let f = (*e).clone();
            if f == RefreshFailure::Transient {
                self.cooldowns.insert(key, self.clock.now());
            }
            f
        })
    }

    /// Marks this refresh as in progress across replicas; true when this
    /// replica may send the grant (also when the cache cannot answer).
    async fn claim_flight(&self, key: &str) -> bool {
        let Ok(k) = CacheKey::new(key) else {
            return true;
        };
        let ns = Namespace::RefreshLock;
        self.caches
            .set_if_absent(ns, &k, &1u8, ns.default_ttl())
            .await
            .unwrap_or(true)
    }

    /// Removes the "refresh in progress" mark of a flight that failed.
    async fn release_flight(&self, key: &str) {
        let Ok(k) = CacheKey::new(key) else {
            return;
        };
        if let Err(e) = self.caches.delete(Namespace::RefreshLock, &k).await {
            tracing::debug!(error = %e, "refresh mark not released");
        }
    }

    async fn await_other_replica(
        &self,
        key: &str,
        rt: &str,
    ) -> Result<Arc<Session>, RefreshFailure> {
        let deadline = tokio::time::Instant::now() + DEFAULT_CROSS_REPLICA_WAIT;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(CROSS_REPLICA_POLL).await;
            if let Some(s) = self.shared_result(key, rt).await {
                return Ok(s);
            }
        }
        Err(RefreshFailure::Transient)
    }

    /// Stores a success for other replicas, sealed with a key derived from
    /// the old refresh token: only a holder of that token can read it.
    async fn publish_result(&self, key: &str, rt: &str, session: &Session) {
        let Ok(k) = CacheKey::new(key) else {
            return;
        };
        let Some(sealed) = seal_result(rt, session) else {
            return;
        };
        if let Err(e) = self
            .caches
            .set(
                Namespace::RefreshResult,
                &k,
                &sealed,
                self.settings.result_ttl,
            )
            .await
        {
            tracing::debug!(error = %e, "refresh result not shared");
        }
    }

    async fn shared_result(&self, key: &str, rt: &str) -> Option<Arc<Session>> {
        let k = CacheKey::new(key).ok()?;
        let sealed: String = self.caches.get(Namespace::RefreshResult, &k).await.ok()??;
        open_result(rt, &sealed).map(Arc::new)
    }

    fn breaker_allows(&self) -> bool {
        let allowed = self.breaker.allow();
        self.publish_breaker();
        allowed
    }

    fn breaker_success(&self) {
        if self.breaker.on_success() {
            tracing::info!("token endpoint breaker closed");
        }
        self.publish_breaker();
    }

    fn breaker_failure(&self) {
        if self.breaker.on_failure() {
            tracing::warn!(
                failures = self.breaker.failures(),
                "token endpoint breaker opened"
            );
        }
        self.publish_breaker();
    }

    fn publish_breaker(&self) {
        let state = self.breaker.state();
        self.metrics.token_breaker(breaker_value(
            state == BreakerState::Open,
            state == BreakerState::HalfOpen,
        ));
    }
}

/// Label binding shared refresh results to their purpose.
const RESULT_LABEL: &str = "refresh result";

fn seal_result(rt: &str, session: &Session) -> Option<String> {
    let json = serde_json::to_vec(session).ok()?;
    crate::session::seal_with_secret(rt, RESULT_LABEL, &json).ok()
}

fn open_result(rt: &str, sealed: &str) -> Option<Session> {
    let plain = crate::session::open_with_secret(rt, RESULT_LABEL, sealed).ok()?;
    serde_json::from_slice(&plain).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session {
            sid: "s".into(),
            created_at: 1,
            renewed_at: None,
            identifier: "a@example.com".into(),
            subject: "sub".into(),
            idp_sid: None,
            email: None,
            groups: vec![],
            roles: vec![],
            id_token: Some("id".into()),
            access_token: Some("at".into()),
            refresh_token: Some("rt2".into()),
            refresh_token_issued_at: Some(1),
            expires_at: 100,
            server_secret: None,
        }
    }

    #[test]
    fn shared_results_open_only_with_the_old_refresh_token() {
        let sealed = seal_result("rt1", &session()).unwrap();
        assert!(!sealed.contains("rt2") && !sealed.contains("a@example.com"));
        assert_eq!(open_result("rt1", &sealed), Some(session()));
        assert_eq!(open_result("other", &sealed), None);
        assert_eq!(open_result("rt1", "garbage"), None);
    }
}
