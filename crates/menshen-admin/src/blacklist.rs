//! The app blacklist (TRF-3): list and delist an app with a reason, bulk
//! import (CSV or JSON, all or nothing, the bad line named), the history.
//! Enforced like a suspension: `apps.status = blacklisted`, refused by the
//! gateway's `app_status` stage on every node from its next snapshot.

use crate::extract::Path;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use bytes::Bytes;
use menshen_model::{BlacklistAction, BlacklistEntry, ValidationError};
use menshen_store::StoreError;
use serde::Deserialize;
use serde_json::json;

use crate::handlers::parse;
use crate::{Actor, AdminError, AdminState};

type R = Result<axum::response::Response, AdminError>;

/// Most apps one import may name.
pub const IMPORT_MAX: usize = 10_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    reason: String,
}

async fn one(
    st: &AdminState,
    app_id: String,
    body: &Bytes,
    actor: &str,
    action: BlacklistAction,
) -> R {
    let b: ReasonBody = parse(body)?;
    let entry = BlacklistEntry {
        app_id: app_id.clone(),
        reason: b.reason,
    };
    let events = st
        .cp
        .store
        .blacklist_apps(&[entry], action, actor)
        .await
        .map_err(|e| unindex(e, &[]))?;
    let app = st.cp.store.get_app(&app_id).await?;
    tracing::warn!(%app_id, action = action.as_str(), %actor, "app blacklist changed (TRF-3)");
    Ok(Json(json!({ "app": app, "event": events.first() })).into_response())
}

/// `POST /v1/apps/{app_id}/blacklist` `{"reason": "..."}`.
pub async fn blacklist_app(
    State(st): State<AdminState>,
    Path(app_id): Path<String>,
    axum::Extension(actor): axum::Extension<Actor>,
    body: Bytes,
) -> R {
    one(&st, app_id, &body, &actor.0, BlacklistAction::Add).await
}

/// `POST /v1/apps/{app_id}/unblacklist` `{"reason": "..."}`: the app is
/// active again.
pub async fn unblacklist_app(
    State(st): State<AdminState>,
    Path(app_id): Path<String>,
    axum::Extension(actor): axum::Extension<Actor>,
    body: Bytes,
) -> R {
    one(&st, app_id, &body, &actor.0, BlacklistAction::Remove).await
}

/// `GET /v1/apps/{app_id}/blacklist`: the app's history, oldest first.
pub async fn app_history(State(st): State<AdminState>, Path(app_id): Path<String>) -> R {
    let app = st.cp.store.get_app(&app_id).await?;
    let events = st.cp.store.blacklist_history(Some(&app_id)).await?;
    Ok(
        Json(json!({ "app_id": app.app_id, "status": app.status, "events": events }))
            .into_response(),
    )
}

/// `GET /v1/blacklist`: the apps blacklisted now and the whole history.
pub async fn list(State(st): State<AdminState>) -> R {
    let apps = st.cp.store.list_apps().await?;
    let listed: Vec<String> = apps
        .into_iter()
        .filter(|a| a.status == menshen_model::AppStatus::Blacklisted)
        .map(|a| a.app_id)
        .collect();
    let events = st.cp.store.blacklist_history(None).await?;
    Ok(Json(json!({ "blacklisted": listed, "events": events })).into_response())
}

/// `POST /v1/blacklist/import`: a CSV (`app_id,reason` per line, an
/// optional `app_id,reason` header, blank lines skipped; the reason is
/// the rest of the line) or a JSON array of `{"app_id", "reason"}`. All
/// or nothing: the first bad line refuses the whole import, naming it
/// (`field` = `line N`).
pub async fn import(
    State(st): State<AdminState>,
    axum::Extension(actor): axum::Extension<Actor>,
    headers: http::HeaderMap,
    body: Bytes,
) -> R {
    let csv = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/csv") || v.starts_with("text/plain"));
    let (entries, lines) = if csv {
        parse_csv(&body)?
    } else {
        parse_json(&body)?
    };
    let events = st
        .cp
        .store
        .blacklist_apps(&entries, BlacklistAction::Add, &actor.0)
        .await
        .map_err(|e| unindex(e, &lines))?;
    tracing::warn!(apps = events.len(), actor = %actor.0, "apps blacklisted by import (TRF-3)");
    Ok(Json(json!({ "imported": events.len(), "events": events })).into_response())
}

