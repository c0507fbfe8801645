//! Alerts to the bank's operators (MON-2, TRF-4, ATK-2; RSK-1 decisions),
//! off the request path.
//!
//! Where the signals come from: every committed access record, handed over
//! by the audit writer ([`Tee`], beside the index sink), as a few fields
//! (app, API, client IP, result, code, the risk decision) through a bounded
//! queue that drops (and counts) rather than ever wait; and the audit log's
//! health, looked at every `audit_check_ms`. No gateway stage does any of
//! this, so no call is slowed by it.
//!
//! The rules ([`Rules`]), each over a sliding window of `window_secs`:
//! - `auth_failures` (ATK-2): `auth_failures` failed authentications for
//!   one App_ID (warning);
//! - `credential_stuffing` (ATK-2): authentication failing for
//!   `stuffing_app_ids` different App_IDs from one client IP (critical);
//! - `not_granted` (ATK-2): a call to an API the app holds no grant for
//!   (warning);
//! - `failure_rate` (TRF-4): an app's failed share of at least
//!   `failure_min_calls` calls over `failure_rate` (warning);
//! - `upstream_down`: `upstream_failures` calls to one API failing at the
//!   upstream (unreachable, timeout) (critical);
//! - `breaker_open`: a call refused because the API's upstream is degraded
//!   (`SERVICE_DEGRADED`, its circuit breaker open) (critical);
//! - `audit_durability`: the audit log's last write failed (critical);
//! - `hot_state_unavailable` (issue 12 item 7): the shared hot state (Redis)
//!   could not answer: A2/A3 calls (and A1 under the `closed` policy) were
//!   refused `SHARED_STATE_UNAVAILABLE`, or A1 calls were served under the
//!   `local`/`open` policy (critical), looked at every `audit_check_ms`;
//! - `audit_index_behind` (AUD-6): the audit index has not moved for
//!   `audit_index_behind_secs` while records wait, so searches miss them
//!   (warning), looked at every `audit_check_ms`; raised again (and stored
//!   once the store answers) as long as it lasts, de-duplicated;
//! - `risk`: a risk rule's `alert` decision (warning) or a call held for
//!   review (info) (RSK-1).
//!
//! Each alert has a de-duplication key (rule and subject); the store keeps
//! one unresolved alert per key and counts repeats on it, and only a new
//! alert is delivered ([`deliver`]): to every webhook (JSON, HMAC-SM3
//! signed) and email receiver whose minimum severity it reaches, each
//! through its own bounded queue, retried with exponential back-off.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use menshen_audit::{BatchSink, Committed};
use menshen_model::alert::{AlertSeverity, NewAlert};
use menshen_store::ControlPlane;
use serde::{Deserialize, Serialize};
use serde_json::json;

pub mod baseline;
pub mod cert_network;
pub mod deliver;
pub mod egress;
pub mod expiry;
pub mod notify;

/// `[alerts]` of the node's config.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// The rules' sliding window, seconds (default 60).
    #[serde(default = "d_window")]
    pub window_secs: u64,
    /// Failed authentications of one App_ID within the window (default 5).
    #[serde(default = "d_five")]
    pub auth_failures: u32,
    /// Different App_IDs failing authentication from one client IP within
    /// the window (default 5).
    #[serde(default = "d_five")]
    pub stuffing_app_ids: u32,
    /// An app's failed share of its calls (0-1, default 0.5) ...
    #[serde(default = "d_rate")]
    pub failure_rate: f64,
    /// ... over at least this many calls in the window (default 20).
    #[serde(default = "d_twenty")]
    pub failure_min_calls: u32,
    /// Upstream failures of one API within the window (default 3).
    #[serde(default = "d_three")]
    pub upstream_failures: u32,
    /// How often the audit log's health is looked at, ms (default 1000).
    #[serde(default = "d_second")]
    pub audit_check_ms: u64,
    /// Signals queued for the rules before new ones are dropped (default 8192).
    #[serde(default = "d_queue")]
    pub queue: usize,
    /// Seconds the audit index may stand still while records wait before
    /// `audit_index_behind` is raised (default 60).
    #[serde(default = "d_index_behind")]
    pub audit_index_behind_secs: u64,
    /// Webhook receivers.
    #[serde(default)]
    pub webhook: Vec<deliver::WebhookConfig>,
    /// Email receivers (SMTP).
    #[serde(default)]
    pub email: Vec<deliver::EmailConfig>,
    /// Delivery retries: the first after this (ms, default 500), doubling.
    #[serde(default = "d_retry_base")]
    pub retry_base_ms: u64,
    /// The longest wait between two attempts, ms (default 60000).
    #[serde(default = "d_retry_max")]
    pub retry_max_ms: u64,
    /// Attempts per alert and receiver (default 8).
    #[serde(default = "d_attempts")]
    pub max_attempts: u32,
    /// One attempt's time limit, ms (default 5000).
    #[serde(default = "d_timeout")]
    pub timeout_ms: u64,
    /// The expiry watch (MON-4, KEY-4), `[alerts.expiry]`.
    #[serde(default)]
    pub expiry: expiry::ExpiryConfig,
    /// Learned baselines (MON-3), `[alerts.baseline]`.
    #[serde(default)]
    pub baseline: baseline::BaselineConfig,
    /// Notices to apps at their notification URL (MON-4, KEY-4),
    /// `[alerts.app_notice]`.
    #[serde(default)]
    pub app_notice: notify::AppNoticeConfig,
    /// A client certificate used from a new network (KEY-4),
    /// `[alerts.cert_network]`.
    #[serde(default)]
    pub cert_network: cert_network::CertNetworkConfig,
}

