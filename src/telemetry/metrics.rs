//! Prometheus metrics: typed events counted with atomics, and their exposition.
//!
//! Owns the metric names, their label sets (closed enums only: no user, path,
//! host or token ever becomes a label value), the lock-free counters and
//! histograms the request path updates, and the text exposition built with
//! `prometheus-client`. Call sites record one typed event in one line
//! ([`Metrics::decision`], [`Metrics::idp`], ...). Modules that keep their own
//! counters (the cache layer) publish them through a [`Source`], read only at
//! scrape time.
//!
//! Must not: take a lock, allocate or spawn on the request path; know about
//! OIDC, HTTP or caches beyond the label enums declared here.
//!
//! # Names
//!
//! Every name carries the configured prefix (`metricsPrefix`, default
//! [`DEFAULT_PREFIX`]). With the prefix `traefikoidc`, the four series the
//! traefikoidc Redis guide tells operators to watch exist under exactly those
//! names: `traefikoidc_cache_hits_total`, `traefikoidc_cache_requests_total`,
//! `traefikoidc_redis_operation_duration_seconds` and
//! `traefikoidc_circuit_breaker_state`. `docs/operations.md` lists every metric.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// Default metric name prefix (`metricsPrefix`).
pub const DEFAULT_PREFIX: &str = "oidcgate";
/// The content type of [`Exporter::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds (seconds) of the decision latency histogram: decisions are
/// sub-millisecond when caches are warm, up to seconds when the provider is
/// asked.
pub const DECISION_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5,
];
/// Upper bounds (seconds) of the provider request latency histogram.
pub const IDP_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Upper bounds (seconds) of the Redis operation latency histogram.
pub const REDIS_BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// A closed set of label values: one enum, one label name.
pub trait Label: Copy + 'static {
    /// The label's name.
    const NAME: &'static str;
    /// Every value, in index order.
    const ALL: &'static [Self];
    /// The value as exported.
    fn as_str(self) -> &'static str;
    /// Position in [`Label::ALL`].
    fn index(self) -> usize;
}

