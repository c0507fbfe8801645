//! The audit index sink (AUD-2, AUD-6): committed audit batches go into the
//! store's index; the records the database lacks (after a crash, a failed
//! index write or a PostgreSQL outage) are indexed from the log files.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use menshen_audit::{BatchSink, Committed};
use menshen_store::ControlPlane;

/// How long the index task gathers committed batches before one transaction.
const INDEX_LINGER: Duration = Duration::from_millis(100);
/// Rows per index transaction at most.
const INDEX_MAX_ROWS: usize = 8192;
/// Batches the writer thread may hand over before the index task took them;
/// beyond that it drops them (they are read back from the files).
const INDEX_QUEUE: usize = 4096;
/// The wait after a failed catch-up before the next attempt, doubling up to
/// [`REPAIR_MAX_WAIT`].
const REPAIR_FIRST_WAIT: Duration = Duration::from_millis(500);
/// The longest wait between catch-up attempts (during a long outage): how
/// late, at most, the index starts catching up once the database is back.
const REPAIR_MAX_WAIT: Duration = Duration::from_secs(10);

/// A checkpoint for the store: the last sequence number and its JSON.
type Checkpoint = (u64, String);

/// What the index task receives from the writer thread (and the catch-ups).
enum IndexMsg {
    /// The log holds records up to this sequence number at start-up: index
    /// any the database is missing (a crash can come between a batch's fsync
    /// and its index commit; a schema change rebuilds the index).
    CatchUp(u64),
    /// A committed batch and the latest checkpoint, if any.
    Batch(Vec<menshen_store::AuditRow>, Option<Checkpoint>),
    /// A catch-up for the records up to `upto` is done: it indexed the
    /// files up to `reached` (less than `upto` if they could not be read to
    /// the end) and moved the store's mark there.
    CaughtUp { upto: u64, reached: u64 },
}

/// What the writer thread and the index task share besides the queue.
#[derive(Default)]
struct Shared {
    /// The highest sequence number of a batch the writer thread dropped
    /// because the queue was full (0: none since the task last looked).
    dropped_through: AtomicU64,
    /// Wakes the index task after a drop.
    wake: tokio::sync::Notify,
    /// Records handed to the index against those it made complete (MON-1
    /// `menshen_audit_index_lag_records`, the `audit_index_behind` alert).
    progress: Arc<menshen_audit::SinkProgress>,
}

/// Feeds committed audit batches to the store's index (AUD-2, AUD-6) and keeps
/// the latest checkpoint there too (so truncating the files is detectable).
///
/// The writer thread never waits for the database: it hands each batch to
/// the index task through a bounded queue and, when that is full, drops the
/// batch and notes the gap. Whatever the index may lack (the records of a
/// start-up, of a failed index write, of a dropped batch) is then indexed
/// from the log files by a catch-up task, from the store's `indexed_through`
/// mark; a catch-up that fails (the database down) is tried again with
/// backoff until it succeeds, so the index completes by itself when the
/// database returns, without a restart (issue 12 item 7). While a failure is
/// being repaired, live batches are not written (nor kept: memory stays
/// bounded however long the outage); the catch-up reads them from the files.
/// A record indexed twice (by a live batch and a catch-up) is kept once:
/// rows are keyed by (node, sequence number) and an insert leaves an
/// existing row as it is.
///
/// The `indexed_through` mark only advances over a gapless prefix: to a
/// catch-up's end once it is done, then with each live batch (they follow
/// on without a gap), never past a failed write or a dropped batch.
pub(crate) struct IndexSink {
    tx: tokio::sync::mpsc::Sender<IndexMsg>,
    shared: Arc<Shared>,
    /// The newest checkpoint of a dropped batch, sent with the next batch.
    unsent_checkpoint: Option<Checkpoint>,
    /// The node whose chain this is: every row names it (issue 12 item 8).
    node: Option<String>,
}

/// The index task's view of how complete the index is.
#[derive(Default)]
struct Progress {
    /// The index may lack records up to this one (0: none).
    behind: u64,
    /// The target of the catch-up task running, if one is.
    repairing: Option<u64>,
    /// A write failed or a batch was dropped: live batches are left to the
    /// catch-up (not written) until one has caught up.
    from_files: bool,
    /// The files could not be read to the end: the mark stays before the
    /// unreadable record (until the next start) and no catch-up runs (it
    /// would stop there again); live batches are still written.
    broken: bool,
    /// Highest live sequence number indexed.
    live_max: u64,
    /// The newest checkpoint not stored yet.
    checkpoint: Option<Checkpoint>,
}

