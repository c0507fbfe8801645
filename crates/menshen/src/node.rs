//! A Menshen node: one store, the gateway (data plane) and the admin API
//! (control plane), started together from a [`Config`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use menshen_admin::AdminState;
use menshen_audit::{AuditConfig, AuditLog, AuditSigner};
use menshen_crypto::MasterKey;
use menshen_gateway::{Gateway, GatewayHandle};
use menshen_store::{ControlPlane, HotState, MemoryHotState, SqliteStore, UApiConfig};
use tokio::sync::watch;

use crate::config::Config;

pub mod alerts;
pub mod authorizer;
pub mod cluster_stats;
pub mod files;
mod index_sink;
pub mod otlp;
mod peers;

use index_sink::IndexSink;

/// Environment variable that may carry the master key (64 hex characters).
pub const MASTER_KEY_ENV: &str = "MENSHEN_MASTER_KEY";

/// Load the master key from the environment or the key file (AUTH-3, KEY-3).
pub fn load_master_key(cfg: &Config) -> anyhow::Result<MasterKey> {
    if let Ok(v) = std::env::var(MASTER_KEY_ENV) {
        return MasterKey::from_text(&zeroize::Zeroizing::new(v))
            .map_err(|e| anyhow::anyhow!("{MASTER_KEY_ENV}: {e}"));
    }
    let Some(path) = &cfg.master_key_file else {
        bail!("master_key_file: not set and {MASTER_KEY_ENV} is empty; create one with `menshen masterkey generate --out FILE` and point master_key_file at it");
    };
    MasterKey::from_file(path).map_err(|e| anyhow::anyhow!("master_key_file: {e}"))
}

/// Open the store and build the control plane.
///
/// The data directory is created 0700 (an existing one that group or others
/// can access is refused) and, for the embedded store, the database file
/// 0600 before SQLite opens it. With `store.url`, the store is PostgreSQL
/// (issue 12): connected, migrated, and listened to for changes.
pub async fn control_plane(cfg: &Config) -> anyhow::Result<ControlPlane> {
    Ok(open_control_plane(cfg).await?.0)
}

/// [`control_plane`], and the PostgreSQL store itself in a cluster (for
/// what only the cluster store does: the cluster-wide statistics).
async fn open_control_plane(
    cfg: &Config,
) -> anyhow::Result<(ControlPlane, Option<Arc<menshen_store::PgStore>>)> {
    files::prepare_data_dir(&cfg.data_dir)?;
    let mut pg = None;
    let master = load_master_key(cfg)?;
    let store: Arc<dyn menshen_store::Store> = match &cfg.store.url {
        None => {
            let db = cfg.data_dir.join("menshen.db");
            files::private_db_file(&db)?;
            Arc::new(
                SqliteStore::open(&db)
                    .map_err(|e| anyhow::anyhow!("data_dir: cannot open the store: {e}"))?,
            )
        }
        Some(url) => {
            let s = menshen_store::PgStore::connect(&menshen_store::PgStoreConfig {
                url: url.clone(),
                pool_size: cfg.store.pool_size.unwrap_or(16),
                node: cfg.node_id.clone().unwrap_or_default(),
                tls: cfg.store.pg_tls(),
            })
            .await
            .map_err(|e| match e {
                menshen_store::StoreError::Invalid(v) => anyhow::anyhow!("store.{v}"),
                e if e.to_string().contains("certificate") => anyhow::anyhow!("store.url: cannot open the PostgreSQL store: {e} (TLS: check store.ca_file (the CA that issued the server's certificate) and that the certificate names the url's host; or store.client_cert / client_key)"),
                e => anyhow::anyhow!("store.url: cannot open the PostgreSQL store: {e} (check that the server is up, the URL, user and password; or remove [store] for the embedded SQLite store)"),
            })?;
            let pg_mode = menshen_store::postgres::check_url(url)
                .map(|pg| cfg.store.pg_tls().effective(&pg))
                .ok();
            match pg_mode {
                Some(menshen_store::postgres::tls::PgTlsMode::Disable) if cfg.store.tls.is_some() => tracing::warn!("store.tls = \"disable\": the connections to PostgreSQL are not encrypted; keep them on a protected network"),
                Some(menshen_store::postgres::tls::PgTlsMode::Require) => tracing::warn!("store.tls = \"require\": the connections to PostgreSQL are encrypted but the server's certificate is not checked; use verify-full with ca_file"),
                _ => {}
            }
            tracing::info!(?s, "store: PostgreSQL");
            let s = Arc::new(s);
            pg = Some(s.clone());
            s
        }
    };
    let cp = ControlPlane::new(
        store,
        Arc::new(master),
        UApiConfig {
            prefix: cfg.uapi.prefix.clone(),
            institution: cfg.uapi.institution.clone(),
        },
    )
    .with_profile(
        cfg.level_profile
            .unwrap_or(menshen_model::LevelProfile::ThreeLevel),
    );
    Ok((cp, pg))
}

