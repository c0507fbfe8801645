//! The embedded default store: one SQLite file (WAL, synchronous=FULL) with
//! versioned migrations. Calls run on tokio's blocking pool.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use menshen_model::{
    Api, App, AppKind, AppStatus, CredentialKind, Grant, Integration, IpAction, IpRule, Level,
    Lifecycle, Method, NewIpRule, ValidationError,
};
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};
use tokio::sync::watch;

use crate::{now_rfc3339, AdminToken, CatalogDump, CredentialRecord, Store, StoreError};

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

/// Run `f` with `conn` on a blocking thread.
async fn run_on<T: Send + 'static>(
    conn: Arc<Mutex<Connection>>,
    f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(move || {
        let c = conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&c)
    })
    .await
    .map_err(|e| StoreError::Backend(e.to_string()))?
}

/// SQLite-backed [`Store`].
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    /// A second connection for the audit index: `synchronous=NORMAL` (WAL
    /// stays consistent; a power cut may lose the last index batches, which
    /// the chained log still holds). Keeps index writes off the catalog's lock.
    index_conn: Arc<Mutex<Connection>>,
    changes: watch::Sender<i64>,
}

fn bad_row(what: &str) -> rusqlite::Error {
    rusqlite::Error::InvalidColumnType(0, what.to_string(), rusqlite::types::Type::Text)
}

fn app_from(r: &Row<'_>) -> rusqlite::Result<App> {
    let kind: String = r.get("kind")?;
    let status: String = r.get("status")?;
    Ok(App {
        app_id: r.get("app_id")?,
        name: r.get("name")?,
        kind: AppKind::parse(&kind).ok_or_else(|| bad_row("kind"))?,
        status: AppStatus::parse(&status).ok_or_else(|| bad_row("status"))?,
        contact: r.get("contact")?,
        require_client_cert: r.get::<_, i64>("require_client_cert")? != 0,
        created_at: r.get("created_at")?,
    })
}

fn api_from(r: &Row<'_>) -> rusqlite::Result<Api> {
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

fn cred_from(r: &Row<'_>) -> rusqlite::Result<CredentialRecord> {
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

fn bank_key_from(r: &Row<'_>) -> rusqlite::Result<crate::BankKeyRecord> {
    Ok(crate::BankKeyRecord {
        key_id: r.get("key_id")?,
        purpose: r.get("purpose")?,
        alg: r.get("alg")?,
        sealed_pkcs8: r.get("sealed_pkcs8")?,
        public_pem: r.get("public_pem")?,
        created_at: r.get("created_at")?,
        retired: r.get::<_, i64>("retired")? != 0,
    })
}

fn grant_from(r: &Row<'_>) -> rusqlite::Result<Grant> {
    Ok(Grant {
        app_id: r.get("app_id")?,
        api_id: r.get("api_id")?,
        created_at: r.get("created_at")?,
    })
}

fn rule_from(r: &Row<'_>) -> rusqlite::Result<IpRule> {
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

fn insert_cred(tx: &Transaction<'_>, c: &CredentialRecord) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO credentials (app_id, kind, sealed_secret, public_pem, alg, not_before, not_after, revoked, created_at, fingerprint, subject)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8, ?9, ?10)",
        params![c.app_id, c.kind.as_str(), c.sealed_secret, c.public_pem, c.alg, c.not_before, c.not_after, c.created_at, c.fingerprint, c.subject],
    )?;
    Ok(())
}

fn app_exists(tx: &Connection, app_id: &str) -> Result<(), StoreError> {
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

fn get_app_tx(c: &Connection, app_id: &str) -> Result<App, StoreError> {
    c.query_row("SELECT * FROM apps WHERE app_id = ?1", [app_id], app_from)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("app `{app_id}`")))
}

fn get_api_tx(c: &Connection, api_id: &str) -> Result<Api, StoreError> {
    c.query_row("SELECT * FROM apis WHERE api_id = ?1", [api_id], api_from)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("API `{api_id}`")))
}

