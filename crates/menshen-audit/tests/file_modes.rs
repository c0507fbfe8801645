//! Files at rest (AUD-3, CONF-4; issue 10 item 6): every directory the audit
//! writer creates is 0700 and every file it creates 0600, whatever the umask:
//! the log directory (and missing parents), `segments/`, `archive/`, the
//! active segment, `checkpoints.jsonl`, and the compressed segments (written
//! as `.zst.tmp`, then renamed).
#![cfg(unix)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use menshen_audit::verify::list_segments;
use menshen_audit::{AuditConfig, AuditLog};

/// Small segments, so a few dozen records rotate several times.
fn cfg(dir: &Path) -> AuditConfig {
    let mut cfg = AuditConfig::new(dir.to_path_buf());
    cfg.segment_max_bytes = 8 * 1024;
    cfg.segment_max_age = Duration::from_secs(3600);
    cfg
}

/// Records `from..to`, ~400 bytes each; every 10th durable, which ends a
/// batch (the writer rotates segments between batches).
async fn write(log: &AuditLog, from: usize, to: usize) {
    for i in from..to {
        let rec = serde_json::json!({"kind": "access", "txn_id": format!("T{i:05}"), "timestamp": "2026-11-30T00:00:00.000Z", "pad": "x".repeat(300)});
        if i % 10 == 9 {
            log.record_durable(&rec).await.unwrap();
        } else {
            log.record(&rec).await.unwrap();
        }
    }
    log.flush().await.unwrap();
}

/// Every directory and file under `root` (itself excluded), with its mode.
fn walk(root: &Path) -> Vec<(PathBuf, bool, u32)> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            out.push((p.clone(), m.is_dir(), m.permissions().mode() & 0o777));
            if m.is_dir() {
                todo.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Every directory under `root` is 0700 and every file 0600; the names of
/// the files, relative to `root`.
fn assert_private(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    for (p, is_dir, mode) in walk(root) {
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        if is_dir {
            assert_eq!(mode, 0o700, "directory {rel} is {mode:o}, not 700");
        } else {
            assert_eq!(mode, 0o600, "file {rel} is {mode:o}, not 600");
            files.push(rel);
        }
    }
    files
}

#[tokio::test]
async fn aud_3_conf_4_the_writer_creates_directories_0700_and_files_0600() {
    let tmp = tempfile::tempdir().unwrap();
    // The writer creates the log directory and its missing parent too.
    let dir = tmp.path().join("data").join("audit");
    for (from, to) in [(0, 120), (120, 200)] {
        // A second session reopens the log: the directories and files exist
        // already, the next segments are created by this session.
        let log = AuditLog::open(cfg(&dir), None, None).unwrap();
        write(&log, from, to).await;
        drop(log);
        common::settle(&dir, true);
        let files = assert_private(tmp.path());
        // What was checked: rotated, compressed segments, the active one,
        // the checkpoints, and the archive directory.
        let zst = files.iter().filter(|f| f.ends_with(".jsonl.zst")).count();
        assert!(zst >= 2, "no rotation and compression happened: {files:?}");
        assert!(
            files.iter().any(|f| f.ends_with("checkpoints.jsonl")),
            "{files:?}"
        );
        assert!(
            files
                .iter()
                .any(|f| f.starts_with("data/audit/segments/seg-") && f.ends_with(".jsonl")),
            "{files:?}"
        );
        assert!(dir.join("archive").is_dir());
        if from == 0 {
            // A `.tmp` left 0644 by a crash while the active segment was
            // being compressed: the next compression of it starts afresh,
            // and the `.zst` it renames into place is 0600.
            let active = list_segments(&dir).unwrap().pop().unwrap().1;
            let mut tmp = active.into_os_string();
            tmp.push(".zst.tmp");
            std::fs::write(&tmp, b"partial").unwrap();
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    assert_eq!(
        menshen_audit::writer::read_all_records(&dir).unwrap().len(),
        200
    );
}
