//! The embedded default store: one SQLite file (WAL, synchronous=FULL) with
//! versioned migrations. Calls run on tokio's blocking pool.
//!
//! By role: `schema` (migrations), `rows` (row mappers), `catalog`
//! (apps, credentials, keys, IP rules, admin tokens, the snapshot dump),
//! `apis` (APIs, U_API_IDs, grants), `limits` (flow-control rules), `audit` (the audit index),
//! `customers` (bank customers, their accounts and login lock), `consents`
//! (consents and redirect URIs). This
//! file holds the connections and turns each [`Store`] call into one of
//! their synchronous functions on a blocking thread.
// std Mutex (clippy.toml ban list): each SQLite connection is used only on
// blocking threads (`spawn_blocking`), one statement batch at a time.
#![allow(clippy::disallowed_types)]

mod alerts;
mod apis;
mod audit;
mod baselines;
mod blacklist;
mod catalog;
mod consents;
mod customers;
mod limits;
mod notices;
mod risk;
mod rows;
mod schema;

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use menshen_model::{
    Api, App, AppStatus, Consent, ConsentState, Customer, Grant, IpRule, Lifecycle, LimitRule,
    NewIpRule, NewLimitRule, ValidationError,
};
use rusqlite::{Connection, Transaction};
use tokio::sync::watch;

use crate::{
    AdminToken, AuditQuery, AuditRow, BankKeyRecord, CatalogDump, CredentialRecord, Store,
    StoreError,
};

