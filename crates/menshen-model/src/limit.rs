//! Flow-control rules (TRF-1): at most `max` calls per window (or in flight
//! at once), counted per rule over every call it matches (an app, an API,
//! both, or all calls), in one counter or one per client IP, app, API or
//! customer (`per`).

use serde::{Deserialize, Serialize};

use crate::ValidationError;

str_enum!(
    /// The counting window of a limit rule (TRF-1).
    LimitWindow {
        /// A UTC-aligned second.
        Second = "second",
        /// A UTC-aligned minute.
        Minute = "minute",
        /// A calendar day in Asia/Shanghai (00:00 to 24:00 UTC+8).
        Day = "day",
        /// A calendar month in Asia/Shanghai.
        Month = "month",
        /// Not a window: at most `max` calls in flight at once (a slot
        /// taken when admitted, given back when the exchange ends).
        Concurrent = "concurrent",
    }
);

str_enum!(
    /// What one counter of a rule counts (TRF-1): every matching call
    /// together, or each client IP's, app's, API's or customer's apart.
    LimitPer {
        /// One counter for every call the rule matches.
        All = "all",
        /// One counter per client IP (as the `client_ip` stage found it).
        Ip = "ip",
        /// One counter per app.
        App = "app",
        /// One counter per API.
        Api = "api",
        /// One counter per customer (the consent token's user); calls
        /// without a customer are not counted by such a rule.
        Customer = "customer",
    }
);

str_enum!(
    /// What happens to a call over a rule's limit (TRF-1).
    LimitAction {
        /// Refuse it: 429 `RATE_LIMITED`, nothing forwarded.
        Reject = "reject",
        /// Let it through; its access record and the log say which rule it exceeded.
        Alert = "alert",
        /// Refuse it and pause the app for `pause_secs`: every call of the
        /// app is refused (429 `APP_PAUSED`) until then; it comes back by
        /// itself.
        Pause = "pause",
    }
);

/// Seconds Asia/Shanghai (UTC+8, no daylight saving) is ahead of UTC.
pub const SHANGHAI_OFFSET_SECS: i64 = 8 * 3600;

/// Longest pause a `pause` rule may set (30 days).
pub const PAUSE_MAX_SECS: u64 = 30 * 86_400;

impl LimitWindow {
    /// Nominal length in seconds (a month: 30 days; concurrency: 0), for
    /// the `w` of the `RateLimit-Policy` header.
    pub fn secs(self) -> i64 {
        match self {
            LimitWindow::Second => 1,
            LimitWindow::Minute => 60,
            LimitWindow::Day => 86_400,
            LimitWindow::Month => 30 * 86_400,
            LimitWindow::Concurrent => 0,
        }
    }

