//! Gateway settings (the `[gateway]` table of the config file).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Settings of the data plane.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Addresses to listen on (IPv4 and/or IPv6), e.g. `["0.0.0.0:8443", "[::]:8443"]`.
    pub listen: Vec<SocketAddr>,
    /// PEM certificate chain of the gateway.
    pub tls_cert: PathBuf,
    /// PEM private key of the gateway (PKCS#8; keep it mode 0600).
    pub tls_key: PathBuf,
    /// Peers whose `X-Forwarded-For` is believed (load balancers). Empty: the
    /// TCP peer is always the client IP.
    #[serde(default)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Allowed clock skew for a signature's `created`, seconds (INT-4).
    #[serde(default = "default_window")]
    pub replay_window_secs: u32,
    /// Largest request body accepted, bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Largest upstream response body relayed, bytes.
    #[serde(default = "default_max_response")]
    pub max_response_bytes: usize,
    /// Upstream connect timeout, milliseconds.
    #[serde(default = "default_connect_ms")]
    pub upstream_connect_timeout_ms: u64,
    /// Upstream request timeout (until the whole response is read), milliseconds.
    #[serde(default = "default_request_ms")]
    pub upstream_timeout_ms: u64,
    /// Extra CA certificates (PEM) trusted for `https://` upstreams.
    #[serde(default)]
    pub upstream_ca: Option<PathBuf>,
    /// Time allowed for a client to send its request headers, milliseconds.
    #[serde(default = "default_header_ms")]
    pub header_read_timeout_ms: u64,
    /// How often the snapshot checks the store for changes, milliseconds (also
    /// woken at once by local changes).
    #[serde(default = "default_refresh_ms")]
    pub snapshot_refresh_ms: u64,
    /// CA certificates (PEM) for client certificates (mutual TLS). When set,
    /// clients may present a certificate; apps bind theirs by fingerprint.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// Sign every response, A1 and unrouted ones too (A2/A3 always are).
    #[serde(default)]
    pub sign_all_responses: bool,
    /// Make A1 access records durable before answering too (A2/A3 always are).
    #[serde(default)]
    pub durable_audit_a1: bool,
    /// An HTTP/1.1 or HTTP/2 connection with no request in flight is closed
    /// after this long, milliseconds (before its first request or between
    /// requests).
    #[serde(default = "default_idle_ms")]
    pub idle_timeout_ms: u64,
    /// Time allowed for a request's whole body to arrive after its head,
    /// milliseconds; past it the answer is 408 `REQUEST_TIMEOUT`.
    #[serde(default = "default_body_ms")]
    pub body_read_timeout_ms: u64,
    /// Deadline for a whole request, from its head to the gateway's answer,
    /// milliseconds. A request still reading or checking then is answered 408;
    /// one already forwarded is recorded with the outcome `unknown`.
    #[serde(default = "default_request_deadline_ms")]
    pub request_timeout_ms: u64,
    /// Concurrent HTTP/2 streams per connection.
    #[serde(default = "default_h2_streams")]
    pub h2_max_concurrent_streams: u32,
    /// One memory budget for every request body held at once, bytes; over it
    /// a request is answered 503 `SERVER_BUSY` (never an out-of-memory).
    #[serde(default = "default_body_budget")]
    pub body_memory_budget_bytes: usize,
    /// One memory budget for every upstream answer being read and worked on
    /// at once, bytes (apart from the requests' bodies, so a flood of
    /// request bodies cannot starve the answers of signed calls); an answer
    /// that does not fit is withheld 502 `OUTCOME_UNKNOWN` (the service may
    /// have acted).
    #[serde(default = "default_body_budget")]
    pub answer_memory_budget_bytes: usize,
    /// Connections open at once (TLS handshakes included). At the cap the
    /// oldest idle connection is closed to admit a new one; with none idle
    /// the new one is refused. Lowered at start-up to fit the file-descriptor
    /// limit with a reserve for upstream, store and log files.
    #[serde(default = "default_max_conns")]
    pub max_connections: usize,
    /// Connections open at once from one client IP (same rule at the cap).
    #[serde(default = "default_max_conns_ip")]
    pub max_connections_per_ip: usize,
    /// Connection-level failures (TLS handshake, HTTP parse errors, header
    /// timeouts, refused connections) recorded per client IP per minute; the
    /// rest are counted and the count is written with the next record.
    #[serde(default = "default_conn_records")]
    pub connection_records_per_ip_per_minute: u32,
    /// Flow control (TRF-1), `[gateway.flow_control]`: A1 calls while the
    /// shared hot state is down, the nodes sharing a limit, the
    /// concurrency slots' TTL.
    #[serde(default)]
    pub flow_control: crate::flow::FlowControlConfig,
    /// Benchmarking only: answer A2/A3 calls without waiting for their access
    /// record to reach the disk. This breaks DEP-2 (RPO 0) and is logged as a
    /// warning at start-up; `bench/run.sh` uses it to measure what durable
    /// audit adds to an A2 call.
    #[serde(default)]
    pub unsafe_async_audit: bool,
    /// Count every call for `/metrics` and the statistics (MON-1; default
    /// on). Off: nothing is counted on the request path (the benchmark's
    /// comparison), the node's own figures are still exposed.
    #[serde(default = "default_metrics")]
    pub metrics: bool,
    /// Named upstreams (TRF-2), `[gateway.upstreams.NAME]`: an API whose
    /// `upstream` is `upstream://NAME` is served by NAME's targets, with
    /// load balancing, health checks, a circuit breaker and a bulkhead
    /// (`docs/upstreams.md`).
    #[serde(default)]
    pub upstreams: std::collections::BTreeMap<String, crate::upstream::config::UpstreamConfig>,
}

