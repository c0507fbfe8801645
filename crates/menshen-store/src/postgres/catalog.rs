//! The catalog on PostgreSQL: apps and their credentials, the bank's keys,
//! IP rules, admin tokens, APIs with the U_API_ID registry, grants, and the
//! consistent dump the gateway snapshot is built from. The same rules as
//! `sqlite/catalog.rs` and `sqlite/apis.rs`, statement for statement.

use menshen_model::{
    Api, App, AppStatus, CredentialKind, Grant, IpRule, Lifecycle, NewIpRule, ValidationError,
};
use tokio_postgres::error::SqlState;
use tokio_postgres::{GenericClient, Transaction};

use super::rows;
use crate::{now_rfc3339, AdminToken, BankKeyRecord, CatalogDump, CredentialRecord, StoreError};

/// The change counter.
pub(super) async fn version<C: GenericClient>(c: &C) -> Result<i64, StoreError> {
    Ok(c.query_one("SELECT v FROM meta WHERE k = 'version'", &[])
        .await?
        .get(0))
}

/// Insert a credential; a live fingerprint already bound is refused by the
/// unique index (AUTH-1, KEY-4) with the same `Conflict` as SQLite's.
async fn insert_cred(tx: &Transaction<'_>, c: &CredentialRecord) -> Result<i64, StoreError> {
    let inserted = tx
        .query_one(
            "INSERT INTO credentials (app_id, kind, sealed_secret, public_pem, alg, not_before, not_after, revoked, created_at, fingerprint, subject)
             VALUES ($1, $2, $3, $4, $5, $6, $7, FALSE, $8, $9, $10) RETURNING id",
            &[&c.app_id, &c.kind.as_str(), &c.sealed_secret, &c.public_pem, &c.alg, &c.not_before, &c.not_after, &c.created_at, &c.fingerprint, &c.subject],
        )
        .await;
    match inserted {
        Ok(r) => Ok(r.get(0)),
        Err(e)
            if e.code() == Some(&SqlState::UNIQUE_VIOLATION)
                && e.as_db_error().and_then(|d| d.constraint())
                    == Some("credentials_fingerprint_live") =>
        {
            Err(StoreError::Conflict(match c.kind {
                CredentialKind::Certificate => ValidationError::new(
                    "certificate_pem",
                    "this certificate is already bound to an app",
                ),
                _ => ValidationError::new("public_key_pem", "this key is already registered"),
            }))
        }
        Err(e) => Err(e.into()),
    }
}

/// `NotFound` unless the app exists.
pub(super) async fn app_exists<C: GenericClient>(c: &C, app_id: &str) -> Result<(), StoreError> {
    if c.query_opt("SELECT 1 FROM apps WHERE app_id = $1", &[&app_id])
        .await?
        .is_none()
    {
        return Err(StoreError::NotFound(format!("app `{app_id}`")));
    }
    Ok(())
}

/// `Invalid` naming `app_id` / `api_id` unless the app / API exists.
pub(super) async fn check_refs<C: GenericClient>(
    c: &C,
    app_id: Option<&str>,
    api_id: Option<&str>,
) -> Result<(), StoreError> {
    if let Some(app) = app_id {
        app_exists(c, app).await.map_err(|_| {
            StoreError::Invalid(ValidationError::new("app_id", format!("no app `{app}`")))
        })?;
    }
    if let Some(api) = api_id {
        if c.query_opt("SELECT 1 FROM apis WHERE api_id = $1", &[&api])
            .await?
            .is_none()
        {
            return Err(StoreError::Invalid(ValidationError::new(
                "api_id",
                format!("no API `{api}`"),
            )));
        }
    }
    Ok(())
}

pub(super) async fn insert_app(
    tx: &Transaction<'_>,
    app: &App,
    creds: &[CredentialRecord],
) -> Result<(), StoreError> {
    let r = tx
        .execute(
            "INSERT INTO apps (app_id, name, kind, status, contact, created_at, notify_url) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[&app.app_id, &app.name, &app.kind.as_str(), &app.status.as_str(), &app.contact, &app.created_at, &app.notify_url],
        )
        .await;
    if let Err(e) = r {
        if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
            return Err(StoreError::Conflict(ValidationError::new(
                "app_id",
                format!("`{}` already exists", app.app_id),
            )));
        }
        return Err(e.into());
    }
    for c in creds {
        insert_cred(tx, c).await?;
    }
    Ok(())
}

