//! Issue 12 item 8 (AUD-3, DEP-2): every node of a cluster keeps its own
//! hash chain, its node id in its segment names and in every line (covered
//! by the hash); several nodes' logs verify independently; a log written
//! before node ids still verifies, is read back, and goes on under one.

mod common;

use std::path::Path;
use std::time::Duration;

use menshen_audit::verify::{list_segments, verify_dir, verify_dirs};
use menshen_audit::writer::{read_records_at, scan_from, segment_node};
use menshen_audit::{AuditConfig, AuditError, AuditLog, AuditSigner};
use menshen_crypto::{PrivateKey, SigAlg};

fn open(dir: &Path, node: Option<&str>, key_pem: &str) -> Result<AuditLog, AuditError> {
    let mut cfg = AuditConfig::new(dir.to_path_buf());
    cfg.segment_max_bytes = 4 * 1024;
    cfg.segment_max_age = Duration::from_secs(3600);
    cfg.node_id = node.map(str::to_string);
    AuditLog::open(
        cfg,
        Some(AuditSigner {
            key_id: "audit-test".into(),
            key: PrivateKey::from_pkcs8_pem(key_pem).unwrap(),
        }),
        None,
    )
}

async fn write(log: &AuditLog, from: usize, n: usize) {
    for i in from..from + n {
        let rec = serde_json::json!({"kind": "access", "txn_id": format!("T{i:05}"), "timestamp": "2026-11-30T00:00:00.000Z"});
        log.record_durable(&rec).await.unwrap();
    }
    log.flush().await.unwrap();
}

/// Every record of the log in `dir`, read back by the places a scan finds
/// (as the index keeps them): the txn_ids in order.
fn read_back(dir: &Path) -> Vec<String> {
    let mut places = Vec::new();
    scan_from(dir, None, 0, |c| {
        places.push((c.segment, c.offset, c.seq));
        true
    })
    .unwrap();
    read_records_at(dir, &places)
        .into_iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_str(&r.unwrap()).unwrap();
            v["txn_id"].as_str().unwrap().to_string()
        })
        .collect()
}

