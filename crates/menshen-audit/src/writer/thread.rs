//! The writer thread (drains the queue: append, group commit, answer,
//! seal, hand the batch to the sink, rotate) and the sealing clock thread.

use std::fs::File;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use super::linger::{
    ArrivalRate, ASYNC_LINGER, BATCH, CP_SYNC_EVERY, DURABLE_LINGER, LINGER, SEAL_DURABLE,
    SEAL_EVERY,
};
use super::state::State;
use super::{AuditError, BatchSink, Msg};
use crate::chain::Checkpoint;

/// Start the writer thread: it drains `rx` into `st` until every handle is
/// dropped, then seals and syncs what is left.
pub(super) fn spawn_writer(
    st: State,
    recovery: Option<Checkpoint>,
    sink: Option<Box<dyn BatchSink>>,
    rx: mpsc::Receiver<Msg>,
    healthy_w: Arc<AtomicBool>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("menshen-audit".into())
        .spawn(move || run(st, recovery, sink, rx, healthy_w))
        .map(drop)
}

/// The writer loop.
fn run(
    mut st: State,
    recovery: Option<Checkpoint>,
    mut sink: Option<Box<dyn BatchSink>>,
    mut rx: mpsc::Receiver<Msg>,
    healthy_w: Arc<AtomicBool>,
) {
    // On this thread: the sink may block (it must not on the runtime).
    if let Some(s) = sink.as_mut() {
        s.opened(st.seq);
        if let Some(cp) = &recovery {
            s.committed(vec![], Some(cp));
        }
    }
    // Whether the last commit succeeded: a flush reports it.
    let mut healthy = true;
    // Durable records written since the last seal.
    let mut durable_unsealed = false;
    // Arrival rate of durable records, for the linger rule.
    let mut rate = ArrivalRate::new();
    // Arrival rate of all records, for the asynchronous linger.
    let mut all_rate = ArrivalRate::new();
    while let Some(first) = rx.blocking_recv() {
        let mut recs = Vec::new();
        // Callers of record_durable (answered once synced) and
        // of flush (answered once synced and sealed).
        let mut waiters = Vec::new();
        let mut flushers = Vec::new();
        let mut lingered = false;
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Record(r, k, w) => {
                    recs.push((r, k));
                    if let Some(w) = w {
                        waiters.push(w);
                    }
                }
                Msg::Flush(w) => flushers.push(w),
                Msg::Tick => {}
            }
            if recs.len() < BATCH {
                next = rx.try_recv().ok();
                // While durable records arrive faster than one
                // per DURABLE_LINGER (sustained A2/A3 load),
                // gather for DURABLE_LINGER so one fdatasync
                // (~60 us of kernel CPU here, plus two thread
                // wake-ups) serves several calls: at full A2 load
                // that is ~12% less CPU per call (measured: 338-350
                // against 386-408 us). Below that rate, commit at
                // once: lingering only adds latency there.
                if next.is_none()
                    && !lingered
                    && !waiters.is_empty()
                    && flushers.is_empty()
                    && rate.per_sec() * DURABLE_LINGER.as_secs_f64() >= 1.0
                {
                    lingered = true;
                    std::thread::sleep(DURABLE_LINGER);
                    next = rx.try_recv().ok();
                }
                // Only asynchronous (A1) records under sustained
                // load, and no durable record for 200 ms: gather
                // for ASYNC_LINGER, so the writer wakes once per
                // few dozen records instead of once per record
                // (each wake-up is a context switch on the
                // gateway's core). No durable caller waits on it;
                // one that arrives during the linger waits at most
                // ASYNC_LINGER once, as the load turns mixed.
                if next.is_none()
                    && !lingered
                    && waiters.is_empty()
                    && flushers.is_empty()
                    && rate.per_sec() == 0.0
                    && all_rate.per_sec() * ASYNC_LINGER.as_secs_f64() >= 4.0
                {
                    lingered = true;
                    std::thread::sleep(ASYNC_LINGER);
                    next = rx.try_recv().ok();
                }
            }
        }
        all_rate.add(recs.len());
        let wrote = !recs.is_empty();
        let lone = waiters.is_empty() && flushers.is_empty();
        // 1. Append and, if anyone waits, sync (group commit).
        st.prealloc_next = !waiters.is_empty();
        let committed = if wrote { st.commit(recs) } else { Ok(vec![]) };
        let committed = committed.and_then(|c| {
            if !lone {
                st.sync()?;
            }
            Ok(c)
        });
        let fail = |e: &AuditError| {
            tracing::error!(target: "menshen::audit", error = %e, "AUDIT WRITE FAILED: this batch is not durable or not sealed; A2/A3 calls fail closed");
        };
        // A flush with nothing new reports the last write's fate.
        let synced_ok = match &committed {
            Ok(_) => wrote || healthy,
            Err(e) => {
                fail(e);
                false
            }
        };
        // 2. Durable records are on disk: answer their callers
        // now; sealing is not part of durability.
        if !waiters.is_empty() {
            rate.add(waiters.len());
            durable_unsealed = true;
        }
        // A failed write is known now: say so before any caller hears of
        // it, so whoever was refused for it (an A2/A3 call, an admin
        // change) finds the log unhealthy too (`/readyz`, the alerts).
        if !synced_ok {
            healthy_w.store(false, std::sync::atomic::Ordering::Release);
        }
        for w in waiters {
            let _ = w.send(synced_ok);
        }
        // 3. Seal: at once for a flush, within SEAL_DURABLE of a
        // durable record, SEAL_EVERY otherwise. One SM2 signature
        // per group commit would cost about as much as the A2
        // call's own response signature.
        let seal_due = if durable_unsealed {
            SEAL_DURABLE
        } else {
            SEAL_EVERY
        };
        let want_seal = !flushers.is_empty() || st.last_seal.elapsed() >= seal_due;
        let sealed = match committed {
            Ok(c) if want_seal => st.seal().map(|cp| (c, cp)),
            Ok(c) => Ok((c, None)),
            Err(e) => Err(e),
        };
        if want_seal {
            durable_unsealed = false;
        }
        let (ok, done) = match sealed {
            Ok(done) => (synced_ok, Some(done)),
            Err(e) => {
                if synced_ok {
                    fail(&e);
                }
                (false, None)
            }
        };
        healthy = ok;
        healthy_w.store(ok, std::sync::atomic::Ordering::Release);
        for w in flushers {
            let _ = w.send(ok);
        }
        // The index (the sink) is not part of durability and may
        // apply back-pressure: after every caller is answered.
        if let (Some(s), Some((committed, cp))) = (sink.as_mut(), done) {
            if !committed.is_empty() || cp.is_some() {
                s.committed(committed, cp.as_ref());
            }
        }
        // Nobody waited on this batch (asynchronous A1 records):
        // linger a moment so the next batch is larger and senders
        // do not have to wake this thread for every record.
        if lone && wrote {
            std::thread::sleep(LINGER);
        }
        if let Err(e) = st.maybe_rotate() {
            tracing::error!(target: "menshen::audit", error = %e, "audit segment rotation failed");
        }
    }
    // All handles dropped: seal and make the last seals durable.
    if let Ok(Some(cp)) = st.seal() {
        if let Some(s) = sink.as_mut() {
            s.committed(vec![], Some(&cp));
        }
    }
    let _ = st.trim();
    let _ = st.cp_file.sync_data();
    let _ = st.seg_file.sync_data();
}

/// Start the sealing clock: a tick every [`SEAL_DURABLE`]; it holds only a
/// weak sender, so dropping every handle still ends the writer. It also
/// syncs the checkpoint file every [`CP_SYNC_EVERY`].
pub(super) fn spawn_tick(
    weak: mpsc::WeakSender<Msg>,
    cp_file: File,
    cp_dirty: Arc<AtomicBool>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("menshen-audit-tick".into())
        .spawn(move || {
            let mut last_sync = Instant::now();
            loop {
                std::thread::sleep(SEAL_DURABLE);
                if last_sync.elapsed() >= CP_SYNC_EVERY
                    && cp_dirty.swap(false, std::sync::atomic::Ordering::AcqRel)
                {
                    if let Err(e) = cp_file.sync_data() {
                        cp_dirty.store(true, std::sync::atomic::Ordering::Release);
                        tracing::error!(target: "menshen::audit", error = %e, "audit checkpoint file sync failed");
                    }
                    last_sync = Instant::now();
                }
                let Some(tx) = weak.upgrade() else { break };
                if tx.try_send(Msg::Tick).is_err() && tx.is_closed() {
                    break;
                }
            }
        })
        .map(drop)
}
