//! Alerts to the bank's operators (MON-2, TRF-4, ATK-2, RSK-1): graded by
//! severity, de-duplicated by a key (one unresolved alert per key: a repeat
//! counts on it instead of raising another), followed up through a state
//! (open, acknowledged, resolved).

use serde::{Deserialize, Serialize};

str_enum!(
    /// How bad it is (MON-2).
    AlertSeverity {
        /// Worth knowing.
        Info = "info",
        /// Needs a look.
        Warning = "warning",
        /// Needs action now.
        Critical = "critical",
    }
);

str_enum!(
    /// Where an alert stands (the ticket's follow-up, MON-2).
    AlertState {
        /// Raised, nobody has taken it.
        Open = "open",
        /// Someone took it.
        Acknowledged = "acknowledged",
        /// Dealt with; a repeat raises a new alert.
        Resolved = "resolved",
    }
);

/// An alert as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// Row id.
    pub id: i64,
    /// The rule that raised it (`auth_failures`, `credential_stuffing`,
    /// `not_granted`, `failure_rate`, `upstream_down`, `breaker_open`,
    /// `audit_durability`, `risk`, ...).
    pub rule: String,
    /// De-duplication key: the rule and what it is about (an App_ID, an
    /// API_ID, a client IP).
    pub key: String,
    /// Severity.
    pub severity: AlertSeverity,
    /// One line for people.
    pub summary: String,
    /// What the rule saw (figures, ids, sample transaction numbers).
    pub details: serde_json::Value,
    /// Where it stands.
    pub state: AlertState,
    /// Times it was raised while unresolved (1 at first).
    pub count: i64,
    /// First raised (RFC 3339).
    pub first_at: String,
    /// Last raised (RFC 3339).
    pub last_at: String,
    /// Who acknowledged or resolved it last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
}

/// An alert to raise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAlert {
    /// See [`Alert::rule`].
    pub rule: String,
    /// See [`Alert::key`].
    pub key: String,
    /// Severity.
    pub severity: AlertSeverity,
    /// One line.
    pub summary: String,
    /// Details.
    pub details: serde_json::Value,
}
