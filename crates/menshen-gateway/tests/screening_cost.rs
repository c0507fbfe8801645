//! ATK-1 performance (issue 13): what screening adds to an A1 call with five
//! query parameters, measured in process, in one run, screening `off`
//! against `block` (the demo product list's mode).
//!
//! One gateway (`State`) serves two A1 APIs that differ only in
//! `controls.screening.mode`: `/v1/plain` (off) and `/v1/screened` (block).
//! Rounds alternate between them; each round sends `CALLS` signed calls
//! (signed before the clock starts) through `pipeline::handle` to a mock
//! upstream on a thread of its own, each with the same five query
//! parameters: a free-text search with a space (so the libinjection step
//! runs), a Chinese one, a page number, a sort key and a currency. The
//! gateway's CPU is the process's CPU time (`/proc/self/task/*/schedstat`)
//! minus the upstream thread's; the median round of each side gives CPU per
//! call, and the difference is what screening costs. A second figure times
//! `screen::scan` alone on the five values.
//!
//! Run: `cargo test --release -p menshen-gateway --test screening_cost -- --ignored --nocapture`
//! (ignored by default: it takes ~30 s and wants a quiet machine).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use menshen_audit::{AuditConfig, AuditLog};
use menshen_gateway::server::{StartOptions, State};
use menshen_gateway::GatewayConfig;
use menshen_model::{NewApi, NewApp};
use menshen_sdk::Credentials;
use menshen_store::{ControlPlane, MemoryHotState};
use serde_json::json;

mod cost;

const CALLS: usize = 10_000;
const ROUNDS: usize = 12;

/// The five query parameters (percent-encoded): `q` free text with a
/// space, `name` Chinese with a middle dot, `page`, `sort`, `currency`.
const QUERY: &str = "q=steady%20income&name=%E9%98%BF%E4%BE%9D%E5%8F%A4%E4%B8%BD%C2%B7%E4%B9%B0%E4%B9%B0%E6%8F%90&page=2&sort=annual_rate&currency=CNY";

async fn gateway(cp: &ControlPlane, dir: &std::path::Path) -> Arc<State> {
    let audit = AuditLog::open(AuditConfig::new(dir.to_path_buf()), None, None).unwrap();
    let cfg = GatewayConfig::new(
        vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0))],
        "unused.pem".into(),
        "unused.key".into(),
    );
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

async fn round(state: &Arc<State>, creds: &Credentials, path: &str) -> f64 {
    let reqs = cost::signed_gets(creds, CALLS, |_| format!("https://gw.test{path}?{QUERY}"));
    cost::run_calls(state, reqs).await.0
}

#[test]
#[ignore]
fn atk_1_screening_cost_per_a1_call_with_five_query_parameters() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let cp = cost::control_plane(dir.path());
        cp.ensure_bank_keys().await.unwrap();
        let upstream = cost::mock_upstream(b"{\"ok\":true}");
        let app: NewApp =
            serde_json::from_value(json!({"name": "Bench", "kind": "server"})).unwrap();
        let created = cp.create_app(&app).await.unwrap();
        for (id, mode) in [("plain", "off"), ("screened", "block")] {
            let api: NewApi = serde_json::from_value(json!({"api_id": id, "method": "GET",
                "path": format!("/v1/{id}"), "upstream": upstream, "level": "A1", "category": 3,
                "subcategory": 1, "integrations": ["server_to_server"],
                "controls": {"screening": {"mode": mode}}}))
            .unwrap();
            cp.create_api(&api).await.unwrap();
            cp.add_grant(&created.app.app_id, id).await.unwrap();
        }
        let creds =
            Credentials::hmac_sm3(&created.app.app_id, created.app_secret.as_bytes().to_vec());
        let gw = gateway(&cp, &dir.path().join("audit")).await;
        // Warm-up: connections, caches.
        round(&gw, &creds, "/v1/plain").await;
        round(&gw, &creds, "/v1/screened").await;
        let (mut on, mut off) = (vec![], vec![]);
        // Which side goes first alternates, so neither inherits the other's
        // lagging work (the audit writer) more often.
        for i in 0..ROUNDS {
            if i % 2 == 0 {
                off.push(round(&gw, &creds, "/v1/plain").await);
                on.push(round(&gw, &creds, "/v1/screened").await);
            } else {
                on.push(round(&gw, &creds, "/v1/screened").await);
                off.push(round(&gw, &creds, "/v1/plain").await);
            }
        }
        let (on_m, off_m) = (cost::median(on.clone()), cost::median(off.clone()));
        println!("gateway CPU per A1 call with 5 query parameters, us (rounds of {CALLS}): block {on:.2?}  off {off:.2?}");
        println!(
            "median: block {on_m:.2} us, off {off_m:.2} us: screening costs {:+.2} us = {:+.1}% per call (target <= 5%)",
            on_m - off_m,
            (on_m / off_m - 1.0) * 100.0
        );

        // The detector alone on the five decoded values.
        let values: Vec<String> = form_urlencoded::parse(QUERY.as_bytes())
            .flat_map(|(k, v)| [k.into_owned(), v.into_owned()])
            .collect();
        let n = 200_000u32;
        let t = Instant::now();
        for _ in 0..n {
            for v in &values {
                assert!(menshen_gateway::screen::scan(std::hint::black_box(v)).is_none());
            }
        }
        let ns = t.elapsed().as_nanos() as f64 / f64::from(n);
        println!(
            "screen::scan alone on the 5 names and 5 values: {ns:.0} ns per call = {:.2}% of the off-side CPU per call",
            ns / 1000.0 / off_m * 100.0
        );
    });
}
