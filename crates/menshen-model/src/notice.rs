//! Notices to an application party (MON-4, KEY-4): what the bank POSTs to
//! the app's registered notification URL (应用方通知地址), kept in the
//! store with their delivery state, one per key (a credential's expiry
//! threshold, a suspension), so a notice is sent once across restarts
//! and nodes.

use serde::{Deserialize, Serialize};

str_enum!(
    /// Where a notice's delivery stands.
    NoticeState {
        /// Not delivered yet (being tried, or to be tried again).
        Pending = "pending",
        /// The app's receiver answered 2xx.
        Delivered = "delivered",
        /// Every attempt failed; the bank's operators were alerted.
        Failed = "failed",
    }
);

/// A notice as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppNotice {
    /// Row id; the notice's `id` on the wire is `notice-<id>`.
    pub id: i64,
    /// De-duplication key (`expiry:credential:42:7d`, `suspended:...`).
    pub key: String,
    /// The app it is for.
    pub app_id: String,
    /// `credential_expiry`, `app_suspended`.
    pub kind: String,
    /// The JSON body sent (docs/protocol.md, "Notices to your app").
    pub body: serde_json::Value,
    /// Delivery state.
    pub state: NoticeState,
    /// Attempts made so far.
    pub attempts: i64,
    /// The last failure, if any (status or connection error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Last state change (RFC 3339).
    pub updated_at: String,
}

/// A notice to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAppNotice {
    /// See [`AppNotice::key`].
    pub key: String,
    /// See [`AppNotice::app_id`].
    pub app_id: String,
    /// See [`AppNotice::kind`].
    pub kind: String,
    /// See [`AppNotice::body`].
    pub body: serde_json::Value,
}
