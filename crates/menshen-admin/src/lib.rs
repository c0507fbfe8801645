//! The admin REST API (axum): application parties, credentials, the API
//! catalog, grants, IP lists, and customer authorization (customers,
//! consents, redirect URIs). JSON in and out; every call but
//! `/openapi.json` and `/healthz` needs `Authorization: Bearer <admin token>`.
//! Invalid input is refused with 4xx and a message naming the field; nothing is
//! half-written (each change is one store transaction).
#![forbid(unsafe_code)]
// The ban list (clippy.toml): no `unwrap` outside tests (an `expect` names
// its invariant), no printing from a library (tracing instead).
#![deny(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::dbg_macro
)]

mod alerts;
pub mod audit;
mod blacklist;
mod customers;
mod error;
mod extract;
mod handlers;
pub mod monitor;
mod notices;
mod risk;
pub mod serve;

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Router;
use menshen_store::{ControlPlane, Store};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use error::AdminError;

/// The OpenAPI 3 document of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// ADM-1: the most a request body to the admin API may be (1 MiB); a larger
/// one is refused with 413 `PAYLOAD_TOO_LARGE` and changes nothing.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Called after every successful change, before the admin API answers, so
/// that when the API says "done" the co-located gateway already enforces it.
pub type AfterChange = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// How a bank revocation of a consent is carried out when the node has an
/// authorization server: through it, so the consent's tokens are voided and
/// its caches forget the consent at once (USR-6, AUTH-6). Answers the
/// consent as it now is; `None` when there is no such consent.
pub type RevokeConsent = Arc<
    dyn Fn(
            String,
        ) -> Pin<
            Box<
                dyn Future<
                        Output = Result<Option<menshen_model::Consent>, menshen_store::StoreError>,
                    > + Send,
            >,
        > + Send
        + Sync,
>;

/// The administrator a change is made by (the admin token's name), for
/// handlers that record it in the changed object (a grant's clearing
/// approval, CONF-3).
#[derive(Debug, Clone)]
pub struct Actor(pub String);

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
    /// A request body must arrive within this, or the request is refused
    /// with 408 and changes nothing (the listener's idle timeout).
    pub body_timeout: Duration,
    /// The store must answer the token look-up, and a read (GET) must be
    /// served, within this, or the request is answered 503
    /// `STORE_UNAVAILABLE`: a database that accepts connections but never
    /// answers (stopped, partitioned) does not hold admin requests open. A
    /// change, once past its token, is not cut short: its outcome and its
    /// audit record must be known, so it waits for the store's own answer.
    pub store_timeout: Duration,
    /// Bank revocations of consents through the authorization server (else
    /// through the store alone).
    pub revoke_consent: Option<RevokeConsent>,
    /// Whether an app's notification URL may be plain `http://` to a
    /// loopback address (`alerts.app_notice.allow_http_loopback`, tests
    /// and demos); `https://` otherwise (MON-4).
    pub allow_http_notify_url: bool,
    /// Private networks apps' notification URLs may name by IP address
    /// (`alerts.app_notice.allow_networks`); otherwise an IP address in the
    /// URL must be public (MON-4; SSRF).
    pub notify_allow_networks: Vec<ipnet::IpNet>,
    /// Metrics, statistics and readiness (MON-1); `None`: `/metrics` and
    /// `/v1/stats/...` answer 404 and `/readyz` 503.
    pub monitor: Option<monitor::Monitor>,
    /// This node's id and how to reach other nodes' admin APIs, for the
    /// bodies of their audit records (issue 12 item 8).
    pub audit_node: audit::AuditNode,
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

/// Remove secrets from a JSON value before it is recorded (AUD-5, ADM-1):
/// the audit masker's one list of sensitive keys, matched case- and
/// style-insensitively (`appSecret`, `APP-SECRET`, ...); names of apps and
/// APIs stay: they are not personal information.
/// An `otpauth://` URI carries a TOTP secret in its query, whatever key
/// holds it: removed as a whole (USR-1).
fn scrub(v: serde_json::Value) -> serde_json::Value {
    menshen_audit::scrub_admin_json(drop_otpauth(v))
}

fn drop_otpauth(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(s) if s.trim_start().to_ascii_lowercase().starts_with("otpauth:") => {
            Value::String("***".into())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(drop_otpauth).collect()),
        Value::Object(m) => {
            Value::Object(m.into_iter().map(|(k, v)| (k, drop_otpauth(v))).collect())
        }
        other => other,
    }
}

