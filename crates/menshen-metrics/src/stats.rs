//! Statistics (MON-1) and the figures alerting reads, from the node's own
//! counters: rolling windows per app and per API.
//!
//! Each fold adds what was counted since the previous one to three rings
//! of slots: 60 one-second slots (the last minute), 60 one-minute slots
//! (the last hour), 96 fifteen-minute slots (the last day). A window is read
//! from the finest ring that spans it, so "the last minute" is exact to the
//! second, "the last hour" to the minute and "the last day" to fifteen
//! minutes (the current, partial slot included). A slot holds only the apps
//! and APIs that had calls in it; each keeps a latency histogram
//! ([`crate::buckets`]) for the percentiles, interpolated inside a bucket as
//! Prometheus' `histogram_quantile` does.
//!
//! Failures per client IP (for the "many App_IDs failing from one address"
//! rule) are kept apart, in 16 one-minute slots, and never leave the
//! process except through [`Stats::client_ip_failures`].

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;

use crate::buckets::Hist;
use crate::cluster::{self, ClusterView, Remote, SlotData, SlotRecord, WireAgg, RES, SLOTS};
use crate::labels::{self, LabelId};
use crate::{CallKey, Class, IpCell, Kind, Metrics, Summed};

/// What the statistics are kept for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    /// One app (calls it made; calls naming an App_ID not in the catalog
    /// count under [`LabelId::UNKNOWN`]).
    App(LabelId),
    /// One API (calls not routed to an API count under
    /// [`LabelId::UNKNOWN`]).
    Api(LabelId),
}

impl Subject {
    /// The app `app_id`, if the node has seen it in its catalog.
    pub fn app(app_id: &str) -> Option<Subject> {
        labels::lookup(app_id).map(Subject::App)
    }
    /// The API `api_id`, if the node has seen it in its catalog.
    pub fn api(api_id: &str) -> Option<Subject> {
        labels::lookup(api_id).map(Subject::Api)
    }
}

/// Calls of one subject in one slot.
#[derive(Debug, Clone, Default)]
pub(crate) struct Agg {
    pub(crate) hist: Hist,
    /// By [`Class`] (its discriminant).
    pub(crate) class: [u64; 5],
    /// By [`Kind`] (its discriminant).
    pub(crate) kind: [u64; 4],
}

impl Agg {
    fn add(&mut self, key: &CallKey, d: &Hist) {
        self.hist.add(d);
        self.class[key.class as usize] += d.count;
        self.kind[key.kind as usize] += d.count;
    }
    fn merge(&mut self, o: &Agg) {
        self.hist.add(&o.hist);
        for i in 0..5 {
            self.class[i] += o.class[i];
        }
        for i in 0..4 {
            self.kind[i] += o.kind[i];
        }
    }
}

struct Slot<T> {
    epoch: u64,
    data: T,
}

/// A ring of `n` slots of `secs` seconds each.
struct Ring<T> {
    secs: u64,
    slots: Vec<Slot<T>>,
}

impl<T: Default> Ring<T> {
    fn new(n: usize, secs: u64) -> Self {
        Ring {
            secs,
            slots: (0..n)
                .map(|_| Slot {
                    epoch: u64::MAX,
                    data: T::default(),
                })
                .collect(),
        }
    }

    /// The slot of time `t`, emptied if it held an older period.
    fn at(&mut self, t: u64) -> &mut T {
        let e = t / self.secs;
        let n = self.slots.len() as u64;
        let s = &mut self.slots[(e % n) as usize];
        if s.epoch != e {
            s.epoch = e;
            s.data = T::default();
        }
        &mut s.data
    }

    /// The slots covering the last `window` seconds up to `now`.
    fn covering(&self, now: u64, window: u64) -> impl Iterator<Item = &T> {
        let e_now = now / self.secs;
        let k = window.div_ceil(self.secs).clamp(1, self.slots.len() as u64);
        let oldest = e_now.saturating_sub(k - 1);
        self.slots
            .iter()
            .filter(move |s| s.epoch != u64::MAX && s.epoch >= oldest && s.epoch <= e_now)
            .map(|s| &s.data)
    }

