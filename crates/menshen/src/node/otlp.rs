//! OpenTelemetry OTLP export of call spans (issue 14 item 7), optional and
//! off by default (`[tracing.otlp]`).
//!
//! The gateway hands every sampled call to [`OtlpSink`] as a
//! [`CallSpan`] (ids, serial number, app, API, level, status, error code,
//! upstream latency; never a secret, a customer id, an address or body
//! content). The sink turns it into the SDK's `SpanData` and gives it to
//! the SDK's `BatchSpanProcessor`: a bounded channel (`try_send`: a full
//! queue drops the span, the call never waits) drained by the processor's
//! own thread, which POSTs protobuf batches to `ENDPOINT/v1/traces` every
//! second (or at 512 spans). A dead or slow collector costs that thread its
//! export timeout per batch and drops what overflows; calls are not slowed.
//!
//! The gateway's span id is chosen before the call is forwarded (it is the
//! parent in the upstream's `traceparent`), so spans are built as
//! `SpanData` with that id rather than through the SDK's `Tracer` (which
//! always draws a fresh span id). Sampling is the trace-id ratio
//! ([`menshen_gateway::trace::ratio_sampled`]) over a keyed hash of the
//! trace id (a client cannot pick trace ids that are always exported),
//! decided at the start of the call.
//!
//! The HTTP client is opentelemetry-http's hyper 1 client (the workspace's
//! hyper), which needs a Tokio runtime; the batch processor's thread has
//! none, so each request is spawned onto the node's runtime and awaited
//! from there ([`OnRuntime`]).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use menshen_gateway::trace::{ratio_sampled, CallSpan, SpanSink};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SpanData, SpanEvents, SpanLinks, SpanProcessor,
};
use opentelemetry_sdk::Resource;

use crate::config::OtlpSection;

/// An HTTP client whose requests run on a Tokio runtime, whatever thread
/// (or executor) awaits them.
#[derive(Debug, Clone)]
struct OnRuntime {
    rt: tokio::runtime::Handle,
    inner: opentelemetry_http::hyper::HyperClient,
}

#[async_trait::async_trait]
impl HttpClient for OnRuntime {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let inner = self.inner.clone();
        match self
            .rt
            .spawn(async move { inner.send_bytes(request).await })
            .await
        {
            Ok(r) => r,
            Err(e) => Err(Box::new(e)),
        }
    }
}

/// The export URL: the endpoint with `/v1/traces` unless it ends with it.
pub fn traces_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_string()
    } else {
        format!("{base}/v1/traces")
    }
}

/// The node's span exporter.
pub struct OtlpSink {
    ratio: f64,
    /// Keys the sampling decision (see [`SpanSink::sampled`] below).
    key: std::hash::RandomState,
    processor: BatchSpanProcessor,
    scope: InstrumentationScope,
}

impl std::fmt::Debug for OtlpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpSink")
            .field("ratio", &self.ratio)
            .finish_non_exhaustive()
    }
}

