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
    marker: std::path::PathBuf,
}

/// File in the data directory that exists while a node runs; found at
/// start-up, it means the previous run did not stop cleanly.
pub const RUNNING_MARKER: &str = "node.running";

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
        let audit_cfg = audit_config(&cfg);
        let index = IndexSink::start(cp.clone(), audit_cfg.dir.clone());
        let audit = AuditLog::open(audit_cfg, Some(signer), Some(Box::new(index)))
            .map_err(|e| anyhow::anyhow!("data_dir: {e}"))?;
        let admin_listener = tokio::net::TcpListener::bind(cfg.admin.listen)
            .await
            .with_context(|| format!("admin.listen: cannot bind {}", cfg.admin.listen))?;
        let admin_addr = admin_listener.local_addr()?;
        let hot = Arc::new(MemoryHotState::default());
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
        std::fs::write(&marker, std::process::id().to_string())
            .with_context(|| format!("data_dir: cannot write {}", marker.display()))?;
        let gateway = match Gateway::start(
            cfg.gateway.clone(),
            cp.clone(),
            hot,
            audit.clone(),
            menshen_gateway::server::StartOptions {
                node_id: cfg.node_id.clone(),
                replay_not_before,
                fd_limit: menshen_gateway::server::open_file_limit(),
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
            marker,
        })
    }

    /// Stop both listeners, finish in-flight requests, flush the audit log.
    pub async fn shutdown(self) {
        let _ = self.admin_stop.send(true);
        let finished = self.gateway.shutdown().await;
        let _ = self.admin_task.await;
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

/// How long the index task gathers committed batches before one transaction.
const INDEX_LINGER: std::time::Duration = std::time::Duration::from_millis(100);
/// Rows per index transaction at most.
const INDEX_MAX_ROWS: usize = 8192;

/// What the index task receives from the writer thread (and the catch-up).
enum IndexMsg {
    /// The log holds records up to this sequence number at start-up: index
    /// any the database is missing (a crash can come between a batch's fsync
    /// and its index commit; a schema change rebuilds the index).
    CatchUp(u64),
    /// A committed batch and the latest checkpoint, if any.
    Batch(Vec<menshen_store::AuditRow>, Option<(u64, String)>),
    /// The catch-up for records up to the first number is done; it read the
    /// files up to the second (less if they could not be read to the end).
    CaughtUp(u64, u64),
}

/// Feeds committed audit batches to the store's index (AUD-2, AUD-6) and keeps
/// the latest checkpoint there too (so truncating the files is detectable).
///
/// At start-up the records the database lacks are indexed from the files by a
/// task of their own, beside the live batches, so a long catch-up (a rebuilt
/// index over a large log) never holds up the writer. The store's
/// `indexed_through` mark, where the next start resumes, only advances over
/// a gapless prefix: to the catch-up's end once it is done, then with each
/// live batch (they follow on without a gap), never past a failed write.
struct IndexSink {
    tx: tokio::sync::mpsc::Sender<IndexMsg>,
}

impl IndexSink {
    fn start(cp: ControlPlane, dir: std::path::PathBuf) -> Self {
        // Room for INDEX_LINGER of single-record batches at a few thousand
        // calls/s; beyond that the writer thread waits (back-pressure).
        let (tx, mut rx) = tokio::sync::mpsc::channel::<IndexMsg>(4096);
        let to_self = tx.downgrade();
        tokio::spawn(async move {
            // Highest live sequence number indexed, whether the catch-up is
            // done, and whether a live write failed (a gap: stop the mark).
            let (mut live_max, mut caught_up, mut gap) = (0u64, false, false);
            let mut pending: Option<IndexMsg> = None;
            loop {
                let msg = match pending.take() {
                    Some(m) => m,
                    None => match rx.recv().await {
                        Some(m) => m,
                        None => break,
                    },
                };
                let (mut rows, mut checkpoint) = match msg {
                    IndexMsg::CatchUp(upto) => {
                        let (cp, dir, back) = (cp.clone(), dir.clone(), to_self.clone());
                        tokio::spawn(async move {
                            match catch_up(&cp, &dir, upto).await {
                                Ok(reached) => {
                                    if let Some(back) = back.upgrade() {
                                        let _ = back.send(IndexMsg::CaughtUp(upto, reached)).await;
                                    }
                                }
                                Err(e) => {
                                    tracing::error!(error = %e, "audit index: catching up from the log failed; searches may miss older records until the next start")
                                }
                            }
                        });
                        continue;
                    }
                    IndexMsg::CaughtUp(upto, reached) => {
                        caught_up = true;
                        if reached < upto {
                            // The files could not be read to the end: the
                            // mark stays before the records not indexed.
                            tracing::error!(reached, upto, "audit index: the log could not be read past record {reached}; `menshen audit verify` shows why");
                            gap = true;
                            if let Err(e) = cp.store.index_audit(vec![], None, Some(reached)).await
                            {
                                tracing::error!(error = %e, "audit index: cannot record how far it is complete");
                            }
                        }
                        if !gap {
                            let mark = upto.max(live_max);
                            if let Err(e) = cp.store.index_audit(vec![], None, Some(mark)).await {
                                tracing::error!(error = %e, "audit index: cannot record how far it is complete");
                            }
                        }
                        continue;
                    }
                    IndexMsg::Batch(rows, checkpoint) => (rows, checkpoint),
                };
                // Coalesce up to INDEX_LINGER of batches into one transaction:
                // a SQLite commit costs a WAL append of every page it touched
                // plus file locking, so a few large commits are far cheaper
                // than many small ones. Search lags the log by at most this.
                let deadline = tokio::time::Instant::now() + INDEX_LINGER;
                while rows.len() < INDEX_MAX_ROWS {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(IndexMsg::Batch(more, cp2))) => {
                            rows.extend(more);
                            if cp2.is_some() {
                                checkpoint = cp2;
                            }
                        }
                        Ok(Some(other)) => {
                            pending = Some(other);
                            break;
                        }
                        Ok(None) | Err(_) => break,
                    }
                }
                let top = rows.iter().map(|r| r.seq).max();
                let mark = top.filter(|_| caught_up && !gap);
                match cp.store.index_audit(rows, checkpoint, mark).await {
                    Ok(()) => live_max = live_max.max(top.unwrap_or(0)),
                    Err(e) => {
                        gap = true;
                        tracing::error!(error = %e, "audit index write failed (the log itself is intact; the next start indexes what is missing)");
                    }
                }
            }
        });
        IndexSink { tx }
    }
}

