//! Learned client networks are the cluster's (MON-3, KEY-4; issue 14 items
//! 4 and 6): two real nodes on one real PostgreSQL. A network the app used
//! on node 1 is known on node 2: a call there with the app's bound client
//! certificate from that network raises no `cert_network` (nor
//! `baseline_new_network`) alert and, with `auto_suspend = true`, does not
//! suspend the app; a network no node has seen still does both.
//!
//! Node 2 starts knowing the app's history (past its learning period:
//! 10.1.1.0/24 only); node 1 started before the app existed, so for node 1
//! the app is still being learned and its first network is learned
//! silently. Node 2's periodic refresh is off (`sync_secs` an hour): what
//! saves it is the store's merge of node 1's save and node 2's re-read of
//! the store before raising. (Without the merge, node 1's save would
//! replace the stored set; without the re-read, node 2 would not know.)
//!
//! Starts its own `postgres` and `redis-server` on 127.0.0.1; without them
//! it prints "skipped: ..." unless `MENSHEN_REQUIRE_SERVICES=1`.

mod common;

use std::time::{Duration, Instant};

use common::{Harness, HarnessOptions};
use menshen::node::alerts::baseline::BaselineConfig;
use menshen::node::alerts::AlertsConfig;
use menshen_model::baseline::{AppNetworks, StoredBaseline, NETWORKS};
use menshen_sdk::Client;
use serde_json::{json, Value};

const DAY: i64 = 86_400;

fn alerts_cfg() -> AlertsConfig {
    let mut cfg = AlertsConfig {
        baseline: BaselineConfig {
            learning_days: 7,
            save_secs: 1,
            sync_secs: 3600,
            ..BaselineConfig::default()
        },
        ..AlertsConfig::default()
    };
    cfg.cert_network.auto_suspend = true;
    cfg
}

/// A call to `c` from `ip` (as the trusted proxy says): (status, code).
async fn call_from(c: &Client, ip: &str) -> (u16, Option<String>) {
    let mut req = c.request("GET", "/v1/items/1", None).unwrap();
    req.headers_mut()
        .insert("x-forwarded-for", ip.parse().unwrap());
    c.sign(&mut req, None).unwrap();
    let r = c.send_unverified(req).await.unwrap();
    let code = serde_json::from_slice::<Value>(&r.body)
        .ok()
        .and_then(|v| v["code"].as_str().map(str::to_string));
    (r.status, code)
}

fn of_rule<'a>(v: &'a Value, rule: &str) -> Vec<&'a Value> {
    v.as_array()
        .unwrap()
        .iter()
        .filter(|a| a["rule"] == rule)
        .collect()
}

