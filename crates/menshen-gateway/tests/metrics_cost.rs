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

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use menshen_audit::{AuditConfig, AuditLog};
use menshen_gateway::server::{StartOptions, State};
use menshen_gateway::GatewayConfig;
use menshen_sdk::Credentials;
use menshen_store::{ControlPlane, MemoryHotState};

mod cost;

const CALLS: usize = 5_000;
const ROUNDS: usize = 41;

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
    let reqs = cost::signed_gets(creds, CALLS, |i| format!("https://gw.test/v1/items/{i}"));
    cost::run_calls(state, reqs).await
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
        let cp = cost::control_plane(dir.path());
        cp.ensure_bank_keys().await.unwrap();
        let upstream = cost::mock_upstream(b"{\"ok\":true}");
        let creds = cost::items_app(&cp, &upstream).await;
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
        let (con_m, coff_m) = (cost::median(con.clone()), cost::median(coff.clone()));
        // Paired: each on-round against the off-round just before it (the
        // machine's load drifts slower than a round).
        let mut diffs: Vec<f64> = con.iter().zip(&coff).map(|(a, b)| a - b).collect();
        diffs.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let (q1, q3) = (diffs[diffs.len() / 4], diffs[diffs.len() * 3 / 4]);
        println!(
            "paired difference on - off: median {:+.2} us ({:+.1}% of off), interquartile {q1:+.2} .. {q3:+.2} us",
            cost::median(diffs.clone()),
            cost::median(diffs.clone()) / coff_m * 100.0
        );
        println!("gateway CPU per A1 call, us (rounds of {CALLS}): on {con:.2?}  off {coff:.2?}");
        println!(
            "median: on {con_m:.2} us, off {coff_m:.2} us: metrics cost {:+.2} us = {:+.1}% per call",
            con_m - coff_m,
            (con_m / coff_m - 1.0) * 100.0
        );
        println!(
            "wall per call (median), us: on {:.2}, off {:.2}",
            cost::median(won),
            cost::median(woff)
        );

        // The counting alone: Metrics::observe for an A1 success, timed.
        let m = menshen_metrics::Metrics::new(true);
        let app = menshen_metrics::intern(&creds.app_id);
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
            claimed_app: Some(&creds.app_id),
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
