//! The audit writer (AUD-2, AUD-3, DEP-2): a bounded queue (back-pressure,
//! never unbounded memory) drained by one thread that appends chained lines to
//! the active segment. Before it answers a durable record's caller (an A2/A3
//! call) it `fdatasync`s the segment (group commit: RPO 0); those records are
//! sealed by a signed checkpoint within [`SEAL_DURABLE`], asynchronous ones
//! within [`SEAL_EVERY`], and a flush seals everything before it returns.
//! Segments rotate by size or age (sealed first);
//! closed segments are compressed (zstd). A failing disk fails every waiting
//! caller (fail closed) and is logged loudly.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use menshen_crypto::PrivateKey;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::chain::{make_line_into, parse_line, Checkpoint, GENESIS};

/// Errors of the audit writer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// A file could not be opened or written.
    #[error("audit log I/O error on {path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The log on disk is not in the expected format.
    #[error("audit log {path} is damaged: {reason}")]
    Damaged {
        /// File.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The writer has stopped, or the record could not be made durable.
    #[error("audit writer is not running or the disk failed")]
    Closed,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Settings of the writer.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// Directory of the log (`segments/`, `checkpoints.jsonl`, `archive/`).
    pub dir: PathBuf,
    /// Records queued before callers wait.
    pub queue: usize,
    /// Rotate the active segment at this size.
    pub segment_max_bytes: u64,
    /// Rotate the active segment at this age.
    pub segment_max_age: Duration,
    /// Compress closed segments with zstd.
    pub compress: bool,
}

impl AuditConfig {
    /// Defaults for `dir`.
    pub fn new(dir: PathBuf) -> Self {
        AuditConfig {
            dir,
            queue: 65_536,
            segment_max_bytes: 64 << 20,
            segment_max_age: Duration::from_secs(86_400),
            compress: true,
        }
    }
}

/// The key that signs checkpoints.
pub struct AuditSigner {
    /// Key id recorded in checkpoints.
    pub key_id: String,
    /// The SM2 audit key.
    pub key: PrivateKey,
}

/// A record as committed, for the database index.
#[derive(Debug, Clone)]
pub struct Committed {
    /// Sequence number.
    pub seq: u64,
    /// Number of the segment holding it ([`segment_name`]).
    pub segment: u64,
    /// Byte offset of its line in the segment's (uncompressed) text: with
    /// the segment number, where [`read_records_at`] finds it again.
    pub offset: u64,
    /// The record JSON.
    pub rec: Vec<u8>,
    /// Its index keys, when the caller gave them (else parse `rec`).
    pub keys: Option<crate::RecordKeys>,
}

/// Receives every committed batch and its checkpoint (the database index).
pub trait BatchSink: Send + 'static {
    /// Called once on the writer thread before any batch, with the sequence
    /// number of the last record already in the log when it was opened: a
    /// sink that may have missed some (a crash between the log's fsync and
    /// the index's commit) catches up from the files to there.
    fn opened(&mut self, _last_seq: u64) {}
    /// Called on the writer thread after the batch is durable; must not block long.
    fn committed(&mut self, records: Vec<Committed>, checkpoint: Option<&Checkpoint>);
}

enum Msg {
    /// Seal what is unsealed if the last seal is old enough.
    Tick,
    /// A record, its index keys if known (boxed: keeps the queue's slots
    /// small), and who waits for it to be durable.
    Record(
        Vec<u8>,
        Option<Box<crate::RecordKeys>>,
        Option<oneshot::Sender<bool>>,
    ),
    Flush(oneshot::Sender<bool>),
}

/// Handle to the audit writer; cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Msg>,
    dir: PathBuf,
    /// Whether the last write (and seal) succeeded.
    healthy: Arc<std::sync::atomic::AtomicBool>,
}

/// Name of segment `n`.
pub fn segment_name(n: u64) -> String {
    format!("seg-{n:08}.jsonl")
}

