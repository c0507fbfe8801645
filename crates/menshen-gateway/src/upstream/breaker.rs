//! The circuit breaker of one named upstream (TRF-2). Lock-free: the hot
//! path of a closed breaker is one atomic load to admit a call and one
//! compare-and-swap on a window bucket to count it. The state machine is
//! documented in `docs/upstreams.md` ("Circuit breaker"); keep the two in
//! step.
//!
//! All of the breaker's phase lives in one `AtomicU64` (`phase`): the
//! state, the probes in flight and the probe successes of a half-open
//! breaker, and a generation that moves on every transition. A call's
//! ticket carries the generation it was admitted in; the outcome of a call
//! admitted in an earlier generation is ignored, so a slow call that
//! started before the breaker opened cannot close it, nor count against the
//! next closed period.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use menshen_metrics::{BreakerEvent, LabelId, Metrics};

use super::config::BreakerConfig;

/// The breaker's state, as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls pass; outcomes are counted.
    Closed,
    /// Calls are not forwarded (degraded) until the open time has passed.
    Open,
    /// A limited number of calls pass as probes.
    HalfOpen,
}

const CLOSED: u64 = 0;
const OPEN: u64 = 1;
const HALF_OPEN: u64 = 2;

/// Number of buckets the failure-rate window is divided into.
const BUCKETS: u64 = 10;
/// A bucket's tag (its index modulo 2^20) in the top 20 bits, then calls
/// and failures (22 bits each, saturating at ~4 million per bucket).
const TAG_BITS: u32 = 20;
const COUNT_BITS: u32 = 22;
const COUNT_MAX: u64 = (1 << COUNT_BITS) - 1;
const TAG_MASK: u64 = (1 << TAG_BITS) - 1;

fn pack_bucket(tag: u64, calls: u64, fails: u64) -> u64 {
    ((tag & TAG_MASK) << (2 * COUNT_BITS))
        | (calls.min(COUNT_MAX) << COUNT_BITS)
        | fails.min(COUNT_MAX)
}
fn unpack_bucket(b: u64) -> (u64, u64, u64) {
    (
        b >> (2 * COUNT_BITS),
        (b >> COUNT_BITS) & COUNT_MAX,
        b & COUNT_MAX,
    )
}

/// `phase`: state (8 bits), probes in flight (16), probe successes (16),
/// generation (24).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Phase {
    state: u64,
    probes: u64,
    successes: u64,
    gen: u64,
}

impl Phase {
    fn unpack(w: u64) -> Phase {
        Phase {
            state: w & 0xff,
            probes: (w >> 8) & 0xffff,
            successes: (w >> 24) & 0xffff,
            gen: w >> 40,
        }
    }
    fn pack(self) -> u64 {
        (self.state & 0xff)
            | ((self.probes & 0xffff) << 8)
            | ((self.successes & 0xffff) << 24)
            | ((self.gen & 0xff_ffff) << 40)
    }
    fn next(self, state: u64) -> Phase {
        Phase {
            state,
            probes: 0,
            successes: 0,
            gen: (self.gen + 1) & 0xff_ffff,
        }
    }
}

/// What the breaker says about one call.
#[derive(Debug)]
pub enum Admission {
    /// Forward it; report its outcome on the ticket.
    Pass(Ticket),
    /// Do not forward: the breaker is open (or half-open with every probe
    /// slot taken). The value is the time until the next probe may pass,
    /// in milliseconds (0: a probe is in flight now).
    Reject(u64),
}

/// A circuit breaker (see the module docs).
#[derive(Debug)]
pub struct Breaker {
    cfg: BreakerConfig,
    phase: AtomicU64,
    consecutive: AtomicU32,
    buckets: Box<[AtomicU64]>,
    bucket_ms: u64,
    open_until_ms: AtomicU64,
    opened: AtomicU64,
    base: Instant,
    /// Where transitions and refusals are counted (MON-1), once attached.
    events: OnceLock<(Arc<Metrics>, LabelId)>,
}

/// One admitted call. Report its outcome with [`Breaker::record`]; a ticket
/// dropped unreported (the call was never sent, or was cancelled) frees its
/// probe slot and counts nothing.
#[derive(Debug)]
pub struct Ticket {
    breaker: Arc<Breaker>,
    gen: u64,
    probe: bool,
    done: bool,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.done && self.probe {
            self.breaker.release_probe(self.gen, None);
        }
    }
}

impl Ticket {
    /// Report the call's outcome: `ok` when the upstream answered (anything
    /// but a 5xx); a failure is a connect failure, a timeout, a broken
    /// exchange or a 5xx answer.
    pub fn record(mut self, ok: bool) {
        self.done = true;
        let b = self.breaker.clone();
        if self.probe {
            b.release_probe(self.gen, Some(ok));
        } else {
            b.record_closed(self.gen, ok);
        }
    }
}

impl Breaker {
    /// A closed breaker.
    pub fn new(cfg: BreakerConfig) -> Arc<Breaker> {
        let bucket_ms = (cfg.window_ms / BUCKETS).max(1);
        Arc::new(Breaker {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            bucket_ms,
            cfg,
            phase: AtomicU64::new(0),
            consecutive: AtomicU32::new(0),
            open_until_ms: AtomicU64::new(0),
            opened: AtomicU64::new(0),
            base: Instant::now(),
            events: OnceLock::new(),
        })
    }