pub(super) async fn get_app<C: GenericClient>(c: &C, app_id: &str) -> Result<App, StoreError> {
    match c
        .query_opt("SELECT * FROM apps WHERE app_id = $1", &[&app_id])
        .await?
    {
        Some(r) => rows::app(&r),
        None => Err(StoreError::NotFound(format!("app `{app_id}`"))),
    }
}

pub(super) async fn list_apps<C: GenericClient>(c: &C) -> Result<Vec<App>, StoreError> {
    rows::all(
        c.query("SELECT * FROM apps ORDER BY ord", &[]).await?,
        rows::app,
    )
}

pub(super) async fn set_app_status(
    tx: &Transaction<'_>,
    id: &str,
    status: AppStatus,
) -> Result<App, StoreError> {
    let n = tx
        .execute(
            "UPDATE apps SET status = $1 WHERE app_id = $2",
            &[&status.as_str(), &id],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("app `{id}`")));
    }
    get_app(tx, id).await
}

pub(super) async fn set_require_client_cert(
    tx: &Transaction<'_>,
    id: &str,
    on: bool,
) -> Result<App, StoreError> {
    let n = tx
        .execute(
            "UPDATE apps SET require_client_cert = $1 WHERE app_id = $2",
            &[&on, &id],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("app `{id}`")));
    }
    get_app(tx, id).await
}

pub(super) async fn list_credentials<C: GenericClient>(
    c: &C,
    id: &str,
) -> Result<Vec<CredentialRecord>, StoreError> {
    app_exists(c, id).await?;
    rows::all(
        c.query(
            "SELECT * FROM credentials WHERE app_id = $1 ORDER BY id",
            &[&id],
        )
        .await?,
        rows::cred,
    )
}

pub(super) async fn rotate_credential(
    tx: &Transaction<'_>,
    new: &CredentialRecord,
    old_until: i64,
) -> Result<(), StoreError> {
    app_exists(tx, &new.app_id).await?;
    let now = crate::now_unix();
    if old_until <= now {
        tx.execute(
            "UPDATE credentials SET revoked = TRUE, not_after = $3 WHERE app_id = $1 AND kind = $2 AND NOT revoked",
            &[&new.app_id, &new.kind.as_str(), &now],
        )
        .await?;
    } else {
        tx.execute(
            "UPDATE credentials SET not_after = $3 WHERE app_id = $1 AND kind = $2 AND NOT revoked AND (not_after IS NULL OR not_after > $3)",
            &[&new.app_id, &new.kind.as_str(), &old_until],
        )
        .await?;
    }
    insert_cred(tx, new).await?;
    Ok(())
}

pub(super) async fn add_credential(
    tx: &Transaction<'_>,
    mut cred: CredentialRecord,
) -> Result<CredentialRecord, StoreError> {
    app_exists(tx, &cred.app_id).await?;
    cred.id = insert_cred(tx, &cred).await?;
    Ok(cred)
}

pub(super) async fn revoke_credential(
    tx: &Transaction<'_>,
    app: &str,
    id: i64,
) -> Result<(), StoreError> {
    let n = tx
        .execute(
            "UPDATE credentials SET revoked = TRUE, not_after = LEAST(COALESCE(not_after, $3), $3) WHERE app_id = $1 AND id = $2 AND NOT revoked",
            &[&app, &id, &crate::now_unix()],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound(format!(
            "active credential {id} of app `{app}`"
        )));
    }
    Ok(())
}

pub(super) async fn find_credential_by_fingerprint<C: GenericClient>(
    c: &C,
    fp: &str,
) -> Result<Option<CredentialRecord>, StoreError> {
    c.query_opt(
        "SELECT * FROM credentials WHERE fingerprint = $1 AND NOT revoked LIMIT 1",
        &[&fp],
    )
    .await?
    .map(|r| rows::cred(&r))
    .transpose()
}

