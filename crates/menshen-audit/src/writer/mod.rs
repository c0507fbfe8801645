//! The audit writer (AUD-2, AUD-3, DEP-2): a bounded queue (back-pressure,
//! never unbounded memory) drained by one thread that appends chained lines to
//! the active segment. Before it answers a durable record's caller (an A2/A3
//! call) it `fdatasync`s the segment (group commit: RPO 0); those records are
//! sealed by a signed checkpoint within [`SEAL_DURABLE`], asynchronous ones
//! within [`SEAL_EVERY`], and a flush seals everything before it returns.
//! Segments rotate by size or age (sealed first);
//! closed segments are compressed (zstd). A failing disk fails every waiting
//! caller (fail closed) and is logged loudly.
//!
//! By role: this file holds the handle and its record and flush calls;
//! `thread` the writer loop and the sealing clock, `linger` when a batch is
//! committed and sealed, `state` appending, syncing, sealing and rotating,
//! `open` finding the chain's end and repairing it after a crash, `segment`
//! segment names and reading segments back, `compress` zstd for closed
//! segments, `files` the files and directories themselves.

mod compress;
mod files;
mod linger;
pub(crate) mod open;
mod segment;
mod state;
mod thread;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use menshen_crypto::PrivateKey;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::chain::Checkpoint;

pub use compress::compress_segment;
pub use linger::{CP_SYNC_EVERY, DURABLE_LINGER, SEAL_DURABLE, SEAL_EVERY};
pub use segment::{
    node_segment_name, read_all_records, read_records_at, read_segment, scan_from, segment_name,
    segment_node, segment_number,
};
pub use state::PREALLOC;

use state::State;

/// Errors of the audit writer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// A file could not be opened or written.
    #[error("audit log I/O error on {path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The log on disk is not in the expected format.
    #[error("audit log {path} is damaged: {reason}")]
    Damaged {
        /// File.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The log belongs to another node than the one opening it: each node
    /// keeps its own chain in its own directory (issue 12 item 8).
    #[error("audit log {path} is node {found}'s, not node {configured}'s: each node keeps its own chain in its own directory; to go on with this log set node_id = \"{found}\", else give this node its own data_dir")]
    OtherNode {
        /// Directory.
        path: String,
        /// The node id its segment files carry.
        found: String,
        /// The node id it was opened with.
        configured: String,
    },
    /// The writer has stopped, or the record could not be made durable.
    #[error("audit writer is not running or the disk failed")]
    Closed,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Settings of the writer.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// Directory of the log (`segments/`, `checkpoints.jsonl`, `archive/`).
    pub dir: PathBuf,
    /// Records queued before callers wait.
    pub queue: usize,
    /// Rotate the active segment at this size.
    pub segment_max_bytes: u64,
    /// Rotate the active segment at this age.
    pub segment_max_age: Duration,
    /// Compress closed segments with zstd.
    pub compress: bool,
    /// This node's id (issue 12 item 8), written into every line and into
    /// the names of the segments it starts. `None`: the id the log's
    /// segment files already carry, or none (the older format).
    pub node_id: Option<String>,
}

impl AuditConfig {
    /// Defaults for `dir`.
    pub fn new(dir: PathBuf) -> Self {
        AuditConfig {
            dir,
            queue: 65_536,
            segment_max_bytes: 64 << 20,
            segment_max_age: Duration::from_secs(86_400),
            compress: true,
            node_id: None,
        }
    }
}

/// The key that signs checkpoints.
pub struct AuditSigner {
    /// Key id recorded in checkpoints.
    pub key_id: String,
    /// The SM2 audit key.
    pub key: PrivateKey,
}

/// A record as committed, for the database index.
#[derive(Debug, Clone)]
pub struct Committed {
    /// Sequence number.
    pub seq: u64,
    /// Number of the segment holding it ([`segment_name`]).
    pub segment: u64,
    /// Byte offset of its line in the segment's (uncompressed) text: with
    /// the segment number, where [`read_records_at`] finds it again.
    pub offset: u64,
    /// The record JSON.
    pub rec: Vec<u8>,
    /// Its index keys, when the caller gave them (else parse `rec`).
    pub keys: Option<crate::RecordKeys>,
}

/// Receives every committed batch and its checkpoint (the database index).
pub trait BatchSink: Send + 'static {
    /// Called once on the writer thread before any batch, with the sequence
    /// number of the last record already in the log when it was opened: a
    /// sink that may have missed some (a crash between the log's fsync and
    /// the index's commit) catches up from the files to there.
    fn opened(&mut self, _last_seq: u64) {}
    /// Called on the writer thread after the batch is durable; must not block long.
    fn committed(&mut self, records: Vec<Committed>, checkpoint: Option<&Checkpoint>);
    /// How far the sink has taken the records, if it says (the audit index:
    /// MON-1 `menshen_audit_index_lag_records`, the `audit_index_behind`
    /// alert). Asked once, when the log opens.
    fn progress(&self) -> Option<Arc<SinkProgress>> {
        None
    }
}

