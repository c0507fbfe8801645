//! The app notification URL (应用方通知地址) and the notices sent to apps
//! (MON-4, KEY-4): `PUT /v1/apps/{app_id}/notify-url` sets or clears the
//! URL, `GET /v1/apps/{app_id}/notices` and `GET /v1/notices` show what was
//! sent and how its delivery stands (a `failed` one also raised an alert).

use crate::extract::{Path, Query};
use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use bytes::Bytes;
use menshen_model::notice::NoticeState;
use menshen_model::ValidationError;
use serde::Deserialize;

use crate::handlers::parse;
use crate::{AdminError, AdminState};

type R = Result<axum::response::Response, AdminError>;

/// The URL's form (the model's check) and the operator's policy: plain
/// `http://` (loopback only) is accepted only when the node allows it
/// (`alerts.app_notice.allow_http_loopback`, for tests and demos).
pub(crate) fn check(st: &AdminState, url: Option<&str>) -> Result<(), AdminError> {
    let Some(url) = url else { return Ok(()) };
    let kind = menshen_model::check_notify_url(url).map_err(AdminError::Invalid)?;
    if kind.plain_http && !st.allow_http_notify_url {
        return Err(AdminError::Invalid(ValidationError::new(
            "notify_url",
            "must be https:// (plain http:// to a loopback address only where the operator set alerts.app_notice.allow_http_loopback = true)",
        )));
    }
    // An IP address in the URL is checked now (a name is checked at each
    // delivery, on the addresses it resolves to).
    if let Some(ip) = kind.ip {
        if !menshen_model::notify_ip_permitted(
            ip,
            st.allow_http_notify_url,
            &st.notify_allow_networks,
        ) {
            return Err(AdminError::Invalid(ValidationError::new(
                "notify_url",
                format!("{ip} is not a public address: notices are not sent to internal, loopback or link-local addresses (the operator may list a private network in alerts.app_notice.allow_networks)"),
            )));
        }
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyUrlBody {
    notify_url: Option<String>,
}

/// `PUT /v1/apps/{app_id}/notify-url` with `{"notify_url": "https://..."}`
/// (or `null` to clear): the app as it now is.
pub async fn set_notify_url(
    State(st): State<AdminState>,
    Path(app_id): Path<String>,
    body: Bytes,
) -> R {
    let b: NotifyUrlBody = parse(&body)?;
    check(&st, b.notify_url.as_deref())?;
    let app = st
        .cp
        .store
        .set_app_notify_url(&app_id, b.notify_url.as_deref())
        .await?;
    tracing::info!(
        app_id,
        set = app.notify_url.is_some(),
        "app notification URL changed"
    );
    Ok(Json(app).into_response())
}

#[derive(Deserialize)]
pub struct NoticeQuery {
    state: Option<String>,
}

fn state_of(q: &NoticeQuery) -> Result<Option<NoticeState>, AdminError> {
    match q.state.as_deref() {
        None | Some("") | Some("all") => Ok(None),
        Some(s) => Ok(Some(NoticeState::parse(s).ok_or_else(|| {
            AdminError::Invalid(ValidationError::new(
                "state",
                format!("one of {}, or all", NoticeState::names()),
            ))
        })?)),
    }
}

/// `GET /v1/apps/{app_id}/notices[?state=]`: the notices to one app,
/// newest first.
pub async fn app_notices(
    State(st): State<AdminState>,
    Path(app_id): Path<String>,
    Query(q): Query<NoticeQuery>,
) -> R {
    let state = state_of(&q)?;
    st.cp.store.get_app(&app_id).await?;
    Ok(Json(st.cp.store.list_app_notices(Some(&app_id), state).await?).into_response())
}

/// `GET /v1/notices[?state=]`: the notices to every app, newest first.
pub async fn all_notices(State(st): State<AdminState>, Query(q): Query<NoticeQuery>) -> R {
    let state = state_of(&q)?;
    Ok(Json(st.cp.store.list_app_notices(None, state).await?).into_response())
}
