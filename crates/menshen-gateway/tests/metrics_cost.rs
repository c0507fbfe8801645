//! MON-1 performance (issue 14): what counting a call costs on the hot
//! path, measured in process, in one run, with metrics on and off.
//!
//! Two gateways (`State`s) on one control plane differ only in
//! `gateway.metrics`. Rounds alternate between them; each round sends
//! `CALLS` signed A1 calls (signed before the clock starts) through
//! `pipeline::handle` to a mock upstream running on a thread of its own.
//! The gateway's CPU is the process's CPU time (`/proc/self/task/*/schedstat`,
//! nanoseconds on a CPU) minus the upstream thread's. The median round of each
//! side gives CPU per call; the difference is what metrics cost. A second
//! figure times `Metrics::observe` alone.
//!
//! Run: `cargo test --release -p menshen-gateway --test metrics_cost -- --ignored --nocapture`
//! (ignored by default: it takes ~30 s and wants a quiet machine).

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use menshen_audit::{AuditConfig, AuditLog};
use menshen_gateway::pipeline::{handle, ConnInfo};
use menshen_gateway::server::{StartOptions, State};
use menshen_gateway::GatewayConfig;
use menshen_model::{NewApi, NewApp};
use menshen_sdk::{sign_request, Credentials, SignOptions};
use menshen_store::{ControlPlane, MemoryHotState, SqliteStore, UApiConfig};
use serde_json::json;

const CALLS: usize = 5_000;
const ROUNDS: usize = 41;

/// CPU time (ns) of every thread, and of the threads named
/// `upstream-mock` (`/proc/self/task/*/schedstat`: time on a CPU).
fn cpu_ns() -> (u64, u64) {
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
        if comm.starts_with("upstream-mock") {
            up += ns;
        }
    }
    (all, up)
}

fn mock_upstream() -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("upstream-mock".into())
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
                            |_req: Request<hyper::body::Incoming>| async {
                                Ok::<_, Infallible>(http::Response::new(Full::new(
                                    Bytes::from_static(b"{\"ok\":true}"),
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

async fn gateway(cp: &ControlPlane, dir: &std::path::Path, metrics: bool) -> Arc<State> {
    let audit = AuditLog::open(AuditConfig::new(dir.to_path_buf()), None, None).unwrap();
    let mut cfg = GatewayConfig::new(
        vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0))],
        "unused.pem".into(),
        "unused.key".into(),
    );
    cfg.metrics = metrics;
    State::build(
        cfg,
        cp,
        Arc::new(MemoryHotState::default()),
        audit,
        StartOptions::default(),
    )
    .await
    .unwrap()
}

async fn round(state: &Arc<State>, creds: &Credentials) -> (f64, f64) {
    let reqs: Vec<Request<Bytes>> = (0..CALLS)
        .map(|i| {
            let mut r = Request::builder()
                .method("GET")
                .uri(format!("https://gw.test/v1/items/{i}"))
                .body(Bytes::new())
                .unwrap();
            sign_request(&mut r, creds, &SignOptions::default()).unwrap();
            r
        })
        .collect();
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
    (
        gw_cpu_ns as f64 / CALLS as f64 / 1e3,
        wall / CALLS as f64 * 1e6,
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

#[test]
#[ignore]
fn mon_1_metrics_cost_per_a1_call() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("menshen.db")).unwrap();
        let cp = ControlPlane::new(
            Arc::new(store),
            Arc::new(
                menshen_crypto::MasterKey::from_text(&menshen_crypto::MasterKey::generate())
                    .unwrap(),
            ),
            UApiConfig {
                prefix: "0P".into(),
                institution: "C10305".into(),
            },
        );
        cp.ensure_bank_keys().await.unwrap();
        let upstream = mock_upstream();
        let api: NewApi = serde_json::from_value(json!({"api_id": "items", "method": "GET",
            "path": "/v1/items/{id}", "upstream": upstream, "level": "A1", "category": 3,
            "subcategory": 1, "integrations": ["server_to_server"]}))
        .unwrap();
        cp.create_api(&api).await.unwrap();
        let app: NewApp =
            serde_json::from_value(json!({"name": "Bench", "kind": "server"})).unwrap();
        let created = cp.create_app(&app).await.unwrap();
        cp.add_grant(&created.app.app_id, "items").await.unwrap();
        let creds =
            Credentials::hmac_sm3(&created.app.app_id, created.app_secret.as_bytes().to_vec());
        let on = gateway(&cp, &dir.path().join("audit-on"), true).await;
        let off = gateway(&cp, &dir.path().join("audit-off"), false).await;
        // Warm-up: connections, caches.
        round(&on, &creds).await;
        round(&off, &creds).await;
        let (mut con, mut coff, mut won, mut woff) = (vec![], vec![], vec![], vec![]);
        for _ in 0..ROUNDS {
            let (c, w) = round(&off, &creds).await;
            coff.push(c);
            woff.push(w);
            let (c, w) = round(&on, &creds).await;
            con.push(c);
            won.push(w);
        }
        let (con_m, coff_m) = (median(con.clone()), median(coff.clone()));
        // Paired: each on-round against the off-round just before it (the
        // machine's load drifts slower than a round).
        let mut diffs: Vec<f64> = con.iter().zip(&coff).map(|(a, b)| a - b).collect();
        diffs.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let (q1, q3) = (diffs[diffs.len() / 4], diffs[diffs.len() * 3 / 4]);
        println!(
            "paired difference on - off: median {:+.2} us ({:+.1}% of off), interquartile {q1:+.2} .. {q3:+.2} us",
            median(diffs.clone()),
            median(diffs.clone()) / coff_m * 100.0
        );
        println!("gateway CPU per A1 call, us (rounds of {CALLS}): on {con:.2?}  off {coff:.2?}");
        println!(
            "median: on {con_m:.2} us, off {coff_m:.2} us: metrics cost {:+.2} us = {:+.1}% per call",
            con_m - coff_m,
            (con_m / coff_m - 1.0) * 100.0
        );
        println!(
            "wall per call (median), us: on {:.2}, off {:.2}",
            median(won),
            median(woff)
        );

        // The counting alone: Metrics::observe for an A1 success, timed.
        let m = menshen_metrics::Metrics::new(true);
        let app = menshen_metrics::intern(&created.app.app_id);
        let api = menshen_metrics::intern("items");
        let call = menshen_metrics::Call {
            app,
            api,
            level: menshen_metrics::Level::A1,
            class: menshen_metrics::Class::Success,
            kind: menshen_metrics::Kind::None,
            code: None,
            duration_us: 180,
            upstream_us: Some(90),
            upstream_error: None,
            rate_limit: None,
            client_ip: std::net::IpAddr::V4(Ipv4Addr::LOCALHOST),
            claimed_app: Some(&created.app.app_id),
        };
        let n = 2_000_000u32;
        let t = Instant::now();
        for _ in 0..n {
            m.observe(std::hint::black_box(&call));
        }
        let ns = t.elapsed().as_nanos() as f64 / f64::from(n);
        println!(
            "Metrics::observe alone: {ns:.0} ns per call = {:.2}% of the off-side CPU per call",
            ns / 1000.0 / coff_m * 100.0
        );
    });
}
