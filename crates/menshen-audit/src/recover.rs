//! Read back recent records at start-up. A restarted gateway seeds its replay
//! cache with the nonces of the last window (INT-4: replay protection holds
//! across restarts); A2/A3 records are durable before their response is sent,
//! so no accepted A2/A3 nonce is missing.

use std::path::Path;

use crate::chain::parse_line;
use crate::verify::list_segments;
use crate::writer::read_segment;
use crate::AccessRecord;

fn ts_unix(ts: &str) -> Option<i64> {
    time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// Access records of the log in `dir` whose timestamp is at or after `since`
/// (unix seconds), reading segments from the newest back only as far as needed.
pub fn records_since(dir: &Path, since: i64) -> std::io::Result<Vec<AccessRecord>> {
    let mut out = Vec::new();
    for (_, path) in list_segments(dir)?.into_iter().rev() {
        let text = read_segment(&path)?;
        let mut older_seen = false;
        let mut recs: Vec<AccessRecord> = Vec::new();
        for line in text.lines() {
            let Some(pl) = parse_line(line) else { continue };
            let Ok(r) = serde_json::from_str::<AccessRecord>(pl.rec) else {
                continue;
            };
            match ts_unix(&r.timestamp) {
                Some(t) if t >= since => recs.push(r),
                _ => older_seen = true,
            }
        }
        recs.extend(out);
        out = recs;
        if older_seen {
            break;
        }
    }
    Ok(out)
}
