//! Application parties (应用方): kind, status, the record and its input.

use serde::{Deserialize, Serialize};

use crate::ValidationError;

str_enum!(
    /// Kind of application party (ONB-5): a server application, or a mobile app
    /// that may call only A1 APIs (LVL-4).
    AppKind { Server = "server", Mobile = "mobile" }
);

str_enum!(
    /// Status of an application party, checked on every call (AUTH-4).
    AppStatus {
        /// May call the APIs it is granted.
        Active = "active",
        /// Temporarily cut off.
        Suspended = "suspended",
        /// Blacklisted by risk control (TRF-3).
        Blacklisted = "blacklisted",
        /// Left the platform; all credentials void (EXIT-1).
        Exited = "exited"
    }
);
/// An application party (应用方).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    /// Immutable App_ID (应用唯一标识), issued by the platform (ONB-2).
    pub app_id: String,
    /// Display name.
    pub name: String,
    /// Server or mobile (ONB-5).
    pub kind: AppKind,
    /// Status (AUTH-4).
    pub status: AppStatus,
    /// Whether every call must come over mutual TLS with one of the app's
    /// registered client certificates.
    #[serde(default)]
    pub require_client_cert: bool,
    /// Contact for notices.
    pub contact: Option<String>,
    /// Creation time, RFC 3339.
    pub created_at: String,
}

/// Input to create an application party.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewApp {
    /// Display name, 1-128 characters.
    pub name: String,
    /// `server` or `mobile`.
    pub kind: AppKind,
    /// Optional contact (email).
    #[serde(default)]
    pub contact: Option<String>,
}

impl NewApp {
    /// Check every field.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let n = self.name.trim();
        if n.is_empty() || n.chars().count() > 128 {
            return Err(ValidationError::new(
                "name",
                "must be 1-128 characters (the application party's display name)",
            ));
        }
        if n.chars().any(char::is_control) {
            return Err(ValidationError::new(
                "name",
                "must not contain control characters",
            ));
        }
        if let Some(c) = &self.contact {
            if c.len() > 256 || c.chars().any(char::is_control) {
                return Err(ValidationError::new(
                    "contact",
                    "must be at most 256 printable characters",
                ));
            }
        }
        Ok(())
    }
}
