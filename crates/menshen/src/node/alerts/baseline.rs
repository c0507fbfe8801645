//! Learned baselines (MON-3): what normal looks like, per app x API x
//! hour-of-week, and alerts (severity warning) when traffic leaves it.
//!
//! Fed by the same signals as the rules (committed access records of
//! verified apps). Per app x API the calls are counted in windows of
//! `window_secs`; each closed window (empty ones too) is learned into its
//! hour-of-week slot (168 slots, in `utc_offset_hours` local time) as an
//! exponentially weighted mean and variance ([`Ewm`], weight `alpha`) of
//! its volume, failure rate and mean latency. Alerts:
//! - `baseline_volume`: the window's calls leave the band `mean +- z * sd`
//!   (upwards already while the window is open); `baseline_failure_rate`
//!   and `baseline_latency` at the window's close. Guards: the slot has
//!   learned at least `min_history` windows, and the window (or the
//!   learned mean) holds at least `min_count` calls. The sd is floored
//!   (Poisson `sqrt(mean)` for volume, 0.05 for the failure rate, 10% of
//!   the mean and 5 ms for latency) so a flat history does not alert on
//!   noise.
//! - `baseline_new_network`: an app's first call from a /24 (IPv4) or /48
//!   (IPv6) network not in its history, once the app has been learned for
//!   `learning_days`.
//! - `baseline_off_hours`: a funds (A3) call in an hour-of-week slot whose
//!   learned volume is ~0 (mean below `off_hours_max`, with `min_history`).
//!
//! The learner's time is injected ([`Clock`]): windows close on
//! [`Learner::tick`]. The model is saved to the store every `save_secs`
//! and at shutdown, and loaded at start.
//!
//! In a cluster (several nodes on one store) the client networks are the
//! cluster's: the store merges each node's save into the stored set (a
//! union, never a replacement), every node saves the networks it learned
//! and refreshes its view from the store every `sync_secs`, and before a
//! `baseline_new_network` (and so `cert_network`, and an automatic
//! suspension) is raised the node re-reads the store: a network another
//! node has already seen is taken in silently ([`Learner::merge_networks`]).
//! The volume, failure-rate and latency models stay per node: each node
//! learns the share of the traffic it serves (a 5x spike reaches every
//! node as 5x its share; a stable uneven balance is learned as normal);
//! the stored copy of an app x API model is the last saver's.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use menshen_model::alert::{AlertSeverity, NewAlert};
use menshen_model::baseline::{
    slot_name, ApiBaseline, AppNetworks, StoredBaseline, MAX_NETWORKS, NETWORKS, SLOTS,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::Signal;

/// `[alerts.baseline]` of the node's config.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineConfig {
    /// Learn and alert (default true).
    #[serde(default = "d_true")]
    pub enabled: bool,
    /// The counting window, seconds (default 300; 60 to 3600, dividing 3600).
    #[serde(default = "d_window")]
    pub window_secs: u64,
    /// Weight of a new window in the moving mean and variance (default 0.1).
    #[serde(default = "d_alpha")]
    pub alpha: f64,
    /// Band width in standard deviations (default 4).
    #[serde(default = "d_z")]
    pub z: f64,
    /// Calls a window (or the learned mean) must hold to alert (default 20).
    #[serde(default = "d_min_count")]
    pub min_count: u64,
    /// Windows a slot must have learned to alert (default 12: an hour).
    #[serde(default = "d_min_history")]
    pub min_history: u64,
    /// Days an app is learned before a new network alerts (default 7).
    #[serde(default = "d_learning")]
    pub learning_days: u64,
    /// A slot's learned calls per window below this is "no traffic" for
    /// the off-hours rule (default 0.05).
    #[serde(default = "d_off")]
    pub off_hours_max: f64,
    /// Local time of the hour-of-week slots, hours east of UTC (default 8).
    #[serde(default = "d_offset")]
    pub utc_offset_hours: i64,
    /// How often the model is saved to the store, seconds (default 300).
    #[serde(default = "d_save")]
    pub save_secs: u64,
    /// How often the client networks learned here are saved (merged) and
    /// the cluster's set read back from the store, seconds (default 30).
    #[serde(default = "d_sync")]
    pub sync_secs: u64,
}

