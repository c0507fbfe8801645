//! Risk rules for fund movements (RSK-1, RSK-2): per app, matched to its
//! assessed risk capacity, the largest amount per transaction and per day
//! (the Asia/Shanghai calendar day), the counterparties or account types it
//! may pay, and an unusual-amount rule against the app's own history. A
//! funds API names where its request carries the amount, counterparty and
//! account type ([`RiskFields`], JSON Pointers, in the API's controls).
//! A breach is alerted, rejected, or held for a bank officer's review
//! ([`RiskReview`]), whose approval lets that exact call through once.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ValidationError;

str_enum!(
    /// What happens to a call that breaks a risk rule (RSK-1).
    RiskAction {
        /// Let it through; its access record names the rule (and an alert is raised).
        Alert = "alert",
        /// Refuse it: 403 `RISK_REJECTED`, nothing forwarded.
        Reject = "reject",
        /// Refuse it: 403 `RISK_REVIEW_REQUIRED`; a review item is created,
        /// and an officer's approval lets the same call through once within
        /// the rule's review window.
        Hold = "hold",
    }
);

impl RiskAction {
    /// Severity order: reject > hold > alert (the strongest breached rule
    /// decides).
    pub fn rank(self) -> u8 {
        match self {
            RiskAction::Alert => 0,
            RiskAction::Hold => 1,
            RiskAction::Reject => 2,
        }
    }
}

str_enum!(
    /// Where a review item stands (RSK-1).
    ReviewState {
        /// Waiting for an officer.
        Pending = "pending",
        /// Approved: the same call may be retried once until `approved_until`.
        Approved = "approved",
        /// Refused by an officer.
        Rejected = "rejected",
        /// The approved retry was made (`used_txn_id`).
        Used = "used",
    }
);

/// Largest amount accepted, in fen (10^15 fen = 10^13 yuan; exact in the
/// hot state's Lua doubles).
pub const AMOUNT_MAX_FEN: u64 = 1_000_000_000_000_000;

/// An amount of money in fen (1/100 of a yuan), written as a decimal string
/// with two places (`"1234.50"`), read from a JSON number or string with at
/// most two decimal places.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(pub u64);

impl Amount {
    /// Parse `"1234"`, `"1234.5"`, `"1234.50"` (no sign, no exponent, at
    /// most two decimal places, at most [`AMOUNT_MAX_FEN`]).
    pub fn parse(s: &str) -> Option<Amount> {
        let s = s.trim();
        let (int, frac) = match s.split_once('.') {
            Some((i, f)) => (i, f),
            None => (s, ""),
        };
        if int.is_empty()
            || int.len() > 16
            || frac.len() > 2
            || !int.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
            || (s.contains('.') && frac.is_empty())
        {
            return None;
        }
        let whole: u64 = int.parse().ok()?;
        let mut cents: u64 = 0;
        for (i, b) in frac.bytes().enumerate() {
            cents += u64::from(b - b'0') * if i == 0 { 10 } else { 1 };
        }
        let fen = whole.checked_mul(100)?.checked_add(cents)?;
        (fen <= AMOUNT_MAX_FEN).then_some(Amount(fen))
    }

    /// From a JSON value: a number or a string holding one.
    pub fn from_json(v: &serde_json::Value) -> Option<Amount> {
        match v {
            serde_json::Value::Number(n) => Amount::parse(&n.to_string()),
            serde_json::Value::String(s) => Amount::parse(s),
            _ => None,
        }
    }
}

impl std::fmt::Display for Amount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        Amount::from_json(&v).ok_or_else(|| {
            serde::de::Error::custom(
                "an amount: a decimal number of yuan with at most two places, e.g. \"50000.00\"",
            )
        })
    }
}

/// Where a funds API's request carries the figures its risk rules read
/// (RSK-1): JSON Pointers (RFC 6901) into the request body as the upstream
/// receives it (after any decryption). An API without `amount` is not a
/// funds API: no risk rule applies to it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskFields {
    /// The amount (a number or decimal string of yuan, at most two places).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<String>,
    /// The counterparty (payee account or id), a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counterparty: Option<String>,
    /// The payee's account type, a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_type: Option<String>,
}

impl RiskFields {
    /// Nothing configured (not serialized then).
    pub fn is_unset(&self) -> bool {
        self == &RiskFields::default()
    }

    /// Whether this API moves funds (has an amount pointer).
    pub fn is_funds(&self) -> bool {
        self.amount.is_some()
    }

