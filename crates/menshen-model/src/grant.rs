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
}