macro_rules! label {
    ($(#[$m:meta])* $name:ident = $label:literal { $($(#[$vm:meta])* $v:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $v),+ }
        impl Label for $name {
            const NAME: &'static str = $label;
            const ALL: &'static [Self] = &[$(Self::$v),+];
            fn as_str(self) -> &'static str { match self { $(Self::$v => $s),+ } }
            fn index(self) -> usize { self as usize }
        }
    };
}

label! {
    /// Which door a request came through.
    Door = "door" {
        /// Traefik / Caddy forward-auth.
        ForwardAuth => "forwardauth",
        /// nginx `auth_request` (`/oauth2/auth`).
        AuthRequest => "auth_request",
        /// The reverse proxy.
        Proxy => "proxy",
        /// The tower layer embedded in another service.
        Tower => "tower",
    }
}

label! {
    /// What the gate answered.
    Outcome = "decision" {
        /// Let through.
        Allow => "allow",
        /// Sent to the provider's login (or another redirect).
        LoginRedirect => "login_redirect",
        /// 401.
        Unauthenticated => "unauthenticated",
        /// 403.
        Forbidden => "forbidden",
        /// 429.
        RateLimited => "rate_limited",
        /// 503 (provider or store unavailable).
        Unavailable => "unavailable",
        /// Another 4xx (bad callback, bad request, method).
        BadRequest => "bad_request",
        /// A 2xx/3xx page of the gate's own (logout, front-channel).
        OwnPage => "own_page",
        /// 5xx other than 503, or any other failure.
        Error => "error",
    }
}

impl Outcome {
    /// The outcome of a reply with `status`.
    pub fn of_status(status: u16) -> Self {
        match status {
            401 => Self::Unauthenticated,
            403 => Self::Forbidden,
            429 => Self::RateLimited,
            503 => Self::Unavailable,
            200..=399 => Self::OwnPage,
            400..=499 => Self::BadRequest,
            _ => Self::Error,
        }
    }
}

label! {
    /// How a login callback ended.
    CallbackResult = "result" {
        /// Session created, user sent back.
        Success => "success",
        /// Valid login, but the policy refused the user.
        Forbidden => "forbidden",
        /// The provider sent an error instead of a code.
        ProviderError => "provider_error",
        /// Malformed, unknown or replayed callback.
        Invalid => "invalid",
        /// The code exchange or token verification failed.
        Rejected => "rejected",
        /// The provider could not be reached.
        Unavailable => "unavailable",
        /// Any other failure.
        Error => "error",
    }
}

label! {
    /// How a login start ended.
    LoginResult = "result" {
        /// Redirected to the provider.
        Started => "started",
        /// Refused: too many round trips without success.
        LoopRefused => "loop_refused",
        /// The provider could not be discovered.
        Unavailable => "unavailable",
    }
}

label! {
    /// What a session refresh did.
    RefreshResult = "result" {
        /// This gate sent the refresh grant.
        Performed => "performed",
        /// Waited for a concurrent grant of this gate.
        CoalescedLocal => "coalesced_local",
        /// Reused the result of another replica's grant.
        ReusedCluster => "reused_cluster",
        /// The provider refused the grant (session over).
        Rejected => "rejected",
        /// The provider failed or could not be reached.
        Failed => "failed",
        /// Not attempted: breaker open or cooling down.
        Paused => "paused",
    }
}

label! {
    /// Why a bearer token was refused.
    BearerReason = "reason" {
        /// No token after the scheme.
        Missing => "missing",
        /// Malformed header, token or JOSE header.
        Malformed => "malformed",
        /// Larger than the limit.
        TooLarge => "too_large",
        /// Opaque token not accepted.
        Opaque => "opaque",
        /// Algorithm outside the allowlist.
        Algorithm => "alg_not_allowed",
        /// Unknown `kid`.
        UnknownKey => "unknown_kid",
        /// Bad signature.
        Signature => "bad_signature",
        /// A claim check failed (issuer, audience, ...).
        Claim => "claim",
        /// Expired.
        Expired => "expired",
        /// Older than the maximum token age.
        TooOld => "too_old",
        /// An ID token used as a bearer token.
        IdToken => "id_token",
        /// Introspection says inactive.
        Inactive => "inactive",
        /// Revoked.
        Revoked => "revoked",
        /// Replayed `jti`.
        Replayed => "replayed",
        /// The policy refused the identity.
        Forbidden => "forbidden",
        /// Any other reason.
        Other => "other",
    }
}

label! {
    /// Which provider endpoint was called.
    IdpEndpoint = "endpoint" {
        /// The discovery document.
        Discovery => "discovery",
        /// The key set.
        Jwks => "jwks",
        /// Authorization-code exchange.
        TokenCode => "token_code",
        /// Refresh grant.
        TokenRefresh => "token_refresh",
        /// RFC 7662 introspection.
        Introspection => "introspection",
    }
}

label! {
    /// How a provider call ended.
    IdpOutcome = "outcome" {
        /// Answered as expected.
        Ok => "ok",
        /// The grant was refused (`invalid_grant`).
        InvalidGrant => "invalid_grant",
        /// Another OAuth refusal or an invalid answer.
        ClientError => "client_error",
        /// Unreachable, timed out or a 5xx.
        Unavailable => "unavailable",
    }
}

label! {
    /// Where a session was ended.
    InvalidationChannel = "channel" {
        /// RP-initiated logout.
        Logout => "logout",
        /// OIDC back-channel logout.
        Backchannel => "backchannel",
        /// OIDC front-channel logout.
        Frontchannel => "frontchannel",
    }
}

label! {
    /// How a configuration reload ended.
    ReloadResult = "result" {
        /// The new configuration serves requests.
        Success => "success",
        /// The old configuration stays.
        Failure => "failure",
    }
}

label! {
    /// The cache tier that answered.
    Tier = "tier" {
        /// The in-process memory tier.
        L1 => "l1",
        /// Redis.
        L2 => "l2",
    }
}

label! {
    /// Whether a cache read found a value.
    CacheResult = "result" {
        /// Found.
        Hit => "hit",
        /// Not found.
        Miss => "miss",
    }
}

label! {
    /// Which circuit breaker.
    BreakerName = "breaker" {
        /// In front of Redis.
        Redis => "redis",
        /// In front of the provider's token endpoint (refresh grants).
        TokenEndpoint => "token_endpoint",
    }
}

/// One counter per value of `L`, updated with one relaxed atomic add.
#[derive(Debug)]
pub struct CounterVec<L: Label> {
    cells: Box<[AtomicU64]>,
    _label: std::marker::PhantomData<L>,
}

impl<L: Label> Default for CounterVec<L> {
    fn default() -> Self {
        Self {
            cells: L::ALL.iter().map(|_| AtomicU64::new(0)).collect(),
            _label: std::marker::PhantomData,
        }
    }
}

impl<L: Label> CounterVec<L> {
    /// Adds one for `l`.
    pub fn inc(&self, l: L) {
        self.add(l, 1);
    }

    /// Adds `n` for `l`.
    pub fn add(&self, l: L, n: u64) {
        if let Some(c) = self.cells.get(l.index()) {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// The current value for `l`.
    pub fn get(&self, l: L) -> u64 {
        self.cells
            .get(l.index())
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

/// A histogram with fixed buckets: one atomic add for the bucket, one for the
/// sum (in nanoseconds). No lock, no allocation.
#[derive(Debug)]
pub struct Histogram {
    bounds_ns: Box<[u64]>,
    bounds: &'static [f64],
    /// One cell per bound plus the `+Inf` cell; not cumulative.
    counts: Box<[AtomicU64]>,
    sum_ns: AtomicU64,
}

impl Histogram {
    /// A histogram with the given upper bounds (seconds, ascending).
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds_ns: bounds.iter().map(|b| secs_to_ns(*b)).collect(),
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_ns: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let i = self.bounds_ns.partition_point(|b| *b < ns);
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let buckets: Vec<(f64, u64)> = self
            .bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(self.counts.iter().map(|c| c.load(Ordering::Relaxed)))
            .collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        #[allow(clippy::cast_precision_loss, reason = "seconds as f64 for export")]
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        (sum, count, buckets)
    }
}

fn secs_to_ns(s: f64) -> u64 {
    Duration::try_from_secs_f64(s).map_or(u64::MAX, |d| {
        u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
    })
}

/// A label set of closed values.
pub type Labels = Vec<(&'static str, &'static str)>;

/// Writes metric families during a scrape. Handed to every [`Source`].
pub struct Sink<'a> {
    out: Out<'a>,
}

enum Out<'a> {
    /// OpenMetrics through `prometheus-client`.
    Open(DescriptorEncoder<'a>),
    /// The classic Prometheus text format (0.0.4), for scrapers and tools
    /// that do not ask for OpenMetrics.
    Classic { w: &'a mut String, prefix: &'a str },
}

impl fmt::Debug for Sink<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sink")
    }
}

/// Writes `{a="x",b="y"}` (nothing for no labels) with `extra` appended.
fn classic_labels(
    w: &mut String,
    labels: &[(&'static str, &'static str)],
    extra: Option<(&str, &str)>,
) -> fmt::Result {
    use fmt::Write;
    let all = labels.iter().copied().chain(extra);
    let mut first = true;
    for (k, v) in all {
        w.write_str(if first { "{" } else { "," })?;
        first = false;
        write!(w, "{k}=\"")?;
        for c in v.chars() {
            match c {
                '\\' => w.write_str("\\\\")?,
                '"' => w.write_str("\\\"")?,
                '\n' => w.write_str("\\n")?,
                c => w.write_char(c)?,
            }
        }
        w.write_char('"')?;
    }
    if !first {
        w.write_char('}')?;
    }
    Ok(())
}

fn classic_header(w: &mut String, name: &str, help: &str, kind: &str) -> fmt::Result {
    use fmt::Write;
    writeln!(w, "# HELP {name} {help}")?;
    writeln!(w, "# TYPE {name} {kind}")
}

impl Sink<'_> {
    /// A counter family; `name` without `_total` (the encoder adds it).
    pub fn counter(
        &mut self,
        name: &str,
        help: &str,
        samples: &[(Labels, u64)],
    ) -> Result<(), fmt::Error> {
        match &mut self.out {
            Out::Open(enc) => {
                let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
                for (labels, v) in samples {
                    m.encode_family(labels)?
                        .encode_counter::<NoLabelSet, u64, f64>(v, None)?;
                }
                Ok(())
            }
            Out::Classic { w, prefix } => {
                use fmt::Write;
                let full = format!("{prefix}_{name}_total");
                classic_header(w, &full, help, "counter")?;
                for (labels, v) in samples {
                    w.write_str(&full)?;
                    classic_labels(w, labels, None)?;
                    writeln!(w, " {v}")?;
                }
                Ok(())
            }
        }
    }

    /// A gauge family.
    pub fn gauge(
        &mut self,
        name: &str,
        help: &str,
        samples: &[(Labels, f64)],
    ) -> Result<(), fmt::Error> {
        match &mut self.out {
            Out::Open(enc) => {
                let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
                for (labels, v) in samples {
                    m.encode_family(labels)?.encode_gauge(v)?;
                }
                Ok(())
            }
            Out::Classic { w, prefix } => {
                use fmt::Write;
                let full = format!("{prefix}_{name}");
                classic_header(w, &full, help, "gauge")?;
                for (labels, v) in samples {
                    w.write_str(&full)?;
                    classic_labels(w, labels, None)?;
                    writeln!(w, " {v}")?;
                }
                Ok(())
            }
        }
    }

    /// A histogram family.
    pub fn histogram(
        &mut self,
        name: &str,
        help: &str,
        samples: &[(Labels, &Histogram)],
    ) -> Result<(), fmt::Error> {
        match &mut self.out {
            Out::Open(enc) => {
                let mut m = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
                for (labels, h) in samples {
                    let (sum, count, buckets) = h.snapshot();
                    m.encode_family(labels)?
                        .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
                }
                Ok(())
            }
            Out::Classic { w, prefix } => {
                use fmt::Write;
                let full = format!("{prefix}_{name}");
                classic_header(w, &full, help, "histogram")?;
                for (labels, h) in samples {
                    let (sum, count, buckets) = h.snapshot();
                    let mut cumulative = 0u64;
                    for (le, n) in buckets {
                        cumulative += n;
                        let le = if le.is_infinite() {
                            "+Inf".to_owned()
                        } else {
                            le.to_string()
                        };
                        write!(w, "{full}_bucket")?;
                        classic_labels(w, labels, Some(("le", &le)))?;
                        writeln!(w, " {cumulative}")?;
                    }
                    write!(w, "{full}_sum")?;
                    classic_labels(w, labels, None)?;
                    writeln!(w, " {sum}")?;
                    write!(w, "{full}_count")?;
                    classic_labels(w, labels, None)?;
                    writeln!(w, " {count}")?;
                }
                Ok(())
            }
        }
    }

    /// A counter family with one sample per value of `L`.
    pub fn counter_vec<L: Label>(
        &mut self,
        name: &str,
        help: &str,
        v: &CounterVec<L>,
    ) -> Result<(), fmt::Error> {
        let samples: Vec<(Labels, u64)> = L::ALL
            .iter()
            .map(|l| (vec![(L::NAME, l.as_str())], v.get(*l)))
            .collect();
        self.counter(name, help, &samples)
    }
}

