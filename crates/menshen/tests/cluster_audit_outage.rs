//! The audit index through a PostgreSQL outage (issue 12 item 7; AUD-1,
//! AUD-6, DEP-2): a cluster node keeps serving while PostgreSQL is stopped
//! (its records go to its log files; the index writes fail), and once
//! PostgreSQL is back the node indexes the records it missed by itself,
//! with no restart and no new call: an audit search through its admin API
//! then finds every call made during the outage, each exactly once, beside
//! the calls made before and after. The node registry (node id -> admin
//! API URL) lost with a wiped or restored database is filled again by the
//! node itself. The embedded store recovers the same way from a failed
//! SQLite index write.
//!
//! The cluster test starts its own `postgres` and `redis-server` on 127.0.0.1
//! (`menshen-testsupport`); without them it prints "skipped: ..." unless
//! `MENSHEN_REQUIRE_SERVICES=1`, when it fails.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Harness, HarnessOptions};
use menshen_sdk::Client;
use serde_json::Value;

/// One call through the gateway: its transaction serial number (200 expected).
async fn call(client: &Client) -> String {
    let r = client.call("GET", "/v1/ping", None).await.unwrap();
    assert_eq!(r.status, 200, "call refused");
    r.txn_id().unwrap().to_string()
}

/// The app's access records the admin API's search finds, by txn_id (how
/// many rows each), or `None` while the search fails (PostgreSQL coming
/// back); each row's record must be the call's.
async fn indexed(h: &Harness, app_id: &str) -> Option<BTreeMap<String, usize>> {
    let (s, v) = h
        .admin(
            "GET",
            &format!("/v1/audit?app_id={app_id}&kind=access&limit=1000"),
            None,
        )
        .await;
    if s != 200 {
        return None;
    }
    let mut found = BTreeMap::new();
    for row in v.as_array().unwrap() {
        let txn = row["indexed"]["txn_id"].as_str().unwrap().to_string();
        assert_eq!(row["record"]["txn_id"], Value::from(txn.as_str()), "{row}");
        *found.entry(txn).or_insert(0) += 1;
    }
    Some(found)
}

/// The scrape token of the tests' `/metrics` (`admin.metrics_token_sha256`):
/// checked against the configuration, so a scrape needs no store (the
/// admin token is looked up in the store, down in the outage test).
const SCRAPE_TOKEN: &str = "scrape-token-for-the-outage-tests";

fn with_scrape_token(c: &mut menshen::config::Config) {
    c.admin.metrics_token_sha256 =
        Some(hex::encode(menshen_crypto::sha256(SCRAPE_TOKEN.as_bytes())));
}

/// One gauge of the node's `/metrics` (MON-1), read with the scrape token.
async fn gauge(h: &Harness, name: &str) -> f64 {
    let (status, text) = common::scrape(h, Some(SCRAPE_TOKEN)).await;
    assert_eq!(status, 200);
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics:\n{text}"))
}

