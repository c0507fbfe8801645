//! Alerts (MON-2): raised de-duplicated by key, listed, acknowledged and
//! resolved. Not catalog changes (no version bump).

use menshen_model::alert::{Alert, AlertSeverity, AlertState, NewAlert};
use menshen_model::ValidationError;
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};

use super::rows::bad_row;
use crate::{now_rfc3339, StoreError};

/// Migration: the alerts table.
pub(super) const MIGRATION: &str = r#"
    CREATE TABLE alerts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        rule TEXT NOT NULL,
        dedup_key TEXT NOT NULL,
        severity TEXT NOT NULL CHECK (severity IN ('info','warning','critical')),
        summary TEXT NOT NULL,
        details TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('open','acknowledged','resolved')),
        count INTEGER NOT NULL,
        first_at TEXT NOT NULL,
        last_at TEXT NOT NULL,
        updated_by TEXT
    );
    CREATE INDEX alerts_key ON alerts(dedup_key, state);
    "#;

fn alert_from(r: &Row<'_>) -> rusqlite::Result<Alert> {
    Ok(Alert {
        id: r.get("id")?,
        rule: r.get("rule")?,
        key: r.get("dedup_key")?,
        severity: AlertSeverity::parse(&r.get::<_, String>("severity")?)
            .ok_or_else(|| bad_row("severity"))?,
        summary: r.get("summary")?,
        details: serde_json::from_str(&r.get::<_, String>("details")?)
            .map_err(|_| bad_row("details"))?,
        state: AlertState::parse(&r.get::<_, String>("state")?).ok_or_else(|| bad_row("state"))?,
        count: r.get("count")?,
        first_at: r.get("first_at")?,
        last_at: r.get("last_at")?,
        updated_by: r.get("updated_by")?,
    })
}

fn get(c: &Connection, id: i64) -> Result<Alert, StoreError> {
    c.query_row("SELECT * FROM alerts WHERE id = ?1", [id], alert_from)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("alert {id}")))
}

/// Raise: count on the unresolved alert of the same key (`false`: not
/// new), or create one (`true`). The severity only ever goes up.
pub(super) fn raise(tx: &Transaction<'_>, a: NewAlert) -> Result<(Alert, bool), StoreError> {
    let now = now_rfc3339();
    let cur: Option<(i64, String)> = tx
        .query_row(
            "SELECT id, severity FROM alerts WHERE dedup_key = ?1 AND state <> 'resolved'
              ORDER BY id DESC LIMIT 1",
            [&a.key],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    if let Some((id, sev)) = cur {
        let rank = |s: &str| AlertSeverity::ALL.iter().position(|x| x.as_str() == s);
        let severity = if rank(a.severity.as_str()) > rank(&sev) {
            a.severity.as_str().to_string()
        } else {
            sev
        };
        tx.execute(
            "UPDATE alerts SET count = count + 1, last_at = ?2, severity = ?3, details = ?4
              WHERE id = ?1",
            params![id, now, severity, a.details.to_string()],
        )?;
        return Ok((get(tx, id)?, false));
    }
    tx.execute(
        "INSERT INTO alerts (rule, dedup_key, severity, summary, details, state, count, first_at, last_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'open', 1, ?6, ?6)",
        params![
            a.rule,
            a.key,
            a.severity.as_str(),
            a.summary,
            a.details.to_string(),
            now
        ],
    )?;
    Ok((get(tx, tx.last_insert_rowid())?, true))
}

/// Alerts, newest first (at most 1000), optionally in one state.
pub(super) fn list(c: &Connection, state: Option<AlertState>) -> Result<Vec<Alert>, StoreError> {
    let mut st = c.prepare(
        "SELECT * FROM alerts WHERE ?1 IS NULL OR state = ?1 ORDER BY id DESC LIMIT 1000",
    )?;
    let rows = st
        .query_map([state.map(|s| s.as_str())], alert_from)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Acknowledge (from open) or resolve (from open or acknowledged);
/// `Conflict` naming `state` otherwise.
pub(super) fn set_state(
    tx: &Transaction<'_>,
    id: i64,
    to: AlertState,
    by: &str,
) -> Result<Alert, StoreError> {
    let cur = get(tx, id)?;
    let ok = match to {
        AlertState::Acknowledged => cur.state == AlertState::Open,
        AlertState::Resolved => cur.state != AlertState::Resolved,
        AlertState::Open => false,
    };
    if !ok {
        return Err(StoreError::Conflict(ValidationError::new(
            "state",
            format!("alert {id} is {}; cannot become {to}", cur.state),
        )));
    }
    tx.execute(
        "UPDATE alerts SET state = ?2, updated_by = ?3 WHERE id = ?1",
        params![id, to.as_str(), by],
    )?;
    get(tx, id)
}
