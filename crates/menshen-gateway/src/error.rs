//! Gateway errors and the ONE place that turns them into client responses
//! (CONF-5): a stable code, its status, the uniform JSON body, nothing internal.
//!
//! Each error knows who is at fault ([`Fault`]), whether the upstream may
//! have acted (the audit outcome) and whether the client may retry safely.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use menshen_audit::Outcome;
use menshen_protocol::{headers, ErrorBody, ErrorCode};

/// Who is at fault (for logs and alerting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The client sent something wrong, too slowly, or is not allowed.
    Client,
    /// The bank's upstream failed.
    Upstream,
    /// The gateway itself (or a resource it depends on) failed.
    Bank,
}

/// Why a request stopped in the pipeline. The `reason` strings are for the
/// audit record and the log only; the client sees [`GatewayError::code`].
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The request is refused (signature, status, lists, grant, route, ...).
    /// Nothing reached the upstream.
    #[error("refused ({}): {reason}", .code.as_str())]
    Refused {
        /// What the client is told.
        code: ErrorCode,
        /// Detail for the audit record.
        reason: String,
    },
    /// The request head or body did not arrive in time (408).
    #[error("request timeout: {0}")]
    RequestTimeout(String),
    /// A memory or connection budget is exhausted (503, retry later).
    #[error("over budget: {0}")]
    Overloaded(String),
    /// The upstream could not be reached (connect failed): it did not act.
    #[error("upstream unreachable: {0}")]
    UpstreamUnreachable(String),
    /// The upstream answered with a server error: it answered, it failed.
    #[error("upstream failed: {0}")]
    UpstreamFailed(String),
    /// The exchange broke or timed out after the request was sent: the
    /// upstream may have acted.
    #[error("upstream outcome unknown: {0}")]
    UpstreamTimeout(String),
    /// The audit log cannot take the record before forwarding: fail closed.
    #[error("audit unavailable: {0}")]
    AuditUnavailable(String),
    /// The upstream answered, but the record (or the response signature) could
    /// not be completed: the client must not retry blindly.
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// The bank's response-signing key is missing (checked before forwarding).
    #[error("response signing key unavailable: {0}")]
    SigningUnavailable(String),
    /// A bug or an unexpected state.
    #[error("internal: {0}")]
    Internal(String),
}

impl GatewayError {
    /// A refusal of the client's request.
    pub fn new(code: ErrorCode, reason: impl Into<String>) -> Self {
        GatewayError::Refused {
            code,
            reason: reason.into(),
        }
    }

    /// The stable code the client sees.
    pub fn code(&self) -> ErrorCode {
        match self {
            GatewayError::Refused { code, .. } => *code,
            GatewayError::RequestTimeout(_) => ErrorCode::RequestTimeout,
            GatewayError::Overloaded(_) => ErrorCode::ServerBusy,
            GatewayError::UpstreamUnreachable(_) | GatewayError::UpstreamFailed(_) => {
                ErrorCode::UpstreamUnavailable
            }
            GatewayError::UpstreamTimeout(_) => ErrorCode::UpstreamTimeout,
            GatewayError::AuditUnavailable(_) => ErrorCode::AuditUnavailable,
            GatewayError::OutcomeUnknown(_) => ErrorCode::OutcomeUnknown,
            GatewayError::SigningUnavailable(_) => ErrorCode::SigningUnavailable,
            GatewayError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// Detail for the audit record (never sent to the client).
    pub fn reason(&self) -> &str {
        match self {
            GatewayError::Refused { reason, .. } => reason,
            GatewayError::RequestTimeout(r)
            | GatewayError::Overloaded(r)
            | GatewayError::UpstreamUnreachable(r)
            | GatewayError::UpstreamFailed(r)
            | GatewayError::UpstreamTimeout(r)
            | GatewayError::AuditUnavailable(r)
            | GatewayError::OutcomeUnknown(r)
            | GatewayError::SigningUnavailable(r)
            | GatewayError::Internal(r) => r,
        }
    }

    /// Who is at fault.
    pub fn fault(&self) -> Fault {
        match self {
            GatewayError::Refused { .. } | GatewayError::RequestTimeout(_) => Fault::Client,
            GatewayError::UpstreamUnreachable(_)
            | GatewayError::UpstreamFailed(_)
            | GatewayError::UpstreamTimeout(_) => Fault::Upstream,
            GatewayError::Overloaded(_)
            | GatewayError::AuditUnavailable(_)
            | GatewayError::OutcomeUnknown(_)
            | GatewayError::SigningUnavailable(_)
            | GatewayError::Internal(_) => Fault::Bank,
        }
    }

    /// Whether the upstream may have acted on the request.
    pub fn upstream_may_have_acted(&self) -> bool {
        matches!(
            self,
            GatewayError::UpstreamTimeout(_)
                | GatewayError::OutcomeUnknown(_)
                | GatewayError::UpstreamFailed(_)
        )
    }

    /// Whether the client may send the same call again (with a fresh
    /// signature and nonce) without risking a double effect.
    pub fn retry_safe(&self) -> bool {
        !self.upstream_may_have_acted() && !matches!(self, GatewayError::Internal(_))
    }

    /// The outcome recorded in the audit log.
    pub fn outcome(&self) -> Outcome {
        match self {
            GatewayError::UpstreamTimeout(_) | GatewayError::OutcomeUnknown(_) => Outcome::Unknown,
            _ => Outcome::Failure,
        }
    }

    /// The response the client sees.
    pub fn to_response(&self, txn_id: &str) -> Response<Bytes> {
        if self.fault() == Fault::Bank {
            tracing::warn!(txn_id, error = %self, "gateway-side failure");
        }
        error_response(self.code(), txn_id)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_fault_and_retry_follow_whether_the_upstream_may_have_acted() {
        let refused = GatewayError::new(ErrorCode::InvalidSignature, "x");
        assert_eq!(refused.fault(), Fault::Client);
        assert!(refused.retry_safe());
        assert_eq!(refused.outcome(), Outcome::Failure);
        let unknown = GatewayError::OutcomeUnknown("record failed".into());
        assert_eq!(unknown.code(), ErrorCode::OutcomeUnknown);
        assert!(!unknown.retry_safe());
        assert_eq!(unknown.outcome(), Outcome::Unknown);
        let audit = GatewayError::AuditUnavailable("disk".into());
        assert!(audit.retry_safe());
        assert_eq!(audit.code(), ErrorCode::AuditUnavailable);
        assert_eq!(
            GatewayError::UpstreamUnreachable("refused".into()).outcome(),
            Outcome::Failure
        );
        assert!(GatewayError::UpstreamUnreachable("refused".into()).retry_safe());
        assert!(!GatewayError::UpstreamTimeout("t".into()).retry_safe());
        assert_eq!(
            GatewayError::SigningUnavailable("no key".into()).code(),
            ErrorCode::SigningUnavailable
        );
    }
}
