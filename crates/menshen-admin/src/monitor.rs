//! Monitoring on the admin listener (MON-1): `/metrics` (Prometheus text,
//! behind the admin token or the read-only scrape token), `/readyz` (open:
//! ready only when the snapshot is loaded, the audit log writable and the
//! node serving) and the statistics under `/v1/stats/...` (admin token).
//!
//! Statistics are this node's own counters on one node (`"scope": "node"`)
//! and, in a cluster (`store.url` = PostgreSQL), summed across every node
//! (`"scope": "cluster"`): this node's counters at once, the others' as they
//! last published them (`nodes[].published_at`; see
//! `menshen_metrics::cluster`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::extract::Path;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use menshen_metrics::{ClusterView, Metrics, PeerNode, Subject, SubjectStats};
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
    /// In a cluster: reads the other nodes' published statistics (the
    /// figures are then summed across nodes); `None` on one node.
    pub cluster: Option<ClusterSource>,
}

/// Reads the other nodes' published statistics and the nodes' last
/// publications (this node included) from the cluster store.
pub type ClusterSource = Arc<
    dyn Fn() -> Pin<Box<dyn Future<Output = Result<ClusterView, AdminError>> + Send>> + Send + Sync,
>;

/// The cluster's view, if in a cluster.
async fn cluster_view(m: &Monitor) -> Result<Option<ClusterView>, AdminError> {
    match &m.cluster {
        Some(f) => Ok(Some(f().await?)),
        None => Ok(None),
    }
}

/// `scope` and, in a cluster, `nodes` beside the figures.
fn scoped(mut v: serde_json::Value, nodes: Option<Vec<PeerNode>>) -> Response {
    if let Some(o) = v.as_object_mut() {
        match nodes {
            Some(n) => {
                o.insert("scope".into(), json!("cluster"));
                o.insert("nodes".into(), json!(n));
            }
            None => {
                o.insert("scope".into(), json!("node"));
            }
        }
    }
    Json(v).into_response()
}

async fn list(st: &AdminState, apps: bool) -> Result<Response, AdminError> {
    let m = monitor(st)?;
    let stats = m.metrics.stats();
    let key = if apps { "apps" } else { "apis" };
    let view = cluster_view(m).await?;
    let (rows, nodes): (Vec<SubjectStats>, _) = match view {
        Some(view) => (stats.cluster_list(&view, apps), Some(view.nodes)),
        None if apps => (stats.apps(), None),
        None => (stats.apis(), None),
    };
    Ok(scoped(json!({ key: rows }), nodes))
}

async fn one(st: &AdminState, apps: bool, id: &str) -> Result<Response, AdminError> {
    let m = monitor(st)?;
    let stats = m.metrics.stats();
    let what = if apps { "app" } else { "api" };
    if let Some(view) = cluster_view(m).await? {
        // Another node may have counted calls of an id this node has not
        // seen in its catalog yet: zeros rather than 404 in a cluster.
        let s = stats.cluster_subject(&view, apps, id);
        return Ok(scoped(json!(s), Some(view.nodes)));
    }
    let s = if apps {
        Subject::app(id)
    } else {
        Subject::api(id)
    };
    let s = s.ok_or_else(|| AdminError::NotFound(what.into()))?;
    Ok(scoped(json!(stats.subject(s)), None))
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
        match crate::find_token(&st, &hash).await {
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
    list(&st, true).await
}

/// `GET /v1/stats/apis`: every API with calls in the last day.
pub async fn stats_apis(State(st): State<AdminState>) -> Result<Response, AdminError> {
    list(&st, false).await
}

/// `GET /v1/stats/apps/{app_id}`: one app (zeros when it made no call).
pub async fn stats_app(
    State(st): State<AdminState>,
    Path(app_id): Path<String>,
) -> Result<Response, AdminError> {
    one(&st, true, &app_id).await
}

/// `GET /v1/stats/apis/{api_id}`: one API (zeros when it had no call).
pub async fn stats_api(
    State(st): State<AdminState>,
    Path(api_id): Path<String>,
) -> Result<Response, AdminError> {
    one(&st, false, &api_id).await
}
