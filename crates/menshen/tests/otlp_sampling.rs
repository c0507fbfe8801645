//! OTLP export (issue 14 item 7) against a client that picks its own trace
//! ids: with the plain trace-id ratio, a `traceparent` whose trace id ends
//! in zeros is always exported, so a flood of such calls would all be
//! queued for export (crowding everybody else's sampled share out of the
//! bounded queue). The gateway keys the decision: at `sample_ratio = 0.05`
//! such calls are exported at about that share. A loopback collector
//! counts what arrives after the node has stopped (its last export).
// The collector's count: a test-only std Mutex, never on a call path.
#![allow(clippy::disallowed_types)]

mod common;

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use common::{Harness, HarnessOptions};
use menshen::config::OtlpSection;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

type Count = Arc<Mutex<usize>>;

async fn traces(State(n): State<Count>, body: Bytes) -> Vec<u8> {
    let req = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf request");
    let spans: usize = req
        .resource_spans
        .iter()
        .flat_map(|r| r.scope_spans.iter())
        .map(|s| s.spans.len())
        .sum();
    *n.lock().unwrap() += spans;
    ExportTraceServiceResponse::default().encode_to_vec()
}

/// Issue 14 item 7, MON-1: 60 calls whose trace ids the plain ratio would
/// always export: at a 5 % ratio, far fewer than 60 spans reach the
/// collector (expected 3; fewer than 20 allowed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_client_chosen_trace_ids_do_not_force_export() {
    let n: Count = Arc::default();
    let l = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let endpoint = format!("http://{}", l.local_addr().unwrap());
    let app = Router::new()
        .route("/v1/traces", post(traces))
        .with_state(n.clone());
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    let mut h = Harness::start_with(HarnessOptions {
        configure: Some(Box::new(move |c: &mut menshen::config::Config| {
            c.tracing.otlp = Some(OtlpSection {
                endpoint,
                service_name: "menshen-test".into(),
                sample_ratio: 0.05,
                queue: 2048,
                timeout_ms: 1000,
            });
        })),
        ..Default::default()
    })
    .await;
    h.api("ping", "GET", "/v1/ping", "A1").await;
    let (app, secret) = h.app("chooser", "server").await;
    h.grant(&app, "ping").await;
    let c = h.client(&app, &secret);
    for i in 0..60u32 {
        let mut req = c.request("GET", "/v1/ping", None).unwrap();
        // Low 8 bytes zero: below any ratio under the plain decision.
        let tp = format!(
            "00-{:08x}{:08x}0000000000000000-00f067aa0ba902b7-01",
            0x5eed_0000 + i,
            i
        );
        req.headers_mut().insert("traceparent", tp.parse().unwrap());
        c.sign(&mut req, None).unwrap();
        assert_eq!(c.send(req).await.unwrap().status, 200);
    }
    // Stopping the node exports what is queued.
    h.stop().await;
    let got = *n.lock().unwrap();
    assert!(
        got < 20,
        "{got} of 60 calls with chosen trace ids were exported at a 5 % ratio"
    );
}
