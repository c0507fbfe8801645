//! Risk rules for fund movements and their review items (RSK-1, RSK-2).
//! A rule is a catalog change (it bumps the version, so gateways rebuild
//! their snapshot); review items are not (they are created by held calls
//! and decided by officers, and read by the gateway only on a hold).

use menshen_model::risk::{
    Amount, HeldCall, HoldOutcome, NewRiskRule, ReviewState, RiskAction, RiskReview, RiskRule,
};
use menshen_model::ValidationError;
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};

use super::catalog::app_exists;
use super::rows::bad_row;
use crate::{now_rfc3339, StoreError};

/// Migration: the rules and the review items (appended to the schema's list).
pub(super) const MIGRATION: &str = r#"
    CREATE TABLE risk_rules (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        app_id TEXT NOT NULL REFERENCES apps(app_id),
        api_id TEXT REFERENCES apis(api_id),
        capacity TEXT,
        max_per_txn INTEGER CHECK (max_per_txn IS NULL OR max_per_txn >= 0),
        max_per_day INTEGER CHECK (max_per_day IS NULL OR max_per_day >= 0),
        counterparties TEXT,
        account_types TEXT,
        unusual_multiple INTEGER,
        unusual_min_count INTEGER NOT NULL,
        action TEXT NOT NULL CHECK (action IN ('alert','reject','hold')),
        review_window_secs INTEGER NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE risk_reviews (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        app_id TEXT NOT NULL,
        api_id TEXT NOT NULL,
        amount INTEGER NOT NULL,
        counterparty TEXT,
        fingerprint TEXT NOT NULL,
        txn_id TEXT NOT NULL,
        reason TEXT NOT NULL,
        window_secs INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending','approved','rejected','used')),
        created_at TEXT NOT NULL,
        decided_by TEXT,
        decided_at TEXT,
        approved_until INTEGER,
        used_txn_id TEXT
    );
    CREATE INDEX risk_reviews_fp ON risk_reviews(fingerprint, state);
    "#;

fn list_json(v: &Option<Vec<String>>) -> Option<String> {
    v.as_ref()
        .map(|l| serde_json::to_string(l).unwrap_or_else(|_| "[]".into()))
}

/// Add a rule; the app (and the API, if named) must exist.
pub(super) fn add(tx: &Transaction<'_>, rule: NewRiskRule) -> Result<RiskRule, StoreError> {
    rule.validate()?;
    app_exists(tx, &rule.app_id).map_err(|_| {
        StoreError::Invalid(ValidationError::new(
            "app_id",
            format!("no app `{}`", rule.app_id),
        ))
    })?;
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
        "INSERT INTO risk_rules (app_id, api_id, capacity, max_per_txn, max_per_day,
            counterparties, account_types, unusual_multiple, unusual_min_count, action,
            review_window_secs, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            rule.app_id,
            rule.api_id,
            rule.capacity,
            rule.max_per_txn.map(|a| a.0 as i64),
            rule.max_per_day.map(|a| a.0 as i64),
            list_json(&rule.counterparties),
            list_json(&rule.account_types),
            rule.unusual_multiple,
            rule.unusual_min_count,
            rule.action.as_str(),
            rule.review_window_secs as i64,
            created_at
        ],
    )?;
    Ok(RiskRule {
        id: tx.last_insert_rowid(),
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

/// Remove a rule by id (`NotFound` if none).
pub(super) fn remove(tx: &Transaction<'_>, id: i64) -> Result<(), StoreError> {
    if tx.execute("DELETE FROM risk_rules WHERE id = ?1", [id])? == 0 {
        return Err(StoreError::NotFound(format!("risk rule {id}")));
    }
    Ok(())
}

/// Every rule, oldest first.
pub(super) fn list(c: &Connection) -> Result<Vec<RiskRule>, StoreError> {
    let mut st = c.prepare("SELECT * FROM risk_rules ORDER BY id")?;
    let rows = st
        .query_map([], rule_from)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

fn amount_col(r: &Row<'_>, col: &str) -> rusqlite::Result<Option<Amount>> {
    r.get::<_, Option<i64>>(col)?
        .map(|v| u64::try_from(v).map(Amount).map_err(|_| bad_row(col)))
        .transpose()
}

fn list_col(r: &Row<'_>, col: &str) -> rusqlite::Result<Option<Vec<String>>> {
    r.get::<_, Option<String>>(col)?
        .map(|s| serde_json::from_str(&s).map_err(|_| bad_row(col)))
        .transpose()
}

pub(super) fn rule_from(r: &Row<'_>) -> rusqlite::Result<RiskRule> {
    Ok(RiskRule {
        id: r.get("id")?,
        app_id: r.get("app_id")?,
        api_id: r.get("api_id")?,
        capacity: r.get("capacity")?,
        max_per_txn: amount_col(r, "max_per_txn")?,
        max_per_day: amount_col(r, "max_per_day")?,
        counterparties: list_col(r, "counterparties")?,
        account_types: list_col(r, "account_types")?,
        unusual_multiple: r.get("unusual_multiple")?,
        unusual_min_count: r.get("unusual_min_count")?,
        action: RiskAction::parse(&r.get::<_, String>("action")?)
            .ok_or_else(|| bad_row("action"))?,
        review_window_secs: u64::try_from(r.get::<_, i64>("review_window_secs")?)
            .map_err(|_| bad_row("review_window_secs"))?,
        created_at: r.get("created_at")?,
    })
}

fn review_from(r: &Row<'_>) -> rusqlite::Result<RiskReview> {
    Ok(RiskReview {
        id: r.get("id")?,
        app_id: r.get("app_id")?,
        api_id: r.get("api_id")?,
        amount: amount_col(r, "amount")?.ok_or_else(|| bad_row("amount"))?,
        counterparty: r.get("counterparty")?,
        fingerprint: r.get("fingerprint")?,
        txn_id: r.get("txn_id")?,
        reason: r.get("reason")?,
        window_secs: u64::try_from(r.get::<_, i64>("window_secs")?)
            .map_err(|_| bad_row("window_secs"))?,
        state: ReviewState::parse(&r.get::<_, String>("state")?).ok_or_else(|| bad_row("state"))?,
        created_at: r.get("created_at")?,
        decided_by: r.get("decided_by")?,
        decided_at: r.get("decided_at")?,
        approved_until: r.get("approved_until")?,
        used_txn_id: r.get("used_txn_id")?,
    })
}

fn get(c: &Connection, id: i64) -> Result<RiskReview, StoreError> {
    c.query_row(
        "SELECT * FROM risk_reviews WHERE id = ?1",
        [id],
        review_from,
    )
    .optional()?
    .ok_or_else(|| StoreError::NotFound(format!("review {id}")))
}

/// A held call: an approved, unexpired, unused review of the same call is
/// used (the call goes through); else the pending review of the same call
/// is returned; else a new pending one is created.
pub(super) fn hold(
    tx: &Transaction<'_>,
    call: HeldCall,
    now: i64,
) -> Result<HoldOutcome, StoreError> {
    let approved: Option<i64> = tx
        .query_row(
            "SELECT id FROM risk_reviews WHERE fingerprint = ?1 AND state = 'approved'
               AND approved_until > ?2 ORDER BY id LIMIT 1",
            params![call.fingerprint, now],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(id) = approved {
        tx.execute(
            "UPDATE risk_reviews SET state = 'used', used_txn_id = ?2 WHERE id = ?1",
            params![id, call.txn_id],
        )?;
        return Ok(HoldOutcome::Approved(get(tx, id)?));
    }
    let pending: Option<i64> = tx
        .query_row(
            "SELECT id FROM risk_reviews WHERE fingerprint = ?1 AND state = 'pending'
              ORDER BY id LIMIT 1",
            [&call.fingerprint],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(id) = pending {
        return Ok(HoldOutcome::Pending(get(tx, id)?));
    }
    tx.execute(
        "INSERT INTO risk_reviews (app_id, api_id, amount, counterparty, fingerprint, txn_id,
            reason, window_secs, state, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending', ?9)",
        params![
            call.app_id,
            call.api_id,
            call.amount.0 as i64,
            call.counterparty_masked,
            call.fingerprint,
            call.txn_id,
            call.reason,
            call.window_secs as i64,
            now_rfc3339()
        ],
    )?;
    Ok(HoldOutcome::Pending(get(tx, tx.last_insert_rowid())?))
}

/// Review items, newest first, optionally in one state.
pub(super) fn reviews(
    c: &Connection,
    state: Option<ReviewState>,
) -> Result<Vec<RiskReview>, StoreError> {
    let mut st = c.prepare(
        "SELECT * FROM risk_reviews WHERE ?1 IS NULL OR state = ?1 ORDER BY id DESC LIMIT 1000",
    )?;
    let rows = st
        .query_map([state.map(|s| s.as_str())], review_from)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Approve (the same call is then accepted once until `now` plus the
/// review's window) or reject a pending review; `Conflict` naming `state`
/// if it is not pending.
pub(super) fn decide(
    tx: &Transaction<'_>,
    id: i64,
    approve: bool,
    by: &str,
    now: i64,
) -> Result<RiskReview, StoreError> {
    let cur = get(tx, id)?;
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
        "UPDATE risk_reviews SET state = ?2, decided_by = ?3, decided_at = ?4, approved_until = ?5
          WHERE id = ?1",
        params![
            id,
            state.as_str(),
            by,
            now_rfc3339(),
            approve.then_some(until)
        ],
    )?;
    get(tx, id)
}