/// A running node.
pub struct Node {
    /// The gateway.
    pub gateway: GatewayHandle,
    /// Where the admin API listens.
    pub admin_addr: SocketAddr,
    /// The control plane.
    pub cp: ControlPlane,
    /// The access-record writer.
    pub audit: AuditLog,
    admin_stop: watch::Sender<bool>,
    /// Cleared when the node starts stopping (`/readyz` then says not ready).
    serving: Arc<std::sync::atomic::AtomicBool>,
    admin_task: tokio::task::JoinHandle<()>,
    /// Saves the learned baselines a last time once stopping (MON-3).
    baseline_saver: tokio::task::JoinHandle<()>,
    /// Publishes this node's statistics to the cluster store (MON-1), and
    /// a last time once stopping.
    stats_publisher: Option<tokio::task::JoinHandle<()>>,
    /// The OTLP span exporter, flushed and stopped at shutdown.
    otlp: Option<Arc<otlp::OtlpSink>>,
    marker: std::path::PathBuf,
}

/// File in the data directory that exists while a node runs; found at
/// start-up, it means the previous run did not stop cleanly.
pub const RUNNING_MARKER: &str = "node.running";

impl Node {
    /// Start gateway and admin API.
    pub async fn start(cfg: Config) -> anyhow::Result<Node> {
        Self::start_with(cfg, None).await
    }

