//! A Menshen node's own counters (MON-1): what every call did, counted on
//! the request path without a lock shared by all requests, and read back
//! three ways:
//! - [`Metrics::encode`]: the Prometheus / OpenMetrics text exposition (real
//!   histograms with buckets; labels only from the catalog and from fixed
//!   sets, never an IP, a customer or a free-form string);
//! - [`Stats`]: per app and per API calls, success rate, TPS and p50/p99
//!   latency over the last minute, hour and day (rolling windows), and the
//!   figures an alert evaluator reads (any window up to a day; failures per
//!   client IP);
//! - [`NodeFigures`] through a [`Probe`] the node installs (snapshot version
//!   and age, audit queue and sync latency, open connections).
//!
//! # The hot path
//! [`Metrics::observe`] takes one [`Call`] per request (built from its access
//! record). Labels are [`LabelId`]s resolved when the snapshot was compiled;
//! the call lands in one of [`SHARDS`] cache-padded shards, chosen per
//! thread, so each worker thread takes its own uncontended lock; nothing is
//! formatted or allocated for a call whose label set was seen before. The
//! shards hold cumulative counts; a scrape sums them; the statistics fold
//! the difference since the last fold into their windows once a second
//! ([`Metrics::tick`], and before every read).
//!
//! # In a cluster
//! Every node counts its own calls. Prometheus sums the counters and the
//! histogram buckets across nodes (`sum by (app) (rate(menshen_calls_total[1m]))`,
//! `histogram_quantile(0.99, sum by (le, api) (rate(menshen_call_duration_seconds_bucket[5m])))`).
//! The statistics of several nodes add the same way: calls and each
//! outcome count add; TPS adds; success rate is the summed successes over the
//! summed calls; percentiles come from the summed buckets
//! ([`Stats::window_hist`] exposes them), never from averaging percentiles.
//! [`cluster`] does exactly that for the admin statistics: each node
//! publishes its window slots, a reader adds the others' to its own.
#![forbid(unsafe_code)]
#![deny(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::dbg_macro
)]
#![warn(missing_docs)]

pub mod buckets;
pub mod cluster;
pub mod labels;
pub mod prom;
pub mod stats;

use std::cell::Cell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;

pub use buckets::{AtomicHist, Hist};
pub use cluster::{ClusterView, PeerNode, Remote, SlotData, SlotRecord};
pub use labels::{intern, LabelId};
pub use stats::{IpFailures, Stats, Subject, SubjectStats, WindowFigures};

/// Number of shards the per-call counts are spread over.
pub const SHARDS: usize = 16;

/// Client IPs tracked per shard between two folds (a flood of distinct
/// addresses beyond it is counted as overflow, not remembered).
pub const IPS_PER_SHARD: usize = 4096;

/// Distinct App_IDs remembered per client IP (enough to tell credential
/// stuffing; more are counted as this many).
pub const APPS_PER_IP: usize = 32;

/// The security level of the API called (`none`: not routed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    /// No API was found.
    None,
    /// A1.
    A1,
    /// A2.
    A2,
    /// A3.
    A3,
}

impl Level {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "none",
            Level::A1 => "A1",
            Level::A2 => "A2",
            Level::A3 => "A3",
        }
    }
}

/// What became of a call, by who answered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// The upstream (or the gateway's own endpoint) answered below 400.
    Success,
    /// The upstream answered 4xx (relayed).
    ClientError,
    /// The gateway refused the call (the client's fault: signature, grant,
    /// limits, ...); nothing reached the upstream.
    Refused,
    /// The upstream failed, timed out, was unreachable or degraded.
    UpstreamError,
    /// The gateway itself (or the audit log) failed.
    GatewayError,
}

impl Class {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Success => "success",
            Class::ClientError => "client_error",
            Class::Refused => "refused",
            Class::UpstreamError => "upstream_error",
            Class::GatewayError => "gateway_error",
        }
    }
}

/// A finer reason the statistics keep for alerting (not a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Nothing special.
    None,
    /// Authentication failed (signature, key, App_ID, window, ...).
    Auth,
    /// The app has no grant for the API (`NOT_GRANTED`).
    NotGranted,
    /// A flow-control rule refused it (`RATE_LIMITED`).
    RateLimited,
}