    /// The slot of period `epoch`, if it still holds it.
    fn get(&self, epoch: u64) -> Option<&T> {
        let s = &self.slots[(epoch % self.slots.len() as u64) as usize];
        (s.epoch == epoch).then_some(&s.data)
    }

    /// Seconds this ring spans.
    fn span(&self) -> u64 {
        self.secs * self.slots.len() as u64
    }
}

#[derive(Default)]
struct IpSlot {
    ips: HashMap<IpAddr, IpCell>,
    overflow: u64,
}

/// Most client IPs one minute slot remembers.
const IPS_PER_SLOT: usize = 20_000;

/// The windows, behind [`Metrics`]' statistics lock (taken by the fold
/// and by readers, never on the request path).
pub(crate) struct StatsState {
    started: u64,
    last: HashMap<CallKey, Hist>,
    rings: [Ring<HashMap<Subject, Agg>>; 3],
    /// Per ring, the epochs of slots that received calls since the last
    /// [`Stats::take_dirty`] (cluster publication).
    dirty: [BTreeSet<u64>; 3],
    ips: Ring<IpSlot>,
}

/// Longest window the statistics answer for (a day).
pub const MAX_WINDOW_SECS: u64 = 86_400;

impl StatsState {
    pub(crate) fn new(now: u64) -> Self {
        StatsState {
            started: now,
            last: HashMap::new(),
            rings: [
                Ring::new(SLOTS[0] as usize, RES[0]),
                Ring::new(SLOTS[1] as usize, RES[1]),
                Ring::new(SLOTS[2] as usize, RES[2]),
            ],
            dirty: Default::default(),
            ips: Ring::new(16, 60),
        }
    }

    pub(crate) fn fold(&mut self, now: u64, summed: Summed) {
        for (k, total) in summed.calls {
            let d = match self.last.get(&k) {
                Some(prev) => total.since(prev),
                None => total.clone(),
            };
            if d.count > 0 {
                for (ring, dirty) in self.rings.iter_mut().zip(self.dirty.iter_mut()) {
                    dirty.insert(now / ring.secs);
                    // Bounded without a publisher (one node): an epoch older
                    // than the ring is gone from it anyway.
                    while dirty.len() > ring.slots.len() {
                        dirty.pop_first();
                    }
                    let slot = ring.at(now);
                    slot.entry(Subject::App(k.app)).or_default().add(&k, &d);
                    slot.entry(Subject::Api(k.api)).or_default().add(&k, &d);
                }
            }
            self.last.insert(k, total);
        }
        if !summed.ips.is_empty() || summed.ips_overflow > 0 {
            let slot = self.ips.at(now);
            slot.overflow += summed.ips_overflow;
            for (ip, c) in summed.ips {
                if slot.ips.len() >= IPS_PER_SLOT && !slot.ips.contains_key(&ip) {
                    slot.overflow += c.failures;
                    continue;
                }
                let e = slot.ips.entry(ip).or_default();
                e.failures += c.failures;
                e.auth_failures += c.auth_failures;
                for h in c.apps {
                    e.add_app(h);
                }
            }
        }
    }

    fn ring_for(&self, window: u64) -> &Ring<HashMap<Subject, Agg>> {
        self.rings
            .iter()
            .find(|r| r.span() >= window)
            .unwrap_or(&self.rings[2])
    }

    fn agg(&self, s: Subject, now: u64, window: u64) -> Agg {
        let mut a = Agg::default();
        for slot in self.ring_for(window).covering(now, window) {
            if let Some(x) = slot.get(&s) {
                a.merge(x);
            }
        }
        a
    }

    /// The slots that received calls since the last take, as published.
    fn take_dirty(&mut self) -> Vec<SlotRecord> {
        let mut out = Vec::new();
        for (i, ring) in self.rings.iter().enumerate() {
            for e in std::mem::take(&mut self.dirty[i]) {
                let Some(m) = ring.get(e) else { continue };
                let mut data = SlotData::default();
                for (s, a) in m {
                    let (map, id) = match s {
                        Subject::App(id) => (&mut data.apps, id),
                        Subject::Api(id) => (&mut data.apis, id),
                    };
                    map.insert(labels::name(*id).to_string(), WireAgg::from_agg(a));
                }
                out.push(SlotRecord {
                    res: RES[i],
                    epoch: e,
                    data,
                });
            }
        }
        out
    }

