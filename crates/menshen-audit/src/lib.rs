//! The tamper-evident audit log (AUD-1 to AUD-6, DEP-2).
//!
//! Every request the gateway receives, accepted or refused, becomes exactly
//! one [`AccessRecord`]; every admin change one [`AdminRecord`]. The
//! [`AuditLog`] writer appends them, hash-chained with SM3, to segment files;
//! it syncs them before answering any durable waiter (group commit) and seals
//! them with a checkpoint signed by the bank's audit key within 10 ms of a
//! durable record, 100 ms otherwise. [`verify::verify_dir`] proves integrity
//! offline with only the public key.
#![forbid(unsafe_code)]
// The ban list (clippy.toml): no `unwrap` outside tests (an `expect` names
// its invariant), no printing from a library (tracing instead).
#![deny(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::dbg_macro
)]

pub mod chain;
pub mod mask;
pub mod recover;
pub mod verify;
pub mod writer;

use serde::{Deserialize, Serialize};

pub use mask::{classify_key, mask_body, mask_json, mask_text, scrub_admin_json, KeyClass};
pub use writer::{
    AuditConfig, AuditError, AuditLog, AuditSigner, BatchSink, Committed, SinkProgress,
};

/// A record's key fields for the database index (AUD-2, AUD-6), handed to
/// the writer with the record itself, so the index need not parse the JSON
/// back (that parse was ~3% of a loaded A1 node's CPU).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordKeys {
    /// `access` or `admin`.
    pub kind: &'static str,
    /// Transaction serial number.
    pub txn_id: Option<String>,
    /// Start time, Unix milliseconds.
    pub time_ms: i64,
    /// App_ID.
    pub app_id: Option<String>,
    /// API_ID.
    pub api_id: Option<String>,
    /// End user, when known.
    pub user_id: Option<String>,
    /// `success`, `failure` or `unknown`.
    pub result: Option<&'static str>,
    /// HTTP status.
    pub status: Option<i64>,
    /// Error code.
    pub code: Option<String>,
    /// Duration, microseconds.
    pub duration_us: Option<i64>,
    /// Client IP as the gateway determined it (the alert rules' subject,
    /// ATK-2), for access and connection records.
    pub client_ip: Option<String>,
    /// Whether a valid signature verified `app_id`.
    pub app_verified: bool,
    /// The API's security level (`A1`..`A3`), when routed (MON-3).
    pub level: Option<String>,
    /// Whether the record carries a risk decision (RSK-1): the alert feed
    /// then reads the decision itself from the record's JSON (rare).
    pub has_risk: bool,
    /// The client certificate's fingerprint (mutual TLS), if one was
    /// presented: the certificate-network rule's subject (KEY-4, MON-3).
    pub client_cert: Option<String>,
}

/// The indexed fields of a record, borrowed from its JSON line (no value
/// tree): what [`RecordKeys::from_json`] reads.
#[derive(Deserialize, Default)]
struct JsonKeys<'a> {
    #[serde(borrow, default)]
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    txn_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    timestamp: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    app_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    api_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    user_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    actor: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    result: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    status: Option<i64>,
    #[serde(default)]
    duration_us: Option<i64>,
    #[serde(borrow, default)]
    code: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    client_ip: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    app_verified: bool,
    #[serde(borrow, default)]
    level: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    risk: Option<serde::de::IgnoredAny>,
    #[serde(borrow, default)]
    client_cert: Option<std::borrow::Cow<'a, str>>,
}

