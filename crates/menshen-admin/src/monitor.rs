//! Monitoring on the admin listener (MON-1): `/metrics` (Prometheus text,
//! behind the admin token or the read-only scrape token), `/readyz` (open:
//! ready only when the snapshot is loaded, the audit log writable and the
//! node serving) and the statistics under `/v1/stats/...` (admin token).

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use menshen_metrics::{Metrics, Subject};
use serde::Serialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::{token_hash, AdminError, AdminState};

/// Why the node is or is not ready.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Readiness {
    /// The gateway's snapshot of the catalog is built.
    pub snapshot_loaded: bool,
    /// The catalog version it was built from.
    pub snapshot_version: i64,
    /// The audit log's last write succeeded.
    pub audit_writable: bool,
    /// The node finished starting and is not stopping.
    pub serving: bool,
}

impl Readiness {
    /// Whether every check passes.
    pub fn ready(&self) -> bool {
        self.snapshot_loaded && self.audit_writable && self.serving
    }
}

/// What the node gives the admin API for monitoring.
#[derive(Clone)]
pub struct Monitor {
    /// The node's counters.
    pub metrics: Arc<Metrics>,
    /// The readiness checks, evaluated on each `/readyz`.
    pub readiness: Arc<dyn Fn() -> Readiness + Send + Sync>,
    /// SHA-256 of the read-only scrape token (`admin.metrics_token_sha256`):
    /// it opens `/metrics` and nothing else.
    pub scrape_token_sha256: Option<[u8; 32]>,
}

fn monitor(st: &AdminState) -> Result<&Monitor, AdminError> {
    st.monitor
        .as_ref()
        .ok_or_else(|| AdminError::NotFound("monitoring".into()))
}

/// `GET /readyz`: 200 when ready, else 503; the checks either way.
pub async fn readyz(State(st): State<AdminState>) -> Response {
    let Some(m) = &st.monitor else {
        return (
            http::StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not_ready", "checks": null})),
        )
            .into_response();
    };
    let r = (m.readiness)();
    let (code, status) = if r.ready() {
        (http::StatusCode::OK, "ready")
    } else {
        (http::StatusCode::SERVICE_UNAVAILABLE, "not_ready")
    };
    (code, Json(json!({"status": status, "checks": r}))).into_response()
}

/// `GET /metrics`: the exposition, for the scrape token or an admin token.
pub async fn metrics(State(st): State<AdminState>, req: Request) -> Response {
    let m = match monitor(&st) {
        Ok(m) => m,
        Err(e) => return e.into_response(),
    };
    let token = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = token else {
        return AdminError::Unauthorized.into_response();
    };
    let hash = token_hash(token);
    let scrape_ok = m
        .scrape_token_sha256
        .is_some_and(|h| bool::from(h.ct_eq(&hash)));
    if !scrape_ok {
        match st.cp.store.find_admin_token(&hash).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                tracing::warn!("admin API: /metrics refused: wrong token");
                return AdminError::Unauthorized.into_response();
            }
            Err(e) => return AdminError::from(e).into_response(),
        }
    }
    let metrics = m.metrics.clone();
    // Encoding walks every shard: off the async workers.
    let body = match tokio::task::spawn_blocking(move || metrics.encode()).await {
        Ok(b) => b,
        Err(e) => {
            return AdminError::Internal(format!("metrics encoding failed: {e}")).into_response()
        }
    };
    ([(http::header::CONTENT_TYPE, Metrics::CONTENT_TYPE)], body).into_response()
}

/// `GET /v1/stats/apps`: every app with calls in the last day.
pub async fn stats_apps(State(st): State<AdminState>) -> Result<Response, AdminError> {
    let stats = monitor(&st)?.metrics.stats();
    Ok(Json(json!({ "apps": stats.apps() })).into_response())
}

/// `GET /v1/stats/apis`: every API with calls in the last day.
pub async fn stats_apis(State(st): State<AdminState>) -> Result<Response, AdminError> {
    let stats = monitor(&st)?.metrics.stats();
    Ok(Json(json!({ "apis": stats.apis() })).into_response())
}

/// `GET /v1/stats/apps/{app_id}`: one app (zeros when it made no call).
pub async fn stats_app(
    State(st): State<AdminState>,
    Path(app_id): Path<String>,
) -> Result<Response, AdminError> {
    let stats = monitor(&st)?.metrics.stats();
    let s = Subject::app(&app_id).ok_or_else(|| AdminError::NotFound("app".into()))?;
    Ok(Json(stats.subject(s)).into_response())
}

/// `GET /v1/stats/apis/{api_id}`: one API (zeros when it had no call).
pub async fn stats_api(
    State(st): State<AdminState>,
    Path(api_id): Path<String>,
) -> Result<Response, AdminError> {
    let stats = monitor(&st)?.metrics.stats();
    let s = Subject::api(&api_id).ok_or_else(|| AdminError::NotFound("api".into()))?;
    Ok(Json(stats.subject(s)).into_response())
}
