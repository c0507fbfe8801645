//! Compression of closed segments (zstd), off the writer thread.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use super::files::{private_file, sync_dir};

/// zstd level for closed segments. On these JSON lines level 1 is both the
/// fastest and (slightly) the smallest: a 64 MiB segment of A1 records took
/// 0.11 s of CPU at level 1 against 0.17 s at level 3 and came out at 7.2 MB
/// against 7.8 MB (2026-11-30); the compressor runs on the gateway's own
/// cores, so this is per-call CPU (level 9 had cost ~6% of a loaded node).
const COMPRESS_LEVEL: i32 = 1;

/// [`compress_segment`] on a thread of its own (a failure keeps the plain
/// segment and is logged).
pub(super) fn compress_in_background(path: PathBuf) {
    std::thread::spawn(move || {
        if let Err(e) = compress_segment(&path) {
            tracing::error!(file = %path.display(), error = %e, "audit segment compression failed; the plain segment is kept");
        }
    });
}

/// Compress a closed segment to `<name>.zst` (created 0600, synced) and remove
/// the plain file.
pub fn compress_segment(path: &Path) -> std::io::Result<PathBuf> {
    let mut zpath = path.as_os_str().to_owned();
    zpath.push(".zst");
    let zpath = PathBuf::from(zpath);
    let mut tmp = zpath.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let input = File::open(path)?;
        // Created afresh, 0600 (AUD-3): a `.tmp` left by a crash during an
        // earlier compression may have another mode, and a rename keeps it.
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let out = private_file().write(true).create_new(true).open(&tmp)?;
        let mut enc = zstd::stream::write::Encoder::new(out, COMPRESS_LEVEL)?;
        std::io::copy(&mut BufReader::new(input), &mut enc)?;
        let out = enc.finish()?;
        out.sync_all()?;
    }
    std::fs::rename(&tmp, &zpath)?;
    if let Some(d) = zpath.parent() {
        sync_dir(d);
    }
    std::fs::remove_file(path)?;
    Ok(zpath)
}
