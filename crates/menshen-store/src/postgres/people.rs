//! Bank customers (USR-1, USR-7), consents (USR-2..6) and redirect URIs on
//! PostgreSQL: the same rules as `sqlite/customers.rs` and
//! `sqlite/consents.rs`.

use menshen_model::{Consent, ConsentState, Customer, ValidationError};
use tokio_postgres::error::SqlState;
use tokio_postgres::{GenericClient, Transaction};

use super::catalog::app_exists;
use super::rows;
use crate::{now_rfc3339, StoreError};

fn not_found(user_id: &str) -> StoreError {
    StoreError::NotFound(format!("customer `{user_id}`"))
}

async fn accounts_of<C: GenericClient>(c: &C, user_id: &str) -> Result<Vec<String>, StoreError> {
    Ok(c.query(
        "SELECT account FROM customer_accounts WHERE user_id = $1 ORDER BY ord",
        &[&user_id],
    )
    .await?
    .iter()
    .map(|r| r.get(0))
    .collect())
}

async fn with_accounts<C: GenericClient>(c: &C, mut cu: Customer) -> Result<Customer, StoreError> {
    cu.accounts = accounts_of(c, &cu.user_id).await?;
    Ok(cu)
}

pub(super) async fn insert_customer(
    tx: &Transaction<'_>,
    c: &Customer,
    password_hash: &str,
    totp_sealed: Option<&[u8]>,
) -> Result<(), StoreError> {
    if tx
        .query_opt(
            "SELECT 1 FROM customers WHERE username = $1",
            &[&c.username],
        )
        .await?
        .is_some()
    {
        return Err(StoreError::Conflict(ValidationError::new(
            "username",
            format!("`{}` is taken", c.username),
        )));
    }
    if tx
        .query_opt("SELECT 1 FROM customers WHERE user_id = $1", &[&c.user_id])
        .await?
        .is_some()
    {
        return Err(StoreError::Conflict(ValidationError::new(
            "user_id",
            format!("`{}` exists", c.user_id),
        )));
    }
    let inserted = tx
        .execute(
            "INSERT INTO customers (user_id, username, display_name, password_hash, totp_sealed, failed_logins, locked_until, created_at)
             VALUES ($1, $2, $3, $4, $5, 0, $6, $7)",
            &[&c.user_id, &c.username, &c.display_name, &password_hash, &totp_sealed, &c.locked_until, &now_rfc3339()],
        )
        .await;
    if let Err(e) = inserted {
        // A concurrent insert of the same username won the race.
        if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
            return Err(StoreError::Conflict(ValidationError::new(
                "username",
                format!("`{}` is taken", c.username),
            )));
        }
        return Err(e.into());
    }
    for (i, a) in c.accounts.iter().enumerate() {
        if c.accounts[..i].contains(a) {
            return Err(StoreError::Invalid(ValidationError::new(
                "accounts",
                format!("account `{a}` is listed twice"),
            )));
        }
        let owned = tx
            .query_opt(
                "SELECT user_id FROM customer_accounts WHERE account = $1",
                &[a],
            )
            .await?
            .is_some();
        let clash = || {
            StoreError::Conflict(ValidationError::new(
                "accounts",
                format!("account `{a}` already belongs to a customer; an account has one owner"),
            ))
        };
        if owned {
            return Err(clash());
        }
        match tx
            .execute(
                "INSERT INTO customer_accounts (user_id, account) VALUES ($1, $2)",
                &[&c.user_id, a],
            )
            .await
        {
            Ok(_) => {}
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => return Err(clash()),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

pub(super) async fn get_customer<C: GenericClient>(
    c: &C,
    user_id: &str,
) -> Result<Customer, StoreError> {
    let Some(r) = c
        .query_opt("SELECT * FROM customers WHERE user_id = $1", &[&user_id])
        .await?
    else {
        return Err(not_found(user_id));
    };
    with_accounts(c, rows::customer(&r)?).await
}

pub(super) type Login = (Customer, String, Option<Vec<u8>>);

pub(super) async fn find_customer_login<C: GenericClient>(
    c: &C,
    username: &str,
) -> Result<Option<Login>, StoreError> {
    let Some(r) = c
        .query_opt("SELECT * FROM customers WHERE username = $1", &[&username])
        .await?
    else {
        return Ok(None);
    };
    let cu = with_accounts(c, rows::customer(&r)?).await?;
    Ok(Some((
        cu,
        r.try_get("password_hash")?,
        r.try_get("totp_sealed")?,
    )))
}

pub(super) async fn customer_totp_sealed<C: GenericClient>(
    c: &C,
    user_id: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    match c
        .query_opt(
            "SELECT totp_sealed FROM customers WHERE user_id = $1",
            &[&user_id],
        )
        .await?
    {
        Some(r) => Ok(r.try_get(0)?),
        None => Err(not_found(user_id)),
    }
}

pub(super) async fn record_login_failure(
    tx: &Transaction<'_>,
    user_id: &str,
    now: i64,
    lock_after: u32,
    lock_secs: i64,
) -> Result<Customer, StoreError> {
    // FOR UPDATE: concurrent failures (on any node) count one after another.
    let Some(r) = tx
        .query_opt(
            "SELECT failed_logins FROM customers WHERE user_id = $1 FOR UPDATE",
            &[&user_id],
        )
        .await?
    else {
        return Err(not_found(user_id));
    };
    let failed: i64 = r.try_get::<_, i64>(0)? + 1;
    if failed >= i64::from(lock_after.max(1)) {
        tx.execute(
            "UPDATE customers SET failed_logins = 0, locked_until = $2 WHERE user_id = $1",
            &[&user_id, &now.saturating_add(lock_secs)],
        )
        .await?;
    } else {
        tx.execute(
            "UPDATE customers SET failed_logins = $2 WHERE user_id = $1",
            &[&user_id, &failed],
        )
        .await?;
    }
    get_customer(tx, user_id).await
}

pub(super) async fn clear_login_failures(
    tx: &Transaction<'_>,
    user_id: &str,
) -> Result<(), StoreError> {
    let n = tx
        .execute(
            "UPDATE customers SET failed_logins = 0, locked_until = NULL WHERE user_id = $1",
            &[&user_id],
        )
        .await?;
    if n == 0 {
        return Err(not_found(user_id));
    }
    Ok(())
}

pub(super) async fn list_customers<C: GenericClient>(c: &C) -> Result<Vec<Customer>, StoreError> {
    let rows = c.query("SELECT * FROM customers ORDER BY ord", &[]).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        out.push(with_accounts(c, rows::customer(r)?).await?);
    }
    Ok(out)
}

fn json(v: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Backend(e.to_string()))
}