    /// [`Node::start`] on a given hot state instead of the one `[hot_state]`
    /// names (tests: an in-process one on an injected clock, TRF-1).
    pub async fn start_with(cfg: Config, hot: Option<Arc<dyn HotState>>) -> anyhow::Result<Node> {
        // ADM-1: before anything is created or bound.
        if cfg.admin.check_exposure()? {
            tracing::warn!(
                listen = %cfg.admin.listen,
                "admin.listen is not a loopback address and admin.tls is not set: admin tokens and changes cross the network in clear (admin.allow_plaintext_non_loopback = true)"
            );
        }
        let admin_tls = match &cfg.admin.tls {
            Some(t) => Some(Arc::new(
                menshen_admin::serve::tls_config(&t.cert, &t.key).map_err(anyhow::Error::msg)?,
            )),
            None => None,
        };
        let (cp, pg) = open_control_plane(&cfg).await?;
        let keys = cp
            .ensure_bank_keys()
            .await
            .map_err(|e| anyhow::anyhow!("keystore: {e}"))?;
        let audit_key = keys
            .iter()
            .filter(|k| k.purpose == menshen_store::control::purpose::AUDIT && !k.retired)
            .max_by(|a, b| a.created_at.cmp(&b.created_at))
            .context("keystore: no audit key")?;
        let signer = AuditSigner {
            key_id: audit_key.key_id.clone(),
            key: cp
                .open_bank_key(audit_key)
                .context("keystore: the audit key does not open with this master key")?,
        };
        let mut audit_cfg = audit_config(&cfg);
        files::create_private_dir(&audit_cfg.dir)
            .with_context(|| format!("data_dir: cannot create {}", audit_cfg.dir.display()))?;
        // Issue 12 item 8: the node id of the audit chain (segment names and
        // lines) and of the transaction serial numbers.
        let (gateway_node, audit_node) = peers::resolve_node_id(&cfg, &audit_cfg.dir)?;
        audit_cfg.node_id = audit_node.clone();
        let index = IndexSink::start(cp.clone(), audit_cfg.dir.clone(), audit_node.clone());
        // MON-2: every committed access record is also a signal for the
        // alert rules (a bounded queue, never waited on).
        let mut server_certs = vec![(
            "gateway server certificate".to_string(),
            cfg.gateway.tls_cert.clone(),
        )];
        if let Some(t) = &cfg.admin.tls {
            server_certs.push(("admin API server certificate".to_string(), t.cert.clone()));
        }
        let alert_engine = alerts::Engine::new(cfg.alerts.clone()).with_server_certs(server_certs);
        let sink = alerts::Tee::new(index, alert_engine.tx.clone());
        let audit = AuditLog::open(audit_cfg, Some(signer), Some(Box::new(sink)))
            .map_err(|e| anyhow::anyhow!("data_dir: {e}"))?;
        let admin_listener = tokio::net::TcpListener::bind(cfg.admin.listen)
            .await
            .with_context(|| format!("admin.listen: cannot bind {}", cfg.admin.listen))?;
        let admin_addr = admin_listener.local_addr()?;
        let hot = match hot {
            Some(h) => h,
            None => hot_state(&cfg).await?,
        };
        let authorizer = Arc::new(authorizer::OAuthAuthorizer::default());
        // INT-4 after a crash: A1 records (and so their nonces) may not have
        // reached the disk, and an unreadable log seeds nothing. After an
        // unclean stop, or when the log cannot be read, requests signed
        // before this start are refused for one replay window.
        let marker = cfg.data_dir.join(RUNNING_MARKER);
        let unclean = marker.exists();
        let seeded = seed_replay_cache(&audit, hot.as_ref(), cfg.gateway.replay_window_secs).await;
        let replay_not_before = (unclean || !seeded).then(|| {
            let now = menshen_store::now_unix();
            tracing::warn!(
                unclean_stop = unclean,
                log_read = seeded,
                not_before = now,
                window_secs = cfg.gateway.replay_window_secs,
                "the previous run did not stop cleanly or the log could not be read: requests signed before this start are refused for one replay window (INT-4)"
            );
            now
        });
        files::write_private(&marker, std::process::id().to_string().as_bytes())?;
        // Issue 14 item 7: OTLP span export, off unless [tracing.otlp].
        let otlp = match &cfg.tracing.otlp {
            Some(o) => Some(otlp::OtlpSink::start(o)?),
            None => None,
        };
        let gateway = match Gateway::start(
            cfg.gateway.clone(),
            cp.clone(),
            hot.clone(),
            audit.clone(),
            menshen_gateway::server::StartOptions {
                node_id: gateway_node,
                replay_not_before,
                fd_limit: menshen_gateway::server::open_file_limit(),
                authorizer: Some(authorizer.clone()),
                spans: otlp
                    .clone()
                    .map(|s| s as Arc<dyn menshen_gateway::trace::SpanSink>),
            },
        )
        .await
        {
            Ok(g) => g,
            Err(e) => {
                // Nothing was served: this start leaves no unclean mark.
                if !unclean {
                    let _ = std::fs::remove_file(&marker);
                }
                return Err(anyhow::Error::msg(e));
            }
        };
        // The authorization server (issue 11): its issuer is the configured
        // public URL, else the first address the gateway bound.
        let issuer = cfg
            .oauth
            .issuer
            .clone()
            .unwrap_or_else(|| format!("https://{}", gateway.addrs[0]));
        let oauth_cfg = menshen_oauth::OAuthConfig {
            issuer,
            token_profile: cfg
                .oauth
                .token_profile
                .unwrap_or(menshen_model::TokenProfile::Cmbc),
            lock_after: cfg.oauth.lock_after.unwrap_or(5),
            lock_secs: cfg.oauth.lock_secs.unwrap_or(900),
            ..Default::default()
        };
        let directory: Arc<dyn menshen_oauth::CustomerAuthenticator> = match &cfg.oauth.directory {
            None => menshen_oauth::BuiltinDirectory::new(
                cp.clone(),
                oauth_cfg.lock_after,
                oauth_cfg.lock_secs,
            ),
            Some(d) => {
                let ca_pem = std::fs::read_to_string(&d.ca_file).with_context(|| {
                    format!(
                        "oauth.directory.ca_file: cannot read {}",
                        d.ca_file.display()
                    )
                })?;
                let service_token = match &d.service_token_file {
                    Some(f) => Some(zeroize::Zeroizing::new(
                        std::fs::read_to_string(f)
                            .with_context(|| {
                                format!(
                                    "oauth.directory.service_token_file: cannot read {}",
                                    f.display()
                                )
                            })?
                            .trim()
                            .to_string(),
                    )),
                    None => None,
                };
                menshen_oauth::HttpsDirectory::new(menshen_oauth::HttpsDirectoryConfig {
                    base_url: d.url.clone(),
                    ca_pem,
                    service_token,
                    timeout: std::time::Duration::from_millis(d.timeout_ms.unwrap_or(5000)),
                })
                .map_err(|e| anyhow::anyhow!("oauth.directory.url: {e}"))?
            }
        };
        oauth_cfg
            .validate()
            .map_err(|e| anyhow::anyhow!("oauth: {e}"))?;
        // The consent cache (a consent read from the store once a minute
        // instead of on every call: ~40 us of an A2 call's CPU) is safe on
        // one node, where every revocation goes through this server and
        // clears it. With a shared hot state (several nodes) a revocation on
        // another node must be seen at once, so every call reads the store.
        let single_node = cfg.hot_state.url.is_none();
        let _ = authorizer.0.set(Arc::new(
            menshen_oauth::AuthServer::new(oauth_cfg, cp.clone(), hot, directory)
                .with_consent_cache(single_node),
        ));
        let (admin_stop, rx) = watch::channel(false);
        // Issue 12 item 7: the hot state failing is alerted, not only logged.
        let gw_state = gateway.state.clone();
        let alert_engine = alert_engine.with_hot_state_counters(Arc::new(move || {
            let c = &gw_state.flow.counters;
            (
                c.degraded.load(std::sync::atomic::Ordering::Relaxed),
                c.failed_closed.load(std::sync::atomic::Ordering::Relaxed),
            )
        }));
        let baseline_saver = alert_engine.start(
            cp.clone(),
            audit.clone(),
            gateway.state.txn.node().to_string(),
            rx.clone(),
        )?;
        let (snap, cp2, auth2) = (gateway.snapshot.clone(), cp.clone(), authorizer.clone());
        let active = |s: &menshen_gateway::Snapshot| -> std::collections::HashSet<String> {
            s.apps()
                .filter(|a| a.app.status == menshen_model::AppStatus::Active)
                .map(|a| a.app.app_id.clone())
                .collect()
        };
        // The active apps as the last admin change left them (not the
        // snapshot's current view: the background refresher may already
        // have applied this change).
        let last_active = Arc::new(tokio::sync::Mutex::new(active(&gateway.snapshot.current())));
        let exited = |s: &menshen_gateway::Snapshot| -> std::collections::HashSet<String> {
            s.apps()
                .filter(|a| a.app.status == menshen_model::AppStatus::Exited)
                .map(|a| a.app.app_id.clone())
                .collect()
        };
        let last_exited = Arc::new(tokio::sync::Mutex::new(exited(&gateway.snapshot.current())));
        let after_change: menshen_admin::AfterChange = Arc::new(move || {
            let (snap, cp, auth, last, last_exited) = (
                snap.clone(),
                cp2.clone(),
                auth2.clone(),
                last_active.clone(),
                last_exited.clone(),
            );
            Box::pin(async move {
                if let Err(e) = snap.refresh(&cp).await {
                    tracing::warn!(error = %e, "snapshot rebuild after admin change failed");
                }
                // AUTH-6: an app suspended, blacklisted or exited loses its
                // customers' tokens (they do not come back with the app).
                let mut last = last.lock().await;
                let now_active = active(&snap.current());
                if let Some(asv) = auth.0.get() {
                    for app_id in last.difference(&now_active) {
                        match asv.void_app_tokens(app_id, menshen_store::now_unix()).await {
                            Ok(n) => tracing::info!(
                                app_id,
                                tokens = n,
                                "app no longer active: its customers' tokens voided"
                            ),
                            Err(e) => {
                                tracing::error!(app_id, error = %e, "voiding the tokens of an app no longer active failed")
                            }
                        }
                    }
                }
                *last = now_active;
                // USR-6, AUTH-6: an app that exits has its customers'
                // consents revoked (by the bank), so their own page no
                // longer shows them as authorised to an app that is gone.
                let mut last_exited = last_exited.lock().await;
                let now_exited = exited(&snap.current());
                for app_id in now_exited.difference(&last_exited) {
                    revoke_consents_of_exited_app(&cp, auth.0.get(), app_id).await;
                }
                *last_exited = now_exited;
            })
        });
        let idle = std::time::Duration::from_millis(cfg.admin.idle_timeout_ms);
        // MON-1 in a cluster: this node's statistics published, the
        // cluster's summed on read.
        let cluster_stats = pg.map(|pg| {
            cluster_stats::ClusterStats::new(
                pg,
                gateway.state.metrics.stats(),
                gateway.state.txn.node().to_string(),
            )
        });
        let stats_publisher = cluster_stats
            .as_ref()
            .map(|c| c.start(Duration::from_secs(cfg.stats.publish_secs), rx.clone()));
        // MON-1: metrics, statistics and readiness on the admin listener.
        let serving = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let monitor = menshen_admin::monitor::Monitor {
            metrics: gateway.state.metrics.clone(),
            readiness: {
                let (snap, audit, serving) =
                    (gateway.snapshot.clone(), audit.clone(), serving.clone());
                Arc::new(move || {
                    let s = snap.current();
                    menshen_admin::monitor::Readiness {
                        snapshot_loaded: s.built_at.is_some(),
                        snapshot_version: s.version,
                        audit_writable: audit.is_healthy(),
                        serving: serving.load(std::sync::atomic::Ordering::Acquire),
                    }
                })
            },
            scrape_token_sha256: scrape_token_hash(&cfg)?,
            cluster: cluster_stats.as_ref().map(|c| c.source()),
        };
        let router = menshen_admin::router(AdminState {
            monitor: Some(monitor),
            cp: cp.clone(),
            after_change: Some(after_change),
            audit: Some(audit.clone()),
            body_timeout: idle,
            store_timeout: Duration::from_millis(cfg.admin.store_timeout_ms),
            allow_http_notify_url: cfg.alerts.app_notice.allow_http_loopback,
            notify_allow_networks: cfg.alerts.app_notice.allow_networks.clone(),
            revoke_consent: Some({
                let auth = authorizer.clone();
                Arc::new(move |id: String| {
                    let auth = auth.clone();
                    Box::pin(async move {
                        match auth.0.get() {
                            Some(asv) => {
                                asv.revoke_consent(
                                    &id,
                                    menshen_model::RevokedBy::Bank,
                                    menshen_store::now_unix(),
                                )
                                .await
                            }
                            None => Err(menshen_store::StoreError::Backend(
                                "authorization server not started".into(),
                            )),
                        }
                    })
                })
            }),
            audit_node: menshen_admin::audit::AuditNode {
                node_id: audit_node.clone(),
                fetch: Some(peers::peer_fetch(&cfg)?),
            },
        });
        // Issue 12 item 8: where other nodes fetch this node's audit records.
        if let Some(node) = &audit_node {
            match peers::advertise_url(&cfg, admin_addr) {
                Some(url) => {
                    if let Err(e) = cp.store.register_node(node, &url).await {
                        tracing::error!(error = %e, "cannot register this node's admin API URL: other nodes' searches show its audit records without bodies until it is registered (retried every stats.publish_secs in a cluster)");
                    }
                    // In a cluster, registered again every period: a
                    // registry wiped or restored learns this node again.
                    if cluster_stats.is_some() {
                        peers::keep_registered(
                            cp.clone(),
                            node.clone(),
                            url,
                            Duration::from_secs(cfg.stats.publish_secs),
                            rx.clone(),
                        );
                    }
                }
                None => tracing::warn!(
                    listen = %admin_addr,
                    "admin.listen is an unspecified address: set admin.advertise_url so that other nodes can show this node's audit records"
                ),
            }
        }
        let opts = menshen_admin::serve::ServeOptions {
            tls: admin_tls,
            header_read_timeout: std::time::Duration::from_millis(cfg.admin.header_read_timeout_ms),
            idle_timeout: idle,
        };
        let admin_tls = opts.tls.is_some();
        let admin_task = tokio::spawn(menshen_admin::serve::serve(
            admin_listener,
            router,
            opts,
            rx,
        ));
        serving.store(true, std::sync::atomic::Ordering::Release);
        tracing::info!(gateway = ?gateway.addrs, admin = %admin_addr, admin_tls, "menshen node started");
        Ok(Node {
            gateway,
            admin_addr,
            cp,
            audit,
            admin_stop,
            serving,
            admin_task,
            baseline_saver,
            stats_publisher,
            otlp,
            marker,
        })
    }

