//! The PostgreSQL schema: versioned migrations, applied in order at connect,
//! in one transaction under an advisory lock (several nodes may start at
//! once: the second waits, then finds them applied). `schema_migrations` records which ran.
//!
//! It mirrors the SQLite schema (`sqlite/schema.rs`) table for table and
//! column for column, with PostgreSQL's types: integers are `BIGINT`,
//! flags `BOOLEAN`, blobs `BYTEA`, `AUTOINCREMENT` keys `BIGINT GENERATED
//! ALWAYS AS IDENTITY` (never reused either). Where SQLite code orders by
//! `rowid`, a table here has an identity column `ord` for it. Numbering:
//! PostgreSQL migration 1 is SQLite's migrations 1-9 in their final shape
//! (a PostgreSQL database has no older data to carry over: the audit index
//! is already in its migration-5 form, migration 6's unique index on live
//! fingerprints is created with the table; the audit tables are keyed by
//! node as well, since several nodes index into one database); 2 mirrors SQLite's 10 (flow
//! control complete), 3 SQLite's 11 (risk rules and reviews) and 4
//! SQLite's 12 (alerts).

use tokio_postgres::Client;

use crate::StoreError;

/// The migrations, in order.
const MIGRATIONS: &[&str] = &[
    // 1: SQLite migrations 1-9.
    r#"
    CREATE TABLE meta (k TEXT PRIMARY KEY, v BIGINT NOT NULL);
    INSERT INTO meta (k, v) VALUES ('version', 1);
    CREATE TABLE apps (
        app_id TEXT PRIMARY KEY,
        ord BIGINT GENERATED ALWAYS AS IDENTITY,
        name TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('server','mobile')),
        status TEXT NOT NULL CHECK (status IN ('active','suspended','blacklisted','exited')),
        contact TEXT,
        created_at TEXT NOT NULL,
        require_client_cert BOOLEAN NOT NULL DEFAULT FALSE
    );
    CREATE TABLE credentials (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        app_id TEXT NOT NULL REFERENCES apps(app_id),
        kind TEXT NOT NULL,
        sealed_secret TEXT,
        public_pem TEXT,
        alg TEXT,
        not_before BIGINT NOT NULL,
        not_after BIGINT,
        revoked BOOLEAN NOT NULL DEFAULT FALSE,
        created_at TEXT NOT NULL,
        fingerprint TEXT,
        subject TEXT
    );
    CREATE INDEX credentials_app ON credentials(app_id);
    CREATE UNIQUE INDEX credentials_fingerprint_live ON credentials(fingerprint)
        WHERE NOT revoked AND fingerprint IS NOT NULL;
    CREATE TABLE apis (
        api_id TEXT PRIMARY KEY,
        ord BIGINT GENERATED ALWAYS AS IDENTITY,
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
        created_at TEXT NOT NULL,
        controls TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE uapi_registry (
        u_api_id TEXT PRIMARY KEY,
        institution TEXT NOT NULL,
        type TEXT NOT NULL,
        category BIGINT NOT NULL,
        sequence BIGINT NOT NULL,
        api_id TEXT NOT NULL,
        cancelled BOOLEAN NOT NULL DEFAULT FALSE,
        created_at TEXT NOT NULL,
        UNIQUE (institution, type, category, sequence)
    );
    CREATE TABLE grants (
        app_id TEXT NOT NULL REFERENCES apps(app_id),
        api_id TEXT NOT NULL REFERENCES apis(api_id),
        created_at TEXT NOT NULL,
        clearing BOOLEAN NOT NULL DEFAULT FALSE,
        clearing_approved_by TEXT,
        clearing_approved_at TEXT,
        PRIMARY KEY (app_id, api_id)
    );
    CREATE TABLE ip_rules (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        app_id TEXT REFERENCES apps(app_id),
        action TEXT NOT NULL CHECK (action IN ('allow','deny')),
        cidr TEXT NOT NULL,
        note TEXT,
        created_at TEXT NOT NULL
    );
    CREATE TABLE admin_tokens (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        token_sha256 BYTEA NOT NULL UNIQUE,
        created_at TEXT NOT NULL
    );
    CREATE TABLE bank_keys (
        key_id TEXT PRIMARY KEY,
        purpose TEXT NOT NULL,
        alg TEXT NOT NULL,
        sealed_pkcs8 TEXT NOT NULL,
        public_pem TEXT NOT NULL,
        created_at TEXT NOT NULL,
        retired BOOLEAN NOT NULL DEFAULT FALSE
    );
    -- The audit index of every node (issue 12 item 8): each node keeps its
    -- own hash chain, so a record is named by (node, seq); the checkpoint
    -- and the indexed-through mark are per node too. Search walks newest
    -- first by time across nodes (audit_ts).
    CREATE TABLE audit_index (
        node TEXT NOT NULL,
        seq BIGINT NOT NULL,
        seg BIGINT NOT NULL,
        off BIGINT NOT NULL,
        kind TEXT NOT NULL,
        txn_id TEXT,
        ts BIGINT NOT NULL,
        app_id TEXT,
        api_id TEXT,
        user_id TEXT,
        result TEXT,
        status BIGINT,
        code TEXT,
        duration_us BIGINT,
        PRIMARY KEY (node, seq)
    );
    CREATE INDEX audit_txn ON audit_index(txn_id);
    CREATE INDEX audit_app_ts ON audit_index(app_id, ts);
    CREATE INDEX audit_api_ts ON audit_index(api_id, ts);
    CREATE INDEX audit_ts ON audit_index(ts);
    CREATE TABLE audit_checkpoint (
        node TEXT PRIMARY KEY,
        last_seq BIGINT NOT NULL,
        checkpoint TEXT NOT NULL
    );
    CREATE TABLE audit_watermark (
        node TEXT PRIMARY KEY,
        indexed_through BIGINT NOT NULL
    );
    CREATE TABLE customers (
        user_id TEXT PRIMARY KEY,
        ord BIGINT GENERATED ALWAYS AS IDENTITY,
        username TEXT NOT NULL UNIQUE,
        display_name TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        totp_sealed BYTEA,
        failed_logins BIGINT NOT NULL DEFAULT 0,
        locked_until BIGINT,
        created_at TEXT NOT NULL
    );
    CREATE TABLE customer_accounts (
        ord BIGINT GENERATED ALWAYS AS IDENTITY,
        user_id TEXT NOT NULL REFERENCES customers(user_id),
        account TEXT NOT NULL UNIQUE
    );
    CREATE INDEX customer_accounts_user ON customer_accounts(user_id);
    CREATE TABLE consents (
        consent_id TEXT PRIMARY KEY,
        ord BIGINT GENERATED ALWAYS AS IDENTITY,
        app_id TEXT NOT NULL,
        user_id TEXT,
        scopes TEXT NOT NULL,
        accounts TEXT NOT NULL,
        state TEXT NOT NULL,
        expires_at BIGINT NOT NULL,
        use_limit BIGINT,
        daily_limit BIGINT,
        uses BIGINT NOT NULL DEFAULT 0,
        agent_user_id TEXT,
        agent_approved BOOLEAN NOT NULL DEFAULT FALSE,
        two_factor BOOLEAN NOT NULL DEFAULT FALSE,
        created_at BIGINT NOT NULL,
        authorised_at BIGINT,
        revoked_by TEXT,
        ended_at BIGINT
    );
    CREATE INDEX consents_app ON consents(app_id);
    CREATE INDEX consents_user ON consents(user_id);
    CREATE INDEX consents_agent ON consents(agent_user_id);
    CREATE TABLE app_redirect_uris (
        ord BIGINT GENERATED ALWAYS AS IDENTITY,
        app_id TEXT NOT NULL REFERENCES apps(app_id),
        uri TEXT NOT NULL,
        UNIQUE (app_id, uri)
    );
    CREATE TABLE limit_rules (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        app_id TEXT REFERENCES apps(app_id),
        api_id TEXT REFERENCES apis(api_id),
        time_window TEXT NOT NULL CHECK (time_window IN ('second','minute','day')),
        max_calls BIGINT NOT NULL CHECK (max_calls >= 1),
        action TEXT NOT NULL CHECK (action IN ('reject','alert')),
        created_at TEXT NOT NULL
    );
    CREATE TABLE app_blacklist_events (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        app_id TEXT NOT NULL REFERENCES apps(app_id),
        action TEXT NOT NULL CHECK (action IN ('add','remove')),
        reason TEXT NOT NULL,
        actor TEXT NOT NULL,
        at TEXT NOT NULL
    );
    CREATE INDEX app_blacklist_events_app ON app_blacklist_events(app_id);
    "#,
    // 2: SQLite migration 10 (TRF-1 complete: month windows, concurrency,
    // pause, what a counter counts). PostgreSQL changes the CHECKs in place;
    // the identity keeps counting, so a removed rule's id is never reused.
    r#"
    ALTER TABLE limit_rules DROP CONSTRAINT limit_rules_time_window_check;
    ALTER TABLE limit_rules ADD CONSTRAINT limit_rules_time_window_check
        CHECK (time_window IN ('second','minute','day','month','concurrent'));
    ALTER TABLE limit_rules DROP CONSTRAINT limit_rules_action_check;
    ALTER TABLE limit_rules ADD CONSTRAINT limit_rules_action_check
        CHECK (action IN ('reject','alert','pause'));
    ALTER TABLE limit_rules ADD COLUMN per TEXT NOT NULL DEFAULT 'all'
        CHECK (per IN ('all','ip','app','api','customer'));
    ALTER TABLE limit_rules ADD COLUMN pause_secs BIGINT
        CHECK (pause_secs IS NULL OR pause_secs >= 1);
    "#,
    // 3: SQLite migration 11 (RSK-1, RSK-2): risk rules and review items.
    r#"
    CREATE TABLE risk_rules (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        app_id TEXT NOT NULL REFERENCES apps(app_id),
        api_id TEXT REFERENCES apis(api_id),
        capacity TEXT,
        max_per_txn BIGINT CHECK (max_per_txn IS NULL OR max_per_txn >= 0),
        max_per_day BIGINT CHECK (max_per_day IS NULL OR max_per_day >= 0),
        counterparties TEXT,
        account_types TEXT,
        unusual_multiple BIGINT,
        unusual_min_count BIGINT NOT NULL,
        action TEXT NOT NULL CHECK (action IN ('alert','reject','hold')),
        review_window_secs BIGINT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE risk_reviews (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        app_id TEXT NOT NULL,
        api_id TEXT NOT NULL,
        amount BIGINT NOT NULL,
        counterparty TEXT,
        fingerprint TEXT NOT NULL,
        txn_id TEXT NOT NULL,
        reason TEXT NOT NULL,
        window_secs BIGINT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending','approved','rejected','used')),
        created_at TEXT NOT NULL,
        decided_by TEXT,
        decided_at TEXT,
        approved_until BIGINT,
        used_txn_id TEXT
    );
    CREATE INDEX risk_reviews_fp ON risk_reviews(fingerprint, state);
    "#,
    // 4: SQLite migration 12 (MON-2): alerts, de-duplicated by key.
    r#"
    CREATE TABLE alerts (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        rule TEXT NOT NULL,
        dedup_key TEXT NOT NULL,
        severity TEXT NOT NULL CHECK (severity IN ('info','warning','critical')),
        summary TEXT NOT NULL,
        details TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('open','acknowledged','resolved')),
        count BIGINT NOT NULL,
        first_at TEXT NOT NULL,
        last_at TEXT NOT NULL,
        updated_by TEXT
    );
    CREATE INDEX alerts_key ON alerts(dedup_key, state);
    "#,
    // 5: SQLite migration 13 (MON-3): learned baselines, one JSON model
    // per app x API.
    r#"
    CREATE TABLE baselines (
        app_id TEXT NOT NULL,
        api_id TEXT NOT NULL,
        model TEXT NOT NULL,
        updated_at BIGINT NOT NULL,
        PRIMARY KEY (app_id, api_id)
    );
    "#,
    // the apps' notification URL and the notices
    // sent to apps (MON-4, KEY-4), one per key with its delivery state.
    r#"
    ALTER TABLE apps ADD COLUMN notify_url TEXT;
    CREATE TABLE app_notices (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        dedup_key TEXT NOT NULL UNIQUE,
        app_id TEXT NOT NULL REFERENCES apps(app_id),
        kind TEXT NOT NULL,
        body TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending','delivered','failed')),
        attempts BIGINT NOT NULL DEFAULT 0,
        last_error TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX app_notices_app ON app_notices(app_id, id);
    CREATE INDEX app_notices_state ON app_notices(state, id);
    "#,
    // Cluster-wide statistics (MON-1, issue 14 item 2; PostgreSQL only:
    // one embedded node reads its own counters): each node incarnation's
    // published window slots, overwritten in place as its rings come round,
    // and each node's last publication (how stale its figures may be).
    r#"
    CREATE TABLE stats_slots (
        node TEXT NOT NULL,
        boot BIGINT NOT NULL,
        res BIGINT NOT NULL,
        idx BIGINT NOT NULL,
        epoch BIGINT NOT NULL,
        data TEXT NOT NULL,
        updated_at BIGINT NOT NULL,
        PRIMARY KEY (node, boot, res, idx)
    );
    CREATE INDEX stats_slots_updated ON stats_slots(updated_at);
    CREATE TABLE stats_nodes (
        node TEXT PRIMARY KEY,
        boot BIGINT NOT NULL,
        published_at BIGINT NOT NULL
    );
    "#,
    // The cluster node registry (issue 12 item 8; SQLite's has it with
    // the audit index's node column): each node's admin API URL, where
    // another node fetches the body of a record held in that node's
    // segment files. (The audit index here is keyed by node already.)
    r#"
    CREATE TABLE cluster_nodes (
        node TEXT PRIMARY KEY,
        admin_url TEXT NOT NULL,
        seen_ms BIGINT NOT NULL
    );
    "#,
];

/// Advisory lock key held while migrating ("menshen" in ASCII).
const MIGRATION_LOCK: i64 = 0x006d_656e_7368_656e;

/// Apply the migrations not yet applied.
pub(super) async fn migrate(c: &mut Client) -> Result<(), StoreError> {
    c.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .await?;
    let tx = c.transaction().await?;
    // Transaction-scoped: released at commit. A second node starting at
    // the same time waits here, then finds everything applied.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let applied: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )
        .await?
        .get(0);
    for (i, m) in MIGRATIONS.iter().enumerate().skip(applied.max(0) as usize) {
        tx.batch_execute(m).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[&((i + 1) as i64)],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