fn d_window() -> u64 {
    60
}
fn d_five() -> u32 {
    5
}
fn d_three() -> u32 {
    3
}
fn d_twenty() -> u32 {
    20
}
fn d_rate() -> f64 {
    0.5
}
fn d_second() -> u64 {
    1000
}
fn d_queue() -> usize {
    8192
}
fn d_index_behind() -> u64 {
    60
}
fn d_retry_base() -> u64 {
    500
}
fn d_retry_max() -> u64 {
    60_000
}
fn d_attempts() -> u32 {
    8
}
fn d_timeout() -> u64 {
    5000
}

impl Default for AlertsConfig {
    fn default() -> Self {
        // Every field has its serde default.
        toml::from_str("").unwrap_or(AlertsConfig {
            window_secs: d_window(),
            auth_failures: 5,
            stuffing_app_ids: 5,
            failure_rate: d_rate(),
            failure_min_calls: 20,
            upstream_failures: 3,
            audit_check_ms: d_second(),
            queue: d_queue(),
            audit_index_behind_secs: d_index_behind(),
            webhook: vec![],
            email: vec![],
            retry_base_ms: d_retry_base(),
            retry_max_ms: d_retry_max(),
            max_attempts: d_attempts(),
            timeout_ms: d_timeout(),
            expiry: expiry::ExpiryConfig::default(),
            baseline: baseline::BaselineConfig::default(),
            app_notice: notify::AppNoticeConfig::default(),
            cert_network: cert_network::CertNetworkConfig::default(),
        })
    }
}

impl AlertsConfig {
    /// Check the settings, naming the field.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.window_secs == 0 || self.window_secs > 86_400 {
            anyhow::bail!("alerts.window_secs: 1 to 86400");
        }
        if !(self.failure_rate > 0.0 && self.failure_rate <= 1.0) {
            anyhow::bail!("alerts.failure_rate: a share above 0 and at most 1, e.g. 0.5");
        }
        if self.auth_failures == 0
            || self.stuffing_app_ids < 2
            || self.failure_min_calls == 0
            || self.upstream_failures == 0
        {
            anyhow::bail!("alerts.auth_failures / failure_min_calls / upstream_failures: at least 1; alerts.stuffing_app_ids: at least 2");
        }
        if self.queue < 16
            || self.max_attempts == 0
            || self.audit_check_ms == 0
            || self.audit_index_behind_secs == 0
        {
            anyhow::bail!(
                "alerts.queue: at least 16; alerts.max_attempts, alerts.audit_check_ms, alerts.audit_index_behind_secs: at least 1"
            );
        }
        self.expiry.validate()?;
        self.baseline.validate()?;
        self.app_notice.validate()?;
        for (i, w) in self.webhook.iter().enumerate() {
            w.validate()
                .map_err(|e| anyhow::anyhow!("alerts.webhook[{i}].{e}"))?;
        }
        for (i, e) in self.email.iter().enumerate() {
            e.validate()
                .map_err(|x| anyhow::anyhow!("alerts.email[{i}].{x}"))?;
        }
        Ok(())
    }
}

/// What the rules need of one access record.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    /// Record time, unix seconds.
    pub at: i64,
    /// Transaction serial number.
    pub txn_id: Option<String>,
    /// App_ID (claimed or verified).
    pub app_id: Option<String>,
    /// Whether the signature verified it.
    pub app_verified: bool,
    /// API_ID.
    pub api_id: Option<String>,
    /// Client IP.
    pub client_ip: Option<String>,
    /// success / failure / unknown.
    pub result: Option<String>,
    /// Error code.
    pub code: Option<String>,
    /// The risk decision, if any (`alert`, `hold`, ...), with its rules.
    pub risk: Option<serde_json::Value>,
    /// The API's security level (`A1`..`A3`), when routed (MON-3).
    pub level: Option<String>,
    /// The call's duration, microseconds (MON-3).
    pub duration_us: Option<u64>,
    /// The client certificate's fingerprint, if one was presented (KEY-4).
    pub client_cert: Option<String>,
}

#[derive(Deserialize)]
struct RecordFields {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    txn_id: Option<String>,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    app_id: Option<String>,
    #[serde(default)]
    app_verified: bool,
    #[serde(default)]
    api_id: Option<String>,
    #[serde(default)]
    client_ip: Option<String>,
    #[serde(default)]
    result: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    risk: Option<serde_json::Value>,
    #[serde(default)]
    level: Option<String>,
    #[serde(default)]
    duration_us: Option<u64>,
    #[serde(default)]
    client_cert: Option<String>,
}

impl Signal {
    /// From a committed record: its index keys when the writer was handed
    /// them (a live record; no JSON parse, which cost ~1 us per A1 call),
    /// else, or when it carries a risk decision, its JSON line. `None` for
    /// records other than access records.
    pub fn from_committed(c: &Committed) -> Option<Signal> {
        match &c.keys {
            Some(k) if !k.has_risk => Signal::from_keys(k),
            _ => Signal::from_record(&c.rec),
        }
    }

    /// From a record's index keys (`None` for other kinds than access).
    pub fn from_keys(k: &menshen_audit::RecordKeys) -> Option<Signal> {
        if k.kind != "access" {
            return None;
        }
        Some(Signal {
            at: k.time_ms.div_euclid(1000),
            txn_id: k.txn_id.clone(),
            app_id: k.app_id.clone(),
            app_verified: k.app_verified,
            api_id: k.api_id.clone(),
            client_ip: k.client_ip.clone(),
            result: k.result.map(str::to_string),
            code: k.code.clone(),
            risk: None,
            level: k.level.clone(),
            duration_us: k.duration_us.and_then(|d| u64::try_from(d).ok()),
            client_cert: k.client_cert.clone(),
        })
    }