/// The current state of the target of `path`, for the "before" of an admin
/// record, scrubbed like the request and the answer (ADM-1, AUD-5: a
/// consent's account numbers, a notification URL's token).
async fn before_state(st: &AdminState, path: &str) -> Option<serde_json::Value> {
    read_before_state(st, path).await.map(scrub)
}

/// The target's state as the store has it (not yet scrubbed).
///
/// The segments are percent-decoded as the router's extractors decode them
/// (ADM-1: `/v1/apps/%41PP/suspend` changes app `APP`, and its record must
/// show that app's state before).
async fn read_before_state(st: &AdminState, path: &str) -> Option<serde_json::Value> {
    let segments: Vec<String> = path
        .trim_start_matches("/v1/")
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|d| d.into_owned())
        })
        .collect::<Result<_, _>>()
        .ok()?;
    let mut parts = segments.iter().map(String::as_str);
    let (kind, id) = (parts.next()?, parts.next()?);
    if kind == "apps" {
        match parts.next() {
            Some("redirect-uris") => {
                let uris = st.cp.store.redirect_uris(id).await.ok()?;
                return Some(serde_json::json!({ "app_id": id, "redirect_uris": uris }));
            }
            // ADM-1: revoking a credential: that credential as it was.
            Some("credentials") => {
                let cid: i64 = parts.next()?.parse().ok()?;
                let creds = st.cp.store.list_credentials(id).await.ok()?;
                return creds
                    .into_iter()
                    .find(|c| c.id == cid)
                    .and_then(|c| serde_json::to_value(c).ok());
            }
            _ => {}
        }
    }
    match kind {
        // ADM-1: removing an IP rule or a risk rule: the rule as it was
        // (the CIDR, the action, the app), not only its number.
        "ip-rules" => {
            let id: i64 = id.parse().ok()?;
            let rules = st.cp.store.list_ip_rules().await.ok()?;
            rules
                .into_iter()
                .find(|r| r.id == id)
                .and_then(|r| serde_json::to_value(r).ok())
        }
        "risk-rules" => {
            let id: i64 = id.parse().ok()?;
            let rules = st.cp.store.list_risk_rules().await.ok()?;
            rules
                .into_iter()
                .find(|r| r.id == id)
                .and_then(|r| serde_json::to_value(r).ok())
        }
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
        "consents" => st
            .cp
            .store
            .get_consent(id)
            .await
            .ok()
            .and_then(|c| serde_json::to_value(c).ok()),
        "grants" => {
            let api = parts.next()?;
            let grants = st.cp.store.list_grants(Some(id)).await.ok()?;
            grants
                .into_iter()
                .find(|g| g.api_id == api)
                .and_then(|g| serde_json::to_value(g).ok())
        }
        "limits" => {
            let id: i64 = id.parse().ok()?;
            let rules = st.cp.store.list_limit_rules().await.ok()?;
            rules
                .into_iter()
                .find(|r| r.id == id)
                .and_then(|r| serde_json::to_value(r).ok())
        }
        _ => None,
    }
}

/// The token middleware's state: the handlers' state and the limiter of
/// failed-token records.
#[derive(Clone)]
struct Guard {
    st: AdminState,
    failures: Arc<FailedTokenLimiter>,
}

/// ADM-1: failed admin-token attempts are audited, but an attacker must not
/// be able to flood the log with them. Within each wall-clock minute the
/// first [`FAILED_TOKEN_RECORDS_PER_MINUTE`] attempts are recorded one by
/// one; later ones are only counted, and the count goes into the next record
/// written (`request.unrecorded_before`), so no attempt goes unaccounted.
/// Log volume from failed tokens is thereby bounded to that many records
/// per minute per node, whatever the attack rate.
pub const FAILED_TOKEN_RECORDS_PER_MINUTE: u32 = 10;

#[derive(Default)]
struct FailedTokenLimiter {
    /// The minute (Unix seconds / 60) `used` counts for.
    minute: AtomicU64,
    /// Records written in that minute.
    used: AtomicU32,
    /// Attempts not recorded one by one since the last record.
    unrecorded: AtomicU64,
}