/// How an upstream exchange failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UpstreamError {
    /// It could not be reached (nothing was sent).
    Unreachable,
    /// It did not answer in time (it may have acted).
    Timeout,
    /// It answered with a server error.
    Failed,
    /// The gateway did not send it the call: breaker open, bulkhead full.
    Degraded,
}

impl UpstreamError {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamError::Unreachable => "unreachable",
            UpstreamError::Timeout => "timeout",
            UpstreamError::Failed => "failed",
            UpstreamError::Degraded => "degraded",
        }
    }
}

/// A flow-control event (TRF-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateLimitEvent {
    /// A `reject` rule refused the call (429).
    Reject,
    /// An `alert` rule was exceeded; the call went through.
    Alert,
    /// The hot state could not check the limits.
    Unavailable,
}

impl RateLimitEvent {
    const ALL: [RateLimitEvent; 3] = [
        RateLimitEvent::Reject,
        RateLimitEvent::Alert,
        RateLimitEvent::Unavailable,
    ];
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RateLimitEvent::Reject => "reject",
            RateLimitEvent::Alert => "alert",
            RateLimitEvent::Unavailable => "unavailable",
        }
    }
}

/// A circuit-breaker event (TRF-2), reported by the breaker through
/// [`Metrics::breaker_event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BreakerEvent {
    /// The breaker opened (the upstream is considered down).
    Opened,
    /// It let a probe call through (half-open).
    HalfOpened,
    /// It closed again (the upstream recovered).
    Closed,
    /// It refused a call while open.
    Rejected,
}

impl BreakerEvent {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerEvent::Opened => "opened",
            BreakerEvent::HalfOpened => "half_opened",
            BreakerEvent::Closed => "closed",
            BreakerEvent::Rejected => "rejected",
        }
    }
}

/// One finished call, as the gateway reports it (from its access record).
#[derive(Debug, Clone)]
pub struct Call<'a> {
    /// The app (verified, or claimed and in the catalog), else unknown.
    pub app: LabelId,
    /// The API, else unknown.
    pub api: LabelId,
    /// The API's level.
    pub level: Level,
    /// Who answered and how.
    pub class: Class,
    /// A finer reason, for alerting.
    pub kind: Kind,
    /// The refusal's error code (a fixed, documented set), if refused or failed.
    pub code: Option<&'static str>,
    /// Whole duration, microseconds.
    pub duration_us: u64,
    /// Time spent waiting for the upstream, microseconds, if it was called.
    pub upstream_us: Option<u64>,
    /// How the upstream failed, if it did.
    pub upstream_error: Option<UpstreamError>,
    /// A flow-control event of this call.
    pub rate_limit: Option<RateLimitEvent>,
    /// The client IP (kept in process for the alert evaluator only; never a
    /// label).
    pub client_ip: IpAddr,
    /// The App_ID the request named, verified or not (hashed at once, only
    /// for failing calls: distinct App_IDs per client IP).
    pub claimed_app: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct CallKey {
    pub app: LabelId,
    pub api: LabelId,
    pub level: Level,
    pub class: Class,
    pub kind: Kind,
}

/// Failures of one client IP since the last fold.
#[derive(Debug, Clone, Default)]
pub(crate) struct IpCell {
    pub failures: u64,
    pub auth_failures: u64,
    /// Hashes of the distinct App_IDs named by its failing calls.
    pub apps: Vec<u64>,
}

impl IpCell {
    pub(crate) fn add_app(&mut self, h: u64) {
        if self.apps.len() < APPS_PER_IP && !self.apps.contains(&h) {
            self.apps.push(h);
        }
    }
}

/// One shard's counts. Cumulative except `ips` (drained by each fold).
#[derive(Default)]
pub(crate) struct Shard {
    pub calls: HashMap<CallKey, Hist>,
    pub upstream: HashMap<LabelId, Hist>,
    pub upstream_errors: HashMap<(LabelId, UpstreamError), u64>,
    pub refusals: HashMap<&'static str, u64>,
    pub rate_limits: [u64; 3],
    pub breaker: HashMap<(LabelId, BreakerEvent), u64>,
    pub conn_failures: HashMap<&'static str, u64>,
    pub ips: HashMap<IpAddr, IpCell>,
    pub ips_overflow: u64,
}

/// A shard on its own cache lines.
#[repr(align(128))]
#[derive(Default)]
struct Padded(Mutex<Shard>);

