//! Named upstreams in the node's config file (`[gateway.upstreams.NAME]`,
//! TRF-2): targets, load balancing, bulkhead caps, retries, active health
//! checks and the circuit breaker. An API names one with
//! `upstream = "upstream://NAME"`; an API with a plain base URL keeps the
//! direct path (no breaker, no caps).

use serde::{Deserialize, Serialize};

/// How a target is chosen among the healthy ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// The target with the fewest calls in flight; ties go round robin.
    /// A slow target gets fewer calls (the default).
    #[default]
    LeastInFlight,
    /// Each healthy target in turn.
    RoundRobin,
}

/// One named upstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Base URLs of the targets (`http://` or `https://`, each like an API's
    /// `upstream`), e.g. `["http://10.1.0.11:8080", "http://10.1.0.12:8080"]`.
    pub targets: Vec<String>,
    /// Load balancing among the healthy targets.
    #[serde(default)]
    pub balance: Balance,
    /// Bulkhead: calls in flight to this upstream at once; over it a call
    /// is answered 503 `UPSTREAM_BUSY` at once (never queued).
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
    /// Bulkhead: connections open to this upstream at once (all targets,
    /// idle ones included); a call that would need one more is answered 503
    /// `UPSTREAM_BUSY` at once.
    #[serde(default = "default_connections")]
    pub max_connections: usize,
    /// Further targets tried after a connect failure (nothing reached the
    /// upstream), for GET, HEAD, PUT, DELETE and OPTIONS only.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Whole-exchange timeout for this upstream, milliseconds (default:
    /// `gateway.upstream_timeout_ms`).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Active health checks; none: every target counts as healthy.
    #[serde(default)]
    pub health: Option<HealthConfig>,
    /// The circuit breaker (on by default).
    #[serde(default)]
    pub breaker: BreakerConfig,
}

/// Active health checks of each target (`GET base + path`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// Path checked on each target (an answer 200-399 in time is a pass).
    #[serde(default = "default_health_path")]
    pub path: String,
    /// Time between checks of a target, milliseconds.
    #[serde(default = "default_health_interval")]
    pub interval_ms: u64,
    /// Time a check may take, milliseconds.
    #[serde(default = "default_health_timeout")]
    pub timeout_ms: u64,
    /// Passes in a row that make an unhealthy target healthy again.
    #[serde(default = "default_healthy")]
    pub healthy_threshold: u32,
    /// Failures in a row that take a healthy target out of rotation.
    #[serde(default = "default_unhealthy")]
    pub unhealthy_threshold: u32,
}

/// The circuit breaker (`docs/upstreams.md` states the machine exactly).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerConfig {
    /// Whether the breaker acts.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Length of the sliding window the failure rate is taken over,
    /// milliseconds (ten buckets).
    #[serde(default = "default_window")]
    pub window_ms: u64,
    /// Calls in the window before the failure rate is looked at.
    #[serde(default = "default_min_calls")]
    pub min_calls: u32,
    /// Open when this percentage of the window's calls failed (0: off).
    #[serde(default = "default_rate")]
    pub failure_rate_percent: u32,
    /// Open after this many failures in a row (0: off).
    #[serde(default = "default_consecutive")]
    pub consecutive_failures: u32,
    /// How long an open breaker degrades every call before it lets probes
    /// through, milliseconds.
    #[serde(default = "default_open")]
    pub open_ms: u64,
    /// Probe calls let through at once when half-open; this many successes
    /// close the breaker, one failure opens it again.
    #[serde(default = "default_probes")]
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            enabled: true,
            window_ms: default_window(),
            min_calls: default_min_calls(),
            failure_rate_percent: default_rate(),
            consecutive_failures: default_consecutive(),
            open_ms: default_open(),
            half_open_probes: default_probes(),
        }
    }
}

fn yes() -> bool {
    true
}
fn default_in_flight() -> usize {
    256
}
fn default_connections() -> usize {
    256
}
fn default_retries() -> u32 {
    1
}
fn default_health_path() -> String {
    "/health".into()
}
fn default_health_interval() -> u64 {
    5_000
}
fn default_health_timeout() -> u64 {
    1_000
}
fn default_healthy() -> u32 {
    2
}
fn default_unhealthy() -> u32 {
    3
}
fn default_window() -> u64 {
    30_000
}
fn default_min_calls() -> u32 {
    20
}
fn default_rate() -> u32 {
    50
}
fn default_consecutive() -> u32 {
    5
}
fn default_open() -> u64 {
    10_000
}
fn default_probes() -> u32 {
    3
}

