//! The per-client-address failure table of the bearer path.
//!
//! Each address that presented a refused bearer token gets an entry with a
//! failure counter over a fixed window and a penalty deadline. Reaching the
//! threshold inside one window starts a penalty during which every bearer
//! request from that address is answered 429 with `Retry-After`. A success
//! resets the counter but never shortens a running penalty.
//!
//! The table is a lock-free map of atomics read on every bearer request; only
//! addresses that failed get an entry. It is bounded: when it reaches its
//! capacity, one caller sweeps it down to a low-water mark, dropping idle
//! entries first, then the least recently seen, and penalised entries last.
//! IPv6 clients are counted per /64 network, the block one subscriber
//! usually holds, so rotating addresses inside it does not reset the count.
//! Time comes from the injected [`Clock`](crate::clock::Clock).

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::SharedClock;

/// Refused bearer tokens from one address within one window that start a
/// penalty (`bearerFailureThreshold`).
pub const DEFAULT_BEARER_FAILURE_THRESHOLD: u32 = 20;
/// Length of the failure-counting window (`bearerFailureWindowSeconds`).
pub const DEFAULT_BEARER_FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// How long a penalised address is refused (`bearerFailurePenaltySeconds`).
pub const DEFAULT_BEARER_FAILURE_PENALTY: Duration = Duration::from_secs(60);
/// Most addresses tracked at once; a sweep keeps the table below this.
pub const DEFAULT_THROTTLE_MAX_ENTRIES: usize = 10_000;

/// Settings of the failure table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThrottleSettings {
    /// Failures within `window` that start a penalty (at least 1).
    pub threshold: u32,
    /// The counting window.
    pub window: Duration,
    /// The penalty length, also sent as `Retry-After`.
    pub penalty: Duration,
    /// Most addresses tracked at once.
    pub max_entries: usize,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        Self {
            threshold: DEFAULT_BEARER_FAILURE_THRESHOLD,
            window: DEFAULT_BEARER_FAILURE_WINDOW,
            penalty: DEFAULT_BEARER_FAILURE_PENALTY,
            max_entries: DEFAULT_THROTTLE_MAX_ENTRIES,
        }
    }
}

/// The state of one address. Every field is an atomic so readers and
/// writers never wait on each other; concurrent failures may be counted in
/// an adjacent window at a window boundary, which only shifts the count by
/// the failures racing on that boundary.
#[derive(Debug, Default)]
struct Entry {
    window_start_ms: AtomicU64,
    failures: AtomicU32,
    penalty_until_ms: AtomicU64,
    last_seen_ms: AtomicU64,
}

/// The failure table. Cheap to share behind an `Arc`.
pub(crate) struct Throttle {
    settings: ThrottleSettings,
    clock: SharedClock,
    entries: papaya::HashMap<IpAddr, Arc<Entry>>,
    sweeping: AtomicBool,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("settings", &self.settings)
            .field("entries", &self.len())
            .finish_non_exhaustive()
    }
}

/// The key of `ip` in a per-source table: IPv4 addresses as they are, IPv6
/// addresses by their /64 network.
pub(super) fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(
                u128::from(v6) & 0xffff_ffff_ffff_ffff_0000_0000_0000_0000,
            )),
        },
        v4 => v4,
    }
}

