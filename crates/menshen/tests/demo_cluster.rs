//! `menshen demo --cluster` as a newcomer runs it (issue 12 item 9): a real
//! process that starts PostgreSQL, Redis and two nodes, writes `demo.json`
//! with every node, serves a signed call on the second node, and on Ctrl-C
//! (SIGINT) stops the nodes and both servers.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_menshen");

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn installed() -> bool {
    let redis = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("redis-server").is_file()));
    if menshen_testsupport::pg_bindir().is_some() && redis {
        return true;
    }
    assert!(
        !menshen_testsupport::services_required(),
        "PostgreSQL or Redis not installed and MENSHEN_REQUIRE_SERVICES=1 (apt-get install postgresql redis-server)"
    );
    println!("skipped: PostgreSQL or Redis not installed");
    false
}

fn port_of(url: &str) -> u16 {
    let hostport = url.rsplit('@').next().unwrap();
    let port = hostport.split(':').nth(1).unwrap();
    port.split('/').next().unwrap().parse().unwrap()
}

fn listening(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

fn alive(pid: u64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

/// DEP-2 (issue 12 item 9): the cluster demo runs end to end and leaves
/// nothing running after Ctrl-C.
#[test]
fn dep_2_demo_cluster_serves_on_every_node_and_stops_everything() {
    if !installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("demo");
    let mut demo = Running(
        Command::new(BIN)
            .args(["demo", "--cluster", "--nodes", "2", "--dir"])
            .arg(&d)
            .args(["--gateway-port", "0", "--admin-port", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let file = d.join("demo.json");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !file.exists() {
        assert!(Instant::now() < deadline, "demo.json did not appear");
        if let Some(st) = demo.0.try_wait().unwrap() {
            panic!("demo exited early: {st}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let info: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let nodes = info["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2, "{info}");
    assert_eq!(nodes[0]["gateway_url"], info["gateway_url"]);
    assert_ne!(nodes[1]["node_id"], nodes[0]["node_id"]);
    let pg = info["postgres_url"].as_str().unwrap();
    let redis = info["redis_url"].as_str().unwrap();
    assert!(pg.starts_with("postgres://") && redis.starts_with("redis://"));
    let (pg_port, redis_port) = (port_of(pg), port_of(redis));
    assert!(listening(pg_port) && listening(redis_port));

    // A signed A1 call on the second node: the data the first node seeded
    // reached it through PostgreSQL.
    let app = &info["apps"][0];
    let out = Command::new(BIN)
        .args([
            "call",
            "--app-id",
            app["app_id"].as_str().unwrap(),
            "--secret-file",
            app["secret_file"].as_str().unwrap(),
            "--ca",
            info["ca_cert"].as_str().unwrap(),
            "GET",
            &format!(
                "{}{}",
                nodes[1]["gateway_url"].as_str().unwrap(),
                info["apis"][0]["example_path"].as_str().unwrap()
            ),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("HTTP 200"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Ctrl-C: the demo, the other node and both servers stop.
    let node2 = nodes[1]["pid"].as_u64().unwrap();
    assert!(alive(node2));
    Command::new("kill")
        .args(["-INT", &demo.0.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while demo.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the demo did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(100));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while alive(node2) || listening(pg_port) || listening(redis_port) {
        assert!(
            Instant::now() < deadline,
            "after Ctrl-C: node 2 alive {}, PostgreSQL listening {}, Redis listening {}",
            alive(node2),
            listening(pg_port),
            listening(redis_port)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
