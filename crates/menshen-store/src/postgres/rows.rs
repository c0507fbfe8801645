//! Row mappers: one function per table turns a row into its model type
//! (the PostgreSQL twin of `sqlite/rows.rs`).

use menshen_model::risk::{Amount, ReviewState, RiskAction, RiskReview, RiskRule};
use menshen_model::{
    Api, App, AppKind, AppStatus, Consent, ConsentState, CredentialKind, Customer, Grant,
    Integration, IpAction, IpRule, Level, Lifecycle, LimitAction, LimitPer, LimitRule, LimitWindow,
    Method, RevokedBy,
};
use tokio_postgres::Row;

use crate::{AuditRow, BankKeyRecord, CredentialRecord, StoreError};

/// The error for a stored value that does not parse.
pub(super) fn bad(col: &str) -> StoreError {
    StoreError::Backend(format!("stored value of `{col}` does not parse"))
}

fn text(r: &Row, col: &str) -> Result<String, StoreError> {
    Ok(r.try_get(col)?)
}

fn u32_of(v: i64, col: &str) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| bad(col))
}

fn u64_of(v: i64, col: &str) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| bad(col))
}

fn opt_u32(r: &Row, col: &str) -> Result<Option<u32>, StoreError> {
    r.try_get::<_, Option<i64>>(col)?
        .map(|v| u32_of(v, col))
        .transpose()
}

pub(super) fn app(r: &Row) -> Result<App, StoreError> {
    Ok(App {
        app_id: r.try_get("app_id")?,
        name: r.try_get("name")?,
        kind: AppKind::parse(&text(r, "kind")?).ok_or_else(|| bad("kind"))?,
        status: AppStatus::parse(&text(r, "status")?).ok_or_else(|| bad("status"))?,
        contact: r.try_get("contact")?,
        notify_url: r.try_get("notify_url")?,
        require_client_cert: r.try_get("require_client_cert")?,
        created_at: r.try_get("created_at")?,
    })
}

pub(super) fn api(r: &Row) -> Result<Api, StoreError> {
    let level = Level::parse(&text(r, "level")?).ok_or_else(|| bad("level"))?;
    let controls = text(r, "controls")?;
    let integrations = text(r, "integrations")?;
    Ok(Api {
        api_id: r.try_get("api_id")?,
        version: r.try_get("version")?,
        name: r.try_get("name")?,
        method: Method::parse(&text(r, "method")?).ok_or_else(|| bad("method"))?,
        path: r.try_get("path")?,
        upstream: r.try_get("upstream")?,
        level,
        controls: if controls.is_empty() {
            menshen_model::ApiControls::minimum(level)
        } else {
            serde_json::from_str(&controls).map_err(|_| bad("controls"))?
        },
        integrations: integrations
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| Integration::parse(s).ok_or_else(|| bad("integrations")))
            .collect::<Result<_, _>>()?,
        owner: r.try_get("owner")?,
        lifecycle: Lifecycle::parse(&text(r, "lifecycle")?).ok_or_else(|| bad("lifecycle"))?,
        u_api_id: r.try_get("u_api_id")?,
        created_at: r.try_get("created_at")?,
    })
}

pub(super) fn cred(r: &Row) -> Result<CredentialRecord, StoreError> {
    Ok(CredentialRecord {
        id: r.try_get("id")?,
        app_id: r.try_get("app_id")?,
        kind: CredentialKind::parse(&text(r, "kind")?).ok_or_else(|| bad("kind"))?,
        sealed_secret: r.try_get("sealed_secret")?,
        public_pem: r.try_get("public_pem")?,
        alg: r.try_get("alg")?,
        not_before: r.try_get("not_before")?,
        not_after: r.try_get("not_after")?,
        revoked: r.try_get("revoked")?,
        fingerprint: r.try_get("fingerprint")?,
        subject: r.try_get("subject")?,
        created_at: r.try_get("created_at")?,
    })
}