impl SqliteStore {
    /// Open (creating if needed) the database file and run pending migrations.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let applied: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        for (i, m) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
            let tx = conn.transaction()?;
            tx.execute_batch(m)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        let version: i64 =
            conn.query_row("SELECT v FROM meta WHERE k = 'version'", [], |r| r.get(0))?;
        let (changes, _) = watch::channel(version);
        let index = Connection::open(path)?;
        index.pragma_update(None, "journal_mode", "WAL")?;
        index.pragma_update(None, "synchronous", "NORMAL")?;
        // Fewer, larger WAL checkpoints for the index's steady inserts.
        index.pragma_update(None, "wal_autocheckpoint", 8192)?;
        index.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            index_conn: Arc::new(Mutex::new(index)),
            changes,
        })
    }

    /// Like [`SqliteStore::read`], on the audit index's own connection: a
    /// long audit search never holds up the control plane's writes or the
    /// gateway's snapshot rebuilds.
    async fn read_index<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        run_on(self.index_conn.clone(), f).await
    }

    /// Run `f` on the main connection, on a blocking thread.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        run_on(self.conn.clone(), f).await
    }

    /// Run `f` in a transaction that also bumps the change counter; notify
    /// subscribers after commit.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        let (out, version) = tokio::task::spawn_blocking(move || {
            let mut c = conn.lock().unwrap_or_else(|p| p.into_inner());
            // IMMEDIATE: take the write lock up front, so a concurrent writer on
            // the other connection makes us wait (busy_timeout) instead of
            // failing a read-to-write upgrade with SQLITE_BUSY.
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.execute("UPDATE meta SET v = v + 1 WHERE k = 'version'", [])?;
            let v: i64 =
                tx.query_row("SELECT v FROM meta WHERE k = 'version'", [], |r| r.get(0))?;
            tx.commit()?;
            Ok::<_, StoreError>((out, v))
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))??;
        self.changes.send_replace(version);
        Ok(out)
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn version(&self) -> Result<i64, StoreError> {
        self.read(|c| Ok(c.query_row("SELECT v FROM meta WHERE k = 'version'", [], |r| r.get(0))?))
            .await
    }

    fn subscribe(&self) -> watch::Receiver<i64> {
        self.changes.subscribe()
    }

    async fn insert_app(&self, app: &App, creds: &[CredentialRecord]) -> Result<(), StoreError> {
        let app = app.clone();
        let creds = creds.to_vec();
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO apps (app_id, name, kind, status, contact, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![app.app_id, app.name, app.kind.as_str(), app.status.as_str(), app.contact, app.created_at],
            )?;
            for c in &creds {
                insert_cred(tx, c)?;
            }
            Ok(())
        })
        .await
    }

    async fn get_app(&self, app_id: &str) -> Result<App, StoreError> {
        let id = app_id.to_string();
        self.read(move |c| get_app_tx(c, &id)).await
    }

    async fn list_apps(&self) -> Result<Vec<App>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare("SELECT * FROM apps ORDER BY rowid")?;
            let rows = st
                .query_map([], app_from)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn set_app_status(&self, app_id: &str, status: AppStatus) -> Result<App, StoreError> {
        let id = app_id.to_string();
        self.write(move |tx| {
            let n = tx.execute(
                "UPDATE apps SET status = ?1 WHERE app_id = ?2",
                params![status.as_str(), id],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("app `{id}`")));
            }
            get_app_tx(tx, &id)
        })
        .await
    }

    async fn list_credentials(&self, app_id: &str) -> Result<Vec<CredentialRecord>, StoreError> {
        let id = app_id.to_string();
        self.read(move |c| {
            app_exists(c, &id)?;
            let mut st = c.prepare("SELECT * FROM credentials WHERE app_id = ?1 ORDER BY id")?;
            let rows = st
                .query_map([&id], cred_from)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn rotate_credential(
        &self,
        new: &CredentialRecord,
        old_until: i64,
    ) -> Result<(), StoreError> {
        let new = new.clone();
        self.write(move |tx| {
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
            insert_cred(tx, &new)?;
            Ok(())
        })
        .await
    }

    async fn add_credential(
        &self,
        cred: &CredentialRecord,
    ) -> Result<CredentialRecord, StoreError> {
        let mut cred = cred.clone();
        self.write(move |tx| {
            app_exists(tx, &cred.app_id)?;
            insert_cred(tx, &cred)?;
            cred.id = tx.last_insert_rowid();
            Ok(cred)
        })
        .await
    }

    async fn revoke_credential(&self, app_id: &str, id: i64) -> Result<(), StoreError> {
        let app = app_id.to_string();
        self.write(move |tx| {
            let n = tx.execute(
                "UPDATE credentials SET revoked = 1, not_after = MIN(COALESCE(not_after, ?3), ?3) WHERE app_id = ?1 AND id = ?2 AND revoked = 0",
                params![app, id, crate::now_unix()],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("active credential {id} of app `{app}`")));
            }
            Ok(())
        })
        .await
    }

    async fn find_credential_by_fingerprint(
        &self,
        fingerprint: &str,
    ) -> Result<Option<CredentialRecord>, StoreError> {
        let fp = fingerprint.to_string();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT * FROM credentials WHERE fingerprint = ?1 AND revoked = 0 LIMIT 1",
                [&fp],
                cred_from,
            )
            .optional()?)
        })
        .await
    }

    async fn set_require_client_cert(&self, app_id: &str, on: bool) -> Result<App, StoreError> {
        let id = app_id.to_string();
        self.write(move |tx| {
            if tx.execute(
                "UPDATE apps SET require_client_cert = ?1 WHERE app_id = ?2",
                params![on as i64, id],
            )? == 0
            {
                return Err(StoreError::NotFound(format!("app `{id}`")));
            }
            get_app_tx(tx, &id)
        })
        .await
    }

    async fn insert_bank_key(&self, key: &crate::BankKeyRecord) -> Result<(), StoreError> {
        let k = key.clone();
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO bank_keys (key_id, purpose, alg, sealed_pkcs8, public_pem, created_at, retired) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![k.key_id, k.purpose, k.alg, k.sealed_pkcs8, k.public_pem, k.created_at, k.retired as i64],
            )?;
            Ok(())
        })
        .await
    }

    async fn list_bank_keys(&self) -> Result<Vec<crate::BankKeyRecord>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare("SELECT * FROM bank_keys ORDER BY created_at, key_id")?;
            let rows = st
                .query_map([], bank_key_from)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn index_audit(
        &self,
        rows: Vec<crate::AuditRow>,
        checkpoint: Option<(u64, String)>,
        indexed_through: Option<u64>,
    ) -> Result<(), StoreError> {
        // Not a catalog change: no version bump, no snapshot rebuild.
        let conn = self.index_conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = conn.lock().unwrap_or_else(|p| p.into_inner());
            // IMMEDIATE: take the write lock up front, so a concurrent writer on
            // the other connection makes us wait (busy_timeout) instead of
            // failing a read-to-write upgrade with SQLITE_BUSY.
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            {
                let mut st = tx.prepare_cached(
                    "INSERT OR IGNORE INTO audit_index (seq, seg, off, kind, txn_id, ts, app_id, api_id, user_id, result, status, code, duration_us)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                )?;
                for r in &rows {
                    st.execute(params![r.seq as i64, r.segment as i64, r.offset as i64, r.kind, r.txn_id, r.time_ms, r.app_id, r.api_id, r.user_id, r.result, r.status, r.code, r.duration_us])?;
                }
            }
            if let Some((last, cp)) = checkpoint {
                tx.execute(
                    "INSERT INTO audit_checkpoint (id, last_seq, checkpoint) VALUES (1, ?1, ?2)
                     ON CONFLICT(id) DO UPDATE SET last_seq = excluded.last_seq, checkpoint = excluded.checkpoint WHERE excluded.last_seq >= audit_checkpoint.last_seq",
                    params![last as i64, cp],
                )?;
            }
            if let Some(n) = indexed_through {
                tx.execute(
                    "INSERT INTO meta (k, v) VALUES ('audit_indexed_through', ?1)
                     ON CONFLICT(k) DO UPDATE SET v = max(v, excluded.v)",
                    params![n as i64],
                )?;
            }
            tx.commit()?;
            Ok::<_, StoreError>(())
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?
    }

    async fn search_audit(
        &self,
        q: &crate::AuditQuery,
    ) -> Result<Vec<crate::AuditRow>, StoreError> {
        let q = q.clone();
        let from = q.from.as_deref().map(|t| time_ms("from", t)).transpose()?;
        let to = q.to.as_deref().map(|t| time_ms("to", t)).transpose()?;
        self.read_index(move |c| {
            // Only the filters given, so SQLite can use the index of the
            // most selective one (`txn_id`, `app_id`, `api_id`); a
            // `(? IS NULL OR col = ?)` form would scan the whole table.
            let mut sql = String::from("SELECT * FROM audit_index WHERE 1");
            let mut args: Vec<rusqlite::types::Value> = Vec::new();
            let mut add = |cond: &str, v: rusqlite::types::Value| {
                args.push(v);
                sql.push_str(&format!(" AND {cond} ?{}", args.len()));
            };
            use rusqlite::types::Value as V;
            if let Some(v) = &q.txn_id {
                add("txn_id =", V::Text(v.clone()));
            }
            if let Some(v) = &q.app_id {
                add("app_id =", V::Text(v.clone()));
            }
            if let Some(v) = &q.api_id {
                add("api_id =", V::Text(v.clone()));
            }
            if let Some(v) = &q.user_id {
                add("user_id =", V::Text(v.clone()));
            }
            if let Some(v) = &q.result {
                add("result =", V::Text(v.clone()));
            }
            if let Some(v) = from {
                add("ts >=", V::Integer(v));
            }
            if let Some(v) = to {
                add("ts <", V::Integer(v));
            }
            if let Some(v) = &q.kind {
                add("kind =", V::Text(v.clone()));
            }
            args.push(V::Integer(q.limit.clamp(1, 1000) as i64));
            sql.push_str(&format!(" ORDER BY seq DESC LIMIT ?{}", args.len()));
            let mut st = c.prepare(&sql)?;
            let rows = st
                .query_map(rusqlite::params_from_iter(args), audit_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn audit_index_watermark(&self) -> Result<Option<crate::AuditRow>, StoreError> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT * FROM audit_index WHERE seq =
                   (SELECT v FROM meta WHERE k = 'audit_indexed_through')",
                [],
                audit_row,
            )
            .optional()?)
        })
        .await
    }

    async fn latest_audit_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT last_seq, checkpoint FROM audit_checkpoint WHERE id = 1",
                [],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?)),
            )
            .optional()?)
        })
        .await
    }

    async fn insert_api(
        &self,
        api: &Api,
        uapi_key: (&str, &str, u8),
        make_uapi: Box<dyn FnOnce(u32) -> Result<String, ValidationError> + Send>,
    ) -> Result<Api, StoreError> {
        let mut api = api.clone();
        let (inst, typ, cat) = (uapi_key.0.to_string(), uapi_key.1.to_string(), uapi_key.2);
        self.write(move |tx| {
            let exists: i64 = tx.query_row("SELECT COUNT(*) FROM apis WHERE api_id = ?1", [&api.api_id], |r| r.get(0))?;
            if exists > 0 {
                return Err(StoreError::Conflict(ValidationError::new(
                    "api_id",
                    format!("`{}` already exists; API_IDs are unique", api.api_id),
                )));
            }
            let clash: Option<String> = tx
                .query_row(
                    "SELECT api_id FROM apis WHERE method = ?1 AND path = ?2 AND lifecycle NOT IN ('offline','archived')",
                    params![api.method.as_str(), api.path],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(other) = clash {
                return Err(StoreError::Conflict(ValidationError::new(
                    "path",
                    format!("{} {} is already served by API `{other}`", api.method, api.path),
                )));
            }
            // Codes are never reused: the registry keeps cancelled ones.
            let last: Option<i64> = tx.query_row(
                "SELECT MAX(sequence) FROM uapi_registry WHERE institution = ?1 AND type = ?2 AND category = ?3",
                params![inst, typ, cat],
                |r| r.get(0),
            )?;
            let next = last.unwrap_or(0) + 1;
            if next > 999_999 {
                return Err(StoreError::Conflict(ValidationError::new(
                    "category",
                    "no U_API_ID sequence numbers left in this institution/type/category",
                )));
            }
            let code = make_uapi(next as u32)?;
            tx.execute(
                "INSERT INTO uapi_registry (u_api_id, institution, type, category, sequence, api_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![code, inst, typ, cat, next, api.api_id, now_rfc3339()],
            )?;
            api.u_api_id = code;
            let integrations: Vec<&str> = api.integrations.iter().map(|i| i.as_str()).collect();
            tx.execute(
                "INSERT INTO apis (api_id, version, name, method, path, upstream, level, integrations, owner, lifecycle, u_api_id, created_at, controls)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                params![api.api_id, api.version, api.name, api.method.as_str(), api.path, api.upstream, api.level.as_str(),
                        integrations.join(","), api.owner, api.lifecycle.as_str(), api.u_api_id, api.created_at,
                        serde_json::to_string(&api.controls).map_err(|e| StoreError::Backend(e.to_string()))?],
            )?;
            Ok(api)
        })
        .await
    }

    async fn get_api(&self, api_id: &str) -> Result<Api, StoreError> {
        let id = api_id.to_string();
        self.read(move |c| get_api_tx(c, &id)).await
    }

    async fn list_apis(&self) -> Result<Vec<Api>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare("SELECT * FROM apis ORDER BY rowid")?;
            let rows = st
                .query_map([], api_from)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn set_api_lifecycle(&self, api_id: &str, state: Lifecycle) -> Result<Api, StoreError> {
        let id = api_id.to_string();
        self.write(move |tx| {
            let api = get_api_tx(tx, &id)?;
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
                "UPDATE apis SET lifecycle = ?1 WHERE api_id = ?2",
                params![state.as_str(), id],
            )?;
            if matches!(state, Lifecycle::Offline | Lifecycle::Archived) {
                tx.execute(
                    "UPDATE uapi_registry SET cancelled = 1 WHERE u_api_id = ?1",
                    [&api.u_api_id],
                )?;
                tx.execute("DELETE FROM grants WHERE api_id = ?1", [&id])?;
            }
            get_api_tx(tx, &id)
        })
        .await
    }

    async fn uapi_status(&self, u_api_id: &str) -> Result<Option<bool>, StoreError> {
        let id = u_api_id.to_string();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT cancelled FROM uapi_registry WHERE u_api_id = ?1",
                [&id],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .map(|v| v != 0))
        })
        .await
    }

    async fn add_grant(&self, app_id: &str, api_id: &str) -> Result<Grant, StoreError> {
        let (app, api) = (app_id.to_string(), api_id.to_string());
        self.write(move |tx| {
            app_exists(tx, &app)?;
            let a = get_api_tx(tx, &api)?;
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
                app_id: app.clone(),
                api_id: api.clone(),
                created_at: now_rfc3339(),
            };
            let n = tx.execute(
                "INSERT OR IGNORE INTO grants (app_id, api_id, created_at) VALUES (?1, ?2, ?3)",
                params![g.app_id, g.api_id, g.created_at],
            )?;
            if n == 0 {
                return Err(StoreError::Conflict(ValidationError::new(
                    "api_id",
                    format!("app `{app}` already holds a grant for `{api}`"),
                )));
            }
            Ok(g)
        })
        .await
    }

    async fn remove_grant(&self, app_id: &str, api_id: &str) -> Result<(), StoreError> {
        let (app, api) = (app_id.to_string(), api_id.to_string());
        self.write(move |tx| {
            let n = tx.execute(
                "DELETE FROM grants WHERE app_id = ?1 AND api_id = ?2",
                params![app, api],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("grant of `{api}` to `{app}`")));
            }
            Ok(())
        })
        .await
    }

    async fn list_grants(&self, app_id: Option<&str>) -> Result<Vec<Grant>, StoreError> {
        let app = app_id.map(str::to_string);
        self.read(move |c| {
            let mut st = c.prepare(
                "SELECT * FROM grants WHERE (?1 IS NULL OR app_id = ?1) ORDER BY app_id, api_id",
            )?;
            let rows = st
                .query_map([&app], grant_from)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn add_ip_rule(&self, rule: &NewIpRule) -> Result<IpRule, StoreError> {
        let net = rule.parse_cidr()?;
        let rule = rule.clone();
        self.write(move |tx| {
            if let Some(app) = &rule.app_id {
                app_exists(tx, app).map_err(|_| {
                    StoreError::Invalid(ValidationError::new("app_id", format!("no app `{app}`")))
                })?;
            }
            let created_at = now_rfc3339();
            tx.execute(
                "INSERT INTO ip_rules (app_id, action, cidr, note, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![rule.app_id, rule.action.as_str(), net.to_string(), rule.note, created_at],
            )?;
            Ok(IpRule {
                id: tx.last_insert_rowid(),
                app_id: rule.app_id.clone(),
                action: rule.action,
                cidr: net,
                note: rule.note.clone(),
                created_at,
            })
        })
        .await
    }

    async fn remove_ip_rule(&self, id: i64) -> Result<(), StoreError> {
        self.write(move |tx| {
            if tx.execute("DELETE FROM ip_rules WHERE id = ?1", [id])? == 0 {
                return Err(StoreError::NotFound(format!("IP rule {id}")));
            }
            Ok(())
        })
        .await
    }

    async fn list_ip_rules(&self) -> Result<Vec<IpRule>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare("SELECT * FROM ip_rules ORDER BY id")?;
            let rows = st
                .query_map([], rule_from)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn insert_admin_token(
        &self,
        name: &str,
        role: &str,
        hash: &[u8; 32],
    ) -> Result<(), StoreError> {
        let (name, role, hash) = (name.to_string(), role.to_string(), hash.to_vec());
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO admin_tokens (name, role, token_sha256, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![name, role, hash, now_rfc3339()],
            )?;
            Ok(())
        })
        .await
    }

    async fn find_admin_token(&self, hash: &[u8; 32]) -> Result<Option<AdminToken>, StoreError> {
        let hash = hash.to_vec();
        self.read(move |c| {
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
        })
        .await
    }

    async fn count_admin_tokens(&self) -> Result<i64, StoreError> {
        self.read(|c| Ok(c.query_row("SELECT COUNT(*) FROM admin_tokens", [], |r| r.get(0))?))
            .await
    }

    async fn dump_catalog(&self) -> Result<CatalogDump, StoreError> {
        self.read(|c| {
            // One read transaction so the dump is consistent.
            c.execute_batch("BEGIN")?;
            let out = (|| {
                let version =
                    c.query_row("SELECT v FROM meta WHERE k = 'version'", [], |r| r.get(0))?;
                let apps = c
                    .prepare("SELECT * FROM apps")?
                    .query_map([], app_from)?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                let credentials = c
                    .prepare("SELECT * FROM credentials WHERE revoked = 0")?
                    .query_map([], cred_from)?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                let apis = c
                    .prepare(
                        "SELECT * FROM apis WHERE lifecycle NOT IN ('offline','archived','draft')",
                    )?
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
                    bank_keys,
                })
            })();
            c.execute_batch("COMMIT")?;
            out
        })
        .await
    }
}

fn audit_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<crate::AuditRow> {
    Ok(crate::AuditRow {
        seq: r.get::<_, i64>("seq")? as u64,
        segment: r.get::<_, i64>("seg")? as u64,
        offset: r.get::<_, i64>("off")? as u64,
        kind: r.get("kind")?,
        txn_id: r.get("txn_id")?,
        time_ms: r.get("ts")?,
        app_id: r.get("app_id")?,
        api_id: r.get("api_id")?,
        user_id: r.get("user_id")?,
        result: r.get("result")?,
        status: r.get("status")?,
        code: r.get("code")?,
        duration_us: r.get("duration_us")?,
    })
}

/// An RFC 3339 time of a search, as Unix milliseconds; a bad one names `field`.
fn time_ms(field: &str, t: &str) -> Result<i64, StoreError> {
    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
        .map(|d| (d.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|e| {
            StoreError::Invalid(ValidationError::new(
                field,
                format!("`{t}` is not an RFC 3339 time ({e}); use e.g. 2026-11-30T08:00:00Z"),
            ))
        })
}
