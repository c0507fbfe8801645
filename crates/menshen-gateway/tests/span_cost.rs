//! Issue 14 item 7: what span export costs on the call path, measured in
//! process, in one run: a gateway without a span sink (OTLP off, the
//! default) against one whose sink samples every trace and hands each
//! call's `CallSpan` to a bounded channel with `try_send` (what the node's
//! OTLP sink does before the SDK's batch processor), drained on a timer by
//! a thread whose CPU is not counted (the export is off the call path).
//! Not counted either: turning the `CallSpan` into the SDK's `SpanData`
//! (in the node's sink, a few allocations).
//!
//! Two gateways (`State`s) on one control plane differ only in
//! `StartOptions::spans`. Rounds alternate between them; each round sends
//! `CALLS` signed A1 calls (signed before the clock starts) through
//! `pipeline::handle` to a mock upstream running on a thread of its own.
//! The gateway's CPU is the process's CPU time (`/proc/self/task/*/schedstat`,
//! nanoseconds on a CPU) minus the upstream thread's. The median round of each
//! side gives CPU per call; the difference is what building and handing
//! over a span costs.
//!
//! Run: `cargo test --release -p menshen-gateway --test span_cost -- --ignored --nocapture`
//! (ignored by default: it takes ~30 s and wants a quiet machine).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use menshen_audit::{AuditConfig, AuditLog};
use menshen_gateway::server::{StartOptions, State};
use menshen_gateway::trace::{CallSpan, SpanSink};
use menshen_gateway::GatewayConfig;
use menshen_sdk::Credentials;
use menshen_store::{ControlPlane, MemoryHotState};

mod cost;

const CALLS: usize = 5_000;
const ROUNDS: usize = 41;

/// A sink like the node's: sample all, `try_send` to a bounded queue.
#[derive(Debug)]
struct Queue(std::sync::mpsc::SyncSender<CallSpan>);

impl SpanSink for Queue {
    fn sampled(&self, t: &[u8; 16]) -> bool {
        menshen_gateway::trace::ratio_sampled(t, 1.0)
    }
    fn finish(&self, span: CallSpan) {
        let _ = self.0.try_send(span);
    }
}

fn queue() -> Arc<dyn SpanSink> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<CallSpan>(2048);
    std::thread::Builder::new()
        .name("span-drain".into())
        .spawn(move || loop {
            // Like the SDK's batch processor: the span queue is drained on
            // a timer, so a hand-over never wakes a thread.
            std::thread::sleep(std::time::Duration::from_millis(20));
            loop {
                match rx.try_recv() {
                    Ok(_) => {}
                    Err(std::sync::mpsc::TryRecvError::Empty) => break,
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => return,
                }
            }
        })
        .unwrap();
    Arc::new(Queue(tx))
}

async fn gateway(
    cp: &ControlPlane,
    dir: &std::path::Path,
    spans: Option<Arc<dyn SpanSink>>,
) -> Arc<State> {
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
        StartOptions {
            spans,
            ..Default::default()
        },
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
fn otlp_span_cost_per_a1_call() {
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
        let on = gateway(&cp, &dir.path().join("audit-on"), Some(queue())).await;
        let off = gateway(&cp, &dir.path().join("audit-off"), None).await;
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
            "median: on {con_m:.2} us, off {coff_m:.2} us: span export costs {:+.2} us = {:+.1}% per call",
            con_m - coff_m,
            (con_m / coff_m - 1.0) * 100.0
        );
        println!(
            "wall per call (median), us: on {:.2}, off {:.2}",
            cost::median(won),
            cost::median(woff)
        );

    });
}
