//! The control-plane store: application parties, credentials, the API catalog,
//! U_API_ID registry, grants, IP rules, flow-control rules, admin tokens, bank customers and their
//! consents behind the [`Store`]
//! trait (SQLite embedded, PostgreSQL for a cluster: [`PgStore`]), plus the shared
//! hot state (nonces) behind [`HotState`].
#![forbid(unsafe_code)]
// The ban list (clippy.toml): no `unwrap` outside tests (an `expect` names
// its invariant), no printing from a library (tracing instead).
#![deny(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::dbg_macro
)]

pub mod control;
pub mod directory;
pub mod hot;
pub mod postgres;
pub mod redis_hot;
pub mod sqlite;

use async_trait::async_trait;
use menshen_model::{
    Api, App, AppStatus, Consent, ConsentState, CredentialKind, Customer, Grant, IpRule, Lifecycle,
    LimitRule, NewIpRule, NewLimitRule, ValidationError,
};
use serde::{Deserialize, Serialize};

pub use control::{ControlPlane, CreatedApp, UApiConfig};
pub use directory::{hash_password, new_consent_id, new_customer_id, verify_password};
pub use hot::{
    system_clock, Admission, Clock, HotState, LimitCheck, MemoryHotState, NonceCheck, Verdict,
};
pub use postgres::{PgStore, PgStoreConfig};
pub use redis_hot::{RedisHotConfig, RedisHotError, RedisHotState};
pub use sqlite::SqliteStore;

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The thing does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A uniqueness or state conflict; names the field.
    #[error("{0}")]
    Conflict(ValidationError),
    /// Input failed validation; names the field.
    #[error("{0}")]
    Invalid(ValidationError),
    /// The database failed.
    #[error("storage error: {0}")]
    Backend(String),
    /// The database cannot be reached (PostgreSQL down or unreachable);
    /// retrying later may succeed. The admin API answers 503
    /// `STORE_UNAVAILABLE`.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

impl From<ValidationError> for StoreError {
    fn from(e: ValidationError) -> Self {
        StoreError::Invalid(e)
    }
}

/// A stored credential. Secrets are kept only sealed under the master key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialRecord {
    /// Row id.
    pub id: i64,
    /// Owner.
    pub app_id: String,
    /// Kind.
    pub kind: CredentialKind,
    /// For secrets: the sealed App_Secret (never the clear value).
    #[serde(skip_serializing)]
    pub sealed_secret: Option<String>,
    /// For public keys/certificates: the PEM.
    pub public_pem: Option<String>,
    /// Signature algorithm fixed at registration (public keys).
    pub alg: Option<String>,
    /// Valid from (unix seconds).
    pub not_before: i64,
    /// Valid until (unix seconds), if limited.
    pub not_after: Option<i64>,
    /// Revoked credentials are kept for the record but never accepted.
    pub revoked: bool,
    /// SHA-256 fingerprint (of the SPKI for keys, of the certificate DER for
    /// certificates), hex.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// Certificate subject, for certificates.
    #[serde(default)]
    pub subject: Option<String>,
    /// Created, RFC 3339.
    pub created_at: String,
}

/// A bank key in the keystore (KEY-1, KEY-3): the private half sealed under
/// the master key, the public half published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankKeyRecord {
    /// Key id (`keyid` in signatures).
    pub key_id: String,
    /// `response-signing`, `encryption` or `audit`: never the same key twice.
    pub purpose: String,
    /// Algorithm name, e.g. `sm2-sm3`.
    pub alg: String,
    /// Sealed PKCS#8 (never serialized out).
    #[serde(skip_serializing, default)]
    pub sealed_pkcs8: String,
    /// PEM SubjectPublicKeyInfo.
    pub public_pem: String,
    /// Created.
    pub created_at: String,
    /// Retired keys stay published for verification but no longer sign.
    pub retired: bool,
}

