//! Flow-control rules (TRF-1), risk rules and their reviews (RSK-1, RSK-2)
//! and the app blacklist (TRF-3) on PostgreSQL: the same rules as
//! `sqlite/limits.rs`, `sqlite/risk.rs` and `sqlite/blacklist.rs`.

use menshen_model::risk::{HeldCall, HoldOutcome, NewRiskRule, ReviewState, RiskReview, RiskRule};
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

fn list_json(v: &Option<Vec<String>>) -> Option<String> {
    v.as_ref()
        .map(|l| serde_json::to_string(l).unwrap_or_else(|_| "[]".into()))
}

pub(super) async fn add_risk(
    tx: &Transaction<'_>,
    rule: NewRiskRule,
) -> Result<RiskRule, StoreError> {
    rule.validate()?;
    check_refs(tx, Some(&rule.app_id), rule.api_id.as_deref()).await?;
    let created_at = now_rfc3339();
    let id: i64 = tx
        .query_one(
            "INSERT INTO risk_rules (app_id, api_id, capacity, max_per_txn, max_per_day,
                counterparties, account_types, unusual_multiple, unusual_min_count, action,
                review_window_secs, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
            &[
                &rule.app_id,
                &rule.api_id,
                &rule.capacity,
                &rule.max_per_txn.map(|a| a.0 as i64),
                &rule.max_per_day.map(|a| a.0 as i64),
                &list_json(&rule.counterparties),
                &list_json(&rule.account_types),
                &rule.unusual_multiple.map(i64::from),
                &i64::from(rule.unusual_min_count),
                &rule.action.as_str(),
                &(rule.review_window_secs as i64),
                &created_at,
            ],
        )
        .await?
        .get(0);
    Ok(RiskRule {
        id,
        app_id: rule.app_id,
        api_id: rule.api_id,
        capacity: rule.capacity,
        max_per_txn: rule.max_per_txn,
        max_per_day: rule.max_per_day,
        counterparties: rule.counterparties,
        account_types: rule.account_types,
        unusual_multiple: rule.unusual_multiple,
        unusual_min_count: rule.unusual_min_count,
        action: rule.action,
        review_window_secs: rule.review_window_secs,
        created_at,
    })
}

pub(super) async fn remove_risk(tx: &Transaction<'_>, id: i64) -> Result<(), StoreError> {
    if tx
        .execute("DELETE FROM risk_rules WHERE id = $1", &[&id])
        .await?
        == 0
    {
        return Err(StoreError::NotFound(format!("risk rule {id}")));
    }
    Ok(())
}

pub(super) async fn list_risks<C: GenericClient>(c: &C) -> Result<Vec<RiskRule>, StoreError> {
    rows::all(
        c.query("SELECT * FROM risk_rules ORDER BY id", &[]).await?,
        rows::risk_rule,
    )
}

async fn review<C: GenericClient>(c: &C, id: i64) -> Result<RiskReview, StoreError> {
    match c
        .query_opt("SELECT * FROM risk_reviews WHERE id = $1", &[&id])
        .await?
    {
        Some(r) => rows::risk_review(&r),
        None => Err(StoreError::NotFound(format!("review {id}"))),
    }
}

/// A held call (RSK-1). The fingerprint's advisory lock makes the
/// look-then-insert atomic across nodes, as SQLite's single writer does.
pub(super) async fn hold(
    tx: &Transaction<'_>,
    call: HeldCall,
    now: i64,
) -> Result<HoldOutcome, StoreError> {
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        &[&call.fingerprint],
    )
    .await?;
    let approved = tx
        .query_opt(
            "SELECT id FROM risk_reviews WHERE fingerprint = $1 AND state = 'approved'
               AND approved_until > $2 ORDER BY id LIMIT 1",
            &[&call.fingerprint, &now],
        )
        .await?;
    if let Some(r) = approved {
        let id: i64 = r.get(0);
        tx.execute(
            "UPDATE risk_reviews SET state = 'used', used_txn_id = $2 WHERE id = $1",
            &[&id, &call.txn_id],
        )
        .await?;
        return Ok(HoldOutcome::Approved(review(tx, id).await?));
    }
    let pending = tx
        .query_opt(
            "SELECT id FROM risk_reviews WHERE fingerprint = $1 AND state = 'pending' ORDER BY id LIMIT 1",
            &[&call.fingerprint],
        )
        .await?;
    if let Some(r) = pending {
        return Ok(HoldOutcome::Pending(review(tx, r.get(0)).await?));
    }
    let id: i64 = tx
        .query_one(
            "INSERT INTO risk_reviews (app_id, api_id, amount, counterparty, fingerprint, txn_id,
                reason, window_secs, state, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9) RETURNING id",
            &[
                &call.app_id,
                &call.api_id,
                &(call.amount.0 as i64),
                &call.counterparty_masked,
                &call.fingerprint,
                &call.txn_id,
                &call.reason,
                &(call.window_secs as i64),
                &now_rfc3339(),
            ],
        )
        .await?
        .get(0);
    Ok(HoldOutcome::Pending(review(tx, id).await?))
}

pub(super) async fn reviews<C: GenericClient>(
    c: &C,
    state: Option<ReviewState>,
) -> Result<Vec<RiskReview>, StoreError> {
    rows::all(
        c.query(
            "SELECT * FROM risk_reviews WHERE $1::TEXT IS NULL OR state = $1 ORDER BY id DESC LIMIT 1000",
            &[&state.map(|s| s.as_str())],
        )
        .await?,
        rows::risk_review,
    )
}

pub(super) async fn decide(
    tx: &Transaction<'_>,
    id: i64,
    approve: bool,
    by: &str,
    now: i64,
) -> Result<RiskReview, StoreError> {
    // FOR UPDATE: two officers deciding at once see each other's decision.
    if tx
        .query_opt(
            "SELECT 1 FROM risk_reviews WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await?
        .is_none()
    {
        return Err(StoreError::NotFound(format!("review {id}")));
    }
    let cur = review(tx, id).await?;
    let until = now.saturating_add(cur.window_secs as i64);
    if cur.state != ReviewState::Pending {
        return Err(StoreError::Conflict(ValidationError::new(
            "state",
            format!("review {id} is {}, not pending", cur.state),
        )));
    }
    let state = if approve {
        ReviewState::Approved
    } else {
        ReviewState::Rejected
    };
    tx.execute(
        "UPDATE risk_reviews SET state = $2, decided_by = $3, decided_at = $4, approved_until = $5 WHERE id = $1",
        &[&id, &state.as_str(), &by, &now_rfc3339(), &approve.then_some(until)],
    )
    .await?;
    review(tx, id).await
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