    fn subjects(&self, now: u64, app: bool) -> Vec<LabelId> {
        let mut v: Vec<LabelId> = self.rings[2]
            .covering(now, MAX_WINDOW_SECS)
            .flat_map(|m| m.keys())
            .filter_map(|s| match (s, app) {
                (Subject::App(id), true) | (Subject::Api(id), false) => Some(*id),
                _ => None,
            })
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

/// One subject's figures over one window.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WindowFigures {
    /// The window, seconds.
    pub window_secs: u64,
    /// Calls finished in it.
    pub calls: u64,
    /// Calls answered below 400.
    pub success: u64,
    /// `success / calls`; `null` without calls.
    pub success_rate: Option<f64>,
    /// Calls per second over the window (over the node's uptime while that
    /// is shorter).
    pub tps: f64,
    /// Median latency, milliseconds; `null` without calls.
    pub p50_ms: Option<f64>,
    /// 99th percentile latency, milliseconds; `null` without calls.
    pub p99_ms: Option<f64>,
    /// Upstream 4xx answers relayed.
    pub client_errors: u64,
    /// Calls the gateway refused (any refusal code).
    pub refused: u64,
    /// Upstream failures (unreachable, timeout, 5xx, degraded).
    pub upstream_errors: u64,
    /// The gateway's own failures.
    pub gateway_errors: u64,
    /// Refusals for failed authentication.
    pub auth_failures: u64,
    /// Refusals for a missing grant (`NOT_GRANTED`).
    pub not_granted: u64,
    /// Refusals by a flow-control rule (`RATE_LIMITED`).
    pub rate_limited: u64,
}

/// An app's or API's figures over the last minute, hour and day.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SubjectStats {
    /// The App_ID or API_ID (`unknown` for what the catalog does not name).
    pub id: String,
    /// The last 60 seconds.
    pub minute: WindowFigures,
    /// The last hour.
    pub hour: WindowFigures,
    /// The last day.
    pub day: WindowFigures,
}

/// Failing calls from one client IP over a window (for alerting only; an
/// IP never becomes a metric label).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct IpFailures {
    /// The client IP.
    pub ip: IpAddr,
    /// Calls refused or failed.
    pub failures: u64,
    /// Of those, authentication failures.
    pub auth_failures: u64,
    /// Distinct App_IDs those calls named (at most [`crate::APPS_PER_IP`]).
    pub distinct_app_ids: usize,
}

/// The statistics of one node, read by the admin API, the CLI and the alert
/// evaluator. Cheap to clone. Every read first folds the calls finished so
/// far, so a read sees every call that finished before it.
#[derive(Clone, Debug)]
pub struct Stats(Arc<Metrics>);

impl Stats {
    pub(crate) fn new(m: Arc<Metrics>) -> Self {
        Stats(m)
    }

    fn read<R>(&self, f: impl FnOnce(&StatsState, u64) -> R) -> R {
        let now = crate::now_unix();
        self.0.fold_at(now);
        let st = self.0.stats.lock();
        f(&st, now)
    }

    fn figures(st: &StatsState, s: Subject, now: u64, window: u64) -> WindowFigures {
        let window = window.clamp(1, MAX_WINDOW_SECS);
        let a = st.agg(s, now, window);
        let up = now.saturating_sub(st.started).max(1);
        Self::figures_of(&a, window, up)
    }

    /// The figures of counts `a` over `window` seconds, `up` seconds of
    /// which were counted.
    fn figures_of(a: &Agg, window: u64, up: u64) -> WindowFigures {
        let calls = a.hist.count;
        let success = a.class[Class::Success as usize];
        WindowFigures {
            window_secs: window,
            calls,
            success,
            success_rate: (calls > 0).then(|| success as f64 / calls as f64),
            tps: calls as f64 / window.min(up) as f64,
            p50_ms: a.hist.quantile_us(0.5).map(|us| us / 1000.0),
            p99_ms: a.hist.quantile_us(0.99).map(|us| us / 1000.0),
            client_errors: a.class[Class::ClientError as usize],
            refused: a.class[Class::Refused as usize],
            upstream_errors: a.class[Class::UpstreamError as usize],
            gateway_errors: a.class[Class::GatewayError as usize],
            auth_failures: a.kind[Kind::Auth as usize],
            not_granted: a.kind[Kind::NotGranted as usize],
            rate_limited: a.kind[Kind::RateLimited as usize],
        }
    }