fn d_true() -> bool {
    true
}
fn d_window() -> u64 {
    300
}
fn d_alpha() -> f64 {
    0.1
}
fn d_z() -> f64 {
    4.0
}
fn d_min_count() -> u64 {
    20
}
fn d_min_history() -> u64 {
    12
}
fn d_learning() -> u64 {
    7
}
fn d_off() -> f64 {
    0.05
}
fn d_offset() -> i64 {
    8
}
fn d_save() -> u64 {
    300
}
fn d_sync() -> u64 {
    30
}

impl Default for BaselineConfig {
    fn default() -> Self {
        BaselineConfig {
            enabled: true,
            window_secs: d_window(),
            alpha: d_alpha(),
            z: d_z(),
            min_count: d_min_count(),
            min_history: d_min_history(),
            learning_days: d_learning(),
            off_hours_max: d_off(),
            utc_offset_hours: d_offset(),
            save_secs: d_save(),
            sync_secs: d_sync(),
        }
    }
}

impl BaselineConfig {
    /// Check the settings, naming the field.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(60..=3600).contains(&self.window_secs) || 3600 % self.window_secs != 0 {
            anyhow::bail!("alerts.baseline.window_secs: 60 to 3600, dividing 3600 (e.g. 300)");
        }
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            anyhow::bail!("alerts.baseline.alpha: above 0 and below 1, e.g. 0.1");
        }
        if !(self.z.is_finite()
            && self.z > 0.0
            && self.off_hours_max.is_finite()
            && self.off_hours_max >= 0.0)
        {
            anyhow::bail!("alerts.baseline.z: above 0; alerts.baseline.off_hours_max: at least 0");
        }
        if !(-12..=14).contains(&self.utc_offset_hours)
            || self.save_secs == 0
            || self.sync_secs == 0
        {
            anyhow::bail!("alerts.baseline.utc_offset_hours: -12 to 14; alerts.baseline.save_secs and sync_secs: at least 1");
        }
        Ok(())
    }
}

/// Where the learner's time comes from.
pub trait Clock: Send + Sync {
    /// Now, unix seconds.
    fn now(&self) -> i64;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        menshen_store::now_unix()
    }
}

/// Most app x API pairs and networks per app kept (bounded memory).
const MAX_PAIRS: usize = 20_000;

/// The window being counted for one app x API.
#[derive(Default, Clone, Copy)]
struct Window {
    start: i64,
    calls: u64,
    failed: u64,
    latency_us: u64,
    /// The in-window volume alert was raised.
    flagged: bool,
}

struct Pair {
    model: ApiBaseline,
    cur: Window,
}

/// The learner: models, open windows, networks.
pub struct Learner {
    cfg: BaselineConfig,
    clock: Arc<dyn Clock>,
    pairs: HashMap<(String, String), Pair>,
    nets: HashMap<String, AppNetworks>,
    dirty: HashSet<(String, String)>,
}

/// The client network of an IP: `a.b.c.0/24` or the /48 of an IPv6.
pub fn network_of(ip: &str) -> Option<String> {
    match ip.parse::<IpAddr>().ok()? {
        IpAddr::V4(v) => {
            let o = v.octets();
            Some(format!("{}.{}.{}.0/24", o[0], o[1], o[2]))
        }
        IpAddr::V6(v) => {
            if let Some(v4) = v.to_ipv4_mapped() {
                let o = v4.octets();
                return Some(format!("{}.{}.{}.0/24", o[0], o[1], o[2]));
            }
            let s = v.segments();
            Some(format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2]))
        }
    }
}

impl Learner {
    /// Empty.
    pub fn new(cfg: BaselineConfig, clock: Arc<dyn Clock>) -> Self {
        Learner {
            cfg,
            clock,
            pairs: HashMap::new(),
            nets: HashMap::new(),
            dirty: HashSet::new(),
        }
    }

    /// The hour-of-week slot of a unix second (Monday 00:00 local is 0).
    pub fn slot_of(&self, at: i64) -> usize {
        let local = at + self.cfg.utc_offset_hours * 3600;
        let day = local.div_euclid(86_400);
        let hour = local.rem_euclid(86_400) / 3600;
        // 1970-01-01 was a Thursday (Monday-based weekday 3).
        let weekday = (day + 3).rem_euclid(7);
        (weekday * 24 + hour) as usize % SLOTS
    }

    fn window_start(&self, at: i64) -> i64 {
        let w = self.cfg.window_secs as i64;
        at - at.rem_euclid(w)
    }

