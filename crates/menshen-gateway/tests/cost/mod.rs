//! The harness the in-process cost benches share (`metrics_cost.rs`,
//! `screening_cost.rs`, `envelope_cost.rs`, `span_cost.rs`): a mock upstream
//! on a thread of its own, the process's CPU time minus that thread's, a
//! round of pre-signed calls through `pipeline::handle`, the median.
//! Each bench keeps what it compares (the gateways it builds, the calls it
//! signs); the method is described in each bench's header.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use menshen_gateway::pipeline::{handle, ConnInfo};
use menshen_gateway::server::State;
use menshen_model::{NewApi, NewApp};
use menshen_sdk::{sign_request, Credentials, SignOptions};
use menshen_store::{ControlPlane, SqliteStore, UApiConfig};
use serde_json::json;

/// Name of the mock upstream's thread (its CPU is not the gateway's).
const UPSTREAM_THREAD: &str = "upstream-mock";
/// Threads whose CPU is not the gateway's: the mock upstream, and
/// `span_cost.rs`'s drain standing in for the OTLP exporter.
const NOT_GATEWAY: &[&str] = &[UPSTREAM_THREAD, "span-drain"];

/// CPU time (ns) of every thread of the process, and of the threads in
/// [`NOT_GATEWAY`] (`/proc/self/task/*/schedstat`: time on a CPU).
pub fn cpu_ns() -> (u64, u64) {
    let (mut all, mut up) = (0, 0);
    for t in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let (Ok(sched), Ok(comm)) = (
            std::fs::read_to_string(t.path().join("schedstat")),
            std::fs::read_to_string(t.path().join("comm")),
        ) else {
            continue;
        };
        let ns: u64 = sched.split_whitespace().next().unwrap().parse().unwrap();
        all += ns;
        if NOT_GATEWAY.iter().any(|n| comm.starts_with(n)) {
            up += ns;
        }
    }
    (all, up)
}

/// An HTTP/1.1 upstream on 127.0.0.1 answering every request 200 with
/// `answer`, on a thread (and runtime) of its own; its base URL.
pub fn mock_upstream(answer: &'static [u8]) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(UPSTREAM_THREAD.into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                    .await
                    .unwrap();
                tx.send(format!("http://{}", l.local_addr().unwrap()))
                    .unwrap();
                loop {
                    let (tcp, _) = l.accept().await.unwrap();
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(
                            move |_req: Request<hyper::body::Incoming>| async move {
                                Ok::<_, Infallible>(http::Response::new(Full::new(
                                    Bytes::from_static(answer),
                                )))
                            },
                        );
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                            .await;
                    });
                }
            });
        })
        .unwrap();
    rx.recv().unwrap()
}

/// A control plane on a fresh SQLite file in `dir`, with a random master key.
pub fn control_plane(dir: &std::path::Path) -> ControlPlane {
    let store = SqliteStore::open(&dir.join("menshen.db")).unwrap();
    ControlPlane::new(
        Arc::new(store),
        Arc::new(
            menshen_crypto::MasterKey::from_text(&menshen_crypto::MasterKey::generate()).unwrap(),
        ),
        UApiConfig {
            prefix: "0P".into(),
            institution: "C10305".into(),
        },
    )
}

/// An A1 API `items` (`GET /v1/items/{id}`) to `upstream`, and an app
/// granted it; the app's HMAC-SM3 credentials.
pub async fn items_app(cp: &ControlPlane, upstream: &str) -> Credentials {
    let api: NewApi = serde_json::from_value(json!({"api_id": "items", "method": "GET",
        "path": "/v1/items/{id}", "upstream": upstream, "level": "A1", "category": 3,
        "subcategory": 1, "integrations": ["server_to_server"]}))
    .unwrap();
    cp.create_api(&api).await.unwrap();
    let app: NewApp = serde_json::from_value(json!({"name": "Bench", "kind": "server"})).unwrap();
    let created = cp.create_app(&app).await.unwrap();
    cp.add_grant(&created.app.app_id, "items").await.unwrap();
    Credentials::hmac_sm3(&created.app.app_id, created.app_secret.as_bytes().to_vec())
}

/// `n` GET requests to `uri(i)`, each signed with `creds` (before any
/// clock starts).
pub fn signed_gets(
    creds: &Credentials,
    n: usize,
    uri: impl Fn(usize) -> String,
) -> Vec<Request<Bytes>> {
    (0..n)
        .map(|i| {
            let mut r = Request::builder()
                .method("GET")
                .uri(uri(i))
                .body(Bytes::new())
                .unwrap();
            sign_request(&mut r, creds, &SignOptions::default()).unwrap();
            r
        })
        .collect()
}

/// Send `reqs` (signed before the clock starts) one after another through
/// the pipeline, each expected to answer 200; the gateway's CPU per call
/// and the wall time per call, in microseconds.
pub async fn run_calls(state: &Arc<State>, reqs: Vec<Request<Bytes>>) -> (f64, f64) {
    let n = reqs.len().max(1) as f64;
    let (a0, u0) = cpu_ns();
    let t0 = Instant::now();
    for r in reqs {
        let (parts, body) = r.into_parts();
        let resp = handle(
            state.clone(),
            Request::from_parts(parts, Full::new(body)),
            ConnInfo {
                peer: SocketAddr::from((Ipv4Addr::LOCALHOST, 40_000)),
                client_cert: None,
                slot: None,
            },
        )
        .await;
        assert_eq!(resp.status(), 200);
    }
    let wall = t0.elapsed().as_secs_f64();
    let (a1, u1) = cpu_ns();
    let gw_cpu_ns = (a1 - a0) - (u1 - u0);
    (gw_cpu_ns as f64 / n / 1e3, wall / n * 1e6)
}

/// The median of `v` (the upper one of an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}
