//! Customers and their consents (USR-1..7, TOK-1..4): who the bank's
//! customer is, which accounts they own, and what they agreed an app may do.

use serde::{Deserialize, Serialize};

str_enum! {
    /// Where a consent is in its life (USR-3, USR-6).
    ConsentState {
        /// Created from a pushed authorization request; the customer has not
        /// decided yet (or, in agent mode, not every approver has).
        AwaitingAuthorisation = "awaiting_authorisation",
        /// Approved: calls within it are allowed.
        Authorised = "authorised",
        /// The customer declined.
        Rejected = "rejected",
        /// Revoked by the customer, the app or the bank.
        Revoked = "revoked",
        /// Past its validity end.
        Expired = "expired",
        /// Its use limit is reached.
        Consumed = "consumed",
    }
}

str_enum! {
    /// Who revoked a consent (USR-6).
    RevokedBy {
        /// The customer, on their own page.
        Customer = "customer",
        /// The app (RFC 7009 or `DELETE` on the consent).
        App = "app",
        /// The bank (admin API or CLI), or a suspension or exit of the app.
        Bank = "bank",
    }
}

str_enum! {
    /// How tokens behave (TOK-3, TOK-4), chosen per deployment.
    TokenProfile {
        /// At most 300 s, usable once (CMBC's rule; the default).
        Cmbc = "cmbc",
        /// 2 h; issuing a new token voids the app's previous one for that
        /// customer (ZJRCB's rule).
        Zjrcb = "zjrcb",
        /// 10 min, reusable; a refresh token, rotated on each use.
        Standard = "standard",
    }
}

impl TokenProfile {
    /// Access token lifetime, seconds.
    pub fn lifetime_secs(self) -> i64 {
        match self {
            TokenProfile::Cmbc => 300,
            TokenProfile::Zjrcb => 7200,
            TokenProfile::Standard => 600,
        }
    }
    /// Whether an access token works for one call only.
    pub fn one_time(self) -> bool {
        matches!(self, TokenProfile::Cmbc)
    }
    /// Whether a refresh token is issued.
    pub fn refreshes(self) -> bool {
        matches!(self, TokenProfile::Standard)
    }
    /// Whether a new token voids the app's previous one for the customer.
    pub fn one_live_token(self) -> bool {
        matches!(self, TokenProfile::Zjrcb)
    }
}

/// A bank customer as the platform knows them (USR-1). Credentials are not
/// part of this type: the store keeps them apart, hashed or sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    /// Stable id (`C` + 26 characters), what the upstream receives.
    pub user_id: String,
    /// Login name.
    pub username: String,
    /// Name shown on the bank's pages.
    pub display_name: String,
    /// Account numbers the customer owns.
    pub accounts: Vec<String>,
    /// Whether a TOTP second factor is enrolled (required for A3 scopes).
    pub has_totp: bool,
    /// Unix seconds until which logins are refused after repeated failures.
    pub locked_until: Option<i64>,
}

/// A customer's consent to one app (USR-2..USR-5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    /// `CN` + 26 characters.
    pub consent_id: String,
    /// The app it was given to.
    pub app_id: String,
    /// The customer who gave it; `None` until they logged in.
    pub user_id: Option<String>,
    /// API_IDs it covers (the request's `scope`).
    pub scopes: Vec<String>,
    /// Accounts the customer selected, among those they own.
    pub accounts: Vec<String>,
    /// State.
    pub state: ConsentState,
    /// Validity end, unix seconds.
    pub expires_at: i64,
    /// Most calls in total; `None`: until `expires_at`.
    pub use_limit: Option<u32>,
    /// Most calls per calendar day (Asia/Shanghai); `None`: no daily limit.
    pub daily_limit: Option<u32>,
    /// Calls made so far.
    pub uses: u32,
    /// Agent mode (USR-5): a second customer who must also approve.
    pub agent_user_id: Option<String>,
    /// Whether the agent approved (agent mode only).
    pub agent_approved: bool,
    /// Whether a second factor was used at approval (A3 scopes need it).
    pub two_factor: bool,
    /// Created, unix seconds.
    pub created_at: i64,
    /// Approved (every approver), unix seconds.
    pub authorised_at: Option<i64>,
    /// Who revoked it, when revoked.
    pub revoked_by: Option<RevokedBy>,
    /// When it left `authorised` (revoked, expired, consumed), unix seconds.
    pub ended_at: Option<i64>,
}

impl Consent {
    /// Whether it allows a call at `now` (state, validity end, use limit).
    pub fn usable_at(&self, now: i64) -> bool {
        self.state == ConsentState::Authorised
            && now < self.expires_at
            && self.use_limit.is_none_or(|l| self.uses < l)
    }
}

/// How an API names the account a call concerns (USR-4: horizontal
/// escalation refused). Set on APIs that need customer consent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ConsentRule {
    /// Whether calls need a customer token and consent.
    pub required: bool,
    /// The path parameter holding the account (e.g. `account_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_param: Option<String>,
    /// Or a JSON Pointer into the request body (e.g. `/payer/account`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_pointer: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usr_3_usable_only_authorised_unexpired_and_under_the_limit() {
        let mut c = Consent {
            consent_id: "CN1".into(),
            app_id: "A".into(),
            user_id: Some("C1".into()),
            scopes: vec!["bal".into()],
            accounts: vec!["6222020000000001".into()],
            state: ConsentState::Authorised,
            expires_at: 100,
            use_limit: Some(1),
            daily_limit: None,
            uses: 0,
            agent_user_id: None,
            agent_approved: false,
            two_factor: false,
            created_at: 0,
            authorised_at: Some(1),
            revoked_by: None,
            ended_at: None,
        };
        assert!(c.usable_at(99));
        assert!(!c.usable_at(100));
        c.uses = 1;
        assert!(!c.usable_at(50));
        c.uses = 0;
        c.state = ConsentState::Revoked;
        assert!(!c.usable_at(50));
        assert_eq!(TokenProfile::parse("cmbc"), Some(TokenProfile::Cmbc));
        assert!(TokenProfile::Cmbc.one_time() && TokenProfile::Cmbc.lifetime_secs() <= 300);
    }
}