    /// From an access record's JSON line (`None` for other kinds).
    pub fn from_record(rec: &[u8]) -> Option<Signal> {
        let f: RecordFields = serde_json::from_slice(rec).ok()?;
        if f.kind != "access" {
            return None;
        }
        let at = f
            .timestamp
            .as_deref()
            .and_then(|t| {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            })
            .map(|t| t.unix_timestamp())
            .unwrap_or_else(menshen_store::now_unix);
        Some(Signal {
            at,
            txn_id: f.txn_id,
            app_id: f.app_id,
            app_verified: f.app_verified,
            api_id: f.api_id,
            client_ip: f.client_ip,
            result: f.result,
            code: f.code,
            risk: f.risk,
            level: f.level,
            duration_us: f.duration_us,
            client_cert: f.client_cert,
        })
    }
}

/// The error codes of a failed authentication (ATK-2).
const AUTH_CODES: &[&str] = &[
    "INVALID_SIGNATURE",
    "MISSING_SIGNATURE",
    "MALFORMED_SIGNATURE",
    "STALE_TIMESTAMP",
    "DIGEST_MISMATCH",
    "REPLAYED_REQUEST",
    "UNSUPPORTED_ALGORITHM",
    "CLIENT_CERTIFICATE_MISMATCH",
];

/// Most subjects (App_IDs, IPs, APIs) a rule keeps windows for; past it
/// the stalest is dropped (bounded memory under a flood of made-up ids).
const MAX_SUBJECTS: usize = 10_000;

/// What a window keeps beside its entries, updated as they come and go, so
/// a rule reads its figure in O(1) per record instead of scanning the
/// window (a scan per record cost ~19 us per A1 call at 14k calls/s).
trait Tally<V>: Default {
    fn add(&mut self, v: &V);
    fn remove(&mut self, v: &V);
}

impl Tally<()> for () {
    fn add(&mut self, _: &()) {}
    fn remove(&mut self, _: &()) {}
}

/// Failed calls in the window.
#[derive(Default)]
struct Failed(usize);

impl Tally<bool> for Failed {
    fn add(&mut self, failed: &bool) {
        self.0 += usize::from(*failed);
    }
    fn remove(&mut self, failed: &bool) {
        self.0 -= usize::from(*failed);
    }
}

/// Distinct values in the window, with how often each occurs.
#[derive(Default)]
struct Distinct(HashMap<String, usize>);

impl Tally<String> for Distinct {
    fn add(&mut self, v: &String) {
        match self.0.get_mut(v) {
            Some(n) => *n += 1,
            None => {
                self.0.insert(v.clone(), 1);
            }
        }
    }
    fn remove(&mut self, v: &String) {
        if let Some(n) = self.0.get_mut(v) {
            *n -= 1;
            if *n == 0 {
                self.0.remove(v);
            }
        }
    }
}

/// One subject's entries within the window, and their tally.
struct Window<V, T> {
    q: VecDeque<(i64, V)>,
    tally: T,
}

impl<V, T: Default> Default for Window<V, T> {
    fn default() -> Self {
        Window {
            q: VecDeque::new(),
            tally: T::default(),
        }
    }
}

/// Timestamps within the window, per subject, bounded.
struct Windows<V, T> {
    map: HashMap<String, Window<V, T>>,
}

impl<V, T> Default for Windows<V, T> {
    fn default() -> Self {
        Windows {
            map: HashMap::new(),
        }
    }
}

impl<V, T: Tally<V>> Windows<V, T> {
    fn push(&mut self, key: &str, at: i64, v: V, window: i64) -> &Window<V, T> {
        if !self.map.contains_key(key) && self.map.len() >= MAX_SUBJECTS {
            // Drop the stalest tenth at once: one scan per thousand new
            // subjects, not per record, under a flood of made-up ids.
            let mut last: Vec<(i64, String)> = self
                .map
                .iter()
                .map(|(k, w)| (w.q.back().map_or(i64::MIN, |e| e.0), k.clone()))
                .collect();
            last.sort_unstable();
            for (_, k) in last.into_iter().take(MAX_SUBJECTS / 10) {
                self.map.remove(&k);
            }
        }
        let w = self.map.entry(key.to_string()).or_default();
        w.tally.add(&v);
        w.q.push_back((at, v));
        while w.q.front().is_some_and(|e| e.0 <= at - window) || w.q.len() > 100_000 {
            if let Some((_, old)) = w.q.pop_front() {
                w.tally.remove(&old);
            }
        }
        w
    }

    fn clear(&mut self, key: &str) {
        self.map.remove(key);
    }
}

/// The rules' state: sliding windows per subject.
pub struct Rules {
    cfg: AlertsConfig,
    auth: Windows<(), ()>,
    stuffing: Windows<String, Distinct>,
    calls: Windows<bool, Failed>,
    upstream: Windows<(), ()>,
}

impl Rules {
    /// Empty windows.
    pub fn new(cfg: AlertsConfig) -> Self {
        Rules {
            cfg,
            auth: Windows::default(),
            stuffing: Windows::default(),
            calls: Windows::default(),
            upstream: Windows::default(),
        }
    }

