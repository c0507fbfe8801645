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
    /// The upstream's answer does not match the API's response schema
    /// (LVL-5): withheld; the upstream may have acted.
    #[error("upstream answer invalid: {0}")]
    UpstreamResponseInvalid(String),
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
    /// A parameter or body field does not match the API's schema (LVL-5):
    /// 400 `INVALID_REQUEST` naming the field's pointer, nothing else about
    /// the schema. Nothing reached the upstream.
    #[error("invalid request: {reason}")]
    InvalidRequest {
        /// The failing field, in `{"query": ..., "body": ...}`.
        pointer: String,
        /// Detail for the audit record.
        reason: String,
    },
    /// A flow-control rule's limit is reached (TRF-1): 429 `RATE_LIMITED`
    /// with `Retry-After` and the IETF `RateLimit` headers. Nothing reached
    /// the upstream.
    #[error("rate limited: {}", .0.reason)]
    RateLimited(Box<RateLimit>),
    /// The shared hot state could not record the nonce or check a limit
    /// (INT-4, TRF-1; issue 12 item 7): fail closed (503
    /// `SHARED_STATE_UNAVAILABLE`), nothing forwarded.
    #[error("flow control unavailable: {0}")]
    LimitsUnavailable(String),
    /// The upstream is degraded (TRF-2): its circuit breaker is open or
    /// none of its targets is healthy, and the API has no fallback answer:
    /// 503 `SERVICE_DEGRADED` with `Retry-After`. Nothing was forwarded.
    #[error("degraded: {reason}")]
    Degraded {
        /// Detail for the audit record.
        reason: String,
        /// Seconds until the gateway tries the upstream again, at least 1.
        retry_after_secs: u64,
    },
    /// The upstream's bulkhead is full (TRF-2: in-flight or connection
    /// cap): 503 `UPSTREAM_BUSY` at once. Nothing was forwarded.
    #[error("upstream busy: {0}")]
    UpstreamBusy(String),
    /// A bug or an unexpected state.
    #[error("internal: {0}")]
    Internal(String),
}

/// Which limit refused a call, for its answer's headers
/// (draft-ietf-httpapi-ratelimit-headers) and its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    /// Detail for the audit record: the rule and its limit.
    pub reason: String,
    /// The rule's id: the policy is named `rule-ID`.
    pub rule_id: i64,
    /// Most calls per window (`q`).
    pub max: u64,
    /// The window's length in seconds (`w`).
    pub window_secs: i64,
    /// Seconds until the window ends (`t`, and `Retry-After`), at least 1;
    /// for a pause, until it ends.
    pub reset_secs: i64,
    /// The app is paused (`APP_PAUSED`) rather than over a window's limit:
    /// only `Retry-After` is sent.
    pub paused: bool,
}

impl RateLimit {
    /// `RateLimit-Policy: "rule-ID";q=MAX;w=WINDOW_SECS`.
    pub fn policy_header(&self) -> String {
        if self.window_secs == 0 {
            // A concurrency limit has no window.
            return format!("\"rule-{}\";q={}", self.rule_id, self.max);
        }
        format!(
            "\"rule-{}\";q={};w={}",
            self.rule_id, self.max, self.window_secs
        )
    }

    /// `RateLimit: "rule-ID";r=0;t=SECS_TO_RESET` (nothing remains: the
    /// call was refused).
    pub fn state_header(&self) -> String {
        format!("\"rule-{}\";r=0;t={}", self.rule_id, self.reset_secs)
    }
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
            GatewayError::UpstreamResponseInvalid(_) => ErrorCode::UpstreamResponseInvalid,
            GatewayError::AuditUnavailable(_) => ErrorCode::AuditUnavailable,
            GatewayError::OutcomeUnknown(_) => ErrorCode::OutcomeUnknown,
            GatewayError::SigningUnavailable(_) => ErrorCode::SigningUnavailable,
            GatewayError::RateLimited(l) if l.paused => ErrorCode::AppPaused,
            GatewayError::RateLimited(_) => ErrorCode::RateLimited,
            GatewayError::InvalidRequest { .. } => ErrorCode::InvalidRequest,
            GatewayError::LimitsUnavailable(_) => ErrorCode::SharedStateUnavailable,
            GatewayError::Degraded { .. } => ErrorCode::ServiceDegraded,
            GatewayError::UpstreamBusy(_) => ErrorCode::UpstreamBusy,
            GatewayError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// Detail for the audit record (never sent to the client).
    pub fn reason(&self) -> &str {
        match self {
            GatewayError::Refused { reason, .. } => reason,
            GatewayError::RateLimited(l) => &l.reason,
            GatewayError::InvalidRequest { reason, .. } => reason,
            GatewayError::Degraded { reason, .. } => reason,
            GatewayError::RequestTimeout(r)
            | GatewayError::LimitsUnavailable(r)
            | GatewayError::Overloaded(r)
            | GatewayError::UpstreamUnreachable(r)
            | GatewayError::UpstreamFailed(r)
            | GatewayError::UpstreamTimeout(r)
            | GatewayError::UpstreamResponseInvalid(r)
            | GatewayError::AuditUnavailable(r)
            | GatewayError::OutcomeUnknown(r)
            | GatewayError::SigningUnavailable(r)
            | GatewayError::UpstreamBusy(r)
            | GatewayError::Internal(r) => r,
        }
    }