/// Number of a segment file name (`seg-00000001.jsonl[.zst]`).
pub fn segment_number(name: &str) -> Option<u64> {
    name.strip_prefix("seg-")?.split('.').next()?.parse().ok()
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

struct State {
    seg_dir: PathBuf,
    seg_no: u64,
    seg_file: File,
    seg_path: PathBuf,
    seg_size: u64,
    /// Length of the file: records up to `seg_size`, zeros after.
    seg_alloc: u64,
    seg_opened: Instant,
    seq: u64,
    prev: String,
    cp_file: File,
    cp_path: PathBuf,
    /// Checkpoint lines written since the file was last synced. The sealing
    /// clock thread syncs the file every [`CP_SYNC_EVERY`] (its own handle),
    /// off the writer's path: records are synced before every acknowledgment;
    /// a crash can lose only seals, and start-up re-seals what it finds.
    cp_dirty: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// First record not yet covered by a checkpoint.
    unsealed_from: Option<u64>,
    /// Whether the segment has writes not yet synced.
    dirty: bool,
    /// Whether the next batch is synced before anyone is answered (it has
    /// durable waiters): only then are zeros written ahead, which makes that
    /// sync cheaper; a batch synced only by the seal appends plainly.
    prealloc_next: bool,
    /// When the last checkpoint was sealed.
    last_seal: Instant,
    signer: Option<AuditSigner>,
    cfg: AuditConfig,
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Truncate a file to its last complete line: a crash can leave a partial,
/// never-acknowledged line, and the active segment's preallocated zeros
/// (see [`PREALLOC`]). Returns the complete text.
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

/// Open (or create) an active segment for positioned writes.
fn open_active(path: &Path) -> Result<File, AuditError> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(io(path))
}

impl State {
    fn open(
        cfg: AuditConfig,
        signer: Option<AuditSigner>,
    ) -> Result<(State, Option<Checkpoint>), AuditError> {
        let dir = cfg.dir.clone();
        let seg_dir = dir.join("segments");
        std::fs::create_dir_all(&seg_dir).map_err(io(&seg_dir))?;
        std::fs::create_dir_all(dir.join("archive")).map_err(io(&dir))?;
        // Segments, plain or compressed, here or archived; the newest last.
        let segs = crate::verify::list_segments(&dir).map_err(io(&dir))?;
        let newest = segs.last().cloned();
        // The last record: in the newest segment that holds one. A rotation
        // creates the next segment empty, so a stop right after it leaves an
        // empty newest segment; the chain then continues from the one before.
        let (mut seq, mut prev) = (0u64, GENESIS.to_string());
        let mut last_segment = String::new();
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
                last_segment = p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("")
                    .trim_end_matches(".zst")
                    .to_string();
                break;
            }
        }
        let (seg_no, reopen) = match &newest {
            None => (1, false),
            Some((n, p)) => {
                let plain = p.extension().is_some_and(|e| e == "jsonl")
                    && p.parent() == Some(seg_dir.as_path());
                if plain {
                    (*n, true)
                } else {
                    (*n + 1, false)
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
        let seg_path = seg_dir.join(segment_name(seg_no));
        let seg_file = open_active(&seg_path)?;
        // After repair_tail the file holds complete lines only (no zeros).
        let seg_size = seg_file.metadata().map_err(io(&seg_path))?.len();
        if !reopen {
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
        let cp_file = OpenOptions::new()
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
            last_seal: Instant::now(),
            signer,
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

    fn checkpoint(&mut self, segment: String, first_seq: u64) -> Result<Checkpoint, AuditError> {
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
    fn seal(&mut self) -> Result<Option<Checkpoint>, AuditError> {
        let Some(first) = self.unsealed_from else {
            return Ok(None);
        };
        // Never seal records that are not on disk.
        self.sync()?;
        let cp = self.checkpoint(segment_name(self.seg_no), first)?;
        self.unsealed_from = None;
        self.last_seal = Instant::now();
        Ok(Some(cp))
    }

    /// Sync the segment if it has unsynced writes.
    fn sync(&mut self) -> Result<(), AuditError> {
        if self.dirty {
            let p = self.seg_path.clone();
            self.seg_file.sync_data().map_err(io(&p))?;
            self.dirty = false;
        }
        Ok(())
    }

    /// Append a batch. Syncing and sealing are separate: the writer syncs
    /// before answering a waiter (A2/A3, flush) and seals within
    /// [`SEAL_DURABLE`] / [`SEAL_EVERY`] (see the writer loop).
    fn commit(
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
            self.prev = make_line_into(&mut buf, self.seq, &self.prev, &rec);
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
    fn preallocate(&mut self, len: u64) -> std::io::Result<()> {
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
    fn trim(&mut self) -> Result<(), AuditError> {
        if self.seg_alloc > self.seg_size {
            let p = self.seg_path.clone();
            self.seg_file.set_len(self.seg_size).map_err(io(&p))?;
            self.seg_alloc = self.seg_size;
            self.dirty = true;
        }
        Ok(())
    }

    fn maybe_rotate(&mut self) -> Result<(), AuditError> {
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
        self.seg_path = self.seg_dir.join(segment_name(self.seg_no));
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

/// zstd level for closed segments. On these JSON lines level 1 is both the
/// fastest and (slightly) the smallest: a 64 MiB segment of A1 records took
/// 0.11 s of CPU at level 1 against 0.17 s at level 3 and came out at 7.2 MB
/// against 7.8 MB (2026-11-30); the compressor runs on the gateway's own
/// cores, so this is per-call CPU (level 9 had cost ~6% of a loaded node).
const COMPRESS_LEVEL: i32 = 1;

/// [`compress_segment`] on a thread of its own (a failure keeps the plain
/// segment and is logged).
fn compress_in_background(path: PathBuf) {
    std::thread::spawn(move || {
        if let Err(e) = compress_segment(&path) {
            tracing::error!(file = %path.display(), error = %e, "audit segment compression failed; the plain segment is kept");
        }
    });
}

/// Compress a closed segment to `<name>.zst` (synced) and remove the plain file.
pub fn compress_segment(path: &Path) -> std::io::Result<PathBuf> {
    let mut zpath = path.as_os_str().to_owned();
    zpath.push(".zst");
    let zpath = PathBuf::from(zpath);
    let mut tmp = zpath.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let input = File::open(path)?;
        let out = File::create(&tmp)?;
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

const BATCH: usize = 4096;

/// Records waiting for nothing (asynchronous A1 records) are sealed at least
/// this often. One SM2 signature per batch cost ~13% of the CPU of an A1
/// workload on this machine, hence the bound instead of per batch.
pub const SEAL_EVERY: Duration = Duration::from_millis(100);

/// Durable records (A2/A3) are on disk before their caller is answered and
/// sealed within this bound. Sealing every group commit cost one SM2
/// signature per A2 call at ~2k calls/s (batches of 1-2 records): ~20% of the
/// gateway's CPU. Both bounds only decide when a truncated tail becomes
/// detectable; no record is ever answered before it is synced.
pub const SEAL_DURABLE: Duration = Duration::from_millis(10);

/// Gathering time for durable records under load (see the writer loop).
pub const DURABLE_LINGER: Duration = Duration::from_micros(500);

/// Records (of one kind: durable, or all) per second over the last
/// [`RATE_WINDOW`] or so.
struct ArrivalRate {
    start: Instant,
    count: usize,
    last: f64,
}

/// Window of [`ArrivalRate`].
const RATE_WINDOW: Duration = Duration::from_millis(100);

impl ArrivalRate {
    fn new() -> Self {
        ArrivalRate {
            start: Instant::now(),
            count: 0,
            last: 0.0,
        }
    }

    fn add(&mut self, n: usize) {
        self.count += n;
        let e = self.start.elapsed();
        if e >= RATE_WINDOW {
            self.last = self.count as f64 / e.as_secs_f64();
            self.start = Instant::now();
            self.count = 0;
        }
    }

    /// The rate of the last full window; zero once a window has passed with
    /// no record counted (the load stopped).
    fn per_sec(&self) -> f64 {
        if self.start.elapsed() >= RATE_WINDOW * 2 {
            0.0
        } else {
            self.last
        }
    }
}

/// How long the writer gathers asynchronous records under sustained A1-only
/// load (see the writer loop).
const ASYNC_LINGER: Duration = Duration::from_millis(1);

/// How often the checkpoint file is synced (by the sealing clock thread).
pub const CP_SYNC_EVERY: Duration = Duration::from_millis(100);

/// Pause after a batch nobody waited on (see the writer loop).
const LINGER: Duration = Duration::from_millis(1);

impl AuditLog {
    /// Open the log in `cfg.dir` (recovering after a crash) and start the
    /// writer thread. Without a signer, checkpoints are unsigned (tests only).
    pub fn open(
        cfg: AuditConfig,
        signer: Option<AuditSigner>,
        sink: Option<Box<dyn BatchSink>>,
    ) -> Result<Self, AuditError> {
        let queue = cfg.queue.max(16);
        let dir = cfg.dir.clone();
        let (mut st, recovery) = State::open(cfg, signer)?;
        let cp_sync = (
            st.cp_file.try_clone().map_err(io(&st.cp_path))?,
            st.cp_dirty.clone(),
        );
        let mut sink = sink;
        let (tx, mut rx) = mpsc::channel::<Msg>(queue);
        let healthy_flag = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let healthy_w = healthy_flag.clone();
        std::thread::Builder::new()
            .name("menshen-audit".into())
            .spawn(move || {
                // On this thread: the sink may block (it must not on the runtime).
                if let Some(s) = sink.as_mut() {
                    s.opened(st.seq);
                    if let Some(cp) = &recovery {
                        s.committed(vec![], Some(cp));
                    }
                }
                // Whether the last commit succeeded: a flush reports it.
                let mut healthy = true;
                // Durable records written since the last seal.
                let mut durable_unsealed = false;
                // Arrival rate of durable records, for the linger rule.
                let mut rate = ArrivalRate::new();
                // Arrival rate of all records, for the asynchronous linger.
                let mut all_rate = ArrivalRate::new();
                while let Some(first) = rx.blocking_recv() {
                    let mut recs = Vec::new();
                    // Callers of record_durable (answered once synced) and
                    // of flush (answered once synced and sealed).
                    let mut waiters = Vec::new();
                    let mut flushers = Vec::new();
                    let mut lingered = false;
                    let mut next = Some(first);
                    while let Some(msg) = next.take() {
                        match msg {
                            Msg::Record(r, k, w) => {
                                recs.push((r, k));
                                if let Some(w) = w {
                                    waiters.push(w);
                                }
                            }
                            Msg::Flush(w) => flushers.push(w),
                            Msg::Tick => {}
                        }
                        if recs.len() < BATCH {
                            next = rx.try_recv().ok();
                            // While durable records arrive faster than one
                            // per DURABLE_LINGER (sustained A2/A3 load),
                            // gather for DURABLE_LINGER so one fdatasync
                            // (~60 us of kernel CPU here, plus two thread
                            // wake-ups) serves several calls: at full A2 load
                            // that is ~12% less CPU per call (measured: 338-350
                            // against 386-408 us). Below that rate, commit at
                            // once: lingering only adds latency there.
                            if next.is_none()
                                && !lingered
                                && !waiters.is_empty()
                                && flushers.is_empty()
                                && rate.per_sec() * DURABLE_LINGER.as_secs_f64() >= 1.0
                            {
                                lingered = true;
                                std::thread::sleep(DURABLE_LINGER);
                                next = rx.try_recv().ok();
                            }
                            // Only asynchronous (A1) records under sustained
                            // load, and no durable record for 200 ms: gather
                            // for ASYNC_LINGER, so the writer wakes once per
                            // few dozen records instead of once per record
                            // (each wake-up is a context switch on the
                            // gateway's core). No durable caller waits on it;
                            // one that arrives during the linger waits at most
                            // ASYNC_LINGER once, as the load turns mixed.
                            if next.is_none()
                                && !lingered
                                && waiters.is_empty()
                                && flushers.is_empty()
                                && rate.per_sec() == 0.0
                                && all_rate.per_sec() * ASYNC_LINGER.as_secs_f64() >= 4.0
                            {
                                lingered = true;
                                std::thread::sleep(ASYNC_LINGER);
                                next = rx.try_recv().ok();
                            }
                        }
                    }
                    all_rate.add(recs.len());
                    let wrote = !recs.is_empty();
                    let lone = waiters.is_empty() && flushers.is_empty();
                    // 1. Append and, if anyone waits, sync (group commit).
                    st.prealloc_next = !waiters.is_empty();
                    let committed = if wrote { st.commit(recs) } else { Ok(vec![]) };
                    let committed = committed.and_then(|c| {
                        if !lone {
                            st.sync()?;
                        }
                        Ok(c)
                    });
                    let fail = |e: &AuditError| {
                        tracing::error!(target: "menshen::audit", error = %e, "AUDIT WRITE FAILED: this batch is not durable or not sealed; A2/A3 calls fail closed");
                    };
                    // A flush with nothing new reports the last write's fate.
                    let synced_ok = match &committed {
                        Ok(_) => wrote || healthy,
                        Err(e) => {
                            fail(e);
                            false
                        }
                    };
                    // 2. Durable records are on disk: answer their callers
                    // now; sealing is not part of durability.
                    if !waiters.is_empty() {
                        rate.add(waiters.len());
                        durable_unsealed = true;
                    }
                    for w in waiters {
                        let _ = w.send(synced_ok);
                    }
                    // 3. Seal: at once for a flush, within SEAL_DURABLE of a
                    // durable record, SEAL_EVERY otherwise. One SM2 signature
                    // per group commit would cost about as much as the A2
                    // call's own response signature.
                    let seal_due = if durable_unsealed { SEAL_DURABLE } else { SEAL_EVERY };
                    let want_seal = !flushers.is_empty() || st.last_seal.elapsed() >= seal_due;
                    let sealed = match committed {
                        Ok(c) if want_seal => st.seal().map(|cp| (c, cp)),
                        Ok(c) => Ok((c, None)),
                        Err(e) => Err(e),
                    };
                    if want_seal {
                        durable_unsealed = false;
                    }
                    let (ok, done) = match sealed {
                        Ok(done) => (synced_ok, Some(done)),
                        Err(e) => {
                            if synced_ok {
                                fail(&e);
                            }
                            (false, None)
                        }
                    };
                    healthy = ok;
                    healthy_w.store(ok, std::sync::atomic::Ordering::Release);
                    for w in flushers {
                        let _ = w.send(ok);
                    }
                    // The index (the sink) is not part of durability and may
                    // apply back-pressure: after every caller is answered.
                    if let (Some(s), Some((committed, cp))) = (sink.as_mut(), done) {
                        if !committed.is_empty() || cp.is_some() {
                            s.committed(committed, cp.as_ref());
                        }
                    }
                    // Nobody waited on this batch (asynchronous A1 records):
                    // linger a moment so the next batch is larger and senders
                    // do not have to wake this thread for every record.
                    if lone && wrote {
                        std::thread::sleep(LINGER);
                    }
                    if let Err(e) = st.maybe_rotate() {
                        tracing::error!(target: "menshen::audit", error = %e, "audit segment rotation failed");
                    }
                }
                // All handles dropped: seal and make the last seals durable.
                if let Ok(Some(cp)) = st.seal() {
                    if let Some(s) = sink.as_mut() {
                        s.committed(vec![], Some(&cp));
                    }
                }
                let _ = st.trim();
                let _ = st.cp_file.sync_data();
                let _ = st.seg_file.sync_data();
            })
            .map_err(io(&dir))?;
        // The sealing clock: a tick every SEAL_DURABLE; it holds only a weak
        // sender, so dropping every handle still ends the writer.
        // It also syncs the checkpoint file every CP_SYNC_EVERY.
        let weak = tx.downgrade();
        let (cp_file, cp_dirty) = cp_sync;
        std::thread::Builder::new()
            .name("menshen-audit-tick".into())
            .spawn(move || {
                let mut last_sync = Instant::now();
                loop {
                    std::thread::sleep(SEAL_DURABLE);
                    if last_sync.elapsed() >= CP_SYNC_EVERY
                        && cp_dirty.swap(false, std::sync::atomic::Ordering::AcqRel)
                    {
                        if let Err(e) = cp_file.sync_data() {
                            cp_dirty.store(true, std::sync::atomic::Ordering::Release);
                            tracing::error!(target: "menshen::audit", error = %e, "audit checkpoint file sync failed");
                        }
                        last_sync = Instant::now();
                    }
                    let Some(tx) = weak.upgrade() else { break };
                    if tx.try_send(Msg::Tick).is_err() && tx.is_closed() {
                        break;
                    }
                }
            })
            .map_err(io(&dir))?;
        Ok(AuditLog {
            tx,
            dir,
            healthy: healthy_flag,
        })
    }

    /// Whether the last batch was written, synced and sealed. A durable
    /// caller checks it before an irreversible step (forwarding an A2/A3
    /// call), so a failing disk refuses calls before the upstream acts; the
    /// records of those refusals keep probing the disk, so it recovers by
    /// itself.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(std::sync::atomic::Ordering::Acquire) && !self.tx.is_closed()
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    async fn send<T: Serialize>(
        &self,
        rec: &T,
        keys: Option<Box<crate::RecordKeys>>,
        w: Option<oneshot::Sender<bool>>,
    ) -> Result<(), AuditError> {
        let bytes = serde_json::to_vec(rec).map_err(|_| AuditError::Closed)?;
        self.send_bytes(bytes, keys, w).await
    }

    async fn send_bytes(
        &self,
        bytes: Vec<u8>,
        keys: Option<Box<crate::RecordKeys>>,
        w: Option<oneshot::Sender<bool>>,
    ) -> Result<(), AuditError> {
        self.tx
            .send(Msg::Record(bytes, keys, w))
            .await
            .map_err(|_| AuditError::Closed)
    }

    /// Queue a record; waits for queue space (back-pressure), not for the disk.
    pub async fn record<T: Serialize>(&self, rec: &T) -> Result<(), AuditError> {
        self.send(rec, None, None).await
    }

    /// Queue a record and wait until it is on disk (sealed within
    /// [`SEAL_DURABLE`]).
    pub async fn record_durable<T: Serialize>(&self, rec: &T) -> Result<(), AuditError> {
        self.send_durable(rec, None).await
    }

    async fn send_durable<T: Serialize>(
        &self,
        rec: &T,
        keys: Option<Box<crate::RecordKeys>>,
    ) -> Result<(), AuditError> {
        let (tx, rx) = oneshot::channel();
        self.send(rec, keys, Some(tx)).await?;
        match rx.await {
            Ok(true) => Ok(()),
            _ => Err(AuditError::Closed),
        }
    }

    /// Queue an access record with its index keys (see
    /// [`AccessRecord::keys`](crate::AccessRecord::keys)); when `durable`,
    /// wait until it is on disk, as [`AuditLog::record_durable`].
    pub async fn record_access(
        &self,
        rec: crate::AccessRecord,
        time_ms: i64,
        durable: bool,
    ) -> Result<(), AuditError> {
        let bytes = serde_json::to_vec(&rec).map_err(|_| AuditError::Closed)?;
        // The record's fields move into its keys: no copy per call.
        let keys = Some(Box::new(rec.into_keys(time_ms)));
        if !durable {
            return self.send_bytes(bytes, keys, None).await;
        }
        let (tx, rx) = oneshot::channel();
        self.send_bytes(bytes, keys, Some(tx)).await?;
        match rx.await {
            Ok(true) => Ok(()),
            _ => Err(AuditError::Closed),
        }
    }

    /// Queue an access record without waiting, for paths that cannot wait
    /// (a request dropped by a stopping runtime). False when the queue is
    /// full or the writer has stopped.
    pub fn try_record_access(&self, rec: crate::AccessRecord, time_ms: i64) -> bool {
        let Ok(bytes) = serde_json::to_vec(&rec) else {
            return false;
        };
        self.tx
            .try_send(Msg::Record(
                bytes,
                Some(Box::new(rec.into_keys(time_ms))),
                None,
            ))
            .is_ok()
    }

    /// Wait until everything queued so far is on disk and sealed.
    pub async fn flush(&self) -> Result<(), AuditError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Msg::Flush(tx))
            .await
            .map_err(|_| AuditError::Closed)?;
        match rx.await {
            Ok(true) => Ok(()),
            _ => Err(AuditError::Closed),
        }
    }
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
fn locate_segment(dir: &Path, n: u64) -> Option<PathBuf> {
    let name = segment_name(n);
    [
        dir.join("segments").join(&name),
        dir.join("segments").join(format!("{name}.zst")),
        dir.join("archive").join(format!("{name}.zst")),
        dir.join("archive").join(&name),
    ]
    .into_iter()
    .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file()))
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
