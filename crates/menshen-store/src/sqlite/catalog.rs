//! The catalog's parties: apps and their credentials, the bank's keys, IP
//! rules, admin tokens, and the consistent dump the gateway snapshot is
//! built from. Plain synchronous SQL; `super` runs it on a blocking thread.

use menshen_model::{App, AppStatus, CredentialKind, IpRule, NewIpRule, ValidationError};
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::rows::{
    api_from, app_from, bank_key_from, cred_from, grant_from, limit_from, rule_from,
};
use crate::{now_rfc3339, AdminToken, BankKeyRecord, CatalogDump, CredentialRecord, StoreError};

/// The change counter.
pub(super) fn version(c: &Connection) -> Result<i64, StoreError> {
    Ok(c.query_row("SELECT v FROM meta WHERE k = 'version'", [], |r| r.get(0))?)
}

/// Insert a credential. A certificate or key already bound (unrevoked) is
/// refused by the database's unique index on live fingerprints (AUTH-1,
/// KEY-4, migration 6), so concurrent binds cannot both pass: the loser gets
/// the same [`StoreError::Conflict`] as a bind refused by the control
/// plane's own check.
pub(super) fn insert_cred(tx: &Transaction<'_>, c: &CredentialRecord) -> Result<(), StoreError> {
    let inserted = tx.execute(
        "INSERT INTO credentials (app_id, kind, sealed_secret, public_pem, alg, not_before, not_after, revoked, created_at, fingerprint, subject)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8, ?9, ?10)",
        params![c.app_id, c.kind.as_str(), c.sealed_secret, c.public_pem, c.alg, c.not_before, c.not_after, c.created_at, c.fingerprint, c.subject],
    );
    match inserted {
        Ok(_) => Ok(()),
        Err(e) if is_fingerprint_clash(&e) => Err(StoreError::Conflict(match c.kind {
            CredentialKind::Certificate => ValidationError::new(
                "certificate_pem",
                "this certificate is already bound to an app",
            ),
            _ => ValidationError::new("public_key_pem", "this key is already registered"),
        })),
        Err(e) => Err(e.into()),
    }
}

/// Whether `e` is the unique index on live fingerprints refusing a row.
fn is_fingerprint_clash(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, Some(msg))
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                && msg.contains("credentials.fingerprint")
    )
}

/// `NotFound` unless the app exists.
pub(super) fn app_exists(tx: &Connection, app_id: &str) -> Result<(), StoreError> {
    let n: i64 = tx.query_row(
        "SELECT COUNT(*) FROM apps WHERE app_id = ?1",
        [app_id],
        |r| r.get(0),
    )?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("app `{app_id}`")));
    }
    Ok(())
}

pub(super) fn insert_app(
    tx: &Transaction<'_>,
    app: &App,
    creds: &[CredentialRecord],
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO apps (app_id, name, kind, status, contact, created_at, notify_url) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![app.app_id, app.name, app.kind.as_str(), app.status.as_str(), app.contact, app.created_at, app.notify_url],
    )?;
    for c in creds {
        insert_cred(tx, c)?;
    }
    Ok(())
}

pub(super) fn get_app(c: &Connection, app_id: &str) -> Result<App, StoreError> {
    c.query_row("SELECT * FROM apps WHERE app_id = ?1", [app_id], app_from)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("app `{app_id}`")))
}

pub(super) fn list_apps(c: &Connection) -> Result<Vec<App>, StoreError> {
    let mut st = c.prepare("SELECT * FROM apps ORDER BY rowid")?;
    let rows = st
        .query_map([], app_from)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub(super) fn set_app_status(
    tx: &Transaction<'_>,
    id: &str,
    status: AppStatus,
) -> Result<App, StoreError> {
    let n = tx.execute(
        "UPDATE apps SET status = ?1 WHERE app_id = ?2",
        params![status.as_str(), id],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("app `{id}`")));
    }
    get_app(tx, id)
}

pub(super) fn set_require_client_cert(
    tx: &Transaction<'_>,
    id: &str,
    on: bool,
) -> Result<App, StoreError> {
    if tx.execute(
        "UPDATE apps SET require_client_cert = ?1 WHERE app_id = ?2",
        params![on as i64, id],
    )? == 0
    {
        return Err(StoreError::NotFound(format!("app `{id}`")));
    }
    get_app(tx, id)
}

pub(super) fn list_credentials(
    c: &Connection,
    id: &str,
) -> Result<Vec<CredentialRecord>, StoreError> {
    app_exists(c, id)?;
    let mut st = c.prepare("SELECT * FROM credentials WHERE app_id = ?1 ORDER BY id")?;
    let rows = st
        .query_map([id], cred_from)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub(super) fn rotate_credential(
    tx: &Transaction<'_>,
    new: &CredentialRecord,
    old_until: i64,
) -> Result<(), StoreError> {
    app_exists(tx, &new.app_id)?;
    let now = crate::now_unix();
    if old_until <= now {
        tx.execute(
            "UPDATE credentials SET revoked = 1, not_after = ?3 WHERE app_id = ?1 AND kind = ?2 AND revoked = 0",
            params![new.app_id, new.kind.as_str(), now],
        )?;
    } else {
        tx.execute(
            "UPDATE credentials SET not_after = ?3 WHERE app_id = ?1 AND kind = ?2 AND revoked = 0 AND (not_after IS NULL OR not_after > ?3)",
            params![new.app_id, new.kind.as_str(), old_until],
        )?;
    }
    insert_cred(tx, new)?;
    Ok(())
}

pub(super) fn add_credential(
    tx: &Transaction<'_>,
    mut cred: CredentialRecord,
) -> Result<CredentialRecord, StoreError> {
    app_exists(tx, &cred.app_id)?;
    insert_cred(tx, &cred)?;
    cred.id = tx.last_insert_rowid();
    Ok(cred)
}

pub(super) fn revoke_credential(
    tx: &Transaction<'_>,
    app: &str,
    id: i64,
) -> Result<(), StoreError> {
    let n = tx.execute(
        "UPDATE credentials SET revoked = 1, not_after = MIN(COALESCE(not_after, ?3), ?3) WHERE app_id = ?1 AND id = ?2 AND revoked = 0",
        params![app, id, crate::now_unix()],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound(format!(
            "active credential {id} of app `{app}`"
        )));
    }
    Ok(())
}