impl FailedTokenLimiter {
    /// Whether this attempt gets a record of its own; if so, how many
    /// attempts before it did not.
    fn admit(&self, now_unix: i64) -> Option<u64> {
        let minute = u64::try_from(now_unix).unwrap_or(0) / 60;
        let seen = self.minute.load(Ordering::Acquire);
        if seen != minute
            && self
                .minute
                .compare_exchange(seen, minute, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.used.store(0, Ordering::Release);
        }
        let n = self.used.fetch_add(1, Ordering::AcqRel);
        if n < FAILED_TOKEN_RECORDS_PER_MINUTE {
            Some(self.unrecorded.swap(0, Ordering::AcqRel))
        } else {
            if n == FAILED_TOKEN_RECORDS_PER_MINUTE {
                tracing::warn!(
                    limit = FAILED_TOKEN_RECORDS_PER_MINUTE,
                    "admin API: many failed token attempts this minute; further ones are counted, not recorded one by one"
                );
            }
            self.unrecorded.fetch_add(1, Ordering::AcqRel);
            None
        }
    }
}

/// The path the client used (nested routers see a shortened one).
fn original_path(req: &Request) -> String {
    req.extensions()
        .get::<axum::extract::OriginalUri>()
        .map(|u| u.0.path().to_string())
        .unwrap_or_else(|| req.uri().path().to_string())
}

fn peer_ip(req: &Request) -> Option<String> {
    req.extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string())
}

/// The record of a refused admin-token attempt (ADM-1), if the limiter
/// admits one. The token itself is never recorded, only whether one was sent.
fn failed_token_record(g: &Guard, req: &Request, sent: bool) -> Option<menshen_audit::AdminRecord> {
    refused_token_record(g, req.method(), &original_path(req), peer_ip(req), sent)
}

/// [`failed_token_record`] from the request's method, path and peer.
fn refused_token_record(
    g: &Guard,
    method: &http::Method,
    path: &str,
    peer: Option<String>,
    sent: bool,
) -> Option<menshen_audit::AdminRecord> {
    g.st.audit.as_ref()?;
    let unrecorded_before = g.failures.admit(menshen_store::now_unix())?;
    let action = format!(
        "{method} {path} (refused: {} admin token)",
        if sent { "wrong" } else { "no" }
    );
    Some(menshen_audit::AdminRecord {
        kind: "admin".into(),
        timestamp: menshen_store::now_rfc3339(),
        actor: UNAUTHENTICATED.into(),
        action,
        status: 401,
        before: None,
        request: Some(serde_json::json!({
            "peer": peer,
            "token": if sent { "wrong" } else { "absent" },
            "unrecorded_before": unrecorded_before,
        })),
        after: None,
    })
}

/// Write a failed-token record, if the limiter admitted one. Not awaited
/// to disk: the refusal does not depend on it, and a flood must not queue
/// fsyncs.
async fn record_failed_token(g: &Guard, rec: Option<menshen_audit::AdminRecord>) {
    if let (Some(audit), Some(rec)) = (&g.st.audit, rec) {
        if let Err(e) = audit.record(&rec).await {
            tracing::error!(error = %e, "failed admin token attempt could not be recorded");
        }
    }
}

/// ADM-1: `/metrics` takes an admin token as well as the scrape token, so a
/// refused attempt there is recorded like one on `/v1/...` (same limiter):
/// otherwise `/metrics` would test candidate admin tokens without a trace.
async fn record_refused_scrape(State(g): State<Guard>, req: Request, next: Next) -> Response {
    let sent = req.headers().contains_key(http::header::AUTHORIZATION);
    let (method, path, peer) = (req.method().clone(), original_path(&req), peer_ip(&req));
    let resp = next.run(req).await;
    if resp.status() == http::StatusCode::UNAUTHORIZED {
        let rec = refused_token_record(&g, &method, &path, peer, sent);
        record_failed_token(&g, rec).await;
    }
    resp
}

/// The actor name recorded for requests without a valid admin token.
pub const UNAUTHENTICATED: &str = "(unauthenticated)";

/// Paths whose GET reads audit data (AUD-6) or customers' personal data
/// (their accounts, their consents: USR-*, the minimum-necessary rule); each
/// read is recorded (ADM-1), who and what query, before the answer goes out.
fn read_is_recorded(path: &str) -> bool {
    path == "/v1/audit"
        || path.starts_with("/v1/audit/")
        || path == "/v1/customers"
        || path == "/v1/consents"
}