/// What the node reports about itself at scrape time.
#[derive(Debug, Clone, Default)]
pub struct NodeFigures {
    /// The catalog version the gateway's snapshot was built from.
    pub snapshot_version: i64,
    /// Seconds since that snapshot was built.
    pub snapshot_age_secs: f64,
    /// Records waiting in the audit writer's queue.
    pub audit_queue_depth: u64,
    /// The queue's capacity.
    pub audit_queue_capacity: u64,
    /// Whether the audit log's last write succeeded.
    pub audit_healthy: bool,
    /// The audit writer's `fdatasync` latencies.
    pub audit_sync: Option<Hist>,
    /// The audit index: records waiting, and seconds it has not moved
    /// while they wait (zeros without an index).
    pub audit_index: (u64, f64),
    /// Client connections open.
    pub connections_open: u64,
}

/// Reports [`NodeFigures`]; installed by the node.
pub trait Probe: Send + Sync {
    /// The figures now.
    fn figures(&self) -> NodeFigures;
}

/// The node's counters. Cheap to share (`Arc`); when built disabled,
/// [`Metrics::observe`] does nothing (the `gateway.metrics` switch).
pub struct Metrics {
    enabled: bool,
    shards: Box<[Padded]>,
    probe: Mutex<Option<Arc<dyn Probe>>>,
    pub(crate) stats: Mutex<stats::StatsState>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);
thread_local! {
    /// This thread's shard (threads take shards round-robin at first use).
    static MY_SHARD: Cell<usize> = Cell::new(NEXT_THREAD.fetch_add(1, Ordering::Relaxed) % SHARDS);
}

