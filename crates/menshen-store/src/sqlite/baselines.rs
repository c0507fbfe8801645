//! Learned baselines (MON-3): one JSON model per app x API, replaced on
//! each save, except an app's client networks (`api_id` `*`), which are
//! merged into the stored set in the same transaction (read, merge,
//! write): in a cluster every node's networks are kept. Not catalog
//! changes.

use menshen_model::baseline::{merge_networks_json, StoredBaseline, NETWORKS};
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::rows::bad_row;
use crate::StoreError;

/// Migration: the baselines table.
pub(super) const MIGRATION: &str = r#"
    CREATE TABLE baselines (
        app_id TEXT NOT NULL,
        api_id TEXT NOT NULL,
        model TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (app_id, api_id)
    );
    "#;

/// Replace each item's model; merge an app's networks into the stored set.
pub(super) fn save(tx: &Transaction<'_>, items: &[StoredBaseline]) -> Result<(), StoreError> {
    let mut st = tx.prepare(
        "INSERT INTO baselines (app_id, api_id, model, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (app_id, api_id) DO UPDATE SET model = excluded.model, updated_at = excluded.updated_at",
    )?;
    let mut cur = tx.prepare("SELECT model FROM baselines WHERE app_id = ?1 AND api_id = ?2")?;
    for b in items {
        let mut model = b.model.to_string();
        if b.api_id == NETWORKS {
            let stored: Option<String> = cur
                .query_row(params![b.app_id, b.api_id], |r| r.get(0))
                .optional()?;
            if let Some(m) = stored.and_then(|s| merge_networks_json(&s, &b.model)) {
                model = m;
            }
        }
        st.execute(params![b.app_id, b.api_id, model, b.updated_at])?;
    }
    Ok(())
}

/// Of one app or all.
pub(super) fn load(
    c: &Connection,
    app_id: Option<&str>,
) -> Result<Vec<StoredBaseline>, StoreError> {
    let mut st = c.prepare(
        "SELECT app_id, api_id, model, updated_at FROM baselines
          WHERE ?1 IS NULL OR app_id = ?1 ORDER BY app_id, api_id",
    )?;
    let rows = st.query_map([app_id], |r| {
        Ok(StoredBaseline {
            app_id: r.get(0)?,
            api_id: r.get(1)?,
            model: serde_json::from_str(&r.get::<_, String>(2)?).map_err(|_| bad_row("model"))?,
            updated_at: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The networks (`api_id` `*`) of one app or all, saved at or after `since`.
pub(super) fn load_networks(
    c: &Connection,
    app_id: Option<&str>,
    since: i64,
) -> Result<Vec<StoredBaseline>, StoreError> {
    let mut st = c.prepare(
        "SELECT app_id, api_id, model, updated_at FROM baselines
          WHERE api_id = ?1 AND (?2 IS NULL OR app_id = ?2) AND updated_at >= ?3 ORDER BY app_id",
    )?;
    let rows = st.query_map(params![NETWORKS, app_id, since], |r| {
        Ok(StoredBaseline {
            app_id: r.get(0)?,
            api_id: r.get(1)?,
            model: serde_json::from_str(&r.get::<_, String>(2)?).map_err(|_| bad_row("model"))?,
            updated_at: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
