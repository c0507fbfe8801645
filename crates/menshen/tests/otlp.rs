//! OpenTelemetry OTLP export (issue 14 item 7: "OTLP export is optional
//! (off by default)"): a loopback collector (an HTTP server in the test)
//! receives `POST /v1/traces`, decodes the protobuf and finds one span per
//! call: the client's trace id, the client's span as parent, the gateway's
//! span id the one the upstream saw in its `traceparent`, the transaction
//! serial number of the response (`x-menshen-txn-id`) and the call's App_ID,
//! API, U_API_ID, level, status, error code and upstream latency; no secret,
//! address or body. With the collector down, calls still succeed.
// The collector's received spans: a test-only std Mutex, never on a call path.
#![allow(clippy::disallowed_types)]

mod common;

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use common::{Harness, HarnessOptions};
use menshen::config::OtlpSection;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// What the collector received: (service.name, span) per span.
type Received = Arc<Mutex<Vec<(String, Span)>>>;

async fn traces(State(got): State<Received>, body: Bytes) -> Vec<u8> {
    let req = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf request");
    for rs in req.resource_spans {
        let service = rs
            .resource
            .as_ref()
            .and_then(|r| attr(&r.attributes, "service.name"))
            .unwrap_or_default();
        for ss in rs.scope_spans {
            for s in ss.spans {
                got.lock().unwrap().push((service.clone(), s));
            }
        }
    }
    ExportTraceServiceResponse::default().encode_to_vec()
}

/// A loopback collector: its base URL and what it received.
async fn collector() -> (String, Received) {
    let got: Received = Arc::default();
    let l = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let app = Router::new()
        .route("/v1/traces", post(traces))
        .with_state(got.clone());
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    (url, got)
}

fn attr(kvs: &[KeyValue], key: &str) -> Option<String> {
    let v = kvs
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()?;
    Some(match v {
        Any::StringValue(s) => s.clone(),
        Any::IntValue(i) => i.to_string(),
        Any::DoubleValue(d) => d.to_string(),
        Any::BoolValue(b) => b.to_string(),
        other => format!("{other:?}"),
    })
}

async fn node_exporting_to(endpoint: String) -> Harness {
    Harness::start_with(HarnessOptions {
        configure: Some(Box::new(move |c: &mut menshen::config::Config| {
            c.tracing.otlp = Some(OtlpSection {
                endpoint,
                service_name: "menshen-test".into(),
                sample_ratio: 1.0,
                queue: 2048,
                timeout_ms: 1000,
            });
        })),
        ..Default::default()
    })
    .await
}

/// A signed call carrying the client's `traceparent`: status, serial.
async fn call(c: &menshen_sdk::Client, path: &str) -> (u16, String) {
    let mut req = c.request("GET", path, None).unwrap();
    req.headers_mut().insert(
        "traceparent",
        format!("00-{TRACE_ID}-{CLIENT_SPAN}-01").parse().unwrap(),
    );
    c.sign(&mut req, None).unwrap();
    let r = c.send(req).await.unwrap();
    (r.status, r.txn_id().unwrap().to_string())
}