pub(super) fn bank_key(r: &Row) -> Result<BankKeyRecord, StoreError> {
    Ok(BankKeyRecord {
        key_id: r.try_get("key_id")?,
        purpose: r.try_get("purpose")?,
        alg: r.try_get("alg")?,
        sealed_pkcs8: r.try_get("sealed_pkcs8")?,
        public_pem: r.try_get("public_pem")?,
        created_at: r.try_get("created_at")?,
        retired: r.try_get("retired")?,
    })
}

pub(super) fn grant(r: &Row) -> Result<Grant, StoreError> {
    Ok(Grant {
        app_id: r.try_get("app_id")?,
        api_id: r.try_get("api_id")?,
        created_at: r.try_get("created_at")?,
        clearing: r.try_get("clearing")?,
        clearing_approved_by: r.try_get("clearing_approved_by")?,
        clearing_approved_at: r.try_get("clearing_approved_at")?,
    })
}

pub(super) fn ip_rule(r: &Row) -> Result<IpRule, StoreError> {
    Ok(IpRule {
        id: r.try_get("id")?,
        app_id: r.try_get("app_id")?,
        action: IpAction::parse(&text(r, "action")?).ok_or_else(|| bad("action"))?,
        cidr: text(r, "cidr")?.parse().map_err(|_| bad("cidr"))?,
        note: r.try_get("note")?,
        created_at: r.try_get("created_at")?,
    })
}

pub(super) fn limit(r: &Row) -> Result<LimitRule, StoreError> {
    Ok(LimitRule {
        id: r.try_get("id")?,
        app_id: r.try_get("app_id")?,
        api_id: r.try_get("api_id")?,
        window: LimitWindow::parse(&text(r, "time_window")?).ok_or_else(|| bad("time_window"))?,
        max: u64_of(r.try_get("max_calls")?, "max_calls")?,
        action: LimitAction::parse(&text(r, "action")?).ok_or_else(|| bad("action"))?,
        per: LimitPer::parse(&text(r, "per")?).ok_or_else(|| bad("per"))?,
        pause_secs: r
            .try_get::<_, Option<i64>>("pause_secs")?
            .map(|p| u64_of(p, "pause_secs"))
            .transpose()?,
        created_at: r.try_get("created_at")?,
    })
}

fn amount(r: &Row, col: &str) -> Result<Option<Amount>, StoreError> {
    r.try_get::<_, Option<i64>>(col)?
        .map(|v| u64_of(v, col).map(Amount))
        .transpose()
}

fn json_list(r: &Row, col: &str) -> Result<Option<Vec<String>>, StoreError> {
    r.try_get::<_, Option<String>>(col)?
        .map(|s| serde_json::from_str(&s).map_err(|_| bad(col)))
        .transpose()
}

pub(super) fn risk_rule(r: &Row) -> Result<RiskRule, StoreError> {
    Ok(RiskRule {
        id: r.try_get("id")?,
        app_id: r.try_get("app_id")?,
        api_id: r.try_get("api_id")?,
        capacity: r.try_get("capacity")?,
        max_per_txn: amount(r, "max_per_txn")?,
        max_per_day: amount(r, "max_per_day")?,
        counterparties: json_list(r, "counterparties")?,
        account_types: json_list(r, "account_types")?,
        unusual_multiple: opt_u32(r, "unusual_multiple")?,
        unusual_min_count: u32_of(r.try_get("unusual_min_count")?, "unusual_min_count")?,
        action: RiskAction::parse(&text(r, "action")?).ok_or_else(|| bad("action"))?,
        review_window_secs: u64_of(r.try_get("review_window_secs")?, "review_window_secs")?,
        created_at: r.try_get("created_at")?,
    })
}

