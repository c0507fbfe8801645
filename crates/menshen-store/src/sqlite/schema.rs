//! The schema: versioned migrations, applied in order at open.

use rusqlite::{params, Connection, Transaction};

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
    // 6: a certificate (or public key) is bound to one app at a time
    // (AUTH-1, KEY-4). Binding was check-then-insert, so concurrent binds
    // could put one certificate on two apps; now the database refuses the
    // second. Revoked rows are kept for the record, so the index is partial:
    // a revoked binding does not block binding the certificate again.
    // Rows that already share a fingerprint are resolved first by the rule
    // of `resolve_duplicate_bindings` (the earliest binding keeps it).
    r#"
    DROP INDEX credentials_fingerprint;
    CREATE UNIQUE INDEX credentials_fingerprint_live ON credentials(fingerprint)
        WHERE revoked = 0 AND fingerprint IS NOT NULL;
    "#,
    // 7: customer authorization (issue 11, USR-1..7). Customers with their
    // password hash (argon2id PHC string) and TOTP secret (sealed under the
    // master key, bound to the user_id); the accounts each owns (an account
    // has one owner); consents (scopes and accounts as JSON arrays); the
    // redirect URIs registered per app (exact match).
    r#"
    CREATE TABLE customers (
        user_id TEXT PRIMARY KEY,
        username TEXT NOT NULL UNIQUE,
        display_name TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        totp_sealed BLOB,
        failed_logins INTEGER NOT NULL DEFAULT 0,
        locked_until INTEGER,
        created_at TEXT NOT NULL
    );
    CREATE TABLE customer_accounts (
        user_id TEXT NOT NULL REFERENCES customers(user_id),
        account TEXT NOT NULL UNIQUE
    );
    CREATE INDEX customer_accounts_user ON customer_accounts(user_id);
    CREATE TABLE consents (
        consent_id TEXT PRIMARY KEY,
        app_id TEXT NOT NULL,
        user_id TEXT,
        scopes TEXT NOT NULL,
        accounts TEXT NOT NULL,
        state TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        use_limit INTEGER,
        daily_limit INTEGER,
        uses INTEGER NOT NULL DEFAULT 0,
        agent_user_id TEXT,
        agent_approved INTEGER NOT NULL DEFAULT 0,
        two_factor INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        authorised_at INTEGER,
        revoked_by TEXT,
        ended_at INTEGER
    );
    CREATE INDEX consents_app ON consents(app_id);
    CREATE INDEX consents_user ON consents(user_id);
    CREATE INDEX consents_agent ON consents(agent_user_id);
    CREATE TABLE app_redirect_uris (
        app_id TEXT NOT NULL REFERENCES apps(app_id),
        uri TEXT NOT NULL,
        UNIQUE (app_id, uri)
    );
    "#,
    // 8: flow-control rules (TRF-1). AUTOINCREMENT: an id is never reused,
    // so a new rule never inherits a removed rule's counters (the hot
    // state keys them by rule id).
    r#"
    CREATE TABLE limit_rules (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        app_id TEXT REFERENCES apps(app_id),
        api_id TEXT REFERENCES apis(api_id),
        time_window TEXT NOT NULL CHECK (time_window IN ('second','minute','day')),
        max_calls INTEGER NOT NULL CHECK (max_calls >= 1),
        action TEXT NOT NULL CHECK (action IN ('reject','alert')),
        created_at TEXT NOT NULL
    );
    "#,
    // 9: a grant approved for clearing/reconciliation sees responses
    // unmasked (CONF-3; who approved it and when is kept with it), and the
    // app blacklist's history (TRF-3: every listing and delisting, with its
    // reason and actor; `apps.status` stays the enforced state).
    r#"
    ALTER TABLE grants ADD COLUMN clearing INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE grants ADD COLUMN clearing_approved_by TEXT;
    ALTER TABLE grants ADD COLUMN clearing_approved_at TEXT;
    CREATE TABLE app_blacklist_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        app_id TEXT NOT NULL REFERENCES apps(app_id),
        action TEXT NOT NULL CHECK (action IN ('add','remove')),
        reason TEXT NOT NULL,
        actor TEXT NOT NULL,
        at TEXT NOT NULL
    );
    CREATE INDEX app_blacklist_events_app ON app_blacklist_events(app_id);
    "#,
    // 10: flow control complete (TRF-1, issue 12 item 4): month windows and
    // concurrency limits, the pause action (with its duration), and what a
    // counter counts (`per`: all calls, or per client IP, app, API or
    // customer). SQLite cannot change a CHECK, so the table is rebuilt with
    // its rows and ids; the AUTOINCREMENT high-water mark is carried over,
    // so a removed rule's id (and its counters' keys) is never reused.
    r#"
    CREATE TABLE limit_rules_v10 (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        app_id TEXT REFERENCES apps(app_id),
        api_id TEXT REFERENCES apis(api_id),
        time_window TEXT NOT NULL
            CHECK (time_window IN ('second','minute','day','month','concurrent')),
        max_calls INTEGER NOT NULL CHECK (max_calls >= 1),
        action TEXT NOT NULL CHECK (action IN ('reject','alert','pause')),
        per TEXT NOT NULL DEFAULT 'all'
            CHECK (per IN ('all','ip','app','api','customer')),
        pause_secs INTEGER CHECK (pause_secs IS NULL OR pause_secs >= 1),
        created_at TEXT NOT NULL
    );
    INSERT INTO limit_rules_v10 (id, app_id, api_id, time_window, max_calls, action, created_at)
        SELECT id, app_id, api_id, time_window, max_calls, action, created_at FROM limit_rules;
    DELETE FROM sqlite_sequence WHERE name = 'limit_rules_v10';
    INSERT INTO sqlite_sequence (name, seq)
        SELECT 'limit_rules_v10', seq FROM sqlite_sequence WHERE name = 'limit_rules';
    DROP TABLE limit_rules;
    ALTER TABLE limit_rules_v10 RENAME TO limit_rules;
    "#,
    // risk rules for fund movements and their review items (RSK-1,
    // RSK-2); the SQL lives beside the code that uses it.
    super::risk::MIGRATION,
    // alerts to operators (MON-2): de-duplicated by key, with a state.
    super::alerts::MIGRATION,
    // learned baselines (MON-3): one JSON model per app x API.
    super::baselines::MIGRATION,
    // the apps' notification URL and the notices sent to apps (MON-4,
    // KEY-4), one per key with its delivery state.
    super::notices::MIGRATION,
    // the audit index names the node whose chain holds each record, and
    // the nodes' admin API URLs, where another node fetches a record's
    // body (issue 12 item 8). Rows indexed before keep `node` NULL.
    r#"
    ALTER TABLE audit_index ADD COLUMN node TEXT;
    CREATE TABLE cluster_nodes (
        node TEXT PRIMARY KEY,
        admin_url TEXT NOT NULL,
        seen_ms INTEGER NOT NULL
    );
    "#,
    // the app and API searches go through runs instead of two B-tree
    // indexes on every row (issue 9): see `super::audit::RUNS_MIGRATION`.
    super::audit::RUNS_MIGRATION,
];

