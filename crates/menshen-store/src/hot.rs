//! Shared hot state: data the gateway reads and writes per request: nonces,
//! and short-lived keyed values (pushed authorization requests, codes,
//! tokens, login sessions, revocation marks) and counters (use limits) with
//! atomic take and bounded increment. In-process here; the Redis
//! implementation of the cluster mode implements the same trait, and
//! [`conformance`] holds the cases every implementation must pass.
// std Mutex (clippy.toml ban list): the in-process hot state is sharded
// (32 shards), each lock held for one map operation, never across an await.
#![allow(clippy::disallowed_types)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use menshen_model::LimitWindow;

/// A hot-state backend failed (the in-process one never does).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HotError {
    /// The backend could not be reached or answered wrongly.
    #[error("hot state unavailable: {0}")]
    Unavailable(String),
}

/// A nonce to record at admission (INT-4), with the caller's clock as in
/// [`HotState::insert_nonce`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonceCheck {
    /// The app.
    pub app_id: String,
    /// The signature's nonce.
    pub nonce: String,
    /// Kept until then (unix seconds, the caller's clock).
    pub expires_at: i64,
    /// The caller's now.
    pub now: i64,
}

/// One flow-control counter a call is checked and counted against (TRF-1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitCheck {
    /// The counter's key, built by the caller from stable ids only (the
    /// rule's id and the counted IP, app, API or customer): never a config
    /// version or a node id, so every node and every snapshot finds the
    /// same counter.
    pub key: String,
    /// A calendar window (the hot state's clock decides which one), or
    /// `Concurrent` (slots in flight).
    pub window: LimitWindow,
    /// Most calls per window (or in flight).
    pub max: u64,
    /// Stop at `max` (reject, pause) or count past it (alert).
    pub bounded: bool,
    /// When this check refuses the call, pause the app for so long.
    pub pause_secs: Option<u64>,
}

/// Everything one call asks of the hot state when it is admitted, done in
/// one atomic step ([`HotState::admit`]; on Redis one script, one round
/// trip): record the nonce, look at the app's pause mark, then check every
/// counter and count the call in all of them, or in none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Admission {
    /// The nonce to record first; a replay stops everything else.
    pub nonce: Option<NonceCheck>,
    /// The app whose pause mark is looked at (and set by a refusing check
    /// with `pause_secs`).
    pub app_id: Option<String>,
    /// Whether a pause mark of `app_id` refuses the call.
    pub check_pause: bool,
    /// The counters.
    pub checks: Vec<LimitCheck>,
    /// This call's concurrency slot id (unique per call).
    pub slot: String,
    /// How long a slot lives unless given back ([`HotState::release`]):
    /// the slots of a node that died free themselves.
    pub slot_ttl_secs: u64,
}

/// What [`HotState::admit`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// The hot state's clock at the check (unix seconds): Redis `TIME`,
    /// not the node's.
    pub now: i64,
    /// The nonce was already recorded: nothing else was looked at.
    pub replay: bool,
    /// The app is paused until then: by an earlier call (`refused` is
    /// `None`, nothing counted) or by this call's refusal.
    pub paused_until: Option<i64>,
    /// The first bounded check at its limit: the call is refused and no
    /// counter counted it.
    pub refused: Option<usize>,
    /// Per check: its count with this call (admitted) or without (refused).
    pub counts: Vec<u64>,
    /// Per check: when its window ends (unix seconds; concurrency: 0).
    pub resets: Vec<i64>,
}