/// Something that publishes metric families at scrape time.
pub trait Source: Send + Sync + fmt::Debug {
    /// Writes this source's families.
    fn collect(&self, sink: &mut Sink<'_>) -> Result<(), fmt::Error>;
}

/// The gate's own events. Cheap to clone; a disabled handle records nothing.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    inner: Option<Arc<Events>>,
}

/// The counters behind [`Metrics`].
#[derive(Debug)]
struct Events {
    /// `[door][outcome]`.
    requests: Box<[CounterVec<Outcome>]>,
    decision_seconds: Box<[Histogram]>,
    logins: CounterVec<LoginResult>,
    callbacks: CounterVec<CallbackResult>,
    refreshes: CounterVec<RefreshResult>,
    bearer_rejections: CounterVec<BearerReason>,
    /// `[endpoint][outcome]`.
    idp_requests: Box<[CounterVec<IdpOutcome>]>,
    idp_seconds: Box<[Histogram]>,
    sessions_invalidated: CounterVec<InvalidationChannel>,
    reloads: CounterVec<ReloadResult>,
    last_reload_success: AtomicU64,
    token_breaker: AtomicU64,
}

impl Metrics {
    /// A handle that counts.
    pub fn new() -> Self {
        let doors = Door::ALL.len();
        Self {
            inner: Some(Arc::new(Events {
                requests: (0..doors).map(|_| CounterVec::default()).collect(),
                decision_seconds: (0..doors * Outcome::ALL.len())
                    .map(|_| Histogram::new(DECISION_BUCKETS))
                    .collect(),
                logins: CounterVec::default(),
                callbacks: CounterVec::default(),
                refreshes: CounterVec::default(),
                bearer_rejections: CounterVec::default(),
                idp_requests: IdpEndpoint::ALL
                    .iter()
                    .map(|_| CounterVec::default())
                    .collect(),
                idp_seconds: IdpEndpoint::ALL
                    .iter()
                    .map(|_| Histogram::new(IDP_BUCKETS))
                    .collect(),
                sessions_invalidated: CounterVec::default(),
                reloads: CounterVec::default(),
                last_reload_success: AtomicU64::new(0),
                token_breaker: AtomicU64::new(0),
            })),
        }
    }

