//! Token buckets per source address: `perSourceLoginRateLimit` on new
//! logins (login start and callback) and `rateLimit` on new logins and the
//! gate's own endpoints.
//!
//! Each bucket is one atomic "theoretical arrival time" (the generic cell
//! rate algorithm): an event is admitted when the bucket would not overflow,
//! which moves that time one emission interval on. No lock is taken per
//! request. A bucket that has refilled completely carries no state, so
//! sweeping it changes nothing; the table is swept of such entries at most
//! once per [`RATE_LIMIT_SWEEP_INTERVAL`] and whenever it reaches its
//! capacity, and when it is still full the entries closest to full are
//! dropped.
//!
//! Sources are the addresses the doors resolved through `trustedProxies`.
//! Internal sources (loopback, private, unique-local, link-local,
//! unspecified) are never limited: behind a proxy that is not trusted, every
//! user would share the proxy's address. IPv6 sources are counted per /64.
//! Time comes from the injected [`Clock`](crate::clock::Clock).

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use super::throttle::{bucket, millis};
use crate::clock::SharedClock;

/// Most source addresses one limiter tracks.
pub const DEFAULT_RATE_LIMIT_MAX_ENTRIES: usize = 10_000;
/// How often, at most, refilled buckets are swept from a limiter.
pub const RATE_LIMIT_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// One limiter's rate: `burst` events at once, refilled at one event per
/// `interval`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Events admitted at once from a full bucket (at least 1).
    pub burst: u32,
    /// Time for one event to be refilled.
    pub interval: Duration,
}

impl Rate {
    /// `per_minute` events a minute, with a burst of as many
    /// (`perSourceLoginRateLimit`).
    pub fn per_minute(per_minute: u32) -> Self {
        let n = per_minute.max(1);
        Self {
            burst: n,
            interval: Duration::from_secs(60) / n,
        }
    }

    /// A burst of `burst` refilled at one event a second (`rateLimit`).
    pub fn per_second_with_burst(burst: u32) -> Self {
        Self {
            burst: burst.max(1),
            interval: Duration::from_secs(1),
        }
    }
}

/// The rate limits of the gate (`None`: off).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimitSettings {
    /// New logins (login start and callback) per source
    /// (`perSourceLoginRateLimit`).
    pub login: Option<Rate>,
    /// New logins and requests to the gate's own endpoints per source
    /// (`rateLimit`).
    pub endpoints: Option<Rate>,
}

/// True for sources that are never limited: loopback, private (RFC 1918),
/// unique-local (`fc00::/7`), link-local and unspecified addresses.
pub(super) fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified()
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_internal(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                v6.is_loopback()
                    || v6.is_unspecified()
                    || (first & 0xfe00) == 0xfc00
                    || (first & 0xffc0) == 0xfe80
            }
        },
    }
}

/// One limiter: a bounded table of buckets. Cheap to share behind an `Arc`.
pub(super) struct Limiter {
    interval_ms: u64,
    /// How far ahead of now the arrival time may run: `(burst - 1)` intervals.
    tolerance_ms: u64,
    max_entries: usize,
    clock: SharedClock,
    /// Per source: the time (ms) at which its bucket is full again.
    tats: papaya::HashMap<IpAddr, Arc<AtomicU64>>,
    last_sweep_ms: AtomicU64,
    sweeping: AtomicBool,
}

impl Limiter {
    /// A limiter of `rate` holding at most `max_entries` sources (at least 1).
    pub(super) fn new(rate: Rate, max_entries: usize, clock: SharedClock) -> Self {
        let interval_ms = millis(rate.interval).max(1);
        let now = clock.now_ms();
        Self {
            interval_ms,
            tolerance_ms: interval_ms.saturating_mul(u64::from(rate.burst.max(1) - 1)),
            max_entries: max_entries.max(1),
            clock,
            tats: papaya::HashMap::new(),
            last_sweep_ms: AtomicU64::new(now),
            sweeping: AtomicBool::new(false),
        }
    }

