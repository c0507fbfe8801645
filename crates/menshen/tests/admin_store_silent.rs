//! A PostgreSQL that accepts connections but never answers (DEP-2, ADM-1):
//! every `postgres` process of the store is stopped (SIGSTOP), so its
//! sockets stay open and nothing comes back, as with a hung or partitioned
//! database. The admin API answers its reads and its token look-ups 503
//! `STORE_UNAVAILABLE` within `admin.store_timeout_ms` instead of holding
//! them open, changes nothing, keeps `/metrics` (scrape token) answering,
//! and the gateway keeps serving calls from its snapshot; once the database
//! answers again, so does the admin API.
//!
//! The test starts its own `postgres` on 127.0.0.1 (`menshen-testsupport`);
//! without it it prints "skipped: ..." unless `MENSHEN_REQUIRE_SERVICES=1`,
//! when it fails.

mod common;

use std::time::{Duration, Instant};

use common::{Harness, HarnessOptions};

/// Every process of the PostgreSQL server in `data_dir` stopped (SIGSTOP)
/// while it lives; continued (SIGCONT) when dropped, also on a failed
/// assertion, so the server's own drop can stop it.
struct Frozen(Vec<String>);

impl Frozen {
    fn new(data_dir: &std::path::Path) -> Frozen {
        let pid_file = std::fs::read_to_string(data_dir.join("postmaster.pid")).unwrap();
        let postmaster = pid_file.lines().next().unwrap().trim().to_string();
        let children = std::process::Command::new("pgrep")
            .args(["-P", &postmaster])
            .output()
            .unwrap();
        let mut pids: Vec<String> = String::from_utf8_lossy(&children.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect();
        assert!(!pids.is_empty(), "no postgres backends under {postmaster}");
        pids.push(postmaster);
        signal("-STOP", &pids);
        Frozen(pids)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        signal("-CONT", &self.0);
    }
}

fn signal(sig: &str, pids: &[String]) {
    let s = std::process::Command::new("kill")
        .arg(sig)
        .args(pids)
        .status()
        .unwrap();
    assert!(s.success(), "kill {sig} {pids:?}");
}

/// DEP-2, ADM-1: a silent store does not hold admin requests open.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dep_2_admin_reads_and_token_checks_give_up_on_a_silent_store_and_change_nothing() {
    let Some(pg) = menshen_testsupport::postgres() else {
        return;
    };
    pg.create_database("menshen");
    const SCRAPE: &str = "scrape-token-for-the-silent-store-test";
    let h = Harness::start_with(HarnessOptions {
        store_url: Some(pg.url("menshen")),
        configure: Some(Box::new(|c| {
            c.admin.store_timeout_ms = 1500;
            c.admin.metrics_token_sha256 =
                Some(hex::encode(menshen_crypto::sha256(SCRAPE.as_bytes())));
        })),
        ..Default::default()
    })
    .await;
    h.api("ping", "GET", "/v1/ping", "A1").await;
    let (app_id, secret) = h.app("fintech", "server").await;
    h.grant(&app_id, "ping").await;
    let client = h.client(&app_id, &secret);
    assert_eq!(
        client.call("GET", "/v1/ping", None).await.unwrap().status,
        200
    );
    let (s, _) = h.admin("GET", "/v1/stats/apps", None).await;
    assert_eq!(s, 200);

    let frozen = Frozen::new(&pg.dir().join("data"));
    // Reads: the statistics, an audit search, a listing.
    for path in ["/v1/stats/apps", "/v1/audit?kind=access", "/v1/apps"] {
        let t = Instant::now();
        let (s, v) = h.admin("GET", path, None).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (503, Some("STORE_UNAVAILABLE")),
            "{path}: {v}"
        );
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{path}: {:?}",
            t.elapsed()
        );
        assert!(!v.to_string().contains("postgres"), "nothing internal: {v}");
    }
    // A change: refused at its token look-up, nothing done.
    let t = Instant::now();
    let (s, v) = h
        .admin(
            "POST",
            "/v1/apps",
            Some(serde_json::json!({"name": "during-the-freeze", "kind": "server"})),
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (503, Some("STORE_UNAVAILABLE")),
        "{v}"
    );
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    // The scrape token needs no store; the gateway serves from its snapshot.
    assert_eq!(common::scrape(&h, Some(SCRAPE)).await.0, 200);
    assert_eq!(
        client.call("GET", "/v1/ping", None).await.unwrap().status,
        200
    );

    // The database answers again: so does the admin API, and the refused
    // change was not made.
    drop(frozen);
    let t = Instant::now();
    let apps = loop {
        let (s, v) = h.admin("GET", "/v1/apps", None).await;
        if s == 200 {
            break v;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "admin API not back: {s} {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let names: Vec<&str> = apps
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert!(names.contains(&"fintech"), "{names:?}");
    assert!(!names.contains(&"during-the-freeze"), "{names:?}");
}
