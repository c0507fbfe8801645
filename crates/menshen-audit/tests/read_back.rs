//! AUD-2 / AUD-6: the database index keeps each record's place (segment,
//! offset); the records are read back from the files wherever the segment is
//! now (active, compressed, archived), and the index catches up from the
//! files after a crash.
// Tests may hold a std Mutex (the clippy.toml ban is for the product).
#![allow(clippy::disallowed_types)]

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use menshen_audit::verify::list_segments;
use menshen_audit::writer::{read_records_at, read_segment, scan_from, segment_name};
use menshen_audit::{AuditConfig, AuditLog, BatchSink, Committed};

/// (seq, segment, offset, txn_id) of a committed record.
type Place = (u64, u64, u64, String);

#[derive(Default, Clone)]
struct Seen {
    opened: Arc<Mutex<Vec<u64>>>,
    committed: Arc<Mutex<Vec<Place>>>,
}

impl BatchSink for Seen {
    fn opened(&mut self, last_seq: u64) {
        self.opened.lock().unwrap().push(last_seq);
    }
    fn committed(&mut self, records: Vec<Committed>, _: Option<&menshen_audit::chain::Checkpoint>) {
        let mut c = self.committed.lock().unwrap();
        for r in records {
            let v: serde_json::Value = serde_json::from_slice(&r.rec).unwrap();
            c.push((
                r.seq,
                r.segment,
                r.offset,
                v["txn_id"].as_str().unwrap().to_string(),
            ));
        }
    }
}

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

/// Open the log in `dir` with a recording sink, write records `from..to`,
/// stop it and let its background work settle; what the sink saw.
async fn session(dir: &Path, from: usize, to: usize) -> Seen {
    let seen = Seen::default();
    let log = AuditLog::open(cfg(dir), None, Some(Box::new(seen.clone()))).unwrap();
    write(&log, from, to).await;
    drop(log);
    settle(dir);
    // The writer answers a flush before it hands the batch to the sink
    // (the index is not part of durability), so the last batch can reach
    // the sink a moment after `flush` returned: wait for it, bounded.
    let t = std::time::Instant::now();
    while seen.committed.lock().unwrap().len() < to - from {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(10),
            "the sink saw {} of {} records",
            seen.committed.lock().unwrap().len(),
            to - from
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    seen
}

/// Wait until the rotated segments are compressed and the stopped writer
/// has trimmed the active one.
fn settle(dir: &Path) {
    common::settle(dir, true);
}

#[tokio::test]
async fn aud_6_records_are_read_back_by_place_from_plain_compressed_and_archived_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let seen = session(dir, 0, 300).await;
    assert_eq!(*seen.opened.lock().unwrap(), vec![0]);
    let committed = seen.committed.lock().unwrap().clone();
    assert_eq!(committed.len(), 300);
    let segments: std::collections::BTreeSet<u64> = committed.iter().map(|c| c.1).collect();
    assert!(segments.len() >= 4, "several segments: {segments:?}");
    // Move the oldest compressed segment to the archive.
    let listed = list_segments(dir).unwrap();
    let oldest = listed[0].1.clone();
    assert!(oldest.to_string_lossy().ends_with(".zst"));
    std::fs::rename(
        &oldest,
        dir.join("archive").join(oldest.file_name().unwrap()),
    )
    .unwrap();
    // A reader that listed a segment before it was compressed or archived
    // still reads it, where it is now.
    let first = read_segment(&oldest).unwrap();
    assert!(first.contains("T00000"), "{first}");
    let (n2, zst2) = listed[1].clone();
    let as_listed_plain = dir.join("segments").join(segment_name(n2));
    assert!(!as_listed_plain.exists());
    assert_eq!(
        read_segment(&as_listed_plain).unwrap(),
        read_segment(&zst2).unwrap()
    );

    // Every record, asked for in any order, comes back from its place.
    let mut places: Vec<(u64, u64, u64)> = committed.iter().map(|c| (c.1, c.2, c.0)).collect();
    places.reverse();
    let got = read_records_at(dir, &places);
    for ((_, _, seq), rec) in places.iter().zip(&got) {
        let want = &committed[*seq as usize - 1].3;
        let rec: serde_json::Value = serde_json::from_str(rec.as_ref().unwrap()).unwrap();
        assert_eq!(rec["txn_id"], want.as_str(), "seq {seq}");
    }

    // A place that does not hold the expected record is reported, not guessed.
    let (s, o, _) = places[0];
    let wrong = read_records_at(dir, &[(s, o, 7), (9_999, 0, 1)]);
    assert!(
        wrong[0].as_ref().unwrap_err().contains("not 7"),
        "{wrong:?}"
    );
    assert!(
        wrong[1].as_ref().unwrap_err().contains("seg-00009999"),
        "{wrong:?}"
    );

    // Scanning from the start yields every record at the place the writer
    // reported; scanning from a place yields only what follows it.
    let mut scanned = Vec::new();
    scan_from(dir, None, 0, |c| {
        scanned.push((c.seq, c.segment, c.offset));
        true
    })
    .unwrap();
    let expected: Vec<(u64, u64, u64)> = committed.iter().map(|c| (c.0, c.1, c.2)).collect();
    assert_eq!(scanned, expected);
    let mid = &committed[149];
    let mut after = Vec::new();
    scan_from(dir, Some((mid.1, mid.2)), mid.0, |c| {
        after.push(c.seq);
        true
    })
    .unwrap();
    assert_eq!(after, (151..=300).collect::<Vec<u64>>());
}

