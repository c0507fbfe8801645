//! Learned baselines (MON-3) on PostgreSQL: the same rules as
//! `sqlite/baselines.rs` (one JSON model per app x API, replaced on save).

use menshen_model::baseline::StoredBaseline;
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

/// Replace each item's model.
pub(super) async fn save(tx: &Transaction<'_>, items: &[StoredBaseline]) -> Result<(), StoreError> {
    for b in items {
        tx.execute(
            "INSERT INTO baselines (app_id, api_id, model, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (app_id, api_id) DO UPDATE SET model = excluded.model, updated_at = excluded.updated_at",
            &[&b.app_id, &b.api_id, &b.model.to_string(), &b.updated_at],
        )
        .await?;
    }
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