    /// A handle that records nothing (metrics off).
    pub fn disabled() -> Self {
        Self { inner: None }
    }

    /// Whether events are recorded.
    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// One decision of `door`, its outcome and how long it took.
    pub fn decision(&self, door: Door, outcome: Outcome, took: Duration) {
        if let Some(e) = &self.inner {
            if let Some(v) = e.requests.get(door.index()) {
                v.inc(outcome);
            }
            let i = door.index() * Outcome::ALL.len() + outcome.index();
            if let Some(h) = e.decision_seconds.get(i) {
                h.observe(took);
            }
        }
    }

    /// Decisions recorded for `door` with `outcome`.
    pub fn decisions(&self, door: Door, outcome: Outcome) -> u64 {
        self.inner.as_ref().map_or(0, |e| {
            e.requests.get(door.index()).map_or(0, |v| v.get(outcome))
        })
    }

    /// A login start.
    pub fn login(&self, r: LoginResult) {
        if let Some(e) = &self.inner {
            e.logins.inc(r);
        }
    }

    /// A login callback.
    pub fn callback(&self, r: CallbackResult) {
        if let Some(e) = &self.inner {
            e.callbacks.inc(r);
        }
    }

    /// Callbacks counted with result `r` (0 when disabled).
    pub fn callbacks(&self, r: CallbackResult) -> u64 {
        self.inner.as_ref().map_or(0, |e| e.callbacks.get(r))
    }