/// Migration 6 makes live fingerprints unique ([`MIGRATIONS`]).
const UNIQUE_FINGERPRINTS: usize = 6;

/// Apply the migrations not yet applied, each in its own transaction;
/// `PRAGMA user_version` records how many ran.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    migrate_to(conn, MIGRATIONS.len())
}

/// [`migrate`], stopping after migration `upto`.
fn migrate_to(conn: &mut Connection, upto: usize) -> Result<(), StoreError> {
    let applied: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, m) in MIGRATIONS
        .iter()
        .enumerate()
        .take(upto)
        .skip(applied as usize)
    {
        let tx = conn.transaction()?;
        if i + 1 == UNIQUE_FINGERPRINTS {
            resolve_duplicate_bindings(&tx)?;
        }
        tx.execute_batch(m)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

/// Before the unique index (AUTH-1, KEY-4): a database written before it may
/// hold one certificate (or key) bound, unrevoked, to several apps by
/// concurrent binds. The rule: the earliest binding (lowest credential id)
/// keeps it, as if the later binds had been refused, which is what the
/// index does from now on; every later one is revoked (its row is kept, like
/// any revoked credential, with `not_after` cut to now) and logged with a
/// warning naming the fingerprint, the credential and both apps.
fn resolve_duplicate_bindings(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let dups = {
        let mut st = tx.prepare(
            "SELECT c.id, c.app_id, c.fingerprint, k.id, k.app_id
               FROM credentials c
               JOIN credentials k ON k.fingerprint = c.fingerprint AND k.revoked = 0
              WHERE c.revoked = 0 AND c.fingerprint IS NOT NULL
                AND k.id = (SELECT MIN(id) FROM credentials
                             WHERE fingerprint = c.fingerprint AND revoked = 0)
                AND c.id <> k.id
              ORDER BY c.id",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?;
        rows.collect::<rusqlite::Result<Vec<_>>>()?
    };
    let now = crate::now_unix();
    for (id, app_id, fingerprint, kept_id, kept_app) in dups {
        tracing::warn!(
            %fingerprint,
            credential = id,
            %app_id,
            kept_credential = kept_id,
            kept_app_id = %kept_app,
            "migration 6: a certificate or key was bound to two apps; revoking the later binding (AUTH-1, KEY-4)"
        );
        tx.execute(
            "UPDATE credentials SET revoked = 1, not_after = MIN(COALESCE(not_after, ?2), ?2) WHERE id = ?1",
            params![id, now],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Migration 10 (TRF-1) keeps the rules and their ids, and a removed
    /// rule's id is still never reused (its counters are keyed by it).
    #[test]
    fn trf_1_migration_10_keeps_rules_ids_and_the_id_high_water_mark() {
        let mut c = Connection::open_in_memory().unwrap();
        migrate_to(&mut c, 9).unwrap();
        c.execute_batch(
            "INSERT INTO limit_rules (time_window, max_calls, action, created_at) VALUES
               ('minute', 5, 'reject', 't'), ('day', 9, 'alert', 't'), ('second', 1, 'reject', 't');
             DELETE FROM limit_rules WHERE id = 3;",
        )
        .unwrap();
        migrate(&mut c).unwrap();
        let rows: Vec<(i64, String, String, Option<i64>)> = c
            .prepare("SELECT id, time_window, per, pause_secs FROM limit_rules ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            rows,
            [
                (1, "minute".into(), "all".into(), None),
                (2, "day".into(), "all".into(), None)
            ]
        );
        c.execute(
            "INSERT INTO limit_rules (time_window, max_calls, action, per, pause_secs, created_at)
             VALUES ('month', 3, 'pause', 'customer', 60, 't')",
            [],
        )
        .unwrap();
        assert_eq!(c.last_insert_rowid(), 4, "id 3 is not reused");
    }

    /// A database written before migration 6 may hold one certificate bound
    /// to two apps (AUTH-1, KEY-4): migrating keeps the earliest binding,
    /// revokes the later one (keeping its row) and then refuses a new one.
    #[test]
    fn auth_1_key_4_migration_keeps_the_earliest_binding_of_a_duplicate() {
        let mut c = Connection::open_in_memory().unwrap();
        migrate_to(&mut c, UNIQUE_FINGERPRINTS - 1).unwrap();
        c.execute_batch(
            "INSERT INTO apps (app_id, name, kind, status, created_at) VALUES
               ('A', 'a', 'server', 'active', 't'), ('B', 'b', 'server', 'active', 't');
             INSERT INTO credentials (id, app_id, kind, not_before, created_at, fingerprint, revoked) VALUES
               (1, 'A', 'certificate', 0, 't', 'fp1', 0),
               (2, 'B', 'certificate', 0, 't', 'fp1', 0),
               (3, 'B', 'certificate', 0, 't', 'fp2', 0),
               (4, 'A', 'certificate', 0, 't', 'fp2', 1),
               (5, 'A', 'secret', 0, 't', NULL, 0),
               (6, 'B', 'secret', 0, 't', NULL, 0);",
        )
        .unwrap();
        migrate(&mut c).unwrap();
        let live: Vec<(i64, i64)> = c
            .prepare("SELECT id, revoked FROM credentials ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(live, [(1, 0), (2, 1), (3, 0), (4, 1), (5, 0), (6, 0)]);
        let again = c.execute(
            "INSERT INTO credentials (app_id, kind, not_before, created_at, fingerprint) VALUES ('B', 'certificate', 0, 't', 'fp1')",
            [],
        );
        assert!(
            again.is_err(),
            "a second live binding of fp1 must be refused"
        );
        // A revoked binding does not block binding the certificate again.
        c.execute("UPDATE credentials SET revoked = 1 WHERE id = 1", [])
            .unwrap();
        c.execute(
            "INSERT INTO credentials (app_id, kind, not_before, created_at, fingerprint) VALUES ('B', 'certificate', 0, 't', 'fp1')",
            [],
        )
        .unwrap();
    }

    /// Records indexed before the runs (issue 9) are still found by App_ID
    /// and API_ID after the migration (AUD-6), newest first, across
    /// segments, and records with neither get no run.
    #[test]
    fn aud_6_runs_migration_keeps_earlier_records_searchable() {
        let mut c = Connection::open_in_memory().unwrap();
        migrate_to(&mut c, MIGRATIONS.len() - 1).unwrap();
        c.execute_batch(
            "INSERT INTO audit_index (seq, seg, off, kind, txn_id, ts, app_id, api_id, result) VALUES
               (1, 1, 0, 'access', 'T1', 100, 'A', 'p', 'success'),
               (2, 1, 9, 'admin', NULL, 101, NULL, NULL, 'success'),
               (3, 1, 18, 'access', 'T3', 99, 'B', 'p', 'failure'),
               (4, 2, 0, 'access', 'T4', 103, 'A', 'q', 'success'),
               (5, 2, 9, 'access', 'T5', 104, 'A', 'p', 'failure');",
        )
        .unwrap();
        migrate(&mut c).unwrap();
        let runs: i64 = c
            .query_row("SELECT count(*) FROM audit_runs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(runs, 4, "(A,p) x 2 segments, (B,p), (A,q)");
        let search = |app: Option<&str>, api: Option<&str>| {
            let q = crate::AuditQuery {
                app_id: app.map(str::to_string),
                api_id: api.map(str::to_string),
                limit: 100,
                ..Default::default()
            };
            super::super::audit::search(&c, &q, None, None)
                .unwrap()
                .iter()
                .map(|r| r.seq)
                .collect::<Vec<_>>()
        };
        assert_eq!(search(Some("A"), None), [5, 4, 1]);
        assert_eq!(search(None, Some("p")), [5, 3, 1]);
        assert_eq!(search(Some("A"), Some("p")), [5, 1]);
        assert_eq!(search(Some("B"), Some("q")), Vec::<u64>::new());
    }
}