    /// The window holding `now` (unix seconds) as `[start, end)`. Seconds and
    /// minutes are aligned to UTC (the same in every zone); a day is the
    /// calendar day in Asia/Shanghai, 00:00 to 24:00 UTC+8; a month the
    /// calendar month there. `Concurrent` is no window: `(now, now)`.
    pub fn bounds(self, now: i64) -> (i64, i64) {
        let s = SHANGHAI_OFFSET_SECS;
        match self {
            LimitWindow::Second | LimitWindow::Minute | LimitWindow::Day => {
                let len = self.secs();
                let shift = if self == LimitWindow::Day { s } else { 0 };
                let start = (now + shift).div_euclid(len) * len - shift;
                (start, start + len)
            }
            LimitWindow::Month => {
                let (y, m, _) = civil_from_days((now + s).div_euclid(86_400));
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                (
                    days_from_civil(y, m, 1) * 86_400 - s,
                    days_from_civil(ny, nm, 1) * 86_400 - s,
                )
            }
            LimitWindow::Concurrent => (now, now),
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm; the Redis script uses the same).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date (year, month, day) `z` days after 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400;
    (if m <= 2 { y + 1 } else { y }, m, d)
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
    /// Most calls per window (or in flight at once).
    pub max: u64,
    /// What happens to a call over the limit.
    pub action: LimitAction,
    /// What one counter counts (all matching calls, or per IP, app, API
    /// or customer).
    #[serde(default = "default_per")]
    pub per: LimitPer,
    /// How long a `pause` rule pauses the app (seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_secs: Option<u64>,
    /// When added.
    pub created_at: String,
}

fn default_per() -> LimitPer {
    LimitPer::All
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
    /// `second`, `minute`, `day` or `month` (Asia/Shanghai calendar day
    /// and month), or `concurrent` (calls in flight at once).
    pub window: LimitWindow,
    /// Most calls per window (or in flight), at least 1.
    pub max: u64,
    /// `reject` (default), `alert` or `pause`.
    #[serde(default = "default_action")]
    pub action: LimitAction,
    /// `all` (default: one counter), `ip`, `app`, `api` or `customer`.
    #[serde(default = "default_per")]
    pub per: LimitPer,
    /// Seconds a `pause` rule pauses the app (1 to 30 days); only with
    /// `pause`.
    #[serde(default)]
    pub pause_secs: Option<u64>,
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
        match (self.action, self.pause_secs) {
            (LimitAction::Pause, None) => {
                return Err(ValidationError::new(
                    "pause_secs",
                    "a pause rule needs pause_secs: how long the app is paused",
                ))
            }
            (LimitAction::Pause, Some(p)) if p == 0 || p > PAUSE_MAX_SECS => {
                return Err(ValidationError::new(
                    "pause_secs",
                    format!("must be 1 to {PAUSE_MAX_SECS} seconds"),
                ))
            }
            (LimitAction::Reject | LimitAction::Alert, Some(_)) => {
                return Err(ValidationError::new(
                    "pause_secs",
                    "only a pause rule takes pause_secs",
                ))
            }
            _ => {}
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
            per: LimitPer::All,
            pause_secs: None,
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
        let e = serde_json::from_str::<NewLimitRule>(r#"{"window":"year","max":1}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("year"), "{e}");
        let mut p = new(None, None, 3);
        p.action = LimitAction::Pause;
        assert_eq!(p.validate().unwrap_err().field, "pause_secs");
        p.pause_secs = Some(60);
        assert!(p.validate().is_ok());
        p.pause_secs = Some(PAUSE_MAX_SECS + 1);
        assert_eq!(p.validate().unwrap_err().field, "pause_secs");
        p.action = LimitAction::Alert;
        p.pause_secs = Some(5);
        assert_eq!(p.validate().unwrap_err().field, "pause_secs");
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
    fn trf_1_the_shanghai_calendar_month() {
        // 2026-11-30T16:00:00Z is 2026-12-01 00:00 in Shanghai.
        let dec1 = 1_796_054_400;
        let (s, e) = LimitWindow::Month.bounds(dec1 - 1);
        assert_eq!(e, dec1, "November ends at Shanghai midnight");
        assert_eq!(e - s, 30 * 86_400);
        let (s, e) = LimitWindow::Month.bounds(dec1);
        assert_eq!((s, e - s), (dec1, 31 * 86_400));
        // February of a leap year, and a year's turn.
        let feb = days_from_civil(2028, 2, 1) * 86_400 - SHANGHAI_OFFSET_SECS;
        assert_eq!(LimitWindow::Month.bounds(feb + 5), (feb, feb + 29 * 86_400));
        let (_, e) = LimitWindow::Month.bounds(days_from_civil(2026, 12, 31) * 86_400);
        assert_eq!(
            civil_from_days((e + SHANGHAI_OFFSET_SECS) / 86_400),
            (2027, 1, 1)
        );
        for z in [-1000, 0, 59, 365, 11_016, 20_000, 100_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
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
            per: LimitPer::All,
            pause_secs: None,
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
