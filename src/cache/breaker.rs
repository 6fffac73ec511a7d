//! A lock-free circuit breaker in front of Redis.
//!
//! Owns: the closed / open / half-open state machine. Must not: sleep, retry,
//! or know what the guarded call does; the caller reports each outcome.

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::stats::BreakerState;

/// Consecutive failures that open the breaker.
pub const DEFAULT_BREAKER_FAILURE_THRESHOLD: u32 = 5;
/// Time the breaker stays open before one probe call is let through.
pub const DEFAULT_BREAKER_RECOVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of the circuit breaker.
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

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const HALF_OPEN: u8 = 2;

/// The breaker. With `settings: None` it never opens.
#[derive(Debug)]
pub(crate) struct Breaker {
    settings: Option<BreakerSettings>,
    state: AtomicU8,
    failures: AtomicU32,
    /// Milliseconds since `epoch` when the breaker last opened.
    opened_at_ms: AtomicU64,
    epoch: Instant,
}

impl Breaker {
    pub(crate) fn new(settings: Option<BreakerSettings>) -> Breaker {
        Breaker {
            settings,
            state: AtomicU8::new(CLOSED),
            failures: AtomicU32::new(0),
            opened_at_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether a call may go out now. In the open state, once the recovery
    /// timeout has passed, exactly one caller gets `true` (the probe) and the
    /// breaker turns half-open until that call reports its outcome.
    pub(crate) fn allow(&self) -> bool {
        let Some(settings) = self.settings else {
            return true;
        };
        match self.state.load(Ordering::Acquire) {
            CLOSED => true,
            OPEN => {
                let since = self
                    .now_ms()
                    .saturating_sub(self.opened_at_ms.load(Ordering::Acquire));
                let recovery =
                    u64::try_from(settings.recovery_timeout.as_millis()).unwrap_or(u64::MAX);
                since >= recovery
                    && self
                        .state
                        .compare_exchange(OPEN, HALF_OPEN, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
            }
            _ => false,
        }
    }

    /// Reports a successful call: the breaker closes.
    pub(crate) fn on_success(&self) {
        self.failures.store(0, Ordering::Release);
        if self.state.load(Ordering::Acquire) != CLOSED {
            self.state.store(CLOSED, Ordering::Release);
        }
    }

    /// Reports a failed call: a failed probe reopens the breaker; in the
    /// closed state the threshold-th consecutive failure opens it.
    pub(crate) fn on_failure(&self) {
        let Some(settings) = self.settings else {
            return;
        };
        match self.state.load(Ordering::Acquire) {
            HALF_OPEN => self.open(),
            CLOSED => {
                let n = self
                    .failures
                    .fetch_add(1, Ordering::AcqRel)
                    .saturating_add(1);
                if n >= settings.failure_threshold.max(1) {
                    self.open();
                }
            }
            _ => {}
        }
    }

    fn open(&self) {
        self.opened_at_ms.store(self.now_ms(), Ordering::Release);
        self.state.store(OPEN, Ordering::Release);
    }

    /// Consecutive failures counted since the last success.
    pub(crate) fn failures(&self) -> u32 {
        self.failures.load(Ordering::Acquire)
    }

    pub(crate) fn state(&self) -> BreakerState {
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

    #[tokio::test(start_paused = true)]
    async fn opens_after_threshold_probes_after_timeout_and_closes_on_success() {
        let b = Breaker::new(Some(BreakerSettings {
            failure_threshold: 3,
            recovery_timeout: Duration::from_secs(5),
        }));
        for _ in 0..2 {
            assert!(b.allow());
            b.on_failure();
        }
        assert_eq!(b.state(), BreakerState::Closed);
        b.on_failure();
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.allow());
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(b.allow(), "probe");
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(!b.allow(), "only one probe");
        b.on_failure();
        assert_eq!(b.state(), BreakerState::Open);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(b.allow());
        b.on_success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.allow());
    }

    #[tokio::test(start_paused = true)]
    async fn success_resets_the_failure_count() {
        let b = Breaker::new(Some(BreakerSettings {
            failure_threshold: 2,
            recovery_timeout: Duration::from_secs(1),
        }));
        b.on_failure();
        b.on_success();
        b.on_failure();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn disabled_never_opens() {
        let b = Breaker::new(None);
        for _ in 0..100 {
            b.on_failure();
        }
        assert!(b.allow());
    }
}