    /// Admits one event from `ip`, or `Err(seconds)` to wait before the next
    /// one is admitted (rounded up, at least 1) for `Retry-After`. Internal
    /// sources are always admitted.
    pub(super) fn admit(&self, ip: IpAddr) -> Result<(), u64> {
        if is_internal(ip) {
            return Ok(());
        }
        let key = bucket(ip);
        let now = self.clock.now_ms();
        self.maybe_sweep(now);
        let tat = {
            let map = self.tats.pin();
            match map.get(&key) {
                Some(t) => t.clone(),
                None => {
                    if map.len() >= self.max_entries {
                        drop(map);
                        self.sweep(now);
                    }
                    self.tats
                        .pin()
                        .get_or_insert(key, Arc::new(AtomicU64::new(0)))
                        .clone()
                }
            }
        };
        let mut current = tat.load(Ordering::Acquire);
        loop {
            let start = current.max(now);
            let earliest = start.saturating_sub(self.tolerance_ms);
            if earliest > now {
                return Err((earliest - now).div_ceil(1000).max(1));
            }
            match tat.compare_exchange_weak(
                current,
                start.saturating_add(self.interval_ms),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(()),
                Err(seen) => current = seen,
            }
        }
    }

    /// Number of sources tracked.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.tats.len()
    }

    fn maybe_sweep(&self, now: u64) {
        let last = self.last_sweep_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= millis(RATE_LIMIT_SWEEP_INTERVAL)
            && self
                .last_sweep_ms
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            self.sweep(now);
        }
    }

    /// Drops refilled buckets; if the table is still at 7/8 of its capacity
    /// or more, drops the buckets closest to full until it is below. One
    /// caller sweeps at a time; the others go on without waiting.
    fn sweep(&self, now: u64) {
        if self.sweeping.swap(true, Ordering::AcqRel) {
            return;
        }
        let map = self.tats.pin();
        map.retain(|_, t| t.load(Ordering::Acquire) > now);
        let low_water = self.max_entries - self.max_entries / 8;
        if map.len() >= low_water {
            let mut by_tat: Vec<(u64, IpAddr)> = map
                .iter()
                .map(|(k, t)| (t.load(Ordering::Acquire), *k))
                .collect();
            by_tat.sort_unstable();
            let excess = map.len().saturating_sub(low_water.saturating_sub(1));
            for (_, k) in by_tat.into_iter().take(excess) {
                map.remove(&k);
            }
        }
        drop(map);
        self.sweeping.store(false, Ordering::Release);
    }
}

/// The gate's limiters, built from [`RateLimitSettings`].
pub(super) struct RateLimits {
    login: Option<Limiter>,
    endpoints: Option<Limiter>,
}

/// What an event counts against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Event {
    /// A login start or a callback: both limiters.
    Login,
    /// Another request to the gate's own endpoints: `rateLimit` only.
    Endpoint,
}

impl RateLimits {
    pub(super) fn new(settings: RateLimitSettings, clock: &SharedClock) -> Self {
        let limiter = |r: Rate| Limiter::new(r, DEFAULT_RATE_LIMIT_MAX_ENTRIES, clock.clone());
        Self {
            login: settings.login.map(limiter),
            endpoints: settings.endpoints.map(limiter),
        }
    }

