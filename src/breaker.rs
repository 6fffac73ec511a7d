//! A lock-free circuit breaker: the one behind Redis (`cache`) and the one in
//! front of the provider's token endpoint (`gate::refresh`) are two instances
//! of [`Breaker`].
//!
//! Owns: the closed / open / half-open state machine. Must not: sleep, retry,
//! log, count metrics, or know what the guarded call does; the caller reports
//! each outcome and reads the state transitions from the return values.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::{Clock, SharedClock};

/// Consecutive failures that open the breaker (Redis's default).
pub const DEFAULT_BREAKER_FAILURE_THRESHOLD: u32 = 5;
/// Time the breaker stays open before one probe call is let through (Redis's
/// default).
pub const DEFAULT_BREAKER_RECOVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of a circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Consecutive failures that open the breaker (at least 1).
    pub failure_threshold: u32,
    /// Time the breaker stays open before a probe.
    pub recovery_timeout: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            failure_threshold: DEFAULT_BREAKER_FAILURE_THRESHOLD,
            recovery_timeout: DEFAULT_BREAKER_RECOVERY_TIMEOUT,
        }
    }
}

/// State of a circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BreakerState {
    /// Calls go through.
    #[default]
    Closed,
    /// Calls fail at once without touching the network.
    Open,
    /// One probe call is allowed through to test recovery.
    HalfOpen,
}

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const HALF_OPEN: u8 = 2;

/// The breaker. With `settings: None` it never opens.
pub struct Breaker {
    settings: Option<BreakerSettings>,
    clock: SharedClock,
    state: AtomicU8,
    failures: AtomicU32,
    /// When the breaker last opened or let a probe through (ms of `clock`).
    since_ms: AtomicU64,
}

impl std::fmt::Debug for Breaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Breaker")
            .field("settings", &self.settings)
            .field("state", &self.state())
            .field("failures", &self.failures())
            .finish_non_exhaustive()
    }
}

/// Milliseconds since the breaker was made, on Tokio's clock (which tests
/// can pause and advance).
struct Elapsed(tokio::time::Instant);

impl Clock for Elapsed {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

impl Breaker {
    /// A breaker timed by `clock`.
    pub fn new(settings: Option<BreakerSettings>, clock: SharedClock) -> Breaker {
        Breaker {
            settings,
            clock,
            state: AtomicU8::new(CLOSED),
            failures: AtomicU32::new(0),
            since_ms: AtomicU64::new(0),
        }
    }

    /// A breaker timed by Tokio's monotonic clock.
    pub fn monotonic(settings: Option<BreakerSettings>) -> Breaker {
        Breaker::new(settings, Arc::new(Elapsed(tokio::time::Instant::now())))
    }

    /// Whether a call may go out now. Once the recovery timeout has passed
    /// since the breaker opened, exactly one caller gets `true` (the probe)
    /// and the breaker turns half-open until that call reports its outcome;
    /// a probe that never reports lets the next one through after another
    /// recovery timeout.
    pub fn allow(&self) -> bool {
        let Some(settings) = self.settings else {
            return true;
        };
        let state = self.state.load(Ordering::Acquire);
        if state == CLOSED {
            return true;
        }
        let since = self.since_ms.load(Ordering::Acquire);
        let now = self.clock.now_ms();
        let recovery = u64::try_from(settings.recovery_timeout.as_millis()).unwrap_or(u64::MAX);
        if now.saturating_sub(since) < recovery {
            return false;
        }
        // One caller moves the time forward and probes.
        if self
            .since_ms
            .compare_exchange(since, now, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        let _ = self
            .state
            .compare_exchange(OPEN, HALF_OPEN, Ordering::AcqRel, Ordering::Acquire);
        true
    }

    /// Reports a successful call: the breaker closes. True when it was not
    /// closed before.
    pub fn on_success(&self) -> bool {
        self.failures.store(0, Ordering::Release);
        self.state.swap(CLOSED, Ordering::AcqRel) != CLOSED
    }

    /// Reports a failed call: a failed probe reopens the breaker; in the
    /// closed state the threshold-th consecutive failure opens it. True when
    /// this report opened it.
    pub fn on_failure(&self) -> bool {
        let Some(settings) = self.settings else {
            return false;
        };
        match self.state.load(Ordering::Acquire) {
            HALF_OPEN => {
                self.open();
                false
            }
            CLOSED => {
                let n = self
                    .failures
                    .fetch_add(1, Ordering::AcqRel)
                    .saturating_add(1);
                n >= settings.failure_threshold.max(1) && self.open() == CLOSED
            }
            _ => false,
        }
    }

    /// Opens the breaker; the state it was in.
    fn open(&self) -> u8 {
        self.since_ms.store(self.clock.now_ms(), Ordering::Release);
        self.state.swap(OPEN, Ordering::AcqRel)
    }

    /// Consecutive failures counted since the last success.
    pub fn failures(&self) -> u32 {
        self.failures.load(Ordering::Acquire)
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        match self.state.load(Ordering::Acquire) {
            CLOSED => BreakerState::Closed,
            OPEN => BreakerState::Open,
            _ => BreakerState::HalfOpen,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[tokio::test(start_paused = true)]
    async fn opens_after_threshold_probes_after_timeout_and_closes_on_success() {
        let b = Breaker::monotonic(Some(BreakerSettings {
            failure_threshold: 3,
            recovery_timeout: Duration::from_secs(5),
        }));
        for _ in 0..2 {
            assert!(b.allow());
            assert!(!b.on_failure());
        }
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.on_failure(), "the threshold-th failure opens it");
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.allow());
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(b.allow(), "probe");
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(!b.allow(), "only one probe");
        assert!(!b.on_failure(), "a failed probe reopens, it does not open");
        assert_eq!(b.state(), BreakerState::Open);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(b.allow());
        assert!(b.on_success());
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.allow());
        assert!(!b.on_success(), "already closed");
    }

    #[tokio::test(start_paused = true)]
    async fn success_resets_the_failure_count() {
        let b = Breaker::monotonic(Some(BreakerSettings {
            failure_threshold: 2,
            recovery_timeout: Duration::from_secs(1),
        }));
        b.on_failure();
        b.on_success();
        b.on_failure();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn a_probe_that_never_reports_frees_the_next_after_a_timeout() {
        let clock = Arc::new(ManualClock::default());
        let b = Breaker::new(
            Some(BreakerSettings {
                failure_threshold: 1,
                recovery_timeout: Duration::from_secs(30),
            }),
            clock.clone(),
        );
        assert!(b.on_failure());
        clock.advance(29);
        assert!(!b.allow());
        clock.advance(1);
        assert!(b.allow(), "probe");
        assert!(!b.allow());
        clock.advance(30);
        assert!(
            b.allow(),
            "the lost probe does not hold the breaker forever"
        );
    }

    #[test]
    fn disabled_never_opens() {
        let b = Breaker::monotonic(None);
        for _ in 0..100 {
            assert!(!b.on_failure());
        }
        assert!(b.allow());
    }
}
