//! Flow control across several real nodes on one real PostgreSQL store and
//! one real Redis hot state (issue 12 "tests that must exist"; TRF-1, DEP-2):
//!
//! * a limit of N calls per minute on one app x API holds exactly across
//!   three nodes: 10N concurrent signed calls spread over them, exactly N
//!   accepted, the rest 429 `RATE_LIMITED`, exactly N forwarded;
//! * the concurrency slots of a node killed with `kill -9` come free by
//!   themselves within their TTL (`gateway.flow_control.slot_ttl_secs`),
//!   and the other nodes keep serving. The killed node (and a third one)
//!   are real `menshen serve --config` processes for this.
//!
//! Each test starts its own `postgres` and `redis-server` on 127.0.0.1
//! (`menshen-testsupport`); without them it prints "skipped: ..." unless
//! `MENSHEN_REQUIRE_SERVICES=1`, when it fails.

mod common;

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Harness, HarnessOptions};
use menshen::config::Config;
use menshen_sdk::{Client, Credentials};
use menshen_testsupport::{PgServer, RedisServer};
use serde_json::{json, Value};

/// Wait, if needed, until at most 40 s of the current UTC minute have
/// passed, so a test's calls fall in one minute window. (This waits for a
/// boundary; it asserts no timing.)
async fn early_in_a_minute() {
    let s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 60;
    if s > 40 {
        tokio::time::sleep(Duration::from_secs(61 - s)).await;
    }
}

/// The servers and the first node (in this process: it seeds the catalog
/// and runs the recording upstream every node forwards to).
struct Base {
    _pg: PgServer,
    _redis: RedisServer,
    master_key: Vec<u8>,
}

fn base() -> Option<Base> {
    let pg = menshen_testsupport::postgres()?;
    let redis = menshen_testsupport::redis()?;
    pg.create_database("menshen");
    Some(Base {
        _pg: pg,
        _redis: redis,
        master_key: menshen_crypto::MasterKey::generate().as_bytes().to_vec(),
    })
}

impl Base {
    async fn node(&self, k: usize, configure: Option<common::Configure>) -> Harness {
        Harness::start_with(HarnessOptions {
            store_url: Some(self._pg.url("menshen")),
            hot_state_url: Some(self._redis.url()),
            node_id: Some(format!("{k:08x}")),
            master_key: Some(self.master_key.clone()),
            configure,
            ..Default::default()
        })
        .await
    }
}