#[tokio::test]
async fn aud_2_sink_learns_the_last_sequence_number_at_reopen_and_scan_stops_at_a_partial_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let log = AuditLog::open(cfg(dir), None, None).unwrap();
    write(&log, 0, 40).await;
    drop(log);
    settle(dir);
    // A stop right after a rotation: the writer creates the next segment
    // empty, before its first record.
    let newest = list_segments(dir).unwrap().last().unwrap().0;
    let empty = dir.join("segments").join(segment_name(newest + 1));
    std::fs::File::create(&empty).unwrap();
    // (The reopened writer compresses the segment the stop left plain, in
    // the background: `session` lets it finish before the files are read.)
    let seen = session(dir, 40, 45).await;
    assert_eq!(*seen.opened.lock().unwrap(), vec![40]);
    let c = seen.committed.lock().unwrap().clone();
    assert_eq!(c.first().map(|c| c.0), Some(41));
    // AUD-3: the chain continued across the restart: seq 1..=45, each line
    // linked to the one before.
    let mut prev = menshen_audit::chain::GENESIS.to_string();
    let mut n = 0;
    for (_, p) in list_segments(dir).unwrap() {
        for line in menshen_audit::writer::read_segment(&p).unwrap().lines() {
            let pl = menshen_audit::chain::parse_line(line).unwrap();
            n += 1;
            assert_eq!(pl.seq, n);
            assert_eq!(pl.prev, prev, "seq {n}");
            assert_eq!(pl.hash, pl.computed);
            prev = pl.hash.to_string();
        }
    }
    assert_eq!(n, 45);

    // A crash mid-write: a half-written last line, then the zeros the
    // writer preallocates. Readers stop cleanly before them.
    let active = list_segments(dir).unwrap().last().unwrap().1.clone();
    let clean_len = std::fs::metadata(&active).unwrap().len();
    use std::io::Write;
    let mut tail = b"{\"seq\":46,\"prev\":\"00".to_vec();
    tail.extend_from_slice(&[0u8; 4096]);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&active)
        .unwrap()
        .write_all(&tail)
        .unwrap();
    let mut n = 0;
    scan_from(dir, None, 0, |_| {
        n += 1;
        true
    })
    .unwrap();
    assert_eq!(n, 45);
    assert_eq!(
        menshen_audit::writer::read_all_records(dir).unwrap().len(),
        45
    );

    // The restarted writer cuts the partial line and the zeros, continues the
    // chain at 46, and leaves no zeros behind when it stops.
    let seen = Seen::default();
    let log = AuditLog::open(cfg(dir), None, Some(Box::new(seen.clone()))).unwrap();
    assert_eq!(std::fs::metadata(&active).unwrap().len(), clean_len);
    write(&log, 45, 46).await;
    drop(log);
    settle(dir);
    assert_eq!(*seen.opened.lock().unwrap(), vec![45]);
    let all = menshen_audit::writer::read_all_records(dir).unwrap();
    assert_eq!(all.len(), 46);
    assert!(all[45].contains("T00045"));
    for (_, p) in list_segments(dir).unwrap() {
        let text = menshen_audit::writer::read_segment(&p).unwrap();
        assert!(!text.contains('\0'), "{p:?}");
    }
}

/// AUD-3: only a trailing run of zeros is preallocation. A zero byte inside
/// the active segment is damage: a restart must not cut the records after it
/// (that would delete evidence), and readers leave it for the verifier.
#[tokio::test]
async fn aud_3_a_zero_byte_inside_the_active_segment_is_not_cut_at_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Few records: one segment, the active one.
    session(dir, 0, 9).await;
    let segs = list_segments(dir).unwrap();
    assert_eq!(segs.len(), 1);
    let active = segs[0].1.clone();
    let mut bytes = std::fs::read(&active).unwrap();
    let len = bytes.len();
    let third = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(2)
        .unwrap()
        .0;
    bytes[third - 5] = 0;
    std::fs::write(&active, &bytes).unwrap();

    // The restart keeps every byte (the last line is intact) and continues.
    session(dir, 9, 10).await;
    let after = std::fs::read(&active).unwrap();
    assert_eq!(
        &after[..len],
        &bytes[..],
        "records after the zero byte were cut"
    );
    assert_eq!(after.iter().filter(|b| **b == b'\n').count(), 10);
    // Readers keep the damage in view for the verifier: all ten lines, the
    // third one failing its hash.
    let text = read_segment(&active).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 10);
    let third = menshen_audit::chain::parse_line(lines[2]);
    assert!(
        third.is_none_or(|pl| pl.hash != pl.computed),
        "{}",
        lines[2]
    );
}
