//! The cluster store: PostgreSQL, shared by every node (issue 12 item 1).
//!
//! **Why tokio-postgres + deadpool-postgres, not sqlx.** The store is
//! hand-written SQL, as on SQLite: every statement is a plain string next to
//! the code that uses it, and the two backends are reviewed side by side.
//! tokio-postgres is that and no more: an async client, typed parameters,
//! `LISTEN/NOTIFY` as messages on the connection (which change propagation
//! needs, on a dedicated connection). deadpool-postgres adds a small pool
//! with timeouts. sqlx would bring its compile-time checked macros (with a
//! live database or checked-in offline metadata for every query in CI), its
//! own migration runner and a second SQLite driver beside rusqlite, for
//! nothing this store uses.
//!
//! **Change propagation** (item 2). Every catalog write runs in one
//! transaction that first bumps `meta.version` (`UPDATE ... RETURNING`: the
//! row lock also serializes catalog writers, as SQLite's single writer
//! does) and ends with `pg_notify('menshen_config', version)`, delivered at
//! commit. Each node keeps one dedicated connection (`application_name =
//! menshen-listen`) that `LISTEN`s and also polls the version every second;
//! after a lost connection it reconnects with backoff (100 ms doubling to
//! 5 s) and reads the version at once, since notifications sent while it was
//! away are gone. Whatever it learns goes to [`Store::subscribe`]; the
//! gateway's refresher additionally polls [`Store::version`] every
//! `gateway.snapshot_refresh_ms`. The snapshot is rebuilt from
//! [`Store::dump_catalog`], one REPEATABLE READ, READ ONLY transaction: one
//! consistent view of every table.
//!
//! **PostgreSQL down** (item 7). A query that cannot reach the server fails
//! with [`StoreError::Unavailable`] within the pool's timeouts (3 s to
//! connect, 5 s to wait for a connection); the gateway keeps its last
//! snapshot, the admin API answers 503 `STORE_UNAVAILABLE`. Broken pooled
//! connections are dropped and new ones made on the next use, and the
//! listener reconnects by itself, so nothing needs a restart.
//!
//! **TLS** (`[store] tls`, see [`tls`]): verify-full by default for a
//! database off this host, on rustls; the pool and the listener use the same
//! connector.
//!
//! Secrets are sealed under the master key before they reach the store
//! (the control plane does it), exactly as on SQLite: the database never
//! sees an App_Secret, a private key or a TOTP secret in clear.
//!
//! By role: `schema` (migrations), `rows` (row mappers), `catalog` (apps,
//! credentials, keys, IP rules, admin tokens, APIs, grants, the dump),
//! `rules` (flow-control and risk rules, reviews, the blacklist), `people`
//! (customers, consents, redirect URIs), `audit` (the audit index of every
//! node), `alerts` (MON-2).

mod alerts;
mod audit;
mod baselines;
mod catalog;
mod notices;
mod people;
mod rows;
mod rules;
mod schema;
mod stats;
pub mod tls;

pub use stats::{StatsNodeRow, StatsSlotRow};

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use menshen_model::{
    Api, App, AppStatus, Consent, ConsentState, Customer, Grant, IpRule, Lifecycle, LimitRule,
    NewIpRule, NewLimitRule, ValidationError,
};
use tokio::sync::{mpsc, watch};
use tokio_postgres::{AsyncMessage, IsolationLevel};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::{
    AdminToken, AuditQuery, AuditRow, BankKeyRecord, CatalogDump, CredentialRecord, Store,
    StoreError,
};

/// The notification channel of catalog changes; the payload is the version.
pub const CHANNEL: &str = "menshen_config";

/// `application_name` of each node's listening connection (so an operator,
/// or a test, can find it in `pg_stat_activity`).
pub const LISTEN_APP_NAME: &str = "menshen-listen";

/// How often the listener also reads the version.
const POLL: Duration = Duration::from_secs(1);

/// After a failed connect, how long calls fail at once (see `retry_at`).
const FAIL_FAST: Duration = Duration::from_millis(250);