    /// A session refresh.
    pub fn refresh(&self, r: RefreshResult) {
        if let Some(e) = &self.inner {
            e.refreshes.inc(r);
        }
    }

    /// Refreshes recorded with result `r`.
    pub fn refreshes(&self, r: RefreshResult) -> u64 {
        self.inner.as_ref().map_or(0, |e| e.refreshes.get(r))
    }

    /// A refused bearer token.
    pub fn bearer_rejected(&self, r: BearerReason) {
        if let Some(e) = &self.inner {
            e.bearer_rejections.inc(r);
        }
    }

    /// A call to the provider.
    pub fn idp(&self, endpoint: IdpEndpoint, outcome: IdpOutcome, took: Duration) {
        if let Some(e) = &self.inner {
            if let Some(v) = e.idp_requests.get(endpoint.index()) {
                v.inc(outcome);
            }
            if let Some(h) = e.idp_seconds.get(endpoint.index()) {
                h.observe(took);
            }
        }
    }

    /// A session ended on every replica.
    pub fn session_invalidated(&self, channel: InvalidationChannel) {
        if let Some(e) = &self.inner {
            e.sessions_invalidated.inc(channel);
        }
    }

    /// A configuration reload; `at` is the Unix time of a success.
    pub fn reload(&self, r: ReloadResult, at: u64) {
        if let Some(e) = &self.inner {
            e.reloads.inc(r);
            if r == ReloadResult::Success {
                e.last_reload_success.store(at, Ordering::Relaxed);
            }
        }
    }

