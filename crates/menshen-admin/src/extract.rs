//! Path and query extractors whose rejections are the documented error
//! body (`{"code": "INVALID_INPUT", "message", "field"}`, 400) naming the
//! parameter, instead of axum's plain-text rejections (ADM-1: invalid input
//! gets 400 naming the field and changes nothing). The rejected value is
//! not echoed back.

use axum::extract::path::ErrorKind;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, RawPathParams};
use http::request::Parts;
use menshen_model::ValidationError;
use serde::de::DeserializeOwned;

use crate::AdminError;

/// Like `axum::extract::Path`, rejecting with [`AdminError::Invalid`].
#[derive(Debug)]
pub struct Path<T>(pub T);

/// Like `axum::extract::Query`, rejecting with [`AdminError::Invalid`].
#[derive(Debug)]
pub struct Query<T>(pub T);

/// What a path parameter of `expected_type` should look like.
fn expected(ty: &str) -> String {
    if ty.starts_with('i') || ty.starts_with('u') {
        "must be an integer in range".into()
    } else {
        format!("must be a valid {ty}")
    }
}

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(rej) => {
                // The parameters' names, in order, to name the wrong one.
                let keys: Vec<String> = RawPathParams::from_request_parts(parts, state)
                    .await
                    .map(|p| p.iter().map(|(k, _)| k.to_string()).collect())
                    .unwrap_or_default();
                Err(path_error(rej, &keys))
            }
        }
    }
}

fn path_error(rej: PathRejection, keys: &[String]) -> AdminError {
    let invalid = |field: &str, message: String| {
        AdminError::Invalid(ValidationError::new(field.to_string(), message))
    };
    let PathRejection::FailedToDeserializePathParams(e) = rej else {
        return AdminError::Internal(format!("path parameters: {rej}"));
    };
    match e.into_kind() {
        ErrorKind::ParseErrorAtKey {
            key, expected_type, ..
        } => invalid(&key, expected(expected_type)),
        ErrorKind::ParseErrorAtIndex {
            index,
            expected_type,
            ..
        } => invalid(
            keys.get(index).map(String::as_str).unwrap_or("path"),
            expected(expected_type),
        ),
        ErrorKind::ParseError { expected_type, .. } => invalid(
            keys.first().map(String::as_str).unwrap_or("path"),
            expected(expected_type),
        ),
        ErrorKind::InvalidUtf8InPathParam { key } => {
            invalid(&key, "is not valid UTF-8 once percent-decoded".into())
        }
        ErrorKind::DeserializeError { key, .. } => invalid(&key, "is not valid here".into()),
        other => AdminError::Internal(format!("path parameters: {other}")),
    }
}

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                // serde_urlencoded names the parameter in its message
                // (`unknown field `x``, `missing field `x``), not apart.
                let msg = e.body_text();
                let detail = msg
                    .split_once(": ")
                    .map(|(_, d)| d)
                    .unwrap_or(&msg)
                    .to_string();
                let field = ["field `", "variant `"]
                    .iter()
                    .find_map(|p| detail.split(p).nth(1).and_then(|r| r.split('`').next()))
                    .filter(|f| f.len() <= 64)
                    .unwrap_or("query")
                    .to_string();
                let message: String = detail.chars().take(200).collect();
                Err(AdminError::Invalid(ValidationError::new(field, message)))
            }
            Err(other) => Err(AdminError::Invalid(ValidationError::new(
                "query",
                other.body_text(),
            ))),
        }
    }
}