pub(super) async fn insert_bank_key(
    tx: &Transaction<'_>,
    k: &BankKeyRecord,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO bank_keys (key_id, purpose, alg, sealed_pkcs8, public_pem, created_at, retired) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[&k.key_id, &k.purpose, &k.alg, &k.sealed_pkcs8, &k.public_pem, &k.created_at, &k.retired],
    )
    .await?;
    Ok(())
}

pub(super) async fn list_bank_keys<C: GenericClient>(
    c: &C,
) -> Result<Vec<BankKeyRecord>, StoreError> {
    rows::all(
        c.query(
            "SELECT * FROM bank_keys ORDER BY created_at COLLATE \"C\", key_id COLLATE \"C\"",
            &[],
        )
        .await?,
        rows::bank_key,
    )
}

pub(super) async fn add_ip_rule(
    tx: &Transaction<'_>,
    rule: NewIpRule,
    net: ipnet::IpNet,
) -> Result<IpRule, StoreError> {
    check_refs(tx, rule.app_id.as_deref(), None).await?;
    let created_at = now_rfc3339();
    let id: i64 = tx
        .query_one(
            "INSERT INTO ip_rules (app_id, action, cidr, note, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[&rule.app_id, &rule.action.as_str(), &net.to_string(), &rule.note, &created_at],
        )
        .await?
        .get(0);
    Ok(IpRule {
        id,
        app_id: rule.app_id,
        action: rule.action,
        cidr: net,
        note: rule.note,
        created_at,
    })
}

pub(super) async fn remove_ip_rule(tx: &Transaction<'_>, id: i64) -> Result<(), StoreError> {
    if tx
        .execute("DELETE FROM ip_rules WHERE id = $1", &[&id])
        .await?
        == 0
    {
        return Err(StoreError::NotFound(format!("IP rule {id}")));
    }
    Ok(())
}

pub(super) async fn list_ip_rules<C: GenericClient>(c: &C) -> Result<Vec<IpRule>, StoreError> {
    rows::all(
        c.query("SELECT * FROM ip_rules ORDER BY id", &[]).await?,
        rows::ip_rule,
    )
}

pub(super) async fn insert_admin_token(
    tx: &Transaction<'_>,
    name: &str,
    role: &str,
    hash: &[u8],
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO admin_tokens (name, role, token_sha256, created_at) VALUES ($1, $2, $3, $4)",
        &[&name, &role, &hash, &now_rfc3339()],
    )
    .await?;
    Ok(())
}

pub(super) async fn find_admin_token<C: GenericClient>(
    c: &C,
    hash: &[u8],
) -> Result<Option<AdminToken>, StoreError> {
    Ok(c.query_opt(
        "SELECT id, name, role FROM admin_tokens WHERE token_sha256 = $1",
        &[&hash],
    )
    .await?
    .map(|r| AdminToken {
        id: r.get(0),
        name: r.get(1),
        role: r.get(2),
    }))
}

pub(super) async fn count_admin_tokens<C: GenericClient>(c: &C) -> Result<i64, StoreError> {
    Ok(c.query_one("SELECT COUNT(*) FROM admin_tokens", &[])
        .await?
        .get(0))
}

/// Everything the gateway snapshot needs; `tx` is a REPEATABLE READ, READ
/// ONLY transaction, so every table is read at the same instant.
pub(super) async fn dump(tx: &Transaction<'_>) -> Result<CatalogDump, StoreError> {
    let version = version(tx).await?;
    Ok(CatalogDump {
        version,
        apps: rows::all(tx.query("SELECT * FROM apps", &[]).await?, rows::app)?,
        credentials: rows::all(
            tx.query("SELECT * FROM credentials WHERE NOT revoked", &[])
                .await?,
            rows::cred,
        )?,
        apis: rows::all(
            tx.query(
                "SELECT * FROM apis WHERE lifecycle NOT IN ('offline','archived','draft')",
                &[],
            )
            .await?,
            rows::api,
        )?,
        grants: rows::all(tx.query("SELECT * FROM grants", &[]).await?, rows::grant)?,
        ip_rules: rows::all(
            tx.query("SELECT * FROM ip_rules", &[]).await?,
            rows::ip_rule,
        )?,
        limit_rules: rows::all(
            tx.query("SELECT * FROM limit_rules ORDER BY id", &[])
                .await?,
            rows::limit,
        )?,
        risk_rules: rows::all(
            tx.query("SELECT * FROM risk_rules ORDER BY id", &[])
                .await?,
            rows::risk_rule,
        )?,
        bank_keys: rows::all(
            tx.query("SELECT * FROM bank_keys", &[]).await?,
            rows::bank_key,
        )?,
    })
}

