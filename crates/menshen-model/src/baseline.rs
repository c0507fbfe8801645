//! Learned baselines (MON-3): per app x API x hour-of-week, exponentially
//! weighted mean and variance of call volume (per window), failure rate
//! and latency; per app, the client networks seen. Kept in the store as
//! one JSON model per app x API (`api_id` [`NETWORKS`] holds the app's
//! networks), inspectable through the admin API.

use serde::{Deserialize, Serialize};

/// Hour-of-week slots (Monday 00:00 is slot 0).
pub const SLOTS: usize = 168;

/// The `api_id` under which an app's known client networks are stored.
pub const NETWORKS: &str = "*";

/// One stored model (its JSON as the learner wrote it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredBaseline {
    /// App_ID.
    pub app_id: String,
    /// API_ID, or [`NETWORKS`].
    pub api_id: String,
    /// [`ApiBaseline`] or [`AppNetworks`] as JSON.
    pub model: serde_json::Value,
    /// When it was saved, unix seconds.
    pub updated_at: i64,
}

/// An exponentially weighted mean and variance, with its sample count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Ewm {
    /// Samples learned.
    pub n: u64,
    /// Weighted mean.
    pub mean: f64,
    /// Weighted variance.
    pub var: f64,
}

impl Ewm {
    /// Learn `x` with weight `alpha` (the first sample sets the mean).
    pub fn update(&mut self, x: f64, alpha: f64) {
        if self.n == 0 {
            self.mean = x;
            self.var = 0.0;
        } else {
            let d = x - self.mean;
            self.mean += alpha * d;
            self.var = (1.0 - alpha) * (self.var + alpha * d * d);
        }
        self.n += 1;
    }

    /// Standard deviation.
    pub fn sd(&self) -> f64 {
        self.var.max(0.0).sqrt()
    }
}

/// One hour-of-week slot of one app x API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Slot {
    /// Calls per window (every window of the slot, empty ones too).
    pub volume: Ewm,
    /// Failed share of the calls (windows with calls only).
    pub failure: Ewm,
    /// Mean latency of a window's calls, ms (windows with calls only).
    pub latency_ms: Ewm,
}

/// The model of one app x API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiBaseline {
    /// The window the volume counts over, seconds.
    pub window_secs: u64,
    /// The API's security level as last seen (`A1`..`A3`).
    #[serde(default)]
    pub level: Option<String>,
    /// [`SLOTS`] slots.
    pub slots: Vec<Slot>,
}

impl ApiBaseline {
    /// Empty.
    pub fn new(window_secs: u64) -> Self {
        ApiBaseline {
            window_secs,
            level: None,
            slots: vec![Slot::default(); SLOTS],
        }
    }
}

/// An app's client networks (`/24` IPv4, `/48` IPv6), each with the unix
/// second it was last seen, and when the app was first seen. In a cluster
/// this is the cluster's set: the store merges each node's save into the
/// stored one ([`AppNetworks::merge`]), never replaces it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppNetworks {
    /// First call learned, unix seconds.
    pub first_at: i64,
    /// Network -> last seen.
    pub networks: std::collections::BTreeMap<String, i64>,
}

/// Most networks kept per app (the stalest go first).
pub const MAX_NETWORKS: usize = 4096;

impl AppNetworks {
    /// Take in what `other` knows (another node's view, or the store's):
    /// the union of the networks, each with the later last-seen, and the
    /// earlier first call. Never forgets a network either side knows,
    /// except past [`MAX_NETWORKS`], where the stalest go. Returns whether
    /// `self` learned a network it did not know.
    pub fn merge(&mut self, other: &AppNetworks) -> bool {
        let mut learned = false;
        if other.first_at != 0 && (self.first_at == 0 || other.first_at < self.first_at) {
            self.first_at = other.first_at;
        }
        for (net, at) in &other.networks {
            match self.networks.get_mut(net) {
                Some(t) => *t = (*t).max(*at),
                None => {
                    self.networks.insert(net.clone(), *at);
                    learned = true;
                }
            }
        }
        if self.networks.len() > MAX_NETWORKS {
            let mut by_age: Vec<(i64, String)> =
                self.networks.iter().map(|(k, t)| (*t, k.clone())).collect();
            by_age.sort();
            let drop = self.networks.len() - MAX_NETWORKS;
            for (_, k) in by_age.into_iter().take(drop) {
                self.networks.remove(&k);
            }
        }
        learned
    }
}

/// A stored networks model (JSON text) merged with a node's, as JSON text
/// (what the store writes back); `None` if either is not an
/// [`AppNetworks`] (the node's then replaces the stored one).
pub fn merge_networks_json(stored: &str, new: &serde_json::Value) -> Option<String> {
    let mut merged: AppNetworks = serde_json::from_str(stored).ok()?;
    let new = AppNetworks::deserialize(new).ok()?;
    merged.merge(&new);
    serde_json::to_string(&merged).ok()
}

/// A slot's name: `Mon 03:00`.
pub fn slot_name(slot: usize) -> String {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    format!("{} {:02}:00", DAYS[(slot / 24) % 7], slot % 24)
}