    /// Learn one record; the alerts it raises at once (a volume spike in
    /// the open window, a new network, an off-hours funds call).
    pub fn observe(&mut self, s: &Signal) -> Vec<NewAlert> {
        let mut out = Vec::new();
        if !self.cfg.enabled || !s.app_verified {
            return out;
        }
        let (Some(app), Some(api)) = (s.app_id.as_deref(), s.api_id.as_deref()) else {
            return out;
        };
        if let Some(net) = s.client_ip.as_deref().and_then(network_of) {
            self.observe_network(app, &net, s, &mut out);
        }
        let key = (app.to_string(), api.to_string());
        if !self.pairs.contains_key(&key) && self.pairs.len() >= MAX_PAIRS {
            return out;
        }
        // Windows of this pair that ended before this record close first.
        let ws = self.window_start(s.at);
        let mut closed = Vec::new();
        if let Some(p) = self.pairs.get(&key) {
            if p.cur.start < ws {
                closed.push(key.clone());
            }
        }
        for k in closed {
            self.close_until(&k, ws, &mut out);
        }
        let slot = self.slot_of(s.at);
        let cfg = self.cfg.clone();
        let p = self.pairs.entry(key.clone()).or_insert_with(|| Pair {
            model: ApiBaseline::new(cfg.window_secs),
            cur: Window {
                start: ws,
                ..Window::default()
            },
        });
        if let Some(l) = &s.level {
            if p.model.level.as_deref() != Some(l) {
                p.model.level = Some(l.clone());
            }
        }
        p.cur.calls += 1;
        if s.result.as_deref() != Some("success") {
            p.cur.failed += 1;
        }
        p.cur.latency_us += s.duration_us.unwrap_or(0);
        let learned = p.model.slots[slot];
        // An upward spike is seen while the window is still open.
        let v = learned.volume;
        let x = p.cur.calls as f64;
        if !p.cur.flagged && v.n >= cfg.min_history && p.cur.calls >= cfg.min_count {
            let sd = v.sd().max(v.mean.sqrt()).max(1.0);
            if x > v.mean + cfg.z * sd {
                p.cur.flagged = true;
                out.push(volume_alert(app, api, slot, x, v.mean, sd, cfg.z, true));
            }
        }
        // A funds call where the app never calls.
        if p.model.level.as_deref() == Some("A3")
            && v.n >= cfg.min_history
            && v.mean < cfg.off_hours_max
        {
            out.push(NewAlert {
                rule: "baseline_off_hours".into(),
                key: format!("baseline_off_hours:{app}:{api}"),
                severity: AlertSeverity::Warning,
                summary: format!(
                    "App_ID {app} called funds API {api} at {} local, outside its usual hours",
                    slot_name(slot)
                ),
                details: json!({"app_id": app, "api_id": api, "slot": slot, "when": slot_name(slot),
                    "learned_calls_per_window": v.mean, "txn_id": s.txn_id, "client_ip": s.client_ip}),
            });
        }
        self.dirty.insert(key);
        out
    }

    fn observe_network(&mut self, app: &str, net: &str, s: &Signal, out: &mut Vec<NewAlert>) {
        if !self.nets.contains_key(app) && self.nets.len() >= MAX_PAIRS {
            return;
        }
        let n = self
            .nets
            .entry(app.to_string())
            .or_insert_with(|| AppNetworks {
                first_at: s.at,
                networks: Default::default(),
            });
        let known = n.networks.contains_key(net);
        if !known && n.networks.len() >= MAX_NETWORKS {
            let stalest = n
                .networks
                .iter()
                .min_by_key(|(_, t)| **t)
                .map(|(k, _)| k.clone());
            if let Some(k) = stalest {
                n.networks.remove(&k);
            }
        }
        let last = n.networks.insert(net.to_string(), s.at);
        let learning = (self.cfg.learning_days * 86_400) as i64;
        if last.is_none() && s.at - n.first_at >= learning {
            out.push(NewAlert {
                rule: "baseline_new_network".into(),
                key: format!("baseline_new_network:{app}:{net}"),
                severity: AlertSeverity::Warning,
                summary: format!("App_ID {app} called from a new network {net}"),
                details: json!({"app_id": app, "network": net, "client_ip": s.client_ip,
                    "txn_id": s.txn_id, "known_networks": n.networks.len() - 1}),
            });
        }
        // Seeing a known network again is not worth a save on its own.
        if last.is_none() {
            self.dirty.insert((app.to_string(), NETWORKS.to_string()));
        }
    }