    /// Reloads recorded with result `r`.
    pub fn reloads(&self, r: ReloadResult) -> u64 {
        self.inner.as_ref().map_or(0, |e| e.reloads.get(r))
    }

    /// The token-endpoint breaker's state, as [`breaker_value`] encodes it.
    pub fn token_breaker(&self, value: u64) {
        if let Some(e) = &self.inner {
            e.token_breaker.store(value, Ordering::Relaxed);
        }
    }
}

/// A breaker state as the `circuit_breaker_state` gauge exports it:
/// 0 closed, 1 half-open, 2 open (the numbering of traefikoidc's breaker).
pub fn breaker_value(open: bool, half_open: bool) -> u64 {
    match (open, half_open) {
        (_, true) => 1,
        (true, false) => 2,
        (false, false) => 0,
    }
}

impl Source for Metrics {
    fn collect(&self, sink: &mut Sink<'_>) -> Result<(), fmt::Error> {
        let Some(e) = &self.inner else {
            return Ok(());
        };
        let mut requests = Vec::new();
        let mut seconds = Vec::new();
        for door in Door::ALL {
            for outcome in Outcome::ALL {
                let labels = vec![
                    (Door::NAME, door.as_str()),
                    (Outcome::NAME, outcome.as_str()),
                ];
                let n = e.requests.get(door.index()).map_or(0, |v| v.get(*outcome));
                let i = door.index() * Outcome::ALL.len() + outcome.index();
                if n > 0 {
                    requests.push((labels.clone(), n));
                    if let Some(h) = e.decision_seconds.get(i) {
                        seconds.push((labels, h));
                    }
                }
            }
        }
        sink.counter(
            "requests",
            "Requests decided, by door and decision.",
            &requests,
        )?;
        sink.histogram(
            "decision_duration_seconds",
            "Time to decide a request, by door and decision.",
            &seconds,
        )?;
        sink.counter_vec("logins", "Login starts, by result.", &e.logins)?;
        sink.counter_vec("callbacks", "Login callbacks, by result.", &e.callbacks)?;
        sink.counter_vec("refresh", "Session refreshes, by result.", &e.refreshes)?;
        sink.counter_vec(
            "bearer_rejections",
            "Bearer tokens refused, by reason.",
            &e.bearer_rejections,
        )?;
        let mut idp = Vec::new();
        let mut idp_seconds = Vec::new();
        for ep in IdpEndpoint::ALL {
            for o in IdpOutcome::ALL {
                let n = e.idp_requests.get(ep.index()).map_or(0, |v| v.get(*o));
                idp.push((
                    vec![
                        (IdpEndpoint::NAME, ep.as_str()),
                        (IdpOutcome::NAME, o.as_str()),
                    ],
                    n,
                ));
            }
            if let Some(h) = e.idp_seconds.get(ep.index()) {
                idp_seconds.push((vec![(IdpEndpoint::NAME, ep.as_str())], h));
            }
        }
        sink.counter(
            "idp_requests",
            "Calls to the identity provider, by endpoint and outcome.",
            &idp,
        )?;
        sink.histogram(
            "idp_request_duration_seconds",
            "Latency of calls to the identity provider, by endpoint.",
            &idp_seconds,
        )?;
        sink.counter_vec(
            "sessions_invalidated",
            "Sessions ended on every replica, by channel.",
            &e.sessions_invalidated,
        )?;
        sink.counter_vec(
            "config_reloads",
            "Configuration reloads, by result.",
            &e.reloads,
        )?;
        #[allow(clippy::cast_precision_loss, reason = "a Unix time in seconds")]
        let last = e.last_reload_success.load(Ordering::Relaxed) as f64;
        sink.gauge(
            "config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful configuration reload (0: none).",
            &[(Vec::new(), last)],
        )?;
        #[allow(clippy::cast_precision_loss, reason = "a small state number")]
        let token = e.token_breaker.load(Ordering::Relaxed) as f64;
        sink.gauge(
            "token_endpoint_breaker_state",
            "State of the token-endpoint breaker: 0 closed, 1 half-open, 2 open.",
            &[(Vec::new(), token)],
        )?;
        sink.gauge(
            "build_info",
            "Build information; the value is always 1.",
            &[(vec![("version", env!("CARGO_PKG_VERSION"))], 1.0)],
        )
    }
}