    /// The alerts one record raises (usually none). A rule that fires
    /// starts its subject's window again, so a steady flood raises it once
    /// per window (and the store counts the repeats on the open alert).
    pub fn observe(&mut self, s: &Signal) -> Vec<NewAlert> {
        let w = self.cfg.window_secs as i64;
        let mut out = Vec::new();
        let code = s.code.as_deref().unwrap_or("");
        let app = s.app_id.as_deref().unwrap_or("-");
        let api = s.api_id.as_deref().unwrap_or("-");
        let sample =
            || json!({"txn_id": s.txn_id, "app_id": s.app_id, "api_id": s.api_id, "code": s.code});
        if AUTH_CODES.contains(&code) {
            if let Some(a) = s.app_id.as_deref() {
                let n = self.auth.push(a, s.at, (), w).q.len();
                if n >= self.cfg.auth_failures as usize {
                    self.auth.clear(a);
                    out.push(NewAlert {
                        rule: "auth_failures".into(),
                        key: format!("auth_failures:{a}"),
                        severity: AlertSeverity::Warning,
                        summary: format!("{n} failed authentications for App_ID {a} within {w} s"),
                        details: json!({"app_id": a, "failures": n, "window_secs": w, "last": sample()}),
                    });
                }
            }
            if let (Some(ip), Some(a)) = (s.client_ip.as_deref(), s.app_id.as_deref()) {
                let seen = &self.stuffing.push(ip, s.at, a.to_string(), w).tally.0;
                if seen.len() >= self.cfg.stuffing_app_ids as usize {
                    let mut ids: Vec<String> = seen.keys().cloned().collect();
                    ids.sort();
                    self.stuffing.clear(ip);
                    out.push(NewAlert {
                        rule: "credential_stuffing".into(),
                        key: format!("credential_stuffing:{ip}"),
                        severity: AlertSeverity::Critical,
                        summary: format!(
                            "authentication failing for {} App_IDs from {ip} within {w} s",
                            ids.len()
                        ),
                        details: json!({"client_ip": ip, "app_ids": ids, "window_secs": w}),
                    });
                }
            }
        }
        if code == "NOT_GRANTED" {
            out.push(NewAlert {
                rule: "not_granted".into(),
                key: format!("not_granted:{app}:{api}"),
                severity: AlertSeverity::Warning,
                summary: format!("App_ID {app} called API {api} it holds no grant for"),
                details: json!({"app_id": app, "api_id": api, "client_ip": s.client_ip, "last": sample()}),
            });
        }
        if code == "SERVICE_DEGRADED" {
            out.push(NewAlert {
                rule: "breaker_open".into(),
                key: format!("breaker_open:{api}"),
                severity: AlertSeverity::Critical,
                summary: format!(
                    "API {api}: its upstream is degraded (circuit breaker open); calls are refused"
                ),
                details: json!({"api_id": api, "last": sample()}),
            });
        }
        if matches!(code, "UPSTREAM_UNAVAILABLE" | "UPSTREAM_TIMEOUT") {
            let n = self.upstream.push(api, s.at, (), w).q.len();
            if n >= self.cfg.upstream_failures as usize {
                self.upstream.clear(api);
                out.push(NewAlert {
                    rule: "upstream_down".into(),
                    key: format!("upstream_down:{api}"),
                    severity: AlertSeverity::Critical,
                    summary: format!("API {api}: {n} calls failed at the upstream within {w} s"),
                    details: json!({"api_id": api, "failures": n, "window_secs": w, "last": sample()}),
                });
            }
        }
        // TRF-4: the failure rate of an authenticated app's calls.
        if let (true, Some(a)) = (s.app_verified, s.app_id.as_deref()) {
            let failed = s.result.as_deref() != Some("success");
            let win = self.calls.push(a, s.at, failed, w);
            let (n, f) = (win.q.len(), win.tally.0);
            if n >= self.cfg.failure_min_calls as usize
                && (f as f64) / (n as f64) >= self.cfg.failure_rate
            {
                self.calls.clear(a);
                out.push(NewAlert {
                    rule: "failure_rate".into(),
                    key: format!("failure_rate:{a}"),
                    severity: AlertSeverity::Warning,
                    summary: format!("App_ID {a}: {f} of {n} calls failed within {w} s"),
                    details: json!({"app_id": a, "calls": n, "failed": f, "window_secs": w, "threshold": self.cfg.failure_rate}),
                });
            }
        }
        if let Some(r) = &s.risk {
            match r["decision"].as_str() {
                Some("alert") => out.push(NewAlert {
                    rule: "risk".into(),
                    key: format!("risk:{app}:{api}"),
                    severity: AlertSeverity::Warning,
                    summary: format!(
                        "risk rule breached by App_ID {app} on API {api} (call let through)"
                    ),
                    details: json!({"app_id": app, "api_id": api, "txn_id": s.txn_id, "risk": r}),
                }),
                Some("hold") => out.push(NewAlert {
                    rule: "risk_hold".into(),
                    key: format!("risk_hold:{}", r["review_id"]),
                    severity: AlertSeverity::Info,
                    summary: format!(
                        "a call of App_ID {app} on API {api} is held for review {}",
                        r["review_id"]
                    ),
                    details: json!({"app_id": app, "api_id": api, "txn_id": s.txn_id, "risk": r}),
                }),
                _ => {}
            }
        }
        out
    }
}

/// Where the `audit_index_behind` alert of the current episode stands.
enum IndexAlert {
    /// The index is not behind (or not for long).
    Clear,
    /// Raised (stored) for this episode.
    Raised,
    /// The store could not keep it, at this time.
    Failed(tokio::time::Instant),
}

