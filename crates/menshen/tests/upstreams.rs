//! Named upstreams (TRF-2, DEP-1) end to end: a real node over TLS on
//! 127.0.0.1, real test back ends on 127.0.0.1 whose behaviour the test
//! switches (failing, health endpoint down, hanging), APIs on
//! `upstream://NAME`. Waits poll with a deadline; nothing asserts on a
//! sleep.
// Tests may hold a std Mutex (the clippy.toml ban is for the product).
#![allow(clippy::disallowed_types)]

mod common;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Router;
use common::{eventually, Harness, HarnessOptions};
use menshen_audit::Outcome;
use menshen_gateway::upstream::breaker::BreakerState;
use menshen_gateway::upstream::config::{Balance, BreakerConfig, HealthConfig, UpstreamConfig};
use menshen_sdk::Client;
use serde_json::{json, Value};

/// A test back end: counts calls (health checks apart), answers 500 while
/// `fail`, answers its health check 503 while `down`, holds calls while
/// `hang` until `release`.
#[derive(Clone, Default)]
struct Backend {
    calls: Arc<AtomicUsize>,
    health_calls: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<String>>>,
    fail: Arc<AtomicBool>,
    down: Arc<AtomicBool>,
    hang: Arc<AtomicBool>,
    release: Arc<tokio::sync::Notify>,
}

impl Backend {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    fn seen(&self, method: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.as_str() == method)
            .count()
    }
}

async fn backend_handler(
    State(b): State<Backend>,
    method: Method,
    uri: Uri,
) -> axum::response::Response {
    if uri.path() == "/health" {
        b.health_calls.fetch_add(1, Ordering::SeqCst);
        return if b.down.load(Ordering::SeqCst) {
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        } else {
            "up".into_response()
        };
    }
    b.calls.fetch_add(1, Ordering::SeqCst);
    b.seen.lock().unwrap().push(method.to_string());
    if b.hang.load(Ordering::SeqCst) {
        // Bounded: the test releases it; never longer than 20 s.
        let _ = tokio::time::timeout(Duration::from_secs(20), b.release.notified()).await;
    }
    if b.fail.load(Ordering::SeqCst) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response();
    }
    (
        [("content-type", "application/json")],
        json!({"ok": true, "path": uri.path()}).to_string(),
    )
        .into_response()
}

async fn start_backend() -> (Backend, String) {
    let b = Backend::default();
    let l = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let app = Router::new()
        .fallback(backend_handler)
        .with_state(b.clone());
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    (b, url)
}

/// An address nothing listens on (bound, then closed): connecting to it is
/// refused at once.
async fn dead_url() -> String {
    let l = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    url
}

fn upstream(targets: Vec<String>) -> UpstreamConfig {
    UpstreamConfig {
        targets,
        balance: Balance::LeastInFlight,
        max_in_flight: 64,
        max_connections: 64,
        retries: 1,
        timeout_ms: None,
        health: None,
        breaker: BreakerConfig::default(),
    }
}

fn health(interval_ms: u64, healthy: u32, unhealthy: u32) -> Option<HealthConfig> {
    Some(HealthConfig {
        path: "/health".into(),
        interval_ms,
        timeout_ms: interval_ms,
        healthy_threshold: healthy,
        unhealthy_threshold: unhealthy,
    })
}

/// A node with `upstreams`, one app, and `apis` = (api_id, method, path,
/// upstream name, controls) all granted to the app.
async fn node(
    upstreams: Vec<(&str, UpstreamConfig)>,
    apis: &[(&str, &str, &str, &str, Option<Value>)],
) -> (Harness, Client) {
    let h = Harness::start_with(HarnessOptions {
        upstreams: upstreams
            .into_iter()
            .map(|(n, c)| (n.to_string(), c))
            .collect::<BTreeMap<_, _>>(),
        ..Default::default()
    })
    .await;
    let (app, secret) = h.app("Fintech Resilience", "server").await;
    for (id, method, path, up, controls) in apis {
        let mut body = json!({"api_id": id, "method": method, "path": path,
            "upstream": format!("upstream://{up}"), "level": "A1", "category": 3, "subcategory": 1});
        if let Some(c) = controls {
            body["controls"] = c.clone();
        }
        let (s, v) = h.admin("POST", "/v1/apis", Some(body)).await;
        assert_eq!(s, 201, "{v}");
        assert_eq!(v["upstream"], format!("upstream://{up}"));
        h.grant(&app, id).await;
    }
    let c = h.client(&app, &secret);
    (h, c)
}

