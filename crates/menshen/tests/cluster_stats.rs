//! Cluster-wide statistics (MON-1, issue 14 item 2: "cluster: summed across
//! nodes"): three real nodes on one real PostgreSQL store (and Redis hot
//! state); calls made on each node; `GET /v1/stats/...` through node 1 (and
//! node 3) shows exactly the sum once the others have published
//! (`stats.publish_secs = 1`; polled with a deadline, no timing asserts),
//! with `scope: cluster` and every node's last publication.
//!
//! Each test starts its own `postgres` and `redis-server` on 127.0.0.1
//! (`menshen-testsupport`); without them it prints "skipped: ..." unless
//! `MENSHEN_REQUIRE_SERVICES=1`, when it fails.

mod common;

use std::time::{Duration, Instant};

use common::{Harness, HarnessOptions};
use menshen_sdk::Client;
use serde_json::Value;

async fn signed(c: &Client, path: &str) -> u16 {
    let mut req = c.request("GET", path, None).unwrap();
    c.sign(&mut req, None).unwrap();
    c.send(req).await.unwrap().status
}

/// Poll `GET path` on `node` until `ok` holds, within `limit`.
async fn until(node: &Harness, path: &str, limit: Duration, ok: impl Fn(&Value) -> bool) -> Value {
    let t = Instant::now();
    loop {
        let (s, v) = node.admin("GET", path, None).await;
        assert_eq!(s, 200, "{v}");
        if ok(&v) {
            return v;
        }
        assert!(
            t.elapsed() < limit,
            "{path}: not as expected within {limit:?}: {v:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// MON-1 (cluster): 3 + 5 + 7 successful calls and 2 refused ones on three
/// nodes; node 1's and node 3's statistics of the app and the API show 17
/// calls, 15 successes, 2 refusals over the minute, hour and day, with
/// p50/p99 from the summed histograms; the list endpoints likewise.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mon_1_cluster_stats_are_summed_across_nodes() {
    let Some(pg) = menshen_testsupport::postgres() else {
        return;
    };
    let Some(redis) = menshen_testsupport::redis() else {
        return;
    };
    pg.create_database("menshen");
    let master_key = menshen_crypto::MasterKey::generate().as_bytes().to_vec();
    let mut nodes = Vec::new();
    for i in 0..3 {
        nodes.push(
            Harness::start_with(HarnessOptions {
                store_url: Some(pg.url("menshen")),
                hot_state_url: Some(redis.url()),
                node_id: Some(format!("5a000{:03}", i + 1)),
                master_key: Some(master_key.clone()),
                configure: Some(Box::new(|c: &mut menshen::config::Config| {
                    c.stats.publish_secs = 1;
                })),
                ..Default::default()
            })
            .await,
        );
    }
    let first = &nodes[0];
    // The calls counted go to their own app and API; "ping" is for
    // waiting until every node has the catalog.
    first.api("ping", "GET", "/v1/ping", "A1").await;
    first.api("counted", "GET", "/v1/counted", "A1").await;
    let (probe, probe_secret) = first.app("probe", "server").await;
    first.grant(&probe, "ping").await;
    let (app, secret) = first.app("counted-app", "server").await;
    first.grant(&app, "counted").await;
    let t = Instant::now();
    for n in &nodes {
        let c = n.client(&probe, &probe_secret);
        while signed(&c, "/v1/ping").await != 200 {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "catalog not on every node"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    let clients: Vec<Client> = nodes.iter().map(|n| n.client(&app, &secret)).collect();
    for (i, n) in [3, 5, 7].into_iter().enumerate() {
        for _ in 0..n {
            assert_eq!(signed(&clients[i], "/v1/counted").await, 200);
        }
    }
    // Signed with a wrong secret: refused (401), counted under the app.
    let wrong = nodes[1].client(&app, "not-the-secret");
    for _ in 0..2 {
        assert_eq!(signed(&wrong, "/v1/counted").await, 401);
    }

    let exact = |f: &Value| {
        f["calls"] == 17 && f["success"] == 15 && f["refused"] == 2 && f["auth_failures"] == 2
    };
    let all_windows = |v: &Value| ["minute", "hour", "day"].iter().all(|w| exact(&v[w]));
    let limit = Duration::from_secs(15);
    for via in [0, 2] {
        let node = &nodes[via];
        let v = until(node, &format!("/v1/stats/apps/{app}"), limit, all_windows).await;
        assert_eq!(v["scope"], "cluster", "{v}");
        assert_eq!(v["id"], app.as_str());
        let ids: Vec<&str> = v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["node_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["5a000001", "5a000002", "5a000003"], "{v}");
        for n in v["nodes"].as_array().unwrap() {
            assert!(n["published_at"].as_u64().unwrap() >= n["started_at"].as_u64().unwrap());
        }
        let m = &v["minute"];
        assert!((m["success_rate"].as_f64().unwrap() - 15.0 / 17.0).abs() < 1e-9);
        let (p50, p99) = (m["p50_ms"].as_f64().unwrap(), m["p99_ms"].as_f64().unwrap());
        assert!(p50 > 0.0 && p99 >= p50, "{m}");
        assert!(m["tps"].as_f64().unwrap() > 0.0);

        let v = until(node, "/v1/stats/apis/counted", limit, all_windows).await;
        assert_eq!(v["scope"], "cluster");

        let v = until(node, "/v1/stats/apps", limit, |v| {
            v["apps"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["id"] == app.as_str() && all_windows(a))
        })
        .await;
        assert_eq!(v["scope"], "cluster");
        assert_eq!(v["nodes"].as_array().unwrap().len(), 3);
        until(node, "/v1/stats/apis", limit, |v| {
            v["apis"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["id"] == "counted" && all_windows(a))
        })
        .await;
    }

    // One node's own view stays its own (the local counters are unchanged):
    // node 2 made 5 + 2 of them, and still sums to 17.
    let v = until(
        &nodes[1],
        &format!("/v1/stats/apps/{app}"),
        limit,
        all_windows,
    )
    .await;
    assert_eq!(v["scope"], "cluster");

    // A stopped node's calls stay in the sums (published at shutdown).
    let mut n3 = nodes.pop().unwrap();
    assert_eq!(signed(&clients[2], "/v1/counted").await, 200);
    n3.stop().await;
    until(&nodes[0], "/v1/stats/apis/counted", limit, |v| {
        v["day"]["calls"] == 18
    })
    .await;
}