/// A read of audit data: served, then recorded durably (who, what query,
/// the status) before the answer goes out; if the record cannot be
/// written, the data is not shown.
async fn audited_read(g: &Guard, actor: String, req: Request, next: Next) -> Response {
    let Some(audit) = g.st.audit.clone() else {
        return next.run(req).await;
    };
    let path = original_path(&req);
    let query = req
        .uri()
        .query()
        .map(|q| menshen_audit::mask_text(q).into_owned());
    let action = match &query {
        Some(q) => format!("GET {path}?{q}"),
        None => format!("GET {path}"),
    };
    let resp = within(g.st.store_timeout, next.run(req)).await;
    let rec = menshen_audit::AdminRecord {
        kind: "admin".into(),
        timestamp: menshen_store::now_rfc3339(),
        actor,
        action: action.clone(),
        status: resp.status().as_u16(),
        before: None,
        request: query.map(|q| serde_json::json!({ "query": q })),
        after: None,
    };
    if let Err(e) = audit.record_durable(&rec).await {
        tracing::error!(error = %e, %action, "audit read refused: its record could not be written");
        return AdminError::AuditUnavailable.into_response();
    }
    resp
}

/// The admin token with this hash, if the store answers within
/// `store_timeout` (nothing has been done yet, so giving up is safe).
pub(crate) async fn find_token(
    st: &AdminState,
    hash: &[u8; 32],
) -> Result<Option<menshen_store::AdminToken>, menshen_store::StoreError> {
    tokio::time::timeout(st.store_timeout, st.cp.store.find_admin_token(hash))
        .await
        .unwrap_or_else(|_| {
            Err(menshen_store::StoreError::Unavailable(store_timed_out(
                st.store_timeout,
            )))
        })
}

/// What a store that did not answer within `d` is reported as.
fn store_timed_out(d: Duration) -> String {
    format!("the store did not answer within {} s", d.as_secs_f64())
}

/// A read served within `d`, or 503 `STORE_UNAVAILABLE` (reads change
/// nothing, so cutting one short is safe).
async fn within(d: Duration, read: impl std::future::Future<Output = Response>) -> Response {
    match tokio::time::timeout(d, read).await {
        Ok(r) => r,
        Err(_) => AdminError::StoreUnavailable(store_timed_out(d)).into_response(),
    }
}