fn named(h: &Harness, name: &str) -> Arc<menshen_gateway::upstream::named::Upstream> {
    h.node()
        .gateway
        .state
        .upstream
        .named
        .get(name)
        .expect("configured")
        .clone()
}

async fn code_of(c: &Client, method: &str, path: &str) -> (u16, Option<String>, String) {
    let body = (method == "POST").then(|| b"{}".to_vec());
    let r = c.call(method, path, body).await.unwrap();
    (
        r.status,
        r.error().map(|e| e.code),
        r.txn_id().unwrap_or_default().to_string(),
    )
}

/// TRF-2: consecutive failures open the breaker at the threshold (calls
/// then degraded, nothing forwarded, recorded); after the open time a
/// probe goes through (failing: open again); once the upstream answers,
/// the probes close it.
#[tokio::test]
async fn trf_2_breaker_opens_at_the_threshold_probes_and_closes() {
    let (b, url) = start_backend().await;
    let mut cfg = upstream(vec![url]);
    cfg.breaker = BreakerConfig {
        consecutive_failures: 3,
        failure_rate_percent: 0,
        open_ms: 300,
        half_open_probes: 2,
        ..BreakerConfig::default()
    };
    let (h, c) = node(
        vec![("ledger", cfg)],
        &[("ledger", "GET", "/v1/ledger/{id}", "ledger", None)],
    )
    .await;
    let breaker = named(&h, "ledger").breaker.clone().unwrap();
    b.fail.store(true, Ordering::SeqCst);
    for i in 0..3 {
        let (s, code, _) = code_of(&c, "GET", "/v1/ledger/1").await;
        assert_eq!(
            (s, code.as_deref()),
            (502, Some("UPSTREAM_UNAVAILABLE")),
            "call {i}"
        );
    }
    assert_eq!(b.calls(), 3);
    assert_eq!(breaker.state(), BreakerState::Open);
    // Open: degraded at once, nothing forwarded, Retry-After, recorded.
    let r = c.call("GET", "/v1/ledger/1", None).await.unwrap();
    let e = r.error().unwrap();
    assert_eq!((r.status, e.code.as_str()), (503, "SERVICE_DEGRADED"));
    assert_eq!(r.headers["retry-after"], "1");
    assert_eq!(b.calls(), 3, "nothing forwarded while open");
    let rec = h.record(&e.txn_id).await;
    assert_eq!(rec.code.as_deref(), Some("SERVICE_DEGRADED"));
    assert_eq!((rec.status, rec.result), (503, Outcome::Failure));
    assert!(
        rec.reason
            .as_deref()
            .is_some_and(|x| x.contains("circuit breaker of upstream ledger open")),
        "{:?}",
        rec.reason
    );
    // After the open time a probe reaches the still failing upstream: 502,
    // and the breaker is open again.
    let t = std::time::Instant::now();
    loop {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no probe was let through"
        );
        let (s, code, _) = code_of(&c, "GET", "/v1/ledger/1").await;
        if s == 502 {
            break;
        }
        assert_eq!(code.as_deref(), Some("SERVICE_DEGRADED"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(b.calls(), 4, "exactly one probe");
    assert_eq!(breaker.state(), BreakerState::Open);
    assert_eq!(breaker.times_opened(), 2);
    // The upstream recovers: two successful probes close the breaker.
    b.fail.store(false, Ordering::SeqCst);
    let t = std::time::Instant::now();
    while breaker.state() != BreakerState::Closed {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "breaker never closed"
        );
        let (s, code, _) = code_of(&c, "GET", "/v1/ledger/1").await;
        assert!(
            s == 200 || code.as_deref() == Some("SERVICE_DEGRADED"),
            "{s} {code:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..5 {
        assert_eq!(code_of(&c, "GET", "/v1/ledger/1").await.0, 200);
    }
    assert_eq!(breaker.times_opened(), 2);
    // MON-1: the transitions and refusals are counted per upstream.
    let text = h.node().gateway.state.metrics.encode();
    for ev in ["opened", "half_opened", "closed", "rejected"] {
        let line = text
            .lines()
            .find(|l| {
                l.starts_with("menshen_breaker_events_total{")
                    && l.contains("upstream=\"ledger\"")
                    && l.contains(&format!("event=\"{ev}\""))
            })
            .unwrap_or_else(|| panic!("no {ev} count in\n{text}"));
        let n: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        // Opened twice (threshold, failed probe), half-open twice, closed
        // once, refused at least once.
        let want = if matches!(ev, "opened" | "half_opened") {
            2.0
        } else {
            1.0
        };
        assert!(n >= want, "{line}");
    }
}

/// TRF-2 bulkhead: calls hanging on one upstream fill only its own
/// in-flight cap; the next call to it is answered 503 `UPSTREAM_BUSY` at
/// once (not queued), and another upstream keeps answering. A connection
/// cap refuses the same way.
#[tokio::test]
async fn trf_2_bulkhead_a_slow_upstream_does_not_slow_calls_to_another() {
    let (slow, slow_url) = start_backend().await;
    let (fast, fast_url) = start_backend().await;
    let mut slow_cfg = upstream(vec![slow_url.clone()]);
    slow_cfg.max_in_flight = 3;
    slow_cfg.timeout_ms = Some(25_000);
    let mut narrow_cfg = upstream(vec![slow_url]);
    narrow_cfg.max_connections = 1;
    narrow_cfg.timeout_ms = Some(25_000);
    let (h, c) = node(
        vec![
            ("slow", slow_cfg),
            ("fast", upstream(vec![fast_url])),
            ("narrow", narrow_cfg),
        ],
        &[
            ("slow", "GET", "/v1/slow/{id}", "slow", None),
            ("fast", "GET", "/v1/fast/{id}", "fast", None),
            ("narrow", "GET", "/v1/narrow/{id}", "narrow", None),
        ],
    )
    .await;
    slow.hang.store(true, Ordering::SeqCst);
    let mut hanging = Vec::new();
    for i in 0..3 {
        let c = c.clone();
        hanging.push(tokio::spawn(async move {
            c.call("GET", &format!("/v1/slow/{i}"), None)
                .await
                .unwrap()
                .status
        }));
    }
    eventually(
        "three calls hang on the slow upstream",
        Duration::from_secs(10),
        || slow.calls() == 3,
    )
    .await;
    assert_eq!(named(&h, "slow").in_flight(), 3);
    // The fourth is refused at once (a queued call would wait for the
    // release, which comes only after this deadline).
    let r = tokio::time::timeout(Duration::from_secs(5), c.call("GET", "/v1/slow/9", None))
        .await
        .expect("answered at once, not queued")
        .unwrap();
    let e = r.error().unwrap();
    assert_eq!((r.status, e.code.as_str()), (503, "UPSTREAM_BUSY"));
    assert_eq!(slow.calls(), 3, "not forwarded");
    let rec = h.record(&e.txn_id).await;
    assert_eq!(rec.code.as_deref(), Some("UPSTREAM_BUSY"));
    assert!(rec
        .reason
        .as_deref()
        .is_some_and(|x| x.contains("max_in_flight")));
    // The other upstream is not affected.
    for i in 0..10 {
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            c.call("GET", &format!("/v1/fast/{i}"), None),
        )
        .await
        .expect("the fast upstream answers while the slow one hangs")
        .unwrap();
        assert_eq!(r.status, 200);
    }
    assert_eq!(fast.calls(), 10);
    // Connection cap 1: one hanging call holds the only connection; the
    // next needs another and is refused at once.
    let c2 = c.clone();
    let held =
        tokio::spawn(async move { c2.call("GET", "/v1/narrow/1", None).await.unwrap().status });
    eventually(
        "the narrow upstream's call hangs",
        Duration::from_secs(10),
        || slow.calls() == 4,
    )
    .await;
    let r = tokio::time::timeout(Duration::from_secs(5), c.call("GET", "/v1/narrow/2", None))
        .await
        .expect("answered at once")
        .unwrap();
    let e = r.error().unwrap();
    assert_eq!((r.status, e.code.as_str()), (503, "UPSTREAM_BUSY"));
    let rec = h.record(&e.txn_id).await;
    assert!(
        rec.reason
            .as_deref()
            .is_some_and(|x| x.contains("max_connections")),
        "{:?}",
        rec.reason
    );
    assert_eq!(named(&h, "narrow").open_connections(), 1);
    // Release: the hanging calls complete normally.
    slow.hang.store(false, Ordering::SeqCst);
    slow.release.notify_waiters();
    for t in hanging {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(held.await.unwrap(), 200);
    assert_eq!(named(&h, "slow").in_flight(), 0);
}

/// TRF-2 health checks: a target whose health check fails is taken out of
/// rotation after `unhealthy_threshold` checks (no call reaches it), and
/// put back after `healthy_threshold` passes.
#[tokio::test]
async fn trf_2_health_check_takes_a_dead_target_out_and_puts_it_back() {
    let (a, a_url) = start_backend().await;
    let (b, b_url) = start_backend().await;
    let mut cfg = upstream(vec![a_url, b_url]);
    cfg.health = health(100, 2, 2);
    let (h, c) = node(
        vec![("pair", cfg)],
        &[("pair", "GET", "/v1/pair/{id}", "pair", None)],
    )
    .await;
    let u = named(&h, "pair");
    for i in 0..10 {
        assert_eq!(code_of(&c, "GET", &format!("/v1/pair/{i}")).await.0, 200);
    }
    assert!(a.calls() > 0 && b.calls() > 0, "both targets in rotation");
    a.down.store(true, Ordering::SeqCst);
    eventually("target a taken out", Duration::from_secs(10), || {
        !u.targets[0].healthy()
    })
    .await;
    let before = a.calls();
    for i in 0..10 {
        assert_eq!(code_of(&c, "GET", &format!("/v1/pair/{i}")).await.0, 200);
    }
    assert_eq!(a.calls(), before, "an unhealthy target gets no traffic");
    a.down.store(false, Ordering::SeqCst);
    eventually("target a back", Duration::from_secs(10), || {
        u.targets[0].healthy()
    })
    .await;
    for i in 0..10 {
        assert_eq!(code_of(&c, "GET", &format!("/v1/pair/{i}")).await.0, 200);
    }
    assert!(a.calls() > before, "back in rotation");
    assert!(a.health_calls.load(Ordering::SeqCst) >= 4);
}

/// TRF-2 retries: with one target refusing connections, every GET is
/// answered (a connect failure is tried again on the other target, and the
/// record says so), while a POST that met the dead target is not retried.
#[tokio::test]
async fn trf_2_a_post_is_not_retried_while_a_get_goes_to_the_other_target() {
    let (live, live_url) = start_backend().await;
    let mut cfg = upstream(vec![dead_url().await, live_url]);
    cfg.balance = Balance::RoundRobin;
    cfg.breaker.enabled = false;
    let (h, c) = node(
        vec![("dual", cfg)],
        &[
            ("dual-get", "GET", "/v1/dual/items/{id}", "dual", None),
            ("dual-post", "POST", "/v1/dual/orders", "dual", None),
        ],
    )
    .await;
    let mut retried = 0;
    for i in 0..4 {
        let (s, code, txn) = code_of(&c, "GET", &format!("/v1/dual/items/{i}")).await;
        assert_eq!(s, 200, "GET {i}: {code:?}");
        let rec = h.record(&txn).await;
        if rec.reason.as_deref().is_some_and(|r| r.contains("retried")) {
            retried += 1;
        }
    }
    assert_eq!(live.seen("GET"), 4);
    assert!(
        retried >= 1,
        "round robin sent a GET to the dead target first"
    );
    let (mut ok, mut refused) = (0, 0);
    for _ in 0..4 {
        let (s, code, txn) = code_of(&c, "POST", "/v1/dual/orders").await;
        match s {
            200 => ok += 1,
            _ => {
                assert_eq!((s, code.as_deref()), (502, Some("UPSTREAM_UNAVAILABLE")));
                let rec = h.record(&txn).await;
                assert!(!rec.reason.as_deref().unwrap_or("").contains("retried"));
                refused += 1;
            }
        }
    }
    assert!(refused >= 1, "round robin sent a POST to the dead target");
    assert_eq!(
        live.seen("POST"),
        ok,
        "a failed POST never reached the live target"
    );
}

/// TRF-2 degradation: while no target of the upstream is healthy, an API
/// with a fallback answers it (marked, recorded, nothing forwarded) and one
/// without answers 503 `SERVICE_DEGRADED`; both recover with the target.
#[tokio::test]
async fn trf_2_fallback_answer_while_the_upstream_is_down() {
    let (b, url) = start_backend().await;
    let mut cfg = upstream(vec![url]);
    cfg.health = health(100, 1, 1);
    let fallback =
        json!({"fallback": {"status": 200, "body": "{\"degraded\":true,\"balance\":null}"}});
    let (h, c) = node(
        vec![("solo", cfg)],
        &[
            ("solo-fb", "GET", "/v1/solo/fb", "solo", Some(fallback)),
            ("solo-plain", "GET", "/v1/solo/plain", "solo", None),
        ],
    )
    .await;
    let (s, v) = h.admin("GET", "/v1/apis/solo-fb", None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["controls"]["fallback"]["status"], 200);
    let u = named(&h, "solo");
    b.down.store(true, Ordering::SeqCst);
    eventually("target taken out", Duration::from_secs(10), || {
        !u.targets[0].healthy()
    })
    .await;
    let before = b.calls();
    let r = c.call("GET", "/v1/solo/fb", None).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(&r.body[..], b"{\"degraded\":true,\"balance\":null}");
    assert_eq!(r.headers["x-menshen-degraded"], "fallback");
    assert_eq!(r.headers["content-type"], "application/json");
    let rec = h.record(r.txn_id().unwrap()).await;
    assert_eq!(rec.message, "fallback 200 (degraded)");
    assert!(
        rec.reason
            .as_deref()
            .is_some_and(|x| x.contains("no healthy target of upstream solo")),
        "{:?}",
        rec.reason
    );
    let r = c.call("GET", "/v1/solo/plain", None).await.unwrap();
    let e = r.error().unwrap();
    assert_eq!((r.status, e.code.as_str()), (503, "SERVICE_DEGRADED"));
    assert!(r.headers.contains_key("retry-after"));
    assert_eq!(b.calls(), before, "nothing forwarded while degraded");
    b.down.store(false, Ordering::SeqCst);
    eventually("target back", Duration::from_secs(10), || {
        u.targets[0].healthy()
    })
    .await;
    let r = c.call("GET", "/v1/solo/fb", None).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(!r.headers.contains_key("x-menshen-degraded"));
    assert_eq!(b.calls(), before + 1);
}

/// An API may not name an upstream with a malformed name; one naming an
/// upstream this node does not define is answered 502 and recorded with
/// the reason (single-URL APIs keep the direct path: every other test file
/// uses them).
#[tokio::test]
async fn trf_2_a_malformed_upstream_name_is_refused() {
    let (h, c) = node(vec![], &[("ghost", "GET", "/v1/ghost", "nowhere", None)]).await;
    let r = c.call("GET", "/v1/ghost", None).await.unwrap();
    let e = r.error().unwrap();
    assert_eq!((r.status, e.code.as_str()), (502, "UPSTREAM_UNAVAILABLE"));
    let rec = h.record(&e.txn_id).await;
    assert!(
        rec.reason
            .as_deref()
            .is_some_and(|x| x.contains("upstream://nowhere")),
        "{:?}",
        rec.reason
    );
    let (s, v) = h
        .admin(
            "POST",
            "/v1/apis",
            Some(json!({"api_id": "bad", "method": "GET", "path": "/v1/bad", "upstream": "upstream://Core Banking",
                        "level": "A1", "category": 3, "subcategory": 1})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(v.to_string().contains("upstream"), "{v}");
}

/// The example of `docs/upstreams.md` loads as written (below a minimal
/// node config), and a bad value is refused naming its field.
#[test]
fn trf_2_the_documented_example_config_loads() {
    let doc = include_str!("../../../docs/upstreams.md");
    let example = doc
        .split("```toml\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("a toml block in docs/upstreams.md");
    let base = r#"
data_dir = "data"
[uapi]
institution = "C10305"
[gateway]
listen = ["127.0.0.1:8443"]
tls_cert = "tls/server.pem"
tls_key = "tls/server.key"
[admin]
listen = "127.0.0.1:9080"
"#;
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("menshen.toml");
    std::fs::write(&p, format!("{base}{example}")).unwrap();
    let c = menshen::config::Config::load(&p).unwrap();
    let u = &c.gateway.upstreams["core-banking"];
    assert_eq!(u.targets.len(), 2);
    assert_eq!(u.balance, Balance::LeastInFlight);
    assert_eq!(u.health.as_ref().unwrap().unhealthy_threshold, 3);
    assert_eq!(u.breaker.half_open_probes, 3);
    std::fs::write(
        &p,
        format!(
            "{base}{}",
            example.replace("timeout_ms = 500", "timeout_ms = 5000")
        ),
    )
    .unwrap();
    let e = menshen::config::Config::load(&p).unwrap_err().to_string();
    assert!(
        e.contains("gateway.upstreams.core-banking.health.timeout_ms"),
        "{e}"
    );
}