/// One audit record as indexed in the database (AUD-2, AUD-6): its AUD-1 key
/// fields and where the whole record is in the log files. The record itself
/// (with any retained, masked message) stays in the hash-chained files only:
/// storing it twice made each index row ~1 KiB and cost a loaded gateway
/// about as much CPU as the rest of the audit path (measured, 2026-11-30).
///
/// In SQLite its columns are named once, in this field order, in
/// `sqlite/audit.rs` (`columns!`), which the insert, the selects, the
/// binder and the row mapper all follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow {
    /// Sequence number in the chained log.
    pub seq: u64,
    /// Number of the segment holding it.
    pub segment: u64,
    /// Byte offset of its line in the segment's text.
    pub offset: u64,
    /// `access` or `admin`.
    pub kind: String,
    /// Transaction serial number.
    pub txn_id: Option<String>,
    /// Time, milliseconds since the Unix epoch (UTC).
    pub time_ms: i64,
    /// App_ID (for admin records: the actor).
    pub app_id: Option<String>,
    /// API_ID.
    pub api_id: Option<String>,
    /// End user, when known.
    pub user_id: Option<String>,
    /// success / failure / unknown.
    pub result: Option<String>,
    /// HTTP status.
    pub status: Option<i64>,
    /// Error code.
    pub code: Option<String>,
    /// Duration of the call, microseconds.
    pub duration_us: Option<i64>,
    /// The node whose hash chain (and segment files) holds the record
    /// (issue 12 item 8); `None` for a record indexed before node ids.
    #[serde(default)]
    pub node: Option<String>,
}

/// An audit search.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditQuery {
    /// Transaction serial number.
    pub txn_id: Option<String>,
    /// App_ID.
    pub app_id: Option<String>,
    /// API_ID.
    pub api_id: Option<String>,
    /// End user.
    pub user_id: Option<String>,
    /// success / failure / unknown.
    pub result: Option<String>,
    /// From (RFC 3339, inclusive).
    pub from: Option<String>,
    /// To (RFC 3339, exclusive).
    pub to: Option<String>,
    /// `access` or `admin`.
    pub kind: Option<String>,
    /// Only the records of this node's chain (issue 12 item 8).
    #[serde(default)]
    pub node: Option<String>,
    /// At most this many (1-1000), newest first.
    #[serde(default = "default_limit")]
    pub limit: u32,
}

fn default_limit() -> u32 {
    100
}

/// An admin API token (stored as SHA-256 only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminToken {
    /// Row id.
    pub id: i64,
    /// Who it belongs to.
    pub name: String,
    /// Role (`admin` for now).
    pub role: String,
}

/// Everything the gateway's snapshot is compiled from.
#[derive(Debug, Clone, Default)]
pub struct CatalogDump {
    /// Change counter the dump was taken at.
    pub version: i64,
    /// All apps.
    pub apps: Vec<App>,
    /// Active (unrevoked) credentials.
    pub credentials: Vec<CredentialRecord>,
    /// All APIs that the gateway knows (not offline/archived).
    pub apis: Vec<Api>,
    /// All grants.
    pub grants: Vec<Grant>,
    /// All IP rules.
    pub ip_rules: Vec<IpRule>,
    /// All flow-control rules (TRF-1), oldest first.
    pub limit_rules: Vec<LimitRule>,
    /// All risk rules (RSK-2), oldest first.
    pub risk_rules: Vec<menshen_model::risk::RiskRule>,
    /// The bank's keys.
    pub bank_keys: Vec<BankKeyRecord>,
}