/// Whether `name` may name an upstream: 1-64 of `a-z 0-9 _ -`, starting
/// with a letter or digit.
pub fn valid_name(name: &str) -> bool {
    menshen_model::upstream_name_valid(name)
}

impl UpstreamConfig {
    /// Check values; the error names the field (`gateway.upstreams.NAME.x`).
    pub fn validate(&self, name: &str) -> Result<(), String> {
        let f = |field: &str, msg: &str| Err(format!("gateway.upstreams.{name}.{field}: {msg}"));
        if !valid_name(name) {
            return Err(format!(
                "gateway.upstreams.{name}: the name must be 1-64 of a-z 0-9 _ - (starting with a letter or digit)"
            ));
        }
        if self.targets.is_empty() || self.targets.len() > 64 {
            return f("targets", "give 1-64 base URLs");
        }
        for t in &self.targets {
            if menshen_model::upstream_name(t).is_some() {
                return f("targets", "a target is a http:// or https:// base URL");
            }
            if let Err(e) = menshen_model::validate_upstream(t) {
                return f("targets", &format!("{t}: {}", e.message));
            }
        }
        if self.max_in_flight == 0 || self.max_in_flight > 1_000_000 {
            return f("max_in_flight", "must be 1-1000000 (default 256)");
        }
        if self.max_connections == 0 || self.max_connections > 1_000_000 {
            return f("max_connections", "must be 1-1000000 (default 256)");
        }
        if self.retries > 8 {
            return f("retries", "must be 0-8 (default 1)");
        }
        if self
            .timeout_ms
            .is_some_and(|t| !(1..=3_600_000).contains(&t))
        {
            return f("timeout_ms", "must be 1-3600000 milliseconds");
        }
        if let Some(h) = &self.health {
            if !h.path.starts_with('/') || h.path.len() > 256 || h.path.contains(['?', '#', ' ']) {
                return f("health.path", "must be a path such as /health");
            }
            if !(100..=3_600_000).contains(&h.interval_ms) {
                return f("health.interval_ms", "must be 100-3600000 (default 5000)");
            }
            if h.timeout_ms == 0 || h.timeout_ms > h.interval_ms {
                return f(
                    "health.timeout_ms",
                    "must be 1 ms up to health.interval_ms (default 1000)",
                );
            }
            if !(1..=100).contains(&h.healthy_threshold)
                || !(1..=100).contains(&h.unhealthy_threshold)
            {
                return f(
                    "health.healthy_threshold / unhealthy_threshold",
                    "must be 1-100 (defaults 2 and 3)",
                );
            }
        }
        let b = &self.breaker;
        if b.enabled {
            if !(100..=3_600_000).contains(&b.window_ms) {
                return f("breaker.window_ms", "must be 100-3600000 (default 30000)");
            }
            if b.failure_rate_percent > 100 {
                return f("breaker.failure_rate_percent", "must be 0-100 (default 50)");
            }
            if b.failure_rate_percent == 0 && b.consecutive_failures == 0 {
                return f(
                    "breaker",
                    "set failure_rate_percent or consecutive_failures, or enabled = false",
                );
            }
            if b.min_calls > 1_000_000 || b.consecutive_failures > 1_000_000 {
                return f(
                    "breaker.min_calls / consecutive_failures",
                    "must be at most 1000000",
                );
            }
            if !(1..=3_600_000).contains(&b.open_ms) {
                return f("breaker.open_ms", "must be 1-3600000 (default 10000)");
            }
            if !(1..=1000).contains(&b.half_open_probes) {
                return f("breaker.half_open_probes", "must be 1-1000 (default 3)");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trf_2_defaults_and_validation_name_the_field() {
        let c: UpstreamConfig = serde_json::from_value(serde_json::json!({
            "targets": ["http://127.0.0.1:1", "https://10.0.0.2:8443/base"]
        }))
        .unwrap();
        assert_eq!(c.balance, Balance::LeastInFlight);
        assert!(c.breaker.enabled);
        assert_eq!(c.retries, 1);
        c.validate("core").unwrap();
        let mut bad = c.clone();
        bad.targets = vec!["upstream://x".into()];
        assert!(bad.validate("core").unwrap_err().contains("core.targets"));
        let mut bad = c.clone();
        bad.max_in_flight = 0;
        assert!(bad.validate("core").unwrap_err().contains("max_in_flight"));
        assert!(c.validate("Core Banking").is_err());
        let mut bad = c;
        bad.health = Some(HealthConfig {
            path: "health".into(),
            interval_ms: 1000,
            timeout_ms: 100,
            healthy_threshold: 1,
            unhealthy_threshold: 1,
        });
        assert!(bad.validate("core").unwrap_err().contains("health.path"));
    }
}