/// How soon an `audit_index_behind` alert the store could not keep is
/// tried again.
const INDEX_ALERT_RETRY: Duration = Duration::from_secs(30);

/// Signals dropped because the rules' queue was full (never a wait).
pub static DROPPED: AtomicU64 = AtomicU64::new(0);

/// The audit writer's sink: the index sink, plus a signal per access
/// record to the rules (a `try_send`: the writer never waits for alerts).
pub struct Tee<S: BatchSink> {
    inner: S,
    tx: tokio::sync::mpsc::Sender<Signal>,
}

impl<S: BatchSink> Tee<S> {
    /// Wrap `inner`.
    pub fn new(inner: S, tx: tokio::sync::mpsc::Sender<Signal>) -> Self {
        Tee { inner, tx }
    }
}

impl<S: BatchSink> BatchSink for Tee<S> {
    fn opened(&mut self, last_seq: u64) {
        self.inner.opened(last_seq);
    }

    fn progress(&self) -> Option<Arc<menshen_audit::SinkProgress>> {
        self.inner.progress()
    }

    fn committed(
        &mut self,
        records: Vec<Committed>,
        checkpoint: Option<&menshen_audit::chain::Checkpoint>,
    ) {
        for c in &records {
            if let Some(s) = Signal::from_committed(c) {
                if self.tx.try_send(s).is_err() {
                    DROPPED.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        self.inner.committed(records, checkpoint);
    }
}

/// The running alert engine.
pub struct Engine {
    /// Where the writer's tee sends signals.
    pub tx: tokio::sync::mpsc::Sender<Signal>,
    rx: Option<tokio::sync::mpsc::Receiver<Signal>>,
    cfg: AlertsConfig,
    server_certs: Vec<(String, std::path::PathBuf)>,
    hot_state: Option<HotStateCounters>,
}

/// Reads the gateway's hot-state failure counters: (A1 calls served under
/// the down policy, calls refused because the hot state could not answer).
pub type HotStateCounters = Arc<dyn Fn() -> (u64, u64) + Send + Sync>;

impl Engine {
    /// The queue, before the audit log is opened (its tee needs `tx`).
    pub fn new(cfg: AlertsConfig) -> Engine {
        let (tx, rx) = tokio::sync::mpsc::channel(cfg.queue);
        Engine {
            tx,
            rx: Some(rx),
            cfg,
            server_certs: Vec::new(),
            hot_state: None,
        }
    }

    /// Server certificates (what, PEM chain file) for the expiry watch.
    pub fn with_server_certs(mut self, certs: Vec<(String, std::path::PathBuf)>) -> Engine {
        self.server_certs = certs;
        self
    }

    /// The gateway's hot-state failure counters, watched beside the audit
    /// log's health (`hot_state_unavailable`, issue 12 item 7).
    pub fn with_hot_state_counters(mut self, f: HotStateCounters) -> Engine {
        self.hot_state = Some(f);
        self
    }

    /// Start the rules, the audit-health watch and the receivers.
    pub fn start(
        mut self,
        cp: ControlPlane,
        audit: menshen_audit::AuditLog,
        node_id: String,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        let out = Arc::new(deliver::Outbox::start(&self.cfg, node_id)?);
        // MON-4, KEY-4: notices to apps, and the certificate-network rule.
        let notifier = notify::Notifier::new(cp.clone(), &self.cfg, out.clone())?;
        let certs = cert_network::CertNetwork {
            cfg: self.cfg.cert_network.clone(),
            cp: cp.clone(),
            out: out.clone(),
            audit: audit.clone(),
            notifier: Some(notifier.clone()),
            notify_suspension: self.cfg.app_notice.suspension,
        };
        let mut rx = self.rx.take().expect("started once");
        let mut rules = Rules::new(self.cfg.clone());
        // MON-3: the learned baselines, fed by the same signals.
        let enabled = self.cfg.baseline.enabled;
        let learner = Arc::new(tokio::sync::Mutex::new(baseline::Learner::new(
            self.cfg.baseline.clone(),
            Arc::new(baseline::SystemClock),
        )));
        let (cp2, out2, learner2) = (cp.clone(), out.clone(), learner.clone());
        let notifier2 = notifier.clone();
        let mut tasks = vec![tokio::spawn(async move {
            notifier2.resume_pending().await;
            // The stored model first: signals wait in the queue meanwhile.
            if enabled {
                match cp2.store.load_baselines(None).await {
                    Ok(v) => {
                        let n = learner2.lock().await.load(v);
                        tracing::info!(models = n, "learned baselines loaded (MON-3)");
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "learned baselines could not be loaded; learning afresh")
                    }
                }
            }
            while let Some(s) = rx.recv().await {
                let mut fired = rules.observe(&s);
                if enabled {
                    let mut learned = learner2.lock().await.observe(&s);
                    // Cluster: new here may be known to another node. The
                    // store's merged set decides before anything is raised
                    // (or an app suspended).
                    let mut confirmed = true;
                    if learned.iter().any(|a| a.rule == "baseline_new_network") {
                        match cp2
                            .store
                            .load_baseline_networks(s.app_id.as_deref(), 0)
                            .await
                        {
                            Ok(stored) => {
                                learner2.lock().await.merge_networks(&stored);
                                learned.retain(|a| {
                                    a.rule != "baseline_new_network"
                                        || !stored.iter().any(|b| {
                                            b.app_id == a.details["app_id"].as_str().unwrap_or("")
                                                && a.details["network"].as_str().is_some_and(|n| {
                                                    b.model["networks"].get(n).is_some()
                                                })
                                        })
                                });
                            }
                            Err(e) => {
                                // Not confirmed new to the cluster: alert,
                                // but suspend nothing.
                                tracing::warn!(error = %e, "learned networks: the store could not be re-read; a new network is alerted but suspends nothing");
                                confirmed = false;
                            }
                        }
                    }
                    if s.client_cert.is_some() {
                        for a in learned.iter().filter(|a| a.rule == "baseline_new_network") {
                            if let Some(net) = a.details["network"].as_str() {
                                certs.on_new_network(&s, net, confirmed).await;
                            }
                        }
                    }
                    fired.extend(learned);
                }
                for a in fired {
                    raise(&cp2, &out2, a).await;
                }
            }
        })];
        // MON-3: windows closed every 5 s; the model saved every
        // `save_secs` and once more when stopping.
        let saver = {
            let (cp, out, mut stop) = (cp.clone(), out.clone(), stop.clone());
            let save_every = Duration::from_secs(self.cfg.baseline.save_secs);
            let sync_every = Duration::from_secs(self.cfg.baseline.sync_secs);
            tokio::spawn(async move {
                if !enabled {
                    return;
                }
                let mut last_save = tokio::time::Instant::now();
                let mut last_sync = last_save;
                // What changed since (10 minutes' margin for the nodes'
                // clocks); the full set was read at start.
                let mut since = menshen_store::now_unix() - 600;
                loop {
                    let stopping = tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(5)) => false,
                        _ = stop.changed() => true,
                    };
                    let fired = learner.lock().await.tick();
                    for a in fired {
                        raise(&cp, &out, a).await;
                    }
                    if stopping || last_save.elapsed() >= save_every {
                        last_save = tokio::time::Instant::now();
                        let items = learner.lock().await.take_dirty();
                        if !items.is_empty() {
                            if let Err(e) = cp.store.save_baselines(&items).await {
                                tracing::warn!(error = %e, "learned baselines could not be saved; retried");
                                learner.lock().await.mark_dirty(&items);
                            }
                        }
                    }
                    if stopping {
                        return;
                    }
                    // Cluster: the networks learned here go to the store
                    // (merged), and the cluster's set comes back.
                    if last_sync.elapsed() >= sync_every {
                        last_sync = tokio::time::Instant::now();
                        let items = learner.lock().await.take_dirty_networks();
                        if !items.is_empty() {
                            if let Err(e) = cp.store.save_baselines(&items).await {
                                tracing::warn!(error = %e, "learned networks could not be saved; retried");
                                learner.lock().await.mark_dirty(&items);
                            }
                        }
                        let asked = menshen_store::now_unix();
                        match cp.store.load_baseline_networks(None, since).await {
                            Ok(stored) => {
                                learner.lock().await.merge_networks(&stored);
                                since = asked - 600;
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "learned networks could not be refreshed from the store")
                            }
                        }
                    }
                }
            })
        };
        // MON-4, KEY-4: the expiry watch, at start and then daily.
        if self.cfg.expiry.enabled {
            let watch = expiry::Watch::new(
                cp.clone(),
                self.cfg.expiry.clone(),
                std::mem::take(&mut self.server_certs),
                menshen_store::system_clock(),
            )
            .with_notifier(notifier.clone());
            tasks.push(tokio::spawn(watch.run(out.clone(), stop.clone())));
        }
        let every = Duration::from_millis(self.cfg.audit_check_ms);
        let mut stop2 = stop.clone();
        let hot_state = self.hot_state.take();
        let index_behind_secs = self.cfg.audit_index_behind_secs as f64;
        tasks.push(tokio::spawn(async move {
            let mut was_healthy = true;
            let mut index_alert = IndexAlert::Clear;
            let mut hot_seen = hot_state.as_ref().map(|f| f()).unwrap_or_default();
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop2.changed() => return,
                }
                let healthy = audit.is_healthy();
                if !healthy && was_healthy {
                    raise(
                        &cp,
                        &out,
                        NewAlert {
                            rule: "audit_durability".into(),
                            key: "audit_durability".into(),
                            severity: AlertSeverity::Critical,
                            summary: "the audit log's last write failed: A2/A3 calls are refused until it recovers".into(),
                            details: json!({"dir": audit.dir().display().to_string()}),
                        },
                    )
                    .await;
                }
                was_healthy = healthy;
                // AUD-6: an index standing still leaves searches incomplete
                // (a store outage, an unreadable log). Raised once per
                // episode; if the store (perhaps the very cause) cannot
                // keep it, tried again every INDEX_ALERT_RETRY.
                if let Some((lag, behind)) = audit.index_lag() {
                    if lag == 0 || behind < index_behind_secs {
                        index_alert = IndexAlert::Clear;
                    } else if match index_alert {
                        IndexAlert::Clear => true,
                        IndexAlert::Raised => false,
                        IndexAlert::Failed(at) => at.elapsed() >= INDEX_ALERT_RETRY,
                    } {
                        let stored = raise(
                            &cp,
                            &out,
                            NewAlert {
                                rule: "audit_index_behind".into(),
                                key: "audit_index_behind".into(),
                                severity: AlertSeverity::Warning,
                                summary: format!(
                                    "the audit index has not moved for {behind:.0} s: {lag} record(s) in the log are missing from audit searches until it catches up (the log itself is intact)"
                                ),
                                details: json!({"lag_records": lag, "behind_secs": behind}),
                            },
                        )
                        .await;
                        index_alert = if stored {
                            IndexAlert::Raised
                        } else {
                            IndexAlert::Failed(tokio::time::Instant::now())
                        };
                    }
                }
                // Issue 12 item 7: the shared hot state failing is alerted,
                // not only logged (de-duplicated while unresolved).
                if let Some(f) = &hot_state {
                    let now = f();
                    let (degraded, refused) = (
                        now.0.saturating_sub(hot_seen.0),
                        now.1.saturating_sub(hot_seen.1),
                    );
                    hot_seen = now;
                    if degraded > 0 || refused > 0 {
                        raise(
                            &cp,
                            &out,
                            NewAlert {
                                rule: "hot_state_unavailable".into(),
                                key: "hot_state_unavailable".into(),
                                severity: AlertSeverity::Critical,
                                summary: format!(
                                    "the shared hot state (Redis) could not answer: {refused} call(s) refused SHARED_STATE_UNAVAILABLE, {degraded} A1 call(s) served under the down policy"
                                ),
                                details: json!({"refused": refused, "a1_degraded": degraded}),
                            },
                        )
                        .await;
                    }
                }
            }
        }));
        // The others end with the node's runtime; the saver is awaited.
        drop(tasks);
        Ok(saver)
    }
}

