//! Risk rules for fund movements and their review items (RSK-1, RSK-2):
//! `/v1/risk-rules` (per app, matched to its assessed risk capacity) and
//! `/v1/risk-reviews` (calls held by a `hold` rule; an officer approves,
//! which lets the same call through once within the rule's review window,
//! or rejects).

use crate::extract::{Path, Query};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use bytes::Bytes;
use menshen_model::risk::{NewRiskRule, ReviewState};
use menshen_model::ValidationError;
use serde::Deserialize;

use crate::handlers::parse;
use crate::{AdminError, AdminState};

type R = Result<axum::response::Response, AdminError>;

/// The admin token's name: the officer who decides a review.
pub(crate) async fn officer(st: &AdminState, headers: &HeaderMap) -> Result<String, AdminError> {
    let token = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or(AdminError::Unauthorized)?;
    match crate::find_token(st, &crate::token_hash(token)).await? {
        Some(t) => Ok(t.name),
        None => Err(AdminError::Unauthorized),
    }
}

pub async fn list_rules(State(st): State<AdminState>) -> R {
    Ok(Json(st.cp.store.list_risk_rules().await?).into_response())
}

pub async fn add_rule(State(st): State<AdminState>, body: Bytes) -> R {
    let b: NewRiskRule = parse(&body)?;
    let r = st.cp.store.add_risk_rule(&b).await?;
    tracing::info!(id = r.id, app_id = %r.app_id, api_id = ?r.api_id, action = %r.action, "risk rule added");
    Ok((StatusCode::CREATED, Json(r)).into_response())
}

pub async fn remove_rule(State(st): State<AdminState>, Path(id): Path<i64>) -> R {
    st.cp.store.remove_risk_rule(id).await?;
    tracing::info!(id, "risk rule removed");
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
pub struct ReviewQuery {
    state: Option<String>,
}

pub async fn list_reviews(State(st): State<AdminState>, Query(q): Query<ReviewQuery>) -> R {
    let state = match q.state.as_deref() {
        None | Some("") | Some("all") => None,
        Some(s) => Some(ReviewState::parse(s).ok_or_else(|| {
            AdminError::Invalid(ValidationError::new(
                "state",
                format!("one of {}, or all", ReviewState::names()),
            ))
        })?),
    };
    Ok(Json(st.cp.store.list_risk_reviews(state).await?).into_response())
}

async fn decide(st: AdminState, headers: HeaderMap, id: i64, approve: bool) -> R {
    let by = officer(&st, &headers).await?;
    let r = st
        .cp
        .store
        .decide_risk_review(id, approve, &by, menshen_store::now_unix())
        .await?;
    tracing::info!(id, approve, officer = %by, app_id = %r.app_id, api_id = %r.api_id, amount = %r.amount, "risk review decided");
    Ok(Json(r).into_response())
}

pub async fn approve_review(
    State(st): State<AdminState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> R {
    decide(st, headers, id, true).await
}

pub async fn reject_review(
    State(st): State<AdminState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> R {
    decide(st, headers, id, false).await
}
