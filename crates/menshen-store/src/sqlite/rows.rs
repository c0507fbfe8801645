//! Row mappers: one function per table turns a row into its model type.

use menshen_model::{
    Api, App, AppKind, AppStatus, CredentialKind, Grant, Integration, IpAction, IpRule, Level,
    Lifecycle, LimitAction, LimitPer, LimitRule, LimitWindow, Method,
};
use rusqlite::Row;

use crate::{BankKeyRecord, CredentialRecord};

/// The error for a stored value that does not parse.
pub(super) fn bad_row(what: &str) -> rusqlite::Error {
    rusqlite::Error::InvalidColumnType(0, what.to_string(), rusqlite::types::Type::Text)
}

pub(super) fn app_from(r: &Row<'_>) -> rusqlite::Result<App> {
    let kind: String = r.get("kind")?;
    let status: String = r.get("status")?;
    Ok(App {
        app_id: r.get("app_id")?,
        name: r.get("name")?,
        kind: AppKind::parse(&kind).ok_or_else(|| bad_row("kind"))?,
        status: AppStatus::parse(&status).ok_or_else(|| bad_row("status"))?,
        contact: r.get("contact")?,
        notify_url: r.get("notify_url")?,
        require_client_cert: r.get::<_, i64>("require_client_cert")? != 0,
        created_at: r.get("created_at")?,
    })
}

pub(super) fn api_from(r: &Row<'_>) -> rusqlite::Result<Api> {
    let method: String = r.get("method")?;
    let level: String = r.get("level")?;
    let lifecycle: String = r.get("lifecycle")?;
    let integrations: String = r.get("integrations")?;
    let controls: String = r.get("controls")?;
    let level = Level::parse(&level).ok_or_else(|| bad_row("level"))?;
    Ok(Api {
        api_id: r.get("api_id")?,
        version: r.get("version")?,
        name: r.get("name")?,
        method: Method::parse(&method).ok_or_else(|| bad_row("method"))?,
        path: r.get("path")?,
        upstream: r.get("upstream")?,
        level,
        controls: if controls.is_empty() {
            menshen_model::ApiControls::minimum(level)
        } else {
            serde_json::from_str(&controls).map_err(|_| bad_row("controls"))?
        },
        integrations: integrations
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| Integration::parse(s).ok_or_else(|| bad_row("integrations")))
            .collect::<rusqlite::Result<_>>()?,
        owner: r.get("owner")?,
        lifecycle: Lifecycle::parse(&lifecycle).ok_or_else(|| bad_row("lifecycle"))?,
        u_api_id: r.get("u_api_id")?,
        created_at: r.get("created_at")?,
    })
}

pub(super) fn cred_from(r: &Row<'_>) -> rusqlite::Result<CredentialRecord> {
    let kind: String = r.get("kind")?;
    Ok(CredentialRecord {
        id: r.get("id")?,
        app_id: r.get("app_id")?,
        kind: CredentialKind::parse(&kind).ok_or_else(|| bad_row("kind"))?,
        sealed_secret: r.get("sealed_secret")?,
        public_pem: r.get("public_pem")?,
        alg: r.get("alg")?,
        not_before: r.get("not_before")?,
        not_after: r.get("not_after")?,
        revoked: r.get::<_, i64>("revoked")? != 0,
        fingerprint: r.get("fingerprint")?,
        subject: r.get("subject")?,
        created_at: r.get("created_at")?,
    })
}

pub(super) fn bank_key_from(r: &Row<'_>) -> rusqlite::Result<BankKeyRecord> {
    Ok(BankKeyRecord {
        key_id: r.get("key_id")?,
        purpose: r.get("purpose")?,
        alg: r.get("alg")?,
        sealed_pkcs8: r.get("sealed_pkcs8")?,
        public_pem: r.get("public_pem")?,
        created_at: r.get("created_at")?,
        retired: r.get::<_, i64>("retired")? != 0,
    })
}

pub(super) fn grant_from(r: &Row<'_>) -> rusqlite::Result<Grant> {
    Ok(Grant {
        app_id: r.get("app_id")?,
        api_id: r.get("api_id")?,
        created_at: r.get("created_at")?,
        clearing: r.get::<_, i64>("clearing")? != 0,
        clearing_approved_by: r.get("clearing_approved_by")?,
        clearing_approved_at: r.get("clearing_approved_at")?,
    })
}

pub(super) fn limit_from(r: &Row<'_>) -> rusqlite::Result<LimitRule> {
    let window: String = r.get("time_window")?;
    let action: String = r.get("action")?;
    let max: i64 = r.get("max_calls")?;
    Ok(LimitRule {
        id: r.get("id")?,
        app_id: r.get("app_id")?,
        api_id: r.get("api_id")?,
        window: LimitWindow::parse(&window).ok_or_else(|| bad_row("time_window"))?,
        max: u64::try_from(max).map_err(|_| bad_row("max_calls"))?,
        action: LimitAction::parse(&action).ok_or_else(|| bad_row("action"))?,
        per: LimitPer::parse(&r.get::<_, String>("per")?).ok_or_else(|| bad_row("per"))?,
        pause_secs: r
            .get::<_, Option<i64>>("pause_secs")?
            .map(|p| u64::try_from(p).map_err(|_| bad_row("pause_secs")))
            .transpose()?,
        created_at: r.get("created_at")?,
    })
}

pub(super) fn rule_from(r: &Row<'_>) -> rusqlite::Result<IpRule> {
    let action: String = r.get("action")?;
    let cidr: String = r.get("cidr")?;
    Ok(IpRule {
        id: r.get("id")?,
        app_id: r.get("app_id")?,
        action: IpAction::parse(&action).ok_or_else(|| bad_row("action"))?,
        cidr: cidr.parse().map_err(|_| bad_row("cidr"))?,
        note: r.get("note")?,
        created_at: r.get("created_at")?,
    })
}
