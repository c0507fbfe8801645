//! Flow control's settings and node-wide state (TRF-1; issue 12 items 4
//! and 7): what A1 calls get while the shared hot state (Redis) cannot
//! answer, the in-process fallback used then, the concurrency slots a call
//! holds until its exchange ends, and the counters an operator reads.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use menshen_store::{HotState, MemoryHotState};
use serde::{Deserialize, Serialize};

/// What an A1 call gets while the shared hot state cannot answer (issue 12
/// item 7). A2/A3 calls always fail closed (`SHARED_STATE_UNAVAILABLE`),
/// whatever this says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DownPolicy {
    /// This node enforces its share of each limit (`max / nodes`, at
    /// least one) in process, and checks nonces in process (replays are
    /// caught per node only while the hot state is down).
    #[default]
    Local,
    /// Limits are not enforced (nonces still checked in process).
    Open,
    /// A1 calls fail closed too.
    Closed,
}

impl DownPolicy {
    /// The config name.
    pub fn as_str(self) -> &'static str {
        match self {
            DownPolicy::Local => "local",
            DownPolicy::Open => "open",
            DownPolicy::Closed => "closed",
        }
    }
}

/// `[gateway.flow_control]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowControlConfig {
    /// `local` (default), `open` or `closed`: A1 calls while the shared hot
    /// state is down.
    #[serde(default)]
    pub a1_when_hot_state_down: DownPolicy,
    /// Nodes sharing the limits; under `local` each enforces `max / nodes`
    /// (at least 1). Default 1.
    #[serde(default = "one")]
    pub nodes: u32,
    /// Seconds a concurrency slot lives unless given back, so the slots of
    /// a node that died free themselves. Default: the request deadline
    /// (`request_timeout_ms`) plus 5 s, since no exchange outlives it.
    #[serde(default)]
    pub slot_ttl_secs: Option<u64>,
}

fn one() -> u32 {
    1
}

impl Default for FlowControlConfig {
    fn default() -> Self {
        FlowControlConfig {
            a1_when_hot_state_down: DownPolicy::Local,
            nodes: 1,
            slot_ttl_secs: None,
        }
    }
}

impl FlowControlConfig {
    /// Check values; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=1000).contains(&self.nodes) {
            return Err("gateway.flow_control.nodes: must be 1-1000 (default 1)".into());
        }
        if self.slot_ttl_secs.is_some_and(|t| t == 0 || t > 86_400) {
            return Err("gateway.flow_control.slot_ttl_secs: must be 1-86400".into());
        }
        Ok(())
    }

    /// The slot TTL in effect.
    pub fn slot_ttl(&self, request_timeout_ms: u64) -> u64 {
        self.slot_ttl_secs
            .unwrap_or(request_timeout_ms.div_ceil(1000) + 5)
    }

    /// This node's share of `max` under `local`.
    pub fn share(&self, max: u64) -> u64 {
        (max / u64::from(self.nodes.max(1))).max(1)
    }
}

/// Counters an operator reads (`GatewayHandle::state.flow`), beside the
/// log lines each event writes.
#[derive(Debug, Default)]
pub struct FlowCounters {
    /// Calls let through over an `alert` rule's limit.
    pub alerts: AtomicU64,
    /// Calls refused by a `reject` or `pause` rule (or a pause).
    pub rejects: AtomicU64,
    /// Pauses set by `pause` rules.
    pub pauses: AtomicU64,
    /// A1 calls served under the down policy (`local`/`open`).
    pub degraded: AtomicU64,
    /// Calls refused because the hot state could not answer.
    pub failed_closed: AtomicU64,
}

/// Node-wide flow-control state.
pub struct FlowState {
    /// The in-process hot state A1 calls use while the shared one is down.
    pub local: Arc<MemoryHotState>,
    /// Counters.
    pub counters: FlowCounters,
    /// Unix second of the last "hot state down" warning (one per 10 s).
    last_down_warning: AtomicI64,
}

impl Default for FlowState {
    fn default() -> Self {
        FlowState {
            local: Arc::new(MemoryHotState::default()),
            counters: FlowCounters::default(),
            last_down_warning: AtomicI64::new(i64::MIN),
        }
    }
}

impl FlowState {
    /// Whether to log the hot state being down now (at most every 10 s;
    /// the counters count every call).
    pub fn warn_now(&self, now: i64) -> bool {
        let last = self.last_down_warning.load(Ordering::Relaxed);
        now.saturating_sub(last) >= 10
            && self
                .last_down_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

/// The concurrency slots one call holds (TRF-1): given back when dropped,
/// which is when its exchange ends, however it ends (answered, refused
/// later, timed out, or the client gone). If the give-back fails the slots
/// expire by their TTL.
pub struct HeldSlots {
    /// Where they were taken.
    pub hot: Arc<dyn HotState>,
    /// The concurrency counters' keys.
    pub keys: Vec<String>,
    /// The call's slot id.
    pub slot: String,
}

impl Drop for HeldSlots {
    fn drop(&mut self) {
        if self.keys.is_empty() {
            return;
        }
        let (hot, keys, slot) = (
            self.hot.clone(),
            std::mem::take(&mut self.keys),
            std::mem::take(&mut self.slot),
        );
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    if let Err(e) = hot.release(&keys, &slot).await {
                        tracing::warn!(error = %e, "concurrency slots not given back; they expire by their TTL");
                    }
                });
            }
            Err(_) => {
                tracing::warn!(
                    "no runtime to give concurrency slots back; they expire by their TTL"
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trf_1_flow_control_settings() {
        let c: FlowControlConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c, FlowControlConfig::default());
        assert_eq!(c.slot_ttl(30_000), 35);
        let c: FlowControlConfig = serde_json::from_str(
            r#"{"a1_when_hot_state_down": "open", "nodes": 3, "slot_ttl_secs": 9}"#,
        )
        .unwrap();
        assert_eq!(c.a1_when_hot_state_down, DownPolicy::Open);
        assert_eq!((c.share(10), c.share(2), c.slot_ttl(1)), (3, 1, 9));
        assert!(
            serde_json::from_str::<FlowControlConfig>(r#"{"a1_when_hot_state_down": "x"}"#)
                .is_err()
        );
        let mut bad = c.clone();
        bad.nodes = 0;
        assert!(bad.validate().unwrap_err().contains("nodes"));
    }
}