/// The `/metrics` answer: a registry with the configured prefix and the
/// sources it reads at every scrape.
#[derive(Debug)]
pub struct Exporter {
    registry: Registry,
    prefix: String,
    sources: Arc<Sources>,
}

#[derive(Debug)]
struct Sources(Vec<Arc<dyn Source>>);

impl prometheus_client::collector::Collector for Sources {
    fn encode(&self, enc: DescriptorEncoder) -> Result<(), fmt::Error> {
        let mut sink = Sink {
            out: Out::Open(enc),
        };
        for s in &self.0 {
            s.collect(&mut sink)?;
        }
        Ok(())
    }
}

/// The exposition formats [`Exporter::encode_as`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 ([`CONTENT_TYPE`]); what Prometheus asks for.
    OpenMetrics,
    /// The classic Prometheus text format 0.0.4 ([`CLASSIC_CONTENT_TYPE`]).
    Classic,
}

/// The content type of the classic text format.
pub const CLASSIC_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

impl Format {
    /// OpenMetrics when the `Accept` header asks for it, else classic.
    pub fn from_accept(accept: &str) -> Self {
        if accept.contains("application/openmetrics-text") {
            Self::OpenMetrics
        } else {
            Self::Classic
        }
    }

    /// The content type of this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::OpenMetrics => CONTENT_TYPE,
            Self::Classic => CLASSIC_CONTENT_TYPE,
        }
    }
}

/// Why a prefix cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("metric prefix must match [a-zA-Z_][a-zA-Z0-9_]* (got {0:?})")]
pub struct BadPrefix(pub String);

/// Checks a metric prefix (`metricsPrefix`).
pub fn check_prefix(prefix: &str) -> Result<(), BadPrefix> {
    let mut chars = prefix.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(BadPrefix(prefix.to_owned()))
    }
}

impl Exporter {
    /// An exporter publishing `sources` under `prefix`.
    pub fn new(prefix: &str, sources: Vec<Arc<dyn Source>>) -> Result<Self, BadPrefix> {
        check_prefix(prefix)?;
        let sources = Arc::new(Sources(sources));
        let mut registry = Registry::with_prefix(prefix);
        registry.register_collector(Box::new(sources.clone()));
        Ok(Self {
            registry,
            prefix: prefix.to_owned(),
            sources,
        })
    }

    /// The OpenMetrics exposition, or `None` if a source failed to encode.
    pub fn encode(&self) -> Option<String> {
        self.encode_as(Format::OpenMetrics)
    }

