//! Cluster-wide statistics (MON-1, issue 14 item 2) on PostgreSQL: each
//! node's published window slots (`menshen_metrics::cluster`), one row per
//! node incarnation, resolution and slot index, overwritten as the node's
//! rings come round (bounded: 216 rows per incarnation); and each node's
//! last publication. Not catalog data: no version bump, no notification.
//! Only the cluster store has these (one embedded node reads its own
//! counters), so they are methods of [`PgStore`], not of the `Store` trait.

use super::PgStore;
use crate::StoreError;

/// A published slot of one node incarnation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsSlotRow {
    /// The node id.
    pub node: String,
    /// When that node's counting started (unix seconds).
    pub boot: i64,
    /// Seconds per slot.
    pub res: i64,
    /// The slot's period (`epoch * res` is its start, unix seconds).
    pub epoch: i64,
    /// Its counts (JSON, `menshen_metrics::SlotData`).
    pub data: String,
}

/// A node's last publication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsNodeRow {
    /// The node id.
    pub node: String,
    /// When its current incarnation started (unix seconds).
    pub boot: i64,
    /// When it last published (unix seconds).
    pub published_at: i64,
}

/// Slots not written for this long are deleted (two days: a day is the
/// longest window read).
const KEEP_SECS: i64 = 2 * 86_400;

impl PgStore {
    /// Publish this node's changed slots (`(res, index, epoch, data)`,
    /// each replacing what its place held) and record the publication time,
    /// in one transaction; slots older than two days (of any node) are
    /// dropped.
    pub async fn publish_stats(
        &self,
        node: &str,
        boot: i64,
        now: i64,
        slots: &[(i64, i64, i64, String)],
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let client: &mut tokio_postgres::Client = &mut client;
        let tx = client.transaction().await?;
        if !slots.is_empty() {
            let st = tx
                .prepare(
                    "INSERT INTO stats_slots (node, boot, res, idx, epoch, data, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT (node, boot, res, idx) DO UPDATE
                     SET epoch = excluded.epoch, data = excluded.data, updated_at = excluded.updated_at",
                )
                .await?;
            for (res, idx, epoch, data) in slots {
                tx.execute(&st, &[&node, &boot, res, idx, epoch, data, &now])
                    .await?;
            }
        }
        tx.execute(
            "INSERT INTO stats_nodes (node, boot, published_at) VALUES ($1, $2, $3)
             ON CONFLICT (node) DO UPDATE SET boot = excluded.boot, published_at = excluded.published_at",
            &[&node, &boot, &now],
        )
        .await?;
        tx.execute(
            "DELETE FROM stats_slots WHERE updated_at < $1",
            &[&(now - KEEP_SECS)],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every node's slots written since `since` (unix seconds), and every
    /// node's last publication.
    pub async fn load_stats(
        &self,
        since: i64,
    ) -> Result<(Vec<StatsSlotRow>, Vec<StatsNodeRow>), StoreError> {
        let c = self.client().await?;
        let slots = c
            .query(
                "SELECT node, boot, res, epoch, data FROM stats_slots WHERE updated_at >= $1",
                &[&since],
            )
            .await?
            .iter()
            .map(|r| {
                Ok(StatsSlotRow {
                    node: r.try_get(0)?,
                    boot: r.try_get(1)?,
                    res: r.try_get(2)?,
                    epoch: r.try_get(3)?,
                    data: r.try_get(4)?,
                })
            })
            .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
        let nodes = c
            .query(
                "SELECT node, boot, published_at FROM stats_nodes ORDER BY node",
                &[],
            )
            .await?
            .iter()
            .map(|r| {
                Ok(StatsNodeRow {
                    node: r.try_get(0)?,
                    boot: r.try_get(1)?,
                    published_at: r.try_get(2)?,
                })
            })
            .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
        Ok((slots, nodes))
    }
}
