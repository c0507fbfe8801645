//! The app notification URL and the notices to apps (MON-4, KEY-4): one
//! notice per key, with its delivery state. Not catalog changes.

use menshen_model::notice::{AppNotice, NewAppNotice, NoticeState};
use menshen_model::App;
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};

use super::rows::bad_row;
use crate::{now_rfc3339, StoreError};

/// Migration: the apps' notification URL and the notices table.
pub(super) const MIGRATION: &str = r#"
    ALTER TABLE apps ADD COLUMN notify_url TEXT;
    CREATE TABLE app_notices (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        dedup_key TEXT NOT NULL UNIQUE,
        app_id TEXT NOT NULL REFERENCES apps(app_id),
        kind TEXT NOT NULL,
        body TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending','delivered','failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX app_notices_app ON app_notices(app_id, id);
    CREATE INDEX app_notices_state ON app_notices(state, id);
    "#;

fn notice_from(r: &Row<'_>) -> rusqlite::Result<AppNotice> {
    Ok(AppNotice {
        id: r.get("id")?,
        key: r.get("dedup_key")?,
        app_id: r.get("app_id")?,
        kind: r.get("kind")?,
        body: serde_json::from_str(&r.get::<_, String>("body")?).map_err(|_| bad_row("body"))?,
        state: NoticeState::parse(&r.get::<_, String>("state")?).ok_or_else(|| bad_row("state"))?,
        attempts: r.get("attempts")?,
        last_error: r.get("last_error")?,
        created_at: r.get("created_at")?,
        updated_at: r.get("updated_at")?,
    })
}

fn get(c: &Connection, id: i64) -> Result<AppNotice, StoreError> {
    c.query_row("SELECT * FROM app_notices WHERE id = ?1", [id], notice_from)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("notice {id}")))
}

/// Set (or clear) an app's notification URL.
pub(super) fn set_notify_url(
    tx: &Transaction<'_>,
    app_id: &str,
    url: Option<&str>,
) -> Result<App, StoreError> {
    if tx.execute(
        "UPDATE apps SET notify_url = ?1 WHERE app_id = ?2",
        params![url, app_id],
    )? == 0
    {
        return Err(StoreError::NotFound(format!("app `{app_id}`")));
    }
    super::catalog::get_app(tx, app_id)
}

/// Create the notice of `n.key` unless one exists (`false`: it did).
pub(super) fn add(tx: &Transaction<'_>, n: &NewAppNotice) -> Result<(AppNotice, bool), StoreError> {
    let cur: Option<i64> = tx
        .query_row(
            "SELECT id FROM app_notices WHERE dedup_key = ?1",
            [&n.key],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(id) = cur {
        return Ok((get(tx, id)?, false));
    }
    let now = now_rfc3339();
    tx.execute(
        "INSERT INTO app_notices (dedup_key, app_id, kind, body, state, attempts, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, 'pending', 0, ?5, ?5)",
        params![n.key, n.app_id, n.kind, n.body.to_string(), now],
    )?;
    Ok((get(tx, tx.last_insert_rowid())?, true))
}

/// Count one attempt and set the state (and the last error).
pub(super) fn attempt(
    tx: &Transaction<'_>,
    id: i64,
    state: NoticeState,
    error: Option<&str>,
) -> Result<AppNotice, StoreError> {
    if tx.execute(
        "UPDATE app_notices SET attempts = attempts + 1, state = ?2,
                last_error = COALESCE(?3, last_error), updated_at = ?4 WHERE id = ?1",
        params![id, state.as_str(), error, now_rfc3339()],
    )? == 0
    {
        return Err(StoreError::NotFound(format!("notice {id}")));
    }
    get(tx, id)
}

/// Notices, newest first (at most 1000), of one app and/or in one state.
pub(super) fn list(
    c: &Connection,
    app_id: Option<&str>,
    state: Option<NoticeState>,
) -> Result<Vec<AppNotice>, StoreError> {
    let mut st = c.prepare(
        "SELECT * FROM app_notices WHERE (?1 IS NULL OR app_id = ?1) AND (?2 IS NULL OR state = ?2)
          ORDER BY id DESC LIMIT 1000",
    )?;
    let rows = st
        .query_map(params![app_id, state.map(|s| s.as_str())], notice_from)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}
