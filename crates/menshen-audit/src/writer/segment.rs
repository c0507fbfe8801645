//! Segment files: their names, and reading them back wherever they are now
//! (active, closed and plain, compressed, archived): whole, at the places the
//! index keeps, or from a place on (the index's catch-up).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::Committed;
use crate::chain::parse_line;

/// Name of segment `n` of a log without node id (a single node's log
/// written before node ids, or one opened without a node id).
pub fn segment_name(n: u64) -> String {
    format!("seg-{n:08}.jsonl")
}

/// Name of segment `n` of node `node`'s log (issue 12 item 8):
/// `seg-0a1b2c3d-00000001.jsonl`; without a node, [`segment_name`].
pub fn node_segment_name(node: Option<&str>, n: u64) -> String {
    match node {
        Some(id) => format!("seg-{id}-{n:08}.jsonl"),
        None => segment_name(n),
    }
}

/// The name's stem: `00000001` or `0a1b2c3d-00000001`.
fn stem(name: &str) -> Option<&str> {
    name.strip_prefix("seg-")?.split('.').next()
}

/// Number of a segment file name (`seg-00000001.jsonl[.zst]` or
/// `seg-0a1b2c3d-00000001.jsonl[.zst]`).
pub fn segment_number(name: &str) -> Option<u64> {
    let s = stem(name)?;
    s.rsplit('-').next()?.parse().ok()
}

/// The node id in a segment file name; `None` for a name without one.
pub fn segment_node(name: &str) -> Option<&str> {
    let s = stem(name)?;
    let (node, n) = s.rsplit_once('-')?;
    (!node.is_empty() && n.parse::<u64>().is_ok()).then_some(node)
}

/// Read all lines of a segment, plain or zstd-compressed.
pub fn read_segment(path: &Path) -> std::io::Result<String> {
    match read_segment_at(path) {
        // Listed plain, compressed since (a running writer compresses each
        // segment it closes; `menshen audit archive` moves compressed ones):
        // read it where it is now.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let moved = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(segment_number)
                .zip(path.parent().and_then(Path::parent))
                .and_then(|(n, dir)| locate_segment(dir, n));
            match moved {
                Some(p) if p != path => read_segment_at(&p),
                _ => Err(e),
            }
        }
        r => r,
    }
}

fn read_segment_at(path: &Path) -> std::io::Result<String> {
    if !std::fs::metadata(path)?.is_file() {
        // A device or FIFO posing as a segment may never end: refuse it.
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} is not a regular file", path.display()),
        ));
    }
    let mut out = String::new();
    if path.extension().is_some_and(|e| e == "zst") {
        zstd::stream::read::Decoder::new(File::open(path)?)?.read_to_string(&mut out)?;
    } else {
        File::open(path)?.read_to_string(&mut out)?;
        // The active segment of a running (or crashed) writer ends in
        // preallocated zeros: its text stops where they start. A zero byte
        // followed by anything else is left in place, for the reader (the
        // verifier) to report as damage.
        if let Some(z) = out.find('\0') {
            if out.as_bytes()[z..].iter().all(|&b| b == 0) {
                out.truncate(z);
            }
        }
    }
    Ok(out)
}

/// All records of the log in order, from every segment (active, compressed,
/// archived), as JSON strings. For tests and small logs.
pub fn read_all_records(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    for (_, p) in crate::verify::list_segments(dir)? {
        for line in read_segment(&p)?.lines() {
            if let Some(pl) = parse_line(line) {
                out.push(pl.rec.to_string());
            }
        }
    }
    Ok(out)
}

/// Where segment `n` of the log in `dir` is now: active or closed and plain,
/// compressed, or archived. Plain first: a segment being compressed keeps its
/// plain file until the compressed one is complete (renamed into place).
/// A segment named with a node id is found by its number among the files.
fn locate_segment(dir: &Path, n: u64) -> Option<PathBuf> {
    let is_file = |p: &PathBuf| std::fs::metadata(p).is_ok_and(|m| m.is_file());
    let name = segment_name(n);
    let legacy = [
        dir.join("segments").join(&name),
        dir.join("segments").join(format!("{name}.zst")),
        dir.join("archive").join(format!("{name}.zst")),
        dir.join("archive").join(&name),
    ]
    .into_iter()
    .find(is_file);
    if legacy.is_some() {
        return legacy;
    }
    // Named: the same order of places (plain in segments/ first).
    let mut found: Vec<(u8, PathBuf)> = Vec::new();
    for (d, rank_plain, rank_zst) in [("segments", 0u8, 1u8), ("archive", 3, 2)] {
        let Ok(rd) = std::fs::read_dir(dir.join(d)) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Some(f) = p.file_name().and_then(|f| f.to_str()) else {
                continue;
            };
            if segment_node(f).is_some() && segment_number(f) == Some(n) {
                let rank = if f.ends_with(".zst") {
                    rank_zst
                } else {
                    rank_plain
                };
                found.push((rank, p));
            }
        }
    }
    found.sort();
    found.into_iter().map(|(_, p)| p).find(is_file)
}

