//! The app notification URL and the notices to apps (MON-4, KEY-4) on
//! PostgreSQL, shared by every node: the same rules as
//! `sqlite/notices.rs`. A notice added on several nodes at once is one
//! notice: the key is unique and the insert does nothing on conflict.

use menshen_model::notice::{AppNotice, NewAppNotice, NoticeState};
use menshen_model::App;
use tokio_postgres::{GenericClient, Row, Transaction};

use super::rows::{self, bad};
use crate::{now_rfc3339, StoreError};

fn notice(r: &Row) -> Result<AppNotice, StoreError> {
    let body: String = r.try_get("body")?;
    let state: String = r.try_get("state")?;
    Ok(AppNotice {
        id: r.try_get("id")?,
        key: r.try_get("dedup_key")?,
        app_id: r.try_get("app_id")?,
        kind: r.try_get("kind")?,
        body: serde_json::from_str(&body).map_err(|_| bad("body"))?,
        state: NoticeState::parse(&state).ok_or_else(|| bad("state"))?,
        attempts: r.try_get("attempts")?,
        last_error: r.try_get("last_error")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

async fn get<C: GenericClient>(c: &C, id: i64) -> Result<AppNotice, StoreError> {
    match c
        .query_opt("SELECT * FROM app_notices WHERE id = $1", &[&id])
        .await?
    {
        Some(r) => notice(&r),
        None => Err(StoreError::NotFound(format!("notice {id}"))),
    }
}

pub(super) async fn set_notify_url(
    tx: &Transaction<'_>,
    app_id: &str,
    url: Option<&str>,
) -> Result<App, StoreError> {
    let n = tx
        .execute(
            "UPDATE apps SET notify_url = $1 WHERE app_id = $2",
            &[&url, &app_id],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("app `{app_id}`")));
    }
    super::catalog::get_app(tx, app_id).await
}

pub(super) async fn add(
    tx: &Transaction<'_>,
    n: &NewAppNotice,
) -> Result<(AppNotice, bool), StoreError> {
    let now = now_rfc3339();
    let body = n.body.to_string();
    let inserted = tx
        .query_opt(
            "INSERT INTO app_notices (dedup_key, app_id, kind, body, state, attempts, created_at, updated_at)
             VALUES ($1, $2, $3, $4, 'pending', 0, $5, $5)
             ON CONFLICT (dedup_key) DO NOTHING RETURNING id",
            &[&n.key, &n.app_id, &n.kind, &body, &now],
        )
        .await?;
    if let Some(r) = inserted {
        let id: i64 = r.try_get(0)?;
        return Ok((get(tx, id).await?, true));
    }
    let r = tx
        .query_one("SELECT * FROM app_notices WHERE dedup_key = $1", &[&n.key])
        .await?;
    Ok((notice(&r)?, false))
}

pub(super) async fn attempt(
    tx: &Transaction<'_>,
    id: i64,
    state: NoticeState,
    error: Option<&str>,
) -> Result<AppNotice, StoreError> {
    let n = tx
        .execute(
            "UPDATE app_notices SET attempts = attempts + 1, state = $2,
                    last_error = COALESCE($3, last_error), updated_at = $4 WHERE id = $1",
            &[&id, &state.as_str(), &error, &now_rfc3339()],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("notice {id}")));
    }
    get(tx, id).await
}

pub(super) async fn list<C: GenericClient>(
    c: &C,
    app_id: Option<&str>,
    state: Option<NoticeState>,
) -> Result<Vec<AppNotice>, StoreError> {
    rows::all(
        c.query(
            "SELECT * FROM app_notices WHERE ($1::TEXT IS NULL OR app_id = $1)
               AND ($2::TEXT IS NULL OR state = $2) ORDER BY id DESC LIMIT 1000",
            &[&app_id, &state.map(|s| s.as_str())],
        )
        .await?,
        notice,
    )
}