pub(super) async fn insert_consent(tx: &Transaction<'_>, c: &Consent) -> Result<(), StoreError> {
    let n = tx
        .execute(
            "INSERT INTO consents (consent_id, app_id, user_id, scopes, accounts, state, expires_at, use_limit, daily_limit, uses,
                                   agent_user_id, agent_approved, two_factor, created_at, authorised_at, revoked_by, ended_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
             ON CONFLICT (consent_id) DO NOTHING",
            &[
                &c.consent_id, &c.app_id, &c.user_id, &json(&c.scopes)?, &json(&c.accounts)?, &c.state.as_str(),
                &c.expires_at, &c.use_limit.map(i64::from), &c.daily_limit.map(i64::from), &i64::from(c.uses),
                &c.agent_user_id, &c.agent_approved, &c.two_factor, &c.created_at, &c.authorised_at,
                &c.revoked_by.map(|b| b.as_str()), &c.ended_at,
            ],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::Conflict(ValidationError::new(
            "consent_id",
            format!("consent `{}` exists", c.consent_id),
        )));
    }
    Ok(())
}

pub(super) async fn get_consent<C: GenericClient>(c: &C, id: &str) -> Result<Consent, StoreError> {
    match c
        .query_opt("SELECT * FROM consents WHERE consent_id = $1", &[&id])
        .await?
    {
        Some(r) => rows::consent(&r),
        None => Err(StoreError::NotFound(format!("consent `{id}`"))),
    }
}

/// Compare-and-set: the `UPDATE` itself checks the state, so of two
/// concurrent transitions from the same state only the first writes.
pub(super) async fn update_consent(
    tx: &Transaction<'_>,
    c: &Consent,
    expect: &[ConsentState],
) -> Result<Consent, StoreError> {
    let current = get_consent(tx, &c.consent_id).await?;
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
    let n = tx
        .execute(
            "UPDATE consents SET user_id = $2, scopes = $3, accounts = $4, state = $5, expires_at = $6, use_limit = $7,
                    daily_limit = $8, uses = $9, agent_user_id = $10, agent_approved = $11, two_factor = $12,
                    authorised_at = $13, revoked_by = $14, ended_at = $15
              WHERE consent_id = $1 AND state = $16",
            &[
                &c.consent_id, &c.user_id, &json(&c.scopes)?, &json(&c.accounts)?, &c.state.as_str(), &c.expires_at,
                &c.use_limit.map(i64::from), &c.daily_limit.map(i64::from), &i64::from(c.uses), &c.agent_user_id,
                &c.agent_approved, &c.two_factor, &c.authorised_at, &c.revoked_by.map(|b| b.as_str()), &c.ended_at,
                &current.state.as_str(),
            ],
        )
        .await?;
    if n != 1 {
        return Err(StoreError::Conflict(ValidationError::new(
            "state",
            format!("consent `{}` changed meanwhile", c.consent_id),
        )));
    }
    get_consent(tx, &c.consent_id).await
}

pub(super) async fn list_consents<C: GenericClient>(
    c: &C,
    app_id: Option<&str>,
    user_id: Option<&str>,
) -> Result<Vec<Consent>, StoreError> {
    rows::all(
        c.query(
            "SELECT * FROM consents
              WHERE ($1::TEXT IS NULL OR app_id = $1)
                AND ($2::TEXT IS NULL OR user_id = $2 OR agent_user_id = $2)
              ORDER BY created_at, ord",
            &[&app_id, &user_id],
        )
        .await?,
        rows::consent,
    )
}

pub(super) async fn set_redirect_uris(
    tx: &Transaction<'_>,
    app_id: &str,
    uris: &[String],
) -> Result<(), StoreError> {
    app_exists(tx, app_id).await?;
    tx.execute(
        "DELETE FROM app_redirect_uris WHERE app_id = $1",
        &[&app_id],
    )
    .await?;
    for u in uris {
        tx.execute(
            "INSERT INTO app_redirect_uris (app_id, uri) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&app_id, u],
        )
        .await?;
    }
    Ok(())
}

pub(super) async fn redirect_uris<C: GenericClient>(
    c: &C,
    app_id: &str,
) -> Result<Vec<String>, StoreError> {
    Ok(c.query(
        "SELECT uri FROM app_redirect_uris WHERE app_id = $1 ORDER BY ord",
        &[&app_id],
    )
    .await?
    .iter()
    .map(|r| r.get(0))
    .collect())
}