/// Poll `/metrics` until the audit index lag satisfies `ok`, within 30 s
/// (AUD-6, MON-1: `menshen_audit_index_lag_records`).
async fn until_index_lag(h: &Harness, ok: impl Fn(f64) -> bool, what: &str) -> f64 {
    let t = Instant::now();
    loop {
        let lag = gauge(h, "menshen_audit_index_lag_records").await;
        if ok(lag) {
            return lag;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "{what}: index lag {lag}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Poll the search until every one of `want` is found, within `limit`;
/// returns what was found then.
async fn until_indexed(
    h: &Harness,
    app_id: &str,
    want: &[String],
    limit: Duration,
    what: &str,
) -> BTreeMap<String, usize> {
    let t = Instant::now();
    loop {
        if let Some(found) = indexed(h, app_id).await {
            if want.iter().all(|t| found.contains_key(t)) {
                return found;
            }
            assert!(
                t.elapsed() < limit,
                "{what}: not all indexed within {limit:?} ({} of {} found)",
                want.iter().filter(|t| found.contains_key(*t)).count(),
                want.len()
            );
        } else {
            assert!(
                t.elapsed() < limit,
                "{what}: search still failing after {limit:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// AUD-1, AUD-6, DEP-2 (issue 12 item 7).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn aud_6_dep_2_calls_during_a_postgres_outage_are_indexed_once_it_returns_without_a_restart()
{
    let Some(mut pg) = menshen_testsupport::postgres() else {
        return;
    };
    let Some(redis) = menshen_testsupport::redis() else {
        return;
    };
    pg.create_database("menshen");
    let h = Harness::start_with(HarnessOptions {
        store_url: Some(pg.url("menshen")),
        hot_state_url: Some(redis.url()),
        node_id: Some("00000001".into()),
        // The period of the node's statistics and registry refresh.
        configure: Some(Box::new(|c| {
            c.stats.publish_secs = 1;
            with_scrape_token(c);
        })),
        ..Default::default()
    })
    .await;
    h.api("ping", "GET", "/v1/ping", "A1").await;
    let (app_id, secret) = h.app("fintech", "server").await;
    h.grant(&app_id, "ping").await;
    let client = h.client(&app_id, &secret);

    let mut before = Vec::new();
    for _ in 0..5 {
        before.push(call(&client).await);
    }
    until_indexed(&h, &app_id, &before, Duration::from_secs(10), "before").await;

    // PostgreSQL down: the node serves from its snapshot; its records are
    // durable in its log files, their index writes fail.
    pg.stop();
    let mut during = Vec::new();
    for _ in 0..20 {
        during.push(call(&client).await);
    }
    // Every record of the outage is in the files and handed to the index.
    h.node().audit.flush().await.unwrap();
    assert_eq!(
        h.records()
            .await
            .iter()
            .filter(|r| during.contains(&r.txn_id))
            .count(),
        during.len()
    );
    // The outage lasts beyond the index's linger and connect attempts.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (s, _) = h
        .admin("GET", &format!("/v1/audit?app_id={app_id}"), None)
        .await;
    assert_eq!(s, 503, "searching needs PostgreSQL");
    // What searches miss is visible on the node's /metrics meanwhile.
    until_index_lag(&h, |l| l >= during.len() as f64, "during the outage").await;

    // PostgreSQL back, no restart and no new call: the node indexes what it
    // missed from its files by itself.
    pg.restart();
    let found = until_indexed(
        &h,
        &app_id,
        &during,
        Duration::from_secs(30),
        "the calls made during the outage",
    )
    .await;
    for t in before.iter().chain(&during) {
        assert_eq!(found.get(t), Some(&1), "{t} indexed once");
    }
    until_index_lag(&h, |l| l == 0.0, "after the outage").await;

    // And the node indexes live again.
    let mut after = Vec::new();
    for _ in 0..5 {
        after.push(call(&client).await);
    }
    let all: Vec<String> = before
        .iter()
        .chain(&during)
        .chain(&after)
        .cloned()
        .collect();
    let found = until_indexed(&h, &app_id, &all, Duration::from_secs(10), "after").await;
    assert_eq!(found.len(), all.len(), "{found:?}");
    assert!(
        found.values().all(|n| *n == 1),
        "each exactly once: {found:?}"
    );
}

/// AUD-1, AUD-6, DEP-2 on the embedded store: an index write that fails
/// (here SQLite's write lock held past its 5 s busy timeout by another
/// process, as a full disk would fail it) is repaired from the log files
/// by itself once SQLite accepts writes again, with no restart and no new
/// call. Needs the `sqlite3` command (skipped without it).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn aud_6_dep_2_calls_whose_sqlite_index_write_failed_are_indexed_once_it_works_again() {
    use std::io::{BufRead, Write};
    if std::process::Command::new("sqlite3")
        .arg("-version")
        .output()
        .is_err()
    {
        assert!(
            !menshen_testsupport::services_required(),
            "sqlite3 not found"
        );
        println!("skipped: sqlite3 not found");
        return;
    }
    let h = Harness::start_with(HarnessOptions {
        configure: Some(Box::new(with_scrape_token)),
        ..Default::default()
    })
    .await;
    h.api("ping", "GET", "/v1/ping", "A1").await;
    let (app_id, secret) = h.app("fintech", "server").await;
    h.grant(&app_id, "ping").await;
    let client = h.client(&app_id, &secret);
    let mut before = Vec::new();
    for _ in 0..3 {
        before.push(call(&client).await);
    }
    until_indexed(&h, &app_id, &before, Duration::from_secs(10), "before").await;

    // Another process takes SQLite's write lock (confirmed by its answer).
    let mut lock = std::process::Command::new("sqlite3")
        .arg(h.data_dir().join("menshen.db"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut to_lock = lock.stdin.take().unwrap();
    writeln!(to_lock, ".timeout 5000").unwrap();
    writeln!(to_lock, "BEGIN IMMEDIATE; SELECT 'locked';").unwrap();
    to_lock.flush().unwrap();
    let mut out = std::io::BufReader::new(lock.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "locked");

    let mut during = Vec::new();
    for _ in 0..10 {
        during.push(call(&client).await);
    }
    h.node().audit.flush().await.unwrap();
    // What searches miss, and for how long, is on /metrics meanwhile.
    until_index_lag(&h, |l| l >= during.len() as f64, "while locked").await;
    // Held beyond the index's linger and busy timeout: the write fails.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(gauge(&h, "menshen_audit_index_behind_seconds").await >= 5.0);
    writeln!(to_lock, "COMMIT;").unwrap();
    drop(to_lock);
    assert!(lock.wait().unwrap().success());

    let found = until_indexed(
        &h,
        &app_id,
        &during,
        Duration::from_secs(30),
        "the calls whose index write failed",
    )
    .await;
    for t in before.iter().chain(&during) {
        assert_eq!(found.get(t), Some(&1), "{t} indexed once");
    }
    until_index_lag(&h, |l| l == 0.0, "after the lock").await;
    assert_eq!(gauge(&h, "menshen_audit_index_behind_seconds").await, 0.0);
    let mut after = Vec::new();
    for _ in 0..3 {
        after.push(call(&client).await);
    }
    let all: Vec<String> = before
        .iter()
        .chain(&during)
        .chain(&after)
        .cloned()
        .collect();
    let found = until_indexed(&h, &app_id, &all, Duration::from_secs(10), "after").await;
    assert_eq!(found.len(), all.len(), "{found:?}");
    assert!(
        found.values().all(|n| *n == 1),
        "each exactly once: {found:?}"
    );
}