/// The control-plane store. Every write bumps [`Store::version`] and notifies
/// [`Store::subscribe`]rs, so gateways rebuild their snapshot.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Current change counter.
    async fn version(&self) -> Result<i64, StoreError>;
    /// A receiver that sees the change counter after each local write.
    fn subscribe(&self) -> tokio::sync::watch::Receiver<i64>;

    /// Insert an app with its initial credentials, atomically.
    async fn insert_app(&self, app: &App, creds: &[CredentialRecord]) -> Result<(), StoreError>;
    /// One app.
    async fn get_app(&self, app_id: &str) -> Result<App, StoreError>;
    /// All apps, oldest first.
    async fn list_apps(&self) -> Result<Vec<App>, StoreError>;
    /// Change an app's status.
    async fn set_app_status(&self, app_id: &str, status: AppStatus) -> Result<App, StoreError>;
    /// Credentials of an app (including revoked ones).
    async fn list_credentials(&self, app_id: &str) -> Result<Vec<CredentialRecord>, StoreError>;
    /// Add `new` and set `not_after` of the app's other active credentials of
    /// the same kind to `old_until` (revoking them when that is now), atomically.
    async fn rotate_credential(
        &self,
        new: &CredentialRecord,
        old_until: i64,
    ) -> Result<(), StoreError>;

    /// Add one credential; returns it with its id.
    async fn add_credential(&self, cred: &CredentialRecord)
        -> Result<CredentialRecord, StoreError>;
    /// Revoke one credential of an app.
    async fn revoke_credential(&self, app_id: &str, id: i64) -> Result<(), StoreError>;
    /// The unrevoked credential with this fingerprint, if any.
    async fn find_credential_by_fingerprint(
        &self,
        fingerprint: &str,
    ) -> Result<Option<CredentialRecord>, StoreError>;
    /// Require (or not) a bound client certificate on every call of an app.
    async fn set_require_client_cert(&self, app_id: &str, on: bool) -> Result<App, StoreError>;
    /// Store a bank key.
    async fn insert_bank_key(&self, key: &BankKeyRecord) -> Result<(), StoreError>;
    /// All bank keys.
    async fn list_bank_keys(&self) -> Result<Vec<BankKeyRecord>, StoreError>;

    /// Index committed audit records and keep the latest checkpoint; with
    /// `indexed_through`, also record (never lowering it) that every record
    /// up to that sequence number is now indexed: where a restart resumes.
    async fn index_audit(
        &self,
        rows: Vec<AuditRow>,
        checkpoint: Option<(u64, String)>,
        indexed_through: Option<u64>,
    ) -> Result<(), StoreError>;
    /// Search the audit index, newest first.
    async fn search_audit(&self, q: &AuditQuery) -> Result<Vec<AuditRow>, StoreError>;
    /// The row of the last `indexed_through` mark: every record up to it is
    /// indexed, so the index catches up from the files after it. `None` when
    /// there is no mark (a new or rebuilt index: catch up from the start).
    async fn audit_index_watermark(&self) -> Result<Option<AuditRow>, StoreError>;
    /// The latest checkpoint (last seq, checkpoint JSON).
    async fn latest_audit_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError>;
    /// Record (or update) where node `node`'s admin API is reached (issue 12
    /// item 8): a record's body lives only in its node's segment files, so
    /// another node's admin API fetches it from there.
    async fn register_node(&self, node: &str, admin_url: &str) -> Result<(), StoreError>;
    /// The admin API URL node `node` registered, if any.
    async fn node_admin_url(&self, node: &str) -> Result<Option<String>, StoreError>;

    /// Insert an API, assigning the next U_API_ID sequence number for its
    /// institution, type and category (never reusing a cancelled code), in one
    /// transaction. `make_uapi` turns the sequence into the code.
    async fn insert_api(
        &self,
        api: &Api,
        uapi_key: (&str, &str, u8),
        make_uapi: Box<dyn FnOnce(u32) -> Result<String, ValidationError> + Send>,
    ) -> Result<Api, StoreError>;
    /// One API.
    async fn get_api(&self, api_id: &str) -> Result<Api, StoreError>;
    /// All APIs.
    async fn list_apis(&self) -> Result<Vec<Api>, StoreError>;
    /// Change an API's lifecycle; moving to offline/archived cancels its
    /// U_API_ID for good (UID-2).
    async fn set_api_lifecycle(&self, api_id: &str, state: Lifecycle) -> Result<Api, StoreError>;
    /// Whether a U_API_ID was ever issued, and whether it is cancelled.
    async fn uapi_status(&self, u_api_id: &str) -> Result<Option<bool>, StoreError>;

    /// Grant an app an API.
    async fn add_grant(&self, app_id: &str, api_id: &str) -> Result<Grant, StoreError>;
    /// Remove a grant.
    /// Approve (`true`) or withdraw (`false`) a grant for
    /// clearing/reconciliation (CONF-3): its app then sees the API's
    /// responses unmasked. Records `approved_by` and the time in the grant
    /// (`clearing_approved_by`, `clearing_approved_at`); a catalog change.
    /// `NotFound` when there is no such grant.
    async fn set_grant_clearing(
        &self,
        app_id: &str,
        api_id: &str,
        clearing: bool,
        approved_by: &str,
    ) -> Result<Grant, StoreError>;
    /// Replace an API's controls (schema, screening, masking, ...): checked
    /// against the API's level (`ApiControls::validate_for`, `Invalid`
    /// naming the field), stored whole; a catalog change. `NotFound` when
    /// there is no such API.
    async fn set_api_controls(
        &self,
        api_id: &str,
        controls: &menshen_model::ApiControls,
    ) -> Result<Api, StoreError>;
    async fn remove_grant(&self, app_id: &str, api_id: &str) -> Result<(), StoreError>;
    /// Grants, optionally for one app.
    async fn list_grants(&self, app_id: Option<&str>) -> Result<Vec<Grant>, StoreError>;

    /// Add an IP rule.
    async fn add_ip_rule(&self, rule: &NewIpRule) -> Result<IpRule, StoreError>;
    /// Remove an IP rule by id.
    async fn remove_ip_rule(&self, id: i64) -> Result<(), StoreError>;
    /// All IP rules.
    async fn list_ip_rules(&self) -> Result<Vec<IpRule>, StoreError>;

    /// Add a flow-control rule (TRF-1); `Invalid` naming the field when
    /// the input is wrong or the app or API does not exist. A catalog
    /// change: it bumps the version like any rule.
    async fn add_limit_rule(&self, rule: &NewLimitRule) -> Result<LimitRule, StoreError>;
    /// Remove a flow-control rule by id (`NotFound` if none).
    async fn remove_limit_rule(&self, id: i64) -> Result<(), StoreError>;
    /// All flow-control rules, oldest first.
    async fn list_limit_rules(&self) -> Result<Vec<LimitRule>, StoreError>;

    /// Add a risk rule (RSK-2); `Invalid` naming the field when the input
    /// is wrong or the app or API does not exist. A catalog change.
    async fn add_risk_rule(
        &self,
        rule: &menshen_model::risk::NewRiskRule,
    ) -> Result<menshen_model::risk::RiskRule, StoreError>;
    /// Remove a risk rule by id (`NotFound` if none). A catalog change.
    async fn remove_risk_rule(&self, id: i64) -> Result<(), StoreError>;
    /// All risk rules, oldest first.
    async fn list_risk_rules(&self) -> Result<Vec<menshen_model::risk::RiskRule>, StoreError>;
    /// A call held by a risk rule (RSK-1), atomically: if an approved review
    /// with the same fingerprint has `approved_until > now`, mark it `used`
    /// (with the call's txn id) and return `Approved`; else return the
    /// pending review with that fingerprint, or create one (`Pending`).
    /// Not a catalog change.
    async fn risk_hold(
        &self,
        call: &menshen_model::risk::HeldCall,
        now: i64,
    ) -> Result<menshen_model::risk::HoldOutcome, StoreError>;
    /// Review items, newest first (at most 1000), optionally in one state.
    async fn list_risk_reviews(
        &self,
        state: Option<menshen_model::risk::ReviewState>,
    ) -> Result<Vec<menshen_model::risk::RiskReview>, StoreError>;
    /// Approve (`approved_until = now + window_secs`) or reject a pending
    /// review, naming the officer; `Conflict` naming `state` if it is not
    /// pending, `NotFound` if none. Not a catalog change.
    async fn decide_risk_review(
        &self,
        id: i64,
        approve: bool,
        by: &str,
        now: i64,
    ) -> Result<menshen_model::risk::RiskReview, StoreError>;

    /// Raise an alert (MON-2): if an unresolved alert with the same `key`
    /// exists, count on it (`count + 1`, `last_at`, the details replaced,
    /// the severity raised if higher) and return it with `false`; else
    /// create an `open` one and return it with `true` (only a new alert is
    /// notified). Not a catalog change.
    async fn raise_alert(
        &self,
        alert: &menshen_model::alert::NewAlert,
    ) -> Result<(menshen_model::alert::Alert, bool), StoreError>;
    /// Alerts, newest first (at most 1000), optionally in one state.
    async fn list_alerts(
        &self,
        state: Option<menshen_model::alert::AlertState>,
    ) -> Result<Vec<menshen_model::alert::Alert>, StoreError>;
    /// Acknowledge (only from `open`) or resolve (from `open` or
    /// `acknowledged`) an alert, naming who; `Conflict` naming `state`
    /// otherwise, `NotFound` if none.
    async fn set_alert_state(
        &self,
        id: i64,
        state: menshen_model::alert::AlertState,
        by: &str,
    ) -> Result<menshen_model::alert::Alert, StoreError>;

    /// Set (`Some`) or clear (`None`) an app's notification URL
    /// (应用方通知地址, MON-4), checked by the caller; `NotFound` if no
    /// such app. Not a catalog change (the gateway does not use it).
    async fn set_app_notify_url(&self, app_id: &str, url: Option<&str>) -> Result<App, StoreError>;
    /// Create the notice to an app of `notice.key` (MON-4, KEY-4), state
    /// `pending`, and return it with `true`; if one with that key exists
    /// (on any node, ever), return it with `false`: a notice is sent once.
    /// Not a catalog change.
    async fn add_app_notice(
        &self,
        notice: &menshen_model::notice::NewAppNotice,
    ) -> Result<(menshen_model::notice::AppNotice, bool), StoreError>;
    /// Count one delivery attempt of notice `id`, setting its state and
    /// (if given) its last error; `NotFound` if none.
    async fn record_app_notice_attempt(
        &self,
        id: i64,
        state: menshen_model::notice::NoticeState,
        error: Option<&str>,
    ) -> Result<menshen_model::notice::AppNotice, StoreError>;
    /// Notices to apps, newest first (at most 1000), of one app and/or in
    /// one state.
    async fn list_app_notices(
        &self,
        app_id: Option<&str>,
        state: Option<menshen_model::notice::NoticeState>,
    ) -> Result<Vec<menshen_model::notice::AppNotice>, StoreError>;

    /// Save learned baselines (MON-3): each replaces the stored model of
    /// its app x API. Not a catalog change.
    async fn save_baselines(
        &self,
        items: &[menshen_model::baseline::StoredBaseline],
    ) -> Result<(), StoreError>;
    /// The stored baselines (MON-3), of one app or all, by app and API.
    async fn load_baselines(
        &self,
        app_id: Option<&str>,
    ) -> Result<Vec<menshen_model::baseline::StoredBaseline>, StoreError>;
    /// The stored client networks (MON-3, KEY-4: the `api_id` `*`
    /// models) of one app or all, saved at or after `since` (unix
    /// seconds; 0 for all), by app: what a node of a cluster refreshes its
    /// view from. A save merges networks into these, never replaces them.
    async fn load_baseline_networks(
        &self,
        app_id: Option<&str>,
        since: i64,
    ) -> Result<Vec<menshen_model::baseline::StoredBaseline>, StoreError>;

    /// Blacklist (`Add`) or delist (`Remove`) every app of `entries` (TRF-3),
    /// all or none, in one transaction: `apps.status` becomes `blacklisted`
    /// (or `active`) and each gets an `app_blacklist_events` row with its
    /// reason and `actor`; a catalog change. Refused, with `Invalid` or
    /// `Conflict` naming `entries[i].app_id` (or `.reason`): an empty list,
    /// an unknown, exited or repeated app, delisting an app that is not
    /// blacklisted. Listing an app already blacklisted adds the new reason
    /// to its history. Returns the events written, in order.
    async fn blacklist_apps(
        &self,
        entries: &[menshen_model::BlacklistEntry],
        action: menshen_model::BlacklistAction,
        actor: &str,
    ) -> Result<Vec<menshen_model::BlacklistEvent>, StoreError>;
    /// The blacklist's history (TRF-3), oldest first, of one app or all.
    async fn blacklist_history(
        &self,
        app_id: Option<&str>,
    ) -> Result<Vec<menshen_model::BlacklistEvent>, StoreError>;

    /// Store an admin token's SHA-256.
    async fn insert_admin_token(
        &self,
        name: &str,
        role: &str,
        hash: &[u8; 32],
    ) -> Result<(), StoreError>;
    /// Find the admin token with this SHA-256.
    async fn find_admin_token(&self, hash: &[u8; 32]) -> Result<Option<AdminToken>, StoreError>;
    /// Number of admin tokens.
    async fn count_admin_tokens(&self) -> Result<i64, StoreError>;

    /// Everything the gateway snapshot needs, consistently.
    async fn dump_catalog(&self) -> Result<CatalogDump, StoreError>;

    // Customers and consents (issue 11, USR-1..7). None of these writes is a
    // catalog change: they bump no version and rebuild no snapshot.

    /// Insert a customer with the accounts in `c.accounts`, the argon2id PHC
    /// string of their password and, when enrolled, their TOTP secret sealed
    /// under the master key (USR-1). `Conflict` naming `username` or
    /// `accounts` when the username is taken or an account already has an
    /// owner (an account has one owner).
    async fn insert_customer(
        &self,
        c: &Customer,
        password_hash: &str,
        totp_sealed: Option<&[u8]>,
    ) -> Result<(), StoreError>;
    /// One customer (`NotFound` if none).
    async fn get_customer(&self, user_id: &str) -> Result<Customer, StoreError>;
    /// A customer by login name, with the password hash and the sealed TOTP
    /// secret, for checking a login (USR-1); `None` if no such username.
    async fn find_customer_login(
        &self,
        username: &str,
    ) -> Result<Option<(Customer, String, Option<Vec<u8>>)>, StoreError>;
    /// A customer's sealed TOTP secret, `None` if not enrolled (`NotFound`
    /// if no such customer).
    async fn customer_totp_sealed(&self, user_id: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Count a failed login (USR-7): at the `lock_after`-th consecutive
    /// failure the customer is locked until `now + lock_secs` and the count
    /// starts again. Returns the customer as stored afterwards (see
    /// `locked_until`).
    async fn record_login_failure(
        &self,
        user_id: &str,
        now: i64,
        lock_after: u32,
        lock_secs: i64,
    ) -> Result<Customer, StoreError>;
    /// After a successful login: the failure count back to 0, no lock.
    async fn clear_login_failures(&self, user_id: &str) -> Result<(), StoreError>;
    /// All customers, oldest first.
    async fn list_customers(&self) -> Result<Vec<Customer>, StoreError>;

    /// Insert a consent (USR-2). `Conflict` if the id exists.
    async fn insert_consent(&self, c: &Consent) -> Result<(), StoreError>;
    /// One consent (`NotFound` if none).
    async fn get_consent(&self, consent_id: &str) -> Result<Consent, StoreError>;
    /// Compare-and-set (USR-3, USR-6): write every field of `c` but its id,
    /// app and creation time, only if the stored state is one of `expect`;
    /// otherwise `Conflict` naming `state` (`NotFound` if no such consent).
    /// So two concurrent transitions (revoke and approve, two revokes) cannot
    /// both win. Returns the consent as stored.
    async fn update_consent(
        &self,
        c: &Consent,
        expect: &[ConsentState],
    ) -> Result<Consent, StoreError>;
    /// Consents, oldest first, optionally of one app and/or one customer
    /// (`user_id` matches the consent's customer or its agent, USR-5).
    async fn list_consents(
        &self,
        app_id: Option<&str>,
        user_id: Option<&str>,
    ) -> Result<Vec<Consent>, StoreError>;

    /// Replace an app's registered redirect URIs (`NotFound` if no such
    /// app). Validation is the caller's (the admin API).
    async fn set_redirect_uris(&self, app_id: &str, uris: &[String]) -> Result<(), StoreError>;
    /// An app's registered redirect URIs, in registration order (empty if
    /// none or no such app).
    async fn redirect_uris(&self, app_id: &str) -> Result<Vec<String>, StoreError>;
}

/// Now as RFC 3339 (UTC).
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// Now as unix seconds.
pub fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
