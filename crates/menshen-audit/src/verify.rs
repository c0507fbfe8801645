//! Offline verification of an audit log (AUD-3): needs only the log directory
//! (or a copy of it) and the bank's audit public key. Checks every record's
//! hash and link, sequence continuity across segments, every checkpoint's
//! signature and that it matches the chain, and that every record is sealed.
//! The first problem found is reported with its place.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use menshen_crypto::PublicKey;

use crate::chain::{parse_line, Checkpoint, GENESIS};
use crate::writer::{read_segment, segment_node, segment_number};

/// Segments of a log in order: number and path (active, compressed or
/// archived; a plain file wins over a `.zst` of the same number, which only
/// coexist for a moment during compression).
pub fn list_segments(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut found: BTreeMap<u64, PathBuf> = BTreeMap::new();
    for d in [dir.join("segments"), dir.join("archive")] {
        if !d.exists() {
            continue;
        }
        for e in std::fs::read_dir(&d)? {
            let p = e?.path();
            let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if !(name.ends_with(".jsonl") || name.ends_with(".jsonl.zst")) {
                continue;
            }
            let Some(n) = segment_number(name) else {
                continue;
            };
            let plain = name.ends_with(".jsonl");
            match found.get(&n) {
                Some(q) if q.extension().is_some_and(|x| x == "jsonl") && !plain => {}
                _ => {
                    found.insert(n, p);
                }
            }
        }
    }
    Ok(found.into_iter().collect())
}

/// The node id of a log (issue 12 item 8): the one its segment files'
/// names carry, else its last line's; `Ok(None)` for an empty log or one
/// written without node ids; an error when its segments name several nodes.
pub fn log_node(dir: &Path) -> Result<Option<String>, VerifyError> {
    let segs = list_segments(dir).map_err(|e| err(dir.display().to_string(), e.to_string()))?;
    let named =
        crate::writer::open::log_node(&segs).map_err(|p| err(dir.display().to_string(), p))?;
    if named.is_some() {
        return Ok(named);
    }
    // No segment named yet: the node id the last line carries, if any (the
    // segment active when a log written before node ids went on under one).
    for (_, p) in segs.iter().rev() {
        if !std::fs::metadata(p).is_ok_and(|m| m.is_file()) {
            continue;
        }
        let text = read_segment(p).map_err(|e| err(p.display().to_string(), e.to_string()))?;
        if let Some(last) = text.lines().last() {
            return Ok(parse_line(last).and_then(|l| l.node.map(str::to_string)));
        }
    }
    Ok(None)
}

/// What a successful verification saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The node whose chain it is (from its segment names and lines);
    /// `None` for a log written without node ids.
    pub node: Option<String>,
    /// Segments read.
    pub segments: usize,
    /// Records checked.
    pub records: u64,
    /// Checkpoints checked.
    pub checkpoints: usize,
    /// Chain head (hash of the last record).
    pub head: String,
}

/// The first problem found, with its place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{place}: {problem}")]
pub struct VerifyError {
    /// File and line or sequence number.
    pub place: String,
    /// What is wrong.
    pub problem: String,
}

fn err(place: impl Into<String>, problem: impl Into<String>) -> VerifyError {
    VerifyError {
        place: place.into(),
        problem: problem.into(),
    }
}