    /// Close the windows that have ended by the clock's now, learning them
    /// (and the empty windows since) and checking them against the band.
    pub fn tick(&mut self) -> Vec<NewAlert> {
        let mut out = Vec::new();
        if !self.cfg.enabled {
            return out;
        }
        let ws = self.window_start(self.clock.now());
        let keys: Vec<_> = self
            .pairs
            .iter()
            .filter(|(_, p)| p.cur.start < ws)
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            self.close_until(&k, ws, &mut out);
        }
        out
    }

    /// Learn the pair's open window and the empty ones after it, up to the
    /// window starting at `until` (which becomes the open one).
    fn close_until(&mut self, key: &(String, String), until: i64, out: &mut Vec<NewAlert>) {
        let cfg = self.cfg.clone();
        let w = cfg.window_secs as i64;
        let slot = self.slot_of(self.pairs.get(key).map_or(until, |p| p.cur.start));
        let Some(p) = self.pairs.get_mut(key) else {
            return;
        };
        let cur = p.cur;
        let (app, api) = (key.0.as_str(), key.1.as_str());
        let s = &mut p.model.slots[slot];
        let x = cur.calls as f64;
        let v = s.volume;
        if v.n >= cfg.min_history && !cur.flagged && (cur.calls.max(v.mean as u64) >= cfg.min_count)
        {
            let sd = v.sd().max(v.mean.sqrt()).max(1.0);
            if (x - v.mean).abs() > cfg.z * sd {
                out.push(volume_alert(app, api, slot, x, v.mean, sd, cfg.z, false));
            }
        }
        if cur.calls > 0 {
            let rate = cur.failed as f64 / x;
            let lat = cur.latency_us as f64 / x / 1000.0;
            let (f, l) = (s.failure, s.latency_ms);
            if cur.calls >= cfg.min_count && f.n >= cfg.min_history {
                let sd = f.sd().max(0.05);
                if rate > f.mean + cfg.z * sd {
                    out.push(NewAlert {
                        rule: "baseline_failure_rate".into(),
                        key: format!("baseline_failure_rate:{app}:{api}"),
                        severity: AlertSeverity::Warning,
                        summary: format!(
                            "App_ID {app} on API {api}: {:.0}% of {} calls failed, usually {:.0}% at {} local",
                            rate * 100.0, cur.calls, f.mean * 100.0, slot_name(slot)
                        ),
                        details: json!({"app_id": app, "api_id": api, "slot": slot, "calls": cur.calls,
                            "failure_rate": rate, "mean": f.mean, "sd": sd, "z": cfg.z}),
                    });
                }
            }
            if cur.calls >= cfg.min_count && l.n >= cfg.min_history {
                let sd = l.sd().max(l.mean * 0.1).max(5.0);
                if lat > l.mean + cfg.z * sd {
                    out.push(NewAlert {
                        rule: "baseline_latency".into(),
                        key: format!("baseline_latency:{app}:{api}"),
                        severity: AlertSeverity::Warning,
                        summary: format!(
                            "App_ID {app} on API {api}: mean latency {lat:.0} ms, usually {:.0} ms at {} local",
                            l.mean, slot_name(slot)
                        ),
                        details: json!({"app_id": app, "api_id": api, "slot": slot, "calls": cur.calls,
                            "latency_ms": lat, "mean": l.mean, "sd": sd, "z": cfg.z}),
                    });
                }
            }
            s.failure.update(rate, cfg.alpha);
            s.latency_ms.update(lat, cfg.alpha);
        }
        s.volume.update(x, cfg.alpha);
        // The empty windows between (at most a week of them).
        let mut t = cur.start + w;
        let first_empty = t.max(until - (SLOTS as i64) * 3600);
        t = first_empty;
        while t < until {
            let slot = {
                let local = t + cfg.utc_offset_hours * 3600;
                let day = local.div_euclid(86_400);
                ((day + 3).rem_euclid(7) * 24 + local.rem_euclid(86_400) / 3600) as usize % SLOTS
            };
            p.model.slots[slot].volume.update(0.0, cfg.alpha);
            t += w;
        }
        p.cur = Window {
            start: until,
            ..Window::default()
        };
        self.dirty.insert(key.clone());
    }

    /// The models changed since the last call, to save.
    pub fn take_dirty(&mut self) -> Vec<StoredBaseline> {
        let now = self.clock.now();
        let mut out = Vec::new();
        for (app, api) in std::mem::take(&mut self.dirty) {
            let model = if api == NETWORKS {
                self.nets
                    .get(&app)
                    .and_then(|n| serde_json::to_value(n).ok())
            } else {
                self.pairs
                    .get(&(app.clone(), api.clone()))
                    .and_then(|p| serde_json::to_value(&p.model).ok())
            };
            if let Some(model) = model {
                out.push(StoredBaseline {
                    app_id: app,
                    api_id: api,
                    model,
                    updated_at: now,
                });
            }
        }
        out
    }

    /// The client networks changed since the last call, to save (merged
    /// by the store into the cluster's set).
    pub fn take_dirty_networks(&mut self) -> Vec<StoredBaseline> {
        let keys: Vec<_> = self
            .dirty
            .iter()
            .filter(|(_, api)| api == NETWORKS)
            .cloned()
            .collect();
        let now = self.clock.now();
        let mut out = Vec::new();
        for k in keys {
            self.dirty.remove(&k);
            if let Some(model) = self
                .nets
                .get(&k.0)
                .and_then(|n| serde_json::to_value(n).ok())
            {
                out.push(StoredBaseline {
                    app_id: k.0,
                    api_id: k.1,
                    model,
                    updated_at: now,
                });
            }
        }
        out
    }

    /// Take in the cluster's networks as stored (other nodes' sightings):
    /// a union with what this node knows, the earliest first call. Models
    /// other than networks, or unreadable, are ignored.
    pub fn merge_networks(&mut self, items: &[StoredBaseline]) {
        for b in items.iter().filter(|b| b.api_id == NETWORKS) {
            let Ok(m) = AppNetworks::deserialize(&b.model) else {
                continue;
            };
            let room = self.nets.len() < MAX_PAIRS;
            match self.nets.get_mut(&b.app_id) {
                Some(n) => {
                    n.merge(&m);
                }
                None if room => {
                    self.nets.insert(b.app_id.clone(), m);
                }
                None => {}
            }
        }
    }

    /// Put back what could not be saved (saved next time).
    pub fn mark_dirty(&mut self, items: &[StoredBaseline]) {
        for b in items {
            self.dirty.insert((b.app_id.clone(), b.api_id.clone()));
        }
    }

    /// Take the stored models (at start). A model that does not parse, or
    /// was learned with another window, is skipped.
    pub fn load(&mut self, items: Vec<StoredBaseline>) -> usize {
        let now = self.window_start(self.clock.now());
        let mut n = 0;
        for b in items {
            if b.api_id == NETWORKS {
                if let Ok(m) = serde_json::from_value::<AppNetworks>(b.model) {
                    self.nets.insert(b.app_id, m);
                    n += 1;
                }
                continue;
            }
            match serde_json::from_value::<ApiBaseline>(b.model) {
                Ok(m) if m.window_secs == self.cfg.window_secs && m.slots.len() == SLOTS => {
                    let cur = Window {
                        start: now,
                        ..Window::default()
                    };
                    self.pairs
                        .insert((b.app_id, b.api_id), Pair { model: m, cur });
                    n += 1;
                }
                _ => {
                    tracing::warn!(app_id = %b.app_id, api_id = %b.api_id, "stored baseline skipped (another window or unreadable)")
                }
            }
        }
        n
    }

    /// The model of one app x API, if learned.
    pub fn model(&self, app: &str, api: &str) -> Option<&ApiBaseline> {
        self.pairs
            .get(&(app.to_string(), api.to_string()))
            .map(|p| &p.model)
    }

    /// An app's networks, if learned.
    pub fn networks(&self, app: &str) -> Option<&AppNetworks> {
        self.nets.get(app)
    }
}