    /// Stop both listeners, finish in-flight requests, flush the audit log.
    pub async fn shutdown(self) {
        self.serving
            .store(false, std::sync::atomic::Ordering::Release);
        let _ = self.admin_stop.send(true);
        let finished = self.gateway.shutdown().await;
        let _ = self.admin_task.await;
        if let Some(o) = self.otlp {
            let _ = tokio::task::spawn_blocking(move || o.shutdown()).await;
        }
        if let Some(p) = self.stats_publisher {
            if tokio::time::timeout(Duration::from_secs(5), p)
                .await
                .is_err()
            {
                tracing::warn!("cluster statistics: the last publication did not finish in 5 s");
            }
        }
        // MON-3: the learned baselines survive the restart.
        if tokio::time::timeout(Duration::from_secs(10), self.baseline_saver)
            .await
            .is_err()
        {
            tracing::warn!("learned baselines: the last save did not finish in 10 s");
        }
        match self.audit.flush().await {
            // A clean stop: every record is on disk, so the next start may
            // trust the log's nonces.
            Ok(()) if finished => {
                if let Err(e) = std::fs::remove_file(&self.marker) {
                    tracing::warn!(error = %e, "cannot remove the running marker");
                }
            }
            Ok(()) => {}
            Err(e) => tracing::error!(error = %e, "audit flush at shutdown failed"),
        }
    }
}

