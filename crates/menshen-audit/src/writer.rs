//! The record writer: a bounded queue (back-pressure, never unbounded memory)
//! drained by one thread that appends JSON lines and syncs once per batch.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use tokio::sync::{mpsc, oneshot};

use crate::AccessRecord;

/// Errors of the audit writer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The log file could not be opened or written.
    #[error("audit log I/O error on {path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The writer has stopped (shutdown or a failed disk).
    #[error("audit writer is not running")]
    Closed,
}

enum Msg {
    Record(Box<AccessRecord>, Option<oneshot::Sender<Result<(), ()>>>),
    Flush(oneshot::Sender<()>),
}

/// Handle to the audit writer; cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Msg>,
    path: PathBuf,
}

const BATCH: usize = 1024;

impl AuditLog {
    /// Open (append) `dir/access.jsonl` and start the writer thread.
    pub fn open(dir: &Path, queue: usize) -> Result<Self, AuditError> {
        std::fs::create_dir_all(dir).map_err(|source| AuditError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let path = dir.join("access.jsonl");
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| AuditError::Io {
                path: path.display().to_string(),
                source,
            })?;
        let (tx, rx) = mpsc::channel(queue.max(16));
        let p = path.clone();
        std::thread::Builder::new()
            .name("menshen-audit".into())
            .spawn(move || run(file, p, rx))
            .map_err(|source| AuditError::Io {
                path: path.display().to_string(),
                source,
            })?;
        Ok(AuditLog { tx, path })
    }

    /// The JSON-lines file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queue a record; waits for queue space (back-pressure).
    pub async fn record(&self, rec: AccessRecord) -> Result<(), AuditError> {
        self.tx
            .send(Msg::Record(Box::new(rec), None))
            .await
            .map_err(|_| AuditError::Closed)
    }

    /// Queue a record and wait until it is on disk (synced).
    pub async fn record_durable(&self, rec: AccessRecord) -> Result<(), AuditError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Msg::Record(Box::new(rec), Some(tx)))
            .await
            .map_err(|_| AuditError::Closed)?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            _ => Err(AuditError::Closed),
        }
    }

    /// Wait until everything queued so far is on disk.
    pub async fn flush(&self) -> Result<(), AuditError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Msg::Flush(tx))
            .await
            .map_err(|_| AuditError::Closed)?;
        rx.await.map_err(|_| AuditError::Closed)
    }
}

fn run(mut file: File, path: PathBuf, mut rx: mpsc::Receiver<Msg>) {
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut waiters = Vec::new();
    let mut flushes = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        let mut next = Some(first);
        let mut n = 0;
        while let Some(msg) = next.take() {
            match msg {
                Msg::Record(rec, w) => {
                    // Serializing a plain struct of strings and numbers cannot fail.
                    if serde_json::to_writer(&mut buf, &rec).is_ok() {
                        buf.push(b'\n');
                    }
                    if let Some(w) = w {
                        waiters.push(w);
                    }
                }
                Msg::Flush(w) => flushes.push(w),
            }
            n += 1;
            if n < BATCH {
                next = rx.try_recv().ok();
            }
        }
        let ok = file.write_all(&buf).and_then(|_| file.sync_data());
        buf.clear();
        match ok {
            Ok(()) => {
                for w in waiters.drain(..) {
                    let _ = w.send(Ok(()));
                }
                for f in flushes.drain(..) {
                    let _ = f.send(());
                }
            }
            Err(e) => {
                // Fail closed: tell every waiter, and say so loudly once per batch.
                tracing::error!(target: "menshen::audit", file = %path.display(), error = %e, "AUDIT WRITE FAILED: records in this batch are not durable");
                for w in waiters.drain(..) {
                    let _ = w.send(Err(()));
                }
                flushes.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Outcome;

    fn rec(i: u32) -> AccessRecord {
        AccessRecord {
            kind: "access".into(),
            txn_id: format!("T{i}"),
            node_id: "n".into(),
            timestamp: "2026-01-01T00:00:00.000Z".into(),
            duration_us: 1,
            app_id: None,
            app_verified: false,
            api_id: None,
            u_api_id: None,
            level: None,
            client_ip: "127.0.0.1".into(),
            peer: "127.0.0.1:1".into(),
            method: "GET".into(),
            path: "/".into(),
            status: 200,
            result: Outcome::Success,
            code: None,
            message: "200".into(),
            reason: None,
            alg: None,
            nonce: None,
            sig_created: None,
            client_cert: None,
        }
    }

    #[tokio::test]
    async fn aud_1_records_are_appended_and_durable() {
        let dir = std::env::temp_dir().join(format!("audit-{}", std::process::id()));
        let log = AuditLog::open(&dir, 64).unwrap();
        for i in 0..100 {
            log.record(rec(i)).await.unwrap();
        }
        log.record_durable(rec(100)).await.unwrap();
        let text = std::fs::read_to_string(log.path()).unwrap();
        let lines: Vec<AccessRecord> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 101);
        assert_eq!(lines[100].txn_id, "T100");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
