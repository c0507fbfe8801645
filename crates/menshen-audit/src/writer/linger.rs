//! When the writer commits and seals: batch size, the linger rules and the
//! sealing bounds, each with the measurement that chose it.

use std::time::{Duration, Instant};

pub(super) const BATCH: usize = 4096;

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
pub(super) struct ArrivalRate {
    start: Instant,
    count: usize,
    last: f64,
}

/// Window of [`ArrivalRate`].
const RATE_WINDOW: Duration = Duration::from_millis(100);

impl ArrivalRate {
    pub(super) fn new() -> Self {
        ArrivalRate {
            start: Instant::now(),
            count: 0,
            last: 0.0,
        }
    }

    pub(super) fn add(&mut self, n: usize) {
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
    pub(super) fn per_sec(&self) -> f64 {
        if self.start.elapsed() >= RATE_WINDOW * 2 {
            0.0
        } else {
            self.last
        }
    }
}

/// How long the writer gathers asynchronous records under sustained A1-only
/// load (see the writer loop).
pub(super) const ASYNC_LINGER: Duration = Duration::from_millis(1);

/// How often the checkpoint file is synced (by the sealing clock thread).
pub const CP_SYNC_EVERY: Duration = Duration::from_millis(100);

/// Pause after a batch nobody waited on (see the writer loop).
pub(super) const LINGER: Duration = Duration::from_millis(1);