    /// Admits `event` from `ip`, or `Err(seconds)` for `Retry-After`.
    pub(super) fn admit(&self, event: Event, ip: IpAddr) -> Result<(), u64> {
        if event == Event::Login {
            if let Some(l) = &self.login {
                l.admit(ip)?;
            }
        }
        match &self.endpoints {
            Some(l) => l.admit(ip),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    const OUT: &str = "203.0.113.7";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn per_minute_admits_the_burst_then_one_per_interval() {
        let clock = ManualClock::starting_now();
        let l = Limiter::new(Rate::per_minute(6), 100, clock.clone());
        for n in 0..6 {
            assert_eq!(l.admit(ip(OUT)), Ok(()), "burst event {n}");
        }
        // 60 s / 6 = one event every 10 s.
        assert_eq!(l.admit(ip(OUT)), Err(10));
        assert_eq!(
            l.admit(ip("203.0.113.8")),
            Ok(()),
            "other sources are apart"
        );
        clock.advance(9);
        assert_eq!(l.admit(ip(OUT)), Err(1));
        clock.advance(1);
        assert_eq!(l.admit(ip(OUT)), Ok(()));
        assert_eq!(l.admit(ip(OUT)), Err(10));
        // A minute later the whole burst is back.
        clock.advance(60);
        for _ in 0..6 {
            assert_eq!(l.admit(ip(OUT)), Ok(()));
        }
        assert!(l.admit(ip(OUT)).is_err());
    }

    #[test]
    fn per_second_rate_refills_one_a_second() {
        let clock = ManualClock::starting_now();
        let l = Limiter::new(Rate::per_second_with_burst(10), 100, clock.clone());
        for _ in 0..10 {
            assert!(l.admit(ip(OUT)).is_ok());
        }
        assert_eq!(l.admit(ip(OUT)), Err(1));
        clock.advance(3);
        for _ in 0..3 {
            assert!(l.admit(ip(OUT)).is_ok());
        }
        assert!(l.admit(ip(OUT)).is_err());
    }

    #[test]
    fn internal_sources_are_never_limited() {
        let clock = ManualClock::starting_now();
        let l = Limiter::new(Rate::per_minute(1), 100, clock);
        for source in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.9",
            "192.168.1.1",
            "169.254.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::",
            "::ffff:10.0.0.1",
        ] {
            for _ in 0..5 {
                assert_eq!(l.admit(ip(source)), Ok(()), "{source}");
            }
        }
        assert_eq!(l.len(), 0, "internal sources take no entry");
        for external in ["203.0.113.1", "2001:db8::1", "100.64.0.1"] {
            assert!(!is_internal(ip(external)), "{external}");
        }
    }

    #[test]
    fn ipv6_sources_share_their_64() {
        let clock = ManualClock::starting_now();
        let l = Limiter::new(Rate::per_minute(1), 100, clock);
        assert!(l.admit(ip("2001:db8:1:2::1")).is_ok());
        assert!(l.admit(ip("2001:db8:1:2::ffff")).is_err());
        assert!(l.admit(ip("2001:db8:1:3::1")).is_ok());
    }

    #[test]
    fn the_table_is_bounded_and_refilled_buckets_are_swept() {
        let clock = ManualClock::starting_now();
        let l = Limiter::new(Rate::per_minute(2), 64, clock.clone());
        for i in 0..1000u32 {
            let [_, _, a, b] = i.to_be_bytes();
            let _ = l.admit(IpAddr::from([198, 51, a, b]));
            assert!(l.len() <= 64 + 1, "{} entries after {i}", l.len());
        }
        // A limited source stays limited while it is among the newest.
        let _ = l.admit(ip(OUT));
        let _ = l.admit(ip(OUT));
        assert!(l.admit(ip(OUT)).is_err());
        // Once every bucket has refilled, the periodic sweep empties the table.
        clock.advance(RATE_LIMIT_SWEEP_INTERVAL.as_secs() + 60);
        assert!(l.admit(ip("203.0.113.99")).is_ok());
        assert_eq!(l.len(), 1, "only the new source is left");
    }

    #[test]
    fn login_events_count_against_both_limits_endpoint_events_against_one() {
        let clock: SharedClock = ManualClock::starting_now();
        let limits = RateLimits::new(
            RateLimitSettings {
                login: Some(Rate::per_minute(2)),
                endpoints: Some(Rate::per_second_with_burst(3)),
            },
            &clock,
        );
        assert!(limits.admit(Event::Login, ip(OUT)).is_ok());
        assert!(limits.admit(Event::Login, ip(OUT)).is_ok());
        assert_eq!(limits.admit(Event::Login, ip(OUT)), Err(30));
        // The endpoint bucket had two of three taken by the logins.
        assert!(limits.admit(Event::Endpoint, ip(OUT)).is_ok());
        assert_eq!(limits.admit(Event::Endpoint, ip(OUT)), Err(1));
        let off = RateLimits::new(RateLimitSettings::default(), &clock);
        for _ in 0..100 {
            assert!(off.admit(Event::Login, ip(OUT)).is_ok());
        }
    }
}
