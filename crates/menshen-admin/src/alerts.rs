//! Alerts to operators (MON-2): `/v1/alerts` lists them (by state),
//! `/v1/alerts/{id}/ack` and `/v1/alerts/{id}/resolve` follow them up,
//! naming the admin token's owner.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::Json;
use menshen_model::alert::AlertState;
use menshen_model::ValidationError;
use serde::Deserialize;

use crate::{AdminError, AdminState};

type R = Result<axum::response::Response, AdminError>;

#[derive(Deserialize)]
pub struct AlertQuery {
    state: Option<String>,
}

pub async fn list(State(st): State<AdminState>, Query(q): Query<AlertQuery>) -> R {
    let state = match q.state.as_deref() {
        None | Some("") | Some("all") => None,
        Some(s) => Some(AlertState::parse(s).ok_or_else(|| {
            AdminError::Invalid(ValidationError::new(
                "state",
                format!("one of {}, or all", AlertState::names()),
            ))
        })?),
    };
    Ok(Json(st.cp.store.list_alerts(state).await?).into_response())
}

async fn set(st: AdminState, headers: HeaderMap, id: i64, to: AlertState) -> R {
    let by = crate::risk::officer(&st, &headers).await?;
    let a = st.cp.store.set_alert_state(id, to, &by).await?;
    tracing::info!(id, state = %to, by = %by, "alert state changed");
    Ok(Json(a).into_response())
}

pub async fn ack(State(st): State<AdminState>, headers: HeaderMap, Path(id): Path<i64>) -> R {
    set(st, headers, id, AlertState::Acknowledged).await
}

pub async fn resolve(State(st): State<AdminState>, headers: HeaderMap, Path(id): Path<i64>) -> R {
    set(st, headers, id, AlertState::Resolved).await
}