    /// Count this breaker's events in `metrics` under the upstream's label
    /// (`menshen_breaker_events_total`); the first call wins.
    pub fn report_to(&self, metrics: Arc<Metrics>, upstream: LabelId) {
        let _ = self.events.set((metrics, upstream));
    }

    fn event(&self, ev: BreakerEvent) {
        if let Some((m, id)) = self.events.get() {
            m.breaker_event(*id, ev);
        }
    }

    fn now_ms(&self) -> u64 {
        self.base.elapsed().as_millis() as u64
    }

    /// The current state (for status and tests).
    pub fn state(&self) -> BreakerState {
        match Phase::unpack(self.phase.load(Ordering::Acquire)).state {
            OPEN => BreakerState::Open,
            HALF_OPEN => BreakerState::HalfOpen,
            _ => BreakerState::Closed,
        }
    }

    /// How many times it has opened (from closed or half-open).
    pub fn times_opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// Ask to forward one call.
    pub fn admit(self: &Arc<Self>) -> Admission {
        let mut w = self.phase.load(Ordering::Acquire);
        loop {
            let p = Phase::unpack(w);
            let next = match p.state {
                CLOSED => {
                    return Admission::Pass(self.ticket(p.gen, false));
                }
                OPEN => {
                    let now = self.now_ms();
                    let until = self.open_until_ms.load(Ordering::Acquire);
                    if now < until {
                        self.event(BreakerEvent::Rejected);
                        return Admission::Reject(until - now);
                    }
                    // Open time over: this call is the first probe.
                    let mut n = p.next(HALF_OPEN);
                    n.probes = 1;
                    n
                }
                _ => {
                    if p.probes >= u64::from(self.cfg.half_open_probes) {
                        self.event(BreakerEvent::Rejected);
                        return Admission::Reject(0);
                    }
                    Phase {
                        probes: p.probes + 1,
                        ..p
                    }
                }
            };
            match self.phase.compare_exchange_weak(
                w,
                next.pack(),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    if p.state == OPEN {
                        self.event(BreakerEvent::HalfOpened);
                        tracing::info!("circuit breaker half-open: probing the upstream");
                    }
                    return Admission::Pass(self.ticket(next.gen, true));
                }
                Err(cur) => w = cur,
            }
        }
    }

    fn ticket(self: &Arc<Self>, gen: u64, probe: bool) -> Ticket {
        Ticket {
            breaker: self.clone(),
            gen,
            probe,
            done: false,
        }
    }

    /// Move from `from` (state and generation as loaded) to open.
    fn open_from(&self, w: u64) -> bool {
        let p = Phase::unpack(w);
        // Set the end of the open time before the state says open: a
        // caller that sees open reads a current end.
        self.open_until_ms
            .store(self.now_ms() + self.cfg.open_ms, Ordering::Release);
        let ok = self
            .phase
            .compare_exchange(w, p.next(OPEN).pack(), Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if ok {
            self.opened.fetch_add(1, Ordering::Relaxed);
            self.event(BreakerEvent::Opened);
        }
        ok
    }

    fn record_closed(&self, gen: u64, ok: bool) {
        let w = self.phase.load(Ordering::Acquire);
        let p = Phase::unpack(w);
        if p.state != CLOSED || p.gen != gen {
            return;
        }
        let idx = self.now_ms() / self.bucket_ms;
        let slot = &self.buckets[(idx % BUCKETS) as usize];
        let tag = idx & TAG_MASK;
        let mut b = slot.load(Ordering::Relaxed);
        loop {
            let (t, calls, fails) = unpack_bucket(b);
            let (calls, fails) = if t == tag { (calls, fails) } else { (0, 0) };
            let n = pack_bucket(tag, calls + 1, fails + u64::from(!ok));
            match slot.compare_exchange_weak(b, n, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break,
                Err(cur) => b = cur,
            }
        }
        if ok {
            if self.consecutive.load(Ordering::Relaxed) != 0 {
                self.consecutive.store(0, Ordering::Relaxed);
            }
            return;
        }
        let run = self.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
        let trip_run = self.cfg.consecutive_failures > 0 && run >= self.cfg.consecutive_failures;
        let trip_rate = !trip_run && self.rate_exceeded(idx);
        if (trip_run || trip_rate) && self.open_from(w) {
            tracing::warn!(
                consecutive_failures = run,
                reason = if trip_run {
                    "consecutive failures"
                } else {
                    "failure rate"
                },
                "circuit breaker opened: calls are degraded for {} ms",
                self.cfg.open_ms
            );
        }
    }

    /// Whether the failure rate over the window (the current bucket and
    /// the `BUCKETS - 1` before it) is at or over the threshold, with at
    /// least `min_calls` calls counted.
    fn rate_exceeded(&self, idx: u64) -> bool {
        if self.cfg.failure_rate_percent == 0 {
            return false;
        }
        let (mut calls, mut fails) = (0u64, 0u64);
        for slot in self.buckets.iter() {
            let (t, c, f) = unpack_bucket(slot.load(Ordering::Relaxed));
            if (idx.wrapping_sub(t) & TAG_MASK) < BUCKETS {
                calls += c;
                fails += f;
            }
        }
        calls >= u64::from(self.cfg.min_calls.max(1))
            && fails * 100 >= u64::from(self.cfg.failure_rate_percent) * calls
    }

    fn reset_window(&self) {
        for slot in self.buckets.iter() {
            slot.store(0, Ordering::Relaxed);
        }
        self.consecutive.store(0, Ordering::Relaxed);
    }

    /// A probe finished (`Some(ok)`) or was dropped unsent (`None`).
    fn release_probe(&self, gen: u64, outcome: Option<bool>) {
        let mut w = self.phase.load(Ordering::Acquire);
        loop {
            let p = Phase::unpack(w);
            if p.state != HALF_OPEN || p.gen != gen {
                return;
            }
            if outcome == Some(false) {
                if self.open_from(w) {
                    tracing::warn!(
                        "circuit breaker probe failed: open again for {} ms",
                        self.cfg.open_ms
                    );
                    return;
                }
                w = self.phase.load(Ordering::Acquire);
                continue;
            }
            let successes = p.successes + u64::from(outcome == Some(true));
            let next = if successes >= u64::from(self.cfg.half_open_probes) {
                p.next(CLOSED)
            } else {
                Phase {
                    probes: p.probes.saturating_sub(1),
                    successes,
                    ..p
                }
            };
            match self.phase.compare_exchange_weak(
                w,
                next.pack(),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    if next.state == CLOSED {
                        self.reset_window();
                        self.event(BreakerEvent::Closed);
                        tracing::info!("circuit breaker closed: the upstream answered every probe");
                    }
                    return;
                }
                Err(cur) => w = cur,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BreakerConfig {
        BreakerConfig {
            enabled: true,
            window_ms: 10_000,
            min_calls: 10,
            failure_rate_percent: 50,
            consecutive_failures: 5,
            open_ms: 40,
            half_open_probes: 2,
        }
    }

    fn pass(b: &Arc<Breaker>) -> Ticket {
        match b.admit() {
            Admission::Pass(t) => t,
            Admission::Reject(ms) => panic!("rejected ({ms} ms)"),
        }
    }

    async fn wait_open_time(b: &Arc<Breaker>) {
        let until = b.open_until_ms.load(Ordering::Acquire);
        while b.now_ms() < until {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn trf_2_consecutive_failures_open_then_probes_close() {
        let b = Breaker::new(cfg());
        for _ in 0..4 {
            pass(&b).record(false);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        pass(&b).record(false);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(matches!(b.admit(), Admission::Reject(ms) if ms > 0));
        wait_open_time(&b).await;
        // Two probe slots; the third call waits for their outcome.
        let p1 = pass(&b);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let p2 = pass(&b);
        assert!(matches!(b.admit(), Admission::Reject(0)));
        p1.record(true);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        p2.record(true);
        assert_eq!(b.state(), BreakerState::Closed);
        // The window starts afresh: four failures do not open it again.
        for _ in 0..4 {
            pass(&b).record(false);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.times_opened(), 1);
    }

    #[tokio::test]
    async fn trf_2_a_failed_probe_opens_again_and_a_dropped_probe_frees_its_slot() {
        let b = Breaker::new(cfg());
        for _ in 0..5 {
            pass(&b).record(false);
        }
        wait_open_time(&b).await;
        let p1 = pass(&b);
        let p2 = pass(&b);
        drop(p2);
        let p3 = pass(&b);
        p3.record(false);
        assert_eq!(b.state(), BreakerState::Open);
        // p1's success belongs to the old half-open period: ignored.
        p1.record(true);
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.times_opened(), 2);
    }

    #[test]
    fn trf_2_failure_rate_opens_with_enough_calls_only() {
        let mut c = cfg();
        c.consecutive_failures = 0;
        let b = Breaker::new(c);
        // 4 failures of 4 calls: under min_calls (10).
        for _ in 0..4 {
            pass(&b).record(false);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        // 5 successes: 4 of 9 failed.
        for _ in 0..5 {
            pass(&b).record(true);
        }
        pass(&b).record(false);
        // 5 of 10 failed: 50 %.
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn trf_2_an_outcome_from_an_earlier_period_is_ignored() {
        let b = Breaker::new(cfg());
        let slow = pass(&b);
        for _ in 0..5 {
            pass(&b).record(false);
        }
        assert_eq!(b.state(), BreakerState::Open);
        slow.record(false);
        assert_eq!(b.times_opened(), 1);
    }

    #[test]
    fn bucket_packing_round_trips_and_saturates() {
        let b = pack_bucket(12345, 7, 3);
        assert_eq!(unpack_bucket(b), (12345, 7, 3));
        let b = pack_bucket(TAG_MASK + 5, COUNT_MAX + 9, 1);
        assert_eq!(unpack_bucket(b), (4, COUNT_MAX, 1));
    }
}
