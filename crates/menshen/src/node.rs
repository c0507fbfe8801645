//! A Menshen node: one store, the gateway (data plane) and the admin API
//! (control plane), started together from a [`Config`].

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{bail, Context};
use menshen_admin::AdminState;
use menshen_audit::{AuditConfig, AuditLog, AuditSigner, BatchSink, Committed};
use menshen_crypto::MasterKey;
use menshen_gateway::{Gateway, GatewayHandle};
use menshen_store::{ControlPlane, HotState, MemoryHotState, SqliteStore, UApiConfig};
use tokio::sync::watch;

use crate::config::Config;

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
pub fn control_plane(cfg: &Config) -> anyhow::Result<ControlPlane> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("data_dir: cannot create {}", cfg.data_dir.display()))?;
    let master = load_master_key(cfg)?;
    let store = SqliteStore::open(&cfg.data_dir.join("menshen.db"))
        .map_err(|e| anyhow::anyhow!("data_dir: cannot open the store: {e}"))?;
    Ok(ControlPlane::new(
        Arc::new(store),
        Arc::new(master),
        UApiConfig {
            prefix: cfg.uapi.prefix.clone(),
            institution: cfg.uapi.institution.clone(),
        },
    )
    .with_profile(
        cfg.level_profile
            .unwrap_or(menshen_model::LevelProfile::ThreeLevel),
    ))
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
    admin_task: tokio::task::JoinHandle<()>,
}

impl Node {
    /// Start gateway and admin API.
    pub async fn start(cfg: Config) -> anyhow::Result<Node> {
        let cp = control_plane(&cfg)?;
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
        let audit = AuditLog::open(
            audit_config(&cfg),
            Some(signer),
            Some(Box::new(IndexSink::start(cp.clone()))),
        )
        .map_err(|e| anyhow::anyhow!("data_dir: {e}"))?;
        let admin_listener = tokio::net::TcpListener::bind(cfg.admin.listen)
            .await
            .with_context(|| format!("admin.listen: cannot bind {}", cfg.admin.listen))?;
        let admin_addr = admin_listener.local_addr()?;
        let hot = Arc::new(MemoryHotState::default());
        seed_replay_cache(&audit, hot.as_ref(), cfg.gateway.replay_window_secs).await;
        let gateway = Gateway::start(
            cfg.gateway.clone(),
            cp.clone(),
            hot,
            audit.clone(),
            cfg.node_id.clone(),
        )
        .await
        .map_err(anyhow::Error::msg)?;
        let (admin_stop, mut rx) = watch::channel(false);
        let (snap, cp2) = (gateway.snapshot.clone(), cp.clone());
        let after_change: menshen_admin::AfterChange = Arc::new(move || {
            let (snap, cp) = (snap.clone(), cp2.clone());
            Box::pin(async move {
                if let Err(e) = snap.refresh(&cp).await {
                    tracing::warn!(error = %e, "snapshot rebuild after admin change failed");
                }
            })
        });
        let router = menshen_admin::router(AdminState {
            cp: cp.clone(),
            after_change: Some(after_change),
            audit: Some(audit.clone()),
        });
        let admin_task = tokio::spawn(async move {
            let r = axum::serve(admin_listener, router)
                .with_graceful_shutdown(async move {
                    let _ = rx.changed().await;
                })
                .await;
            if let Err(e) = r {
                tracing::error!(error = %e, "admin API stopped");
            }
        });
        tracing::info!(gateway = ?gateway.addrs, admin = %admin_addr, "menshen node started");
        Ok(Node {
            gateway,
            admin_addr,
            cp,
            audit,
            admin_stop,
            admin_task,
        })
    }