/// The plain text of segment `n` wherever it is now, as a reader from its start.
fn open_segment(dir: &Path, n: u64) -> std::io::Result<Box<dyn Read>> {
    let Some(p) = locate_segment(dir, n) else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!(
                "segment {} is in neither segments/ nor archive/",
                segment_name(n)
            ),
        ));
    };
    let f = File::open(&p)?;
    Ok(if p.extension().is_some_and(|e| e == "zst") {
        Box::new(zstd::stream::read::Decoder::new(f)?)
    } else {
        Box::new(f)
    })
}

/// Longest line [`read_records_at`] and [`scan_from`] accept (a record with
/// retained bodies stays far below).
const MAX_LINE: u64 = 16 << 20;

/// Skip `n` bytes of `r`.
fn skip(r: &mut impl Read, n: u64) -> std::io::Result<()> {
    let got = std::io::copy(&mut r.take(n), &mut std::io::sink())?;
    if got < n {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "offset beyond the end of the segment",
        ));
    }
    Ok(())
}

/// Read one line (without the newline); `None` at the end or on a partial
/// last line (a write in progress).
fn next_line(r: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<Option<()>> {
    buf.clear();
    r.by_ref().take(MAX_LINE).read_until(b'\n', buf)?;
    if buf.last() != Some(&b'\n') {
        return Ok(None);
    }
    buf.pop();
    Ok(Some(()))
}

/// The records at `(segment, offset, seq)` places (from the index), read
/// from the files of the log in `dir`: each answer is the record JSON, or why
/// it could not be read (a missing segment, or a line whose sequence number
/// is not the expected one). One pass per segment.
pub fn read_records_at(dir: &Path, places: &[(u64, u64, u64)]) -> Vec<Result<String, String>> {
    let mut out: Vec<Result<String, String>> = vec![Err("not read".into()); places.len()];
    let mut order: Vec<usize> = (0..places.len()).collect();
    order.sort_by_key(|&i| (places[i].0, places[i].1));
    let mut i = 0;
    while i < order.len() {
        let seg = places[order[i]].0;
        let mut j = i;
        while j < order.len() && places[order[j]].0 == seg {
            j += 1;
        }
        match open_segment(dir, seg) {
            Err(e) => {
                for &k in &order[i..j] {
                    out[k] = Err(e.to_string());
                }
            }
            Ok(r) => {
                let mut r = BufReader::new(r);
                let (mut pos, mut line) = (0u64, Vec::new());
                for &k in &order[i..j] {
                    let (_, off, seq) = places[k];
                    let got = (|| -> std::io::Result<Result<String, String>> {
                        if off < pos {
                            return Ok(Err("offset out of order".into()));
                        }
                        skip(&mut r, off - pos)?;
                        pos = off;
                        if next_line(&mut r, &mut line)?.is_none() {
                            return Ok(Err("no complete line at the offset".into()));
                        }
                        pos += line.len() as u64 + 1;
                        let text = String::from_utf8_lossy(&line);
                        Ok(match parse_line(&text) {
                            Some(pl) if pl.seq == seq => Ok(pl.rec.to_string()),
                            Some(pl) => Err(format!("found record {} there, not {seq}", pl.seq)),
                            None => Err("not a chained record line".into()),
                        })
                    })();
                    out[k] = got.unwrap_or_else(|e| Err(e.to_string()));
                }
            }
        }
        i = j;
    }
    out
}

/// Every record after sequence number `after`, in order, read from the files
/// of the log in `dir`, starting at `start` (segment number and byte offset of
/// a line at or before the first wanted one; `None`: the oldest segment).
/// Stops at the first partial or unreadable line and when `f` returns false.
/// The index catches up with it after a crash.
pub fn scan_from(
    dir: &Path,
    start: Option<(u64, u64)>,
    after: u64,
    mut f: impl FnMut(Committed) -> bool,
) -> std::io::Result<()> {
    let (seg0, off0) = start.unwrap_or((0, 0));
    for (n, _) in crate::verify::list_segments(dir)? {
        if n < seg0 {
            continue;
        }
        let mut r = BufReader::new(open_segment(dir, n)?);
        let mut pos = 0u64;
        if n == seg0 && off0 > 0 {
            skip(&mut r, off0)?;
            pos = off0;
        }
        let mut line = Vec::new();
        while next_line(&mut r, &mut line)?.is_some() {
            let offset = pos;
            pos += line.len() as u64 + 1;
            let Ok(text) = std::str::from_utf8(&line) else {
                return Ok(());
            };
            let Some(pl) = parse_line(text) else {
                return Ok(());
            };
            if pl.seq <= after {
                continue;
            }
            let c = Committed {
                seq: pl.seq,
                segment: n,
                offset,
                rec: pl.rec.as_bytes().to_vec(),
                keys: None,
            };
            if !f(c) {
                return Ok(());
            }
        }
    }
    Ok(())
}
