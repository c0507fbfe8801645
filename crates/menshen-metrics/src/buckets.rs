//! Latency buckets: one fine set of upper bounds (microseconds) shared by
//! every histogram the node keeps, so the statistics' percentiles and the
//! Prometheus histograms come from the same counts. The Prometheus export
//! shows a coarser subset ([`EXPORTED`]); since each exported bound is one of
//! the fine ones, its cumulative count is exact.

use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the fine buckets, microseconds; one more bucket (+Inf)
/// follows the last.
pub const BOUNDS_US: [u64; 29] = [
    100, 200, 300, 500, 750, 1_000, 1_500, 2_000, 2_500, 3_000, 4_000, 5_000, 7_500, 10_000,
    15_000, 20_000, 25_000, 35_000, 50_000, 75_000, 100_000, 150_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000, 30_000_000,
];

/// Number of fine buckets (the bounds and +Inf).
pub const N: usize = BOUNDS_US.len() + 1;

/// The fine bounds shown as Prometheus `le` values (seconds): 0.5 ms to 30 s.
pub const EXPORTED: [u64; 15] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000, 30_000_000,
];

/// The fine bucket of a duration in microseconds.
#[inline]
pub fn index(us: u64) -> usize {
    BOUNDS_US.partition_point(|&b| b < us)
}

/// Counts of one histogram (not shared between threads: lives in a shard
/// or a statistics slot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hist {
    /// Observations per fine bucket.
    pub buckets: [u64; N],
    /// Sum of the observations, microseconds.
    pub sum_us: u64,
    /// Number of observations.
    pub count: u64,
}

impl Default for Hist {
    fn default() -> Self {
        Hist {
            buckets: [0; N],
            sum_us: 0,
            count: 0,
        }
    }
}

impl Hist {
    /// Count one observation.
    #[inline]
    pub fn observe(&mut self, us: u64) {
        self.buckets[index(us)] += 1;
        self.sum_us = self.sum_us.saturating_add(us);
        self.count += 1;
    }

    /// Add `other`'s counts.
    pub fn add(&mut self, other: &Hist) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *a += b;
        }
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
        self.count += other.count;
    }

    /// `self - earlier` (counts only grow; saturates if not).
    pub fn since(&self, earlier: &Hist) -> Hist {
        let mut d = Hist::default();
        for i in 0..N {
            d.buckets[i] = self.buckets[i].saturating_sub(earlier.buckets[i]);
        }
        d.sum_us = self.sum_us.saturating_sub(earlier.sum_us);
        d.count = self.count.saturating_sub(earlier.count);
        d
    }

    /// The `q` quantile (0..=1) in microseconds, interpolated linearly inside
    /// its bucket as Prometheus' `histogram_quantile` does; `None` when
    /// empty. A quantile in the +Inf bucket answers the last bound.
    pub fn quantile_us(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * self.count as f64;
        let mut seen = 0u64;
        for (i, &n) in self.buckets.iter().enumerate() {
            if n == 0 {
                continue;
            }
            if (seen + n) as f64 >= rank {
                let Some(&hi) = BOUNDS_US.get(i) else {
                    return Some(BOUNDS_US[BOUNDS_US.len() - 1] as f64);
                };
                let lo = if i == 0 { 0 } else { BOUNDS_US[i - 1] };
                let within = (rank - seen as f64) / n as f64;
                return Some(lo as f64 + (hi - lo) as f64 * within.clamp(0.0, 1.0));
            }
            seen += n;
        }
        Some(BOUNDS_US[BOUNDS_US.len() - 1] as f64)
    }

    /// The exported buckets as prometheus-client wants them: per-bucket
    /// (not cumulative) counts with their upper bound in seconds, the last
    /// one `f64::MAX` (+Inf).
    pub fn exported(&self) -> Vec<(f64, u64)> {
        let mut out = Vec::with_capacity(EXPORTED.len() + 1);
        let mut fine = 0usize;
        for &bound in &EXPORTED {
            let mut n = 0;
            while fine < BOUNDS_US.len() && BOUNDS_US[fine] <= bound {
                n += self.buckets[fine];
                fine += 1;
            }
            out.push((bound as f64 / 1e6, n));
        }
        let rest: u64 = self.buckets[fine..].iter().sum();
        out.push((f64::MAX, rest));
        out
    }
}

/// A histogram updated from several threads with atomics alone (for rare
/// events off the request path, e.g. the audit writer's syncs).
#[derive(Debug)]
pub struct AtomicHist {
    buckets: [AtomicU64; N],
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Default for AtomicHist {
    fn default() -> Self {
        AtomicHist {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_us: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

impl AtomicHist {
    /// Count one observation.
    pub fn observe(&self, us: u64) {
        self.buckets[index(us)].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts now.
    pub fn load(&self) -> Hist {
        let mut h = Hist::default();
        for (d, s) in h.buckets.iter_mut().zip(self.buckets.iter()) {
            *d = s.load(Ordering::Relaxed);
        }
        h.sum_us = self.sum_us.load(Ordering::Relaxed);
        h.count = self.count.load(Ordering::Relaxed);
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exported_bounds_are_fine_bounds() {
        for b in EXPORTED {
            assert!(BOUNDS_US.contains(&b), "{b}");
        }
    }

    #[test]
    fn index_and_quantiles() {
        assert_eq!(index(0), 0);
        assert_eq!(index(100), 0);
        assert_eq!(index(101), 1);
        assert_eq!(index(u64::MAX), N - 1);
        let mut h = Hist::default();
        for _ in 0..99 {
            h.observe(150); // (100, 200]
        }
        h.observe(40_000); // (35 ms, 50 ms]
        let p50 = h.quantile_us(0.5).unwrap();
        assert!((100.0..=200.0).contains(&p50), "{p50}");
        let p99 = h.quantile_us(0.99).unwrap();
        assert!((100.0..=200.0).contains(&p99), "{p99}");
        let p100 = h.quantile_us(1.0).unwrap();
        assert!((35_000.0..=50_000.0).contains(&p100), "{p100}");
        let ex = h.exported();
        assert_eq!(ex.len(), EXPORTED.len() + 1);
        assert_eq!(ex.iter().map(|b| b.1).sum::<u64>(), 100);
        assert_eq!(ex[0], (0.0005, 99));
        assert_eq!(Hist::default().quantile_us(0.5), None);
    }
}