    /// Stop both listeners, finish in-flight requests, flush the audit log.
    pub async fn shutdown(self) {
        let _ = self.admin_stop.send(true);
        self.gateway.shutdown().await;
        let _ = self.admin_task.await;
        if let Err(e) = self.audit.flush().await {
            tracing::error!(error = %e, "audit flush at shutdown failed");
        }
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

/// Seed the replay cache with the nonces the log recorded in the last window,
/// so a restart does not reopen the door to replays (INT-4).
async fn seed_replay_cache(audit: &AuditLog, hot: &dyn HotState, window: u32) {
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
            return;
        }
        Err(_) => return,
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

/// How long the index task gathers committed batches before one transaction.
const INDEX_LINGER: std::time::Duration = std::time::Duration::from_millis(100);
/// Rows per index transaction at most.
const INDEX_MAX_ROWS: usize = 8192;

type IndexBatch = (Vec<menshen_store::AuditRow>, Option<(u64, String)>);

/// Feeds committed audit batches to the store's index (AUD-2, AUD-6) and keeps
/// the latest checkpoint there too (so truncating the files is detectable).
struct IndexSink {
    tx: tokio::sync::mpsc::Sender<IndexBatch>,
}

impl IndexSink {
    fn start(cp: ControlPlane) -> Self {
        // Room for INDEX_LINGER of single-record batches at a few thousand
        // calls/s; beyond that the writer thread waits (back-pressure).
        let (tx, mut rx) = tokio::sync::mpsc::channel::<IndexBatch>(4096);
        tokio::spawn(async move {
            while let Some((mut rows, mut checkpoint)) = rx.recv().await {
                // Coalesce up to INDEX_LINGER of batches into one transaction:
                // a SQLite commit costs a WAL append of every page it touched
                // plus file locking, so a few large commits are far cheaper
                // than many small ones. Search lags the log by at most this.
                let deadline = tokio::time::Instant::now() + INDEX_LINGER;
                while rows.len() < INDEX_MAX_ROWS {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some((more, cp2))) => {
                            rows.extend(more);
                            if cp2.is_some() {
                                checkpoint = cp2;
                            }
                        }
                        Ok(None) | Err(_) => break,
                    }
                }
                if let Err(e) = cp.store.index_audit(rows, checkpoint).await {
                    tracing::error!(error = %e, "audit index write failed (the log itself is intact)");
                }
            }
        });
        IndexSink { tx }
    }
}

/// The indexed fields of a record, borrowed from its JSON (no value tree).
#[derive(serde::Deserialize, Default)]
struct Keys<'a> {
    #[serde(borrow, default)]
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    txn_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    timestamp: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    app_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    api_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    user_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    actor: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    result: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    status: Option<i64>,
    #[serde(borrow, default)]
    code: Option<std::borrow::Cow<'a, str>>,
}

fn row(c: Committed) -> menshen_store::AuditRow {
    let Committed { seq, segment, rec } = c;
    let k: Keys<'_> = serde_json::from_slice(&rec).unwrap_or_default();
    let s = |v: Option<std::borrow::Cow<'_, str>>| v.map(|x| x.into_owned());
    let (kind, txn_id, timestamp) = (s(k.kind), s(k.txn_id), s(k.timestamp));
    let (app_id, api_id, user_id) = (
        s(k.app_id),
        s(k.api_id),
        s(k.user_id).or_else(|| s(k.actor)),
    );
    let (result, status, code) = (s(k.result), k.status, s(k.code));
    menshen_store::AuditRow {
        seq,
        segment,
        kind: kind.unwrap_or_else(|| "access".into()),
        txn_id,
        timestamp: timestamp.unwrap_or_default(),
        app_id,
        api_id,
        user_id,
        result,
        status,
        code,
        // Moved, not copied: the keys above were read from it first.
        record: String::from_utf8(rec).unwrap_or_default(),
    }
}

impl BatchSink for IndexSink {
    fn committed(
        &mut self,
        records: Vec<Committed>,
        checkpoint: Option<&menshen_audit::chain::Checkpoint>,
    ) {
        let rows = records.into_iter().map(row).collect();
        let cp = checkpoint.and_then(|c| serde_json::to_string(c).ok().map(|j| (c.last_seq, j)));
        // Back-pressure onto the writer thread if the database falls behind.
        if self.tx.blocking_send((rows, cp)).is_err() {
            tracing::error!("audit index task stopped");
        }
    }
}