fn default_metrics() -> bool {
    true
}
fn default_window() -> u32 {
    300
}
fn default_max_body() -> usize {
    1 << 20
}
fn default_max_response() -> usize {
    8 << 20
}
fn default_connect_ms() -> u64 {
    2_000
}
fn default_request_ms() -> u64 {
    10_000
}
fn default_header_ms() -> u64 {
    10_000
}
fn default_refresh_ms() -> u64 {
    500
}
fn default_idle_ms() -> u64 {
    30_000
}
fn default_body_ms() -> u64 {
    10_000
}
fn default_request_deadline_ms() -> u64 {
    30_000
}
fn default_h2_streams() -> u32 {
    64
}
fn default_body_budget() -> usize {
    64 << 20
}
fn default_max_conns() -> usize {
    10_000
}
fn default_max_conns_ip() -> usize {
    256
}
fn default_conn_records() -> u32 {
    10
}

impl GatewayConfig {
    /// Defaults for everything but the listener and certificate.
    pub fn new(listen: Vec<SocketAddr>, tls_cert: PathBuf, tls_key: PathBuf) -> Self {
        GatewayConfig {
            listen,
            tls_cert,
            tls_key,
            trusted_proxies: vec![],
            replay_window_secs: default_window(),
            max_body_bytes: default_max_body(),
            max_response_bytes: default_max_response(),
            upstream_connect_timeout_ms: default_connect_ms(),
            upstream_timeout_ms: default_request_ms(),
            upstream_ca: None,
            header_read_timeout_ms: default_header_ms(),
            snapshot_refresh_ms: default_refresh_ms(),
            client_ca: None,
            sign_all_responses: false,
            durable_audit_a1: false,
            unsafe_async_audit: false,
            idle_timeout_ms: default_idle_ms(),
            body_read_timeout_ms: default_body_ms(),
            request_timeout_ms: default_request_deadline_ms(),
            h2_max_concurrent_streams: default_h2_streams(),
            body_memory_budget_bytes: default_body_budget(),
            answer_memory_budget_bytes: default_body_budget(),
            max_connections: default_max_conns(),
            max_connections_per_ip: default_max_conns_ip(),
            connection_records_per_ip_per_minute: default_conn_records(),
            flow_control: Default::default(),
            metrics: true,
            upstreams: Default::default(),
        }
    }

    /// Check values; the error names the field and the fix.
    pub fn validate(&self) -> Result<(), String> {
        if self.listen.is_empty() {
            return Err(
                "gateway.listen: give at least one address, e.g. [\"0.0.0.0:8443\"]".into(),
            );
        }
        self.flow_control.validate()?;
        if !(1..=3600).contains(&self.replay_window_secs) {
            return Err("gateway.replay_window_secs: must be 1-3600 (default 300)".into());
        }
        if self.max_body_bytes == 0 || self.max_body_bytes > 64 << 20 {
            return Err("gateway.max_body_bytes: must be 1 byte to 64 MiB".into());
        }
        if self.upstream_timeout_ms == 0 || self.upstream_connect_timeout_ms == 0 {
            return Err(
                "gateway.upstream_timeout_ms / upstream_connect_timeout_ms: must be > 0".into(),
            );
        }
        if !(50..=60_000).contains(&self.snapshot_refresh_ms) {
            return Err("gateway.snapshot_refresh_ms: must be 50-60000 (default 500)".into());
        }
        let ms = |v: u64, name: &str, default: u64| {
            if (1..=3_600_000).contains(&v) {
                Ok(())
            } else {
                Err(format!(
                    "gateway.{name}: must be 1-3600000 milliseconds (default {default})"
                ))
            }
        };
        ms(self.idle_timeout_ms, "idle_timeout_ms", default_idle_ms())?;
        ms(
            self.header_read_timeout_ms,
            "header_read_timeout_ms",
            default_header_ms(),
        )?;
        ms(
            self.body_read_timeout_ms,
            "body_read_timeout_ms",
            default_body_ms(),
        )?;
        ms(
            self.request_timeout_ms,
            "request_timeout_ms",
            default_request_deadline_ms(),
        )?;
        if self.request_timeout_ms < self.body_read_timeout_ms {
            return Err(format!(
                "gateway.request_timeout_ms: must be at least gateway.body_read_timeout_ms ({} ms); raise it or lower body_read_timeout_ms",
                self.body_read_timeout_ms
            ));
        }
        if !(1..=1024).contains(&self.h2_max_concurrent_streams) {
            return Err("gateway.h2_max_concurrent_streams: must be 1-1024 (default 64)".into());
        }
        if self.answer_memory_budget_bytes == 0 {
            return Err(
                "gateway.answer_memory_budget_bytes: must be above 0 (default 67108864)".into(),
            );
        }
        if self.body_memory_budget_bytes < self.max_body_bytes {
            return Err(format!(
                "gateway.body_memory_budget_bytes: must be at least gateway.max_body_bytes ({}), or no body of the largest size could ever be read",
                self.max_body_bytes
            ));
        }
        if self.connection_records_per_ip_per_minute == 0 {
            return Err("gateway.connection_records_per_ip_per_minute: must be at least 1 (default 10); connection-level failures are always recorded".into());
        }
        if self.max_connections == 0 || self.max_connections_per_ip == 0 {
            return Err(
                "gateway.max_connections / max_connections_per_ip: must be > 0 (defaults 10000 / 256)"
                    .into(),
            );
        }
        for (name, u) in &self.upstreams {
            u.validate(name)?;
        }
        Ok(())
    }
}