async fn require_token(State(g): State<Guard>, req: Request, next: Next) -> Response {
    let st = &g.st;
    let token = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = token else {
        let rec = failed_token_record(&g, &req, false);
        record_failed_token(&g, rec).await;
        return AdminError::Unauthorized.into_response();
    };
    let actor = match find_token(st, &token_hash(token)).await {
        Ok(Some(t)) => t.name,
        Ok(None) => {
            let rec = failed_token_record(&g, &req, true);
            record_failed_token(&g, rec).await;
            return AdminError::Unauthorized.into_response();
        }
        Err(e) => return AdminError::from(e).into_response(),
    };
    let path = original_path(&req);
    if req.method() == http::Method::GET || req.method() == http::Method::HEAD {
        if read_is_recorded(&path) {
            return audited_read(&g, actor, req, next).await;
        }
        return within(st.store_timeout, next.run(req)).await;
    }
    // ADM-1: who, what, before/after, when, for every change.
    let action = format!("{} {}", req.method(), path);
    let (parts, body) = req.into_parts();
    // ADM-1: the API does what it is told or nothing: a body over the limit
    // (or one that does not arrive in time) is refused before anything is
    // recorded or changed, never cut or replaced by an empty one.
    let announced = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        tracing::warn!(%actor, %action, "admin request refused: body over the limit");
        return AdminError::PayloadTooLarge(MAX_BODY_BYTES).into_response();
    }
    let body =
        match tokio::time::timeout(st.body_timeout, axum::body::to_bytes(body, MAX_BODY_BYTES))
            .await
        {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                if e.into_inner().is::<http_body_util::LengthLimitError>() {
                    tracing::warn!(%actor, %action, "admin request refused: body over the limit");
                    return AdminError::PayloadTooLarge(MAX_BODY_BYTES).into_response();
                }
                return AdminError::Invalid(menshen_model::ValidationError::new(
                    "body",
                    "the request body could not be read",
                ))
                .into_response();
            }
            Err(_) => return AdminError::BodyTimeout(st.body_timeout).into_response(),
        };
    let before = before_state(st, &path).await;
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
    let mut parts = parts;
    parts.extensions.insert(Actor(actor.clone()));
    let st = st.clone();
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
    // One limiter of failed-token records for `/v1/...` and `/metrics`.
    let guard = Guard {
        st: state.clone(),
        failures: Arc::new(FailedTokenLimiter::default()),
    };
    let v1 = Router::new()
        .route("/apps", get(list_apps).post(create_app))
        .route("/apps/{app_id}", get(get_app))
        .route("/apps/{app_id}/suspend", post(suspend_app))
        .route("/apps/{app_id}/resume", post(resume_app))
        .route("/apps/{app_id}/status", post(set_app_status))
        .route(
            "/apps/{app_id}/blacklist",
            get(blacklist::app_history).post(blacklist::blacklist_app),
        )
        .route(
            "/apps/{app_id}/unblacklist",
            post(blacklist::unblacklist_app),
        )
        .route("/blacklist", get(blacklist::list))
        .route("/blacklist/import", post(blacklist::import))
        .route("/apps/{app_id}/secret-rotate", post(rotate_secret))
        .route("/apps/{app_id}/notify-url", put(notices::set_notify_url))
        .route("/apps/{app_id}/notices", get(notices::app_notices))
        .route("/notices", get(notices::all_notices))
        .route("/apps/{app_id}/credentials", get(list_credentials))
        .route("/apps/{app_id}/credentials/{id}", delete(revoke_credential))
        .route("/apps/{app_id}/keys", post(add_key))
        .route("/apps/{app_id}/encryption-keys", post(add_encryption_key))
        .route("/apps/{app_id}/certificates", post(add_certificate))
        .route(
            "/apps/{app_id}/require-client-cert",
            post(require_client_cert),
        )
        .route("/bank-keys", get(list_bank_keys))
        .route("/audit", get(audit::search_audit))
        .route("/audit/records", get(audit::records))
        .route("/audit/checkpoint", get(audit::latest_checkpoint))
        .route("/apis", get(list_apis).post(create_api))
        .route("/apis/{api_id}", get(get_api))
        .route("/apis/{api_id}/lifecycle", post(set_lifecycle))
        .route(
            "/apis/{api_id}/controls",
            axum::routing::patch(patch_api_controls),
        )
        .route("/grants", get(list_grants).post(add_grant))
        .route("/grants/{app_id}/{api_id}", delete(remove_grant))
        .route(
            "/grants/{app_id}/{api_id}/clearing",
            post(set_grant_clearing),
        )
        .route("/ip-rules", get(list_ip_rules).post(add_ip_rule))
        .route("/ip-rules/{id}", delete(remove_ip_rule))
        .route("/limits", get(list_limits).post(add_limit))
        .route("/limits/{id}", delete(remove_limit))
        .route("/risk-rules", get(risk::list_rules).post(risk::add_rule))
        .route("/risk-rules/{id}", delete(risk::remove_rule))
        .route("/risk-reviews", get(risk::list_reviews))
        .route("/risk-reviews/{id}/approve", post(risk::approve_review))
        .route("/risk-reviews/{id}/reject", post(risk::reject_review))
        .route("/alerts", get(alerts::list))
        .route("/alerts/{id}/ack", post(alerts::ack))
        .route("/alerts/{id}/resolve", post(alerts::resolve))
        .route("/baselines/{app_id}", get(alerts::baselines))
        .route("/uapi/{code}", get(decode_uapi))
        .route("/stats/apps", get(monitor::stats_apps))
        .route("/stats/apps/{app_id}", get(monitor::stats_app))
        .route("/stats/apis", get(monitor::stats_apis))
        .route("/stats/apis/{api_id}", get(monitor::stats_api))
        .route(
            "/customers",
            get(customers::list_customers).post(customers::create_customer),
        )
        .route("/consents", get(customers::list_consents))
        .route("/consents/{id}/revoke", post(customers::revoke_consent))
        .route(
            "/apps/{app_id}/redirect-uris",
            get(customers::get_redirect_uris).put(customers::set_redirect_uris),
        )
        .route_layer(middleware::from_fn_with_state(guard.clone(), require_token));
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/healthz", get(healthz))
        .route("/readyz", get(monitor::readyz))
        .route(
            "/metrics",
            get(monitor::metrics)
                .route_layer(middleware::from_fn_with_state(guard, record_refused_scrape)),
        )
        .nest("/v1", v1)
        .fallback(not_found)
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ADM-1: failed token attempts are recorded up to the per-minute limit;
    /// the rest are counted into the next record, none is lost.
    #[test]
    fn adm_1_failed_token_records_are_limited_per_minute_and_the_rest_counted() {
        let l = FailedTokenLimiter::default();
        let t0 = 1_800_000_000; // a minute boundary (divisible by 60)
        for _ in 0..FAILED_TOKEN_RECORDS_PER_MINUTE {
            assert_eq!(l.admit(t0), Some(0));
        }
        for _ in 0..25 {
            assert_eq!(l.admit(t0 + 59), None);
        }
        // The next minute: the first record carries the count.
        assert_eq!(l.admit(t0 + 60), Some(25));
        assert_eq!(l.admit(t0 + 61), Some(0));
    }
}
