//! Read back recent records at start-up. A restarted gateway seeds its replay
//! cache with the nonces of the last window (INT-4: replay protection holds
//! across restarts); A2/A3 records are durable before their response is sent,
//! so no accepted A2/A3 nonce is missing.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::AccessRecord;

fn ts_unix(ts: &str) -> Option<i64> {
    time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// Records of `path` whose timestamp is at or after `since` (unix seconds),
/// read from the end of the file backwards so a large log costs only its tail.
pub fn records_since(path: &Path, since: i64) -> std::io::Result<Vec<AccessRecord>> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    let mut tail = 1u64 << 20;
    loop {
        let start = len.saturating_sub(tail);
        f.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::with_capacity((len - start) as usize);
        f.read_to_end(&mut buf)?;
        let text = String::from_utf8_lossy(&buf);
        let mut lines: Vec<&str> = text.lines().collect();
        if start > 0 && !lines.is_empty() {
            lines.remove(0); // partial first line
        }
        let first_ts = lines
            .iter()
            .find_map(|l| serde_json::from_str::<AccessRecord>(l).ok())
            .and_then(|r| ts_unix(&r.timestamp));
        let covered = start == 0 || first_ts.is_some_and(|t| t < since);
        if covered {
            return Ok(lines
                .iter()
                .filter_map(|l| serde_json::from_str::<AccessRecord>(l).ok())
                .filter(|r| ts_unix(&r.timestamp).is_some_and(|t| t >= since))
                .collect());
        }
        tail = tail.saturating_mul(4);
    }
}