// ------------------------------------------------------------------ APIs

/// Builds a U_API_ID from its sequence number.
pub(super) type MakeUApi = Box<dyn FnOnce(u32) -> Result<String, ValidationError> + Send>;

pub(super) async fn get_api<C: GenericClient>(c: &C, api_id: &str) -> Result<Api, StoreError> {
    match c
        .query_opt("SELECT * FROM apis WHERE api_id = $1", &[&api_id])
        .await?
    {
        Some(r) => rows::api(&r),
        None => Err(StoreError::NotFound(format!("API `{api_id}`"))),
    }
}

/// `uapi_key` is (institution, type, category). Catalog writers are
/// serialized by the version row's lock (taken first), so the sequence read
/// here cannot be taken by a concurrent insert.
pub(super) async fn insert_api(
    tx: &Transaction<'_>,
    mut api: Api,
    uapi_key: (&str, &str, u8),
    make_uapi: MakeUApi,
) -> Result<Api, StoreError> {
    let (inst, typ, cat) = uapi_key;
    let cat = i64::from(cat);
    if tx
        .query_opt("SELECT 1 FROM apis WHERE api_id = $1", &[&api.api_id])
        .await?
        .is_some()
    {
        return Err(StoreError::Conflict(ValidationError::new(
            "api_id",
            format!("`{}` already exists; API_IDs are unique", api.api_id),
        )));
    }
    let clash = tx
        .query_opt(
            "SELECT api_id FROM apis WHERE method = $1 AND path = $2 AND lifecycle NOT IN ('offline','archived')",
            &[&api.method.as_str(), &api.path],
        )
        .await?;
    if let Some(other) = clash {
        let other: String = other.get(0);
        return Err(StoreError::Conflict(ValidationError::new(
            "path",
            format!(
                "{} {} is already served by API `{other}`",
                api.method, api.path
            ),
        )));
    }
    let last: Option<i64> = tx
        .query_one(
            "SELECT MAX(sequence) FROM uapi_registry WHERE institution = $1 AND type = $2 AND category = $3",
            &[&inst, &typ, &cat],
        )
        .await?
        .get(0);
    let next = last.unwrap_or(0) + 1;
    if next > 999_999 {
        return Err(StoreError::Conflict(ValidationError::new(
            "category",
            "no U_API_ID sequence numbers left in this institution/type/category",
        )));
    }
    let code = make_uapi(next as u32)?;
    tx.execute(
        "INSERT INTO uapi_registry (u_api_id, institution, type, category, sequence, api_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[&code, &inst, &typ, &cat, &next, &api.api_id, &now_rfc3339()],
    )
    .await?;
    api.u_api_id = code;
    let integrations: Vec<&str> = api.integrations.iter().map(|i| i.as_str()).collect();
    let controls =
        serde_json::to_string(&api.controls).map_err(|e| StoreError::Backend(e.to_string()))?;
    tx.execute(
        "INSERT INTO apis (api_id, version, name, method, path, upstream, level, integrations, owner, lifecycle, u_api_id, created_at, controls)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        &[&api.api_id, &api.version, &api.name, &api.method.as_str(), &api.path, &api.upstream, &api.level.as_str(),
          &integrations.join(","), &api.owner, &api.lifecycle.as_str(), &api.u_api_id, &api.created_at, &controls],
    )
    .await?;
    Ok(api)
}

pub(super) async fn list_apis<C: GenericClient>(c: &C) -> Result<Vec<Api>, StoreError> {
    rows::all(
        c.query("SELECT * FROM apis ORDER BY ord", &[]).await?,
        rows::api,
    )
}

