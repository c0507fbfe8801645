//! Cluster-wide statistics (MON-1, issue 14 item 2: "cluster: summed
//! across nodes").
//!
//! # Design
//! Every node keeps its own rolling windows ([`crate::stats`]): rings of
//! 1-second, 1-minute and 15-minute slots. In a cluster each node
//! *publishes its slots*: every few seconds (off the call path, a task of
//! the node) the slots that received calls since the last publication are
//! written whole, keyed by node, node incarnation, resolution and slot
//! index, so a node's rows form the same bounded rings in the store
//! (at most 60 + 60 + 96 rows per incarnation, each overwritten in place).
//! A slot is written as its cumulative content, so a write is idempotent
//! and one that failed is simply repeated by the next publication.
//!
//! A reader (the admin API of any node) takes its own figures from memory
//! (exact to the call) and every other node's slots from the store, and adds
//! them per subject and window *before* deriving anything: calls and each
//! outcome count add, the success rate is summed successes over summed
//! calls, TPS is summed calls over the window, and p50/p99 come from the
//! summed latency histograms (never an average of percentiles).
//!
//! Why slots rather than a per-node "figures now" snapshot: a slot has a
//! time, so a node that stopped (or cannot reach the store) contributes
//! exactly the calls it made within each window, and its figures age out of
//! "the last minute" by themselves instead of lingering; and why not one
//! row per call or per minute: the same resolution as a single node (the
//! last minute to the second) at a bounded number of rows.
//!
//! Staleness: another node's calls appear after its next publication, at
//! most `publish_secs` (plus one store write) later; the reader's own calls
//! at once. Each node's last publication time is shown beside the figures.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::buckets::Hist;
use crate::stats::Agg;

/// Seconds per slot of each ring, finest first (as in [`crate::stats`]).
pub const RES: [u64; 3] = [1, 60, 900];
/// Slots per ring.
pub const SLOTS: [u64; 3] = [60, 60, 96];

/// One subject's counts in one slot, as published.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct WireAgg {
    /// Calls by outcome class (see [`crate::Class`]).
    pub c: [u64; 5],
    /// Calls by reason kind (see [`crate::Kind`]).
    pub k: [u64; 4],
    /// Latency histogram: (fine bucket index, count), non-zero buckets only.
    pub h: Vec<(u8, u64)>,
    /// Sum of the latencies, microseconds.
    pub s: u64,
}

impl WireAgg {
    pub(crate) fn from_agg(a: &Agg) -> WireAgg {
        WireAgg {
            c: a.class,
            k: a.kind,
            h: a.hist
                .buckets
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(i, n)| (i as u8, *n))
                .collect(),
            s: a.hist.sum_us,
        }
    }

    pub(crate) fn add_to(&self, a: &mut Agg) {
        let mut h = Hist::default();
        for &(i, n) in &self.h {
            if let Some(b) = h.buckets.get_mut(usize::from(i)) {
                *b += n;
                h.count += n;
            }
        }
        h.sum_us = self.s;
        a.hist.add(&h);
        for i in 0..5 {
            a.class[i] += self.c[i];
        }
        for i in 0..4 {
            a.kind[i] += self.k[i];
        }
    }
}

/// Every subject with calls in one slot, by App_ID / API_ID.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SlotData {
    /// Per app.
    pub apps: BTreeMap<String, WireAgg>,
    /// Per API.
    pub apis: BTreeMap<String, WireAgg>,
}

/// One slot of one ring.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotRecord {
    /// Seconds per slot (1, 60 or 900).
    pub res: u64,
    /// Which period: the slot covers `[epoch * res, (epoch + 1) * res)`.
    pub epoch: u64,
    /// Its counts.
    pub data: SlotData,
}

impl SlotRecord {
    /// The slot's index in its ring (where it is stored; overwritten when
    /// the ring comes round).
    pub fn index(&self) -> u64 {
        let n = RES
            .iter()
            .position(|&r| r == self.res)
            .map(|i| SLOTS[i])
            .unwrap_or(1);
        self.epoch % n
    }
}

/// What another node (one incarnation of it) published.
#[derive(Debug, Clone, Default)]
pub struct Remote {
    /// When it started (unix seconds).
    pub started: u64,
    /// Its slots (any resolution, any age: the reader picks).
    pub slots: Vec<SlotRecord>,
}

/// A node of the cluster as the reader sees it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PeerNode {
    /// Its node id.
    pub node_id: String,
    /// When its current incarnation started (unix seconds).
    pub started_at: u64,
    /// When it last published (unix seconds); its calls since then are not
    /// in the figures yet.
    pub published_at: u64,
}

/// Other nodes' published statistics, read from the store.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    /// Every node incarnation's slots (the reader's own excluded).
    pub remote: Vec<Remote>,
    /// The nodes known, with their last publication.
    pub nodes: Vec<PeerNode>,
}

/// The ring (0, 1, 2) that answers a window of `window` seconds.
pub(crate) fn ring_for(window: u64) -> usize {
    (0..3).find(|&i| RES[i] * SLOTS[i] >= window).unwrap_or(2)
}

