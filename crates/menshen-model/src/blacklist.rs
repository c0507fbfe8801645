//! The app blacklist (TRF-3): an app listed by risk control is refused on
//! every call like a suspended one (`apps.status = blacklisted`); every
//! listing and delisting is kept with its reason and who did it.

use serde::{Deserialize, Serialize};

use crate::ValidationError;

str_enum!(
    /// One change of an app's blacklisting.
    BlacklistAction {
        /// Put on the blacklist.
        Add = "add",
        /// Taken off it (the app is active again).
        Remove = "remove",
    }
);

/// Longest reason accepted (characters).
pub const BLACKLIST_REASON_MAX: usize = 500;

/// One entry of the blacklist's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlacklistEvent {
    /// Row id (orders the history).
    pub id: i64,
    /// The app.
    pub app_id: String,
    /// Listed or delisted.
    pub action: BlacklistAction,
    /// Why (risk control's words).
    pub reason: String,
    /// The admin token's name that made the change.
    pub actor: String,
    /// When, RFC 3339.
    pub at: String,
}

/// An app to blacklist and why (one line of a bulk import).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlacklistEntry {
    /// The app.
    pub app_id: String,
    /// Why.
    pub reason: String,
}

impl BlacklistEntry {
    /// A reason must be given (risk control's record), at most
    /// [`BLACKLIST_REASON_MAX`] characters, one line.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.app_id.trim().is_empty() {
            return Err(ValidationError::new("app_id", "must not be empty"));
        }
        validate_reason(&self.reason)
    }
}

/// Check a blacklisting reason.
pub fn validate_reason(reason: &str) -> Result<(), ValidationError> {
    if reason.trim().is_empty() {
        return Err(ValidationError::new(
            "reason",
            "must be given: why the app is (un)blacklisted",
        ));
    }
    if reason.chars().count() > BLACKLIST_REASON_MAX {
        return Err(ValidationError::new(
            "reason",
            format!("must be at most {BLACKLIST_REASON_MAX} characters"),
        ));
    }
    if reason.chars().any(char::is_control) {
        return Err(ValidationError::new(
            "reason",
            "must be one line without control characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trf_3_a_reason_is_required_and_bounded() {
        let e = |app: &str, reason: &str| BlacklistEntry {
            app_id: app.into(),
            reason: reason.into(),
        };
        assert!(e("A1", "fraud reported").validate().is_ok());
        assert_eq!(e("A1", " ").validate().unwrap_err().field, "reason");
        assert_eq!(e("", "x").validate().unwrap_err().field, "app_id");
        assert_eq!(e("A1", "a\nb").validate().unwrap_err().field, "reason");
        let long = "x".repeat(BLACKLIST_REASON_MAX + 1);
        assert_eq!(e("A1", &long).validate().unwrap_err().field, "reason");
    }
}
