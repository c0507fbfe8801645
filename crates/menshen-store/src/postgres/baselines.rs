//! Learned baselines (MON-3) on PostgreSQL: the same rules as
//! `sqlite/baselines.rs` (one JSON model per app x API, replaced on save;
//! an app's client networks merged into the stored set, the row locked
//! for the read-merge-write so two nodes saving at once both count).

use menshen_model::baseline::{StoredBaseline, NETWORKS};
use tokio_postgres::{GenericClient, Row, Transaction};

use super::rows::{self, bad};
use crate::StoreError;

fn baseline(r: &Row) -> Result<StoredBaseline, StoreError> {
    let model: String = r.try_get("model")?;
    Ok(StoredBaseline {
        app_id: r.try_get("app_id")?,
        api_id: r.try_get("api_id")?,
        model: serde_json::from_str(&model).map_err(|_| bad("model"))?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// Replace each item's model; merge an app's networks into the stored set.
pub(super) async fn save(tx: &Transaction<'_>, items: &[StoredBaseline]) -> Result<(), StoreError> {
    for b in items {
        if b.api_id == NETWORKS {
            save_networks(tx, b).await?;
            continue;
        }
        tx.execute(
            "INSERT INTO baselines (app_id, api_id, model, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (app_id, api_id) DO UPDATE SET model = excluded.model, updated_at = excluded.updated_at",
            &[&b.app_id, &b.api_id, &b.model.to_string(), &b.updated_at],
        )
        .await?;
    }
    Ok(())
}

/// Read-merge-write of an app's networks. The row is created if missing
/// (a concurrent creator makes this wait, then do nothing), then locked
/// (`FOR UPDATE`) while merged, so no node's networks are lost.
async fn save_networks(tx: &Transaction<'_>, b: &StoredBaseline) -> Result<(), StoreError> {
    let model = b.model.to_string();
    let created = tx
        .execute(
            "INSERT INTO baselines (app_id, api_id, model, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (app_id, api_id) DO NOTHING",
            &[&b.app_id, &b.api_id, &model, &b.updated_at],
        )
        .await?;
    if created == 1 {
        return Ok(());
    }
    let row = tx
        .query_opt(
            "SELECT model FROM baselines WHERE app_id = $1 AND api_id = $2 FOR UPDATE",
            &[&b.app_id, &b.api_id],
        )
        .await?;
    let stored: Option<String> = row.map(|r| r.try_get("model")).transpose()?;
    let merged = stored
        .and_then(|s| menshen_model::baseline::merge_networks_json(&s, &b.model))
        .unwrap_or(model);
    tx.execute(
        "INSERT INTO baselines (app_id, api_id, model, updated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (app_id, api_id) DO UPDATE SET model = excluded.model, updated_at = excluded.updated_at",
        &[&b.app_id, &b.api_id, &merged, &b.updated_at],
    )
    .await?;
    Ok(())
}

/// Of one app or all.
pub(super) async fn load<C: GenericClient>(
    c: &C,
    app_id: Option<&str>,
) -> Result<Vec<StoredBaseline>, StoreError> {
    rows::all(
        c.query(
            "SELECT * FROM baselines WHERE $1::TEXT IS NULL OR app_id = $1 ORDER BY app_id, api_id",
            &[&app_id],
        )
        .await?,
        baseline,
    )
}

/// The networks (`api_id` `*`) of one app or all, saved at or after `since`.
pub(super) async fn load_networks<C: GenericClient>(
    c: &C,
    app_id: Option<&str>,
    since: i64,
) -> Result<Vec<StoredBaseline>, StoreError> {
    rows::all(
        c.query(
            "SELECT * FROM baselines WHERE api_id = $1 AND ($2::TEXT IS NULL OR app_id = $2)
               AND updated_at >= $3 ORDER BY app_id",
            &[&NETWORKS, &app_id, &since],
        )
        .await?,
        baseline,
    )
}
