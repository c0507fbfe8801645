//! DEP-2 / issue 4: when the writer cannot keep up (a slow disk, a slow
//! database index), callers wait: the records accepted but not yet written
//! never exceed the bounded queue plus one batch, so memory stays bounded,
//! and nothing is dropped once the writer catches up.
// Tests may hold a std Mutex (the clippy.toml ban is for the product).
#![allow(clippy::disallowed_types)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use menshen_audit::writer::read_all_records;
use menshen_audit::{AuditConfig, AuditLog, BatchSink, Committed};

/// A sink that blocks the writer thread (as a stalled disk or database
/// would) until the gate opens.
#[derive(Clone, Default)]
struct Gate {
    open: Arc<(Mutex<bool>, Condvar)>,
    entered: Arc<AtomicUsize>,
}

impl Gate {
    fn release(&self) {
        *self.open.0.lock().unwrap() = true;
        self.open.1.notify_all();
    }
}

impl BatchSink for Gate {
    fn committed(&mut self, records: Vec<Committed>, _: Option<&menshen_audit::chain::Checkpoint>) {
        if records.is_empty() {
            return;
        }
        self.entered.fetch_add(1, Ordering::SeqCst);
        let mut open = self.open.0.lock().unwrap();
        while !*open {
            open = self.open.1.wait(open).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dep_2_a_stalled_writer_pushes_back_on_callers_and_loses_nothing() {
    const TOTAL: usize = 20_000;
    // Records the writer holds at most: one batch being written (BATCH =
    // 4096 in writer.rs) plus the queue.
    const QUEUE: usize = 16;
    const BOUND: usize = 4096 + QUEUE + 1;

    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = AuditConfig::new(tmp.path().to_path_buf());
    cfg.queue = QUEUE;
    let gate = Gate::default();
    let log = AuditLog::open(cfg, None, Some(Box::new(gate.clone()))).unwrap();

    let accepted = Arc::new(AtomicUsize::new(0));
    let sender = {
        let (log, accepted) = (log.clone(), accepted.clone());
        tokio::spawn(async move {
            for i in 0..TOTAL {
                let rec = serde_json::json!({"kind": "access", "txn_id": format!("T{i:06}")});
                log.record(&rec).await.unwrap();
                accepted.fetch_add(1, Ordering::SeqCst);
            }
        })
    };

    // Wait until the writer is stuck in the sink and the sender has stopped
    // making progress (bounded wait; the assertions are about counts).
    let mut last = usize::MAX;
    let mut still = 0;
    for _ in 0..1500 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = accepted.load(Ordering::SeqCst);
        if gate.entered.load(Ordering::SeqCst) > 0 && now == last {
            still += 1;
            if still >= 10 {
                break;
            }
        } else {
            still = 0;
        }
        last = now;
    }
    let held = accepted.load(Ordering::SeqCst);
    assert!(
        gate.entered.load(Ordering::SeqCst) > 0,
        "the writer never reached the sink"
    );
    assert!(
        !sender.is_finished(),
        "all {TOTAL} records were accepted while the writer was stalled: unbounded buffering"
    );
    assert!(
        held <= BOUND,
        "{held} records accepted while the writer was stalled; bound {BOUND}"
    );

    // The writer catches up: every record is written, none dropped.
    gate.release();
    tokio::time::timeout(Duration::from_secs(60), sender)
        .await
        .expect("sender finished once the writer caught up")
        .unwrap();
    log.flush().await.unwrap();
    let recs = read_all_records(tmp.path()).unwrap();
    assert_eq!(recs.len(), TOTAL);
    assert!(recs[TOTAL - 1].contains(&format!("T{:06}", TOTAL - 1)));
}