    /// Who is at fault.
    pub fn fault(&self) -> Fault {
        match self {
            GatewayError::Refused { .. }
            | GatewayError::RequestTimeout(_)
            | GatewayError::InvalidRequest { .. }
            | GatewayError::RateLimited(_) => Fault::Client,
            GatewayError::UpstreamUnreachable(_)
            | GatewayError::UpstreamFailed(_)
            | GatewayError::UpstreamTimeout(_)
            | GatewayError::UpstreamResponseInvalid(_)
            | GatewayError::Degraded { .. }
            | GatewayError::UpstreamBusy(_) => Fault::Upstream,
            GatewayError::Overloaded(_)
            | GatewayError::AuditUnavailable(_)
            | GatewayError::OutcomeUnknown(_)
            | GatewayError::SigningUnavailable(_)
            | GatewayError::LimitsUnavailable(_)
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
                | GatewayError::UpstreamResponseInvalid(_)
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
            GatewayError::UpstreamTimeout(_)
            | GatewayError::OutcomeUnknown(_)
            | GatewayError::UpstreamResponseInvalid(_) => Outcome::Unknown,
            _ => Outcome::Failure,
        }
    }

    /// The response the client sees.
    pub fn to_response(&self, txn_id: &str) -> Response<Bytes> {
        if self.fault() == Fault::Bank {
            tracing::warn!(txn_id, error = %self, "gateway-side failure");
        }
        let mut r = match self {
            GatewayError::InvalidRequest { pointer, .. } => {
                let mut body = ErrorBody::new(ErrorCode::InvalidRequest, txn_id);
                body.pointer = Some(pointer.clone());
                with_body(ErrorCode::InvalidRequest, txn_id, &body)
            }
            _ => error_response(self.code(), txn_id),
        };
        if let GatewayError::Degraded {
            retry_after_secs, ..
        } = self
        {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
        if let GatewayError::RateLimited(l) = self {
            let h = r.headers_mut();
            h.insert(header::RETRY_AFTER, HeaderValue::from(l.reset_secs));
            let named = if l.paused { &[][..] } else { &[(); 2][..] };
            for ((name, v), _) in [
                (headers::RATELIMIT_POLICY, l.policy_header()),
                (headers::RATELIMIT, l.state_header()),
            ]
            .into_iter()
            .zip(named)
            {
                if let Ok(v) = HeaderValue::from_str(&v) {
                    h.insert(name, v);
                }
            }
        }
        r
    }
}

/// The uniform error response for `code`.
pub fn error_response(code: ErrorCode, txn_id: &str) -> Response<Bytes> {
    with_body(code, txn_id, &ErrorBody::new(code, txn_id))
}

/// The uniform error response for `code` with `body`.
fn with_body(code: ErrorCode, txn_id: &str, body: &ErrorBody) -> Response<Bytes> {
    let body =
        serde_json::to_vec(body).unwrap_or_else(|_| b"{\"code\":\"INTERNAL_ERROR\"}".to_vec());
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
    fn trf_1_rate_limited_answers_429_with_retry_after_and_ratelimit_headers() {
        let e = GatewayError::RateLimited(Box::new(RateLimit {
            reason: "rule 7".into(),
            rule_id: 7,
            max: 5,
            window_secs: 60,
            reset_secs: 42,
            paused: false,
        }));
        assert_eq!(e.fault(), Fault::Client);
        assert!(e.retry_safe());
        let r = e.to_response("T1");
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "42");
        assert_eq!(r.headers()["ratelimit-policy"], "\"rule-7\";q=5;w=60");
        assert_eq!(r.headers()["ratelimit"], "\"rule-7\";r=0;t=42");
        let body: ErrorBody = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(body.code, "RATE_LIMITED");
        let down = GatewayError::LimitsUnavailable("redis".into());
        assert_eq!(down.to_response("T2").status(), 503);
        assert_eq!(down.code().as_str(), "SHARED_STATE_UNAVAILABLE");
        let paused = GatewayError::RateLimited(Box::new(RateLimit {
            reason: "paused".into(),
            rule_id: 0,
            max: 0,
            window_secs: 0,
            reset_secs: 90,
            paused: true,
        }));
        let r = paused.to_response("T3");
        assert_eq!(
            (r.status().as_u16(), paused.code().as_str()),
            (429, "APP_PAUSED")
        );
        assert_eq!(r.headers()["retry-after"], "90");
        assert!(r.headers().get("ratelimit-policy").is_none());
        let cc = RateLimit {
            reason: "cc".into(),
            rule_id: 8,
            max: 2,
            window_secs: 0,
            reset_secs: 1,
            paused: false,
        };
        assert_eq!(cc.policy_header(), "\"rule-8\";q=2");
        assert_eq!(down.fault(), Fault::Bank);
    }

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
