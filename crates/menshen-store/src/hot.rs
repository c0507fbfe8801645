//! Shared hot state: data the gateway reads and writes per request (nonces now;
//! rate-limit counters and one-time tokens later). In-process here; the Redis
//! implementation of the cluster mode implements the same trait.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

/// Hot-state operations.
#[async_trait]
pub trait HotState: Send + Sync + 'static {
    /// Record `nonce` for `app_id` until `expires_at` (unix seconds). Returns
    /// `false` if it was already recorded and has not expired (a replay).
    async fn insert_nonce(&self, app_id: &str, nonce: &str, expires_at: i64, now: i64) -> bool;
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