/// How far a [`BatchSink`] (the audit index) is behind the log: the records
/// handed to it against those it has made complete, and since when it has
/// not moved while records wait. Updated by the sink, read by the metrics
/// and the alert rules; lock-free.
#[derive(Debug, Default)]
pub struct SinkProgress {
    /// The highest sequence number the sink was handed (or found in the log
    /// at start-up).
    handed: std::sync::atomic::AtomicU64,
    /// The highest sequence number up to which the sink is complete.
    done: std::sync::atomic::AtomicU64,
    /// Unix milliseconds of the sink's last progress, or of the moment
    /// records started waiting after it had caught up.
    since_ms: std::sync::atomic::AtomicI64,
}

fn unix_ms_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl SinkProgress {
    /// Records up to `seq` exist in the log and are the sink's to take.
    pub fn handed(&self, seq: u64) {
        use std::sync::atomic::Ordering::AcqRel;
        let before = self.handed.fetch_max(seq, AcqRel);
        // Waiting starts now if the sink had caught up.
        if seq > before && before <= self.done.load(std::sync::atomic::Ordering::Acquire) {
            self.since_ms
                .store(unix_ms_now(), std::sync::atomic::Ordering::Release);
        }
    }

    /// The sink is complete up to `seq`.
    pub fn done(&self, seq: u64) {
        use std::sync::atomic::Ordering::AcqRel;
        if seq > self.done.fetch_max(seq, AcqRel) {
            self.since_ms
                .store(unix_ms_now(), std::sync::atomic::Ordering::Release);
        }
    }

    /// Records handed and not yet complete.
    pub fn lag(&self) -> u64 {
        use std::sync::atomic::Ordering::Acquire;
        self.handed
            .load(Acquire)
            .saturating_sub(self.done.load(Acquire))
    }

    /// Seconds the sink has not moved while records wait (0 when none wait).
    pub fn behind_secs(&self) -> f64 {
        if self.lag() == 0 {
            return 0.0;
        }
        let since = self.since_ms.load(std::sync::atomic::Ordering::Acquire);
        (unix_ms_now() - since).max(0) as f64 / 1000.0
    }
}

enum Msg {
    /// Seal what is unsealed if the last seal is old enough.
    Tick,
    /// A record, its index keys if known (boxed: keeps the queue's slots
    /// small), and who waits for it to be durable.
    Record(
        Vec<u8>,
        Option<Box<crate::RecordKeys>>,
        Option<oneshot::Sender<bool>>,
    ),
    Flush(oneshot::Sender<bool>),
}

/// Handle to the audit writer; cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Msg>,
    dir: PathBuf,
    /// Whether the last write (and seal) succeeded.
    healthy: Arc<std::sync::atomic::AtomicBool>,
    /// The writer's `fdatasync` latencies (MON-1).
    sync_latency: Arc<menshen_metrics::AtomicHist>,
    /// How far the sink (the audit index) is behind, if it says.
    sink_progress: Option<Arc<SinkProgress>>,
}

impl AuditLog {
    /// Open the log in `cfg.dir` (recovering after a crash) and start the
    /// writer thread. Without a signer, checkpoints are unsigned (tests only).
    pub fn open(
        cfg: AuditConfig,
        signer: Option<AuditSigner>,
        sink: Option<Box<dyn BatchSink>>,
    ) -> Result<Self, AuditError> {
        let queue = cfg.queue.max(16);
        let dir = cfg.dir.clone();
        let (st, recovery) = State::open(cfg, signer)?;
        let cp_file = st.cp_file.try_clone().map_err(io(&st.cp_path))?;
        let cp_dirty = st.cp_dirty.clone();
        let sync_latency = st.sync_latency.clone();
        let (tx, rx) = mpsc::channel::<Msg>(queue);
        let healthy_flag = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let sink_progress = sink.as_ref().and_then(|s| s.progress());
        thread::spawn_writer(st, recovery, sink, rx, healthy_flag.clone()).map_err(io(&dir))?;
        // The sealing clock: a tick every SEAL_DURABLE; it holds only a weak
        // sender, so dropping every handle still ends the writer.
        // It also syncs the checkpoint file every CP_SYNC_EVERY.
        thread::spawn_tick(tx.downgrade(), cp_file, cp_dirty).map_err(io(&dir))?;
        Ok(AuditLog {
            tx,
            dir,
            healthy: healthy_flag,
            sync_latency,
            sink_progress,
        })
    }

    /// How far the sink (the audit index) is behind the log: records
    /// waiting, and seconds it has not moved while they wait (MON-1);
    /// `None` without a sink that reports it.
    pub fn index_lag(&self) -> Option<(u64, f64)> {
        self.sink_progress
            .as_ref()
            .map(|p| (p.lag(), p.behind_secs()))
    }

