//! The writer's state: the active segment and the chain's head; appending
//! a batch, syncing, sealing with a checkpoint, writing zeros ahead, trimming
//! them and rotating. Only the writer thread holds it.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::compress::compress_in_background;
use super::files::{private_file, sync_dir};
use super::{io, node_segment_name, AuditConfig, AuditError, AuditSigner, Committed};
use crate::chain::{make_node_line_into, Checkpoint};

/// The state of the log, owned by the writer thread.
pub(super) struct State {
    pub(super) seg_dir: PathBuf,
    pub(super) seg_no: u64,
    pub(super) seg_file: File,
    pub(super) seg_path: PathBuf,
    pub(super) seg_size: u64,
    /// Length of the file: records up to `seg_size`, zeros after.
    pub(super) seg_alloc: u64,
    pub(super) seg_opened: Instant,
    pub(super) seq: u64,
    pub(super) prev: String,
    pub(super) cp_file: File,
    pub(super) cp_path: PathBuf,
    /// Checkpoint lines written since the file was last synced. The sealing
    /// clock thread syncs the file every
    /// [`CP_SYNC_EVERY`](super::CP_SYNC_EVERY) (its own handle), off the
    /// writer's path: records are synced before every acknowledgment; a
    /// crash can lose only seals, and start-up re-seals what it finds.
    pub(super) cp_dirty: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// First record not yet covered by a checkpoint.
    pub(super) unsealed_from: Option<u64>,
    /// Whether the segment has writes not yet synced.
    pub(super) dirty: bool,
    /// How long each `fdatasync` of the segment took (MON-1).
    pub(super) sync_latency: std::sync::Arc<menshen_metrics::AtomicHist>,
    /// Whether the next batch is synced before anyone is answered (it has
    /// durable waiters): only then are zeros written ahead, which makes that
    /// sync cheaper; a batch synced only by the seal appends plainly.
    pub(super) prealloc_next: bool,
    /// When the last checkpoint was sealed.
    pub(super) last_seal: Instant,
    pub(super) signer: Option<AuditSigner>,
    /// The node id in every line and new segment name (issue 12 item 8).
    pub(super) node: Option<String>,
    pub(super) cfg: AuditConfig,
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The active segment grows in steps of this many zero bytes written ahead
/// of the records. An append that extends a file makes `fdatasync` write the
/// inode (the new size) after the data: two dependent writes. Into
/// preallocated zeros it writes the data only. Measured on this machine's
/// ext4 under load (2026-11-30): fdatasync p50 93-112 us against 142-149 us,
/// p90 133-173 against 247-270, p99 0.5-0.8 ms against 0.9-1.0 ms. The zeros
/// are cut off when the segment closes; readers ignore a trailing run of
/// zeros (a record line never holds a zero byte: JSON escapes control
/// characters), and report any other zero byte as damage.
pub const PREALLOC: u64 = 1 << 20;

static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// Open (or create, 0600) an active segment for positioned writes.
pub(super) fn open_active(path: &Path) -> Result<File, AuditError> {
    private_file()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(io(path))
}

impl State {
    pub(super) fn checkpoint(
        &mut self,
        segment: String,
        first_seq: u64,
    ) -> Result<Checkpoint, AuditError> {
        let mut cp = Checkpoint {
            segment,
            first_seq,
            last_seq: self.seq,
            head: self.prev.clone(),
            time: now_rfc3339(),
            key_id: self
                .signer
                .as_ref()
                .map(|s| s.key_id.clone())
                .unwrap_or_default(),
            alg: String::new(),
            sig: String::new(),
        };
        if let Some(s) = &self.signer {
            cp.sign(&s.key);
        }
        let mut line = serde_json::to_vec(&cp).unwrap_or_default();
        line.push(b'\n');
        let p = self.cp_path.clone();
        self.cp_file.write_all(&line).map_err(io(&p))?;
        self.cp_dirty
            .store(true, std::sync::atomic::Ordering::Release);
        Ok(cp)
    }

    /// Seal the unsealed records, if any, with a signed checkpoint.
    pub(super) fn seal(&mut self) -> Result<Option<Checkpoint>, AuditError> {
        let Some(first) = self.unsealed_from else {
            return Ok(None);
        };
        // Never seal records that are not on disk.
        self.sync()?;
        // The active file's own name (one written before node ids keeps
        // its name until it rotates).
        let name = self
            .seg_path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let cp = self.checkpoint(name, first)?;
        self.unsealed_from = None;
        self.last_seal = Instant::now();
        Ok(Some(cp))
    }