/// Verify the log in `dir` with the audit public key(s). `progress` is called
/// with (segments done, segments total).
pub fn verify_dir(
    dir: &Path,
    keys: &[PublicKey],
    mut progress: impl FnMut(usize, usize),
) -> Result<Report, VerifyError> {
    let cp_path = dir.join("checkpoints.jsonl");
    let cp_text = std::fs::File::open(&cp_path)
        .map_err(|e| err(cp_path.display().to_string(), format!("cannot read: {e}")))?;
    let mut cps: Vec<Checkpoint> = Vec::new();
    for (i, line) in std::io::BufReader::new(cp_text).lines().enumerate() {
        let place = format!("checkpoints.jsonl line {}", i + 1);
        let line = line.map_err(|e| err(&place, e.to_string()))?;
        let cp: Checkpoint = serde_json::from_str(&line)
            .map_err(|e| err(&place, format!("not a checkpoint: {e}")))?;
        if !keys.iter().any(|k| cp.verify(k)) {
            return Err(err(&place, format!("signature of checkpoint for seq {}..={} does not verify with the audit public key", cp.first_seq, cp.last_seq)));
        }
        let expected_first = cps.last().map(|c| c.last_seq + 1).unwrap_or(1);
        if cp.first_seq != expected_first && cp.first_seq <= cp.last_seq {
            return Err(err(&place, format!("checkpoint starts at seq {} but the previous one ended at {}: checkpoints or records were removed", cp.first_seq, expected_first - 1)));
        }
        cps.push(cp);
    }
    let by_last: BTreeMap<u64, &Checkpoint> = cps
        .iter()
        .filter(|c| c.last_seq >= c.first_seq)
        .map(|c| (c.last_seq, c))
        .collect();

    let segments = list_segments(dir).map_err(|e| err(dir.display().to_string(), e.to_string()))?;
    let names_node =
        crate::writer::open::log_node(&segments).map_err(|p| err(dir.display().to_string(), p))?;
    let mut named_seen = false;
    // The node of the chain's lines: once a line carries one, every later
    // line carries the same.
    let mut chain_node: Option<String> = None;
    let total = segments.len();
    let mut expected_seq = 1u64;
    let mut prev = GENESIS.to_string();
    for (i, (n, path)) in segments.iter().enumerate() {
        let name = path
            .file_name()
            .and_then(|s| s.to_str())
            .unwrap_or("?")
            .to_string();
        let expected_no = i as u64 + 1;
        if *n != expected_no {
            return Err(err(
                format!("segment {}", crate::writer::segment_name(expected_no)),
                "missing: segment numbers jump (or the log does not start at segment 1)",
            ));
        }
        let text = read_segment(path).map_err(|e| {
            err(
                &name,
                format!("cannot read (damaged or altered compressed data?): {e}"),
            )
        })?;
        let base = name.trim_end_matches(".zst");
        // A node's chain: every line of a named segment carries the node id
        // of its name; segments without one (written before node ids) only
        // come before the named ones, and may end in lines with a node id
        // (the segment active when the node id came).
        let seg_node = segment_node(&name);
        if seg_node.is_some() {
            named_seen = true;
        } else if named_seen {
            return Err(err(
                &name,
                "a segment without node id after segments named with one",
            ));
        }
        for (ln, line) in text.lines().enumerate() {
            let place = format!("{name} line {}", ln + 1);
            let pl = parse_line(line)
                .ok_or_else(|| err(&place, "not a chained record (altered or truncated)"))?;
            if pl.computed != pl.hash {
                return Err(err(
                    &place,
                    format!("seq {}: hash mismatch: the record was altered", pl.seq),
                ));
            }
            if seg_node.is_some() && pl.node != seg_node {
                return Err(err(
                    &place,
                    format!(
                        "seq {}: written by node {} in a segment of node {}: a record was moved between nodes' logs",
                        pl.seq,
                        pl.node.unwrap_or("(none)"),
                        seg_node.unwrap_or("(none)")
                    ),
                ));
            }
            match (&chain_node, pl.node) {
                (Some(c), Some(n)) if c != n => {
                    return Err(err(
                        &place,
                        format!("seq {}: written by node {n} in node {c}'s chain: a record was moved between nodes' logs", pl.seq),
                    ))
                }
                (Some(c), None) => {
                    return Err(err(
                        &place,
                        format!("seq {}: a line without node id in node {c}'s chain", pl.seq),
                    ))
                }
                (None, Some(n)) => chain_node = Some(n.to_string()),
                _ => {}
            }
            if pl.seq != expected_seq {
                return Err(err(
                    &place,
                    format!(
                        "seq {} where {} was expected: a record was deleted, inserted or reordered",
                        pl.seq, expected_seq
                    ),
                ));
            }
            if pl.prev != prev {
                return Err(err(&place, format!("seq {}: link to the previous record is broken (records deleted or reordered)", pl.seq)));
            }
            if let Some(cp) = by_last.get(&pl.seq) {
                if cp.head != pl.hash || cp.segment != base {
                    return Err(err(
                        &place,
                        format!("seq {}: does not match its signed checkpoint", pl.seq),
                    ));
                }
            }
            prev = pl.hash.to_string();
            expected_seq += 1;
        }
        progress(i + 1, total);
    }
    let last = expected_seq - 1;
    let sealed = cps.iter().map(|c| c.last_seq).max().unwrap_or(0);
    if sealed > last {
        return Err(err(
            format!("seq {}..={}", last + 1, sealed),
            "records sealed by a checkpoint are missing: the log was truncated",
        ));
    }
    if last > sealed {
        return Err(err(
            format!("seq {}..={}", sealed + 1, last),
            "records not covered by any signed checkpoint (appended after sealing?)",
        ));
    }
    Ok(Report {
        node: names_node.or(chain_node),
        segments: total,
        records: last,
        checkpoints: cps.len(),
        head: prev,
    })
}

/// One directory's result in [`verify_dirs`].
#[derive(Debug, Clone)]
pub struct DirReport {
    /// The directory.
    pub dir: PathBuf,
    /// Its chain's report, or the first problem found.
    pub result: Result<Report, VerifyError>,
}

/// Verify several nodes' logs (issue 12 item 8: each node keeps its own
/// chain), each independently with [`verify_dir`]. A node id claimed by two
/// directories is a failure of the later one: two copies of one chain, or
/// one node's records under two directories, cannot both be the whole
/// log of that node. `progress` gets (directory index, segments done,
/// segments total).
pub fn verify_dirs(
    dirs: &[PathBuf],
    keys: &[PublicKey],
    mut progress: impl FnMut(usize, usize, usize),
) -> Vec<DirReport> {
    let mut out: Vec<DirReport> = Vec::with_capacity(dirs.len());
    for (i, d) in dirs.iter().enumerate() {
        let mut result = verify_dir(d, keys, |done, total| progress(i, done, total));
        if let Ok(rep) = &result {
            let claimed = rep.node.as_ref().and_then(|n| {
                out.iter().find(|o| {
                    matches!(&o.result, Ok(r) if r.node.as_ref() == Some(n))
                        || log_node(&o.dir).ok().flatten().as_ref() == Some(n)
                })
            });
            if let (Some(other), Some(n)) = (claimed, &rep.node) {
                result = Err(err(
                    d.display().to_string(),
                    format!(
                        "node {n}'s chain is also in {}: two directories claim the same node id",
                        other.dir.display()
                    ),
                ));
            }
        }
        out.push(DirReport {
            dir: d.clone(),
            result,
        });
    }
    out
}
