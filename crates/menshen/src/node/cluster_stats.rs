//! Cluster-wide statistics (MON-1, issue 14 item 2): with the PostgreSQL
//! store, this node publishes its statistics windows every
//! `stats.publish_secs` (a task of its own, never on the call path; a
//! failed publication is repeated whole by the next one), and its admin API
//! sums its own counters with every other node's published slots
//! (`menshen_metrics::cluster` explains the design and the staleness).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use menshen_admin::monitor::ClusterSource;
use menshen_admin::AdminError;
use menshen_metrics::{ClusterView, PeerNode, Remote, SlotData, SlotRecord, Stats};
use menshen_store::{PgStore, StoreError};
use tokio::sync::watch;

/// This node's side of the cluster statistics.
pub struct ClusterStats {
    pg: Arc<PgStore>,
    stats: Stats,
    node: String,
    boot: u64,
}

/// Rows older than this are not read: the longest window (a day) plus its
/// coarsest slot.
const READ_SPAN_SECS: i64 = 86_400 + 900;

impl ClusterStats {
    /// For node `node`'s counters `stats` on the cluster store `pg`.
    pub fn new(pg: Arc<PgStore>, stats: Stats, node: String) -> Arc<ClusterStats> {
        let boot = stats.started();
        Arc::new(ClusterStats {
            pg,
            stats,
            node,
            boot,
        })
    }

    /// Publish the slots changed since the last publication (and this
    /// node's publication time). On failure the slots are kept for the
    /// next one.
    pub async fn publish(&self) -> Result<usize, StoreError> {
        let slots = self.stats.take_dirty();
        let mut rows = Vec::with_capacity(slots.len());
        for s in &slots {
            let data = serde_json::to_string(&s.data)
                .map_err(|e| StoreError::Backend(format!("statistics slot: {e}")))?;
            rows.push((s.res as i64, s.index() as i64, s.epoch as i64, data));
        }
        let now = menshen_store::now_unix();
        match self
            .pg
            .publish_stats(&self.node, self.boot as i64, now, &rows)
            .await
        {
            Ok(()) => Ok(rows.len()),
            Err(e) => {
                self.stats.restore_dirty(&slots);
                Err(e)
            }
        }
    }

    /// Publish every `every` until `stop` turns true, then once more (a
    /// stopping node's last calls are counted too).
    pub fn start(
        self: &Arc<Self>,
        every: Duration,
        mut stop: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failing = false;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    r = stop.changed() => {
                        if r.is_err() || *stop.borrow() {
                            break;
                        }
                        continue;
                    }
                }
                match me.publish().await {
                    Ok(_) if failing => {
                        failing = false;
                        tracing::info!("cluster statistics: publishing again");
                    }
                    Ok(_) => {}
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(error = %e, "cluster statistics: cannot publish this node's figures (kept, retried every period); other nodes show them late");
                    }
                    Err(_) => {}
                }
            }
            if let Err(e) = me.publish().await {
                tracing::warn!(error = %e, "cluster statistics: last publication at shutdown failed");
            }
        })
    }

    /// Every other node's published slots and every node's last
    /// publication (this node: now, its figures are read live).
    pub async fn view(&self) -> Result<ClusterView, StoreError> {
        let now = menshen_store::now_unix();
        let (rows, nodes) = self.pg.load_stats(now - READ_SPAN_SECS).await?;
        let mut remote: BTreeMap<(String, i64), Remote> = BTreeMap::new();
        for r in rows {
            if r.node == self.node && r.boot == self.boot as i64 {
                continue;
            }
            let data: SlotData = match serde_json::from_str(&r.data) {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(node = %r.node, error = %e, "cluster statistics: an unreadable slot skipped");
                    continue;
                }
            };
            let (Ok(res), Ok(epoch), Ok(started)) = (
                u64::try_from(r.res),
                u64::try_from(r.epoch),
                u64::try_from(r.boot),
            ) else {
                continue;
            };
            remote
                .entry((r.node, r.boot))
                .or_insert_with(|| Remote {
                    started,
                    slots: Vec::new(),
                })
                .slots
                .push(SlotRecord { res, epoch, data });
        }
        let mut peers: Vec<PeerNode> = nodes
            .into_iter()
            .filter(|n| n.node != self.node)
            .map(|n| PeerNode {
                node_id: n.node,
                started_at: u64::try_from(n.boot).unwrap_or(0),
                published_at: u64::try_from(n.published_at).unwrap_or(0),
            })
            .collect();
        peers.push(PeerNode {
            node_id: self.node.clone(),
            started_at: self.boot,
            published_at: u64::try_from(now).unwrap_or(0),
        });
        peers.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        Ok(ClusterView {
            remote: remote.into_values().collect(),
            nodes: peers,
        })
    }

    /// The admin API's reader.
    pub fn source(self: &Arc<Self>) -> ClusterSource {
        let me = self.clone();
        Arc::new(move || {
            let me = me.clone();
            Box::pin(async move { me.view().await.map_err(AdminError::from) })
        })
    }
}
