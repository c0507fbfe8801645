//! Counting each call (MON-1): called by `record` once per request, with
//! the same facts its access record holds, and the node's figures for a
//! scrape ([`NodeProbe`]). The counters themselves live in
//! `menshen-metrics`; labels are the ids the snapshot resolved when it was
//! compiled (`AppEntry::metric`, `ApiEntry::metric`), so nothing here
//! formats a string or takes a lock shared by all requests.

use std::sync::Arc;

use menshen_audit::AuditLog;
use menshen_metrics::{
    Call, Class, Kind, LabelId, Level, NodeFigures, Probe, RateLimitEvent, UpstreamError,
};

use crate::conn::Connections;
use crate::exchange::Exchange;
use crate::snapshot::SnapshotHandle;
use crate::GatewayError;

/// Refusal codes that mean "authentication failed" (for the repeated
/// authentication failure and credential-stuffing alerts).
const AUTH_CODES: &[&str] = &[
    "MISSING_SIGNATURE",
    "MALFORMED_SIGNATURE",
    "STALE_TIMESTAMP",
    "UNSUPPORTED_ALGORITHM",
    "INVALID_SIGNATURE",
    "INSUFFICIENT_AUTHENTICATION",
    "DIGEST_MISMATCH",
    "CLIENT_CERTIFICATE_MISMATCH",
];

fn level(l: menshen_model::Level) -> Level {
    match l {
        menshen_model::Level::A1 => Level::A1,
        menshen_model::Level::A2 => Level::A2,
        menshen_model::Level::A3 => Level::A3,
    }
}

/// Count the call `ex`, answered `status` (`err`: why it stopped).
pub fn observe(ex: &Exchange, status: u16, err: Option<&GatewayError>) {
    let m = &ex.state.metrics;
    if !m.enabled() {
        return;
    }
    // The verified app, else the App_ID the request named if the catalog
    // has it (repeated failures for one App_ID), else `unknown`.
    let app = match &ex.app {
        Some(a) => a.metric,
        None => ex
            .claimed_app_id
            .as_deref()
            .and_then(|id| ex.snapshot.app(id))
            .map(|a| a.metric)
            .unwrap_or(LabelId::UNKNOWN),
    };
    let api = ex.api.as_ref();
    let (class, kind, code, upstream_error, mut rate_limit) = match err {
        None => (
            if status < 400 {
                Class::Success
            } else {
                Class::ClientError
            },
            Kind::None,
            None,
            None,
            None,
        ),
        Some(e) => {
            let code = e.code().as_str();
            let class = match e.fault() {
                crate::Fault::Client => Class::Refused,
                crate::Fault::Upstream => Class::UpstreamError,
                crate::Fault::Bank => Class::GatewayError,
            };
            let kind = if AUTH_CODES.contains(&code) {
                Kind::Auth
            } else if code == "NOT_GRANTED" {
                Kind::NotGranted
            } else if matches!(e, GatewayError::RateLimited(_)) {
                Kind::RateLimited
            } else {
                Kind::None
            };
            let upstream_error = match e {
                GatewayError::UpstreamUnreachable(_) => Some(UpstreamError::Unreachable),
                GatewayError::UpstreamTimeout(_) => Some(UpstreamError::Timeout),
                GatewayError::UpstreamFailed(_) | GatewayError::UpstreamResponseInvalid(_) => {
                    Some(UpstreamError::Failed)
                }
                // The upstream's other failures: not sent to it (breaker
                // open, bulkhead full).
                _ if class == Class::UpstreamError => Some(UpstreamError::Degraded),
                _ => None,
            };
            let rate_limit = match e {
                GatewayError::RateLimited(_) => Some(RateLimitEvent::Reject),
                GatewayError::LimitsUnavailable(_) => Some(RateLimitEvent::Unavailable),
                _ => None,
            };
            (class, kind, Some(code), upstream_error, rate_limit)
        }
    };
    if rate_limit.is_none() && ex.limit_note.is_some() {
        rate_limit = Some(RateLimitEvent::Alert);
    }
    m.observe(&Call {
        app,
        api: api.map(|a| a.metric).unwrap_or(LabelId::UNKNOWN),
        level: api.map(|a| level(a.api.level)).unwrap_or(Level::None),
        class,
        kind,
        code,
        duration_us: ex
            .started
            .elapsed()
            .as_micros()
            .try_into()
            .unwrap_or(u64::MAX),
        upstream_us: ex.upstream_us,
        upstream_error,
        rate_limit,
        client_ip: crate::conn::client_key(ex.client_ip),
        claimed_app: ex.claimed_app_id.as_deref(),
    });
}

/// What the node reports at a scrape: the snapshot, the audit writer, the
/// connections.
pub struct NodeProbe {
    /// The gateway's snapshot.
    pub snapshot: SnapshotHandle,
    /// The audit writer.
    pub audit: AuditLog,
    /// Open connections.
    pub connections: Arc<Connections>,
}

impl Probe for NodeProbe {
    fn figures(&self) -> NodeFigures {
        let s = self.snapshot.current();
        NodeFigures {
            snapshot_version: s.version,
            snapshot_age_secs: s.built_at.map(|t| t.elapsed().as_secs_f64()).unwrap_or(0.0),
            audit_queue_depth: self.audit.queue_depth() as u64,
            audit_queue_capacity: self.audit.queue_capacity() as u64,
            audit_healthy: self.audit.is_healthy(),
            audit_sync: Some(self.audit.sync_latency()),
            audit_index: self.audit.index_lag().unwrap_or_default(),
            connections_open: self.connections.open() as u64,
        }
    }
}

/// Fold the counters into the statistics' windows once a second until
/// `shutdown` fires (MON-1).
pub fn spawn_ticker(
    metrics: Arc<menshen_metrics::Metrics>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if !metrics.enabled() {
            return;
        }
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tick.tick() => metrics.tick(),
            }
        }
    })
}