/// USR-6, AUTH-6: revoke (by the bank) every consent of an app that has
/// exited that is still authorised or awaiting authorisation: through the
/// authorization server when there is one (its tokens voided, its caches
/// told), else in the store. Failures are logged; the next exit-free change
/// does not retry them (the app can never be active again, so the consents
/// are unusable either way).
async fn revoke_consents_of_exited_app(
    cp: &ControlPlane,
    asv: Option<&Arc<menshen_oauth::AuthServer>>,
    app_id: &str,
) {
    use menshen_model::{ConsentState, RevokedBy};
    let consents = match cp.store.list_consents(Some(app_id), None).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(app_id, error = %e, "the consents of an exited app could not be listed to revoke them");
            return;
        }
    };
    let mut revoked = 0usize;
    for c in consents.iter().filter(|c| {
        matches!(
            c.state,
            ConsentState::Authorised | ConsentState::AwaitingAuthorisation
        )
    }) {
        let r = match asv {
            Some(asv) => asv
                .revoke_consent(&c.consent_id, RevokedBy::Bank, menshen_store::now_unix())
                .await
                .map(|_| ()),
            None => cp
                .revoke_consent(&c.consent_id, RevokedBy::Bank)
                .await
                .map(|_| ()),
        };
        match r {
            Ok(()) => revoked += 1,
            Err(e) => {
                tracing::error!(app_id, consent_id = %c.consent_id, error = %e, "a consent of an exited app could not be revoked")
            }
        }
    }
    tracing::info!(
        app_id,
        consents = revoked,
        "app exited: its customers' consents revoked"
    );
}

