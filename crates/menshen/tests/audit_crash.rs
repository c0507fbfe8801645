//! DEP-2 / AUD-3 crash safety, as real processes: A2 calls under load, the
//! gateway killed with SIGKILL mid-run, restarted on the same data; every call
//! that received a response has its record, the log verifies, and the chain
//! continues after the restart.
// Tests may hold a std Mutex (the clippy.toml ban is for the product).
#![allow(clippy::disallowed_types)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_menshen");

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn client(info: &Value, gateway: &str) -> menshen_sdk::Client {
    let app = &info["apps"][1];
    menshen_sdk::Client::builder(gateway)
        .unwrap()
        .ca_pem(&std::fs::read(info["ca_cert"].as_str().unwrap()).unwrap())
        .credentials(
            menshen_sdk::Credentials::key_pair_from_file(
                app["app_id"].as_str().unwrap(),
                Path::new(app["private_key"].as_str().unwrap()),
            )
            .unwrap(),
        )
        .bank_public_key_pem(
            &std::fs::read_to_string(info["bank_signing_public_key"].as_str().unwrap()).unwrap(),
        )
        .unwrap()
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dep_2_sigkill_under_a2_load_loses_no_answered_record_and_chain_continues() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    let demo = Proc(
        Command::new(BIN)
            .args([
                "demo",
                "--dir",
                dir.to_str().unwrap(),
                "--gateway-port",
                "0",
                "--admin-port",
                "0",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("demo.json", || dir.join("demo.json").exists());
    let info: Value =
        serde_json::from_slice(&std::fs::read(dir.join("demo.json")).unwrap()).unwrap();
    let gateway = info["gateway_url"].as_str().unwrap().to_string();
    // An A2 API without customer consent (bank data: a product's rates), so
    // the load needs no customer token; granted to the demo's key-pair app.
    let admin = |args: &[&str]| {
        let o = Command::new(BIN)
            .args(args)
            .env("MENSHEN_ADMIN_URL", info["admin_url"].as_str().unwrap())
            .env(
                "MENSHEN_ADMIN_TOKEN_FILE",
                info["admin_token_file"].as_str().unwrap(),
            )
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    admin(&[
        "api",
        "create",
        "--api-id",
        "rates",
        "--method",
        "GET",
        "--path",
        "/v1/rates/{code}",
        "--upstream",
        info["upstream_url"].as_str().unwrap(),
        "--level",
        "A2",
        "--category",
        "3",
    ]);
    admin(&[
        "grant",
        "add",
        info["apps"][1]["app_id"].as_str().unwrap(),
        "rates",
    ]);
    let a2 = "/v1/rates/WM-180".to_string();

    // Load: 4 workers, each call signed fresh; remember every answered txn_id.
    let answered: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (c, a, s, path) = (
            client(&info, &gateway),
            answered.clone(),
            stop.clone(),
            a2.clone(),
        );
        workers.push(tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                match c.call("GET", &path, None).await {
                    Ok(r) => {
                        assert_eq!(r.status, 200, "{:?}", r.body);
                        a.lock().unwrap().push(r.txn_id().unwrap().to_string());
                    }
                    Err(_) => break, // the gateway died
                }
            }
        }));
    }
    // Kill it mid-run, without warning.
    let answered_before_kill = {
        let a = answered.clone();
        tokio::task::spawn_blocking(move || {
            wait_for("200 answered calls", || a.lock().unwrap().len() >= 200)
        })
        .await
        .unwrap();
        let mut demo = demo;
        assert!(Command::new("kill")
            .args(["-KILL", &demo.0.id().to_string()])
            .status()
            .unwrap()
            .success());
        let _ = demo.0.wait();
        answered.lock().unwrap().len()
    };
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    let answered = answered.lock().unwrap().clone();
    assert!(answered.len() >= answered_before_kill);

    // Every answered call has its record on disk.
    let audit_dir = Path::new(info["audit_dir"].as_str().unwrap());
    let records = menshen_audit::writer::read_all_records(audit_dir).unwrap();
    let txns: std::collections::HashSet<String> = records
        .iter()
        .filter_map(|r| serde_json::from_str::<Value>(r).ok())
        .filter_map(|v| v["txn_id"].as_str().map(str::to_string))
        .collect();
    let missing: Vec<&String> = answered.iter().filter(|t| !txns.contains(*t)).collect();
    assert!(
        missing.is_empty(),
        "{} answered calls have no record, e.g. {:?}",
        missing.len(),
        missing.first()
    );

    // Restart on the same data (now with `serve`), on a known port.
    let cfg_path = Path::new(info["config_file"].as_str().unwrap());
    let port = free_port();
    let cfg = std::fs::read_to_string(cfg_path).unwrap();
    assert!(cfg.contains("listen = [\"127.0.0.1:0\"]"), "{cfg}");
    let cfg = cfg.replace(
        "listen = [\"127.0.0.1:0\"]",
        &format!("listen = [\"127.0.0.1:{port}\"]"),
    );
    assert!(cfg.contains("listen = \"127.0.0.1:0\""), "{cfg}");
    let admin_port = free_port();
    let cfg = cfg.replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{admin_port}\""),
    );
    std::fs::write(cfg_path, cfg).unwrap();
    let log = std::fs::File::create(tmp.path().join("serve.log")).unwrap();
    let mut serve = Proc(
        Command::new(BIN)
            .args(["serve", "--config", cfg_path.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        let exited = serve.0.try_wait().unwrap();
        if exited.is_some() || Instant::now() > deadline {
            panic!(
                "restarted gateway not up ({exited:?}): {}",
                std::fs::read_to_string(tmp.path().join("serve.log")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // The demo's upstream died with it: the call fails upstream, but is answered and recorded.
    let r = client(&info, &format!("https://127.0.0.1:{port}"))
        .call("GET", &a2, None)
        .await
        .unwrap();
    let after_txn = r.txn_id().unwrap().to_string();
    // AUD-2: the database index caught up with the log at start-up. The
    // newest answered calls before the kill were the most likely to be in
    // the log but not yet indexed (the index commits every 100 ms).
    let newest: Vec<&String> = answered.iter().rev().take(100).collect();
    let search = || {
        let o = Command::new(BIN)
            .args([
                "audit", "search", "--kind", "access", "--limit", "1000", "--json",
            ])
            .env(
                "MENSHEN_ADMIN_URL",
                format!("http://127.0.0.1:{admin_port}"),
            )
            .env(
                "MENSHEN_ADMIN_TOKEN_FILE",
                info["admin_token_file"].as_str().unwrap(),
            )
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                // Each row's record is read back from the log files.
                assert_eq!(r["record"]["txn_id"], r["indexed"]["txn_id"], "{r}");
                r["record"]["txn_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect::<std::collections::HashSet<String>>()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = search();
        let missing: Vec<&&String> = newest.iter().filter(|t| !found.contains(**t)).collect();
        if missing.is_empty() && found.contains(&after_txn) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of the newest answered calls are not in the index after the restart, e.g. {:?}",
            missing.len(),
            missing.first()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(Command::new("kill")
        .args(["-TERM", &serve.0.id().to_string()])
        .status()
        .unwrap()
        .success());
    let st = serve.0.wait().unwrap();
    assert!(st.success(), "serve exit {st}");

    // The log verifies offline and the chain continued across the crash.
    let o = Command::new(BIN)
        .args([
            "audit",
            "verify",
            audit_dir.to_str().unwrap(),
            "--public-key",
            info["audit_public_key"].as_str().unwrap(),
        ])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let all = menshen_audit::writer::read_all_records(audit_dir).unwrap();
    assert!(all.len() > records.len());
    assert!(
        all.iter().any(|r| r.contains(&after_txn)),
        "the post-restart call is in the same chain"
    );
}
