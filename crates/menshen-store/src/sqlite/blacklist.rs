//! The app blacklist (TRF-3): listing and delisting apps, alone or in bulk,
//! each in one transaction with its history rows. A catalog change (it
//! bumps the version), so every gateway enforces it from its next snapshot
//! like a suspension (`apps.status`).

use menshen_model::{AppStatus, BlacklistAction, BlacklistEntry, BlacklistEvent, ValidationError};
use rusqlite::{params, Connection, Transaction};

use crate::{now_rfc3339, StoreError};

/// The field naming entry `i` of a bulk request (`entries[i].field`), so
/// the caller can name the line.
fn field(i: usize, name: &str) -> String {
    format!("entries[{i}].{name}")
}

/// List (`Add`) or delist (`Remove`) every app of `entries`, all or none.
/// Refused, naming the entry: an unknown app, an exited app, an app listed
/// twice in the request, delisting an app that is not blacklisted.
/// Listing an app already blacklisted keeps it listed and adds the new
/// reason to its history. Delisting makes the app active.
pub(super) fn apply(
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
        let status: Option<String> = tx
            .query_row(
                "SELECT status FROM apps WHERE app_id = ?1",
                [&e.app_id],
                |r| r.get(0),
            )
            .map(Some)
            .or_else(|err| match err {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                other => Err(other),
            })?;
        let Some(status) = status else {
            return Err(StoreError::Invalid(ValidationError::new(
                field(i, "app_id"),
                format!("no app `{}`", e.app_id),
            )));
        };
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
            "UPDATE apps SET status = ?1 WHERE app_id = ?2",
            params![next.as_str(), e.app_id],
        )?;
        tx.execute(
            "INSERT INTO app_blacklist_events (app_id, action, reason, actor, at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![e.app_id, action.as_str(), e.reason.trim(), actor, at],
        )?;
        out.push(BlacklistEvent {
            id: tx.last_insert_rowid(),
            app_id: e.app_id.clone(),
            action,
            reason: e.reason.trim().to_string(),
            actor: actor.to_string(),
            at: at.clone(),
        });
    }
    Ok(out)
}

/// The history, oldest first, of one app or of all.
pub(super) fn history(
    c: &Connection,
    app_id: Option<&str>,
) -> Result<Vec<BlacklistEvent>, StoreError> {
    let mut st = c.prepare(
        "SELECT id, app_id, action, reason, actor, at FROM app_blacklist_events
          WHERE ?1 IS NULL OR app_id = ?1 ORDER BY id",
    )?;
    let rows = st
        .query_map([app_id], |r| {
            let action: String = r.get(2)?;
            Ok(BlacklistEvent {
                id: r.get(0)?,
                app_id: r.get(1)?,
                action: BlacklistAction::parse(&action).ok_or_else(|| {
                    rusqlite::Error::InvalidColumnType(
                        2,
                        "action".into(),
                        rusqlite::types::Type::Text,
                    )
                })?,
                reason: r.get(3)?,
                actor: r.get(4)?,
                at: r.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}