pub(super) async fn set_api_lifecycle(
    tx: &Transaction<'_>,
    id: &str,
    state: Lifecycle,
) -> Result<Api, StoreError> {
    let api = get_api(tx, id).await?;
    if matches!(api.lifecycle, Lifecycle::Offline | Lifecycle::Archived)
        && !matches!(state, Lifecycle::Archived)
    {
        return Err(StoreError::Conflict(ValidationError::new(
            "state",
            format!(
                "API `{id}` is {}; its U_API_ID is cancelled and it can only be archived",
                api.lifecycle
            ),
        )));
    }
    tx.execute(
        "UPDATE apis SET lifecycle = $1 WHERE api_id = $2",
        &[&state.as_str(), &id],
    )
    .await?;
    if matches!(state, Lifecycle::Offline | Lifecycle::Archived) {
        tx.execute(
            "UPDATE uapi_registry SET cancelled = TRUE WHERE u_api_id = $1",
            &[&api.u_api_id],
        )
        .await?;
        tx.execute("DELETE FROM grants WHERE api_id = $1", &[&id])
            .await?;
    }
    get_api(tx, id).await
}

pub(super) async fn set_api_controls(
    tx: &Transaction<'_>,
    id: &str,
    controls: &menshen_model::ApiControls,
) -> Result<Api, StoreError> {
    let api = get_api(tx, id).await?;
    controls.validate_for(api.level)?;
    let json = serde_json::to_string(controls).map_err(|e| StoreError::Backend(e.to_string()))?;
    tx.execute(
        "UPDATE apis SET controls = $1 WHERE api_id = $2",
        &[&json, &id],
    )
    .await?;
    get_api(tx, id).await
}

pub(super) async fn uapi_status<C: GenericClient>(
    c: &C,
    id: &str,
) -> Result<Option<bool>, StoreError> {
    Ok(c.query_opt(
        "SELECT cancelled FROM uapi_registry WHERE u_api_id = $1",
        &[&id],
    )
    .await?
    .map(|r| r.get(0)))
}

pub(super) async fn add_grant(
    tx: &Transaction<'_>,
    app: &str,
    api: &str,
) -> Result<Grant, StoreError> {
    app_exists(tx, app).await?;
    let a = get_api(tx, api).await?;
    if matches!(
        a.lifecycle,
        Lifecycle::Offline | Lifecycle::Archived | Lifecycle::Terminated
    ) {
        return Err(StoreError::Conflict(ValidationError::new(
            "api_id",
            format!("API `{api}` is {} and cannot be granted", a.lifecycle),
        )));
    }
    let g = Grant {
        app_id: app.to_string(),
        api_id: api.to_string(),
        created_at: now_rfc3339(),
        clearing: false,
        clearing_approved_by: None,
        clearing_approved_at: None,
    };
    let n = tx
        .execute(
            "INSERT INTO grants (app_id, api_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            &[&g.app_id, &g.api_id, &g.created_at],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::Conflict(ValidationError::new(
            "api_id",
            format!("app `{app}` already holds a grant for `{api}`"),
        )));
    }
    Ok(g)
}

pub(super) async fn set_grant_clearing(
    tx: &Transaction<'_>,
    app: &str,
    api: &str,
    clearing: bool,
    by: &str,
) -> Result<Grant, StoreError> {
    let r = tx
        .query_opt(
            "UPDATE grants SET clearing = $3, clearing_approved_by = $4, clearing_approved_at = $5
             WHERE app_id = $1 AND api_id = $2 RETURNING *",
            &[&app, &api, &clearing, &by, &now_rfc3339()],
        )
        .await?;
    match r {
        Some(r) => rows::grant(&r),
        None => Err(StoreError::NotFound(format!("grant of `{api}` to `{app}`"))),
    }
}

pub(super) async fn remove_grant(
    tx: &Transaction<'_>,
    app: &str,
    api: &str,
) -> Result<(), StoreError> {
    let n = tx
        .execute(
            "DELETE FROM grants WHERE app_id = $1 AND api_id = $2",
            &[&app, &api],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("grant of `{api}` to `{app}`")));
    }
    Ok(())
}

pub(super) async fn list_grants<C: GenericClient>(
    c: &C,
    app: Option<&str>,
) -> Result<Vec<Grant>, StoreError> {
    rows::all(
        c.query(
            "SELECT * FROM grants WHERE ($1::TEXT IS NULL OR app_id = $1) ORDER BY app_id COLLATE \"C\", api_id COLLATE \"C\"",
            &[&app],
        )
        .await?,
        rows::grant,
    )
}