/// Unix seconds now.
pub(crate) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn app_hash(s: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

impl Metrics {
    /// Counters; `enabled = false` makes every count a no-op (scrapes and
    /// statistics then show nothing but the node's figures).
    pub fn new(enabled: bool) -> Arc<Metrics> {
        Arc::new(Metrics {
            enabled,
            shards: (0..SHARDS).map(|_| Padded::default()).collect(),
            probe: Mutex::new(None),
            stats: Mutex::new(stats::StatsState::new(now_unix())),
        })
    }

    /// Whether calls are counted.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Install the node's [`Probe`] (replaces an earlier one).
    pub fn set_probe(&self, probe: Arc<dyn Probe>) {
        *self.probe.lock() = Some(probe);
    }

    /// The node's figures now (default ones without a probe).
    pub fn node_figures(&self) -> NodeFigures {
        let p = self.probe.lock().clone();
        p.map(|p| p.figures()).unwrap_or_default()
    }

    #[inline]
    fn shard(&self) -> parking_lot::MutexGuard<'_, Shard> {
        let i = MY_SHARD.with(|s| s.get());
        self.shards[i].0.lock()
    }

    /// Count one finished call (MON-1). One uncontended lock of this
    /// thread's shard, a few map updates keyed by small integers.
    pub fn observe(&self, c: &Call<'_>) {
        if !self.enabled {
            return;
        }
        let key = CallKey {
            app: c.app,
            api: c.api,
            level: c.level,
            class: c.class,
            kind: c.kind,
        };
        let failing = c.class != Class::Success && c.class != Class::ClientError;
        let app_h = if failing {
            c.claimed_app.map(app_hash)
        } else {
            None
        };
        let mut s = self.shard();
        s.calls.entry(key).or_default().observe(c.duration_us);
        if let Some(us) = c.upstream_us {
            s.upstream.entry(c.api).or_default().observe(us);
        }
        if let Some(e) = c.upstream_error {
            *s.upstream_errors.entry((c.api, e)).or_default() += 1;
        }
        if let (Some(code), true) = (c.code, failing) {
            *s.refusals.entry(code).or_default() += 1;
        }
        if let Some(r) = c.rate_limit {
            s.rate_limits[r as usize] += 1;
        }
        if failing {
            let full = s.ips.len() >= IPS_PER_SHARD && !s.ips.contains_key(&c.client_ip);
            if full {
                s.ips_overflow += 1;
            } else {
                let cell = s.ips.entry(c.client_ip).or_default();
                cell.failures += 1;
                if c.kind == Kind::Auth {
                    cell.auth_failures += 1;
                }
                if let Some(h) = app_h {
                    cell.add_app(h);
                }
            }
        }
    }

    /// Count a circuit-breaker event of `upstream` (TRF-2): the named
    /// upstream (`[gateway.upstreams.NAME]`, interned once with
    /// [`intern`] when the breaker is built: config names are bounded). For
    /// the breaker (`crates/menshen-gateway/src/upstream.rs`) to call, e.g.
    /// `state.metrics.breaker_event(id, BreakerEvent::Opened)`; a no-op
    /// while disabled.
    pub fn breaker_event(&self, upstream: LabelId, ev: BreakerEvent) {
        if !self.enabled {
            return;
        }
        *self.shard().breaker.entry((upstream, ev)).or_default() += 1;
    }

    /// Count a connection-level failure by its stable code
    /// (`TLS_HANDSHAKE_FAILED`, `TLS_HANDSHAKE_TIMEOUT`, `HTTP_PARSE_ERROR`,
    /// `HEADER_TIMEOUT`, connection refusals). Always counted: connection
    /// records are rate-limited per IP, this count is not.
    pub fn connection_failure(&self, code: &'static str) {
        if !self.enabled {
            return;
        }
        *self.shard().conn_failures.entry(code).or_default() += 1;
    }

    /// Sum of every shard (for a scrape or a fold).
    pub(crate) fn sum(&self, drain_ips: bool) -> Summed {
        let mut out = Summed::default();
        for p in self.shards.iter() {
            let mut s = p.0.lock();
            for (k, h) in &s.calls {
                out.calls.entry(*k).or_default().add(h);
            }
            for (k, h) in &s.upstream {
                out.upstream.entry(*k).or_default().add(h);
            }
            for (k, n) in &s.upstream_errors {
                *out.upstream_errors.entry(*k).or_default() += n;
            }
            for (k, n) in &s.refusals {
                *out.refusals.entry(*k).or_default() += n;
            }
            for (i, n) in s.rate_limits.iter().enumerate() {
                out.rate_limits[i] += n;
            }
            for (k, n) in &s.breaker {
                *out.breaker.entry(*k).or_default() += n;
            }
            for (k, n) in &s.conn_failures {
                *out.conn_failures.entry(*k).or_default() += n;
            }
            if drain_ips {
                for (ip, c) in std::mem::take(&mut s.ips) {
                    let e = out.ips.entry(ip).or_default();
                    e.failures += c.failures;
                    e.auth_failures += c.auth_failures;
                    for h in c.apps {
                        e.add_app(h);
                    }
                }
                out.ips_overflow += std::mem::take(&mut s.ips_overflow);
            }
        }
        out
    }

    /// Fold what was counted since the last fold into the statistics'
    /// windows. The node calls it once a second; every statistics read
    /// calls it first, so a read sees every call finished before it.
    pub fn tick(&self) {
        self.fold_at(now_unix());
    }

    pub(crate) fn fold_at(&self, now: u64) {
        if !self.enabled {
            return;
        }
        let summed = self.sum(true);
        self.stats.lock().fold(now, summed);
    }

    /// The statistics handle (see [`Stats`]).
    pub fn stats(self: &Arc<Self>) -> Stats {
        Stats::new(self.clone())
    }

    /// The Prometheus text exposition (OpenMetrics 1.0 text, ends with
    /// `# EOF`) of every counter and the node's figures.
    pub fn encode(self: &Arc<Self>) -> String {
        prom::encode(self)
    }

    /// The content type of [`Metrics::encode`]'s output.
    pub const CONTENT_TYPE: &'static str =
        "application/openmetrics-text; version=1.0.0; charset=utf-8";
}

/// Every shard's counts added up.
#[derive(Default)]
pub(crate) struct Summed {
    pub calls: HashMap<CallKey, Hist>,
    pub upstream: HashMap<LabelId, Hist>,
    pub upstream_errors: HashMap<(LabelId, UpstreamError), u64>,
    pub refusals: HashMap<&'static str, u64>,
    pub rate_limits: [u64; 3],
    pub breaker: HashMap<(LabelId, BreakerEvent), u64>,
    pub conn_failures: HashMap<&'static str, u64>,
    pub ips: HashMap<IpAddr, IpCell>,
    pub ips_overflow: u64,
}

#[cfg(test)]
mod tests;
