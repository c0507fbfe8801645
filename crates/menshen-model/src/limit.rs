//! Flow-control rules (TRF-1): at most `max` calls per window, counted per
//! rule over every call it matches (an app, an API, both, or all calls).

use serde::{Deserialize, Serialize};

use crate::ValidationError;

str_enum!(
    /// The counting window of a limit rule (TRF-1).
    LimitWindow { Second = "second", Minute = "minute", Day = "day" }
);

str_enum!(
    /// What happens to a call over a rule's limit (TRF-1).
    LimitAction {
        /// Refuse it: 429 `RATE_LIMITED`, nothing forwarded.
        Reject = "reject",
        /// Let it through; its access record and the log say which rule it exceeded.
        Alert = "alert",
    }
);

/// Seconds Asia/Shanghai (UTC+8, no daylight saving) is ahead of UTC.
pub const SHANGHAI_OFFSET_SECS: i64 = 8 * 3600;

impl LimitWindow {
    /// Length in seconds.
    pub fn secs(self) -> i64 {
        match self {
            LimitWindow::Second => 1,
            LimitWindow::Minute => 60,
            LimitWindow::Day => 86_400,
        }
    }

    /// The window holding `now` (unix seconds) as `[start, end)`. Seconds and
    /// minutes are aligned to UTC (the same in every zone); a day is the
    /// calendar day in Asia/Shanghai, 00:00 to 24:00 UTC+8.
    pub fn bounds(self, now: i64) -> (i64, i64) {
        let len = self.secs();
        let shift = match self {
            LimitWindow::Day => SHANGHAI_OFFSET_SECS,
            _ => 0,
        };
        let start = (now + shift).div_euclid(len) * len - shift;
        (start, start + len)
    }
}

/// A flow-control rule (TRF-1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitRule {
    /// Row id: never reused, so a new rule never inherits an old counter.
    pub id: i64,
    /// The App_ID it counts, or `None` for calls of every app.
    pub app_id: Option<String>,
    /// The API_ID it counts, or `None` for calls of every API.
    pub api_id: Option<String>,
    /// The counting window.
    pub window: LimitWindow,
    /// Most calls per window.
    pub max: u64,
    /// What happens to a call over the limit.
    pub action: LimitAction,
    /// When added.
    pub created_at: String,
}

impl LimitRule {
    /// Whether a call of `app_id` to `api_id` counts against this rule.
    pub fn matches(&self, app_id: &str, api_id: &str) -> bool {
        self.app_id.as_deref().is_none_or(|a| a == app_id)
            && self.api_id.as_deref().is_none_or(|a| a == api_id)
    }
}

/// Largest `max` accepted (stored as a signed 64-bit integer).
pub const LIMIT_MAX: u64 = i64::MAX as u64;

/// Input to add a limit rule.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewLimitRule {
    /// App_ID, or absent for every app.
    #[serde(default)]
    pub app_id: Option<String>,
    /// API_ID, or absent for every API.
    #[serde(default)]
    pub api_id: Option<String>,
    /// `second`, `minute` or `day` (Asia/Shanghai calendar day).
    pub window: LimitWindow,
    /// Most calls per window, at least 1.
    pub max: u64,
    /// `reject` (default) or `alert`.
    #[serde(default = "default_action")]
    pub action: LimitAction,
}

fn default_action() -> LimitAction {
    LimitAction::Reject
}

impl NewLimitRule {
    /// Check the fields; the error names the one that is wrong.
    pub fn validate(&self) -> Result<(), ValidationError> {
        for (field, v) in [("app_id", &self.app_id), ("api_id", &self.api_id)] {
            if v.as_deref().is_some_and(|s| s.trim().is_empty()) {
                return Err(ValidationError::new(
                    field,
                    "must not be empty; leave it out to count calls of every one",
                ));
            }
        }
        if self.max == 0 {
            return Err(ValidationError::new(
                "max",
                "must be at least 1 (to refuse every call, remove the grant or suspend the app)",
            ));
        }
        if self.max > LIMIT_MAX {
            return Err(ValidationError::new(
                "max",
                format!("must be at most {LIMIT_MAX}"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(app: Option<&str>, api: Option<&str>, max: u64) -> NewLimitRule {
        NewLimitRule {
            app_id: app.map(str::to_string),
            api_id: api.map(str::to_string),
            window: LimitWindow::Minute,
            max,
            action: LimitAction::Reject,
        }
    }

    #[test]
    fn trf_1_validation_names_the_field() {
        assert!(new(Some("app"), Some("api"), 5).validate().is_ok());
        assert!(new(None, None, 1).validate().is_ok());
        assert_eq!(new(None, None, 0).validate().unwrap_err().field, "max");
        assert_eq!(
            new(None, None, u64::MAX).validate().unwrap_err().field,
            "max"
        );
        assert_eq!(
            new(Some(" "), None, 3).validate().unwrap_err().field,
            "app_id"
        );
        assert_eq!(
            new(None, Some(""), 3).validate().unwrap_err().field,
            "api_id"
        );
        // Unknown windows and actions are refused when parsed, naming the field.
        let e = serde_json::from_str::<NewLimitRule>(r#"{"window":"month","max":1}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("month"), "{e}");
        let r: NewLimitRule = serde_json::from_str(r#"{"window":"day","max":2}"#).unwrap();
        assert_eq!(r.action, LimitAction::Reject, "reject by default");
    }

    #[test]
    fn trf_1_windows_and_the_shanghai_calendar_day() {
        // 2026-11-30T15:59:59Z is 23:59:59 in Shanghai; one second later is
        // the next Shanghai day.
        let before_midnight = 1_796_054_399;
        let (s, e) = LimitWindow::Day.bounds(before_midnight);
        assert_eq!(e, before_midnight + 1);
        assert_eq!(s, e - 86_400);
        assert_eq!((s + SHANGHAI_OFFSET_SECS) % 86_400, 0);
        let (s2, _) = LimitWindow::Day.bounds(before_midnight + 1);
        assert_eq!(s2, e);
        assert_eq!(LimitWindow::Minute.bounds(125), (120, 180));
        assert_eq!(LimitWindow::Second.bounds(125), (125, 126));
        assert_eq!(LimitWindow::Minute.bounds(-1), (-60, 0));
    }

    #[test]
    fn trf_1_a_rule_matches_its_app_and_api_or_any() {
        let mut r = LimitRule {
            id: 1,
            app_id: Some("a".into()),
            api_id: Some("x".into()),
            window: LimitWindow::Second,
            max: 1,
            action: LimitAction::Alert,
            created_at: String::new(),
        };
        assert!(r.matches("a", "x"));
        assert!(!r.matches("b", "x"));
        assert!(!r.matches("a", "y"));
        r.app_id = None;
        assert!(r.matches("b", "x"));
        r.api_id = None;
        assert!(r.matches("b", "y"));
    }
}
