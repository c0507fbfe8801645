//! The API catalog: APIs, the U_API_ID registry (UID-2: codes never reused)
//! and grants. Plain synchronous SQL; `super` runs it on a blocking thread.

use menshen_model::{Api, Grant, Lifecycle, ValidationError};
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::catalog::app_exists;
use super::rows::{api_from, grant_from};
use crate::{now_rfc3339, StoreError};

/// Builds a U_API_ID from its sequence number.
pub(super) type MakeUApi = Box<dyn FnOnce(u32) -> Result<String, ValidationError> + Send>;

pub(super) fn get_api(c: &Connection, api_id: &str) -> Result<Api, StoreError> {
    c.query_row("SELECT * FROM apis WHERE api_id = ?1", [api_id], api_from)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("API `{api_id}`")))
}

/// `uapi_key` is (institution, type, category).
pub(super) fn insert_api(
    tx: &Transaction<'_>,
    mut api: Api,
    uapi_key: (&str, &str, u8),
    make_uapi: MakeUApi,
) -> Result<Api, StoreError> {
    let (inst, typ, cat) = uapi_key;
    let exists: i64 = tx.query_row(
        "SELECT COUNT(*) FROM apis WHERE api_id = ?1",
        [&api.api_id],
        |r| r.get(0),
    )?;
    if exists > 0 {
        return Err(StoreError::Conflict(ValidationError::new(
            "api_id",
            format!("`{}` already exists; API_IDs are unique", api.api_id),
        )));
    }
    let clash: Option<String> = tx
        .query_row(
            "SELECT api_id FROM apis WHERE method = ?1 AND path = ?2 AND lifecycle NOT IN ('offline','archived')",
            params![api.method.as_str(), api.path],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(other) = clash {
        return Err(StoreError::Conflict(ValidationError::new(
            "path",
            format!(
                "{} {} is already served by API `{other}`",
                api.method, api.path
            ),
        )));
    }
    // Codes are never reused: the registry keeps cancelled ones.
    let last: Option<i64> = tx.query_row(
        "SELECT MAX(sequence) FROM uapi_registry WHERE institution = ?1 AND type = ?2 AND category = ?3",
        params![inst, typ, cat],
        |r| r.get(0),
    )?;
    let next = last.unwrap_or(0) + 1;
    if next > 999_999 {
        return Err(StoreError::Conflict(ValidationError::new(
            "category",
            "no U_API_ID sequence numbers left in this institution/type/category",
        )));
    }
    let code = make_uapi(next as u32)?;
    tx.execute(
        "INSERT INTO uapi_registry (u_api_id, institution, type, category, sequence, api_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![code, inst, typ, cat, next, api.api_id, now_rfc3339()],
    )?;
    api.u_api_id = code;
    let integrations: Vec<&str> = api.integrations.iter().map(|i| i.as_str()).collect();
    tx.execute(
        "INSERT INTO apis (api_id, version, name, method, path, upstream, level, integrations, owner, lifecycle, u_api_id, created_at, controls)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        params![api.api_id, api.version, api.name, api.method.as_str(), api.path, api.upstream, api.level.as_str(),
                integrations.join(","), api.owner, api.lifecycle.as_str(), api.u_api_id, api.created_at,
                serde_json::to_string(&api.controls).map_err(|e| StoreError::Backend(e.to_string()))?],
    )?;
    Ok(api)
}