/// Hot-state operations. Keys are built by callers from stable ids and
/// hashes of secrets only (never a secret itself); every entry expires.
#[async_trait]
pub trait HotState: Send + Sync + 'static {
    /// Record `nonce` for `app_id` until `expires_at` (unix seconds). Returns
    /// `false` if it was already recorded and has not expired (a replay).
    async fn insert_nonce(&self, app_id: &str, nonce: &str, expires_at: i64, now: i64) -> bool;

    /// Store `value` under (`ns`, `key`) until `expires_at`, replacing any.
    async fn put(
        &self,
        ns: &str,
        key: &str,
        value: Vec<u8>,
        expires_at: i64,
        now: i64,
    ) -> Result<(), HotError>;

    /// The value under (`ns`, `key`), if present and unexpired.
    async fn get(&self, ns: &str, key: &str, now: i64) -> Result<Option<Vec<u8>>, HotError>;

    /// Remove and return the value atomically: of any number of concurrent
    /// takers, exactly one gets it (single-use codes and tokens).
    async fn take(&self, ns: &str, key: &str, now: i64) -> Result<Option<Vec<u8>>, HotError>;

    /// Remove the value; whether an unexpired one was there.
    async fn delete(&self, ns: &str, key: &str, now: i64) -> Result<bool, HotError>;

    /// Add one to the counter (`ns`, `key`), created at zero to expire at
    /// `expires_at`, unless the result would exceed `limit`: `Ok(new
    /// value)`, or `Err(current value)` when at the limit. Atomic across
    /// concurrent callers (use limits hold under concurrency).
    async fn incr(
        &self,
        ns: &str,
        key: &str,
        limit: Option<u64>,
        expires_at: i64,
        now: i64,
    ) -> Result<Result<u64, u64>, HotError>;

    /// Admit a call (INT-4 and TRF-1 in one atomic step, see
    /// [`Admission`]). Windows follow the hot state's own clock (Redis
    /// `TIME`; in process, the injectable [`Clock`]), a day and a month
    /// being calendar ones in Asia/Shanghai; a window counter's key lives
    /// until its window ends, a slot set until its newest slot's TTL ends,
    /// a pause mark until the pause ends.
    async fn admit(&self, a: &Admission) -> Result<Verdict, HotError>;

    /// Give back `slot` of every concurrency counter in `keys` (the
    /// exchange ended). Unknown or expired slots are ignored.
    async fn release(&self, keys: &[String], slot: &str) -> Result<(), HotError>;

    /// Add `delta` (may be negative; the sum never goes below zero) to the
    /// sum (`ns`, `key`), created at zero to expire at `expires_at`, unless
    /// a positive `delta` would take it over `limit`: `Ok(new sum)`, or
    /// `Err(current sum)` (nothing added). Atomic across concurrent callers
    /// (RSK-2: a day's sum of amounts, in fen, exact across nodes). A
    /// backend without it fails: risk rules then fail closed.
    async fn add_amount(
        &self,
        ns: &str,
        key: &str,
        delta: i64,
        limit: Option<u64>,
        expires_at: i64,
        now: i64,
    ) -> Result<Result<u64, u64>, HotError> {
        let _ = (ns, key, delta, limit, expires_at, now);
        Err(HotError::Unavailable(
            "add_amount is not implemented by this hot state".into(),
        ))
    }
}

/// The in-process hot state's time source (unix seconds); injectable so
/// tests can cross a Shanghai midnight.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(crate::now_unix)
}

/// Most flow-control entries (window counters, slot sets, pause marks) the
/// in-process hot state holds; past it a new key is refused (`Unavailable`).
pub const LIMIT_ENTRIES: usize = 262_144;

/// In-process flow-control state, behind one lock so an admission is
/// atomic over all its counters.
#[derive(Default)]
struct Limits {
    /// Key -> (window start, count, window end).
    windows: HashMap<String, (i64, u64, i64)>,
    /// Key -> slot -> expiry.
    slots: HashMap<String, HashMap<String, i64>>,
    /// App -> paused until.
    pauses: HashMap<String, i64>,
    next_sweep: i64,
}

impl Limits {
    fn sweep(&mut self, now: i64) {
        if now < self.next_sweep {
            return;
        }
        self.windows.retain(|_, (_, _, end)| *end > now);
        self.slots.retain(|_, s| {
            s.retain(|_, exp| *exp > now);
            !s.is_empty()
        });
        self.pauses.retain(|_, until| *until > now);
        self.next_sweep = now + 10;
    }

    fn len(&self) -> usize {
        self.windows.len() + self.slots.len() + self.pauses.len()
    }

