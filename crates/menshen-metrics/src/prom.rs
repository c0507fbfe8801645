//! The Prometheus exposition: a `prometheus-client` [`Collector`] that, at
//! scrape time, adds up the shards and writes every family. The names,
//! labels and meanings are listed in `docs/operations.md` (a test there
//! checks every family is documented).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::buckets::Hist;
use crate::labels;
use crate::{Metrics, RateLimitEvent};

/// Every family this module writes, without the `_total` counters get
/// (checked against the documentation by a test).
pub const FAMILIES: &[&str] = &[
    "menshen_calls",
    "menshen_call_duration_seconds",
    "menshen_upstream_duration_seconds",
    "menshen_upstream_errors",
    "menshen_refusals",
    "menshen_rate_limit_events",
    "menshen_breaker_events",
    "menshen_connection_failures",
    "menshen_tls_handshake_failures",
    "menshen_audit_queue_depth",
    "menshen_audit_queue_capacity",
    "menshen_audit_healthy",
    "menshen_audit_sync_duration_seconds",
    "menshen_audit_index_lag_records",
    "menshen_audit_index_behind_seconds",
    "menshen_snapshot_version",
    "menshen_snapshot_age_seconds",
    "menshen_connections_open",
    "menshen_metrics_enabled",
];

#[derive(Debug)]
struct View(Arc<Metrics>);

pub(crate) fn encode(m: &Arc<Metrics>) -> String {
    let mut r = Registry::default();
    r.register_collector(Box::new(View(m.clone())));
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &r);
    out
}

impl Collector for View {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), fmt::Error> {
        let s = self.0.sum(false);

        // Calls and their latency by app, API, level and class (the
        // statistics' `kind` is merged away: it is not a label).
        let mut calls: BTreeMap<_, Hist> = BTreeMap::new();
        for (k, h) in &s.calls {
            calls
                .entry((k.app, k.api, k.level, k.class))
                .or_default()
                .add(h);
        }
        let named: Vec<_> = calls
            .iter()
            .map(|((app, api, level, class), h)| {
                (
                    labels::name(*app),
                    labels::name(*api),
                    level.as_str(),
                    class.as_str(),
                    h,
                )
            })
            .collect();
        {
            let mut f = enc.encode_descriptor(
                "menshen_calls",
                "Calls finished, by app, API, security level and result class.",
                None,
                MetricType::Counter,
            )?;
            for (app, api, level, class, h) in &named {
                let l = [
                    ("app", &**app),
                    ("api", &**api),
                    ("level", *level),
                    ("class", *class),
                ];
                f.encode_family(&l)?
                    .encode_counter::<NoLabelSet, u64, u64>(&h.count, None)?;
            }
        }
        {
            let mut f = enc.encode_descriptor(
                "menshen_call_duration_seconds",
                "Whole call duration at the gateway (head received to answer built), by app, API, level and result class.",
                None,
                MetricType::Histogram,
            )?;
            for (app, api, level, class, h) in &named {
                let l = [
                    ("app", &**app),
                    ("api", &**api),
                    ("level", *level),
                    ("class", *class),
                ];
                hist(&mut f.encode_family(&l)?, h)?;
            }
        }
        {
            let mut f = enc.encode_descriptor(
                "menshen_upstream_duration_seconds",
                "Time waiting for the upstream (request sent to answer read), by API.",
                None,
                MetricType::Histogram,
            )?;
            let sorted: BTreeMap<_, _> = s.upstream.iter().collect();
            for (api, h) in sorted {
                let n = labels::name(*api);
                hist(&mut f.encode_family(&[("api", &*n)])?, h)?;
            }
        }
        {
            let mut f = enc.encode_descriptor(
                "menshen_upstream_errors",
                "Upstream failures by API and kind (unreachable, timeout, failed = 5xx, degraded = not sent: breaker open or bulkhead full).",
                None,
                MetricType::Counter,
            )?;
            let sorted: BTreeMap<_, _> = s.upstream_errors.iter().collect();
            for ((api, kind), n) in sorted {
                let a = labels::name(*api);
                f.encode_family(&[("api", &*a), ("kind", kind.as_str())])?
                    .encode_counter::<NoLabelSet, u64, u64>(n, None)?;
            }
        }
        {
            let mut f = enc.encode_descriptor(
                "menshen_refusals",
                "Calls refused or failed, by the error code the client was given (docs/protocol.md section 10).",
                None,
                MetricType::Counter,
            )?;
            let sorted: BTreeMap<_, _> = s.refusals.iter().collect();
            for (code, n) in sorted {
                f.encode_family(&[("code", *code)])?
                    .encode_counter::<NoLabelSet, u64, u64>(n, None)?;
            }
        }
        {
            let mut f = enc.encode_descriptor(
                "menshen_rate_limit_events",
                "Flow-control events (TRF-1): reject = refused 429, alert = over an alert rule and let through, unavailable = the hot state could not check.",
                None,
                MetricType::Counter,
            )?;
            for ev in RateLimitEvent::ALL {
                f.encode_family(&[("action", ev.as_str())])?
                    .encode_counter::<NoLabelSet, u64, u64>(&s.rate_limits[ev as usize], None)?;
            }
        }
        {
            let mut f = enc.encode_descriptor(
                "menshen_breaker_events",
                "Circuit-breaker events by upstream (TRF-2): opened, half_opened, closed, rejected.",
                None,
                MetricType::Counter,
            )?;
            let sorted: BTreeMap<_, _> = s.breaker.iter().collect();
            for ((up, ev), n) in sorted {
                let u = labels::name(*up);
                f.encode_family(&[("upstream", &*u), ("event", ev.as_str())])?
                    .encode_counter::<NoLabelSet, u64, u64>(n, None)?;
            }
        }
        {
            let mut f = enc.encode_descriptor(
                "menshen_connection_failures",
                "Connection-level failures below HTTP by code (TLS handshake, parse errors, header timeouts, connections refused at a cap).",
                None,
                MetricType::Counter,
            )?;
            let sorted: BTreeMap<_, _> = s.conn_failures.iter().collect();
            for (code, n) in sorted {
                f.encode_family(&[("code", *code)])?
                    .encode_counter::<NoLabelSet, u64, u64>(n, None)?;
            }
        }
        {
            let mut f = enc.encode_descriptor(
                "menshen_tls_handshake_failures",
                "TLS handshakes that failed (reason = failed) or did not finish in time (reason = timeout).",
                None,
                MetricType::Counter,
            )?;
            for (reason, code) in [
                ("failed", "TLS_HANDSHAKE_FAILED"),
                ("timeout", "TLS_HANDSHAKE_TIMEOUT"),
            ] {
                let n = s.conn_failures.get(code).copied().unwrap_or(0);
                f.encode_family(&[("reason", reason)])?
                    .encode_counter::<NoLabelSet, u64, u64>(&n, None)?;
            }
        }