fn names(dir: &Path) -> Vec<String> {
    list_segments(dir)
        .unwrap()
        .into_iter()
        .map(|(_, p)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test]
async fn dep_2_each_node_keeps_its_own_named_chain_and_several_verify_independently() {
    let tmp = tempfile::tempdir().unwrap();
    let (key, pem) = PrivateKey::generate(SigAlg::Sm2Sm3).unwrap();
    let pk = key.public_key().clone();
    let key = pem.as_str();
    let (a, b) = (tmp.path().join("node-a"), tmp.path().join("node-b"));
    for (dir, node) in [(&a, "0a000001"), (&b, "0a000002")] {
        let log = open(dir, Some(node), key).unwrap();
        write(&log, 0, 60).await;
        drop(log);
        common::settle(dir, true);
        // Segment names and every line carry the node id.
        let segs = names(dir);
        assert!(segs.len() > 2, "{segs:?}");
        assert!(
            segs.iter().all(|n| segment_node(n) == Some(node)),
            "{segs:?}"
        );
        for (_, p) in list_segments(dir).unwrap() {
            for line in menshen_audit::writer::read_segment(&p).unwrap().lines() {
                let pl = menshen_audit::chain::parse_line(line).unwrap();
                assert_eq!(pl.node, Some(node));
            }
        }
        let rep = verify_dir(dir, std::slice::from_ref(&pk), |_, _| {}).unwrap();
        assert_eq!((rep.node.as_deref(), rep.records), (Some(node), 60));
        assert_eq!(read_back(dir).len(), 60);
    }
    // Both together: each verified on its own.
    let r = verify_dirs(
        &[a.clone(), b.clone()],
        std::slice::from_ref(&pk),
        |_, _, _| {},
    );
    assert!(r.iter().all(|r| r.result.is_ok()), "{r:?}");
    assert_eq!(
        r.iter()
            .map(|r| r.result.as_ref().unwrap().node.clone().unwrap())
            .collect::<Vec<_>>(),
        ["0a000001", "0a000002"]
    );
    // The same node id claimed by two directories fails.
    let copy = tmp.path().join("copy-of-a");
    std::fs::create_dir_all(copy.join("segments")).unwrap();
    std::fs::copy(a.join("checkpoints.jsonl"), copy.join("checkpoints.jsonl")).unwrap();
    for (_, p) in list_segments(&a).unwrap() {
        std::fs::copy(&p, copy.join("segments").join(p.file_name().unwrap())).unwrap();
    }
    let r = verify_dirs(
        &[a.clone(), copy.clone()],
        std::slice::from_ref(&pk),
        |_, _, _| {},
    );
    assert!(r[0].result.is_ok());
    let e = r[1].result.as_ref().unwrap_err();
    assert!(e.problem.contains("two directories claim"), "{e}");
    // A record moved into another node's chain: its line names the other
    // node (and changing that breaks its hash).
    let first_b = list_segments(&b).unwrap()[0].1.clone();
    let first_a = list_segments(&a).unwrap()[0].1.clone();
    let line_a = menshen_audit::writer::read_segment(&first_a)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    let text_b = menshen_audit::writer::read_segment(&first_b).unwrap();
    let mut lines: Vec<&str> = text_b.lines().collect();
    lines[0] = &line_a;
    let plain_b = first_b.with_extension("");
    std::fs::remove_file(&first_b).unwrap();
    std::fs::write(&plain_b, lines.join("\n") + "\n").unwrap();
    let e = verify_dir(&b, std::slice::from_ref(&pk), |_, _| {}).unwrap_err();
    assert!(e.problem.contains("written by node 0a000001"), "{e}");
}

#[tokio::test]
async fn aud_3_a_log_without_node_ids_still_verifies_and_goes_on_under_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let (key, pem) = PrivateKey::generate(SigAlg::Sm2Sm3).unwrap();
    let pk = key.public_key().clone();
    let key = pem.as_str();
    // The older format: no node id anywhere.
    let log = open(&dir, None, key).unwrap();
    write(&log, 0, 40).await;
    drop(log);
    common::settle(&dir, true);
    assert!(names(&dir).iter().all(|n| segment_node(n).is_none()));
    let rep = verify_dir(&dir, std::slice::from_ref(&pk), |_, _| {}).unwrap();
    assert_eq!((rep.node, rep.records), (None, 40));
    // Opened with a node id: the chain goes on in segments named with it.
    let log = open(&dir, Some("0a1b2c3d"), key).unwrap();
    write(&log, 40, 40).await;
    drop(log);
    common::settle(&dir, true);
    let segs = names(&dir);
    let first_named = segs.iter().position(|n| segment_node(n).is_some()).unwrap();
    assert!(first_named > 0);
    assert!(segs[first_named..]
        .iter()
        .all(|n| segment_node(n) == Some("0a1b2c3d")));
    let rep = verify_dir(&dir, std::slice::from_ref(&pk), |_, _| {}).unwrap();
    assert_eq!((rep.node.as_deref(), rep.records), (Some("0a1b2c3d"), 80));
    // Read back by place across both kinds of segment.
    let txns = read_back(&dir);
    assert_eq!(txns.len(), 80);
    assert_eq!((txns[0].as_str(), txns[79].as_str()), ("T00000", "T00079"));
    // Opened without one: the log's own id is kept.
    let log = open(&dir, None, key).unwrap();
    write(&log, 80, 5).await;
    drop(log);
    common::settle(&dir, true);
    let rep = verify_dir(&dir, std::slice::from_ref(&pk), |_, _| {}).unwrap();
    assert_eq!((rep.node.as_deref(), rep.records), (Some("0a1b2c3d"), 85));
    // Opened as another node: refused, the log untouched.
    match open(&dir, Some("0a1b2c3e"), key) {
        Err(AuditError::OtherNode { found, .. }) => assert_eq!(found, "0a1b2c3d"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("another node's log was opened"),
    }
    assert!(verify_dir(&dir, std::slice::from_ref(&pk), |_, _| {}).is_ok());
}

/// The segment active when a log written before node ids is opened with one
/// keeps its name; its lines from then on carry the node id, which the log
/// keeps (also opened again without one) and verification holds it to.
#[tokio::test]
async fn aud_3_the_active_segment_goes_on_under_the_node_id_until_it_rotates() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let (key, pem) = PrivateKey::generate(SigAlg::Sm2Sm3).unwrap();
    let pk = key.public_key().clone();
    let log = open(&dir, None, pem.as_str()).unwrap();
    write(&log, 0, 3).await;
    drop(log);
    common::settle(&dir, true);
    let log = open(&dir, Some("0a1b2c3d"), pem.as_str()).unwrap();
    write(&log, 3, 2).await;
    drop(log);
    common::settle(&dir, true);
    assert_eq!(names(&dir), ["seg-00000001.jsonl"]);
    assert_eq!(
        menshen_audit::verify::log_node(&dir).unwrap().as_deref(),
        Some("0a1b2c3d")
    );
    let log = open(&dir, None, pem.as_str()).unwrap();
    write(&log, 5, 1).await;
    drop(log);
    common::settle(&dir, true);
    let rep = verify_dir(&dir, std::slice::from_ref(&pk), |_, _| {}).unwrap();
    assert_eq!((rep.node.as_deref(), rep.records), (Some("0a1b2c3d"), 6));
    assert_eq!(read_back(&dir).len(), 6);
    assert!(matches!(
        open(&dir, Some("0a1b2c3e"), pem.as_str()),
        Err(AuditError::OtherNode { .. })
    ));
    // A line without node id after lines with one: refused.
    let seg = list_segments(&dir).unwrap()[0].1.clone();
    let text = std::fs::read_to_string(&seg).unwrap();
    let last = text.lines().last().unwrap();
    let pl = menshen_audit::chain::parse_line(last).unwrap();
    let (forged, _) = menshen_audit::chain::make_line(pl.seq + 1, pl.hash, br#"{"kind":"access"}"#);
    let mut t = text.clone();
    t.push_str(std::str::from_utf8(&forged).unwrap());
    std::fs::write(&seg, t).unwrap();
    let e = verify_dir(&dir, std::slice::from_ref(&pk), |_, _| {}).unwrap_err();
    assert!(e.problem.contains("without node id"), "{e}");
}