/// The scrape token's SHA-256 from `admin.metrics_token_sha256`, if set.
fn scrape_token_hash(cfg: &Config) -> anyhow::Result<Option<[u8; 32]>> {
    let Some(h) = &cfg.admin.metrics_token_sha256 else {
        return Ok(None);
    };
    let bytes = hex::decode(h.trim()).ok().filter(|b| b.len() == 32);
    match bytes.and_then(|b| <[u8; 32]>::try_from(b).ok()) {
        Some(a) => Ok(Some(a)),
        None => bail!("admin.metrics_token_sha256: must be 64 hex characters, the SHA-256 of the scrape token (printf %s \"$TOKEN\" | sha256sum)"),
    }
}

/// Wait for Ctrl-C or SIGTERM.
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler can be installed");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// The hot state: Redis shared by every node when `[hot_state] url` is set
/// (issue 12; INT-4 across nodes), else in this process.
async fn hot_state(cfg: &Config) -> anyhow::Result<Arc<dyn HotState>> {
    let Some(redis) = cfg.hot_state.redis()? else {
        return Ok(Arc::new(MemoryHotState::default()));
    };
    let h = menshen_store::RedisHotState::connect(&redis)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
            "hot_state.{e} (or remove [hot_state] for the in-process hot state of a single node)"
        )
        })?;
    tracing::info!(?h, "hot state: Redis");
    Ok(Arc::new(h))
}