    fn admit(&mut self, a: &Admission, now: i64) -> Result<Verdict, HotError> {
        self.sweep(now);
        let mut v = Verdict {
            now,
            ..Verdict::default()
        };
        if a.check_pause {
            if let Some(until) = a.app_id.as_ref().and_then(|app| self.pauses.get(app)) {
                if *until > now {
                    v.paused_until = Some(*until);
                    return Ok(v);
                }
            }
        }
        let mut starts = Vec::with_capacity(a.checks.len());
        for (i, c) in a.checks.iter().enumerate() {
            let (cur, start, end) = match c.window {
                LimitWindow::Concurrent => {
                    let n = self
                        .slots
                        .get(&c.key)
                        .map_or(0, |s| s.values().filter(|e| **e > now).count());
                    (n as u64, 0, 0)
                }
                w => {
                    let (start, end) = w.bounds(now);
                    let n = match self.windows.get(&c.key) {
                        Some((s, n, _)) if *s == start => *n,
                        _ => 0,
                    };
                    (n, start, end)
                }
            };
            v.counts.push(cur);
            v.resets.push(end);
            starts.push(start);
            if c.bounded && cur >= c.max && v.refused.is_none() {
                v.refused = Some(i);
            }
        }
        if let Some(i) = v.refused {
            if let (Some(p), Some(app)) = (a.checks[i].pause_secs, &a.app_id) {
                let until = now.saturating_add(i64::try_from(p).unwrap_or(i64::MAX));
                self.pauses.insert(app.clone(), until);
                v.paused_until = Some(until);
            }
            return Ok(v);
        }
        let new_keys = a
            .checks
            .iter()
            .filter(|c| !self.windows.contains_key(&c.key) && !self.slots.contains_key(&c.key))
            .count();
        if new_keys > 0 && self.len() + new_keys > LIMIT_ENTRIES {
            return Err(HotError::Unavailable(
                "in-process flow-control state is full (bounded)".into(),
            ));
        }
        let ttl = i64::try_from(a.slot_ttl_secs).unwrap_or(i64::MAX);
        for (i, c) in a.checks.iter().enumerate() {
            v.counts[i] += 1;
            match c.window {
                LimitWindow::Concurrent => {
                    self.slots
                        .entry(c.key.clone())
                        .or_default()
                        .insert(a.slot.clone(), now.saturating_add(ttl));
                }
                _ => {
                    self.windows
                        .insert(c.key.clone(), (starts[i], v.counts[i], v.resets[i]));
                }
            }
        }
        Ok(v)
    }
}

const SHARDS: usize = 32;

/// In-process hot state: sharded maps, so concurrent requests rarely contend.
///
/// A nonce is kept as a 64-bit SipHash of (App_ID, nonce) under a key drawn
/// at random per process, not as two strings: no allocation per call and
/// ~20 bytes per remembered nonce instead of ~150 (at thousands of calls/s a
/// 300 s window holds millions). Two different nonces share a fingerprint
/// with probability 2^-64 per pair, and nobody outside the process can aim
/// for it (the key is secret), so a legitimate call is refused as a replay
/// practically never; a replay is always caught.
pub struct MemoryHotState {
    hasher: std::collections::hash_map::RandomState,
    shards: Vec<Mutex<Shard>>,
    kv: Vec<Mutex<KvShard>>,
    limits: Mutex<Limits>,
    clock: Clock,
}

/// Keyed values and counters of one shard.
#[derive(Default)]
struct KvShard {
    map: HashMap<(String, String), KvEntry>,
    next_sweep: i64,
}

/// Most keyed values and counters one shard holds (32 shards: about half a
/// million entries in all). Entries are short-lived (sessions, codes,
/// tokens, counters); past this a new key is refused (`Unavailable`, the
/// caller fails closed) after expired entries are swept, so a flood of
/// requests that create state (e.g. login pages) bounds memory instead of
/// growing it.
pub const KV_ENTRIES_PER_SHARD: usize = 16_384;

impl KvShard {
    /// Whether `k` may be written: an existing key always; a new one while
    /// the shard is under its bound.
    fn room_for(&self, k: &(String, String)) -> Result<(), HotError> {
        // Expired entries are swept every 10 s (`kv_shard`), not here: a
        // full shard under a flood must not pay a sweep per refused write.
        if self.map.len() < KV_ENTRIES_PER_SHARD || self.map.contains_key(k) {
            return Ok(());
        }
        Err(HotError::Unavailable(
            "in-process hot state is full (bounded): refusing new entries until some expire".into(),
        ))
    }
}

enum KvValue {
    Bytes(Vec<u8>),
    Counter(u64),
}

struct KvEntry {
    value: KvValue,
    expires_at: i64,
}

#[derive(Default)]
struct Shard {
    /// Fingerprint -> expiry (unix seconds).
    seen: HashMap<u64, i64, BuildIdentity>,
    next_sweep: i64,
}

/// The map keys are already keyed hashes: use them as they are.
#[derive(Default, Clone, Copy)]
struct BuildIdentity;

#[derive(Default)]
struct Identity(u64);

