//! The log's files and directories.

use std::fs::File;
use std::path::Path;

pub(super) fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}
