//! Admin API handlers.

use crate::extract::{Path, Query};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use bytes::Bytes;
use menshen_model::{
    AppStatus, Lifecycle, NewApi, NewApp, NewIpRule, NewLimitRule, UApiId, ValidationError,
};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;

use crate::{AdminError, AdminState, OPENAPI};

type R = Result<axum::response::Response, AdminError>;

/// Parse a JSON body, naming the field that is wrong.
pub(crate) fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, AdminError> {
    if body.is_empty() {
        return Err(AdminError::Invalid(ValidationError::new(
            "body",
            "send a JSON object",
        )));
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // serde names missing/unknown fields in the message, not the path.
        let field = ["missing field `", "unknown field `"]
            .iter()
            .find_map(|p| inner.split(p).nth(1).and_then(|r| r.split('`').next()))
            .map(str::to_string)
            .unwrap_or_else(|| if path == "." { "body".into() } else { path });
        let message = inner.split(" at line").next().unwrap_or(&inner).to_string();
        AdminError::Invalid(ValidationError::new(field, message))
    })
}

fn ok<T: serde::Serialize>(v: T) -> R {
    Ok(Json(v).into_response())
}

fn created<T: serde::Serialize>(v: T) -> R {
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

pub async fn openapi() -> impl IntoResponse {
    ([(http::header::CONTENT_TYPE, "application/json")], OPENAPI)
}

pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

pub async fn not_found() -> AdminError {
    AdminError::NotFound("route".into())
}

pub async fn list_apps(State(st): State<AdminState>) -> R {
    ok(st.cp.store.list_apps().await?)
}

pub async fn create_app(State(st): State<AdminState>, body: Bytes) -> R {
    let new: NewApp = parse(&body)?;
    crate::notices::check(&st, new.notify_url.as_deref())?;
    let c = st.cp.create_app(&new).await?;
    tracing::info!(app_id = %c.app.app_id, "app created");
    created(json!({
        "app": c.app,
        "app_secret": c.app_secret.as_str(),
        "notice": "App_Secret (应用鉴别密文) is shown once; store it in the application's secret store now",
    }))
}

pub async fn get_app(State(st): State<AdminState>, Path(app_id): Path<String>) -> R {
    let app = st.cp.store.get_app(&app_id).await?;
    let grants = st.cp.store.list_grants(Some(&app_id)).await?;
    let mut v = serde_json::to_value(app).map_err(|e| AdminError::Internal(e.to_string()))?;
    v["grants"] = json!(grants.into_iter().map(|g| g.api_id).collect::<Vec<_>>());
    ok(v)
}

async fn status(st: &AdminState, app_id: &str, s: AppStatus) -> R {
    let app = st.cp.store.get_app(app_id).await?;
    // TRF-3: the blacklist keeps a history with reasons; only its own
    // routes list and delist.
    if (s == AppStatus::Blacklisted) != (app.status == AppStatus::Blacklisted) {
        return Err(AdminError::Conflict(ValidationError::new(
            "status",
            "blacklisting keeps a reason and history: use POST /v1/apps/{app_id}/blacklist or /unblacklist with {\"reason\": \"...\"}",
        )));
    }
    if app.status == AppStatus::Exited && s != AppStatus::Exited {
        return Err(AdminError::Conflict(ValidationError::new(
            "status",
            "an exited app cannot be reactivated; onboard it again",
        )));
    }
    let app = st.cp.store.set_app_status(app_id, s).await?;
    tracing::info!(app_id, status = %s, "app status changed");
    ok(app)
}

pub async fn suspend_app(State(st): State<AdminState>, Path(app_id): Path<String>) -> R {
    status(&st, &app_id, AppStatus::Suspended).await
}

pub async fn resume_app(State(st): State<AdminState>, Path(app_id): Path<String>) -> R {
    status(&st, &app_id, AppStatus::Active).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusBody {
    status: AppStatus,
}

pub async fn set_app_status(
    State(st): State<AdminState>,
    Path(app_id): Path<String>,
    body: Bytes,
) -> R {
    let b: StatusBody = parse(&body)?;
    status(&st, &app_id, b.status).await
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    #[serde(default)]
    grace_seconds: u32,
}

pub async fn rotate_secret(
    State(st): State<AdminState>,
    Path(app_id): Path<String>,
    body: Bytes,
) -> R {
    let b: RotateBody = if body.is_empty() {
        RotateBody::default()
    } else {
        parse(&body)?
    };
    if b.grace_seconds > 7 * 86_400 {
        return Err(AdminError::Invalid(ValidationError::new(
            "grace_seconds",
            "must be at most 604800 (7 days)",
        )));
    }
    let secret = st.cp.rotate_secret(&app_id, b.grace_seconds).await?;
    tracing::info!(
        app_id,
        grace_seconds = b.grace_seconds,
        "App_Secret rotated"
    );
    ok(json!({
        "app_id": app_id,
        "app_secret": secret.as_str(),
        "old_secret_valid_for_seconds": b.grace_seconds,
        "notice": "App_Secret (应用鉴别密文) is shown once",
    }))
}

pub async fn list_credentials(State(st): State<AdminState>, Path(app_id): Path<String>) -> R {
    ok(st.cp.store.list_credentials(&app_id).await?)
}

pub async fn list_apis(State(st): State<AdminState>) -> R {
    ok(st.cp.store.list_apis().await?)
}

pub async fn create_api(State(st): State<AdminState>, body: Bytes) -> R {
    let new: NewApi = parse(&body)?;
    let api = st.cp.create_api(&new).await?;
    tracing::info!(api_id = %api.api_id, u_api_id = %api.u_api_id, "API created");
    created(api)
}

pub async fn get_api(State(st): State<AdminState>, Path(api_id): Path<String>) -> R {
    ok(st.cp.store.get_api(&api_id).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleBody {
    state: Lifecycle,
}

pub async fn set_lifecycle(
    State(st): State<AdminState>,
    Path(api_id): Path<String>,
    body: Bytes,
) -> R {
    let b: LifecycleBody = parse(&body)?;
    let api = st.cp.store.set_api_lifecycle(&api_id, b.state).await?;
    tracing::info!(api_id, state = %b.state, "API lifecycle changed");
    ok(api)
}

#[derive(Deserialize)]
pub struct GrantQuery {
    app_id: Option<String>,
}

pub async fn list_grants(State(st): State<AdminState>, Query(q): Query<GrantQuery>) -> R {
    ok(st.cp.store.list_grants(q.app_id.as_deref()).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantBody {
    app_id: String,
    api_id: String,
}

pub async fn add_grant(State(st): State<AdminState>, body: Bytes) -> R {
    let b: GrantBody = parse(&body)?;
    let g = st.cp.add_grant(&b.app_id, &b.api_id).await?;
    tracing::info!(app_id = %b.app_id, api_id = %b.api_id, "grant added");
    created(g)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClearingBody {
    clearing: bool,
}

/// CONF-3: approve (or withdraw) a grant for clearing/reconciliation: the
/// app then sees the API's responses unmasked. The grant records who and
/// when; the admin record (ADM-1) has the before and after.
pub async fn set_grant_clearing(
    State(st): State<AdminState>,
    axum::Extension(actor): axum::Extension<crate::Actor>,
    Path((app_id, api_id)): Path<(String, String)>,
    body: Bytes,
) -> R {
    let b: ClearingBody = parse(&body)?;
    let g = st
        .cp
        .store
        .set_grant_clearing(&app_id, &api_id, b.clearing, &actor.0)
        .await?;
    tracing::info!(app_id, api_id, clearing = b.clearing, actor = %actor.0, "grant clearing approval changed");
    ok(g)
}

/// LVL-5, ATK-1, CONF-3: change an API's schema, screening or response
/// masking (the other controls stay).
pub async fn patch_api_controls(
    State(st): State<AdminState>,
    Path(api_id): Path<String>,
    body: Bytes,
) -> R {
    let patch: menshen_model::ProtectionPatch = parse(&body)?;
    let api = st.cp.store.get_api(&api_id).await?;
    let mut controls = api.controls.clone();
    patch.apply(&mut controls).map_err(AdminError::Invalid)?;
    let api = st.cp.store.set_api_controls(&api_id, &controls).await?;
    tracing::info!(api_id, "API data-protection controls changed");
    ok(api)
}

pub async fn remove_grant(
    State(st): State<AdminState>,
    Path((app_id, api_id)): Path<(String, String)>,
) -> R {
    st.cp.store.remove_grant(&app_id, &api_id).await?;
    tracing::info!(app_id, api_id, "grant removed");
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn list_ip_rules(State(st): State<AdminState>) -> R {
    ok(st.cp.store.list_ip_rules().await?)
}

pub async fn add_ip_rule(State(st): State<AdminState>, body: Bytes) -> R {
    let b: NewIpRule = parse(&body)?;
    let r = st.cp.store.add_ip_rule(&b).await?;
    tracing::info!(id = r.id, cidr = %r.cidr, action = %r.action, "IP rule added");
    created(r)
}

pub async fn remove_ip_rule(State(st): State<AdminState>, Path(id): Path<i64>) -> R {
    st.cp.store.remove_ip_rule(id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// TRF-1: the flow-control rules.
pub async fn list_limits(State(st): State<AdminState>) -> R {
    ok(st.cp.store.list_limit_rules().await?)
}

/// TRF-1: add a flow-control rule (a catalog change: every gateway picks
/// it up with its next snapshot; counters are never reset by it).
pub async fn add_limit(State(st): State<AdminState>, body: Bytes) -> R {
    let b: NewLimitRule = parse(&body)?;
    let r = st.cp.store.add_limit_rule(&b).await?;
    tracing::info!(id = r.id, app_id = ?r.app_id, api_id = ?r.api_id, window = %r.window, max = r.max, action = %r.action, "limit rule added");
    created(r)
}

/// TRF-1: remove a flow-control rule.
pub async fn remove_limit(State(st): State<AdminState>, Path(id): Path<i64>) -> R {
    st.cp.store.remove_limit_rule(id).await?;
    tracing::info!(id, "limit rule removed");
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn decode_uapi(State(st): State<AdminState>, Path(code): Path<String>) -> R {
    let id = UApiId::decode(&code)
        .map_err(|e| AdminError::Invalid(ValidationError::new(e.field, e.reason)))?;
    let status = st.cp.store.uapi_status(&code).await?;
    ok(json!({
        "u_api_id": id.to_string(),
        "prefix": id.prefix,
        "institution": id.institution,
        "type": id.kind.code(),
        "category": id.category,
        "category_name": menshen_model::uapi::category_name(id.category),
        "subcategory": id.subcategory,
        "sequence": id.sequence,
        "registered": status.is_some(),
        "cancelled": status.unwrap_or(false),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyBody {
    public_key_pem: String,
    #[serde(default)]
    not_before: Option<i64>,
    #[serde(default)]
    not_after: Option<i64>,
}

pub async fn add_key(State(st): State<AdminState>, Path(app_id): Path<String>, body: Bytes) -> R {
    let b: KeyBody = parse(&body)?;
    let c = st
        .cp
        .add_public_key(&app_id, &b.public_key_pem, b.not_before, b.not_after)
        .await?;
    tracing::info!(app_id, credential = c.id, alg = ?c.alg, "public key registered");
    created(c)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncKeyBody {
    public_key_pem: String,
    #[serde(default)]
    not_after: Option<i64>,
}

/// CONF-2, KEY-1 (protocol §12.5): register the app's SM2 encryption key,
/// for which the gateway wraps response session keys.
pub async fn add_encryption_key(
    State(st): State<AdminState>,
    Path(app_id): Path<String>,
    body: Bytes,
) -> R {
    let b: EncKeyBody = parse(&body)?;
    let c = st
        .cp
        .add_encryption_key(&app_id, &b.public_key_pem, b.not_after)
        .await?;
    tracing::info!(app_id, credential = c.id, "encryption key registered");
    created(c)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertBody {
    certificate_pem: String,
}

pub async fn add_certificate(
    State(st): State<AdminState>,
    Path(app_id): Path<String>,
    body: Bytes,
) -> R {
    let b: CertBody = parse(&body)?;
    let c = st.cp.add_certificate(&app_id, &b.certificate_pem).await?;
    tracing::info!(app_id, credential = c.id, "client certificate bound");
    created(c)
}

pub async fn revoke_credential(
    State(st): State<AdminState>,
    Path((app_id, id)): Path<(String, i64)>,
) -> R {
    st.cp.store.revoke_credential(&app_id, id).await?;
    tracing::info!(app_id, credential = id, "credential revoked");
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequireCertBody {
    required: bool,
}

pub async fn require_client_cert(
    State(st): State<AdminState>,
    Path(app_id): Path<String>,
    body: Bytes,
) -> R {
    let b: RequireCertBody = parse(&body)?;
    ok(st
        .cp
        .store
        .set_require_client_cert(&app_id, b.required)
        .await?)
}

pub async fn list_bank_keys(State(st): State<AdminState>) -> R {
    ok(st.cp.store.list_bank_keys().await?)
}