fn bad(line: &str, message: impl Into<String>) -> AdminError {
    AdminError::Invalid(ValidationError::new(line, message))
}

/// Parse a CSV import: the entries and the name of each one's line.
pub fn parse_csv(body: &[u8]) -> Result<(Vec<BlacklistEntry>, Vec<String>), AdminError> {
    let text = std::str::from_utf8(body).map_err(|_| bad("body", "the CSV must be UTF-8"))?;
    let mut entries = Vec::new();
    let mut lines = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let name = format!("line {}", i + 1);
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        let Some((app, reason)) = line.split_once(',') else {
            return Err(bad(&name, "write `app_id,reason`"));
        };
        let (app, reason) = (app.trim(), reason.trim());
        if i == 0 && app.eq_ignore_ascii_case("app_id") && reason.eq_ignore_ascii_case("reason") {
            continue;
        }
        let reason = reason
            .strip_prefix('"')
            .and_then(|r| r.strip_suffix('"'))
            .unwrap_or(reason);
        push(&mut entries, &mut lines, name, app, reason)?;
    }
    if entries.is_empty() {
        return Err(bad("body", "no app in the import"));
    }
    Ok((entries, lines))
}

fn parse_json(body: &Bytes) -> Result<(Vec<BlacklistEntry>, Vec<String>), AdminError> {
    let items: Vec<serde_json::Value> = parse(body)?;
    let mut entries = Vec::new();
    let mut lines = Vec::new();
    for (i, v) in items.into_iter().enumerate() {
        let name = format!("line {}", i + 1);
        let e: BlacklistEntry = serde_json::from_value(v).map_err(|e| {
            bad(
                &name,
                format!("{e}; write {{\"app_id\": \"...\", \"reason\": \"...\"}}"),
            )
        })?;
        push(&mut entries, &mut lines, name, &e.app_id, &e.reason)?;
    }
    if entries.is_empty() {
        return Err(bad("body", "no app in the import"));
    }
    Ok((entries, lines))
}

fn push(
    entries: &mut Vec<BlacklistEntry>,
    lines: &mut Vec<String>,
    name: String,
    app: &str,
    reason: &str,
) -> Result<(), AdminError> {
    if entries.len() >= IMPORT_MAX {
        return Err(bad(&name, format!("at most {IMPORT_MAX} apps per import")));
    }
    let e = BlacklistEntry {
        app_id: app.to_string(),
        reason: reason.to_string(),
    };
    e.validate()
        .map_err(|v| bad(&name, format!("{}: {}", v.field, v.message)))?;
    entries.push(e);
    lines.push(name);
    Ok(())
}

/// The store names entry `i` (`entries[i].field`): name its line instead.
fn unindex(e: StoreError, lines: &[String]) -> AdminError {
    let rename = |v: ValidationError| {
        let named = v
            .field
            .strip_prefix("entries[")
            .and_then(|r| r.split_once("]."))
            .and_then(|(i, f)| Some((lines.get(i.parse::<usize>().ok()?)?, f)));
        match named {
            Some((line, f)) => ValidationError::new(line.clone(), format!("{f}: {}", v.message)),
            // One app (no lines): the field itself.
            None => match v.field.strip_prefix("entries[0].") {
                Some(f) => ValidationError::new(f, v.message),
                None => v,
            },
        }
    };
    match e {
        StoreError::Invalid(v) => AdminError::Invalid(rename(v)),
        StoreError::Conflict(v) => AdminError::Conflict(rename(v)),
        other => AdminError::from(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trf_3_csv_import_names_the_bad_line() {
        let (e, l) =
            parse_csv(b"app_id,reason\nA1, fraud, reported\n\nA2,\"mule account\"\n").unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(
            (e[0].app_id.as_str(), e[0].reason.as_str()),
            ("A1", "fraud, reported")
        );
        assert_eq!(e[1].reason, "mule account");
        assert_eq!(l, ["line 2", "line 4"]);
        let err = parse_csv(b"A1,ok\nA2\n").unwrap_err();
        assert!(
            matches!(&err, AdminError::Invalid(v) if v.field == "line 2"),
            "{err:?}"
        );
        let err = parse_csv(b"A1,ok\nA2,  \n").unwrap_err();
        assert!(
            matches!(&err, AdminError::Invalid(v) if v.field == "line 2" && v.message.contains("reason")),
            "{err:?}"
        );
        assert!(parse_csv(b"\n\n").is_err());
    }
}
