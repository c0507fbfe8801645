//! Transaction serial numbers (交易流水号), unique across nodes:
//! `T` + 13-digit unix milliseconds + 8-hex node id + 6-hex counter.

use std::sync::atomic::{AtomicU32, Ordering};

/// Generates transaction serial numbers for one node.
pub struct TxnIds {
    node: String,
    counter: AtomicU32,
}

impl TxnIds {
    /// `node` must be 8 hex characters (use [`TxnIds::random_node_id`]).
    pub fn new(node: String) -> Self {
        TxnIds {
            node,
            counter: AtomicU32::new(0),
        }
    }

    /// A random 8-hex node id.
    pub fn random_node_id() -> String {
        menshen_crypto::random_bytes(4)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The node id.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The next id, for a request that started at `t`.
    pub fn next_at(&self, t: std::time::SystemTime) -> String {
        self.next(
            t.duration_since(std::time::SystemTime::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0),
        )
    }

    /// The next id.
    pub fn next(&self, unix_ms: u128) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed) & 0x00ff_ffff;
        format!("T{unix_ms:013}{}{n:06x}", self.node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_fixed_length() {
        let t = TxnIds::new("0a0b0c0d".into());
        let a = t.next(1_700_000_000_000);
        let b = t.next(1_700_000_000_000);
        assert_ne!(a, b);
        assert_eq!(a.len(), 28);
        assert!(a.starts_with("T1700000000000"));
    }
}
