//! Opening the log: where the chain ends (the last record of the newest
//! segment that holds one), a crash's partial last line cut off, closed
//! segments left plain compressed, and records left unsealed by a crash
//! sealed.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::time::Instant;

use super::compress::compress_in_background;
use super::files::{create_private_dir_all, private_file, sync_dir};
use super::state::{open_active, State};
use super::{
    io, node_segment_name, read_segment, segment_node, AuditConfig, AuditError, AuditSigner,
};
use crate::chain::{parse_line, Checkpoint, GENESIS};

/// Truncate a file to its last complete line: a crash can leave a partial,
/// never-acknowledged line, and the active segment's preallocated zeros
/// (see [`PREALLOC`](super::PREALLOC)). Returns the complete text.
fn repair_tail(path: &Path) -> Result<String, AuditError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(io(path))?;
    // Only the trailing run of zeros is preallocation; a zero byte with
    // data after it is damage, left for the verifier to report (cutting
    // there would delete the records after it).
    let data_end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let keep = bytes[..data_end]
        .iter()
        .rposition(|&b| b == b'\n')
        .map(|i| i + 1)
        .unwrap_or(0);
    if keep < bytes.len() {
        if keep < data_end {
            tracing::warn!(file = %path.display(), dropped = data_end - keep, "audit: dropping a partial last line left by a crash (never acknowledged)");
        }
        OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| f.set_len(keep as u64).and_then(|_| f.sync_all()))
            .map_err(io(path))?;
        bytes.truncate(keep);
    }
    String::from_utf8(bytes).map_err(|_| AuditError::Damaged {
        path: path.display().to_string(),
        reason: "not UTF-8 text".into(),
    })
}

