//! AUD-3: verification passes on an untouched log and fails, naming the place,
//! after each kind of tampering.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use menshen_audit::verify::{list_segments, verify_dir};
use menshen_audit::{AuditConfig, AuditLog, AuditSigner};
use menshen_crypto::{PrivateKey, PublicKey, SigAlg};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let t = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &t);
        } else {
            std::fs::copy(&p, &t).unwrap();
        }
    }
}

/// A log of 300 records over several segments (the older ones compressed).
async fn make_log(dir: &Path) -> PublicKey {
    let (key, _) = PrivateKey::generate(SigAlg::Sm2Sm3).unwrap();
    let public = key.public_key().clone();
    let mut cfg = AuditConfig::new(dir.to_path_buf());
    cfg.segment_max_bytes = 8 * 1024;
    cfg.segment_max_age = Duration::from_secs(3600);
    let log = AuditLog::open(
        cfg,
        Some(AuditSigner {
            key_id: "audit-test".into(),
            key,
        }),
        None,
    )
    .unwrap();
    for i in 0..300 {
        let rec = serde_json::json!({"kind": "access", "txn_id": format!("T{i:05}"), "timestamp": "2026-11-22T00:00:00.000Z", "status": 200});
        if i % 7 == 0 {
            log.record_durable(&rec).await.unwrap();
        } else {
            log.record(&rec).await.unwrap();
        }
    }
    log.flush().await.unwrap();
    // Wait for background compression of rotated segments to settle.
    common::settle(dir, false);
    public
}

fn segs(dir: &Path) -> Vec<PathBuf> {
    list_segments(dir)
        .unwrap()
        .into_iter()
        .map(|(_, p)| p)
        .collect()
}

fn edit_lines(path: &Path, f: impl FnOnce(&mut Vec<String>)) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    f(&mut lines);
    let mut out = lines.join("\n");
    out.push('\n');
    std::fs::write(path, out).unwrap();
}

#[tokio::test]
async fn aud_3_untouched_log_verifies_and_every_tampering_is_detected() {
    let tmp = tempfile::tempdir().unwrap();
    let orig = tmp.path().join("orig");
    let pk = make_log(&orig).await;
    let report =
        verify_dir(&orig, std::slice::from_ref(&pk), |_, _| {}).expect("untouched log verifies");
    assert_eq!(report.records, 300);
    assert!(report.segments >= 3, "rotation happened: {report:?}");
    assert!(
        segs(&orig)
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "zst")),
        "closed segments are compressed"
    );

    let active = |d: &Path| segs(d).into_iter().last().unwrap();
    let n = std::sync::atomic::AtomicUsize::new(0);
    let case = |name: &str, tamper: &dyn Fn(&Path), expect: &str| {
        let d = tmp.path().join(format!(
            "case{}",
            n.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        copy_dir(&orig, &d);
        tamper(&d);
        let e = verify_dir(&d, std::slice::from_ref(&pk), |_, _| {}).expect_err(name);
        let text = e.to_string();
        assert!(
            text.contains(expect),
            "{name}: expected `{expect}` in `{text}`"
        );
    };

    // One byte changed in a record.
    case(
        "byte changed",
        &|d| {
            let p = active(d);
            let mut b = std::fs::read(&p).unwrap();
            let i = b.windows(6).position(|w| w == b"T0029").unwrap_or(40) + 3;
            b[i] ^= 1;
            std::fs::write(&p, b).unwrap();
        },
        "altered",
    );
    // A record deleted.
    case(
        "record deleted",
        &|d| {
            edit_lines(&active(d), |l| {
                l.remove(1);
            })
        },
        "line 2",
    );
    // Two records swapped.
    case(
        "records swapped",
        &|d| edit_lines(&active(d), |l| l.swap(0, 1)),
        "line 1",
    );
    // The last records truncated.
    case(
        "truncated",
        &|d| {
            edit_lines(&active(d), |l| {
                l.truncate(l.len() - 3);
            })
        },
        "truncated",
    );
    // A whole segment removed (the second one).
    case(
        "segment removed",
        &|d| std::fs::remove_file(&segs(d)[1]).unwrap(),
        "missing",
    );
    // A checkpoint signature altered.
    case(
        "checkpoint signature",
        &|d| {
            edit_lines(&d.join("checkpoints.jsonl"), |l| {
                let i = l.len() / 2;
                let s = l[i].clone();
                let pos = s.find("\"sig\":\"").unwrap() + 8;
                let mut c: Vec<char> = s.chars().collect();
                c[pos] = if c[pos] == 'A' { 'B' } else { 'A' };
                l[i] = c.into_iter().collect();
            })
        },
        "checkpoints.jsonl line",
    );
    // A compressed segment altered.
    case(
        "compressed altered",
        &|d| {
            let z = segs(d)
                .into_iter()
                .find(|p| p.extension().is_some_and(|e| e == "zst"))
                .unwrap();
            let mut b = std::fs::read(&z).unwrap();
            let i = b.len() / 2;
            b[i] ^= 0x55;
            std::fs::write(&z, b).unwrap();
        },
        ".zst",
    );
    // A forged record appended (valid chain, no signed checkpoint).
    case(
        "appended",
        &|d| {
            let p = active(d);
            let text = std::fs::read_to_string(&p).unwrap();
            let last = menshen_audit::chain::parse_line(text.lines().last().unwrap()).unwrap();
            let (line, _) = menshen_audit::chain::make_line(
                last.seq + 1,
                last.hash,
                br#"{"kind":"access","txn_id":"FORGED"}"#,
            );
            let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
            std::io::Write::write_all(&mut f, &line).unwrap();
        },
        "not covered",
    );
    // Another key does not verify the checkpoints.
    let (other, _) = PrivateKey::generate(SigAlg::Sm2Sm3).unwrap();
    assert!(verify_dir(&orig, &[other.public_key().clone()], |_, _| {}).is_err());
}

#[tokio::test]
async fn aud_3_chain_continues_after_reopen_and_partial_line_is_repaired() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pk = make_log(dir).await;
    // A crash mid-write leaves a partial line: it was never acknowledged.
    let active = segs(dir).into_iter().last().unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&active)
        .unwrap();
    std::io::Write::write_all(&mut f, b"{\"seq\":301,\"prev\":\"00").unwrap();
    drop(f);
    let (key2, _) = PrivateKey::generate(SigAlg::Sm2Sm3).unwrap();
    let pk2 = key2.public_key().clone();
    let log = AuditLog::open(
        AuditConfig::new(dir.to_path_buf()),
        Some(AuditSigner {
            key_id: "audit-2".into(),
            key: key2,
        }),
        None,
    )
    .unwrap();
    log.record_durable(&serde_json::json!({"kind": "access", "txn_id": "AFTER"}))
        .await
        .unwrap();
    // A durable record is on disk when record_durable returns and sealed
    // within SEAL_DURABLE, without any flush: poll (bounded) until the
    // verifier sees it covered by a signed checkpoint.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let r = loop {
        match verify_dir(dir, &[pk.clone(), pk2.clone()], |_, _| {}) {
            Ok(r) => break r,
            Err(e) if std::time::Instant::now() < deadline => {
                assert!(e.problem.contains("not covered"), "{e:?}");
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            Err(e) => panic!("durable record never sealed: {e:?}"),
        }
    };
    assert_eq!(r.records, 301);
    let all = menshen_audit::writer::read_all_records(dir).unwrap();
    assert!(all.last().unwrap().contains("AFTER"));
}