/// Wait (bounded) for the span of serial `txn`.
async fn span_of(got: &Received, txn: &str) -> (String, Span) {
    let t = Instant::now();
    loop {
        if let Some(s) = got
            .lock()
            .unwrap()
            .iter()
            .find(|(_, s)| attr(&s.attributes, "menshen.txn_id").as_deref() == Some(txn))
        {
            return s.clone();
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "no span for {txn} reached the collector"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Issue 14 item 7: a call's span reaches the collector, child of the
/// client's span in the client's trace, with the serial number of the
/// response and the call's identifiers; the upstream's parent is the
/// exported span; a refused call's span carries its error code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_call_span_exported_with_trace_and_serial() {
    let (url, got) = collector().await;
    let h = node_exporting_to(url).await;
    h.api("items", "GET", "/v1/items/{id}", "A1").await;
    let (app, secret) = h.app("traced", "server").await;
    h.grant(&app, "items").await;
    let c = h.client(&app, &secret);

    let (status, txn) = call(&c, "/v1/items/6222020200112233").await;
    assert_eq!(status, 200);
    let (service, span) = span_of(&got, &txn).await;
    assert_eq!(service, "menshen-test");
    assert_eq!(hex::encode(&span.trace_id), TRACE_ID);
    assert_eq!(hex::encode(&span.parent_span_id), CLIENT_SPAN);
    assert_eq!(span.name, "menshen.call");
    // The upstream's traceparent: same trace, the exported span as parent,
    // sampled.
    let up = h.upstream.last();
    let tp = up.headers.get("traceparent").unwrap().to_str().unwrap();
    assert_eq!(
        tp,
        format!("00-{TRACE_ID}-{}-01", hex::encode(&span.span_id)),
        "the upstream's parent is the exported span"
    );
    let a = |k: &str| attr(&span.attributes, k);
    assert_eq!(a("menshen.txn_id").as_deref(), Some(txn.as_str()));
    assert_eq!(a("menshen.app_id").as_deref(), Some(app.as_str()));
    assert_eq!(a("menshen.app_verified").as_deref(), Some("true"));
    assert_eq!(a("menshen.api_id").as_deref(), Some("items"));
    assert!(a("menshen.u_api_id").is_some_and(|u| !u.is_empty()));
    assert_eq!(a("menshen.level").as_deref(), Some("A1"));
    assert_eq!(a("http.route").as_deref(), Some("GET /v1/items/{id}"));
    assert_eq!(a("http.response.status_code").as_deref(), Some("200"));
    assert!(a("menshen.upstream_latency_ms").is_some());
    assert!(a("menshen.error_code").is_none());
    assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
    // Nothing of the path's account number, the secret or the address.
    let all = format!("{:?}", span.attributes);
    for leak in ["6222020200112233", secret.as_str(), "127.0.0.1"] {
        assert!(!all.contains(leak), "{leak} in {all}");
    }

    // A refused call: its span carries the error code.
    let wrong = h.client(&app, "not-the-secret");
    let (status, txn) = call(&wrong, "/v1/items/1").await;
    assert_eq!(status, 401);
    let (_, span) = span_of(&got, &txn).await;
    assert_eq!(hex::encode(&span.trace_id), TRACE_ID);
    assert_eq!(
        attr(&span.attributes, "menshen.error_code").as_deref(),
        Some("INVALID_SIGNATURE")
    );
    assert_eq!(
        attr(&span.attributes, "http.response.status_code").as_deref(),
        Some("401")
    );
    assert_eq!(
        attr(&span.attributes, "menshen.app_verified").as_deref(),
        Some("false")
    );
}

/// A call without a `traceparent` starts a trace; its span has no parent
/// and the upstream sees that trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_new_trace_without_traceparent() {
    let (url, got) = collector().await;
    let h = node_exporting_to(url).await;
    h.api("ping", "GET", "/v1/ping", "A1").await;
    let (app, secret) = h.app("fresh", "server").await;
    h.grant(&app, "ping").await;
    let c = h.client(&app, &secret);
    let mut req = c.request("GET", "/v1/ping", None).unwrap();
    c.sign(&mut req, None).unwrap();
    let r = c.send(req).await.unwrap();
    assert_eq!(r.status, 200);
    let (_, span) = span_of(&got, r.txn_id().unwrap()).await;
    assert!(span.parent_span_id.is_empty() || span.parent_span_id == [0u8; 8]);
    let tp = h.upstream.last().headers["traceparent"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        tp,
        format!(
            "00-{}-{}-01",
            hex::encode(&span.trace_id),
            hex::encode(&span.span_id)
        )
    );
}

/// A dead collector (nothing listens on its port) never fails or holds up
/// a call: 200 calls all succeed, each well within the export timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_dead_collector_does_not_slow_calls() {
    let port = {
        let l = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        l.local_addr().unwrap().port()
    };
    let h = node_exporting_to(format!("http://127.0.0.1:{port}")).await;
    h.api("ping", "GET", "/v1/ping", "A1").await;
    let (app, secret) = h.app("undeterred", "server").await;
    h.grant(&app, "ping").await;
    let c = h.client(&app, &secret);
    let t = Instant::now();
    for _ in 0..200 {
        let (status, _) = call(&c, "/v1/ping").await;
        assert_eq!(status, 200);
    }
    // Bounded, not a timing measurement: with a blocking export each call
    // would wait out the 1 s export timeout.
    assert!(
        t.elapsed() < Duration::from_secs(60),
        "200 calls took {:?}",
        t.elapsed()
    );
}