impl RecordKeys {
    /// The keys of a record read back from its JSON (the index catching up
    /// from the files after a crash): the same keys the gateway hands over
    /// with a live record. An admin record's actor is its user. Unparseable
    /// JSON gives empty keys of kind `access`.
    pub fn from_json(rec: &[u8]) -> RecordKeys {
        let k: JsonKeys<'_> = serde_json::from_slice(rec).unwrap_or_default();
        let s = |v: Option<std::borrow::Cow<'_, str>>| v.map(|x| x.into_owned());
        let time_ms = k
            .timestamp
            .as_deref()
            .and_then(|t| {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            })
            .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
            .unwrap_or_default();
        RecordKeys {
            kind: match k.kind.as_deref() {
                Some("admin") => "admin",
                Some("connection") => "connection",
                _ => "access",
            },
            txn_id: s(k.txn_id),
            time_ms,
            app_id: s(k.app_id),
            api_id: s(k.api_id),
            user_id: s(k.user_id).or_else(|| s(k.actor)),
            result: match k.result.as_deref() {
                Some("success") => Some("success"),
                Some("failure") => Some("failure"),
                Some("unknown") => Some("unknown"),
                _ => None,
            },
            status: k.status,
            code: s(k.code),
            duration_us: k.duration_us,
            client_ip: s(k.client_ip),
            app_verified: k.app_verified,
            level: s(k.level),
            has_risk: k.risk.is_some(),
            client_cert: s(k.client_cert),
        }
    }
}

impl Outcome {
    /// The name used in records and searches.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Unknown => "unknown",
        }
    }
}

impl AccessRecord {
    /// The record's index keys; `time_ms` is [`AccessRecord::timestamp`] as
    /// Unix milliseconds (the caller has it as a number already).
    pub fn into_keys(self, time_ms: i64) -> RecordKeys {
        RecordKeys {
            kind: if self.kind == "connection" {
                "connection"
            } else {
                "access"
            },
            result: Some(self.result.as_str()),
            status: Some(i64::from(self.status)),
            duration_us: Some(self.duration_us as i64),
            txn_id: Some(self.txn_id),
            time_ms,
            app_id: self.app_id,
            api_id: self.api_id,
            user_id: self.user_id,
            code: self.code,
            client_ip: Some(self.client_ip),
            app_verified: self.app_verified,
            level: self.level,
            has_risk: self.risk.is_some(),
            client_cert: self.client_cert,
        }
    }

    /// The record's index keys, copied (see [`AccessRecord::into_keys`]).
    pub fn keys(&self, time_ms: i64) -> RecordKeys {
        self.clone().into_keys(time_ms)
    }
}

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

/// One access record per request (AUD-1). Absent optional fields are
/// left out of the line (fewer bytes to hash, write and compress per call);
/// readers treat a missing field as empty.
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// Whether `app_id` was verified by a valid signature.
    pub app_verified: bool,
    /// API_ID, when routed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_id: Option<String>,
    /// U_API_ID, when routed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub u_api_id: Option<String>,
    /// Security level, when routed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Return information (the message sent, or the upstream status).
    pub message: String,
    /// Internal reason for auditors; never sent to the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Signature algorithm the request used (`hmac-sm3`, `sm2-sm3`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// The request's nonce, once the replay check recorded it (lets a
    /// restarted gateway keep refusing replays, INT-4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The signature's `created` (unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig_created: Option<i64>,
    /// Client certificate fingerprint (mutual TLS), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<String>,
    /// The customer the call's consent belongs to (USR-2), once the token
    /// named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The consent the call was made under (USR-2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_id: Option<String>,
    /// The W3C trace id of the call (the client's `traceparent`, if valid,
    /// else one the gateway started), 32 hex characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Retained message parts (AUD-4), masked (AUD-5); per the API's setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_parts: Option<serde_json::Value>,
    /// The risk rules' decision on a funds call (RSK-1): `decision`
    /// (`pass`, `alert`, `reject`, `hold`, `approved`, `unavailable`), the
    /// amount, the masked counterparty, the rules looked at, the breaches
    /// and the review item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<serde_json::Value>,
}

/// One admin change (ADM-1): who, what, before/after, when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminRecord {
    /// Record type, `admin`.
    pub kind: String,
    /// When (RFC 3339).
    pub timestamp: String,
    /// Admin token name.
    pub actor: String,
    /// `METHOD /path`.
    pub action: String,
    /// HTTP status of the change.
    pub status: u16,
    /// The state before (when the target could be read), secrets removed.
    pub before: Option<serde_json::Value>,
    /// The request and resulting state, secrets removed.
    pub request: Option<serde_json::Value>,
    /// The response, secrets removed.
    pub after: Option<serde_json::Value>,
}
