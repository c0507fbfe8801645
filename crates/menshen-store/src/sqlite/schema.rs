//! The schema: versioned migrations, applied in order at open.

use rusqlite::Connection;

use crate::StoreError;

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    // 1: the foundation schema.
    r#"
    CREATE TABLE meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
    INSERT INTO meta (k, v) VALUES ('version', 1);
    CREATE TABLE apps (
        app_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('server','mobile')),
        status TEXT NOT NULL CHECK (status IN ('active','suspended','blacklisted','exited')),
        contact TEXT,
        created_at TEXT NOT NULL
    );
    CREATE TABLE credentials (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        app_id TEXT NOT NULL REFERENCES apps(app_id),
        kind TEXT NOT NULL,
        sealed_secret TEXT,
        public_pem TEXT,
        alg TEXT,
        not_before INTEGER NOT NULL,
        not_after INTEGER,
        revoked INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL
    );
    CREATE INDEX credentials_app ON credentials(app_id);
    CREATE TABLE apis (
        api_id TEXT PRIMARY KEY,
        version TEXT NOT NULL,
        name TEXT NOT NULL,
        method TEXT NOT NULL,
        path TEXT NOT NULL,
        upstream TEXT NOT NULL,
        level TEXT NOT NULL CHECK (level IN ('A1','A2','A3')),
        integrations TEXT NOT NULL,
        owner TEXT NOT NULL,
        lifecycle TEXT NOT NULL,
        u_api_id TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL
    );
    CREATE TABLE uapi_registry (
        u_api_id TEXT PRIMARY KEY,
        institution TEXT NOT NULL,
        type TEXT NOT NULL,
        category INTEGER NOT NULL,
        sequence INTEGER NOT NULL,
        api_id TEXT NOT NULL,
        cancelled INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        UNIQUE (institution, type, category, sequence)
    );
    CREATE TABLE grants (
        app_id TEXT NOT NULL REFERENCES apps(app_id),
        api_id TEXT NOT NULL REFERENCES apis(api_id),
        created_at TEXT NOT NULL,
        PRIMARY KEY (app_id, api_id)
    );
    CREATE TABLE ip_rules (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        app_id TEXT REFERENCES apps(app_id),
        action TEXT NOT NULL CHECK (action IN ('allow','deny')),
        cidr TEXT NOT NULL,
        note TEXT,
        created_at TEXT NOT NULL
    );
    CREATE TABLE admin_tokens (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        token_sha256 BLOB NOT NULL UNIQUE,
        created_at TEXT NOT NULL
    );
    "#,
    // 2: key pairs, certificates, API controls, the bank keystore.
    r#"
    ALTER TABLE apps ADD COLUMN require_client_cert INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE apis ADD COLUMN controls TEXT NOT NULL DEFAULT '';
    ALTER TABLE credentials ADD COLUMN fingerprint TEXT;
    ALTER TABLE credentials ADD COLUMN subject TEXT;
    CREATE INDEX credentials_fingerprint ON credentials(fingerprint);
    CREATE TABLE bank_keys (
        key_id TEXT PRIMARY KEY,
        purpose TEXT NOT NULL,
        alg TEXT NOT NULL,
        sealed_pkcs8 TEXT NOT NULL,
        public_pem TEXT NOT NULL,
        created_at TEXT NOT NULL,
        retired INTEGER NOT NULL DEFAULT 0
    );
    "#,
    // 3: the audit index (AUD-2, AUD-6) and the latest checkpoint (AUD-3).
    r#"
    CREATE TABLE audit_index (
        seq INTEGER PRIMARY KEY,
        segment TEXT NOT NULL,
        kind TEXT NOT NULL,
        txn_id TEXT,
        timestamp TEXT NOT NULL,
        app_id TEXT,
        api_id TEXT,
        user_id TEXT,
        result TEXT,
        status INTEGER,
        code TEXT,
        record TEXT NOT NULL
    );
    CREATE INDEX audit_txn ON audit_index(txn_id);
    CREATE INDEX audit_app_time ON audit_index(app_id, timestamp);
    CREATE INDEX audit_api_time ON audit_index(api_id, timestamp);
    CREATE INDEX audit_time ON audit_index(timestamp);
    CREATE TABLE audit_checkpoint (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        last_seq INTEGER NOT NULL,
        checkpoint TEXT NOT NULL
    );
    "#,
    // 4: the audit index keeps each record's key fields and its place in the
    // log files, no longer the whole record (see AuditRow); time as integer
    // milliseconds. The index is derived data: the old table is dropped and
    // the node rebuilds it from the log files at start-up.
    r#"
    DROP TABLE audit_index;
    CREATE TABLE audit_index (
        seq INTEGER PRIMARY KEY,
        seg INTEGER NOT NULL,
        off INTEGER NOT NULL,
        kind TEXT NOT NULL,
        txn_id TEXT,
        ts INTEGER NOT NULL,
        app_id TEXT,
        api_id TEXT,
        user_id TEXT,
        result TEXT,
        status INTEGER,
        code TEXT,
        duration_us INTEGER
    );
    CREATE INDEX audit_txn ON audit_index(txn_id);
    CREATE INDEX audit_app_ts ON audit_index(app_id, ts);
    CREATE INDEX audit_api_ts ON audit_index(api_id, ts);
    CREATE INDEX audit_ts ON audit_index(ts);
    "#,
    // 5: every index costs each access record a B-tree insert on the node
    // (issue 9). Time ranges need none: `seq` (the table's key) grows with
    // time, so a search walks back from the newest row and stops early.
    r#"
    DROP INDEX audit_ts;
    "#,
];

/// Apply the migrations not yet applied, each in its own transaction;
/// `PRAGMA user_version` records how many ran.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let applied: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, m) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(m)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}
