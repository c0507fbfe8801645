//! Flow-control rules (TRF-1): add, remove, list. Each write is a catalog
//! change (it bumps the version), so gateways rebuild their snapshot; the
//! counters themselves live in the hot state, keyed by the rule's id.

use menshen_model::{LimitRule, NewLimitRule, ValidationError};
use rusqlite::{params, Connection, Transaction};

use super::catalog::app_exists;
use super::rows::limit_from;
use crate::{now_rfc3339, StoreError};

/// Add a rule; the app and the API it names must exist.
pub(super) fn add(tx: &Transaction<'_>, rule: NewLimitRule) -> Result<LimitRule, StoreError> {
    rule.validate()?;
    if let Some(app) = &rule.app_id {
        app_exists(tx, app).map_err(|_| {
            StoreError::Invalid(ValidationError::new("app_id", format!("no app `{app}`")))
        })?;
    }
    if let Some(api) = &rule.api_id {
        let n: i64 = tx.query_row("SELECT COUNT(*) FROM apis WHERE api_id = ?1", [api], |r| {
            r.get(0)
        })?;
        if n == 0 {
            return Err(StoreError::Invalid(ValidationError::new(
                "api_id",
                format!("no API `{api}`"),
            )));
        }
    }
    let created_at = now_rfc3339();
    tx.execute(
        "INSERT INTO limit_rules (app_id, api_id, time_window, max_calls, action, per, pause_secs, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            rule.app_id,
            rule.api_id,
            rule.window.as_str(),
            rule.max as i64,
            rule.action.as_str(),
            rule.per.as_str(),
            rule.pause_secs.map(|p| p as i64),
            created_at
        ],
    )?;
    Ok(LimitRule {
        id: tx.last_insert_rowid(),
        app_id: rule.app_id,
        api_id: rule.api_id,
        window: rule.window,
        max: rule.max,
        action: rule.action,
        per: rule.per,
        pause_secs: rule.pause_secs,
        created_at,
    })
}

/// Remove a rule by id (`NotFound` if none).
pub(super) fn remove(tx: &Transaction<'_>, id: i64) -> Result<(), StoreError> {
    if tx.execute("DELETE FROM limit_rules WHERE id = ?1", [id])? == 0 {
        return Err(StoreError::NotFound(format!("limit rule {id}")));
    }
    Ok(())
}

/// Every rule, oldest first.
pub(super) fn list(c: &Connection) -> Result<Vec<LimitRule>, StoreError> {
    let mut st = c.prepare("SELECT * FROM limit_rules ORDER BY id")?;
    let rows = st
        .query_map([], limit_from)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}
