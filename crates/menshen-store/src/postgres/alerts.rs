//! Alerts (MON-2) on PostgreSQL, shared by every node: the same rules as
//! `sqlite/alerts.rs`. An alert raised on several nodes at once is one
//! alert: the dedup key's advisory lock makes look-then-insert atomic.

use menshen_model::alert::{Alert, AlertSeverity, AlertState, NewAlert};
use menshen_model::ValidationError;
use tokio_postgres::{GenericClient, Row, Transaction};

use super::rows::{self, bad};
use crate::{now_rfc3339, StoreError};

fn alert(r: &Row) -> Result<Alert, StoreError> {
    let severity: String = r.try_get("severity")?;
    let details: String = r.try_get("details")?;
    let state: String = r.try_get("state")?;
    Ok(Alert {
        id: r.try_get("id")?,
        rule: r.try_get("rule")?,
        key: r.try_get("dedup_key")?,
        severity: AlertSeverity::parse(&severity).ok_or_else(|| bad("severity"))?,
        summary: r.try_get("summary")?,
        details: serde_json::from_str(&details).map_err(|_| bad("details"))?,
        state: AlertState::parse(&state).ok_or_else(|| bad("state"))?,
        count: r.try_get("count")?,
        first_at: r.try_get("first_at")?,
        last_at: r.try_get("last_at")?,
        updated_by: r.try_get("updated_by")?,
    })
}

async fn get<C: GenericClient>(c: &C, id: i64) -> Result<Alert, StoreError> {
    match c
        .query_opt("SELECT * FROM alerts WHERE id = $1", &[&id])
        .await?
    {
        Some(r) => alert(&r),
        None => Err(StoreError::NotFound(format!("alert {id}"))),
    }
}

/// Raise: count into the unresolved alert with the same key (severity only
/// ever raised), else open a new one (`true`).
pub(super) async fn raise(tx: &Transaction<'_>, a: &NewAlert) -> Result<(Alert, bool), StoreError> {
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 1))",
        &[&a.key],
    )
    .await?;
    let now = now_rfc3339();
    let details = a.details.to_string();
    let cur = tx
        .query_opt(
            "SELECT id, severity FROM alerts WHERE dedup_key = $1 AND state <> 'resolved'
              ORDER BY id DESC LIMIT 1",
            &[&a.key],
        )
        .await?;
    if let Some(r) = cur {
        let (id, sev): (i64, String) = (r.try_get(0)?, r.try_get(1)?);
        let rank = |s: &str| AlertSeverity::ALL.iter().position(|x| x.as_str() == s);
        let severity = if rank(a.severity.as_str()) > rank(&sev) {
            a.severity.as_str().to_string()
        } else {
            sev
        };
        tx.execute(
            "UPDATE alerts SET count = count + 1, last_at = $2, severity = $3, details = $4 WHERE id = $1",
            &[&id, &now, &severity, &details],
        )
        .await?;
        return Ok((get(tx, id).await?, false));
    }
    let id: i64 = tx
        .query_one(
            "INSERT INTO alerts (rule, dedup_key, severity, summary, details, state, count, first_at, last_at)
             VALUES ($1, $2, $3, $4, $5, 'open', 1, $6, $6) RETURNING id",
            &[&a.rule, &a.key, &a.severity.as_str(), &a.summary, &details, &now],
        )
        .await?
        .get(0);
    Ok((get(tx, id).await?, true))
}

pub(super) async fn list<C: GenericClient>(
    c: &C,
    state: Option<AlertState>,
) -> Result<Vec<Alert>, StoreError> {
    rows::all(
        c.query(
            "SELECT * FROM alerts WHERE $1::TEXT IS NULL OR state = $1 ORDER BY id DESC LIMIT 1000",
            &[&state.map(|s| s.as_str())],
        )
        .await?,
        alert,
    )
}

pub(super) async fn set_state(
    tx: &Transaction<'_>,
    id: i64,
    to: AlertState,
    by: &str,
) -> Result<Alert, StoreError> {
    if tx
        .query_opt("SELECT 1 FROM alerts WHERE id = $1 FOR UPDATE", &[&id])
        .await?
        .is_none()
    {
        return Err(StoreError::NotFound(format!("alert {id}")));
    }
    let cur = get(tx, id).await?;
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
        "UPDATE alerts SET state = $2, updated_by = $3 WHERE id = $1",
        &[&id, &to.as_str(), &by],
    )
    .await?;
    get(tx, id).await
}
