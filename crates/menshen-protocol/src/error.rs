//! The one error body every rejection uses (CONF-5):
//! `{"code": "...", "message": "...", "txn_id": "..."}`.

use serde::{Deserialize, Serialize};

/// The JSON body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable machine-readable code (see [`ErrorCode`]).
    pub code: String,
    /// Human-readable message; never names servers, middleware or internals.
    pub message: String,
    /// Transaction serial number of the request, for support and audit queries.
    pub txn_id: String,
    /// `INVALID_REQUEST` only: the JSON Pointer of the failing field in
    /// `{"query": {...}, "body": ...}`, e.g. `/body/payee/amount`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
}

macro_rules! codes {
    ($($(#[$m:meta])* $var:ident = ($code:literal, $status:literal, $msg:literal)),+ $(,)?) => {
        /// Stable error codes, with their HTTP status and default message.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode { $($(#[$m])* $var),+ }
        impl ErrorCode {
            /// Every code, for documentation and tests.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$var),+];
            /// The code string.
            pub fn as_str(self) -> &'static str { match self { $(ErrorCode::$var => $code),+ } }
            /// The HTTP status.
            pub fn status(self) -> u16 { match self { $(ErrorCode::$var => $status),+ } }
            /// The default message.
            pub fn message(self) -> &'static str { match self { $(ErrorCode::$var => $msg),+ } }
            /// Parse a code string.
            pub fn from_code(s: &str) -> Option<Self> { match s { $($code => Some(ErrorCode::$var),)+ _ => None } }
        }
    };
}

codes! {
    /// The request is not well-formed HTTP for this API.
    BadRequest = ("BAD_REQUEST", 400, "the request is malformed"),
    /// No `Signature`/`Signature-Input` headers.
    MissingSignature = ("MISSING_SIGNATURE", 401, "the request is not signed: send Signature-Input and Signature"),
    /// Signature headers present but unusable (missing required component or parameter).
    MalformedSignature = ("MALFORMED_SIGNATURE", 400, "the signature headers do not follow the protocol"),
    /// `alg` not supported for this credential.
    UnsupportedAlgorithm = ("UNSUPPORTED_ALGORITHM", 400, "the signature algorithm is not supported for this credential"),
    /// The signature does not verify, or the App_ID is unknown.
    InvalidSignature = ("INVALID_SIGNATURE", 401, "the signature could not be verified"),
    /// `Content-Digest` does not match the body.
    DigestMismatch = ("DIGEST_MISMATCH", 401, "the body does not match its content-digest"),
    /// `created` is outside the allowed clock window, or `expires` has passed.
    StaleTimestamp = ("STALE_TIMESTAMP", 401, "the signature's created time is outside the allowed window"),
    /// The nonce was already used by this app within the window.
    Replay = ("REPLAYED_REQUEST", 401, "this signed request was already received (replay)"),
    /// Field envelopes (CONF-1, §12): the envelope member or an encrypted
    /// field's value does not follow the format (also: an IV repeated within
    /// the message, encrypted fields without the envelope). Nothing was
    /// forwarded.
    EnvelopeMalformed = ("ENVELOPE_MALFORMED", 400, "the field envelope is malformed"),
    /// A field the API requires encrypted arrived in clear (CONF-1).
    FieldNotEncrypted = ("FIELD_NOT_ENCRYPTED", 400, "a field that must be encrypted was sent in clear"),
    /// The wrapped session key does not decrypt with the bank's encryption
    /// key named by `kid` (tampered, or for another key) (CONF-2).
    EnvelopeKeyInvalid = ("ENVELOPE_KEY_INVALID", 400, "the envelope's session key could not be unwrapped"),
    /// The session key was already used by a message within the replay
    /// window (CONF-2: one key per message).
    SessionKeyReused = ("SESSION_KEY_REUSED", 400, "this session key was already used; use a fresh key per message"),
    /// An encrypted field does not authenticate: its ciphertext, tag or IV
    /// changed (SM4-GCM cannot tell which) (CONF-1).
    FieldDecryptionFailed = ("FIELD_DECRYPTION_FAILED", 400, "an encrypted field failed authentication"),
    /// An encrypted field was made for another field of the message (its
    /// pointer is the associated data) (CONF-1).
    FieldMoved = ("FIELD_MOVED", 400, "an encrypted field was moved from another field"),
    /// The API's responses carry encrypted fields and the app has registered
    /// no encryption key. Nothing was forwarded.
    EncryptionKeyMissing = ("ENCRYPTION_KEY_MISSING", 403, "register an encryption key for this application to call this API"),
    /// The bank has no usable encryption key. Nothing was forwarded.
    EncryptionUnavailable = ("ENCRYPTION_UNAVAILABLE", 503, "field encryption is temporarily unavailable"),
    /// The app is suspended, blacklisted or exited.
    AppNotActive = ("APP_NOT_ACTIVE", 403, "the application is not active"),
    /// The client IP is on a blocklist or not on the app's allowlist.
    IpForbidden = ("IP_FORBIDDEN", 403, "requests from this address are not allowed"),
    /// The app holds no grant for this API.
    NotGranted = ("NOT_GRANTED", 403, "the application is not authorized for this API"),
    /// The credential used is weaker than the API's level requires.
    InsufficientAuth = ("INSUFFICIENT_AUTHENTICATION", 403, "this API's security level requires a stronger credential"),
    /// The client certificate belongs to another app, or is required and missing.
    CertificateMismatch = ("CLIENT_CERTIFICATE_MISMATCH", 403, "the client certificate does not belong to this application"),
    /// A mobile app called a non-A1 API.
    ClientKindNotAllowed = ("CLIENT_KIND_NOT_ALLOWED", 403, "this kind of application may not call this API"),
    /// No API matches the method and path.
    NotFound = ("NOT_FOUND", 404, "no API matches this method and path"),
    /// The API was terminated (挡板).
    ServiceTerminated = ("SERVICE_TERMINATED", 410, "service terminated (服务已终止)"),
    /// Body over the limit.
    PayloadTooLarge = ("PAYLOAD_TOO_LARGE", 413, "the request body is too large"),
    /// The upstream could not be reached or answered with a server error.
    UpstreamUnavailable = ("UPSTREAM_UNAVAILABLE", 502, "the service is temporarily unavailable"),
    /// The upstream did not answer in time; the outcome is unknown.
    UpstreamTimeout = ("UPSTREAM_TIMEOUT", 504, "the service did not answer in time; the outcome is unknown"),
    /// The upstream answered, but its answer does not match the API's
    /// response schema (LVL-5): it is withheld. The service may have acted.
    UpstreamResponseInvalid = ("UPSTREAM_RESPONSE_INVALID", 502, "the service's answer did not match the API's definition and was withheld; the service may have acted: query it by txn_id before any retry"),
    /// The service is degraded (TRF-2): its circuit breaker is open, or
    /// none of its servers is healthy. Nothing was forwarded; `Retry-After`
    /// says when the gateway tries the service again.
    ServiceDegraded = ("SERVICE_DEGRADED", 503, "the service is degraded; the call was not forwarded; retry later"),
    /// The service's bulkhead is full (TRF-2): as many calls as the bank
    /// allows for it are in flight. Nothing was forwarded.
    UpstreamBusy = ("UPSTREAM_BUSY", 503, "the service is at its capacity; the call was not forwarded; retry later"),
    /// The audit log cannot make this call's record durable, or the shared
    /// hot state cannot check a flow-control limit (TRF-1): fail closed.
    /// Nothing reached the upstream, so the call may be retried (with a new
    /// nonce).
    AuditUnavailable = ("SERVICE_UNAVAILABLE", 503, "the service is temporarily unavailable"),
    /// The upstream answered but the call's record could not be made durable:
    /// the service may have acted. Query the outcome by `txn_id` before
    /// retrying; never retry blindly.
    OutcomeUnknown = ("OUTCOME_UNKNOWN", 502, "the call reached the service but its outcome could not be confirmed; query it by txn_id before any retry"),
    /// The bank's response-signing key is unavailable, so a response that
    /// must be signed cannot be sent.
    SigningUnavailable = ("RESPONSE_SIGNING_UNAVAILABLE", 503, "the service cannot sign its responses right now; the call was not forwarded"),
    /// The gateway is at its memory or connection budget: retry later.
    ServerBusy = ("SERVER_BUSY", 503, "the service is busy; retry later"),
    /// The request head or body did not arrive in time.
    RequestTimeout = ("REQUEST_TIMEOUT", 408, "the request did not arrive in time"),
    /// An API that needs a customer's consent was called without an access
    /// token (USR-2).
    TokenMissing = ("TOKEN_MISSING", 401, "this API needs a customer's access token: send Authorization: Bearer <token>, covered by the signature"),
    /// The access token is unknown, expired, already used, revoked, another
    /// app's, or bound to another client certificate (TOK-1..4).
    TokenInvalid = ("TOKEN_INVALID", 401, "the access token is not valid for this call"),
    /// The token's consent is not authorised (awaiting, rejected, revoked,
    /// expired or consumed) (USR-3, USR-6).
    ConsentNotActive = ("CONSENT_NOT_ACTIVE", 403, "the customer's consent is not active"),
    /// The consent does not name this API (USR-2).
    ConsentScope = ("CONSENT_SCOPE", 403, "the customer's consent does not cover this API"),
    /// The account the call names is not among the consent's accounts
    /// (USR-4: no horizontal escalation).
    AccountNotConsented = ("ACCOUNT_NOT_CONSENTED", 403, "the customer's consent does not cover this account"),
    /// The consent's use or daily limit is reached (USR-3).
    ConsentLimitReached = ("CONSENT_LIMIT_REACHED", 429, "the consent's use limit is reached"),
    /// A flow-control rule's limit for the current window is reached (TRF-1);
    /// `Retry-After` and `RateLimit` say when the window ends. Nothing was
    /// forwarded.
    RateLimited = ("RATE_LIMITED", 429, "too many calls: the limit for this window is reached; retry after the window ends"),
    /// The app is paused by a flow-control `pause` rule (TRF-1) until
    /// `Retry-After` has passed; it comes back by itself. Nothing was
    /// forwarded.
    AppPaused = ("APP_PAUSED", 429, "the application is paused by flow control; retry after the pause ends"),
    /// The shared hot state (Redis) cannot answer, so replay protection,
    /// one-time tokens or flow-control limits cannot be checked: A2/A3 calls
    /// (and A1 calls under the `closed` policy) fail closed (issue 12 item
    /// 7). Nothing was forwarded; retry later with a new nonce.
    SharedStateUnavailable = ("SHARED_STATE_UNAVAILABLE", 503, "the service cannot check this call right now; it was not forwarded; retry later"),
    /// A query parameter or body field does not match the API's schema
    /// (LVL-5); the body's `pointer` names it. Nothing was forwarded.
    InvalidRequest = ("INVALID_REQUEST", 400, "a parameter or field does not match the API's definition; see pointer"),
    /// Screening found an injection or traversal pattern (ATK-1, `block`
    /// mode). Nothing was forwarded.
    SuspiciousInput = ("SUSPICIOUS_INPUT", 403, "the request was refused by the bank's input screening"),
    /// The request is nested too deep or carries too many strings to be
    /// screened whole (ATK-1). Nothing was forwarded.
    RequestTooComplex = ("REQUEST_TOO_COMPLEX", 400, "the request is nested too deeply or has too many fields"),
    /// A risk rule for fund movements refuses the transaction (RSK-1,
    /// RSK-2: amount per transaction or per day, counterparty, account
    /// type, unusual amount; action `reject`). Nothing was forwarded.
    RiskRejected = ("RISK_REJECTED", 403, "the transaction is refused by the bank's risk rules"),
    /// A risk rule holds the transaction for review by a bank officer
    /// (RSK-1, action `hold`). Nothing was forwarded; once the bank
    /// approves it, the same call (same amount and counterparty) is
    /// accepted once within the approval's window.
    RiskReviewRequired = ("RISK_REVIEW_REQUIRED", 403, "the transaction is held for review by the bank; send it again unchanged once the bank has approved it"),
    /// Anything else.
    Internal = ("INTERNAL_ERROR", 500, "an internal error occurred"),
}

impl ErrorBody {
    /// The body for `code` with its default message.
    pub fn new(code: ErrorCode, txn_id: &str) -> Self {
        ErrorBody {
            code: code.as_str().to_string(),
            message: code.message().to_string(),
            txn_id: txn_id.to_string(),
            pointer: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for c in ErrorCode::ALL {
            assert!(seen.insert(c.as_str()));
            assert_eq!(ErrorCode::from_code(c.as_str()), Some(*c));
            assert!((400..600).contains(&c.status()));
        }
    }
}