    /// The exposition in `format`, or `None` if a source failed to encode.
    pub fn encode_as(&self, format: Format) -> Option<String> {
        let mut out = String::new();
        match format {
            Format::OpenMetrics => {
                prometheus_client::encoding::text::encode(&mut out, &self.registry).ok()?;
            }
            Format::Classic => {
                let mut sink = Sink {
                    out: Out::Classic {
                        w: &mut out,
                        prefix: &self.prefix,
                    },
                };
                for s in &self.sources.0 {
                    s.collect(&mut sink).ok()?;
                }
            }
        }
        Some(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_and_sum() {
        let h = Histogram::new(&[0.001, 0.01]);
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(1));
        h.observe(Duration::from_millis(5));
        h.observe(Duration::from_secs(1));
        let (sum, count, buckets) = h.snapshot();
        assert_eq!(count, 4);
        assert_eq!(buckets, vec![(0.001, 2), (0.01, 1), (f64::INFINITY, 1)]);
        assert!((sum - 1.0065).abs() < 1e-9, "{sum}");
    }

    #[test]
    fn disabled_metrics_record_nothing() {
        let m = Metrics::disabled();
        m.decision(Door::Proxy, Outcome::Allow, Duration::from_millis(1));
        assert_eq!(m.decisions(Door::Proxy, Outcome::Allow), 0);
        let on = Metrics::new();
        on.decision(Door::Proxy, Outcome::Allow, Duration::from_millis(1));
        assert_eq!(on.decisions(Door::Proxy, Outcome::Allow), 1);
    }

    #[test]
    fn exposition_has_prefixed_names_and_closed_labels() {
        let m = Metrics::new();
        m.decision(
            Door::ForwardAuth,
            Outcome::Forbidden,
            Duration::from_micros(80),
        );
        m.reload(ReloadResult::Failure, 0);
        let e = Exporter::new("traefikoidc", vec![Arc::new(m)]).unwrap();
        let text = e.encode().unwrap();
        assert!(
            text.contains(
                "traefikoidc_requests_total{door=\"forwardauth\",decision=\"forbidden\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("traefikoidc_config_reloads_total{result=\"failure\"} 1"));
        assert!(text.contains(
            "traefikoidc_decision_duration_seconds_bucket{le=\"0.0001\",door=\"forwardauth\",decision=\"forbidden\"} 1"
        ), "{text}");
        assert!(text.ends_with("# EOF\n"));
        let classic = e.encode_as(Format::Classic).unwrap();
        assert!(classic.contains("# TYPE traefikoidc_requests_total counter\n"));
        assert!(classic.contains(
            "traefikoidc_requests_total{door=\"forwardauth\",decision=\"forbidden\"} 1\n"
        ));
        assert!(classic.contains(
            "traefikoidc_decision_duration_seconds_bucket{door=\"forwardauth\",decision=\"forbidden\",le=\"+Inf\"} 1\n"
        ), "{classic}");
        assert!(!classic.contains("# EOF"));
    }

    #[test]
    fn prefixes_are_checked() {
        assert!(check_prefix("oidcgate").is_ok());
        assert!(check_prefix("traefikoidc").is_ok());
        assert!(check_prefix("_x1").is_ok());
        for bad in ["", "1abc", "a-b", "a:b", "a b"] {
            assert!(check_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn outcomes_follow_the_status() {
        assert_eq!(Outcome::of_status(401), Outcome::Unauthenticated);
        assert_eq!(Outcome::of_status(403), Outcome::Forbidden);
        assert_eq!(Outcome::of_status(429), Outcome::RateLimited);
        assert_eq!(Outcome::of_status(503), Outcome::Unavailable);
        assert_eq!(Outcome::of_status(400), Outcome::BadRequest);
        assert_eq!(Outcome::of_status(508), Outcome::Error);
        assert_eq!(Outcome::of_status(200), Outcome::OwnPage);
    }
}