impl State {
    pub(super) fn open(
        cfg: AuditConfig,
        signer: Option<AuditSigner>,
    ) -> Result<(State, Option<Checkpoint>), AuditError> {
        let dir = cfg.dir.clone();
        let seg_dir = dir.join("segments");
        // Created 0700, the files in them 0600 (AUD-3, CONF-4).
        create_private_dir_all(&seg_dir).map_err(io(&seg_dir))?;
        create_private_dir_all(&dir.join("archive")).map_err(io(&dir))?;
        // Segments, plain or compressed, here or archived; the newest last.
        let segs = crate::verify::list_segments(&dir).map_err(io(&dir))?;
        let newest = segs.last().cloned();
        let names_node = log_node(&segs).map_err(|reason| AuditError::Damaged {
            path: dir.display().to_string(),
            reason,
        })?;
        if let Some(n) = &cfg.node_id {
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return Err(AuditError::Damaged {
                    path: dir.display().to_string(),
                    reason: format!("node id `{n}` is not letters, digits and dashes"),
                });
            }
        }
        // The last record: in the newest segment that holds one. A rotation
        // creates the next segment empty, so a stop right after it leaves an
        // empty newest segment; the chain then continues from the one before.
        let (mut seq, mut prev) = (0u64, GENESIS.to_string());
        let mut last_segment = String::new();
        let mut last_node: Option<String> = None;
        for (i, (_, p)) in segs.iter().enumerate().rev() {
            let regular = std::fs::metadata(p).map(|m| m.is_file()).unwrap_or(false);
            let text = if !regular {
                // Never read a device or FIFO as a segment (it may not end).
                tracing::error!(file = %p.display(), "audit segment is not a regular file");
                String::new()
            } else if p.extension().is_some_and(|e| e == "zst") {
                read_segment(p).map_err(io(p))?
            } else if i + 1 == segs.len() {
                // Only the newest segment can hold a partial line (a crash).
                repair_tail(p)?
            } else {
                read_segment(p).map_err(io(p))?
            };
            if let Some(last) = text.lines().last() {
                let pl = parse_line(last).ok_or_else(|| AuditError::Damaged {
                    path: p.display().to_string(),
                    reason: "last line is not a chained record".into(),
                })?;
                seq = pl.seq;
                prev = pl.hash.to_string();
                last_node = pl.node.map(str::to_string);
                last_segment = p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("")
                    .trim_end_matches(".zst")
                    .to_string();
                break;
            }
        }
        // Whose chain this is (issue 12 item 8): the node id its segment
        // names carry, else its last line (a log written before node ids
        // whose active segment went on under one keeps its name until it
        // rotates). One node's directory only; a log without node ids is
        // continued by whichever node opens it.
        let node = match (&cfg.node_id, names_node.or(last_node)) {
            (Some(c), Some(f)) if *c != f => {
                return Err(AuditError::OtherNode {
                    path: dir.display().to_string(),
                    found: f,
                    configured: c.clone(),
                })
            }
            (Some(c), _) => Some(c.clone()),
            (None, f) => f,
        };
        // The newest segment, if plain and here, stays active under its
        // own name (also one without node id: lines from now on carry it,
        // and the next segment is named with it).
        let (seg_no, reopen) = match &newest {
            None => (1, None),
            Some((n, p)) => {
                let plain = p.extension().is_some_and(|e| e == "jsonl")
                    && p.parent() == Some(seg_dir.as_path());
                if plain {
                    (*n, Some(p.clone()))
                } else {
                    (*n + 1, None)
                }
            }
        };
        // Closed segments left plain (a stop between a rotation and the end
        // of its compression, or before the first record of the next
        // segment): compress them now, in the background.
        if cfg.compress {
            for (n, p) in &segs {
                if *n < seg_no
                    && p.extension().is_some_and(|e| e == "jsonl")
                    && p.parent() == Some(seg_dir.as_path())
                {
                    compress_in_background(p.clone());
                }
            }
        }
        let seg_path = reopen
            .clone()
            .unwrap_or_else(|| seg_dir.join(node_segment_name(node.as_deref(), seg_no)));
        let seg_file = open_active(&seg_path)?;
        // After repair_tail the file holds complete lines only (no zeros).
        let seg_size = seg_file.metadata().map_err(io(&seg_path))?.len();
        if reopen.is_none() {
            sync_dir(&seg_dir);
        }
        let cp_path = dir.join("checkpoints.jsonl");
        if cp_path.exists() {
            repair_tail(&cp_path)?;
        }
        let last_cp = if cp_path.exists() {
            let f = File::open(&cp_path).map_err(io(&cp_path))?;
            BufReader::new(f)
                .lines()
                .map_while(Result::ok)
                .last()
                .and_then(|l| serde_json::from_str::<Checkpoint>(&l).ok())
        } else {
            None
        };
        let cp_file = private_file()
            .create(true)
            .append(true)
            .open(&cp_path)
            .map_err(io(&cp_path))?;
        let mut st = State {
            seg_dir,
            seg_no,
            seg_file,
            seg_path,
            seg_size,
            seg_alloc: seg_size,
            prealloc_next: false,
            seg_opened: Instant::now(),
            seq,
            prev,
            cp_file,
            cp_path,
            cp_dirty: Default::default(),
            unsealed_from: None,
            dirty: false,
            sync_latency: Default::default(),
            last_seal: Instant::now(),
            signer,
            node,
            cfg,
        };
        // Records written but not sealed before a crash: seal them now.
        let sealed_to = last_cp.as_ref().map(|c| c.last_seq).unwrap_or(0);
        let mut recovery = None;
        if st.seq > sealed_to && st.signer.is_some() {
            let cp = st.checkpoint(last_segment, sealed_to + 1)?;
            tracing::warn!(
                first = cp.first_seq,
                last = cp.last_seq,
                "audit: sealed records left unsealed by a crash"
            );
            recovery = Some(cp);
        }
        Ok((st, recovery))
    }
}

/// The node id of a log's segments (their names), `None` when none carries
/// one; an error when they name several nodes.
pub(crate) fn log_node(segs: &[(u64, std::path::PathBuf)]) -> Result<Option<String>, String> {
    let mut node: Option<&str> = None;
    for (_, p) in segs {
        let Some(n) = p
            .file_name()
            .and_then(|f| f.to_str())
            .and_then(segment_node)
        else {
            continue;
        };
        match node {
            Some(m) if m != n => {
                return Err(format!(
                    "segments of two nodes ({m} and {n}) in one directory"
                ))
            }
            _ => node = Some(n),
        }
    }
    Ok(node.map(str::to_string))
}