pub(super) fn find_credential_by_fingerprint(
    c: &Connection,
    fp: &str,
) -> Result<Option<CredentialRecord>, StoreError> {
    Ok(c.query_row(
        "SELECT * FROM credentials WHERE fingerprint = ?1 AND revoked = 0 LIMIT 1",
        [fp],
        cred_from,
    )
    .optional()?)
}

pub(super) fn insert_bank_key(tx: &Transaction<'_>, k: &BankKeyRecord) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO bank_keys (key_id, purpose, alg, sealed_pkcs8, public_pem, created_at, retired) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![k.key_id, k.purpose, k.alg, k.sealed_pkcs8, k.public_pem, k.created_at, k.retired as i64],
    )?;
    Ok(())
}

pub(super) fn list_bank_keys(c: &Connection) -> Result<Vec<BankKeyRecord>, StoreError> {
    let mut st = c.prepare("SELECT * FROM bank_keys ORDER BY created_at, key_id")?;
    let rows = st
        .query_map([], bank_key_from)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// `net` is the rule's CIDR, already parsed.
pub(super) fn add_ip_rule(
    tx: &Transaction<'_>,
    rule: NewIpRule,
    net: ipnet::IpNet,
) -> Result<IpRule, StoreError> {
    if let Some(app) = &rule.app_id {
        app_exists(tx, app).map_err(|_| {
            StoreError::Invalid(ValidationError::new("app_id", format!("no app `{app}`")))
        })?;
    }
    let created_at = now_rfc3339();
    tx.execute(
        "INSERT INTO ip_rules (app_id, action, cidr, note, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            rule.app_id,
            rule.action.as_str(),
            net.to_string(),
            rule.note,
            created_at
        ],
    )?;
    Ok(IpRule {
        id: tx.last_insert_rowid(),
        app_id: rule.app_id,
        action: rule.action,
        cidr: net,
        note: rule.note,
        created_at,
    })
}

pub(super) fn remove_ip_rule(tx: &Transaction<'_>, id: i64) -> Result<(), StoreError> {
    if tx.execute("DELETE FROM ip_rules WHERE id = ?1", [id])? == 0 {
        return Err(StoreError::NotFound(format!("IP rule {id}")));
    }
    Ok(())
}

pub(super) fn list_ip_rules(c: &Connection) -> Result<Vec<IpRule>, StoreError> {
    let mut st = c.prepare("SELECT * FROM ip_rules ORDER BY id")?;
    let rows = st
        .query_map([], rule_from)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub(super) fn insert_admin_token(
    tx: &Transaction<'_>,
    name: &str,
    role: &str,
    hash: &[u8],
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO admin_tokens (name, role, token_sha256, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![name, role, hash, now_rfc3339()],
    )?;
    Ok(())
}

pub(super) fn find_admin_token(
    c: &Connection,
    hash: &[u8],
) -> Result<Option<AdminToken>, StoreError> {
    Ok(c.query_row(
        "SELECT id, name, role FROM admin_tokens WHERE token_sha256 = ?1",
        [hash],
        |r| {
            Ok(AdminToken {
                id: r.get(0)?,
                name: r.get(1)?,
                role: r.get(2)?,
            })
        },
    )
    .optional()?)
}

pub(super) fn count_admin_tokens(c: &Connection) -> Result<i64, StoreError> {
    Ok(c.query_row("SELECT COUNT(*) FROM admin_tokens", [], |r| r.get(0))?)
}

/// Everything the gateway snapshot needs, in one read transaction so the
/// dump is consistent.
pub(super) fn dump(c: &Connection) -> Result<CatalogDump, StoreError> {
    c.execute_batch("BEGIN")?;
    let out = (|| {
        let version = version(c)?;
        let apps = c
            .prepare("SELECT * FROM apps")?
            .query_map([], app_from)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let credentials = c
            .prepare("SELECT * FROM credentials WHERE revoked = 0")?
            .query_map([], cred_from)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let apis = c
            .prepare("SELECT * FROM apis WHERE lifecycle NOT IN ('offline','archived','draft')")?
            .query_map([], api_from)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let grants = c
            .prepare("SELECT * FROM grants")?
            .query_map([], grant_from)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let ip_rules = c
            .prepare("SELECT * FROM ip_rules")?
            .query_map([], rule_from)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let limit_rules = c
            .prepare("SELECT * FROM limit_rules ORDER BY id")?
            .query_map([], limit_from)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let risk_rules = super::risk::list(c)?;
        let bank_keys = c
            .prepare("SELECT * FROM bank_keys")?
            .query_map([], bank_key_from)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok::<_, StoreError>(CatalogDump {
            version,
            apps,
            credentials,
            apis,
            grants,
            ip_rules,
            limit_rules,
            risk_rules,
            bank_keys,
        })
    })();
    c.execute_batch("COMMIT")?;
    out
}
