//! Consents (USR-2..USR-6) with their compare-and-set state changes, and the
//! redirect URIs registered per app (where an authorization answer may go).
//! Plain synchronous SQL; `super` runs it on a blocking thread.

use menshen_model::{Consent, ConsentState, RevokedBy, ValidationError};
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};

use super::catalog::app_exists;
use super::rows::bad_row;
use crate::StoreError;

fn consent_from(r: &Row<'_>) -> rusqlite::Result<Consent> {
    let scopes: String = r.get("scopes")?;
    let accounts: String = r.get("accounts")?;
    let state: String = r.get("state")?;
    let revoked_by: Option<String> = r.get("revoked_by")?;
    Ok(Consent {
        consent_id: r.get("consent_id")?,
        app_id: r.get("app_id")?,
        user_id: r.get("user_id")?,
        scopes: serde_json::from_str(&scopes).map_err(|_| bad_row("scopes"))?,
        accounts: serde_json::from_str(&accounts).map_err(|_| bad_row("accounts"))?,
        state: ConsentState::parse(&state).ok_or_else(|| bad_row("state"))?,
        expires_at: r.get("expires_at")?,
        use_limit: r.get("use_limit")?,
        daily_limit: r.get("daily_limit")?,
        uses: r.get("uses")?,
        agent_user_id: r.get("agent_user_id")?,
        agent_approved: r.get::<_, i64>("agent_approved")? != 0,
        two_factor: r.get::<_, i64>("two_factor")? != 0,
        created_at: r.get("created_at")?,
        authorised_at: r.get("authorised_at")?,
        revoked_by: match revoked_by {
            None => None,
            Some(s) => Some(RevokedBy::parse(&s).ok_or_else(|| bad_row("revoked_by"))?),
        },
        ended_at: r.get("ended_at")?,
    })
}

fn json(v: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Backend(e.to_string()))
}

pub(super) fn insert_consent(tx: &Transaction<'_>, c: &Consent) -> Result<(), StoreError> {
    let n = tx.execute(
        "INSERT OR IGNORE INTO consents (consent_id, app_id, user_id, scopes, accounts, state, expires_at, use_limit, daily_limit, uses,
                                         agent_user_id, agent_approved, two_factor, created_at, authorised_at, revoked_by, ended_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
        params![
            c.consent_id, c.app_id, c.user_id, json(&c.scopes)?, json(&c.accounts)?, c.state.as_str(),
            c.expires_at, c.use_limit, c.daily_limit, c.uses, c.agent_user_id, c.agent_approved as i64,
            c.two_factor as i64, c.created_at, c.authorised_at, c.revoked_by.map(|b| b.as_str()), c.ended_at
        ],
    )?;
    if n == 0 {
        return Err(StoreError::Conflict(ValidationError::new(
            "consent_id",
            format!("consent `{}` exists", c.consent_id),
        )));
    }
    Ok(())
}

pub(super) fn get_consent(c: &Connection, id: &str) -> Result<Consent, StoreError> {
    c.query_row(
        "SELECT * FROM consents WHERE consent_id = ?1",
        [id],
        consent_from,
    )
    .optional()?
    .ok_or_else(|| StoreError::NotFound(format!("consent `{id}`")))
}

/// Compare-and-set: the `UPDATE` itself checks the state, so of two
/// concurrent transitions from the same state only the first writes.
pub(super) fn update_consent(
    tx: &Transaction<'_>,
    c: &Consent,
    expect: &[ConsentState],
) -> Result<Consent, StoreError> {
    let current = get_consent(tx, &c.consent_id)?;
    if !expect.contains(&current.state) {
        let names: Vec<&str> = expect.iter().map(|s| s.as_str()).collect();
        return Err(StoreError::Conflict(ValidationError::new(
            "state",
            format!(
                "consent `{}` is {}; this change needs it to be {}",
                c.consent_id,
                current.state,
                if names.is_empty() {
                    "(none given)".to_string()
                } else {
                    names.join(" or ")
                }
            ),
        )));
    }
    let n = tx.execute(
        "UPDATE consents SET user_id = ?2, scopes = ?3, accounts = ?4, state = ?5, expires_at = ?6, use_limit = ?7,
                daily_limit = ?8, uses = ?9, agent_user_id = ?10, agent_approved = ?11, two_factor = ?12,
                authorised_at = ?13, revoked_by = ?14, ended_at = ?15
          WHERE consent_id = ?1 AND state = ?16",
        params![
            c.consent_id, c.user_id, json(&c.scopes)?, json(&c.accounts)?, c.state.as_str(), c.expires_at,
            c.use_limit, c.daily_limit, c.uses, c.agent_user_id, c.agent_approved as i64, c.two_factor as i64,
            c.authorised_at, c.revoked_by.map(|b| b.as_str()), c.ended_at, current.state.as_str()
        ],
    )?;
    if n != 1 {
        return Err(StoreError::Conflict(ValidationError::new(
            "state",
            format!("consent `{}` changed meanwhile", c.consent_id),
        )));
    }
    get_consent(tx, &c.consent_id)
}

pub(super) fn list_consents(
    c: &Connection,
    app_id: Option<&str>,
    user_id: Option<&str>,
) -> Result<Vec<Consent>, StoreError> {
    let mut st = c.prepare(
        "SELECT * FROM consents
          WHERE (?1 IS NULL OR app_id = ?1)
            AND (?2 IS NULL OR user_id = ?2 OR agent_user_id = ?2)
          ORDER BY created_at, rowid",
    )?;
    let rows = st
        .query_map(params![app_id, user_id], consent_from)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub(super) fn set_redirect_uris(
    tx: &Transaction<'_>,
    app_id: &str,
    uris: &[String],
) -> Result<(), StoreError> {
    app_exists(tx, app_id)?;
    tx.execute("DELETE FROM app_redirect_uris WHERE app_id = ?1", [app_id])?;
    for u in uris {
        tx.execute(
            "INSERT OR IGNORE INTO app_redirect_uris (app_id, uri) VALUES (?1, ?2)",
            params![app_id, u],
        )?;
    }
    Ok(())
}

pub(super) fn redirect_uris(c: &Connection, app_id: &str) -> Result<Vec<String>, StoreError> {
    let mut st = c.prepare("SELECT uri FROM app_redirect_uris WHERE app_id = ?1 ORDER BY rowid")?;
    let rows = st
        .query_map([app_id], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(rows)
}