impl std::hash::BuildHasher for BuildIdentity {
    type Hasher = Identity;
    fn build_hasher(&self) -> Identity {
        Identity(0)
    }
}

impl std::hash::Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed (write_u64); fold anything else.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

impl Default for MemoryHotState {
    fn default() -> Self {
        MemoryHotState {
            hasher: std::collections::hash_map::RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            kv: (0..SHARDS)
                .map(|_| Mutex::new(KvShard::default()))
                .collect(),
            limits: Mutex::new(Limits::default()),
            clock: system_clock(),
        }
    }
}

impl MemoryHotState {
    /// An in-process hot state whose flow-control windows follow `clock`
    /// (tests: a Shanghai midnight, a slot's TTL).
    pub fn with_clock(clock: Clock) -> Self {
        MemoryHotState {
            clock,
            ..MemoryHotState::default()
        }
    }

    fn fingerprint(&self, app_id: &str, nonce: &str) -> u64 {
        use std::hash::{BuildHasher, Hash, Hasher};
        let mut h = self.hasher.build_hasher();
        // Length-prefixed (str's Hash adds a terminator): ("ab","c") and
        // ("a","bc") differ.
        app_id.hash(&mut h);
        nonce.hash(&mut h);
        h.finish()
    }

    /// The shard of (`ns`, `key`), swept of expired entries at most every
    /// 10 s. A poisoned lock only means another request panicked; the map
    /// is still consistent.
    fn kv_shard(&self, ns: &str, key: &str, now: i64) -> std::sync::MutexGuard<'_, KvShard> {
        use std::hash::{BuildHasher, Hash, Hasher};
        let mut h = self.hasher.build_hasher();
        ns.hash(&mut h);
        key.hash(&mut h);
        let mut s = self.kv[(h.finish() as usize) % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if now >= s.next_sweep {
            s.map.retain(|_, e| e.expires_at > now);
            s.next_sweep = now + 10;
        }
        s
    }
}

