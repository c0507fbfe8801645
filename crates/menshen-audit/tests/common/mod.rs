//! Helpers shared by the audit log's integration tests.

use std::path::Path;
use std::time::Duration;

use menshen_audit::verify::list_segments;

/// Wait (bounded: 10 s) until every segment but the active one is
/// compressed and no compression is half done; with `stopped`, also until the
/// writer has cut the zeros preallocated after the active segment's last
/// line (it does when it stops).
pub fn settle(dir: &Path, stopped: bool) {
    for _ in 0..500 {
        let segs = list_segments(dir).unwrap();
        let plain = segs
            .iter()
            .filter(|(_, p)| p.extension().is_some_and(|e| e == "jsonl"))
            .count();
        let tmp = std::fs::read_dir(dir.join("segments"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .to_string_lossy()
                    .ends_with(".tmp")
            })
            .count();
        let zeros = stopped
            && segs
                .last()
                .is_some_and(|(_, p)| std::fs::read(p).unwrap().ends_with(&[0]));
        if plain == 1 && tmp == 0 && !zeros {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("segments were not compressed");
}