    /// Whether the last batch was written, synced and sealed. A durable
    /// caller checks it before an irreversible step (forwarding an A2/A3
    /// call), so a failing disk refuses calls before the upstream acts; the
    /// records of those refusals keep probing the disk, so it recovers by
    /// itself.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(std::sync::atomic::Ordering::Acquire) && !self.tx.is_closed()
    }

    /// Records queued and not yet taken by the writer (MON-1).
    pub fn queue_depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// The queue's capacity: callers wait when it is full.
    pub fn queue_capacity(&self) -> usize {
        self.tx.max_capacity()
    }

    /// How long the writer's `fdatasync` calls took (MON-1).
    pub fn sync_latency(&self) -> menshen_metrics::Hist {
        self.sync_latency.load()
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    async fn send<T: Serialize>(
        &self,
        rec: &T,
        keys: Option<Box<crate::RecordKeys>>,
        w: Option<oneshot::Sender<bool>>,
    ) -> Result<(), AuditError> {
        let bytes = serde_json::to_vec(rec).map_err(|_| AuditError::Closed)?;
        self.send_bytes(bytes, keys, w).await
    }

    async fn send_bytes(
        &self,
        bytes: Vec<u8>,
        keys: Option<Box<crate::RecordKeys>>,
        w: Option<oneshot::Sender<bool>>,
    ) -> Result<(), AuditError> {
        self.tx
            .send(Msg::Record(bytes, keys, w))
            .await
            .map_err(|_| AuditError::Closed)
    }

    /// Queue a record; waits for queue space (back-pressure), not for the disk.
    pub async fn record<T: Serialize>(&self, rec: &T) -> Result<(), AuditError> {
        self.send(rec, None, None).await
    }

    /// Queue a record and wait until it is on disk (sealed within
    /// [`SEAL_DURABLE`]).
    pub async fn record_durable<T: Serialize>(&self, rec: &T) -> Result<(), AuditError> {
        self.send_durable(rec, None).await
    }

    async fn send_durable<T: Serialize>(
        &self,
        rec: &T,
        keys: Option<Box<crate::RecordKeys>>,
    ) -> Result<(), AuditError> {
        let (tx, rx) = oneshot::channel();
        self.send(rec, keys, Some(tx)).await?;
        match rx.await {
            Ok(true) => Ok(()),
            _ => Err(AuditError::Closed),
        }
    }

    /// Queue an access record with its index keys (see
    /// [`AccessRecord::keys`](crate::AccessRecord::keys)); when `durable`,
    /// wait until it is on disk, as [`AuditLog::record_durable`].
    pub async fn record_access(
        &self,
        rec: crate::AccessRecord,
        time_ms: i64,
        durable: bool,
    ) -> Result<(), AuditError> {
        let bytes = serde_json::to_vec(&rec).map_err(|_| AuditError::Closed)?;
        // The record's fields move into its keys: no copy per call.
        let keys = Some(Box::new(rec.into_keys(time_ms)));
        if !durable {
            return self.send_bytes(bytes, keys, None).await;
        }
        let (tx, rx) = oneshot::channel();
        self.send_bytes(bytes, keys, Some(tx)).await?;
        match rx.await {
            Ok(true) => Ok(()),
            _ => Err(AuditError::Closed),
        }
    }

    /// Queue an access record without waiting, for paths that cannot wait
    /// (a request dropped by a stopping runtime). False when the queue is
    /// full or the writer has stopped.
    pub fn try_record_access(&self, rec: crate::AccessRecord, time_ms: i64) -> bool {
        let Ok(bytes) = serde_json::to_vec(&rec) else {
            return false;
        };
        self.tx
            .try_send(Msg::Record(
                bytes,
                Some(Box::new(rec.into_keys(time_ms))),
                None,
            ))
            .is_ok()
    }

    /// Wait until everything queued so far is on disk and sealed.
    pub async fn flush(&self) -> Result<(), AuditError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Msg::Flush(tx))
            .await
            .map_err(|_| AuditError::Closed)?;
        match rx.await {
            Ok(true) => Ok(()),
            _ => Err(AuditError::Closed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SinkProgress;

    /// AUD-6, MON-1: the index lag is what was handed and not made
    /// complete; "behind" counts only while records wait, and drops to zero
    /// once the sink has caught up.
    #[test]
    fn aud_6_sink_progress_lag_and_behind() {
        let p = SinkProgress::default();
        assert_eq!((p.lag(), p.behind_secs()), (0, 0.0));
        p.handed(10);
        assert_eq!(p.lag(), 10);
        assert!(p.behind_secs() >= 0.0);
        p.done(4);
        assert_eq!(p.lag(), 6);
        // Progress never goes back.
        p.done(2);
        p.handed(7);
        assert_eq!(p.lag(), 6);
        p.done(10);
        assert_eq!((p.lag(), p.behind_secs()), (0, 0.0));
        // Waiting starts afresh when new records come after catching up.
        p.handed(12);
        assert_eq!(p.lag(), 2);
        assert!(p.behind_secs() < 5.0);
    }
}