    fn subject_stats(st: &StatsState, s: Subject, now: u64) -> SubjectStats {
        let id = match s {
            Subject::App(i) | Subject::Api(i) => labels::name(i).to_string(),
        };
        SubjectStats {
            id,
            minute: Self::figures(st, s, now, 60),
            hour: Self::figures(st, s, now, 3600),
            day: Self::figures(st, s, now, MAX_WINDOW_SECS),
        }
    }

    /// One subject over the last `window_secs` seconds (1 s to a day; the
    /// resolution is that of the ring spanning it: 1 s up to a minute, 1 min
    /// up to an hour, 15 min beyond). For alert rules ("failure rate of app
    /// X over the last 5 minutes").
    pub fn window(&self, s: Subject, window_secs: u64) -> WindowFigures {
        self.read(|st, now| Self::figures(st, s, now, window_secs))
    }

    /// The latency histogram of one subject over a window (to add
    /// several nodes' before taking a percentile).
    pub fn window_hist(&self, s: Subject, window_secs: u64) -> Hist {
        self.read(|st, now| st.agg(s, now, window_secs.clamp(1, MAX_WINDOW_SECS)).hist)
    }

    /// Every app with calls in the last day, by App_ID.
    pub fn apps(&self) -> Vec<SubjectStats> {
        self.read(|st, now| {
            st.subjects(now, true)
                .into_iter()
                .map(|id| Self::subject_stats(st, Subject::App(id), now))
                .collect()
        })
    }

    /// Every API with calls in the last day, by API_ID.
    pub fn apis(&self) -> Vec<SubjectStats> {
        self.read(|st, now| {
            st.subjects(now, false)
                .into_iter()
                .map(|id| Self::subject_stats(st, Subject::Api(id), now))
                .collect()
        })
    }

    /// One subject's minute, hour and day.
    pub fn subject(&self, s: Subject) -> SubjectStats {
        self.read(|st, now| Self::subject_stats(st, s, now))
    }

    /// Client IPs with failing calls over the last `window_secs` (up to 16
    /// minutes, at one-minute resolution), most failures first, and how many
    /// failures could not be attributed to an address (tracking was full).
    pub fn client_ip_failures(&self, window_secs: u64) -> (Vec<IpFailures>, u64) {
        self.read(|st, now| {
            let mut merged: HashMap<IpAddr, IpCell> = HashMap::new();
            let mut overflow = 0;
            for slot in st.ips.covering(now, window_secs.max(1)) {
                overflow += slot.overflow;
                for (ip, c) in &slot.ips {
                    let e = merged.entry(*ip).or_default();
                    e.failures += c.failures;
                    e.auth_failures += c.auth_failures;
                    for h in &c.apps {
                        e.add_app(*h);
                    }
                }
            }
            let mut v: Vec<IpFailures> = merged
                .into_iter()
                .map(|(ip, c)| IpFailures {
                    ip,
                    failures: c.failures,
                    auth_failures: c.auth_failures,
                    distinct_app_ids: c.apps.len(),
                })
                .collect();
            v.sort_by(|a, b| b.failures.cmp(&a.failures).then(a.ip.cmp(&b.ip)));
            (v, overflow)
        })
    }
}

/// Cluster-wide reads (see [`crate::cluster`]).
impl Stats {
    /// When this node's counting started (unix seconds): with the node id,
    /// what tells its published slots from an earlier run's.
    pub fn started(&self) -> u64 {
        self.0.stats.lock().started
    }

    /// The slots that received calls since the last take (folding first),
    /// whole, for publication. If publishing them fails, hand them to
    /// [`Stats::restore_dirty`] so the next take has them again.
    pub fn take_dirty(&self) -> Vec<SlotRecord> {
        self.take_dirty_at(crate::now_unix())
    }

    pub(crate) fn take_dirty_at(&self, now: u64) -> Vec<SlotRecord> {
        self.0.fold_at(now);
        self.0.stats.lock().take_dirty()
    }

