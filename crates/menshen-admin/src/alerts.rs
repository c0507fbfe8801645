//! Alerts to operators (MON-2): `/v1/alerts` lists them (by state),
//! `/v1/alerts/{id}/ack` and `/v1/alerts/{id}/resolve` follow them up,
//! naming the admin token's owner.

use crate::extract::{Path, Query};
use axum::extract::State;
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

/// `GET /v1/baselines/{app_id}` (MON-3): the app's learned baselines as
/// last saved by the node(s): its client networks and, per API and
/// hour-of-week slot that has learned anything, the volume per window
/// (mean, sd), failure rate and latency. 404 if nothing was learned.
pub async fn baselines(State(st): State<AdminState>, Path(app_id): Path<String>) -> R {
    use menshen_model::baseline::{slot_name, ApiBaseline, AppNetworks, NETWORKS};
    let stored = st.cp.store.load_baselines(Some(&app_id)).await?;
    if stored.is_empty() {
        return Err(AdminError::NotFound(format!("baselines of app {app_id}")));
    }
    let mut networks = serde_json::Value::Null;
    let mut slots = Vec::new();
    let mut updated_at = 0;
    for b in stored {
        updated_at = updated_at.max(b.updated_at);
        if b.api_id == NETWORKS {
            if let Ok(n) = serde_json::from_value::<AppNetworks>(b.model) {
                networks = serde_json::json!({
                    "first_at": n.first_at,
                    "networks": n.networks.into_iter()
                        .map(|(net, last)| serde_json::json!({"network": net, "last_seen": last}))
                        .collect::<Vec<_>>(),
                });
            }
            continue;
        }
        let Ok(m) = serde_json::from_value::<ApiBaseline>(b.model) else {
            continue;
        };
        for (i, s) in m.slots.iter().enumerate().filter(|(_, s)| s.volume.n > 0) {
            let r = |x: f64| (x * 100.0).round() / 100.0;
            slots.push(serde_json::json!({
                "api_id": b.api_id,
                "level": m.level,
                "slot": i,
                "when": slot_name(i),
                "windows": s.volume.n,
                "calls_mean": r(s.volume.mean),
                "calls_sd": r(s.volume.sd()),
                "failure_mean": r(s.failure.mean),
                "latency_ms_mean": r(s.latency_ms.mean),
                "latency_ms_sd": r(s.latency_ms.sd()),
                "window_secs": m.window_secs,
            }));
        }
    }
    Ok(Json(serde_json::json!({
        "app_id": app_id,
        "updated_at": updated_at,
        "networks": networks,
        "slots": slots,
    }))
    .into_response())
}
