//! Setup shared by the certificate-network tests (`cert_network.rs`,
//! `cert_network_attacks.rs`; KEY-4, MON-3).

use std::time::{Duration, Instant};

use menshen::node::alerts::baseline::BaselineConfig;
use menshen::node::alerts::AlertsConfig;
use menshen_model::baseline::{AppNetworks, StoredBaseline, NETWORKS};
use serde_json::{json, Value};

use super::{Harness, HarnessOptions};

const DAY: i64 = 86_400;

/// Poll `GET path` until `f` holds (deadline 20 s).
pub async fn until(h: &Harness, path: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, v) = h.admin("GET", path, None).await;
        if f(&v) {
            return v;
        }
        assert!(Instant::now() < end, "{what}: not within 20 s: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An app with the harness's first client certificate bound (the harness
/// makes `client_certs` of them), granted `items`,
/// whose learned networks (30 days of history) hold 10.1.1.0/24; the node
/// restarted so it loads them. (harness, app, secret, fingerprint)
pub async fn setup(auto_suspend: bool, client_certs: usize) -> (Harness, String, String, String) {
    let mut cfg = AlertsConfig {
        baseline: BaselineConfig {
            learning_days: 7,
            ..BaselineConfig::default()
        },
        ..AlertsConfig::default()
    };
    cfg.cert_network.auto_suspend = auto_suspend;
    let opts = |cfg: AlertsConfig| HarnessOptions {
        client_certs,
        trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
        configure: Some(Box::new(move |c| c.alerts = cfg)),
        ..Default::default()
    };
    let h = Harness::start_with(opts(cfg.clone())).await;
    h.api("items", "GET", "/v1/items/{id}", "A1").await;
    let (app, secret) = h.app("Fintech", "server").await;
    h.grant(&app, "items").await;
    let now = menshen_store::now_unix();
    let nets = AppNetworks {
        first_at: now - 30 * DAY,
        networks: [("10.1.1.0/24".to_string(), now - DAY)].into(),
    };
    h.node()
        .cp
        .store
        .save_baselines(&[StoredBaseline {
            app_id: app.clone(),
            api_id: NETWORKS.into(),
            model: serde_json::to_value(&nets).unwrap(),
            updated_at: now,
        }])
        .await
        .unwrap();
    let h = h.restart_with(opts(cfg)).await;
    // Bound after the restart: the harness makes new client certificates
    // at each start.
    let pem = h.client_pki.as_ref().unwrap().clients[0].0.clone();
    let (s, v) = h
        .admin(
            "POST",
            &format!("/v1/apps/{app}/certificates"),
            Some(json!({"certificate_pem": pem})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let fp = v["fingerprint"].as_str().unwrap().to_string();
    (h, app, secret, fp)
}
