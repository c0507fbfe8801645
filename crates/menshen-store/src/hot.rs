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
pub struct MemoryHotState {
    shards: Vec<Mutex<Shard>>,
}

#[derive(Default)]
struct Shard {
    seen: HashMap<(String, String), i64>,
    next_sweep: i64,
}

impl Default for MemoryHotState {
    fn default() -> Self {
        MemoryHotState {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
        }
    }
}

impl MemoryHotState {
    fn shard(&self, app_id: &str, nonce: &str) -> &Mutex<Shard> {
        // FNV-1a: cheap and stable; the map inside each shard is DoS-resistant.
        let mut x: u64 = 0xcbf29ce484222325;
        for b in app_id.bytes().chain([0]).chain(nonce.bytes()) {
            x ^= u64::from(b);
            x = x.wrapping_mul(0x100000001b3);
        }
        &self.shards[(x as usize) % SHARDS]
    }
}

#[async_trait]
impl HotState for MemoryHotState {
    async fn insert_nonce(&self, app_id: &str, nonce: &str, expires_at: i64, now: i64) -> bool {
        // A poisoned lock only means another request panicked mid-insert; the
        // map is still consistent, so keep using it.
        let mut s = self
            .shard(app_id, nonce)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if now >= s.next_sweep {
            s.seen.retain(|_, exp| *exp > now);
            s.next_sweep = now + 10;
        }
        let key = (app_id.to_string(), nonce.to_string());
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
    }
}