impl Progress {
    /// Keep `cp` if it is newer than the one kept.
    fn keep_checkpoint(&mut self, cp: Option<Checkpoint>) {
        self.checkpoint = newer(self.checkpoint.take(), cp);
    }

    /// Note that the records up to `seq` may be missing from the index.
    fn missed(&mut self, seq: u64) {
        self.behind = self.behind.max(seq);
    }

    /// Fold in the batches the writer thread dropped since the last look.
    fn fold_dropped(&mut self, shared: &Shared) {
        let d = shared.dropped_through.swap(0, Ordering::Acquire);
        if d > 0 {
            if self.broken {
                tracing::error!(through = d, "audit index: queue full, batches not indexed (the log is intact; no catch-up past its unreadable record)");
                return;
            }
            if !self.from_files {
                tracing::warn!(
                    through = d,
                    "audit index: queue full, batches left to a catch-up from the log files"
                );
            }
            self.missed(d);
            self.from_files = true;
        }
    }

    /// Whether a live batch may move the mark: nothing is missing before it.
    fn complete(&self) -> bool {
        self.behind == 0 && !self.broken
    }
}

/// The newer of two checkpoints (by last sequence number).
fn newer(a: Option<Checkpoint>, b: Option<Checkpoint>) -> Option<Checkpoint> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.0 >= a.0 { b } else { a }),
        (a, b) => a.or(b),
    }
}

impl IndexSink {
    pub(crate) fn start(cp: ControlPlane, dir: std::path::PathBuf, node: Option<String>) -> Self {
        let node_for_rows = node.clone();
        // Room for INDEX_LINGER of single-record batches at a few thousand
        // calls/s; beyond that the writer thread drops batches (the files
        // have them) rather than wait.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<IndexMsg>(INDEX_QUEUE);
        let shared = Arc::new(Shared::default());
        let to_self = tx.downgrade();
        let sh = shared.clone();
        tokio::spawn(async move {
            let mut p = Progress::default();
            let mut pending: Option<IndexMsg> = None;
            loop {
                let msg = match pending.take() {
                    Some(m) => Some(m),
                    None => tokio::select! {
                        m = rx.recv() => match m {
                            Some(m) => Some(m),
                            None => break,
                        },
                        _ = sh.wake.notified() => None,
                    },
                };
                p.fold_dropped(&sh);
                match msg {
                    None => {}
                    Some(IndexMsg::CatchUp(upto)) => p.missed(upto),
                    Some(IndexMsg::CaughtUp { upto, reached }) => {
                        p.repairing = None;
                        if reached < upto {
                            // The files could not be read to the end: the
                            // mark stays before the records not indexed.
                            tracing::error!(reached, upto, "audit index: the log could not be read past record {reached}; `menshen audit verify` shows why");
                            p.broken = true;
                            p.from_files = false;
                        } else if p.behind <= upto {
                            if p.from_files {
                                tracing::info!(
                                    through = upto,
                                    "audit index: complete again, indexing live"
                                );
                            }
                            p.behind = 0;
                            p.from_files = false;
                            sh.progress.done(upto);
                            // Live batches written meanwhile follow on.
                            if p.live_max > upto {
                                match cp.store.index_audit(vec![], None, Some(p.live_max)).await {
                                    Ok(()) => sh.progress.done(p.live_max),
                                    Err(e) => {
                                        tracing::warn!(error = %e, "audit index: cannot record how far it is complete")
                                    }
                                }
                            }
                        }
                    }
                    Some(IndexMsg::Batch(mut rows, checkpoint)) => {
                        p.keep_checkpoint(checkpoint);
                        // Coalesce up to INDEX_LINGER of batches into one
                        // transaction: a SQLite commit costs a WAL append of
                        // every page it touched plus file locking, so a few
                        // large commits are far cheaper than many small ones.
                        // Search lags the log by at most this.
                        let deadline = tokio::time::Instant::now() + INDEX_LINGER;
                        while !p.from_files && rows.len() < INDEX_MAX_ROWS {
                            match tokio::time::timeout_at(deadline, rx.recv()).await {
                                Ok(Some(IndexMsg::Batch(more, cp2))) => {
                                    rows.extend(more);
                                    p.keep_checkpoint(cp2);
                                }
                                Ok(Some(other)) => {
                                    pending = Some(other);
                                    break;
                                }
                                Ok(None) | Err(_) => break,
                            }
                        }
                        // A drop before any batch received here is seen now.
                        p.fold_dropped(&sh);
                        let top = rows.iter().map(|r| r.seq).max();
                        if p.from_files {
                            // Left to the catch-up: it reads them back.
                            if let Some(t) = top {
                                p.missed(t);
                            }
                        } else if !rows.is_empty() || p.checkpoint.is_some() {
                            let mark = top.filter(|_| p.complete());
                            let checkpoint = p.checkpoint.take();
                            match cp.store.index_audit(rows, checkpoint.clone(), mark).await {
                                Ok(()) => {
                                    p.live_max = p.live_max.max(top.unwrap_or(0));
                                    if let Some(m) = mark {
                                        sh.progress.done(m);
                                    }
                                }
                                Err(e) => {
                                    tracing::error!(error = %e, "audit index write failed (the log itself is intact); the missing records are indexed from the log files once the database answers again");
                                    p.keep_checkpoint(checkpoint);
                                    if let Some(t) = top {
                                        p.missed(t);
                                    }
                                    // With an unreadable log no catch-up
                                    // runs: keep trying live batches.
                                    p.from_files = !p.broken;
                                }
                            }
                        }
                    }
                }
                if p.behind > 0 && p.repairing.is_none() && !p.broken {
                    let upto = p.behind;
                    p.repairing = Some(upto);
                    let job = Repair {
                        cp: cp.clone(),
                        dir: dir.clone(),
                        node: node.clone(),
                        upto,
                        checkpoint: p.checkpoint.take(),
                    };
                    tokio::spawn(job.run(to_self.clone()));
                }
            }
        });
        IndexSink {
            tx,
            shared,
            unsent_checkpoint: None,
            node: node_for_rows,
        }
    }

