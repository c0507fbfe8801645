//! The log's files and directories (AUD-3, CONF-4): the writer creates its
//! directories 0700 and its files 0600, the mode given at creation (the
//! umask can only narrow it). Files and directories that exist already keep
//! their mode.

use std::fs::{DirBuilder, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// Mode of the directories the writer creates: the log directory (and its
/// missing parents), `segments/`, `archive/`.
const DIR_MODE: u32 = 0o700;

/// Mode of the files the writer creates: segments (active and compressed),
/// `checkpoints.jsonl`.
const FILE_MODE: u32 = 0o600;

/// Create `dir` and its missing parents, each 0700.
pub(super) fn create_private_dir_all(dir: &Path) -> std::io::Result<()> {
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
}

/// Options that create a missing file 0600; the caller adds the access.
pub(super) fn private_file() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.mode(FILE_MODE);
    o
}

pub(super) fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}
