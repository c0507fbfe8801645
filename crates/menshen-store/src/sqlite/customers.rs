//! Bank customers (USR-1, USR-7): who they are, the accounts each owns, their
//! credentials (argon2id hash, sealed TOTP secret) and failed-login lock.
//! Plain synchronous SQL; `super` runs it on a blocking thread.

use menshen_model::{Customer, ValidationError};
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};

use crate::{now_rfc3339, StoreError};

/// A customer row without its accounts.
fn customer_from(r: &Row<'_>) -> rusqlite::Result<Customer> {
    Ok(Customer {
        user_id: r.get("user_id")?,
        username: r.get("username")?,
        display_name: r.get("display_name")?,
        accounts: Vec::new(),
        has_totp: r.get::<_, Option<Vec<u8>>>("totp_sealed")?.is_some(),
        locked_until: r.get("locked_until")?,
    })
}

fn accounts_of(c: &Connection, user_id: &str) -> Result<Vec<String>, StoreError> {
    let mut st =
        c.prepare("SELECT account FROM customer_accounts WHERE user_id = ?1 ORDER BY rowid")?;
    let rows = st
        .query_map([user_id], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(rows)
}

fn with_accounts(c: &Connection, mut cust: Customer) -> Result<Customer, StoreError> {
    cust.accounts = accounts_of(c, &cust.user_id)?;
    Ok(cust)
}

fn not_found(user_id: &str) -> StoreError {
    StoreError::NotFound(format!("customer `{user_id}`"))
}

pub(super) fn insert_customer(
    tx: &Transaction<'_>,
    c: &Customer,
    password_hash: &str,
    totp_sealed: Option<&[u8]>,
) -> Result<(), StoreError> {
    let taken: i64 = tx.query_row(
        "SELECT COUNT(*) FROM customers WHERE username = ?1",
        [&c.username],
        |r| r.get(0),
    )?;
    if taken > 0 {
        return Err(StoreError::Conflict(ValidationError::new(
            "username",
            format!("`{}` is taken", c.username),
        )));
    }
    let dup_id: i64 = tx.query_row(
        "SELECT COUNT(*) FROM customers WHERE user_id = ?1",
        [&c.user_id],
        |r| r.get(0),
    )?;
    if dup_id > 0 {
        return Err(StoreError::Conflict(ValidationError::new(
            "user_id",
            format!("`{}` exists", c.user_id),
        )));
    }
    tx.execute(
        "INSERT INTO customers (user_id, username, display_name, password_hash, totp_sealed, failed_logins, locked_until, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?7)",
        params![c.user_id, c.username, c.display_name, password_hash, totp_sealed, c.locked_until, now_rfc3339()],
    )?;
    for (i, a) in c.accounts.iter().enumerate() {
        if c.accounts[..i].contains(a) {
            return Err(StoreError::Invalid(ValidationError::new(
                "accounts",
                format!("account `{a}` is listed twice"),
            )));
        }
        let owner: Option<String> = tx
            .query_row(
                "SELECT user_id FROM customer_accounts WHERE account = ?1",
                [a],
                |r| r.get(0),
            )
            .optional()?;
        if owner.is_some() {
            return Err(StoreError::Conflict(ValidationError::new(
                "accounts",
                format!("account `{a}` already belongs to a customer; an account has one owner"),
            )));
        }
        tx.execute(
            "INSERT INTO customer_accounts (user_id, account) VALUES (?1, ?2)",
            params![c.user_id, a],
        )?;
    }
    Ok(())
}

pub(super) fn get_customer(c: &Connection, user_id: &str) -> Result<Customer, StoreError> {
    let cust = c
        .query_row(
            "SELECT * FROM customers WHERE user_id = ?1",
            [user_id],
            customer_from,
        )
        .optional()?
        .ok_or_else(|| not_found(user_id))?;
    with_accounts(c, cust)
}

pub(super) type Login = (Customer, String, Option<Vec<u8>>);

pub(super) fn find_customer_login(
    c: &Connection,
    username: &str,
) -> Result<Option<Login>, StoreError> {
    let row = c
        .query_row(
            "SELECT * FROM customers WHERE username = ?1",
            [username],
            |r| {
                Ok((
                    customer_from(r)?,
                    r.get::<_, String>("password_hash")?,
                    r.get::<_, Option<Vec<u8>>>("totp_sealed")?,
                ))
            },
        )
        .optional()?;
    match row {
        None => Ok(None),
        Some((cust, hash, totp)) => Ok(Some((with_accounts(c, cust)?, hash, totp))),
    }
}

pub(super) fn customer_totp_sealed(
    c: &Connection,
    user_id: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    c.query_row(
        "SELECT totp_sealed FROM customers WHERE user_id = ?1",
        [user_id],
        |r| r.get::<_, Option<Vec<u8>>>(0),
    )
    .optional()?
    .ok_or_else(|| not_found(user_id))
}

pub(super) fn record_login_failure(
    tx: &Transaction<'_>,
    user_id: &str,
    now: i64,
    lock_after: u32,
    lock_secs: i64,
) -> Result<Customer, StoreError> {
    let failed: i64 = tx
        .query_row(
            "SELECT failed_logins FROM customers WHERE user_id = ?1",
            [user_id],
            |r| r.get(0),
        )
        .optional()?
        .ok_or_else(|| not_found(user_id))?;
    let failed = failed + 1;
    if failed >= i64::from(lock_after.max(1)) {
        tx.execute(
            "UPDATE customers SET failed_logins = 0, locked_until = ?2 WHERE user_id = ?1",
            params![user_id, now.saturating_add(lock_secs)],
        )?;
    } else {
        tx.execute(
            "UPDATE customers SET failed_logins = ?2 WHERE user_id = ?1",
            params![user_id, failed],
        )?;
    }
    get_customer(tx, user_id)
}

pub(super) fn clear_login_failures(tx: &Transaction<'_>, user_id: &str) -> Result<(), StoreError> {
    let n = tx.execute(
        "UPDATE customers SET failed_logins = 0, locked_until = NULL WHERE user_id = ?1",
        [user_id],
    )?;
    if n == 0 {
        return Err(not_found(user_id));
    }
    Ok(())
}

pub(super) fn list_customers(c: &Connection) -> Result<Vec<Customer>, StoreError> {
    let mut st = c.prepare("SELECT * FROM customers ORDER BY rowid")?;
    let rows = st
        .query_map([], customer_from)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().map(|cu| with_accounts(c, cu)).collect()
}