/// Index the records of the log up to `upto` that the database may lack,
/// read from the files after the store's `indexed_through` mark (from its
/// row's segment and offset; from the start without a mark), in
/// transactions of [`INDEX_MAX_ROWS`]. Rows already there are left as they are.
/// Returns the last sequence number read (`upto` unless the files end early).
async fn catch_up(cp: &ControlPlane, dir: &std::path::Path, upto: u64) -> anyhow::Result<u64> {
    let mark = cp.store.audit_index_watermark().await?;
    let (start, after) = match &mark {
        Some(r) => (Some((r.segment, r.offset)), r.seq),
        None => (None, 0),
    };
    if after >= upto {
        return Ok(upto);
    }
    tracing::info!(
        from = after + 1,
        to = upto,
        "audit index: indexing records the database may lack"
    );
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<menshen_store::AuditRow>>(2);
    let dir = dir.to_path_buf();
    let scan = tokio::task::spawn_blocking(move || {
        let (mut chunk, mut reached) = (Vec::new(), after);
        let r = menshen_audit::writer::scan_from(&dir, start, after, |c| {
            if c.seq > upto {
                return false;
            }
            reached = c.seq;
            chunk.push(row(c));
            if chunk.len() >= INDEX_MAX_ROWS {
                return tx.blocking_send(std::mem::take(&mut chunk)).is_ok();
            }
            true
        });
        if !chunk.is_empty() {
            let _ = tx.blocking_send(chunk);
        }
        r.map(|()| reached)
    });
    let mut n = 0usize;
    while let Some(rows) = rx.recv().await {
        n += rows.len();
        cp.store.index_audit(rows, None, None).await?;
    }
    let reached = scan.await??;
    tracing::info!(records = n, "audit index: caught up with the log");
    Ok(reached)
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
    #[serde(default)]
    duration_us: Option<i64>,
    #[serde(borrow, default)]
    code: Option<std::borrow::Cow<'a, str>>,
}