/// Wait (bounded) until every in-process node's snapshot is at the store's
/// version: each then has the catalog and rules written so far.
async fn until_current(nodes: &[Harness]) {
    let want = nodes[0].node().cp.store.version().await.unwrap();
    let t = Instant::now();
    loop {
        let at: Vec<i64> = nodes
            .iter()
            .map(|h| h.node().gateway.snapshot.current().version)
            .collect();
        if at.iter().all(|v| *v >= want) {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "snapshots {at:?} not at version {want} within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn add_rule(h: &Harness, rule: Value) -> i64 {
    let (st, v) = h.admin("POST", "/v1/limits", Some(rule)).await;
    assert_eq!(st, 201, "{v}");
    v["id"].as_i64().unwrap()
}

/// TRF-1 exact across nodes (issue 12): a limit of N per minute on one
/// app x API, 10N concurrent signed calls spread over three nodes sharing
/// one Redis: exactly N accepted and forwarded, every other call 429
/// `RATE_LIMITED` (one atomic script per check, the time from Redis).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn trf_1_limit_n_per_minute_exact_across_three_nodes() {
    const N: usize = 5;
    let Some(b) = base() else { return };
    let mut nodes = Vec::new();
    for k in 1..=3 {
        nodes.push(b.node(k, None).await);
    }
    let first = &nodes[0];
    first.api("ping", "GET", "/v1/ping", "A1").await;
    // Another API of the same app, not limited: the rule is app x API.
    first.api("other", "GET", "/v1/other", "A1").await;
    let (app_id, secret) = first.app("fintech", "server").await;
    first.grant(&app_id, "ping").await;
    first.grant(&app_id, "other").await;
    add_rule(
        first,
        json!({"app_id": app_id, "api_id": "ping", "window": "minute", "max": N, "action": "reject"}),
    )
    .await;
    until_current(&nodes).await;
    let clients: Vec<Client> = nodes.iter().map(|h| h.client(&app_id, &secret)).collect();

    early_in_a_minute().await;
    let before = first.upstream.count();
    let tasks: Vec<_> = (0..10 * N)
        .map(|i| {
            let c = clients[i % 3].clone();
            tokio::spawn(async move {
                let r = c.call("GET", "/v1/ping", None).await.unwrap();
                (i % 3, r.status, r.error().map(|e| e.code))
            })
        })
        .collect();
    let mut results = vec![];
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let ok = results.iter().filter(|r| r.1 == 200).count();
    let limited = results
        .iter()
        .filter(|r| r.1 == 429 && r.2.as_deref() == Some("RATE_LIMITED"))
        .count();
    assert_eq!((ok, limited), (N, 9 * N), "{results:?}");
    // Every node took part (calls were spread round robin).
    for k in 0..3 {
        assert!(results.iter().filter(|r| r.0 == k).count() >= 3 * N);
    }
    // Every node forwards to the first node's recording upstream.
    assert_eq!(first.upstream.count(), before + N, "exactly N forwarded");
    // The limit counts this app x API only: another API of the app passes
    // on every node.
    for c in &clients {
        let r = c.call("GET", "/v1/other", None).await.unwrap();
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
}

// ------------------------------------------------------- node processes

/// A `menshen serve --config` process; killed (SIGKILL) when dropped.
struct NodeProc {
    child: Child,
    gateway_url: String,
    log: PathBuf,
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Start node `k` as its own process from the first node's config: same
/// store, hot state, master key and TLS certificate, its own node id, data
/// directory and ports under `dir`. Returns once it listens (bounded).
fn spawn_node(first: &Config, dir: &Path, k: usize) -> NodeProc {
    let home = dir.join(format!("node-{k}"));
    std::fs::create_dir_all(&home).unwrap();
    let (gw, admin) = (free_port(), free_port());
    let mut cfg = first.clone();
    cfg.data_dir = home.join("data");
    cfg.node_id = Some(format!("{k:08x}"));
    cfg.gateway.listen = vec![SocketAddr::from((Ipv4Addr::LOCALHOST, gw))];
    cfg.admin.listen = SocketAddr::from((Ipv4Addr::LOCALHOST, admin));
    let file = home.join("menshen.toml");
    std::fs::write(&file, toml::to_string_pretty(&cfg).unwrap()).unwrap();
    let log = home.join("node.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_menshen"))
        .arg("serve")
        .arg("--config")
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let mut p = NodeProc {
        child,
        gateway_url: format!("https://127.0.0.1:{gw}"),
        log,
    };
    let t = Instant::now();
    for port in [gw, admin] {
        loop {
            if let Ok(Some(st)) = p.child.try_wait() {
                panic!(
                    "node {k} exited ({st}): {}",
                    std::fs::read_to_string(&p.log).unwrap_or_default()
                );
            }
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "node {k} not listening within 60 s: {}",
                std::fs::read_to_string(&p.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    p
}

fn client_for(url: &str, ca_pem: &[u8], app_id: &str, secret: &str) -> Client {
    Client::builder(url)
        .unwrap()
        .ca_pem(ca_pem)
        .credentials(Credentials::hmac_sm3(app_id, secret.as_bytes().to_vec()))
        .build()
        .unwrap()
}

/// The slot TTL of this test (`gateway.flow_control.slot_ttl_secs`).
const SLOT_TTL: u64 = 5;

/// TRF-1, DEP-2 (issue 12 item 4): a node holding concurrency slots is
/// killed with `kill -9` (a real `menshen serve` process): its slots come
/// free by themselves within their TTL, and the other nodes (one in this
/// process, one another process) keep serving, then get the freed slots.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn trf_1_kill_9_of_a_node_holding_slots_frees_them_within_their_ttl() {
    let Some(b) = base() else { return };
    let first = b
        .node(
            1,
            Some(Box::new(|c: &mut Config| {
                c.gateway.flow_control.slot_ttl_secs = Some(SLOT_TTL);
                // The slow upstream answers after 30 s: calls to it stay
                // in flight (holding their slots) until the kill.
                c.gateway.upstream_timeout_ms = 60_000;
            })),
        )
        .await;
    first.api("ping", "GET", "/v1/ping", "A1").await;
    first.api("slow", "GET", "/v1/slow", "A1").await;
    let (app_id, secret) = first.app("fintech", "server").await;
    first.grant(&app_id, "ping").await;
    first.grant(&app_id, "slow").await;
    // At most 2 of this app's calls in flight, whichever API, every node.
    add_rule(
        &first,
        json!({"app_id": app_id, "window": "concurrent", "max": 2, "action": "reject"}),
    )
    .await;
    until_current(std::slice::from_ref(&first)).await;

    let dir = tempfile::tempdir().unwrap();
    let mut victim = spawn_node(&first.config, dir.path(), 2);
    let survivor = spawn_node(&first.config, dir.path(), 3);
    let c1 = first.client(&app_id, &secret);
    let c2 = client_for(&victim.gateway_url, &first.ca_pem, &app_id, &secret);
    let c3 = client_for(&survivor.gateway_url, &first.ca_pem, &app_id, &secret);
    // The process nodes serve (they loaded the catalog and the rule).
    for c in [&c2, &c3] {
        let t = Instant::now();
        loop {
            let r = c.call("GET", "/v1/ping", None).await.unwrap();
            if r.status == 200 {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(10), "{:?}", r.body);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // Node 2 takes both slots with two slow calls.
    // One at a time: a slot of a ping above is given back when its
    // exchange ends (one more round trip), so a slow call that raced it is
    // refused 429 and is sent again.
    let before = first.upstream.count();
    let mut slow = Vec::new();
    let t = Instant::now();
    while slow.len() < 2 {
        let c = c2.clone();
        let h = tokio::spawn(async move { c.call("GET", "/v1/slow", None).await });
        let target = before + slow.len() + 1;
        while first.upstream.count() < target && !h.is_finished() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "the slow calls did not reach the upstream"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if first.upstream.count() >= target {
            slow.push(h);
        } else {
            let r = h.await.unwrap().unwrap();
            assert_eq!(r.status, 429, "a slow call failed: {:?}", r.body);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // The slots are shared: the other nodes refuse while node 2 holds them.
    for (n, c) in [(1, &c1), (3, &c3)] {
        let r = c.call("GET", "/v1/ping", None).await.unwrap();
        assert_eq!(
            (r.status, r.error().map(|e| e.code)),
            (429, Some("RATE_LIMITED".to_string())),
            "node {n} while node 2 holds the slots"
        );
    }

    // kill -9: node 2 never gives its slots back.
    victim.child.kill().unwrap();
    let killed_at = Instant::now();
    let st = victim.child.wait().unwrap();
    assert!(!st.success(), "killed: {st}");
    for t in slow {
        assert!(t.await.unwrap().is_err(), "the killed node answered");
    }

    // Within the TTL (plus a bound for the polling) nodes 1 and 3 serve
    // again, on their own, with node 2 gone.
    let mut served = [false, false];
    loop {
        for (i, c) in [&c1, &c3].into_iter().enumerate() {
            if !served[i] {
                let r = c.call("GET", "/v1/ping", None).await.unwrap();
                assert!(
                    r.status == 200 || r.status == 429,
                    "node {}: {} {:?}",
                    [1, 3][i],
                    r.status,
                    r.body
                );
                served[i] = r.status == 200;
            }
        }
        if served.iter().all(|s| *s) {
            break;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(SLOT_TTL + 3),
            "slots of the killed node not free within their TTL ({SLOT_TTL} s): served {served:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Both freed slots are usable at once: two calls in flight pass. A
    // ping's slot is given back just after its answer (one more round trip
    // to Redis), so a pair sent right after the polling above may still
    // meet one held: the pair is sent again until both pass, within a bound.
    let t = Instant::now();
    loop {
        let (a, b2) = tokio::join!(
            c1.call("GET", "/v1/ping", None),
            c3.call("GET", "/v1/ping", None)
        );
        let pair = (a.unwrap().status, b2.unwrap().status);
        if pair == (200, 200) {
            break;
        }
        assert!(
            matches!(pair.0, 200 | 429) && matches!(pair.1, 200 | 429),
            "{pair:?}"
        );
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "two calls in flight never both passed: last {pair:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(survivor);
}