/// Poll until `f` holds (deadline 20 s).
async fn until<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + Duration::from_secs(20);
    while !f().await {
        assert!(Instant::now() < end, "{what}: not within 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mon_3_key_4_cluster_network_seen_on_node_1_is_known_on_node_2_no_false_suspension() {
    let Some(pg) = menshen_testsupport::postgres() else {
        return;
    };
    let Some(redis) = menshen_testsupport::redis() else {
        return;
    };
    pg.create_database("menshen");
    let master_key = menshen_crypto::MasterKey::generate().as_bytes().to_vec();
    let opts = |i: usize, client_certs: usize| HarnessOptions {
        store_url: Some(pg.url("menshen")),
        hot_state_url: Some(redis.url()),
        node_id: Some(format!("0000000{i}")),
        master_key: Some(master_key.clone()),
        client_certs,
        trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
        configure: Some(Box::new(|c| c.alerts = alerts_cfg())),
        ..Default::default()
    };
    let n1 = Harness::start_with(opts(1, 0)).await;
    n1.api("items", "GET", "/v1/items/{id}", "A1").await;
    let (app, secret) = n1.app("Fintech", "server").await;
    n1.grant(&app, "items").await;
    // The app's history, past its learning period: 10.1.1.0/24.
    let now = menshen_store::now_unix();
    let seeded = AppNetworks {
        first_at: now - 30 * DAY,
        networks: [("10.1.1.0/24".to_string(), now - DAY)].into(),
    };
    n1.node()
        .cp
        .store
        .save_baselines(&[StoredBaseline {
            app_id: app.clone(),
            api_id: NETWORKS.into(),
            model: serde_json::to_value(&seeded).unwrap(),
            updated_at: now,
        }])
        .await
        .unwrap();
    // Node 2 starts now and loads that history.
    let n2 = Harness::start_with(opts(2, 1)).await;

    // Node 1 serves the app from 10.9.9.0/24 and saves what it learned.
    let c1 = n1.client(&app, &secret);
    assert_eq!(call_from(&c1, "10.9.9.9").await, (200, None));
    let store = n1.node().cp.store.clone();
    let app2 = app.clone();
    until("node 1's network in the store", || {
        let (store, app) = (store.clone(), app2.clone());
        async move {
            store
                .load_baseline_networks(None, 0)
                .await
                .unwrap()
                .iter()
                .any(|b| b.app_id == app && b.model["networks"].get("10.9.9.0/24").is_some())
        }
    })
    .await;
    // Merged, not replaced: the history is still there.
    let stored = store.load_baseline_networks(None, 0).await.unwrap();
    let m: AppNetworks = serde_json::from_value(stored[0].model.clone()).unwrap();
    assert!(m.networks.contains_key("10.1.1.0/24"), "{m:?}");
    assert_eq!(m.first_at, now - 30 * DAY);

    // The app's certificate (node 2's client PKI), bound through node 2.
    let pki = n2.client_pki.as_ref().unwrap();
    let (s, v) = n2
        .admin(
            "POST",
            &format!("/v1/apps/{app}/certificates"),
            Some(json!({"certificate_pem": pki.clients[0].0})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let c2 = Client::builder(&n2.gateway_url)
        .unwrap()
        .ca_pem(&n2.ca_pem)
        .credentials(menshen_sdk::Credentials::hmac_sm3(
            &app,
            secret.as_bytes().to_vec(),
        ))
        .client_cert_pem(pki.clients[0].0.as_bytes(), pki.clients[0].1.as_bytes())
        .build()
        .unwrap();
    assert_eq!(call_from(&c2, "10.1.1.7").await, (200, None));

    // Node 1's network on node 2: nothing, the app stays active.
    assert_eq!(call_from(&c2, "10.9.9.20").await, (200, None));
    assert_eq!(call_from(&c2, "10.9.9.21").await, (200, None));
    // A network no node has seen: the alert and the suspension. (Signals
    // are taken in order: once this one is raised, the calls above were
    // judged.)
    assert_eq!(call_from(&c2, "198.51.100.7").await, (200, None));
    let end = Instant::now() + Duration::from_secs(20);
    let alerts = loop {
        let (_, v) = n2.admin("GET", "/v1/alerts?state=all", None).await;
        if !of_rule(&v, "cert_network_suspended").is_empty() {
            break v;
        }
        assert!(
            Instant::now() < end,
            "no cert_network_suspended within 20 s: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let cert = of_rule(&alerts, "cert_network");
    assert_eq!(cert.len(), 1, "{alerts}");
    assert_eq!(cert[0]["details"]["network"], "198.51.100.0/24");
    let new_nets: Vec<_> = of_rule(&alerts, "baseline_new_network")
        .iter()
        .map(|a| a["details"]["network"].clone())
        .collect();
    assert_eq!(new_nets, vec![json!("198.51.100.0/24")], "{alerts}");
    let susp = of_rule(&alerts, "cert_network_suspended");
    assert_eq!(susp.len(), 1);
    assert_eq!(susp[0]["details"]["network"], "198.51.100.0/24");
    // Suspended from then on, on every node.
    until("APP_NOT_ACTIVE on node 2", || {
        let c2 = &c2;
        async move { call_from(c2, "10.1.1.7").await.1.as_deref() == Some("APP_NOT_ACTIVE") }
    })
    .await;
    drop((n1, n2, redis, pg));
}