#[allow(clippy::too_many_arguments)]
fn volume_alert(
    app: &str,
    api: &str,
    slot: usize,
    x: f64,
    mean: f64,
    sd: f64,
    z: f64,
    open: bool,
) -> NewAlert {
    let dir = if x > mean { "above" } else { "below" };
    NewAlert {
        rule: "baseline_volume".into(),
        key: format!("baseline_volume:{app}:{api}"),
        severity: AlertSeverity::Warning,
        summary: format!(
            "App_ID {app} on API {api}: {x:.0} calls in the {} window, {dir} the usual {mean:.1} +- {:.1} at {} local",
            if open { "current" } else { "last" },
            z * sd,
            slot_name(slot)
        ),
        details: json!({"app_id": app, "api_id": api, "slot": slot, "when": slot_name(slot),
            "calls": x, "mean": mean, "sd": sd, "z": z, "window_open": open}),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::atomic::{AtomicI64, Ordering};

    struct TestClock(AtomicI64);
    impl Clock for TestClock {
        fn now(&self) -> i64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    /// Monday 2026-11-02 00:00 in UTC+8.
    const MONDAY: i64 = 1_793_548_800;

    fn sig(at: i64, ip: &str, api: &str, level: &str, ok: bool) -> Signal {
        Signal {
            at,
            txn_id: None,
            app_id: Some("app1".into()),
            app_verified: true,
            api_id: Some(api.into()),
            client_ip: Some(ip.into()),
            result: Some(if ok { "success" } else { "failure" }.into()),
            code: None,
            risk: None,
            level: Some(level.into()),
            duration_us: Some(20_000),
            client_cert: None,
        }
    }

    /// Calls per 5 minutes: a daily cycle (busy 09:00-18:00, quiet at
    /// night: 10 at 03:00), weekends at a third.
    fn expected(at: i64) -> u64 {
        let local = at + 8 * 3600;
        let hour = (local.rem_euclid(86_400) / 3600) as f64;
        let weekday = ((local.div_euclid(86_400) + 3).rem_euclid(7)) as u64;
        let day = 10.0 + 110.0 * (((hour - 3.0) / 24.0 * std::f64::consts::PI).sin().powi(2));
        let v = if weekday >= 5 { day / 3.0 } else { day };
        v.round() as u64
    }

    struct Feed {
        l: Learner,
        clock: Arc<TestClock>,
        rng: u64,
    }

    impl Feed {
        /// Feed the windows of [from, to), with +-10% jitter (and a factor
        /// `spike` from `spike_at`), ticking the clock each window; every
        /// alert with the second it was raised.
        fn run(&mut self, from: i64, to: i64, spike_at: i64, spike: u64) -> Vec<(i64, NewAlert)> {
            let mut out = vec![];
            let mut t = from;
            while t < to {
                self.rng = self
                    .rng
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let jitter = ((self.rng >> 33) % 21) as i64 - 10; // -10..=10 %
                let mut n = (expected(t) as i64 * (100 + jitter) / 100).max(0) as u64;
                if t >= spike_at {
                    n *= spike;
                }
                for i in 0..n {
                    let at = t + (i as i64 * 300) / n as i64;
                    self.clock.0.store(at, Ordering::SeqCst);
                    for a in self
                        .l
                        .observe(&sig(at, "10.1.2.3", "balance", "A1", i % 50 != 0))
                    {
                        out.push((at, a));
                    }
                }
                t += 300;
                self.clock.0.store(t, Ordering::SeqCst);
                out.extend(self.l.tick().into_iter().map(|a| (t, a)));
            }
            out
        }
    }

    /// MON-3: 14 synthetic days with daily and weekly cycles learned; a
    /// normal day raises nothing; a 5x spike at 03:00 is flagged within 5
    /// minutes; a new /24 and a funds (A3) call at an hour the app never
    /// calls are flagged; the model survives a save and load.
    #[test]
    fn mon_3_baseline_learns_cycles_and_flags_spike_new_network_off_hours_funds() {
        let clock = Arc::new(TestClock(AtomicI64::new(MONDAY)));
        let cfg = BaselineConfig::default();
        let mut f = Feed {
            l: Learner::new(cfg.clone(), clock.clone()),
            clock: clock.clone(),
            rng: 7,
        };
        let day = 86_400;
        let learned = f.run(MONDAY, MONDAY + 14 * day, i64::MAX, 1);
        // The first week builds the history (no slot is past the guard
        // until then); nothing may fire in the second.
        let second_week: Vec<_> = learned
            .iter()
            .filter(|(t, _)| *t >= MONDAY + 7 * day + 3600)
            .collect();
        assert!(second_week.is_empty(), "{second_week:?}");
        let m = f.l.model("app1", "balance").unwrap();
        let three_am = f.l.slot_of(MONDAY + 3 * 3600);
        let noon = f.l.slot_of(MONDAY + 12 * 3600);
        let sat_noon = f.l.slot_of(MONDAY + 5 * day + 12 * 3600);
        assert!(m.slots[three_am].volume.mean < 20.0 && m.slots[three_am].volume.n >= 24);
        assert!(m.slots[noon].volume.mean > 80.0, "{:?}", m.slots[noon]);
        assert!(m.slots[sat_noon].volume.mean < m.slots[noon].volume.mean / 2.0);

        // Day 15 (a Monday) is normal: nothing.
        let normal = f.run(MONDAY + 14 * day, MONDAY + 15 * day, i64::MAX, 1);
        assert!(normal.is_empty(), "{normal:?}");

        // Day 16 (Tuesday): 5x from 03:00.
        let d = MONDAY + 15 * day;
        let spike_at = d + 3 * 3600;
        let spiked = f.run(d, d + 4 * 3600, spike_at, 5);
        let first = spiked.first().expect("the spike is flagged");
        assert_eq!(first.1.rule, "baseline_volume");
        assert_eq!(first.1.severity, AlertSeverity::Warning);
        assert!(
            first.0 >= spike_at && first.0 <= spike_at + 300,
            "flagged {} s after 03:00",
            first.0 - spike_at
        );

        // The model survives a restart.
        let saved = f.l.take_dirty();
        assert!(saved.iter().any(|b| b.api_id == NETWORKS));
        let mut l2 = Learner::new(cfg, clock.clone());
        assert_eq!(l2.load(saved), 2);
        assert_eq!(l2.model("app1", "balance"), f.l.model("app1", "balance"));

        // A new /24 after the learning period (an IPv6 /48 too); the known
        // one again is quiet.
        let t = d + 10 * 3600;
        let a = l2.observe(&sig(t, "10.1.2.99", "balance", "A1", true));
        assert!(a.is_empty(), "{a:?}");
        let a = l2.observe(&sig(t, "203.0.113.7", "balance", "A1", true));
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].rule, "baseline_new_network");
        assert_eq!(a[0].key, "baseline_new_network:app1:203.0.113.0/24");
        let a = l2.observe(&sig(t, "2001:db8:7:1::5", "balance", "A1", true));
        assert_eq!(a[0].key, "baseline_new_network:app1:2001:db8:7::/48");

        // A funds API the app calls only on weekday afternoons: learned
        // for two weeks, then called at 02:00 on a Wednesday.
        for w in 0..2 {
            for dd in 0..7 {
                for h in 0..24 {
                    let ws = MONDAY + (w * 7 + dd) * day + h * 3600;
                    if dd < 5 && (13..16).contains(&h) {
                        l2.observe(&sig(ws + 60, "10.1.2.3", "transfer", "A3", true));
                    }
                    for k in 0..12 {
                        clock.0.store(ws + k * 300 + 300, Ordering::SeqCst);
                        l2.tick();
                    }
                }
            }
        }
        let t = MONDAY + 14 * day + 2 * day + 14 * 3600 + 60;
        let a = l2.observe(&sig(t, "10.1.2.3", "transfer", "A3", true));
        assert!(a.is_empty(), "at its usual hour: {a:?}");
        let t = MONDAY + 14 * day + 2 * day + 2 * 3600 + 60;
        let a = l2.observe(&sig(t, "10.1.2.3", "transfer", "A3", true));
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!(a[0].rule, "baseline_off_hours");
        assert_eq!(a[0].severity, AlertSeverity::Warning);
    }

    #[test]
    fn mon_3_networks_and_slots() {
        assert_eq!(network_of("192.168.7.9").unwrap(), "192.168.7.0/24");
        assert_eq!(network_of("::ffff:1.2.3.4").unwrap(), "1.2.3.0/24");
        assert_eq!(network_of("2001:db8:1:2::1").unwrap(), "2001:db8:1::/48");
        let l = Learner::new(BaselineConfig::default(), Arc::new(SystemClock));
        assert_eq!(l.slot_of(MONDAY), 0);
        assert_eq!(l.slot_of(MONDAY + 3 * 3600 + 59), 3);
        assert_eq!(l.slot_of(MONDAY + 6 * 86_400 + 23 * 3600), 167);
        assert_eq!(slot_name(27), "Tue 03:00");
    }
}