/// `d` in whole milliseconds, saturating.
pub(super) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Throttle {
    /// An empty table. A threshold of 0 is treated as 1 and a capacity of 0
    /// as 1, so the table always works.
    pub(crate) fn new(mut settings: ThrottleSettings, clock: SharedClock) -> Self {
        settings.threshold = settings.threshold.max(1);
        settings.max_entries = settings.max_entries.max(1);
        Self {
            settings,
            clock,
            entries: papaya::HashMap::new(),
            sweeping: AtomicBool::new(false),
        }
    }

    /// `Err(seconds)` while `ip` is penalised: the whole seconds left,
    /// rounded up (at least 1), for `Retry-After`.
    pub(crate) fn check(&self, ip: IpAddr) -> Result<(), u64> {
        let ip = bucket(ip);
        let map = self.entries.pin();
        let Some(e) = map.get(&ip) else {
            return Ok(());
        };
        let now = self.clock.now_ms();
        let until = e.penalty_until_ms.load(Ordering::Acquire);
        if until > now {
            Err((until - now).div_ceil(1000).max(1))
        } else {
            Ok(())
        }
    }

    /// Counts one refused token from `ip`; returns true when this failure
    /// started a penalty.
    pub(crate) fn failure(&self, ip: IpAddr) -> bool {
        let ip = bucket(ip);
        let now = self.clock.now_ms();
        let entry = {
            let map = self.entries.pin();
            match map.get(&ip) {
                Some(e) => e.clone(),
                None => {
                    if map.len() >= self.settings.max_entries {
                        drop(map);
                        self.sweep(now);
                    }
                    let fresh = Arc::new(Entry {
                        window_start_ms: AtomicU64::new(now),
                        ..Entry::default()
                    });
                    self.entries.pin().get_or_insert(ip, fresh).clone()
                }
            }
        };
        entry.last_seen_ms.store(now, Ordering::Relaxed);
        let start = entry.window_start_ms.load(Ordering::Acquire);
        if now.saturating_sub(start) >= millis(self.settings.window)
            && entry
                .window_start_ms
                .compare_exchange(start, now, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            entry.failures.store(0, Ordering::Release);
        }
        let count = entry
            .failures
            .fetch_add(1, Ordering::AcqRel)
            .saturating_add(1);
        if count >= self.settings.threshold {
            entry.failures.store(0, Ordering::Release);
            entry.window_start_ms.store(now, Ordering::Release);
            let until = now.saturating_add(millis(self.settings.penalty));
            entry.penalty_until_ms.fetch_max(until, Ordering::AcqRel);
            return true;
        }
        false
    }

    /// Clears the failure count of `ip` after an accepted token. A running
    /// penalty is kept.
    pub(crate) fn success(&self, ip: IpAddr) {
        let ip = bucket(ip);
        let map = self.entries.pin();
        if let Some(e) = map.get(&ip) {
            e.failures.store(0, Ordering::Release);
        }
    }

    /// Number of addresses tracked.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Brings the table down to 7/8 of its capacity. Only one caller sweeps
    /// at a time; the others insert without waiting, so the table may exceed
    /// its capacity by the number of concurrent inserters.
    fn sweep(&self, now: u64) {
        if self
            .sweeping
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        let window = millis(self.settings.window);
        let low_water = self.settings.max_entries - self.settings.max_entries / 8;
        let map = self.entries.pin();
        map.retain(|_, e| {
            e.penalty_until_ms.load(Ordering::Acquire) > now
                || now.saturating_sub(e.window_start_ms.load(Ordering::Acquire)) < window
        });
        if map.len() >= low_water {
            let mut by_age: Vec<(bool, u64, IpAddr)> = map
                .iter()
                .map(|(ip, e)| {
                    (
                        e.penalty_until_ms.load(Ordering::Acquire) > now,
                        e.last_seen_ms.load(Ordering::Relaxed),
                        *ip,
                    )
                })
                .collect();
            by_age.sort_unstable();
            let excess = map.len().saturating_sub(low_water);
            for (_, _, ip) in by_age.into_iter().take(excess) {
                map.remove(&ip);
            }
        }
        self.sweeping.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n))
    }

    fn table(threshold: u32, max_entries: usize) -> (Arc<ManualClock>, Throttle) {
        let clock = ManualClock::starting_now();
        let t = Throttle::new(
            ThrottleSettings {
                threshold,
                window: Duration::from_secs(60),
                penalty: Duration::from_secs(30),
                max_entries,
            },
            clock.clone(),
        );
        (clock, t)
    }

    #[test]
    fn threshold_starts_a_penalty_with_retry_after() {
        let (clock, t) = table(3, 100);
        assert!(!t.failure(ip(1)));
        assert!(!t.failure(ip(1)));
        assert_eq!(t.check(ip(1)), Ok(()));
        assert!(t.failure(ip(1)));
        assert_eq!(t.check(ip(1)), Err(30));
        assert_eq!(t.check(ip(2)), Ok(()), "other addresses pass");
        clock.advance(29);
        assert_eq!(t.check(ip(1)), Err(1));
        clock.advance(1);
        assert_eq!(t.check(ip(1)), Ok(()));
    }

    #[test]
    fn window_expiry_restarts_the_count() {
        let (clock, t) = table(3, 100);
        t.failure(ip(1));
        t.failure(ip(1));
        clock.advance(60);
        assert!(!t.failure(ip(1)));
        assert!(!t.failure(ip(1)));
        assert_eq!(t.check(ip(1)), Ok(()));
        assert!(t.failure(ip(1)));
    }

    #[test]
    fn success_clears_the_count_but_keeps_a_penalty() {
        let (_clock, t) = table(3, 100);
        t.failure(ip(1));
        t.failure(ip(1));
        t.success(ip(1));
        assert!(!t.failure(ip(1)));
        assert!(!t.failure(ip(1)));
        assert!(t.failure(ip(1)));
        t.success(ip(1));
        assert_eq!(t.check(ip(1)), Err(30));
    }

    #[test]
    fn successes_alone_create_no_entries() {
        let (_clock, t) = table(3, 100);
        for n in 0..50 {
            t.success(ip(n));
            assert_eq!(t.check(ip(n)), Ok(()));
        }
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn table_is_bounded_and_keeps_penalised_addresses() {
        let (_clock, t) = table(2, 64);
        t.failure(ip(0));
        t.failure(ip(0));
        assert!(t.check(ip(0)).is_err());
        for n in 1..1000 {
            t.failure(ip(n));
            assert!(t.len() <= 64, "{} entries after {n}", t.len());
        }
        assert!(t.check(ip(0)).is_err(), "a penalty survives eviction");
    }

    #[test]
    fn expired_entries_are_swept_first() {
        let (clock, t) = table(5, 16);
        for n in 0..16 {
            t.failure(ip(n));
        }
        clock.advance(61);
        t.failure(ip(100));
        assert_eq!(t.len(), 1, "idle entries are dropped by the sweep");
    }

    #[test]
    fn ipv6_is_counted_per_64() {
        let (_clock, t) = table(2, 100);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        t.failure(a);
        assert!(t.failure(b), "same /64, same count");
        assert!(t.check(a).is_err());
        assert_eq!(t.check(other), Ok(()));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        t.failure(mapped);
        t.failure(ip(1));
        assert!(t.check(ip(1)).is_err(), "mapped IPv4 counts as IPv4");
    }

    #[test]
    fn zero_settings_are_raised() {
        let clock = ManualClock::starting_now();
        let t = Throttle::new(
            ThrottleSettings {
                threshold: 0,
                max_entries: 0,
                ..ThrottleSettings::default()
            },
            clock,
        );
        assert!(t.failure(ip(1)));
        assert!(t.check(ip(1)).is_err());
    }
}
