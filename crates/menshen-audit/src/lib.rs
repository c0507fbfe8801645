//! Access records (AUD-1) and the writer that persists them.
//!
//! Every request the gateway receives, accepted or rejected, becomes exactly
//! one [`AccessRecord`]. The [`AuditLog`] writer batches records on its own
//! thread and appends them as JSON lines with a flush and `fdatasync` per batch
//! (group commit). The tamper-evident chain of the audit issue wraps this same
//! record type.
#![forbid(unsafe_code)]

pub mod mask;
pub mod recover;
pub mod writer;

use serde::{Deserialize, Serialize};

pub use mask::mask_text;
pub use writer::{AuditError, AuditLog};

/// Outcome of a call (AUD-1): success, failure, or unknown (the upstream may
/// have acted but did not answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Answered 2xx/3xx by the upstream.
    Success,
    /// Rejected by the gateway, or a 4xx/5xx from the upstream.
    Failure,
    /// Timed out after the request was sent: the outcome is not known.
    Unknown,
}

/// One access record per request (AUD-1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessRecord {
    /// Record type, `access`.
    pub kind: String,
    /// Transaction serial number (交易流水号), unique across nodes.
    pub txn_id: String,
    /// Node that handled the request.
    pub node_id: String,
    /// Start time, RFC 3339 with milliseconds (UTC).
    pub timestamp: String,
    /// Duration in microseconds.
    pub duration_us: u64,
    /// App_ID, when known (claimed before authentication, verified after).
    pub app_id: Option<String>,
    /// Whether `app_id` was verified by a valid signature.
    pub app_verified: bool,
    /// API_ID, when routed.
    pub api_id: Option<String>,
    /// U_API_ID, when routed.
    pub u_api_id: Option<String>,
    /// Security level, when routed.
    pub level: Option<String>,
    /// Client IP as the gateway determined it.
    pub client_ip: String,
    /// TCP peer address.
    pub peer: String,
    /// HTTP method.
    pub method: String,
    /// Path, with account-like numbers masked.
    pub path: String,
    /// HTTP status sent to the client.
    pub status: u16,
    /// Success, failure or unknown.
    pub result: Outcome,
    /// Error code sent to the client, if any.
    pub code: Option<String>,
    /// Return information (the message sent, or the upstream status).
    pub message: String,
    /// Internal reason for auditors; never sent to the client.
    pub reason: Option<String>,
    /// Signature algorithm the request used (`hmac-sm3`, `sm2-sm3`, ...).
    #[serde(default)]
    pub alg: Option<String>,
    /// The request's nonce, once the replay check recorded it (lets a
    /// restarted gateway keep refusing replays, INT-4).
    #[serde(default)]
    pub nonce: Option<String>,
    /// The signature's `created` (unix seconds).
    #[serde(default)]
    pub sig_created: Option<i64>,
    /// Client certificate fingerprint (mutual TLS), if any.
    #[serde(default)]
    pub client_cert: Option<String>,
}