        let node = self.0.node_figures();
        gauge(
            &mut enc,
            "menshen_audit_queue_depth",
            "Records waiting in the audit writer's queue.",
            node.audit_queue_depth as f64,
        )?;
        gauge(
            &mut enc,
            "menshen_audit_queue_capacity",
            "Capacity of the audit writer's queue (callers wait when it is full).",
            node.audit_queue_capacity as f64,
        )?;
        gauge(
            &mut enc,
            "menshen_audit_healthy",
            "1 when the audit log's last write succeeded, else 0 (A2/A3 calls are then refused).",
            if node.audit_healthy { 1.0 } else { 0.0 },
        )?;
        {
            let mut f = enc.encode_descriptor(
                "menshen_audit_sync_duration_seconds",
                "Latency of the audit writer's fdatasync of the active segment.",
                None,
                MetricType::Histogram,
            )?;
            hist(&mut f, &node.audit_sync.unwrap_or_default())?;
        }
        // AUD-6: searches miss what the index has not taken yet.
        {
            let (lag, behind) = node.audit_index;
            gauge(
                &mut enc,
                "menshen_audit_index_lag_records",
                "Audit records in the log not yet complete in the audit index (searches miss them).",
                lag as f64,
            )?;
            gauge(
                &mut enc,
                "menshen_audit_index_behind_seconds",
                "Seconds the audit index has not moved while records wait (0 when none wait).",
                behind,
            )?;
        }
        gauge(
            &mut enc,
            "menshen_snapshot_version",
            "Catalog version the gateway's snapshot was built from.",
            node.snapshot_version as f64,
        )?;
        gauge(
            &mut enc,
            "menshen_snapshot_age_seconds",
            "Seconds since the gateway's snapshot was built.",
            node.snapshot_age_secs,
        )?;
        gauge(
            &mut enc,
            "menshen_connections_open",
            "Client connections open on the gateway's listeners.",
            node.connections_open as f64,
        )?;
        gauge(
            &mut enc,
            "menshen_metrics_enabled",
            "1 when calls are counted (gateway.metrics), else 0.",
            if self.0.enabled() { 1.0 } else { 0.0 },
        )?;
        Ok(())
    }
}

fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, v: f64) -> Result<(), fmt::Error> {
    enc.encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&v)
}

fn hist(me: &mut prometheus_client::encoding::MetricEncoder, h: &Hist) -> Result<(), fmt::Error> {
    me.encode_histogram::<NoLabelSet>(h.sum_us as f64 / 1e6, h.count, &h.exported(), None)
}
