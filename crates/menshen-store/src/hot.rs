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
use std::sync::Mutex;

use async_trait::async_trait;

/// A hot-state backend failed (the in-process one never does).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HotError {
    /// The backend could not be reached or answered wrongly.
    #[error("hot state unavailable: {0}")]
    Unavailable(String),
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
        }
    }
}

impl MemoryHotState {
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
}

/// Cases every [`HotState`] implementation must pass: call each from a test
/// of that implementation (`conformance::all(&backend).await`).
// Test-suite code, compiled into the library so every backend's tests can
// call it: an unexpected error is a failed case, so it unwraps.
#[allow(clippy::unwrap_used)]
pub mod conformance {
    use super::HotState;
    use std::sync::Arc;

    /// Every case below.
    pub async fn all<H: HotState>(h: Arc<H>) {
        values_expire_and_are_replaced(&*h).await;
        take_is_single_use_under_concurrency(h.clone()).await;
        incr_stops_at_the_limit_under_concurrency(h.clone()).await;
        namespaces_are_separate(&*h).await;
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