    /// Sync the segment if it has unsynced writes.
    pub(super) fn sync(&mut self) -> Result<(), AuditError> {
        if self.dirty {
            let p = self.seg_path.clone();
            let t = Instant::now();
            self.seg_file.sync_data().map_err(io(&p))?;
            self.sync_latency
                .observe(t.elapsed().as_micros().try_into().unwrap_or(u64::MAX));
            self.dirty = false;
        }
        Ok(())
    }

    /// Append a batch. Syncing and sealing are separate: the writer syncs
    /// before answering a waiter (A2/A3, flush) and seals within
    /// [`SEAL_DURABLE`](super::SEAL_DURABLE) /
    /// [`SEAL_EVERY`](super::SEAL_EVERY) (see the writer loop).
    pub(super) fn commit(
        &mut self,
        recs: Vec<(Vec<u8>, Option<Box<crate::RecordKeys>>)>,
    ) -> Result<Vec<Committed>, AuditError> {
        let first = self.seq + 1;
        let mut buf = Vec::with_capacity(recs.iter().map(|r| r.0.len() + 160).sum());
        let mut committed = Vec::with_capacity(recs.len());
        let (seq0, prev0) = (self.seq, self.prev.clone());
        for (rec, keys) in recs {
            self.seq += 1;
            let offset = self.seg_size + buf.len() as u64;
            self.prev =
                make_node_line_into(&mut buf, self.seq, self.node.as_deref(), &self.prev, &rec);
            committed.push(Committed {
                seq: self.seq,
                segment: self.seg_no,
                offset,
                rec,
                keys: keys.map(|k| *k),
            });
        }
        let p = self.seg_path.clone();
        let grow = if self.prealloc_next {
            self.preallocate(buf.len() as u64)
        } else {
            Ok(())
        };
        if let Err(e) = grow.and_then(|_| {
            use std::os::unix::fs::FileExt;
            self.seg_file.write_all_at(&buf, self.seg_size)
        }) {
            // Undo the in-memory chain; cut any partial write so the file
            // stays a valid chain for the next attempt.
            self.seq = seq0;
            self.prev = prev0;
            let _ = self.seg_file.set_len(self.seg_size);
            self.seg_alloc = self.seg_size;
            return Err(io(&p)(e));
        }
        self.seg_size += buf.len() as u64;
        // A plain append past the zeros written ahead grows the file.
        self.seg_alloc = self.seg_alloc.max(self.seg_size);
        self.dirty = true;
        self.unsealed_from.get_or_insert(first);
        Ok(committed)
    }

    /// Make room for `len` more bytes of records: zeros written ahead in
    /// steps of [`PREALLOC`] (flushed by the next sync, once per step).
    pub(super) fn preallocate(&mut self, len: u64) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        if self.seg_size + len <= self.seg_alloc {
            return Ok(());
        }
        let target = self.seg_size + len + PREALLOC;
        while self.seg_alloc < target {
            let n = (target - self.seg_alloc).min(ZEROS.len() as u64) as usize;
            self.seg_file.write_all_at(&ZEROS[..n], self.seg_alloc)?;
            self.seg_alloc += n as u64;
        }
        Ok(())
    }

    /// Cut the preallocated zeros off the active segment (before it closes).
    pub(super) fn trim(&mut self) -> Result<(), AuditError> {
        if self.seg_alloc > self.seg_size {
            let p = self.seg_path.clone();
            self.seg_file.set_len(self.seg_size).map_err(io(&p))?;
            self.seg_alloc = self.seg_size;
            self.dirty = true;
        }
        Ok(())
    }

    pub(super) fn maybe_rotate(&mut self) -> Result<(), AuditError> {
        if self.seg_size < self.cfg.segment_max_bytes
            && self.seg_opened.elapsed() < self.cfg.segment_max_age
        {
            return Ok(());
        }
        if self.seg_size == 0 {
            self.seg_opened = Instant::now();
            return Ok(());
        }
        // Every segment ends sealed, with no zeros after its last line.
        self.trim()?;
        self.seal()?;
        self.sync()?;
        let closed = self.seg_path.clone();
        self.seg_no += 1;
        self.seg_path = self
            .seg_dir
            .join(node_segment_name(self.node.as_deref(), self.seg_no));
        self.seg_file = open_active(&self.seg_path)?;
        self.seg_size = 0;
        self.seg_alloc = 0;
        self.seg_opened = Instant::now();
        sync_dir(&self.seg_dir);
        tracing::info!(closed = %closed.display(), "audit segment rotated");
        if self.cfg.compress {
            compress_in_background(closed);
        }
        Ok(())
    }
}