    /// Mark slots as not published (their current content is taken again).
    pub fn restore_dirty(&self, slots: &[SlotRecord]) {
        let mut st = self.0.stats.lock();
        for s in slots {
            if let Some(i) = RES.iter().position(|&r| r == s.res) {
                st.dirty[i].insert(s.epoch);
            }
        }
    }

    fn cluster_up(st: &StatsState, view: &ClusterView, now: u64) -> u64 {
        let first = view
            .remote
            .iter()
            .map(|r: &Remote| r.started)
            .fold(st.started, u64::min);
        now.saturating_sub(first).max(1)
    }

    /// Local plus remote counts of one subject over `window`.
    fn cluster_figures(
        st: &StatsState,
        local: Option<Subject>,
        remote: Option<&Agg>,
        window: u64,
        now: u64,
        up: u64,
    ) -> WindowFigures {
        let mut a = match local {
            Some(s) => st.agg(s, now, window),
            None => Agg::default(),
        };
        if let Some(r) = remote {
            a.merge(r);
        }
        Self::figures_of(&a, window, up)
    }

    /// Every app (`apps`) or API with calls in the last day on any node,
    /// figures summed over this node's counters and the other nodes'
    /// published slots.
    pub fn cluster_list(&self, view: &ClusterView, apps: bool) -> Vec<SubjectStats> {
        self.cluster_list_at(view, apps, crate::now_unix())
    }

    pub(crate) fn cluster_list_at(
        &self,
        view: &ClusterView,
        apps: bool,
        now: u64,
    ) -> Vec<SubjectStats> {
        self.0.fold_at(now);
        let st = self.0.stats.lock();
        let up = Self::cluster_up(&st, view, now);
        let windows = [60, 3600, MAX_WINDOW_SECS];
        let remote: Vec<HashMap<String, Agg>> = windows
            .iter()
            .map(|&w| cluster::remote_window(&view.remote, apps, now, w))
            .collect();
        let mut names: Vec<(String, Option<Subject>)> = st
            .subjects(now, apps)
            .into_iter()
            .map(|id| {
                let s = if apps {
                    Subject::App(id)
                } else {
                    Subject::Api(id)
                };
                (labels::name(id).to_string(), Some(s))
            })
            .collect();
        for n in remote[2].keys() {
            if !names.iter().any(|(x, _)| x == n) {
                names.push((n.clone(), None));
            }
        }
        names.sort_by(|a, b| a.0.cmp(&b.0));
        names
            .into_iter()
            .map(|(id, local)| {
                let f = |i: usize| {
                    Self::cluster_figures(&st, local, remote[i].get(&id), windows[i], now, up)
                };
                SubjectStats {
                    minute: f(0),
                    hour: f(1),
                    day: f(2),
                    id,
                }
            })
            .collect()
    }

    /// One app (`apps`) or API by its id, summed over the cluster (zeros
    /// when no node counted a call of it).
    pub fn cluster_subject(&self, view: &ClusterView, apps: bool, id: &str) -> SubjectStats {
        self.cluster_subject_at(view, apps, id, crate::now_unix())
    }

    pub(crate) fn cluster_subject_at(
        &self,
        view: &ClusterView,
        apps: bool,
        id: &str,
        now: u64,
    ) -> SubjectStats {
        self.0.fold_at(now);
        let st = self.0.stats.lock();
        let up = Self::cluster_up(&st, view, now);
        let local = if apps {
            Subject::app(id)
        } else {
            Subject::api(id)
        };
        let f = |w: u64| {
            let r = cluster::remote_window(&view.remote, apps, now, w);
            Self::cluster_figures(&st, local, r.get(id), w, now, up)
        };
        SubjectStats {
            id: id.to_string(),
            minute: f(60),
            hour: f(3600),
            day: f(MAX_WINDOW_SECS),
        }
    }
}

#[cfg(test)]
impl Stats {
    /// Figures at an injected time (tests).
    pub(crate) fn window_at(&self, s: Subject, window: u64, now: u64) -> WindowFigures {
        self.0.fold_at(now);
        let st = self.0.stats.lock();
        Self::figures(&st, s, now, window)
    }
}
