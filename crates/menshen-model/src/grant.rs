//! Grants (ONB-3).

use serde::{Deserialize, Serialize};

/// A grant: one app may call one API (ONB-3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// App_ID.
    pub app_id: String,
    /// API_ID.
    pub api_id: String,
    /// When granted, RFC 3339.
    pub created_at: String,
    /// Approved for clearing/reconciliation (CONF-3): this app sees the
    /// API's responses unmasked.
    #[serde(default)]
    pub clearing: bool,
    /// The administrator who approved (or last withdrew) clearing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clearing_approved_by: Option<String>,
    /// When, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clearing_approved_at: Option<String>,
}