#[async_trait]
impl HotState for MemoryHotState {
    async fn insert_nonce(&self, app_id: &str, nonce: &str, expires_at: i64, now: i64) -> bool {
        let key = self.fingerprint(app_id, nonce);
        // The low bits pick the shard; the map uses the whole key.
        // A poisoned lock only means another request panicked mid-insert; the
        // map is still consistent, so keep using it.
        let mut s = self.shards[(key as usize) % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if now >= s.next_sweep {
            s.seen.retain(|_, exp| *exp > now);
            s.next_sweep = now + 10;
        }
        match s.seen.get(&key) {
            Some(exp) if *exp > now => false,
            _ => {
                s.seen.insert(key, expires_at);
                true
            }
        }
    }

    async fn put(
        &self,
        ns: &str,
        key: &str,
        value: Vec<u8>,
        expires_at: i64,
        now: i64,
    ) -> Result<(), HotError> {
        let mut s = self.kv_shard(ns, key, now);
        let k = (ns.to_string(), key.to_string());
        s.room_for(&k)?;
        s.map.insert(
            k,
            KvEntry {
                value: KvValue::Bytes(value),
                expires_at,
            },
        );
        Ok(())
    }

    async fn get(&self, ns: &str, key: &str, now: i64) -> Result<Option<Vec<u8>>, HotError> {
        let s = self.kv_shard(ns, key, now);
        Ok(match s.map.get(&(ns.to_string(), key.to_string())) {
            Some(KvEntry {
                value: KvValue::Bytes(v),
                expires_at,
            }) if *expires_at > now => Some(v.clone()),
            _ => None,
        })
    }

    async fn take(&self, ns: &str, key: &str, now: i64) -> Result<Option<Vec<u8>>, HotError> {
        let mut s = self.kv_shard(ns, key, now);
        Ok(match s.map.remove(&(ns.to_string(), key.to_string())) {
            Some(KvEntry {
                value: KvValue::Bytes(v),
                expires_at,
            }) if expires_at > now => Some(v),
            _ => None,
        })
    }

    async fn delete(&self, ns: &str, key: &str, now: i64) -> Result<bool, HotError> {
        let mut s = self.kv_shard(ns, key, now);
        Ok(s.map
            .remove(&(ns.to_string(), key.to_string()))
            .is_some_and(|e| e.expires_at > now))
    }

    async fn incr(
        &self,
        ns: &str,
        key: &str,
        limit: Option<u64>,
        expires_at: i64,
        now: i64,
    ) -> Result<Result<u64, u64>, HotError> {
        let mut s = self.kv_shard(ns, key, now);
        let k = (ns.to_string(), key.to_string());
        s.room_for(&k)?;
        let e = s.map.entry(k).or_insert(KvEntry {
            value: KvValue::Counter(0),
            expires_at,
        });
        if e.expires_at <= now {
            *e = KvEntry {
                value: KvValue::Counter(0),
                expires_at,
            };
        }
        let cur = match e.value {
            KvValue::Counter(c) => c,
            KvValue::Bytes(_) => 0,
        };
        if limit.is_some_and(|l| cur >= l) {
            return Ok(Err(cur));
        }
        e.value = KvValue::Counter(cur + 1);
        Ok(Ok(cur + 1))
    }

    async fn admit(&self, a: &Admission) -> Result<Verdict, HotError> {
        if let Some(n) = &a.nonce {
            if !self
                .insert_nonce(&n.app_id, &n.nonce, n.expires_at, n.now)
                .await
            {
                return Ok(Verdict {
                    now: (self.clock)(),
                    replay: true,
                    ..Verdict::default()
                });
            }
        }
        if a.checks.is_empty() && !a.check_pause {
            return Ok(Verdict {
                now: (self.clock)(),
                ..Verdict::default()
            });
        }
        let now = (self.clock)();
        let mut l = self.limits.lock().unwrap_or_else(|p| p.into_inner());
        l.admit(a, now)
    }

    async fn release(&self, keys: &[String], slot: &str) -> Result<(), HotError> {
        let mut l = self.limits.lock().unwrap_or_else(|p| p.into_inner());
        for k in keys {
            if let Some(s) = l.slots.get_mut(k) {
                s.remove(slot);
                if s.is_empty() {
                    l.slots.remove(k);
                }
            }
        }
        Ok(())
    }

    async fn add_amount(
        &self,
        ns: &str,
        key: &str,
        delta: i64,
        limit: Option<u64>,
        expires_at: i64,
        now: i64,
    ) -> Result<Result<u64, u64>, HotError> {
        let mut s = self.kv_shard(ns, key, now);
        let k = (ns.to_string(), key.to_string());
        s.room_for(&k)?;
        let e = s.map.entry(k).or_insert(KvEntry {
            value: KvValue::Counter(0),
            expires_at,
        });
        if e.expires_at <= now {
            *e = KvEntry {
                value: KvValue::Counter(0),
                expires_at,
            };
        }
        let cur = match e.value {
            KvValue::Counter(c) => c,
            KvValue::Bytes(_) => 0,
        };
        let next = cur.saturating_add_signed(delta);
        if delta > 0 && limit.is_some_and(|l| next > l) {
            return Ok(Err(cur));
        }
        e.value = KvValue::Counter(next);
        Ok(Ok(next))
    }
}

/// Cases every [`HotState`] implementation must pass: call each from a test
/// of that implementation (`conformance::all(&backend).await`).
// Test-suite code, compiled into the library so every backend's tests can
// call it: an unexpected error is a failed case, so it unwraps.
#[allow(clippy::unwrap_used)]
pub mod conformance {
    use super::{Admission, HotState, LimitCheck, NonceCheck};
    use menshen_model::LimitWindow;
    use std::sync::Arc;

    /// Every case below.
    pub async fn all<H: HotState>(h: Arc<H>) {
        values_expire_and_are_replaced(&*h).await;
        take_is_single_use_under_concurrency(h.clone()).await;
        incr_stops_at_the_limit_under_concurrency(h.clone()).await;
        namespaces_are_separate(&*h).await;
        admission_counts_exactly_under_concurrency(h.clone()).await;
        admission_is_all_or_nothing_and_pauses(&*h).await;
        concurrency_slots_are_taken_and_given_back(&*h).await;
    }

    fn check(key: &str, window: LimitWindow, max: u64) -> LimitCheck {
        LimitCheck {
            key: key.into(),
            window,
            max,
            bounded: true,
            pause_secs: None,
        }
    }