/// Store the alert (de-duplicated) and deliver it if it is new; whether it
/// could be stored.
pub async fn raise(cp: &ControlPlane, out: &deliver::Outbox, a: NewAlert) -> bool {
    match cp.store.raise_alert(&a).await {
        Ok((alert, true)) => {
            tracing::warn!(id = alert.id, rule = %alert.rule, severity = %alert.severity, summary = %alert.summary, "alert raised");
            out.send(&alert);
            true
        }
        Ok((alert, false)) => {
            tracing::debug!(
                id = alert.id,
                count = alert.count,
                "alert repeated (de-duplicated)"
            );
            true
        }
        Err(e) => {
            tracing::error!(error = %e, rule = %a.rule, "alert could not be stored");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that takes every record and never completes any: the audit
    /// index stuck (a store that refuses its writes, an unreadable log).
    struct StuckIndex(Arc<menshen_audit::SinkProgress>);

    impl menshen_audit::BatchSink for StuckIndex {
        fn committed(
            &mut self,
            records: Vec<menshen_audit::Committed>,
            _: Option<&menshen_audit::chain::Checkpoint>,
        ) {
            if let Some(top) = records.iter().map(|c| c.seq).max() {
                self.0.handed(top);
            }
        }

        fn progress(&self) -> Option<Arc<menshen_audit::SinkProgress>> {
            Some(self.0.clone())
        }
    }

    /// AUD-6, MON-2: an audit index that stands still while records wait
    /// raises one `audit_index_behind` warning naming how many records
    /// searches miss; once it has caught up, the episode ends and a new
    /// one raises again (de-duplicated on the open alert).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn aud_6_a_stuck_audit_index_raises_audit_index_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            Arc::new(menshen_store::sqlite::SqliteStore::open(&dir.path().join("m.db")).unwrap());
        let master =
            menshen_crypto::MasterKey::from_text(&menshen_crypto::MasterKey::generate()).unwrap();
        let cp = ControlPlane::new(
            store,
            Arc::new(master),
            menshen_store::UApiConfig {
                prefix: "0P".into(),
                institution: "C1030501".into(),
            },
        );
        let progress = Arc::new(menshen_audit::SinkProgress::default());
        let audit = menshen_audit::AuditLog::open(
            menshen_audit::AuditConfig::new(dir.path().join("audit")),
            None,
            Some(Box::new(StuckIndex(progress.clone()))),
        )
        .unwrap();
        let mut cfg = AlertsConfig {
            audit_check_ms: 50,
            audit_index_behind_secs: 1,
            ..Default::default()
        };
        cfg.expiry.enabled = false;
        cfg.baseline.enabled = false;
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let _saver = Engine::new(cfg)
            .start(cp.clone(), audit.clone(), "00000001".into(), stop)
            .unwrap();
        for i in 0..3 {
            audit
                .record(&json!({"kind": "admin", "n": i}))
                .await
                .unwrap();
        }
        audit.flush().await.unwrap();
        assert_eq!(audit.index_lag().unwrap().0, 3);
        let behind = || async {
            cp.store
                .list_alerts(None)
                .await
                .unwrap()
                .into_iter()
                .filter(|a| a.rule == "audit_index_behind")
                .collect::<Vec<_>>()
        };
        let t = std::time::Instant::now();
        let alerts = loop {
            let a = behind().await;
            if !a.is_empty() {
                break a;
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "no audit_index_behind alert"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].severity, AlertSeverity::Warning);
        assert!(
            alerts[0].summary.contains("3 record(s)"),
            "{}",
            alerts[0].summary
        );
        // Raised once per episode, not on every look.
        let count = alerts[0].count;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(behind().await[0].count, count);
        // Caught up: nothing waits, nothing is behind.
        progress.done(3);
        assert_eq!(audit.index_lag(), Some((0, 0.0)));
        let _ = stop_tx.send(true);
    }

    /// MON-2: the signal built from a live record's keys (no JSON parse) is
    /// the one parsed from its JSON line, for a success, an authentication
    /// failure with an unverified App_ID and an unrouted call; a record with
    /// a risk decision is read from its JSON (the keys do not carry it).
    #[test]
    fn mon_2_signal_from_keys_equals_signal_parsed_from_the_record() {
        let base = menshen_audit::AccessRecord {
            kind: "access".into(),
            txn_id: "T1796006374431c659184a0000c9".into(),
            node_id: "c659184a".into(),
            timestamp: "2026-11-30T02:39:34.431Z".into(),
            duration_us: 1519,
            app_id: Some("app_1".into()),
            app_verified: true,
            api_id: Some("products".into()),
            u_api_id: None,
            level: Some("A1".into()),
            client_ip: "10.1.2.3".into(),
            peer: "10.1.2.3:5000".into(),
            method: "GET".into(),
            path: "/v1/products".into(),
            status: 200,
            result: menshen_audit::Outcome::Success,
            code: None,
            message: "upstream 200".into(),
            reason: None,
            alg: None,
            nonce: None,
            sig_created: None,
            client_cert: None,
            user_id: None,
            consent_id: None,
            trace_id: None,
            message_parts: None,
            risk: None,
        };
        let mut failed = base.clone();
        failed.app_verified = false;
        failed.result = menshen_audit::Outcome::Failure;
        failed.status = 401;
        failed.code = Some("INVALID_SIGNATURE".into());
        let mut unrouted = base.clone();
        unrouted.api_id = None;
        unrouted.level = None;
        let mut risky = base.clone();
        risky.risk = Some(json!({"decision": "alert", "rules": ["max_amount"]}));
        for rec in [base, failed, unrouted, risky] {
            let time_ms = 1_796_006_374_431;
            let bytes = serde_json::to_vec(&rec).unwrap();
            let c = |keys| Committed {
                seq: 1,
                segment: 1,
                offset: 0,
                rec: bytes.clone(),
                keys,
            };
            let parsed = Signal::from_committed(&c(None)).unwrap();
            let given = Signal::from_committed(&c(Some(rec.keys(time_ms)))).unwrap();
            assert_eq!(parsed, given);
            assert_eq!(given.risk, rec.risk);
        }
    }

    /// TRF-4, ATK-2: the windows' tallies (failed calls, distinct App_IDs)
    /// stay equal to a count over the window's entries as entries expire,
    /// so the rules read them without scanning the window per record.
    #[test]
    fn trf_4_atk_2_window_tallies_match_a_scan_as_entries_expire() {
        let mut calls: Windows<bool, Failed> = Windows::default();
        let mut ids: Windows<String, Distinct> = Windows::default();
        for at in 0..500i64 {
            let w = calls.push("app", at, at % 3 == 0, 60);
            let scanned = w.q.iter().filter(|e| e.1).count();
            assert_eq!(w.tally.0, scanned, "at {at}");
            assert!(w.q.len() <= 60);
            let d = ids.push("10.0.0.1", at, format!("app{}", at % 7), 5);
            let mut distinct: Vec<&String> = d.q.iter().map(|e| &e.1).collect();
            distinct.sort();
            distinct.dedup();
            assert_eq!(d.tally.0.len(), distinct.len(), "at {at}");
        }
    }

    fn sig(at: i64, app: &str, ip: &str, code: Option<&str>) -> Signal {
        Signal {
            at,
            txn_id: None,
            app_id: Some(app.into()),
            app_verified: code.is_none(),
            api_id: Some("api".into()),
            client_ip: Some(ip.into()),
            result: Some(if code.is_none() { "success" } else { "failure" }.into()),
            code: code.map(str::to_string),
            risk: None,
            level: None,
            duration_us: None,
            client_cert: None,
        }
    }

    #[test]
    fn atk_2_auth_failures_fire_once_per_window_and_stuffing_counts_app_ids() {
        let mut r = Rules::new(AlertsConfig::default());
        let fired: Vec<_> = (0..4)
            .flat_map(|i| r.observe(&sig(100 + i, "a1", "10.0.0.1", Some("INVALID_SIGNATURE"))))
            .collect();
        assert!(fired.is_empty());
        let a = r.observe(&sig(104, "a1", "10.0.0.1", Some("INVALID_SIGNATURE")));
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].key, "auth_failures:a1");
        // Outside the window the old ones do not count.
        let mut r = Rules::new(AlertsConfig::default());
        for i in 0..4 {
            r.observe(&sig(100 + i, "a1", "10.0.0.2", Some("INVALID_SIGNATURE")));
        }
        assert!(r
            .observe(&sig(200, "a1", "10.0.0.2", Some("INVALID_SIGNATURE")))
            .is_empty());
        // Five App_IDs from one IP.
        let mut r = Rules::new(AlertsConfig::default());
        let mut all = vec![];
        for i in 0..5 {
            all.extend(r.observe(&sig(
                100,
                &format!("x{i}"),
                "10.9.9.9",
                Some("INVALID_SIGNATURE"),
            )));
        }
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].key, "credential_stuffing:10.9.9.9");
        assert_eq!(all[0].severity, AlertSeverity::Critical);
    }

    #[test]
    fn trf_4_failure_rate_over_the_threshold_with_a_minimum_count() {
        let mut r = Rules::new(AlertsConfig::default());
        let mut fired = vec![];
        for i in 0..19 {
            let mut s = sig(100, "app", "10.0.0.1", None);
            s.result = Some(if i % 2 == 0 { "failure" } else { "success" }.into());
            fired.extend(r.observe(&s));
        }
        assert!(fired.is_empty(), "under the minimum count");
        let mut s = sig(100, "app", "10.0.0.1", None);
        s.result = Some("failure".into());
        let a = r.observe(&s);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].rule, "failure_rate");
    }
}