fn row(c: Committed) -> menshen_store::AuditRow {
    let Committed {
        seq,
        segment,
        offset,
        rec,
        keys,
    } = c;
    if let Some(k) = keys {
        // The gateway handed the keys over with the record: no parse.
        return menshen_store::AuditRow {
            seq,
            segment,
            offset,
            kind: k.kind.to_string(),
            txn_id: k.txn_id,
            time_ms: k.time_ms,
            app_id: k.app_id,
            api_id: k.api_id,
            user_id: k.user_id,
            result: k.result.map(str::to_string),
            status: k.status,
            code: k.code,
            duration_us: k.duration_us,
        };
    }
    let k: Keys<'_> = serde_json::from_slice(&rec).unwrap_or_default();
    let s = |v: Option<std::borrow::Cow<'_, str>>| v.map(|x| x.into_owned());
    let time_ms = k
        .timestamp
        .as_deref()
        .and_then(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        })
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .unwrap_or_default();
    menshen_store::AuditRow {
        seq,
        segment,
        offset,
        kind: s(k.kind).unwrap_or_else(|| "access".into()),
        txn_id: s(k.txn_id),
        time_ms,
        app_id: s(k.app_id),
        api_id: s(k.api_id),
        user_id: s(k.user_id).or_else(|| s(k.actor)),
        result: s(k.result),
        status: k.status,
        code: s(k.code),
        duration_us: k.duration_us,
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
        if self.tx.blocking_send(IndexMsg::Batch(rows, cp)).is_err() {
            tracing::error!("audit index task stopped");
        }
    }

    fn opened(&mut self, last_seq: u64) {
        if self.tx.blocking_send(IndexMsg::CatchUp(last_seq)).is_err() {
            tracing::error!("audit index task stopped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AUD-2: an index row is the same whether built from the keys the
    /// gateway hands over (live) or parsed back from the record (catch-up
    /// after a crash).
    #[test]
    fn aud_2_index_row_from_keys_equals_row_parsed_from_the_record() {
        for (code, result) in [
            (None, menshen_audit::Outcome::Success),
            (
                Some("INVALID_SIGNATURE".to_string()),
                menshen_audit::Outcome::Failure,
            ),
            (None, menshen_audit::Outcome::Unknown),
        ] {
            let rec = menshen_audit::AccessRecord {
                kind: "access".into(),
                txn_id: "T1796006374431c659184a0000c9".into(),
                node_id: "c659184a".into(),
                timestamp: "2026-11-30T02:39:34.431Z".into(),
                duration_us: 1519,
                app_id: Some("app_1".into()),
                app_verified: true,
                api_id: Some("products".into()),
                u_api_id: Some("0PC103050103000100000200".into()),
                level: Some("A1".into()),
                client_ip: "127.0.0.1".into(),
                peer: "127.0.0.1:5000".into(),
                method: "GET".into(),
                path: "/v1/products".into(),
                status: 200,
                result,
                code,
                message: "upstream 200".into(),
                reason: None,
                alg: Some("hmac-sm3".into()),
                nonce: None,
                sig_created: Some(1_796_006_374),
                client_cert: None,
                message_parts: None,
            };
            let time_ms = 1_796_006_374_431;
            let bytes = serde_json::to_vec(&rec).unwrap();
            let c = |keys| Committed {
                seq: 7,
                segment: 2,
                offset: 4096,
                rec: bytes.clone(),
                keys,
            };
            let parsed = row(c(None));
            let given = row(c(Some(rec.keys(time_ms))));
            assert_eq!(parsed, given);
            assert_eq!(given.time_ms, time_ms);
        }
    }
}