/// Settings of a [`PgStore`].
#[derive(Debug, Clone)]
pub struct PgStoreConfig {
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?options]`.
    pub url: String,
    /// Pooled connections (the listener has one more of its own).
    pub pool_size: usize,
    /// This node's name in the audit index (its `node_id`): each node's hash
    /// chain is indexed under it.
    pub node: String,
    /// TLS to the server (default: see [`tls::PgTlsMode::default_for`]).
    pub tls: tls::PgTls,
}

/// Check a `store.url`; the error says what is wrong (the caller names the
/// field).
pub fn check_url(url: &str) -> Result<tokio_postgres::Config, String> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err("must start with postgres:// (e.g. \"postgres://menshen@db.bank.example:5432/menshen\"), or leave [store] out for the embedded SQLite store".into());
    }
    let cfg = tokio_postgres::Config::from_str(url).map_err(|e| {
        format!("is not a PostgreSQL URL ({e}); use postgres://USER[:PASSWORD]@HOST[:PORT]/DB")
    })?;
    if cfg.get_hosts().is_empty() {
        return Err("names no host; use postgres://USER@HOST:PORT/DB".into());
    }
    if cfg.get_dbname().is_none() {
        return Err("names no database; use postgres://USER@HOST:PORT/DB".into());
    }
    if url
        .split_once('?')
        .is_some_and(|(_, q)| q.split('&').any(|kv| kv.starts_with("sslmode=")))
    {
        return Err("sslmode in the url is not used: set TLS in the same section instead, tls = \"verify-full\" (with ca_file), \"require\" or \"disable\"".into());
    }
    Ok(cfg)
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        if is_unavailable(&e) {
            StoreError::Unavailable(with_causes(&e))
        } else {
            StoreError::Backend(with_causes(&e))
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError::Unavailable(with_causes(&e))
    }
}

/// `e` and its causes, each once ("error performing TLS handshake: invalid
/// peer certificate: UnknownIssuer").
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let t = c.to_string();
        if !text.contains(&t) {
            text = format!("{text}: {t}");
        }
        cause = c.source();
    }
    text
}

/// Whether `e` means the server cannot be reached (rather than a statement
/// failing): a closed or failed connection, or the server shutting down.
fn is_unavailable(e: &tokio_postgres::Error) -> bool {
    use std::error::Error as _;
    if e.is_closed() {
        return true;
    }
    if let Some(code) = e.code() {
        let c = code.code();
        return c.starts_with("08") || matches!(c, "57P01" | "57P02" | "57P03");
    }
    e.source().is_some_and(|s| s.is::<std::io::Error>()) || e.to_string().contains("timed out")
}

/// PostgreSQL-backed [`Store`].
pub struct PgStore {
    pool: Pool,
    node: String,
    /// Until when (ms after `since`) calls fail at once without trying the
    /// server: set for [`FAIL_FAST`] after the pool could not connect, so
    /// that while PostgreSQL is unreachable the audit index, the snapshot
    /// poller and admin writes fail in microseconds instead of each waiting
    /// out a connect timeout (the audit writer must not be held up).
    retry_at: std::sync::atomic::AtomicU64,
    since: std::time::Instant,
    changes: Arc<watch::Sender<i64>>,
    /// Dropped with the store: ends the listener.
    _stop: watch::Sender<()>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("node", &self.node)
            .field("pool", &self.pool.status())
            .finish()
    }
}

impl PgStore {
    /// Connect, run pending migrations and start the change listener.
    pub async fn connect(cfg: &PgStoreConfig) -> Result<Self, StoreError> {
        let mut pg =
            check_url(&cfg.url).map_err(|e| StoreError::Invalid(ValidationError::new("url", e)))?;
        let invalid = |e: String| {
            let (field, msg) = e.split_once(": ").unwrap_or(("tls", e.as_str()));
            StoreError::Invalid(ValidationError::new(field, msg))
        };
        let mode = cfg.tls.check(&pg).map_err(invalid)?;
        let connector = MakeRustlsConnect::new(cfg.tls.client_config(mode).map_err(invalid)?);
        pg.ssl_mode(match mode {
            tls::PgTlsMode::Disable => tokio_postgres::config::SslMode::Disable,
            _ => tokio_postgres::config::SslMode::Require,
        });
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(Duration::from_secs(3));
        }
        if pg.get_application_name().is_none() {
            pg.application_name("menshen");
        }
        let mgr = Manager::from_config(
            pg.clone(),
            connector.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(cfg.pool_size.max(2))
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(Duration::from_secs(3)))
            .wait_timeout(Some(Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(3)))
            .build()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let v = {
            let mut c = pool.get().await?;
            let c: &mut tokio_postgres::Client = &mut c;
            schema::migrate(c).await?;
            catalog::version(c).await?
        };
        let (changes, _) = watch::channel(v);
        let changes = Arc::new(changes);
        let (stop, stop_rx) = watch::channel(());
        let mut listen_cfg = pg;
        listen_cfg.application_name(LISTEN_APP_NAME);
        tokio::spawn(listen(listen_cfg, connector, changes.clone(), stop_rx));
        Ok(PgStore {
            pool,
            node: cfg.node.clone(),
            retry_at: std::sync::atomic::AtomicU64::new(0),
            since: std::time::Instant::now(),
            changes,
            _stop: stop,
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        use std::sync::atomic::Ordering::Relaxed;
        let now = self.since.elapsed().as_millis() as u64;
        if now < self.retry_at.load(Relaxed) {
            return Err(StoreError::Unavailable(
                "PostgreSQL could not be reached a moment ago; trying again shortly".into(),
            ));
        }
        match self.pool.get().await {
            Ok(c) => Ok(c),
            Err(e) => {
                let now = self.since.elapsed().as_millis() as u64;
                self.retry_at
                    .store(now + FAIL_FAST.as_millis() as u64, Relaxed);
                Err(e.into())
            }
        }
    }

    /// A version this node has seen committed.
    fn seen(&self, v: i64) {
        advance(&self.changes, v);
    }
}

/// Move the subscribers' version forward (never back).
fn advance(changes: &watch::Sender<i64>, v: i64) {
    changes.send_if_modified(|cur| {
        if v > *cur {
            *cur = v;
            true
        } else {
            false
        }
    });
}

/// The listener: one dedicated connection that `LISTEN`s and polls, and
/// reconnects with backoff when it is lost, until `stop` fires.
async fn listen(
    cfg: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    changes: Arc<watch::Sender<i64>>,
    mut stop: watch::Receiver<()>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let mut connected = false;
        let session = listen_once(&cfg, &tls, &changes, &mut connected);
        tokio::select! {
            _ = stop.changed() => return,
            r = session => {
                if let Err(e) = r {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "store change listener lost its connection; reconnecting (changes are still polled)");
                }
            }
        }
        if connected {
            backoff = Duration::from_millis(100);
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn listen_once(
    cfg: &tokio_postgres::Config,
    tls: &MakeRustlsConnect,
    changes: &watch::Sender<i64>,
    connected: &mut bool,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut conn) = cfg.connect(tls.clone()).await?;
    let (ntx, mut nrx) = mpsc::unbounded_channel::<String>();
    let driver = tokio::spawn(async move {
        while let Some(m) = std::future::poll_fn(|cx| conn.poll_message(cx)).await {
            match m {
                Ok(AsyncMessage::Notification(n)) => {
                    if ntx.send(n.payload().to_string()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    let out = async {
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        *connected = true;
        tracing::info!("store change listener connected");
        // Whatever changed while nobody listened.
        advance(changes, version_of(&client).await?);
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                n = nrx.recv() => match n {
                    Some(p) => {
                        if let Ok(v) = p.parse::<i64>() {
                            advance(changes, v);
                        }
                    }
                    // The connection ended: find out why from a query.
                    None => {
                        version_of(&client).await?;
                        return Ok(());
                    }
                },
                _ = tick.tick() => advance(changes, version_of(&client).await?),
            }
        }
    }
    .await;
    driver.abort();
    out
}

async fn version_of(c: &tokio_postgres::Client) -> Result<i64, tokio_postgres::Error> {
    Ok(c.query_one("SELECT v FROM meta WHERE k = 'version'", &[])
        .await?
        .get(0))
}

/// A catalog change: in one transaction, bump the version first (its row
/// lock serializes catalog writers), run `$body` with `$tx`, notify every
/// node, commit; then tell local subscribers.
macro_rules! change {
    ($self:ident, |$tx:ident| $body:expr) => {{
        let mut client = $self.client().await?;
        let client: &mut tokio_postgres::Client = &mut client;
        let $tx = client.transaction().await?;
        let v: i64 = $tx
            .query_one(
                "UPDATE meta SET v = v + 1 WHERE k = 'version' RETURNING v",
                &[],
            )
            .await?
            .get(0);
        let out = $body;
        $tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &v.to_string()])
            .await?;
        $tx.commit().await?;
        $self.seen(v);
        Ok(out)
    }};
}

/// A write that is not a catalog change (customers, consents, reviews): one
/// transaction, no version bump.
macro_rules! data {
    ($self:ident, |$tx:ident| $body:expr) => {{
        let mut client = $self.client().await?;
        let client: &mut tokio_postgres::Client = &mut client;
        let $tx = client.transaction().await?;
        let out = $body;
        $tx.commit().await?;
        Ok(out)
    }};
}

/// A read on a pooled connection.
macro_rules! read {
    ($self:ident, |$c:ident| $body:expr) => {{
        let client = $self.client().await?;
        let $c: &tokio_postgres::Client = &client;
        $body
    }};
}

#[async_trait]
impl Store for PgStore {
    async fn version(&self) -> Result<i64, StoreError> {
        let v = read!(self, |c| catalog::version(c).await)?;
        self.seen(v);
        Ok(v)
    }

    fn subscribe(&self) -> watch::Receiver<i64> {
        self.changes.subscribe()
    }

    async fn insert_app(&self, app: &App, creds: &[CredentialRecord]) -> Result<(), StoreError> {
        change!(self, |tx| catalog::insert_app(&tx, app, creds).await?)
    }

    async fn get_app(&self, app_id: &str) -> Result<App, StoreError> {
        read!(self, |c| catalog::get_app(c, app_id).await)
    }

    async fn list_apps(&self) -> Result<Vec<App>, StoreError> {
        read!(self, |c| catalog::list_apps(c).await)
    }

    async fn set_app_status(&self, app_id: &str, status: AppStatus) -> Result<App, StoreError> {
        change!(self, |tx| catalog::set_app_status(&tx, app_id, status)
            .await?)
    }

    async fn list_credentials(&self, app_id: &str) -> Result<Vec<CredentialRecord>, StoreError> {
        read!(self, |c| catalog::list_credentials(c, app_id).await)
    }

    async fn rotate_credential(
        &self,
        new: &CredentialRecord,
        old_until: i64,
    ) -> Result<(), StoreError> {
        change!(self, |tx| catalog::rotate_credential(&tx, new, old_until)
            .await?)
    }

    async fn add_credential(
        &self,
        cred: &CredentialRecord,
    ) -> Result<CredentialRecord, StoreError> {
        change!(self, |tx| catalog::add_credential(&tx, cred.clone())
            .await?)
    }

    async fn revoke_credential(&self, app_id: &str, id: i64) -> Result<(), StoreError> {
        change!(self, |tx| catalog::revoke_credential(&tx, app_id, id)
            .await?)
    }

    async fn find_credential_by_fingerprint(
        &self,
        fingerprint: &str,
    ) -> Result<Option<CredentialRecord>, StoreError> {
        read!(self, |c| catalog::find_credential_by_fingerprint(
            c,
            fingerprint
        )
        .await)
    }

    async fn set_require_client_cert(&self, app_id: &str, on: bool) -> Result<App, StoreError> {
        change!(self, |tx| catalog::set_require_client_cert(&tx, app_id, on)
            .await?)
    }

    async fn insert_bank_key(&self, key: &BankKeyRecord) -> Result<(), StoreError> {
        change!(self, |tx| catalog::insert_bank_key(&tx, key).await?)
    }

    async fn list_bank_keys(&self) -> Result<Vec<BankKeyRecord>, StoreError> {
        read!(self, |c| catalog::list_bank_keys(c).await)
    }

    async fn index_audit(
        &self,
        rows: Vec<AuditRow>,
        checkpoint: Option<(u64, String)>,
        indexed_through: Option<u64>,
    ) -> Result<(), StoreError> {
        // Not a catalog change: no version bump, no snapshot rebuild.
        let mut client = self.client().await?;
        audit::insert(&mut client, &self.node, &rows, checkpoint, indexed_through).await
    }

    async fn search_audit(&self, q: &AuditQuery) -> Result<Vec<AuditRow>, StoreError> {
        let (from, to) = audit::time_range(q)?;
        read!(self, |c| audit::search(c, q, from, to).await)
    }

    async fn audit_index_watermark(&self) -> Result<Option<AuditRow>, StoreError> {
        read!(self, |c| audit::watermark(c, &self.node).await)
    }

    async fn latest_audit_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
        read!(self, |c| audit::latest_checkpoint(c, &self.node).await)
    }

    // Not a configuration change: no version bump, no snapshot rebuild.
    async fn register_node(&self, node: &str, admin_url: &str) -> Result<(), StoreError> {
        read!(self, |c| audit::register_node(c, node, admin_url).await)
    }

    async fn node_admin_url(&self, node: &str) -> Result<Option<String>, StoreError> {
        read!(self, |c| audit::node_admin_url(c, node).await)
    }

    async fn insert_api(
        &self,
        api: &Api,
        uapi_key: (&str, &str, u8),
        make_uapi: Box<dyn FnOnce(u32) -> Result<String, ValidationError> + Send>,
    ) -> Result<Api, StoreError> {
        change!(self, |tx| catalog::insert_api(
            &tx,
            api.clone(),
            uapi_key,
            make_uapi
        )
        .await?)
    }

    async fn get_api(&self, api_id: &str) -> Result<Api, StoreError> {
        read!(self, |c| catalog::get_api(c, api_id).await)
    }

    async fn list_apis(&self) -> Result<Vec<Api>, StoreError> {
        read!(self, |c| catalog::list_apis(c).await)
    }

    async fn set_api_lifecycle(&self, api_id: &str, state: Lifecycle) -> Result<Api, StoreError> {
        change!(self, |tx| catalog::set_api_lifecycle(&tx, api_id, state)
            .await?)
    }

    async fn uapi_status(&self, u_api_id: &str) -> Result<Option<bool>, StoreError> {
        read!(self, |c| catalog::uapi_status(c, u_api_id).await)
    }

    async fn add_grant(&self, app_id: &str, api_id: &str) -> Result<Grant, StoreError> {
        change!(self, |tx| catalog::add_grant(&tx, app_id, api_id).await?)
    }

    async fn set_grant_clearing(
        &self,
        app_id: &str,
        api_id: &str,
        clearing: bool,
        approved_by: &str,
    ) -> Result<Grant, StoreError> {
        change!(self, |tx| catalog::set_grant_clearing(
            &tx,
            app_id,
            api_id,
            clearing,
            approved_by
        )
        .await?)
    }

    async fn set_api_controls(
        &self,
        api_id: &str,
        controls: &menshen_model::ApiControls,
    ) -> Result<Api, StoreError> {
        change!(self, |tx| catalog::set_api_controls(&tx, api_id, controls)
            .await?)
    }

    async fn remove_grant(&self, app_id: &str, api_id: &str) -> Result<(), StoreError> {
        change!(self, |tx| catalog::remove_grant(&tx, app_id, api_id)
            .await?)
    }

    async fn list_grants(&self, app_id: Option<&str>) -> Result<Vec<Grant>, StoreError> {
        read!(self, |c| catalog::list_grants(c, app_id).await)
    }

    async fn add_ip_rule(&self, rule: &NewIpRule) -> Result<IpRule, StoreError> {
        let net = rule.parse_cidr()?;
        change!(self, |tx| catalog::add_ip_rule(&tx, rule.clone(), net)
            .await?)
    }

    async fn remove_ip_rule(&self, id: i64) -> Result<(), StoreError> {
        change!(self, |tx| catalog::remove_ip_rule(&tx, id).await?)
    }

    async fn list_ip_rules(&self) -> Result<Vec<IpRule>, StoreError> {
        read!(self, |c| catalog::list_ip_rules(c).await)
    }

    async fn add_limit_rule(&self, rule: &NewLimitRule) -> Result<LimitRule, StoreError> {
        change!(self, |tx| rules::add_limit(&tx, rule.clone()).await?)
    }

    async fn remove_limit_rule(&self, id: i64) -> Result<(), StoreError> {
        change!(self, |tx| rules::remove_limit(&tx, id).await?)
    }

    async fn list_limit_rules(&self) -> Result<Vec<LimitRule>, StoreError> {
        read!(self, |c| rules::list_limits(c).await)
    }

    async fn add_risk_rule(
        &self,
        rule: &menshen_model::risk::NewRiskRule,
    ) -> Result<menshen_model::risk::RiskRule, StoreError> {
        change!(self, |tx| rules::add_risk(&tx, rule.clone()).await?)
    }

    async fn remove_risk_rule(&self, id: i64) -> Result<(), StoreError> {
        change!(self, |tx| rules::remove_risk(&tx, id).await?)
    }

    async fn list_risk_rules(&self) -> Result<Vec<menshen_model::risk::RiskRule>, StoreError> {
        read!(self, |c| rules::list_risks(c).await)
    }

    async fn risk_hold(
        &self,
        call: &menshen_model::risk::HeldCall,
        now: i64,
    ) -> Result<menshen_model::risk::HoldOutcome, StoreError> {
        data!(self, |tx| rules::hold(&tx, call.clone(), now).await?)
    }

    async fn list_risk_reviews(
        &self,
        state: Option<menshen_model::risk::ReviewState>,
    ) -> Result<Vec<menshen_model::risk::RiskReview>, StoreError> {
        read!(self, |c| rules::reviews(c, state).await)
    }

    async fn decide_risk_review(
        &self,
        id: i64,
        approve: bool,
        by: &str,
        now: i64,
    ) -> Result<menshen_model::risk::RiskReview, StoreError> {
        data!(self, |tx| rules::decide(&tx, id, approve, by, now).await?)
    }

    async fn raise_alert(
        &self,
        alert: &menshen_model::alert::NewAlert,
    ) -> Result<(menshen_model::alert::Alert, bool), StoreError> {
        data!(self, |tx| alerts::raise(&tx, alert).await?)
    }

    async fn list_alerts(
        &self,
        state: Option<menshen_model::alert::AlertState>,
    ) -> Result<Vec<menshen_model::alert::Alert>, StoreError> {
        read!(self, |c| alerts::list(c, state).await)
    }

    async fn save_baselines(
        &self,
        items: &[menshen_model::baseline::StoredBaseline],
    ) -> Result<(), StoreError> {
        data!(self, |tx| baselines::save(&tx, items).await?)
    }

    async fn load_baselines(
        &self,
        app_id: Option<&str>,
    ) -> Result<Vec<menshen_model::baseline::StoredBaseline>, StoreError> {
        read!(self, |c| baselines::load(c, app_id).await)
    }

    async fn load_baseline_networks(
        &self,
        app_id: Option<&str>,
        since: i64,
    ) -> Result<Vec<menshen_model::baseline::StoredBaseline>, StoreError> {
        read!(self, |c| baselines::load_networks(c, app_id, since).await)
    }

    async fn set_alert_state(
        &self,
        id: i64,
        state: menshen_model::alert::AlertState,
        by: &str,
    ) -> Result<menshen_model::alert::Alert, StoreError> {
        data!(self, |tx| alerts::set_state(&tx, id, state, by).await?)
    }

    async fn set_app_notify_url(&self, app_id: &str, url: Option<&str>) -> Result<App, StoreError> {
        data!(self, |tx| notices::set_notify_url(&tx, app_id, url).await?)
    }

    async fn add_app_notice(
        &self,
        notice: &menshen_model::notice::NewAppNotice,
    ) -> Result<(menshen_model::notice::AppNotice, bool), StoreError> {
        data!(self, |tx| notices::add(&tx, notice).await?)
    }

    async fn record_app_notice_attempt(
        &self,
        id: i64,
        state: menshen_model::notice::NoticeState,
        error: Option<&str>,
    ) -> Result<menshen_model::notice::AppNotice, StoreError> {
        data!(self, |tx| notices::attempt(&tx, id, state, error).await?)
    }

    async fn list_app_notices(
        &self,
        app_id: Option<&str>,
        state: Option<menshen_model::notice::NoticeState>,
    ) -> Result<Vec<menshen_model::notice::AppNotice>, StoreError> {
        read!(self, |c| notices::list(c, app_id, state).await)
    }

    async fn blacklist_apps(
        &self,
        entries: &[menshen_model::BlacklistEntry],
        action: menshen_model::BlacklistAction,
        actor: &str,
    ) -> Result<Vec<menshen_model::BlacklistEvent>, StoreError> {
        change!(self, |tx| rules::blacklist(&tx, entries, action, actor)
            .await?)
    }

    async fn blacklist_history(
        &self,
        app_id: Option<&str>,
    ) -> Result<Vec<menshen_model::BlacklistEvent>, StoreError> {
        read!(self, |c| rules::blacklist_history(c, app_id).await)
    }

    async fn insert_admin_token(
        &self,
        name: &str,
        role: &str,
        hash: &[u8; 32],
    ) -> Result<(), StoreError> {
        change!(self, |tx| catalog::insert_admin_token(
            &tx, name, role, hash
        )
        .await?)
    }

    async fn find_admin_token(&self, hash: &[u8; 32]) -> Result<Option<AdminToken>, StoreError> {
        read!(self, |c| catalog::find_admin_token(c, hash).await)
    }

    async fn count_admin_tokens(&self) -> Result<i64, StoreError> {
        read!(self, |c| catalog::count_admin_tokens(c).await)
    }

    async fn dump_catalog(&self) -> Result<CatalogDump, StoreError> {
        let mut client = self.client().await?;
        let client: &mut tokio_postgres::Client = &mut client;
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let dump = catalog::dump(&tx).await?;
        tx.commit().await?;
        self.seen(dump.version);
        Ok(dump)
    }

    async fn insert_customer(
        &self,
        c: &Customer,
        password_hash: &str,
        totp_sealed: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        data!(self, |tx| people::insert_customer(
            &tx,
            c,
            password_hash,
            totp_sealed
        )
        .await?)
    }

    async fn get_customer(&self, user_id: &str) -> Result<Customer, StoreError> {
        read!(self, |c| people::get_customer(c, user_id).await)
    }

    async fn find_customer_login(
        &self,
        username: &str,
    ) -> Result<Option<(Customer, String, Option<Vec<u8>>)>, StoreError> {
        read!(self, |c| people::find_customer_login(c, username).await)
    }

    async fn customer_totp_sealed(&self, user_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        read!(self, |c| people::customer_totp_sealed(c, user_id).await)
    }

    async fn record_login_failure(
        &self,
        user_id: &str,
        now: i64,
        lock_after: u32,
        lock_secs: i64,
    ) -> Result<Customer, StoreError> {
        data!(self, |tx| people::record_login_failure(
            &tx, user_id, now, lock_after, lock_secs
        )
        .await?)
    }

    async fn clear_login_failures(&self, user_id: &str) -> Result<(), StoreError> {
        data!(self, |tx| people::clear_login_failures(&tx, user_id)
            .await?)
    }

    async fn list_customers(&self) -> Result<Vec<Customer>, StoreError> {
        read!(self, |c| people::list_customers(c).await)
    }

    async fn insert_consent(&self, c: &Consent) -> Result<(), StoreError> {
        data!(self, |tx| people::insert_consent(&tx, c).await?)
    }

    async fn get_consent(&self, consent_id: &str) -> Result<Consent, StoreError> {
        read!(self, |c| people::get_consent(c, consent_id).await)
    }

    async fn update_consent(
        &self,
        c: &Consent,
        expect: &[ConsentState],
    ) -> Result<Consent, StoreError> {
        data!(self, |tx| people::update_consent(&tx, c, expect).await?)
    }

    async fn list_consents(
        &self,
        app_id: Option<&str>,
        user_id: Option<&str>,
    ) -> Result<Vec<Consent>, StoreError> {
        read!(self, |c| people::list_consents(c, app_id, user_id).await)
    }

    async fn set_redirect_uris(&self, app_id: &str, uris: &[String]) -> Result<(), StoreError> {
        data!(self, |tx| people::set_redirect_uris(&tx, app_id, uris)
            .await?)
    }

    async fn redirect_uris(&self, app_id: &str) -> Result<Vec<String>, StoreError> {
        read!(self, |c| people::redirect_uris(c, app_id).await)
    }
}
