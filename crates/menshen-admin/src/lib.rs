//! The admin REST API (axum): application parties, credentials, the API
//! catalog, grants and IP lists. JSON in and out; every call but
//! `/openapi.json` and `/healthz` needs `Authorization: Bearer <admin token>`.
//! Invalid input is refused with 4xx and a message naming the field; nothing is
//! half-written (each change is one store transaction).
#![forbid(unsafe_code)]

mod error;
mod handlers;

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use menshen_store::{ControlPlane, Store};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use error::AdminError;

/// The OpenAPI 3 document of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Called after every successful change, before the admin API answers, so
/// that when the API says "done" the co-located gateway already enforces it.
pub type AfterChange = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// State shared by handlers.
#[derive(Clone)]
pub struct AdminState {
    /// The control plane.
    pub cp: ControlPlane,
    /// Hook run after each successful change (e.g. rebuild the local gateway
    /// snapshot). Other nodes pick the change up by notification or poll.
    pub after_change: Option<AfterChange>,
    /// Where every admin change is recorded (ADM-1), in the same chain as
    /// the access records.
    pub audit: Option<menshen_audit::AuditLog>,
}

/// Hash of an admin token as stored.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Create an admin token (256-bit, printed once, stored as SHA-256).
pub async fn create_admin_token(
    store: &dyn Store,
    name: &str,
) -> Result<String, menshen_store::StoreError> {
    let token = format!("msk_{}", menshen_crypto::random_token(32));
    store
        .insert_admin_token(name, "admin", &token_hash(&token))
        .await?;
    Ok(token)
}

/// Remove secrets from a JSON value before it is recorded (names of apps and
/// APIs stay: they are not personal information).
fn scrub(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    const SECRET: &[&str] = &[
        "app_secret",
        "secret",
        "token",
        "password",
        "private_key",
        "private_key_pem",
    ];
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    if SECRET.contains(&k.as_str()) && !v.is_null() {
                        (k, Value::String("***".into()))
                    } else {
                        (k, scrub(v))
                    }
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(scrub).collect()),
        Value::String(s) => Value::String(menshen_audit::mask_text(&s).into_owned()),
        other => other,
    }
}

/// The current state of the target of `path`, for the "before" of an admin record.
async fn before_state(st: &AdminState, path: &str) -> Option<serde_json::Value> {
    let mut parts = path.trim_start_matches("/v1/").split('/');
    let (kind, id) = (parts.next()?, parts.next()?);
    match kind {
        "apps" => st
            .cp
            .store
            .get_app(id)
            .await
            .ok()
            .and_then(|a| serde_json::to_value(a).ok()),
        "apis" => st
            .cp
            .store
            .get_api(id)
            .await
            .ok()
            .and_then(|a| serde_json::to_value(a).ok()),
        _ => None,
    }
}

async fn require_token(State(st): State<AdminState>, req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = token else {
        return AdminError::Unauthorized.into_response();
    };
    let actor = match st.cp.store.find_admin_token(&token_hash(token)).await {
        Ok(Some(t)) => t.name,
        Ok(None) => return AdminError::Unauthorized.into_response(),
        Err(e) => return AdminError::from(e).into_response(),
    };
    if req.method() == http::Method::GET {
        return next.run(req).await;
    }
    // ADM-1: who, what, before/after, when, for every change.
    // Nested routers see a shortened path; record the one the client used.
    let path = req
        .extensions()
        .get::<axum::extract::OriginalUri>()
        .map(|u| u.0.path().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    let action = format!("{} {}", req.method(), path);
    let before = before_state(&st, &path).await;
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let request = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .map(scrub);
    // ADM-1: the intent is recorded (durably) before the change is made; if
    // the log cannot take it, the change is refused and nothing happens.
    if let Some(audit) = &st.audit {
        let intent = menshen_audit::AdminRecord {
            kind: "admin".into(),
            timestamp: menshen_store::now_rfc3339(),
            actor: actor.clone(),
            action: format!("{action} (requested)"),
            status: 0,
            before: before.clone(),
            request: request.clone(),
            after: None,
        };
        if let Err(e) = audit.record_durable(&intent).await {
            tracing::error!(error = %e, %action, "admin change refused: its audit record could not be written");
            return AdminError::AuditUnavailable.into_response();
        }
    }
    // The change, its result record and the snapshot rebuild run in a task
    // of their own: an admin client that hangs up cannot leave a change made
    // but unrecorded.
    let work = tokio::spawn(async move {
        let resp = next
            .run(Request::from_parts(parts, axum::body::Body::from(body)))
            .await;
        let status = resp.status();
        let (rparts, rbody) = resp.into_parts();
        let rbytes = axum::body::to_bytes(rbody, 8 << 20)
            .await
            .unwrap_or_default();
        let after = serde_json::from_slice::<serde_json::Value>(&rbytes)
            .ok()
            .map(scrub);
        if let Some(audit) = &st.audit {
            let rec = menshen_audit::AdminRecord {
                kind: "admin".into(),
                timestamp: menshen_store::now_rfc3339(),
                actor,
                action,
                status: status.as_u16(),
                before,
                request,
                after,
            };
            if let Err(e) = audit.record_durable(&rec).await {
                tracing::error!(error = %e, "admin action's result could not be recorded (its request was)");
            }
        }
        if status.is_success() {
            if let Some(hook) = &st.after_change {
                hook().await;
            }
        }
        Response::from_parts(rparts, axum::body::Body::from(rbytes))
    });
    match work.await {
        Ok(r) => r,
        Err(e) => AdminError::Internal(format!("admin change task failed: {e}")).into_response(),
    }
}

/// The admin router.
pub fn router(state: AdminState) -> Router {
    use handlers::*;
    let v1 = Router::new()
        .route("/apps", get(list_apps).post(create_app))
        .route("/apps/{app_id}", get(get_app))
        .route("/apps/{app_id}/suspend", post(suspend_app))
        .route("/apps/{app_id}/resume", post(resume_app))
        .route("/apps/{app_id}/status", post(set_app_status))
        .route("/apps/{app_id}/secret-rotate", post(rotate_secret))
        .route("/apps/{app_id}/credentials", get(list_credentials))
        .route("/apps/{app_id}/credentials/{id}", delete(revoke_credential))
        .route("/apps/{app_id}/keys", post(add_key))
        .route("/apps/{app_id}/certificates", post(add_certificate))
        .route(
            "/apps/{app_id}/require-client-cert",
            post(require_client_cert),
        )
        .route("/bank-keys", get(list_bank_keys))
        .route("/audit", get(search_audit))
        .route("/audit/checkpoint", get(latest_checkpoint))
        .route("/apis", get(list_apis).post(create_api))
        .route("/apis/{api_id}", get(get_api))
        .route("/apis/{api_id}/lifecycle", post(set_lifecycle))
        .route("/grants", get(list_grants).post(add_grant))
        .route("/grants/{app_id}/{api_id}", delete(remove_grant))
        .route("/ip-rules", get(list_ip_rules).post(add_ip_rule))
        .route("/ip-rules/{id}", delete(remove_ip_rule))
        .route("/uapi/{code}", get(decode_uapi))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/healthz", get(healthz))
        .nest("/v1", v1)
        .fallback(not_found)
        .with_state(state)
}
