//! Admin API errors: `{"code", "message", "field"}` with a 4xx status for bad
//! input; store failures become a generic 500 (logged, not shown), an
//! unreachable store 503 `STORE_UNAVAILABLE`.

use axum::response::{IntoResponse, Response};
use axum::Json;
use http::StatusCode;
use menshen_model::ValidationError;
use menshen_store::StoreError;
use serde_json::json;

/// An admin API error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// Bad input, naming the field.
    #[error("{0}")]
    Invalid(ValidationError),
    /// Conflict with existing state, naming the field.
    #[error("{0}")]
    Conflict(ValidationError),
    /// Not found.
    #[error("{0} not found")]
    NotFound(String),
    /// Missing or wrong admin token.
    #[error("unauthorized")]
    Unauthorized,
    /// The change could not be recorded in the audit log, so it was not
    /// made (ADM-1: no unaudited change).
    #[error("audit log unavailable")]
    AuditUnavailable,
    /// The request body is over the limit (bytes); nothing was changed (ADM-1).
    #[error("request body over {0} bytes")]
    PayloadTooLarge(usize),
    /// The request body did not arrive in time; nothing was changed.
    #[error("request body not received within {0:?}")]
    BodyTimeout(std::time::Duration),
    /// The store cannot be reached (PostgreSQL down, issue 12 item 7):
    /// nothing was changed; the gateways keep serving from their last
    /// snapshot. Details logged only.
    #[error("store unavailable")]
    StoreUnavailable(String),
    /// Anything else (details logged only).
    #[error("internal error")]
    Internal(String),
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(w) => AdminError::NotFound(w),
            StoreError::Conflict(v) => AdminError::Conflict(v),
            StoreError::Invalid(v) => AdminError::Invalid(v),
            StoreError::Unavailable(d) => AdminError::StoreUnavailable(d),
            other => AdminError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let (status, code, message, field) = match self {
            AdminError::Invalid(v) => (
                StatusCode::BAD_REQUEST,
                "INVALID_INPUT",
                format!("{}: {}", v.field, v.message),
                Some(v.field),
            ),
            AdminError::Conflict(v) => (
                StatusCode::CONFLICT,
                "CONFLICT",
                format!("{}: {}", v.field, v.message),
                Some(v.field),
            ),
            AdminError::NotFound(w) => (
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                format!("{w} not found"),
                None,
            ),
            AdminError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "send Authorization: Bearer <admin token> (create one with `menshen admin init`)"
                    .to_string(),
                None,
            ),
            AdminError::AuditUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "AUDIT_UNAVAILABLE",
                "the change could not be recorded in the audit log, so it was not made; retry later"
                    .to_string(),
                None,
            ),
            AdminError::PayloadTooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
                format!(
                    "the request body is over {limit} bytes ({} MiB); nothing was changed",
                    limit >> 20
                ),
                Some("body".to_string()),
            ),
            AdminError::BodyTimeout(d) => (
                StatusCode::REQUEST_TIMEOUT,
                "REQUEST_TIMEOUT",
                format!(
                    "the request body did not arrive within {} s; nothing was changed",
                    d.as_secs()
                ),
                Some("body".to_string()),
            ),
            AdminError::StoreUnavailable(detail) => {
                tracing::warn!(%detail, "admin API: the store is unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "STORE_UNAVAILABLE",
                    "the configuration database cannot be reached, so nothing was changed; the gateways keep serving the last configuration; retry later"
                        .to_string(),
                    None,
                )
            }
            AdminError::Internal(detail) => {
                tracing::error!(%detail, "admin API internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "INTERNAL_ERROR",
                    "an internal error occurred".to_string(),
                    None,
                )
            }
        };
        (
            status,
            Json(json!({"code": code, "message": message, "field": field})),
        )
            .into_response()
    }
}