    /// TRF-1: 50 concurrent admissions against a month limit of 7: exactly
    /// 7 pass; an alert counter beside it counts exactly the 7 admitted;
    /// a replayed nonce counts nothing (INT-4).
    pub async fn admission_counts_exactly_under_concurrency<H: HotState>(h: Arc<H>) {
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let h = h.clone();
                tokio::spawn(async move {
                    let mut alert = check("conf-alert", LimitWindow::Month, 1);
                    alert.bounded = false;
                    let a = Admission {
                        nonce: Some(NonceCheck {
                            app_id: "conf-app".into(),
                            nonce: format!("n{i}"),
                            expires_at: 2_000_000_000,
                            now: 1_000_000_000,
                        }),
                        checks: vec![check("conf-month", LimitWindow::Month, 7), alert],
                        slot: format!("s{i}"),
                        slot_ttl_secs: 60,
                        ..Admission::default()
                    };
                    h.admit(&a).await.unwrap()
                })
            })
            .collect();
        let mut admitted = vec![];
        for t in tasks {
            let v = t.await.unwrap();
            assert!(!v.replay);
            assert!(
                v.now > 1_700_000_000,
                "the hot state's own clock: {}",
                v.now
            );
            let (_, end) = LimitWindow::Month.bounds(v.now);
            assert_eq!(v.resets[0], end, "the Shanghai month's end");
            if v.refused.is_none() {
                admitted.push(v.counts.clone());
            } else {
                assert_eq!(v.refused, Some(0));
                assert_eq!(v.counts[0], 7);
            }
        }
        admitted.sort_unstable();
        let expect: Vec<Vec<u64>> = (1..=7).map(|n| vec![n, n]).collect();
        assert_eq!(admitted, expect);
        let again = Admission {
            nonce: Some(NonceCheck {
                app_id: "conf-app".into(),
                nonce: "n0".into(),
                expires_at: 2_000_000_000,
                now: 1_000_000_001,
            }),
            checks: vec![check("conf-other", LimitWindow::Month, 7)],
            slot: "x".into(),
            slot_ttl_secs: 60,
            ..Admission::default()
        };
        let v = h.admit(&again).await.unwrap();
        assert!(v.replay);
        let probe = Admission {
            checks: vec![check("conf-other", LimitWindow::Month, 7)],
            slot: "y".into(),
            slot_ttl_secs: 60,
            ..Admission::default()
        };
        assert_eq!(
            h.admit(&probe).await.unwrap().counts,
            [1],
            "replay counted nothing"
        );
    }

    /// TRF-1: a call refused by one counter is counted by none; a pause
    /// rule's refusal pauses the app, and the pause refuses its next call
    /// before any counter.
    pub async fn admission_is_all_or_nothing_and_pauses<H: HotState>(h: &H) {
        let a = |slot: &str| Admission {
            app_id: Some("conf-pause-app".into()),
            check_pause: true,
            checks: vec![
                check("conf-wide", LimitWindow::Day, 10),
                LimitCheck {
                    pause_secs: Some(120),
                    ..check("conf-narrow", LimitWindow::Day, 1)
                },
            ],
            slot: slot.into(),
            slot_ttl_secs: 60,
            ..Admission::default()
        };
        let v = h.admit(&a("1")).await.unwrap();
        assert_eq!(
            (v.refused, v.counts.clone(), v.paused_until),
            (None, vec![1, 1], None)
        );
        let v = h.admit(&a("2")).await.unwrap();
        assert_eq!(v.refused, Some(1));
        assert_eq!(v.counts, [1, 1], "nothing counted");
        let until = v.paused_until.expect("paused by this refusal");
        assert!(
            (v.now + 119..=v.now + 120).contains(&until),
            "{until} {}",
            v.now
        );
        let v = h.admit(&a("3")).await.unwrap();
        assert_eq!((v.refused, v.paused_until), (None, Some(until)));
        assert!(v.counts.is_empty(), "refused before any counter");
        // Another app is not paused.
        let mut b = a("4");
        b.app_id = Some("conf-other-app".into());
        b.checks.truncate(1);
        let v = h.admit(&b).await.unwrap();
        assert_eq!(
            (v.refused, v.paused_until, v.counts.clone()),
            (None, None, vec![2])
        );
    }

    /// TRF-1: at most `max` slots in flight; a slot given back is free at
    /// once.
    pub async fn concurrency_slots_are_taken_and_given_back<H: HotState>(h: &H) {
        let a = |slot: &str| Admission {
            checks: vec![check("conf-cc", LimitWindow::Concurrent, 2)],
            slot: slot.into(),
            slot_ttl_secs: 300,
            ..Admission::default()
        };
        assert_eq!(h.admit(&a("s1")).await.unwrap().counts, [1]);
        assert_eq!(h.admit(&a("s2")).await.unwrap().counts, [2]);
        let v = h.admit(&a("s3")).await.unwrap();
        assert_eq!((v.refused, v.counts), (Some(0), vec![2]));
        h.release(&["conf-cc".to_string()], "s1").await.unwrap();
        h.release(&["conf-cc".to_string()], "unknown")
            .await
            .unwrap();
        let v = h.admit(&a("s3")).await.unwrap();
        assert_eq!((v.refused, v.counts), (None, vec![2]));
    }

    /// put/get/delete, expiry, replacement.
    pub async fn values_expire_and_are_replaced<H: HotState>(h: &H) {
        h.put("t", "k1", b"v1".to_vec(), 100, 0).await.unwrap();
        assert_eq!(
            h.get("t", "k1", 50).await.unwrap().as_deref(),
            Some(&b"v1"[..])
        );
        assert_eq!(h.get("t", "k1", 100).await.unwrap(), None, "expired");
        h.put("t", "k1", b"v2".to_vec(), 300, 150).await.unwrap();
        h.put("t", "k1", b"v3".to_vec(), 300, 151).await.unwrap();
        assert_eq!(
            h.get("t", "k1", 152).await.unwrap().as_deref(),
            Some(&b"v3"[..])
        );
        assert!(h.delete("t", "k1", 153).await.unwrap());
        assert!(!h.delete("t", "k1", 154).await.unwrap());
        assert_eq!(h.get("t", "k1", 155).await.unwrap(), None);
    }

    /// Of 50 concurrent takers exactly one gets the value.
    pub async fn take_is_single_use_under_concurrency<H: HotState>(h: Arc<H>) {
        h.put("code", "c1", b"x".to_vec(), 1000, 0).await.unwrap();
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let h = h.clone();
                tokio::spawn(async move { h.take("code", "c1", 1).await.unwrap() })
            })
            .collect();
        let mut got = 0;
        for t in tasks {
            if t.await.unwrap().is_some() {
                got += 1;
            }
        }
        assert_eq!(got, 1);
        assert_eq!(h.take("code", "c1", 2).await.unwrap(), None);
        h.put("code", "c2", b"y".to_vec(), 10, 0).await.unwrap();
        assert_eq!(h.take("code", "c2", 10).await.unwrap(), None, "expired");
    }

    /// 50 concurrent increments against a limit of 7: exactly 7 succeed.
    pub async fn incr_stops_at_the_limit_under_concurrency<H: HotState>(h: Arc<H>) {
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let h = h.clone();
                tokio::spawn(async move { h.incr("uses", "cn1", Some(7), 1000, 1).await.unwrap() })
            })
            .collect();
        let mut ok = Vec::new();
        for t in tasks {
            if let Ok(v) = t.await.unwrap() {
                ok.push(v);
            }
        }
        ok.sort_unstable();
        assert_eq!(ok, (1..=7).collect::<Vec<u64>>());
        assert_eq!(
            h.incr("uses", "cn1", Some(7), 1000, 2).await.unwrap(),
            Err(7)
        );
        assert_eq!(h.incr("uses", "cn1", None, 1000, 3).await.unwrap(), Ok(8));
        // An expired counter starts again.
        assert_eq!(
            h.incr("uses", "cn1", Some(7), 2000, 1000).await.unwrap(),
            Ok(1)
        );
    }

    /// The same key in two namespaces is two entries.
    pub async fn namespaces_are_separate<H: HotState>(h: &H) {
        h.put("a", "same", b"1".to_vec(), 100, 0).await.unwrap();
        h.put("b", "same", b"2".to_vec(), 100, 0).await.unwrap();
        assert_eq!(
            h.get("a", "same", 1).await.unwrap().as_deref(),
            Some(&b"1"[..])
        );
        assert_eq!(
            h.take("b", "same", 1).await.unwrap().as_deref(),
            Some(&b"2"[..])
        );
        assert_eq!(
            h.get("a", "same", 1).await.unwrap().as_deref(),
            Some(&b"1"[..])
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tok_1_memory_hot_state_passes_the_conformance_cases() {
        conformance::all(std::sync::Arc::new(MemoryHotState::default())).await;
    }

    #[tokio::test]
    async fn keyed_values_are_bounded_per_shard_and_expired_ones_make_room() {
        let h = MemoryHotState::default();
        // Fill far past the whole bound: writes start failing, never grow
        // without end.
        let total = KV_ENTRIES_PER_SHARD * SHARDS;
        let mut refused = 0;
        for i in 0..(total + total / 4) {
            if h.put("sess", &format!("k{i}"), vec![1], 100, 0)
                .await
                .is_err()
            {
                refused += 1;
            }
        }
        assert!(refused >= total / 4, "{refused}");
        let held: usize = h.kv.iter().map(|s| s.lock().unwrap().map.len()).sum();
        assert!(held <= total);
        // Once they expire, new keys are taken again.
        assert!(h.put("sess", "fresh", vec![1], 300, 200).await.is_ok());
        assert!(h.incr("uses", "c", None, 300, 200).await.is_ok());
    }

    /// TRF-1: the daily quota starts again at midnight Asia/Shanghai, and
    /// a month's at the first of the month there (injected clock); a
    /// concurrency slot that is never given back frees itself after its TTL.
    #[tokio::test]
    async fn trf_1_daily_quota_resets_at_shanghai_midnight_and_slots_expire() {
        use std::sync::atomic::{AtomicI64, Ordering};
        // 2026-11-30 23:59:58 in Shanghai (15:59:58Z); December starts in 2 s.
        let t = Arc::new(AtomicI64::new(1_796_054_398));
        let t2 = t.clone();
        let h = MemoryHotState::with_clock(Arc::new(move || t2.load(Ordering::SeqCst)));
        let check = |key: &str, window, max| LimitCheck {
            key: key.into(),
            window,
            max,
            bounded: true,
            pause_secs: None,
        };
        let a = Admission {
            checks: vec![
                check("d", LimitWindow::Day, 2),
                check("m", LimitWindow::Month, 3),
            ],
            ..Admission::default()
        };
        assert_eq!(h.admit(&a).await.unwrap().refused, None);
        assert_eq!(h.admit(&a).await.unwrap().refused, None);
        let v = h.admit(&a).await.unwrap();
        assert_eq!((v.refused, v.resets[0]), (Some(0), 1_796_054_400));
        t.store(1_796_054_400, Ordering::SeqCst); // 00:00:00 Shanghai
        let v = h.admit(&a).await.unwrap();
        assert_eq!(
            (v.refused, v.counts),
            (None, vec![1, 1]),
            "both windows anew"
        );
        let cc = Admission {
            checks: vec![check("c", LimitWindow::Concurrent, 1)],
            slot: "dead-node".into(),
            slot_ttl_secs: 30,
            ..Admission::default()
        };
        assert_eq!(h.admit(&cc).await.unwrap().refused, None);
        let mut other = cc.clone();
        other.slot = "live".into();
        assert_eq!(h.admit(&other).await.unwrap().refused, Some(0));
        t.fetch_add(30, Ordering::SeqCst);
        assert_eq!(h.admit(&other).await.unwrap().refused, None, "TTL passed");
    }

    #[tokio::test]
    async fn int_4_nonce_once_per_app_until_expiry() {
        let h = MemoryHotState::default();
        assert!(h.insert_nonce("a", "n1", 100, 0).await);
        assert!(!h.insert_nonce("a", "n1", 100, 50).await);
        assert!(h.insert_nonce("b", "n1", 100, 50).await);
        assert!(h.insert_nonce("a", "n1", 300, 100).await);
        // The pair is hashed unambiguously.
        assert!(h.insert_nonce("ab", "c", 1000, 200).await);
        assert!(h.insert_nonce("a", "bc", 1000, 200).await);
        assert!(!h.insert_nonce("ab", "c", 1000, 201).await);
    }

    #[tokio::test]
    async fn int_4_many_nonces_each_once_and_expired_ones_swept() {
        let h = MemoryHotState::default();
        for i in 0..20_000 {
            assert!(h.insert_nonce("app", &format!("n{i}"), 100, 0).await);
        }
        for i in 0..20_000 {
            assert!(!h.insert_nonce("app", &format!("n{i}"), 100, 1).await);
        }
        // After expiry every shard sweeps on its next insert.
        for i in 0..20_000 {
            assert!(h.insert_nonce("app", &format!("m{i}"), 300, 150).await);
        }
        let kept: usize = h.shards.iter().map(|s| s.lock().unwrap().seen.len()).sum();
        assert_eq!(kept, 20_000);
    }
}