/// The remote counts per subject name over the last `window` seconds up to
/// `now`, from the ring that answers it (the same slots a node reads
/// locally).
pub(crate) fn remote_window(
    remote: &[Remote],
    apps: bool,
    now: u64,
    window: u64,
) -> HashMap<String, Agg> {
    let r = ring_for(window);
    let (res, n) = (RES[r], SLOTS[r]);
    let e_now = now / res;
    let k = window.div_ceil(res).clamp(1, n);
    let oldest = e_now.saturating_sub(k - 1);
    let mut out: HashMap<String, Agg> = HashMap::new();
    for s in remote.iter().flat_map(|r| r.slots.iter()) {
        if s.res != res || s.epoch < oldest || s.epoch > e_now {
            continue;
        }
        let m = if apps { &s.data.apps } else { &s.data.apis };
        for (name, w) in m {
            w.add_to(out.entry(name.clone()).or_default());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{intern, Call, Class, IpAddr, Kind, Level, Metrics, Subject};

    fn call(app: crate::LabelId, api: crate::LabelId, class: Class, us: u64) -> Call<'static> {
        Call {
            app,
            api,
            level: Level::A1,
            class,
            kind: Kind::None,
            code: None,
            duration_us: us,
            upstream_us: None,
            upstream_error: None,
            rate_limit: None,
            client_ip: IpAddr::from([192, 0, 2, 1]),
            claimed_app: None,
        }
    }

    /// MON-1 (cluster): three nodes' slots, published and added by a
    /// reader, give exactly the calls of all three; percentiles come from
    /// the summed histograms (node A fast, node B slow: the summed p50 lies
    /// between, as it would on one node with all the calls).
    #[test]
    fn mon_1_cluster_sums_published_slots_and_merges_histograms() {
        let app = intern("cl_app");
        let api = intern("cl_api");
        let (a, b, c) = (Metrics::new(true), Metrics::new(true), Metrics::new(true));
        let now = crate::now_unix();
        for _ in 0..30 {
            a.observe(&call(app, api, Class::Success, 1_000));
        }
        for _ in 0..70 {
            b.observe(&call(app, api, Class::Success, 40_000));
        }
        for _ in 0..5 {
            c.observe(&call(app, api, Class::Refused, 150));
        }
        let remote: Vec<Remote> = [&b, &c]
            .iter()
            .map(|m| {
                let s = m.stats();
                let slots = s.take_dirty_at(now);
                // Every ring has the calls' slot; a second take has nothing.
                assert_eq!(slots.len(), 3);
                assert!(s.take_dirty_at(now).is_empty());
                // Through the wire format.
                let slots = slots
                    .into_iter()
                    .map(|r| SlotRecord {
                        data: serde_json::from_str(&serde_json::to_string(&r.data).unwrap())
                            .unwrap(),
                        ..r
                    })
                    .collect();
                Remote {
                    started: s.started(),
                    slots,
                }
            })
            .collect();
        let view = ClusterView {
            remote,
            nodes: vec![],
        };
        let st = a.stats();
        let s = st.cluster_subject_at(&view, true, "cl_app", now);
        for f in [&s.minute, &s.hour, &s.day] {
            assert_eq!(f.calls, 105, "{f:?}");
            assert_eq!(f.success, 100);
            assert_eq!(f.refused, 5);
        }
        // p50 of all 105: rank 52.5 falls among B's 40 ms calls.
        let p50 = s.minute.p50_ms.unwrap();
        assert!((35.0..=50.0).contains(&p50), "{p50}");
        // A alone: 1 ms.
        let local = st.window(Subject::App(app), 60);
        assert_eq!(local.calls, 30);
        // Listing: the app is there with the sum.
        let apps = st.cluster_list_at(&view, true, now);
        let row = apps.iter().find(|r| r.id == "cl_app").unwrap();
        assert_eq!(row.minute.calls, 105);
        let apis = st.cluster_list_at(&view, false, now);
        assert_eq!(
            apis.iter().find(|r| r.id == "cl_api").unwrap().day.calls,
            105
        );
        // Slots of a past minute no longer count for "the last minute".
        let later = st.cluster_subject_at(&view, true, "cl_app", now + 120);
        assert_eq!(later.minute.calls, 0);
        assert_eq!(later.hour.calls, 105);
        // An unknown name: zeros.
        let none = st.cluster_subject_at(&view, true, "nobody_here", now);
        assert_eq!(none.day.calls, 0);
    }

    /// A failed publication is repeated: the slots go back to dirty and the
    /// next take has them (with the calls made meanwhile).
    #[test]
    fn mon_1_unpublished_slots_are_taken_again() {
        let app = intern("cl_app2");
        let m = Metrics::new(true);
        let now = crate::now_unix();
        m.observe(&call(app, app, Class::Success, 500));
        let s = m.stats();
        let first = s.take_dirty_at(now);
        assert_eq!(first.len(), 3);
        s.restore_dirty(&first);
        m.observe(&call(app, app, Class::Success, 500));
        let again = s.take_dirty_at(now);
        assert_eq!(again.len(), 3);
        let w = &again[0].data.apps["cl_app2"];
        assert_eq!(w.c[Class::Success as usize], 2);
    }
}