    /// Each pointer is empty or starts with `/`, at most 256 characters.
    pub fn validate(&self) -> Result<(), ValidationError> {
        for (name, p) in [
            ("controls.risk.amount", &self.amount),
            ("controls.risk.counterparty", &self.counterparty),
            ("controls.risk.account_type", &self.account_type),
        ] {
            if let Some(p) = p {
                if !(p.starts_with('/') && p.len() <= 256) {
                    return Err(ValidationError::new(
                        name,
                        "must be a JSON Pointer (RFC 6901) into the request body, starting with `/`, at most 256 characters",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A risk rule (RSK-2): the limits one app's fund movements keep, for one
/// funds API or all of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskRule {
    /// Row id: never reused (the daily sums are keyed by it).
    pub id: i64,
    /// The app.
    pub app_id: String,
    /// The funds API, or `None` for every funds API of the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_id: Option<String>,
    /// The app's assessed risk capacity this rule derives from (a label or
    /// the assessment's reference), for auditors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<String>,
    /// Largest amount of one transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_txn: Option<Amount>,
    /// Largest sum per Asia/Shanghai calendar day (the calls this rule let
    /// through, summed in the hot state).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_day: Option<Amount>,
    /// The only counterparties allowed (exact match).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counterparties: Option<Vec<String>>,
    /// The only payee account types allowed (exact match).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_types: Option<Vec<String>>,
    /// Unusual amount: more than this many times the app's rolling mean
    /// amount for the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unusual_multiple: Option<u32>,
    /// The unusual-amount rule applies only once the mean is built from at
    /// least this many calls.
    pub unusual_min_count: u32,
    /// What happens to a call that breaks the rule.
    pub action: RiskAction,
    /// For `hold`: how long an officer's approval lets the same call be
    /// retried (seconds).
    pub review_window_secs: u64,
    /// When added.
    pub created_at: String,
}

impl RiskRule {
    /// Whether a call of `app_id` to `api_id` is under this rule.
    pub fn matches(&self, app_id: &str, api_id: &str) -> bool {
        self.app_id == app_id && self.api_id.as_deref().is_none_or(|a| a == api_id)
    }
}

/// Default [`NewRiskRule::unusual_min_count`].
pub const UNUSUAL_MIN_COUNT_DEFAULT: u32 = 20;
/// Default [`NewRiskRule::review_window_secs`] (one hour).
pub const REVIEW_WINDOW_DEFAULT_SECS: u64 = 3600;
/// Longest review window (7 days).
pub const REVIEW_WINDOW_MAX_SECS: u64 = 7 * 86_400;

/// Input to add a risk rule.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewRiskRule {
    /// App_ID.
    pub app_id: String,
    /// API_ID, or absent for every funds API of the app.
    #[serde(default)]
    pub api_id: Option<String>,
    /// Assessed risk capacity (label or reference), at most 128 characters.
    #[serde(default)]
    pub capacity: Option<String>,
    /// Largest amount per transaction (yuan, e.g. `"50000.00"`).
    #[serde(default)]
    pub max_per_txn: Option<Amount>,
    /// Largest sum per Asia/Shanghai day.
    #[serde(default)]
    pub max_per_day: Option<Amount>,
    /// Allowed counterparties.
    #[serde(default)]
    pub counterparties: Option<Vec<String>>,
    /// Allowed payee account types.
    #[serde(default)]
    pub account_types: Option<Vec<String>>,
    /// Unusual amount: more than this many times the rolling mean (2-1000).
    #[serde(default)]
    pub unusual_multiple: Option<u32>,
    /// Minimum history for the unusual-amount rule (default 20).
    #[serde(default = "default_min_count")]
    pub unusual_min_count: u32,
    /// `alert`, `reject` (default) or `hold`.
    #[serde(default = "default_action")]
    pub action: RiskAction,
    /// For `hold`: seconds an approval lasts (default 3600, at most 7 days).
    #[serde(default = "default_window")]
    pub review_window_secs: u64,
}

fn default_min_count() -> u32 {
    UNUSUAL_MIN_COUNT_DEFAULT
}
fn default_action() -> RiskAction {
    RiskAction::Reject
}
fn default_window() -> u64 {
    REVIEW_WINDOW_DEFAULT_SECS
}

impl NewRiskRule {
    /// Check the input, naming the field.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.max_per_txn.is_none()
            && self.max_per_day.is_none()
            && self.counterparties.is_none()
            && self.account_types.is_none()
            && self.unusual_multiple.is_none()
        {
            return Err(ValidationError::new(
                "max_per_txn",
                "a rule needs at least one of max_per_txn, max_per_day, counterparties, account_types, unusual_multiple",
            ));
        }
        if self.capacity.as_ref().is_some_and(|c| c.len() > 128) {
            return Err(ValidationError::new("capacity", "at most 128 characters"));
        }
        for (name, list) in [
            ("counterparties", &self.counterparties),
            ("account_types", &self.account_types),
        ] {
            if let Some(l) = list {
                if l.is_empty() || l.len() > 1000 || l.iter().any(|s| s.is_empty() || s.len() > 128)
                {
                    return Err(ValidationError::new(
                        name,
                        "1-1000 entries of 1-128 characters",
                    ));
                }
            }
        }
        if self
            .unusual_multiple
            .is_some_and(|k| !(2..=1000).contains(&k))
        {
            return Err(ValidationError::new("unusual_multiple", "2 to 1000"));
        }
        if self.unusual_min_count == 0 || self.unusual_min_count > 1_000_000 {
            return Err(ValidationError::new("unusual_min_count", "1 to 1000000"));
        }
        if self.review_window_secs == 0 || self.review_window_secs > REVIEW_WINDOW_MAX_SECS {
            return Err(ValidationError::new(
                "review_window_secs",
                "1 second to 7 days",
            ));
        }
        Ok(())
    }
}

/// A held call waiting for (or decided by) a bank officer (RSK-1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskReview {
    /// Row id.
    pub id: i64,
    /// The app.
    pub app_id: String,
    /// The API.
    pub api_id: String,
    /// The amount of the held call.
    pub amount: Amount,
    /// The counterparty, masked for display (all but the last 4 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counterparty: Option<String>,
    /// SHA-256 (hex) of app, API, amount and counterparty: the exact call an
    /// approval lets through.
    pub fingerprint: String,
    /// Transaction serial number of the held call.
    pub txn_id: String,
    /// Why it was held (the rules broken).
    pub reason: String,
    /// How long an approval lets the call be retried (seconds).
    pub window_secs: u64,
    /// Where it stands.
    pub state: ReviewState,
    /// When created (RFC 3339).
    pub created_at: String,
    /// Who decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// When decided (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<String>,
    /// Approved: the retry is accepted until then (unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_until: Option<i64>,
    /// The retry that used the approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_txn_id: Option<String>,
}

/// A held call, as the gateway reports it (the store makes it a
/// [`RiskReview`] or matches it to an approved one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldCall {
    /// The app.
    pub app_id: String,
    /// The API.
    pub api_id: String,
    /// The amount.
    pub amount: Amount,
    /// The counterparty, masked.
    pub counterparty_masked: Option<String>,
    /// See [`RiskReview::fingerprint`].
    pub fingerprint: String,
    /// The call's serial number.
    pub txn_id: String,
    /// The rules broken.
    pub reason: String,
    /// How long an approval lasts (the longest window of the holding rules).
    pub window_secs: u64,
}

/// What became of a held call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldOutcome {
    /// An approved review matched: the call goes through (the review is
    /// now `used`).
    Approved(RiskReview),
    /// It waits for review (a new item, or the pending one of the same call).
    Pending(RiskReview),
}

/// `***` and the last 4 characters (all of a value of 4 or fewer is masked).
pub fn mask_counterparty(s: &str) -> String {
    let n = s.chars().count();
    if n <= 4 {
        return "***".into();
    }
    let tail: String = s.chars().skip(n - 4).collect();
    format!("***{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsk_2_amounts_parse_exactly_in_fen() {
        assert_eq!(Amount::parse("1234"), Some(Amount(123_400)));
        assert_eq!(Amount::parse("1234.5"), Some(Amount(123_450)));
        assert_eq!(Amount::parse("0.07"), Some(Amount(7)));
        for bad in [
            "",
            "-1",
            "1.",
            ".5",
            "1.234",
            "1e3",
            "abc",
            "1 000",
            "99999999999999999",
        ] {
            assert_eq!(Amount::parse(bad), None, "{bad}");
        }
        assert_eq!(
            Amount::from_json(&serde_json::json!(50000.25)),
            Some(Amount(5_000_025))
        );
        assert_eq!(Amount(5_000_025).to_string(), "50000.25");
        let r: NewRiskRule =
            serde_json::from_value(serde_json::json!({"app_id":"a","max_per_txn":"100"})).unwrap();
        assert_eq!(r.max_per_txn, Some(Amount(10_000)));
        assert_eq!(r.action, RiskAction::Reject);
        r.validate().unwrap();
    }

    #[test]
    fn rsk_2_a_rule_needs_a_condition_and_sane_values() {
        let mut r: NewRiskRule = serde_json::from_value(serde_json::json!({"app_id":"a"})).unwrap();
        assert_eq!(r.validate().unwrap_err().field, "max_per_txn");
        r.unusual_multiple = Some(1);
        assert_eq!(r.validate().unwrap_err().field, "unusual_multiple");
        r.unusual_multiple = Some(5);
        r.validate().unwrap();
        assert_eq!(mask_counterparty("6222020200001234"), "***1234");
        assert_eq!(mask_counterparty("123"), "***");
    }
}