/// Run `f` with `conn` on a blocking thread.
async fn run_on<T: Send + 'static>(
    conn: Arc<Mutex<Connection>>,
    f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(move || {
        let mut c = conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut c)
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

impl SqliteStore {
    /// Open (creating if needed) the database file and run pending migrations.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        schema::migrate(&mut conn)?;
        let (changes, _) = watch::channel(catalog::version(&conn)?);
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
        run_on(self.index_conn.clone(), move |c| f(c)).await
    }

    /// Run `f` on the main connection, on a blocking thread.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        run_on(self.conn.clone(), move |c| f(c)).await
    }

    /// Run `f` in a transaction that also bumps the change counter; notify
    /// subscribers after commit.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (out, version) = run_on(self.conn.clone(), move |c| {
            // IMMEDIATE: take the write lock up front, so a concurrent writer on
            // the other connection makes us wait (busy_timeout) instead of
            // failing a read-to-write upgrade with SQLITE_BUSY.
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.execute("UPDATE meta SET v = v + 1 WHERE k = 'version'", [])?;
            let v = catalog::version(&tx)?;
            tx.commit()?;
            Ok((out, v))
        })
        .await?;
        self.changes.send_replace(version);
        Ok(out)
    }

    /// Run `f` in a transaction that is not a catalog change (customers,
    /// consents, redirect URIs): no version bump, no snapshot rebuild.
    async fn write_data<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        run_on(self.conn.clone(), move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })
        .await
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn version(&self) -> Result<i64, StoreError> {
        self.read(catalog::version).await
    }

    fn subscribe(&self) -> watch::Receiver<i64> {
        self.changes.subscribe()
    }

    async fn insert_app(&self, app: &App, creds: &[CredentialRecord]) -> Result<(), StoreError> {
        let (app, creds) = (app.clone(), creds.to_vec());
        self.write(move |tx| catalog::insert_app(tx, &app, &creds))
            .await
    }

    async fn get_app(&self, app_id: &str) -> Result<App, StoreError> {
        let id = app_id.to_string();
        self.read(move |c| catalog::get_app(c, &id)).await
    }

    async fn list_apps(&self) -> Result<Vec<App>, StoreError> {
        self.read(catalog::list_apps).await
    }

    async fn set_app_status(&self, app_id: &str, status: AppStatus) -> Result<App, StoreError> {
        let id = app_id.to_string();
        self.write(move |tx| catalog::set_app_status(tx, &id, status))
            .await
    }

    async fn list_credentials(&self, app_id: &str) -> Result<Vec<CredentialRecord>, StoreError> {
        let id = app_id.to_string();
        self.read(move |c| catalog::list_credentials(c, &id)).await
    }

    async fn rotate_credential(
        &self,
        new: &CredentialRecord,
        old_until: i64,
    ) -> Result<(), StoreError> {
        let new = new.clone();
        self.write(move |tx| catalog::rotate_credential(tx, &new, old_until))
            .await
    }

    async fn add_credential(
        &self,
        cred: &CredentialRecord,
    ) -> Result<CredentialRecord, StoreError> {
        let cred = cred.clone();
        self.write(move |tx| catalog::add_credential(tx, cred))
            .await
    }

    async fn revoke_credential(&self, app_id: &str, id: i64) -> Result<(), StoreError> {
        let app = app_id.to_string();
        self.write(move |tx| catalog::revoke_credential(tx, &app, id))
            .await
    }

    async fn find_credential_by_fingerprint(
        &self,
        fingerprint: &str,
    ) -> Result<Option<CredentialRecord>, StoreError> {
        let fp = fingerprint.to_string();
        self.read(move |c| catalog::find_credential_by_fingerprint(c, &fp))
            .await
    }

    async fn set_require_client_cert(&self, app_id: &str, on: bool) -> Result<App, StoreError> {
        let id = app_id.to_string();
        self.write(move |tx| catalog::set_require_client_cert(tx, &id, on))
            .await
    }

    async fn insert_bank_key(&self, key: &BankKeyRecord) -> Result<(), StoreError> {
        let k = key.clone();
        self.write(move |tx| catalog::insert_bank_key(tx, &k)).await
    }

    async fn list_bank_keys(&self) -> Result<Vec<BankKeyRecord>, StoreError> {
        self.read(catalog::list_bank_keys).await
    }

    async fn index_audit(
        &self,
        rows: Vec<AuditRow>,
        checkpoint: Option<(u64, String)>,
        indexed_through: Option<u64>,
    ) -> Result<(), StoreError> {
        // Not a catalog change: no version bump, no snapshot rebuild.
        run_on(self.index_conn.clone(), move |c| {
            audit::insert(c, &rows, checkpoint, indexed_through)
        })
        .await
    }

    async fn search_audit(&self, q: &AuditQuery) -> Result<Vec<AuditRow>, StoreError> {
        let q = q.clone();
        let (from, to) = audit::time_range(&q)?;
        self.read_index(move |c| audit::search(c, &q, from, to))
            .await
    }

    async fn audit_index_watermark(&self) -> Result<Option<AuditRow>, StoreError> {
        self.read(audit::watermark).await
    }

    async fn latest_audit_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
        self.read(audit::latest_checkpoint).await
    }

    async fn register_node(&self, node: &str, admin_url: &str) -> Result<(), StoreError> {
        // Not a catalog change: no version bump, no snapshot rebuild.
        let (node, url) = (node.to_string(), admin_url.to_string());
        run_on(self.index_conn.clone(), move |c| {
            audit::register_node(c, &node, &url)
        })
        .await
    }

    async fn node_admin_url(&self, node: &str) -> Result<Option<String>, StoreError> {
        let node = node.to_string();
        self.read_index(move |c| audit::node_admin_url(c, &node))
            .await
    }

    async fn insert_api(
        &self,
        api: &Api,
        uapi_key: (&str, &str, u8),
        make_uapi: Box<dyn FnOnce(u32) -> Result<String, ValidationError> + Send>,
    ) -> Result<Api, StoreError> {
        let api = api.clone();
        let (inst, typ, cat) = (uapi_key.0.to_string(), uapi_key.1.to_string(), uapi_key.2);
        self.write(move |tx| apis::insert_api(tx, api, (&inst, &typ, cat), make_uapi))
            .await
    }

    async fn get_api(&self, api_id: &str) -> Result<Api, StoreError> {
        let id = api_id.to_string();
        self.read(move |c| apis::get_api(c, &id)).await
    }

    async fn list_apis(&self) -> Result<Vec<Api>, StoreError> {
        self.read(apis::list_apis).await
    }

    async fn set_api_lifecycle(&self, api_id: &str, state: Lifecycle) -> Result<Api, StoreError> {
        let id = api_id.to_string();
        self.write(move |tx| apis::set_api_lifecycle(tx, &id, state))
            .await
    }

    async fn uapi_status(&self, u_api_id: &str) -> Result<Option<bool>, StoreError> {
        let id = u_api_id.to_string();
        self.read(move |c| apis::uapi_status(c, &id)).await
    }

    async fn add_grant(&self, app_id: &str, api_id: &str) -> Result<Grant, StoreError> {
        let (app, api) = (app_id.to_string(), api_id.to_string());
        self.write(move |tx| apis::add_grant(tx, &app, &api)).await
    }

    async fn set_grant_clearing(
        &self,
        app_id: &str,
        api_id: &str,
        clearing: bool,
        approved_by: &str,
    ) -> Result<Grant, StoreError> {
        let (app, api, by) = (
            app_id.to_string(),
            api_id.to_string(),
            approved_by.to_string(),
        );
        self.write(move |tx| apis::set_grant_clearing(tx, &app, &api, clearing, &by))
            .await
    }

    async fn set_api_controls(
        &self,
        api_id: &str,
        controls: &menshen_model::ApiControls,
    ) -> Result<Api, StoreError> {
        let (id, c) = (api_id.to_string(), controls.clone());
        self.write(move |tx| apis::set_api_controls(tx, &id, &c))
            .await
    }

    async fn remove_grant(&self, app_id: &str, api_id: &str) -> Result<(), StoreError> {
        let (app, api) = (app_id.to_string(), api_id.to_string());
        self.write(move |tx| apis::remove_grant(tx, &app, &api))
            .await
    }

    async fn list_grants(&self, app_id: Option<&str>) -> Result<Vec<Grant>, StoreError> {
        let app = app_id.map(str::to_string);
        self.read(move |c| apis::list_grants(c, app.as_deref()))
            .await
    }

    async fn add_ip_rule(&self, rule: &NewIpRule) -> Result<IpRule, StoreError> {
        let net = rule.parse_cidr()?;
        let rule = rule.clone();
        self.write(move |tx| catalog::add_ip_rule(tx, rule, net))
            .await
    }

    async fn remove_ip_rule(&self, id: i64) -> Result<(), StoreError> {
        self.write(move |tx| catalog::remove_ip_rule(tx, id)).await
    }

    async fn list_ip_rules(&self) -> Result<Vec<IpRule>, StoreError> {
        self.read(catalog::list_ip_rules).await
    }

    async fn add_limit_rule(&self, rule: &NewLimitRule) -> Result<LimitRule, StoreError> {
        let rule = rule.clone();
        self.write(move |tx| limits::add(tx, rule)).await
    }

    async fn remove_limit_rule(&self, id: i64) -> Result<(), StoreError> {
        self.write(move |tx| limits::remove(tx, id)).await
    }

    async fn list_limit_rules(&self) -> Result<Vec<LimitRule>, StoreError> {
        self.read(limits::list).await
    }

    async fn add_risk_rule(
        &self,
        rule: &menshen_model::risk::NewRiskRule,
    ) -> Result<menshen_model::risk::RiskRule, StoreError> {
        let rule = rule.clone();
        self.write(move |tx| risk::add(tx, rule)).await
    }

    async fn remove_risk_rule(&self, id: i64) -> Result<(), StoreError> {
        self.write(move |tx| risk::remove(tx, id)).await
    }

    async fn list_risk_rules(&self) -> Result<Vec<menshen_model::risk::RiskRule>, StoreError> {
        self.read(risk::list).await
    }

    async fn risk_hold(
        &self,
        call: &menshen_model::risk::HeldCall,
        now: i64,
    ) -> Result<menshen_model::risk::HoldOutcome, StoreError> {
        let call = call.clone();
        self.write_data(move |tx| risk::hold(tx, call, now)).await
    }

    async fn list_risk_reviews(
        &self,
        state: Option<menshen_model::risk::ReviewState>,
    ) -> Result<Vec<menshen_model::risk::RiskReview>, StoreError> {
        self.read(move |c| risk::reviews(c, state)).await
    }

    async fn decide_risk_review(
        &self,
        id: i64,
        approve: bool,
        by: &str,
        now: i64,
    ) -> Result<menshen_model::risk::RiskReview, StoreError> {
        let by = by.to_string();
        self.write_data(move |tx| risk::decide(tx, id, approve, &by, now))
            .await
    }

    async fn raise_alert(
        &self,
        alert: &menshen_model::alert::NewAlert,
    ) -> Result<(menshen_model::alert::Alert, bool), StoreError> {
        let a = alert.clone();
        self.write_data(move |tx| alerts::raise(tx, a)).await
    }

    async fn list_alerts(
        &self,
        state: Option<menshen_model::alert::AlertState>,
    ) -> Result<Vec<menshen_model::alert::Alert>, StoreError> {
        self.read(move |c| alerts::list(c, state)).await
    }

    async fn save_baselines(
        &self,
        items: &[menshen_model::baseline::StoredBaseline],
    ) -> Result<(), StoreError> {
        let items = items.to_vec();
        self.write_data(move |tx| baselines::save(tx, &items)).await
    }

    async fn load_baselines(
        &self,
        app_id: Option<&str>,
    ) -> Result<Vec<menshen_model::baseline::StoredBaseline>, StoreError> {
        let app_id = app_id.map(str::to_string);
        self.read(move |c| baselines::load(c, app_id.as_deref()))
            .await
    }

    async fn load_baseline_networks(
        &self,
        app_id: Option<&str>,
        since: i64,
    ) -> Result<Vec<menshen_model::baseline::StoredBaseline>, StoreError> {
        let app_id = app_id.map(str::to_string);
        self.read(move |c| baselines::load_networks(c, app_id.as_deref(), since))
            .await
    }

    async fn set_alert_state(
        &self,
        id: i64,
        state: menshen_model::alert::AlertState,
        by: &str,
    ) -> Result<menshen_model::alert::Alert, StoreError> {
        let by = by.to_string();
        self.write_data(move |tx| alerts::set_state(tx, id, state, &by))
            .await
    }

    async fn set_app_notify_url(&self, app_id: &str, url: Option<&str>) -> Result<App, StoreError> {
        let (id, url) = (app_id.to_string(), url.map(str::to_string));
        self.write_data(move |tx| notices::set_notify_url(tx, &id, url.as_deref()))
            .await
    }

    async fn add_app_notice(
        &self,
        notice: &menshen_model::notice::NewAppNotice,
    ) -> Result<(menshen_model::notice::AppNotice, bool), StoreError> {
        let n = notice.clone();
        self.write_data(move |tx| notices::add(tx, &n)).await
    }

    async fn record_app_notice_attempt(
        &self,
        id: i64,
        state: menshen_model::notice::NoticeState,
        error: Option<&str>,
    ) -> Result<menshen_model::notice::AppNotice, StoreError> {
        let error = error.map(str::to_string);
        self.write_data(move |tx| notices::attempt(tx, id, state, error.as_deref()))
            .await
    }

    async fn list_app_notices(
        &self,
        app_id: Option<&str>,
        state: Option<menshen_model::notice::NoticeState>,
    ) -> Result<Vec<menshen_model::notice::AppNotice>, StoreError> {
        let app_id = app_id.map(str::to_string);
        self.read(move |c| notices::list(c, app_id.as_deref(), state))
            .await
    }

    async fn blacklist_apps(
        &self,
        entries: &[menshen_model::BlacklistEntry],
        action: menshen_model::BlacklistAction,
        actor: &str,
    ) -> Result<Vec<menshen_model::BlacklistEvent>, StoreError> {
        let (entries, actor) = (entries.to_vec(), actor.to_string());
        self.write(move |tx| blacklist::apply(tx, &entries, action, &actor))
            .await
    }

    async fn blacklist_history(
        &self,
        app_id: Option<&str>,
    ) -> Result<Vec<menshen_model::BlacklistEvent>, StoreError> {
        let app_id = app_id.map(str::to_string);
        self.read(move |c| blacklist::history(c, app_id.as_deref()))
            .await
    }

    async fn insert_admin_token(
        &self,
        name: &str,
        role: &str,
        hash: &[u8; 32],
    ) -> Result<(), StoreError> {
        let (name, role, hash) = (name.to_string(), role.to_string(), *hash);
        self.write(move |tx| catalog::insert_admin_token(tx, &name, &role, &hash))
            .await
    }

    async fn find_admin_token(&self, hash: &[u8; 32]) -> Result<Option<AdminToken>, StoreError> {
        let hash = *hash;
        self.read(move |c| catalog::find_admin_token(c, &hash))
            .await
    }

    async fn count_admin_tokens(&self) -> Result<i64, StoreError> {
        self.read(catalog::count_admin_tokens).await
    }

    async fn dump_catalog(&self) -> Result<CatalogDump, StoreError> {
        self.read(catalog::dump).await
    }

    async fn insert_customer(
        &self,
        c: &Customer,
        password_hash: &str,
        totp_sealed: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        let (c, hash, totp) = (
            c.clone(),
            zeroize::Zeroizing::new(password_hash.to_string()),
            totp_sealed.map(<[u8]>::to_vec),
        );
        self.write_data(move |tx| customers::insert_customer(tx, &c, &hash, totp.as_deref()))
            .await
    }

    async fn get_customer(&self, user_id: &str) -> Result<Customer, StoreError> {
        let id = user_id.to_string();
        self.read(move |c| customers::get_customer(c, &id)).await
    }

    async fn find_customer_login(
        &self,
        username: &str,
    ) -> Result<Option<(Customer, String, Option<Vec<u8>>)>, StoreError> {
        let name = username.to_string();
        self.read(move |c| customers::find_customer_login(c, &name))
            .await
    }

    async fn customer_totp_sealed(&self, user_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let id = user_id.to_string();
        self.read(move |c| customers::customer_totp_sealed(c, &id))
            .await
    }

    async fn record_login_failure(
        &self,
        user_id: &str,
        now: i64,
        lock_after: u32,
        lock_secs: i64,
    ) -> Result<Customer, StoreError> {
        let id = user_id.to_string();
        self.write_data(move |tx| {
            customers::record_login_failure(tx, &id, now, lock_after, lock_secs)
        })
        .await
    }

    async fn clear_login_failures(&self, user_id: &str) -> Result<(), StoreError> {
        let id = user_id.to_string();
        self.write_data(move |tx| customers::clear_login_failures(tx, &id))
            .await
    }

    async fn list_customers(&self) -> Result<Vec<Customer>, StoreError> {
        self.read(customers::list_customers).await
    }

    async fn insert_consent(&self, c: &Consent) -> Result<(), StoreError> {
        let c = c.clone();
        self.write_data(move |tx| consents::insert_consent(tx, &c))
            .await
    }

    async fn get_consent(&self, consent_id: &str) -> Result<Consent, StoreError> {
        let id = consent_id.to_string();
        self.read(move |c| consents::get_consent(c, &id)).await
    }

    async fn update_consent(
        &self,
        c: &Consent,
        expect: &[ConsentState],
    ) -> Result<Consent, StoreError> {
        let (c, expect) = (c.clone(), expect.to_vec());
        self.write_data(move |tx| consents::update_consent(tx, &c, &expect))
            .await
    }

    async fn list_consents(
        &self,
        app_id: Option<&str>,
        user_id: Option<&str>,
    ) -> Result<Vec<Consent>, StoreError> {
        let (app, user) = (app_id.map(str::to_string), user_id.map(str::to_string));
        self.read(move |c| consents::list_consents(c, app.as_deref(), user.as_deref()))
            .await
    }

    async fn set_redirect_uris(&self, app_id: &str, uris: &[String]) -> Result<(), StoreError> {
        let (app, uris) = (app_id.to_string(), uris.to_vec());
        self.write_data(move |tx| consents::set_redirect_uris(tx, &app, &uris))
            .await
    }

    async fn redirect_uris(&self, app_id: &str) -> Result<Vec<String>, StoreError> {
        let app = app_id.to_string();
        self.read(move |c| consents::redirect_uris(c, &app)).await
    }
}