/// Seed the replay cache with the nonces the log recorded in the last window,
/// so a restart does not reopen the door to replays (INT-4).
async fn seed_replay_cache(audit: &AuditLog, hot: &dyn HotState, window: u32) -> bool {
    let now = menshen_store::now_unix();
    let window = i64::from(window);
    let path = audit.dir().to_path_buf();
    let recs = match tokio::task::spawn_blocking(move || {
        menshen_audit::recover::records_since(&path, now - 2 * window - 1)
    })
    .await
    {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot read the access log to seed the replay cache");
            return false;
        }
        Err(_) => return false,
    };
    let mut n = 0;
    for r in recs {
        if let (Some(app), Some(nonce), Some(created)) = (&r.app_id, &r.nonce, r.sig_created) {
            hot.insert_nonce(app, nonce, created.max(now) + window + 1, now)
                .await;
            n += 1;
        }
    }
    tracing::info!(nonces = n, "replay cache seeded from the access log");
    true
}

/// The writer settings from the config.
pub fn audit_config(cfg: &Config) -> AuditConfig {
    let mut a = AuditConfig::new(cfg.data_dir.join("audit"));
    a.queue = cfg.audit.queue;
    a.segment_max_bytes = cfg.audit.segment_max_mb << 20;
    a.segment_max_age = std::time::Duration::from_secs(cfg.audit.segment_max_hours * 3600);
    a.compress = cfg.audit.compress;
    a
}
