//! Flow-control rules (TRF-1) and the app blacklist (TRF-3) on PostgreSQL:
//! the same rules as `sqlite/limits.rs` and `sqlite/blacklist.rs`.

use menshen_model::{
    AppStatus, BlacklistAction, BlacklistEntry, BlacklistEvent, LimitRule, NewLimitRule,
    ValidationError,
};
use tokio_postgres::{GenericClient, Transaction};

use super::catalog::check_refs;
use super::rows;
use crate::{now_rfc3339, StoreError};

pub(super) async fn add_limit(
    tx: &Transaction<'_>,
    rule: NewLimitRule,
) -> Result<LimitRule, StoreError> {
    rule.validate()?;
    check_refs(tx, rule.app_id.as_deref(), rule.api_id.as_deref()).await?;
    let created_at = now_rfc3339();
    let id: i64 = tx
        .query_one(
            "INSERT INTO limit_rules (app_id, api_id, time_window, max_calls, action, per, pause_secs, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            &[
                &rule.app_id,
                &rule.api_id,
                &rule.window.as_str(),
                &(rule.max as i64),
                &rule.action.as_str(),
                &rule.per.as_str(),
                &rule.pause_secs.map(|p| p as i64),
                &created_at,
            ],
        )
        .await?
        .get(0);
    Ok(LimitRule {
        id,
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

pub(super) async fn remove_limit(tx: &Transaction<'_>, id: i64) -> Result<(), StoreError> {
    if tx
        .execute("DELETE FROM limit_rules WHERE id = $1", &[&id])
        .await?
        == 0
    {
        return Err(StoreError::NotFound(format!("limit rule {id}")));
    }
    Ok(())
}

pub(super) async fn list_limits<C: GenericClient>(c: &C) -> Result<Vec<LimitRule>, StoreError> {
    rows::all(
        c.query("SELECT * FROM limit_rules ORDER BY id", &[])
            .await?,
        rows::limit,
    )
}

fn field(i: usize, name: &str) -> String {
    format!("entries[{i}].{name}")
}

/// List or delist every app of `entries`, all or none (TRF-3).
pub(super) async fn blacklist(
    tx: &Transaction<'_>,
    entries: &[BlacklistEntry],
    action: BlacklistAction,
    actor: &str,
) -> Result<Vec<BlacklistEvent>, StoreError> {
    if entries.is_empty() {
        return Err(StoreError::Invalid(ValidationError::new(
            "entries",
            "no app given",
        )));
    }
    let at = now_rfc3339();
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        e.validate().map_err(|v| {
            StoreError::Invalid(ValidationError::new(field(i, &v.field), v.message))
        })?;
        if !seen.insert(e.app_id.as_str()) {
            return Err(StoreError::Invalid(ValidationError::new(
                field(i, "app_id"),
                format!("app `{}` is named twice", e.app_id),
            )));
        }
        let Some(row) = tx
            .query_opt(
                "SELECT status FROM apps WHERE app_id = $1 FOR UPDATE",
                &[&e.app_id],
            )
            .await?
        else {
            return Err(StoreError::Invalid(ValidationError::new(
                field(i, "app_id"),
                format!("no app `{}`", e.app_id),
            )));
        };
        let status: String = row.get(0);
        let status = AppStatus::parse(&status).unwrap_or(AppStatus::Exited);
        let next = match (action, status) {
            (_, AppStatus::Exited) => {
                return Err(StoreError::Conflict(ValidationError::new(
                    field(i, "app_id"),
                    format!("app `{}` has exited", e.app_id),
                )))
            }
            (BlacklistAction::Remove, s) if s != AppStatus::Blacklisted => {
                return Err(StoreError::Conflict(ValidationError::new(
                    field(i, "app_id"),
                    format!("app `{}` is not blacklisted (it is {s})", e.app_id),
                )))
            }
            (BlacklistAction::Add, _) => AppStatus::Blacklisted,
            (BlacklistAction::Remove, _) => AppStatus::Active,
        };
        tx.execute(
            "UPDATE apps SET status = $1 WHERE app_id = $2",
            &[&next.as_str(), &e.app_id],
        )
        .await?;
        let reason = e.reason.trim();
        let id: i64 = tx
            .query_one(
                "INSERT INTO app_blacklist_events (app_id, action, reason, actor, at)
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
                &[&e.app_id, &action.as_str(), &reason, &actor, &at],
            )
            .await?
            .get(0);
        out.push(BlacklistEvent {
            id,
            app_id: e.app_id.clone(),
            action,
            reason: reason.to_string(),
            actor: actor.to_string(),
            at: at.clone(),
        });
    }
    Ok(out)
}

pub(super) async fn blacklist_history<C: GenericClient>(
    c: &C,
    app_id: Option<&str>,
) -> Result<Vec<BlacklistEvent>, StoreError> {
    c.query(
        "SELECT id, app_id, action, reason, actor, at FROM app_blacklist_events
          WHERE $1::TEXT IS NULL OR app_id = $1 ORDER BY id",
        &[&app_id],
    )
    .await?
    .iter()
    .map(|r| {
        let action: String = r.try_get(2)?;
        Ok(BlacklistEvent {
            id: r.try_get(0)?,
            app_id: r.try_get(1)?,
            action: BlacklistAction::parse(&action).ok_or_else(|| rows::bad("action"))?,
            reason: r.try_get(3)?,
            actor: r.try_get(4)?,
            at: r.try_get(5)?,
        })
    })
    .collect()
}
