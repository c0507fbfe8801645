//! Gateway errors and the ONE place that turns them into client responses
//! (CONF-5): a stable code, its status, the uniform JSON body, nothing internal.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use menshen_audit::Outcome;
use menshen_protocol::{headers, ErrorBody, ErrorCode};

/// Who is at fault (for logs and alerting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The client sent something wrong or is not allowed.
    Client,
    /// The upstream failed.
    Upstream,
    /// The gateway itself failed.
    Internal,
}

/// A request that stops in the pipeline.
#[derive(Debug, Clone)]
pub struct GatewayError {
    /// What the client is told.
    pub code: ErrorCode,
    /// Detail for the audit record only.
    pub reason: String,
}

impl GatewayError {
    /// Build one.
    pub fn new(code: ErrorCode, reason: impl Into<String>) -> Self {
        GatewayError {
            code,
            reason: reason.into(),
        }
    }

    /// Who is at fault.
    pub fn fault(&self) -> Fault {
        match self.code {
            ErrorCode::UpstreamUnavailable | ErrorCode::UpstreamTimeout => Fault::Upstream,
            ErrorCode::Internal => Fault::Internal,
            _ => Fault::Client,
        }
    }

    /// The outcome recorded in the audit log.
    pub fn outcome(&self) -> Outcome {
        match self.code {
            ErrorCode::UpstreamTimeout => Outcome::Unknown,
            _ => Outcome::Failure,
        }
    }

    /// The response the client sees.
    pub fn to_response(&self, txn_id: &str) -> Response<Bytes> {
        if self.fault() == Fault::Internal {
            tracing::warn!(txn_id, reason = %self.reason, "internal error");
        }
        error_response(self.code, txn_id)
    }
}

/// The uniform error response for `code`.
pub fn error_response(code: ErrorCode, txn_id: &str) -> Response<Bytes> {
    let body = serde_json::to_vec(&ErrorBody::new(code, txn_id))
        .unwrap_or_else(|_| b"{\"code\":\"INTERNAL_ERROR\"}".to_vec());
    let mut r = Response::new(Bytes::from(body));
    *r.status_mut() =
        StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(txn_id) {
        h.insert(headers::TXN_ID, v);
    }
    r
}