pub(super) fn list_apis(c: &Connection) -> Result<Vec<Api>, StoreError> {
    let mut st = c.prepare("SELECT * FROM apis ORDER BY rowid")?;
    let rows = st
        .query_map([], api_from)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub(super) fn set_api_lifecycle(
    tx: &Transaction<'_>,
    id: &str,
    state: Lifecycle,
) -> Result<Api, StoreError> {
    let api = get_api(tx, id)?;
    if matches!(api.lifecycle, Lifecycle::Offline | Lifecycle::Archived)
        && !matches!(state, Lifecycle::Archived)
    {
        return Err(StoreError::Conflict(ValidationError::new(
            "state",
            format!(
                "API `{id}` is {}; its U_API_ID is cancelled and it can only be archived",
                api.lifecycle
            ),
        )));
    }
    tx.execute(
        "UPDATE apis SET lifecycle = ?1 WHERE api_id = ?2",
        params![state.as_str(), id],
    )?;
    if matches!(state, Lifecycle::Offline | Lifecycle::Archived) {
        tx.execute(
            "UPDATE uapi_registry SET cancelled = 1 WHERE u_api_id = ?1",
            [&api.u_api_id],
        )?;
        tx.execute("DELETE FROM grants WHERE api_id = ?1", [id])?;
    }
    get_api(tx, id)
}

pub(super) fn uapi_status(c: &Connection, id: &str) -> Result<Option<bool>, StoreError> {
    Ok(c.query_row(
        "SELECT cancelled FROM uapi_registry WHERE u_api_id = ?1",
        [id],
        |r| r.get::<_, i64>(0),
    )
    .optional()?
    .map(|v| v != 0))
}

pub(super) fn add_grant(tx: &Transaction<'_>, app: &str, api: &str) -> Result<Grant, StoreError> {
    app_exists(tx, app)?;
    let a = get_api(tx, api)?;
    if matches!(
        a.lifecycle,
        Lifecycle::Offline | Lifecycle::Archived | Lifecycle::Terminated
    ) {
        return Err(StoreError::Conflict(ValidationError::new(
            "api_id",
            format!("API `{api}` is {} and cannot be granted", a.lifecycle),
        )));
    }
    let g = Grant {
        app_id: app.to_string(),
        api_id: api.to_string(),
        created_at: now_rfc3339(),
        clearing: false,
        clearing_approved_by: None,
        clearing_approved_at: None,
    };
    let n = tx.execute(
        "INSERT OR IGNORE INTO grants (app_id, api_id, created_at) VALUES (?1, ?2, ?3)",
        params![g.app_id, g.api_id, g.created_at],
    )?;
    if n == 0 {
        return Err(StoreError::Conflict(ValidationError::new(
            "api_id",
            format!("app `{app}` already holds a grant for `{api}`"),
        )));
    }
    Ok(g)
}

/// Approve (or withdraw) a grant for clearing/reconciliation (CONF-3),
/// naming who decided and when.
pub(super) fn set_grant_clearing(
    tx: &Transaction<'_>,
    app: &str,
    api: &str,
    clearing: bool,
    by: &str,
) -> Result<Grant, StoreError> {
    let n = tx.execute(
        "UPDATE grants SET clearing = ?3, clearing_approved_by = ?4, clearing_approved_at = ?5
         WHERE app_id = ?1 AND api_id = ?2",
        params![app, api, i64::from(clearing), by, now_rfc3339()],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("grant of `{api}` to `{app}`")));
    }
    let g = tx.query_row(
        "SELECT * FROM grants WHERE app_id = ?1 AND api_id = ?2",
        params![app, api],
        grant_from,
    )?;
    Ok(g)
}

/// Replace an API's controls, checked against its level.
pub(super) fn set_api_controls(
    tx: &Transaction<'_>,
    id: &str,
    controls: &menshen_model::ApiControls,
) -> Result<Api, StoreError> {
    let api = get_api(tx, id)?;
    controls.validate_for(api.level)?;
    tx.execute(
        "UPDATE apis SET controls = ?1 WHERE api_id = ?2",
        params![
            serde_json::to_string(controls).map_err(|e| StoreError::Backend(e.to_string()))?,
            id
        ],
    )?;
    get_api(tx, id)
}

pub(super) fn remove_grant(tx: &Transaction<'_>, app: &str, api: &str) -> Result<(), StoreError> {
    let n = tx.execute(
        "DELETE FROM grants WHERE app_id = ?1 AND api_id = ?2",
        params![app, api],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("grant of `{api}` to `{app}`")));
    }
    Ok(())
}

pub(super) fn list_grants(c: &Connection, app: Option<&str>) -> Result<Vec<Grant>, StoreError> {
    let mut st = c.prepare(
        "SELECT * FROM grants WHERE (?1 IS NULL OR app_id = ?1) ORDER BY app_id, api_id",
    )?;
    let rows = st
        .query_map([&app], grant_from)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}