    /// Hand `msg` to the index task without waiting; when the queue is full,
    /// note that the records up to `seq` are left to a catch-up.
    fn hand_over(&mut self, msg: IndexMsg, seq: u64) -> bool {
        match self.tx.try_send(msg) {
            Ok(()) => true,
            Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                self.shared
                    .dropped_through
                    .fetch_max(seq, Ordering::Release);
                self.shared.wake.notify_one();
                false
            }
            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {
                tracing::error!("audit index task stopped");
                false
            }
        }
    }
}

/// One catch-up: index the log's records up to `upto` from the files, tried
/// until it succeeds (with backoff) or the index task is gone.
struct Repair {
    cp: ControlPlane,
    dir: std::path::PathBuf,
    node: Option<String>,
    upto: u64,
    checkpoint: Option<Checkpoint>,
}

impl Repair {
    async fn run(self, back: tokio::sync::mpsc::WeakSender<IndexMsg>) {
        let mut wait = REPAIR_FIRST_WAIT;
        let mut failures = 0u32;
        loop {
            match catch_up(
                &self.cp,
                &self.dir,
                self.upto,
                &self.node,
                self.checkpoint.clone(),
            )
            .await
            {
                Ok(reached) => {
                    if failures > 0 {
                        tracing::info!(
                            through = reached,
                            failures,
                            "audit index: caught up with the log after the database returned"
                        );
                    }
                    if let Some(back) = back.upgrade() {
                        let _ = back
                            .send(IndexMsg::CaughtUp {
                                upto: self.upto,
                                reached,
                            })
                            .await;
                    }
                    return;
                }
                Err(e) => {
                    failures += 1;
                    if failures == 1 {
                        tracing::error!(error = %e, upto = self.upto, "audit index: catching up from the log failed; tried again until it succeeds (searches miss these records meanwhile; the log itself is intact)");
                    } else {
                        tracing::debug!(error = %e, failures, "audit index: catch-up still failing");
                    }
                }
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(REPAIR_MAX_WAIT);
            if back.upgrade().is_none() {
                return;
            }
        }
    }
}

/// Index the records of the log up to `upto` that the database may lack,
/// read from the files after the store's `indexed_through` mark (from its
/// row's segment and offset; from the start without a mark), in
/// transactions of [`INDEX_MAX_ROWS`], then move the mark to the last one
/// read (with `checkpoint`, if any). Rows already there are left as they
/// are. Returns the last sequence number read (`upto` unless the files end
/// early).
async fn catch_up(
    cp: &ControlPlane,
    dir: &std::path::Path,
    upto: u64,
    node: &Option<String>,
    checkpoint: Option<Checkpoint>,
) -> anyhow::Result<u64> {
    let mark = cp.store.audit_index_watermark().await?;
    let (start, after) = match &mark {
        Some(r) => (Some((r.segment, r.offset)), r.seq),
        None => (None, 0),
    };
    if after >= upto {
        if checkpoint.is_some() {
            cp.store.index_audit(vec![], checkpoint, None).await?;
        }
        return Ok(upto);
    }
    tracing::info!(
        from = after + 1,
        to = upto,
        "audit index: indexing records the database may lack"
    );
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<menshen_store::AuditRow>>(2);
    let dir = dir.to_path_buf();
    let node = node.clone();
    let scan = tokio::task::spawn_blocking(move || {
        let (mut chunk, mut reached) = (Vec::new(), after);
        let r = menshen_audit::writer::scan_from(&dir, start, after, |c| {
            if c.seq > upto {
                return false;
            }
            reached = c.seq;
            chunk.push(row(c, &node));
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
        if let Err(e) = cp.store.index_audit(rows, None, None).await {
            // Stop the scan (it waits on the full queue otherwise).
            drop(rx);
            let _ = scan.await;
            return Err(e.into());
        }
    }
    let reached = scan.await??;
    cp.store
        .index_audit(vec![], checkpoint, Some(reached))
        .await?;
    tracing::info!(records = n, "audit index: caught up with the log");
    Ok(reached)
}

/// The index row of a committed record: from the keys the gateway handed
/// over with it, or, for a record read back from the files, from its JSON
/// (`RecordKeys::from_json`): one mapping either way.
fn row(c: Committed, node: &Option<String>) -> menshen_store::AuditRow {
    let Committed {
        seq,
        segment,
        offset,
        rec,
        keys,
    } = c;
    let k = keys.unwrap_or_else(|| menshen_audit::RecordKeys::from_json(&rec));
    menshen_store::AuditRow {
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
        node: node.clone(),
    }
}

impl BatchSink for IndexSink {
    fn committed(
        &mut self,
        records: Vec<Committed>,
        checkpoint: Option<&menshen_audit::chain::Checkpoint>,
    ) {
        let top = records.iter().map(|c| c.seq).max().unwrap_or(0);
        self.shared.progress.handed(top);
        let rows = records.into_iter().map(|c| row(c, &self.node)).collect();
        let cp = checkpoint.and_then(|c| serde_json::to_string(c).ok().map(|j| (c.last_seq, j)));
        let cp = newer(self.unsent_checkpoint.take(), cp);
        // Never waits: a full queue (the database far behind or down)
        // leaves the batch to a catch-up from the files.
        if !self.hand_over(IndexMsg::Batch(rows, cp.clone()), top) {
            self.unsent_checkpoint = cp;
        }
    }

    fn opened(&mut self, last_seq: u64) {
        self.shared.progress.handed(last_seq);
        self.hand_over(IndexMsg::CatchUp(last_seq), last_seq);
    }

    fn progress(&self) -> Option<Arc<menshen_audit::SinkProgress>> {
        Some(self.shared.progress.clone())
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
                user_id: Some("C0123456789ABCDEFGHJKMNPQRS".into()),
                consent_id: Some("CN0123456789ABCDEFGHJKMNPQR".into()),
                trace_id: None,
                message_parts: None,
                risk: None,
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
            let node = Some("c659184a".to_string());
            let parsed = row(c(None), &node);
            let given = row(c(Some(rec.keys(time_ms))), &node);
            assert_eq!(parsed, given);
            assert_eq!(given.time_ms, time_ms);
        }
    }
}