impl OtlpSink {
    /// Build the exporter and its batch processor (starts the processor's
    /// thread). Must be called within the node's Tokio runtime.
    pub fn start(cfg: &OtlpSection) -> anyhow::Result<Arc<OtlpSink>> {
        let timeout = Duration::from_millis(cfg.timeout_ms);
        let client = OnRuntime {
            rt: tokio::runtime::Handle::current(),
            inner: opentelemetry_http::hyper::HyperClient::with_default_connector(timeout, None),
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_endpoint(traces_url(&cfg.endpoint))
            .with_protocol(Protocol::HttpBinary)
            .with_timeout(timeout)
            .build()
            .map_err(|e| anyhow::anyhow!("tracing.otlp: cannot build the exporter: {e}"))?;
        let batch = BatchConfigBuilder::default()
            .with_max_queue_size(cfg.queue)
            .with_max_export_batch_size(cfg.queue.min(512))
            .with_scheduled_delay(Duration::from_secs(1))
            .build();
        let mut processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(batch)
            .build();
        processor.set_resource(
            &Resource::builder()
                .with_service_name(cfg.service_name.clone())
                .build(),
        );
        let scope = InstrumentationScope::builder("menshen-gateway")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build();
        tracing::info!(
            endpoint = %traces_url(&cfg.endpoint),
            service = %cfg.service_name,
            ratio = cfg.sample_ratio,
            "OTLP span export on"
        );
        Ok(Arc::new(OtlpSink {
            ratio: cfg.sample_ratio,
            key: std::hash::RandomState::new(),
            processor,
            scope,
        }))
    }

    /// Export what is queued and stop the processor's thread (bounded by
    /// the export timeout). Blocking: run it off the async workers.
    pub fn shutdown(&self) {
        if let Err(e) = self.processor.shutdown() {
            tracing::warn!(error = %e, "OTLP export: shutdown did not finish cleanly");
        }
    }

    fn span_data(&self, s: CallSpan) -> SpanData {
        let mut attrs = Vec::with_capacity(16);
        attrs.push(KeyValue::new("menshen.txn_id", s.txn_id));
        attrs.push(KeyValue::new("menshen.node_id", s.node_id));
        if let Some(v) = s.app_id {
            attrs.push(KeyValue::new("menshen.app_id", v));
        }
        attrs.push(KeyValue::new("menshen.app_verified", s.app_verified));
        if let Some(v) = s.api_id {
            attrs.push(KeyValue::new("menshen.api_id", v));
        }
        if let Some(v) = s.u_api_id {
            attrs.push(KeyValue::new("menshen.u_api_id", v));
        }
        if let Some(v) = s.api_name {
            attrs.push(KeyValue::new("menshen.api_name", v));
        }
        if let Some(v) = s.level {
            attrs.push(KeyValue::new("menshen.level", v));
        }
        if let Some(v) = s.route.clone() {
            attrs.push(KeyValue::new("http.route", v));
        }
        attrs.push(KeyValue::new("http.request.method", s.method));
        attrs.push(KeyValue::new(
            "http.response.status_code",
            i64::from(s.status),
        ));
        if let Some(v) = s.error_code {
            attrs.push(KeyValue::new("menshen.error_code", v));
        }
        if let Some(us) = s.upstream_us {
            attrs.push(KeyValue::new(
                "menshen.upstream_latency_ms",
                us as f64 / 1000.0,
            ));
        }
        let status = if s.status >= 500 {
            Status::error(s.error_code.unwrap_or("server error"))
        } else {
            Status::Unset
        };
        SpanData {
            span_context: SpanContext::new(
                TraceId::from_bytes(s.trace_id),
                SpanId::from_bytes(s.span_id),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: s
                .parent_id
                .map(SpanId::from_bytes)
                .unwrap_or(SpanId::INVALID),
            parent_span_is_remote: s.parent_id.is_some(),
            span_kind: SpanKind::Server,
            name: Cow::Borrowed("menshen.call"),
            start_time: s.start,
            end_time: s.end,
            attributes: attrs,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status,
            instrumentation_scope: self.scope.clone(),
        }
    }
}

impl SpanSink for OtlpSink {
    /// The trace-id ratio, over a keyed hash of the trace id: a client
    /// sends its own trace id in `traceparent`, and with the plain
    /// trace-id ratio it could pick ids that are always exported (every
    /// call of a flood queued for export, crowding out the sampled share
    /// of everybody else's in the bounded queue). Keyed with this process's
    /// random key, the share stays `sample_ratio` whatever ids arrive; the
    /// upstream follows the gateway's decision through the sampled flag it
    /// is sent.
    fn sampled(&self, trace_id: &[u8; 16]) -> bool {
        if self.ratio >= 1.0 {
            return true;
        }
        use std::hash::BuildHasher;
        let mut keyed = [0u8; 16];
        keyed[8..].copy_from_slice(&self.key.hash_one(trace_id).to_be_bytes());
        ratio_sampled(&keyed, self.ratio)
    }

    fn finish(&self, span: CallSpan) {
        self.processor.on_end(self.span_data(span));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_url_appends_the_signal_path_once() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://127.0.0.1:4318/"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://c:4318/v1/traces"),
            "http://c:4318/v1/traces"
        );
    }
}
