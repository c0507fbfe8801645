//! The audit index sink (AUD-2, AUD-6): committed audit batches go into the
//! store's index, and at start-up the records the database lacks are indexed
//! from the log files (catch-up).

use menshen_audit::{BatchSink, Committed};
use menshen_store::ControlPlane;

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
pub(crate) struct IndexSink {
    tx: tokio::sync::mpsc::Sender<IndexMsg>,
    /// The node whose chain this is: every row names it (issue 12 item 8).
    node: Option<String>,
}

impl IndexSink {
    pub(crate) fn start(cp: ControlPlane, dir: std::path::PathBuf, node: Option<String>) -> Self {
        let node_for_rows = node.clone();
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
                        let node = node.clone();
                        tokio::spawn(async move {
                            match catch_up(&cp, &dir, upto, node).await {
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
        IndexSink {
            tx,
            node: node_for_rows,
        }
    }
}

/// Index the records of the log up to `upto` that the database may lack,
/// read from the files after the store's `indexed_through` mark (from its
/// row's segment and offset; from the start without a mark), in
/// transactions of [`INDEX_MAX_ROWS`]. Rows already there are left as they are.
/// Returns the last sequence number read (`upto` unless the files end early).
async fn catch_up(
    cp: &ControlPlane,
    dir: &std::path::Path,
    upto: u64,
    node: Option<String>,
) -> anyhow::Result<u64> {
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
        cp.store.index_audit(rows, None, None).await?;
    }
    let reached = scan.await??;
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
        let rows = records.into_iter().map(|c| row(c, &self.node)).collect();
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