pub(super) fn risk_review(r: &Row) -> Result<RiskReview, StoreError> {
    Ok(RiskReview {
        id: r.try_get("id")?,
        app_id: r.try_get("app_id")?,
        api_id: r.try_get("api_id")?,
        amount: amount(r, "amount")?.ok_or_else(|| bad("amount"))?,
        counterparty: r.try_get("counterparty")?,
        fingerprint: r.try_get("fingerprint")?,
        txn_id: r.try_get("txn_id")?,
        reason: r.try_get("reason")?,
        window_secs: u64_of(r.try_get("window_secs")?, "window_secs")?,
        state: ReviewState::parse(&text(r, "state")?).ok_or_else(|| bad("state"))?,
        created_at: r.try_get("created_at")?,
        decided_by: r.try_get("decided_by")?,
        decided_at: r.try_get("decided_at")?,
        approved_until: r.try_get("approved_until")?,
        used_txn_id: r.try_get("used_txn_id")?,
    })
}

/// A customer row without its accounts.
pub(super) fn customer(r: &Row) -> Result<Customer, StoreError> {
    Ok(Customer {
        user_id: r.try_get("user_id")?,
        username: r.try_get("username")?,
        display_name: r.try_get("display_name")?,
        accounts: Vec::new(),
        has_totp: r.try_get::<_, Option<Vec<u8>>>("totp_sealed")?.is_some(),
        locked_until: r.try_get("locked_until")?,
    })
}

pub(super) fn consent(r: &Row) -> Result<Consent, StoreError> {
    let scopes = text(r, "scopes")?;
    let accounts = text(r, "accounts")?;
    let revoked_by: Option<String> = r.try_get("revoked_by")?;
    Ok(Consent {
        consent_id: r.try_get("consent_id")?,
        app_id: r.try_get("app_id")?,
        user_id: r.try_get("user_id")?,
        scopes: serde_json::from_str(&scopes).map_err(|_| bad("scopes"))?,
        accounts: serde_json::from_str(&accounts).map_err(|_| bad("accounts"))?,
        state: ConsentState::parse(&text(r, "state")?).ok_or_else(|| bad("state"))?,
        expires_at: r.try_get("expires_at")?,
        use_limit: opt_u32(r, "use_limit")?,
        daily_limit: opt_u32(r, "daily_limit")?,
        uses: u32_of(r.try_get("uses")?, "uses")?,
        agent_user_id: r.try_get("agent_user_id")?,
        agent_approved: r.try_get("agent_approved")?,
        two_factor: r.try_get("two_factor")?,
        created_at: r.try_get("created_at")?,
        authorised_at: r.try_get("authorised_at")?,
        revoked_by: match revoked_by {
            None => None,
            Some(s) => Some(RevokedBy::parse(&s).ok_or_else(|| bad("revoked_by"))?),
        },
        ended_at: r.try_get("ended_at")?,
    })
}

/// The audit index's columns, in [`AuditRow`]'s field order (without the
/// node: an insert gives it once for the batch).
pub(super) const AUDIT_COLUMNS: &str =
    "seq, seg, off, kind, txn_id, ts, app_id, api_id, user_id, result, status, code, duration_us";

/// [`AUDIT_COLUMNS`] and the node, as selected ([`audit`] reads them).
pub(super) const AUDIT_SELECT: &str =
    "seq, seg, off, kind, txn_id, ts, app_id, api_id, user_id, result, status, code, duration_us, node";

/// A row selected with [`AUDIT_SELECT`], by position.
pub(super) fn audit(r: &Row) -> Result<AuditRow, StoreError> {
    Ok(AuditRow {
        seq: u64_of(r.try_get(0)?, "seq")?,
        segment: u64_of(r.try_get(1)?, "seg")?,
        offset: u64_of(r.try_get(2)?, "off")?,
        kind: r.try_get(3)?,
        txn_id: r.try_get(4)?,
        time_ms: r.try_get(5)?,
        app_id: r.try_get(6)?,
        api_id: r.try_get(7)?,
        user_id: r.try_get(8)?,
        result: r.try_get(9)?,
        status: r.try_get(10)?,
        code: r.try_get(11)?,
        duration_us: r.try_get(12)?,
        node: r.try_get(13)?,
    })
}

/// Map every row.
pub(super) fn all<T>(
    rows: Vec<Row>,
    f: impl Fn(&Row) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    rows.iter().map(f).collect()
}
