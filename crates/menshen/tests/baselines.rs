//! MON-3 from outside: learned baselines raise through the alert path,
//! are saved to the store and survive a restart, and are inspectable at
//! `GET /v1/baselines/{app_id}`. (The learning itself, with an injected
//! clock over 14 synthetic days, is the unit test
//! `node::alerts::baseline::tests::mon_3_baseline_learns_cycles_and_flags_spike_new_network_off_hours_funds`.)

mod common;

use std::time::{Duration, Instant};

use common::{Harness, HarnessOptions};
use menshen::node::alerts::baseline::BaselineConfig;
use menshen::node::alerts::AlertsConfig;
use serde_json::Value;

/// Poll `GET path` until `f` holds (deadline 20 s: the saver runs every 5 s).
async fn until(h: &Harness, path: &str, what: &str, f: impl Fn(u16, &Value) -> bool) -> Value {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let (s, v) = h.admin("GET", path, None).await;
        if f(s, &v) {
            return v;
        }
        assert!(Instant::now() < end, "{what}: not within 20 s: {s} {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn mon_3_new_network_alert_model_saved_inspectable_and_kept_across_restart() {
    let cfg = AlertsConfig {
        baseline: BaselineConfig {
            // No learning period: the app's first network is already new.
            learning_days: 0,
            save_secs: 1,
            ..BaselineConfig::default()
        },
        ..AlertsConfig::default()
    };
    let h = Harness::start_with(HarnessOptions {
        configure: Some(Box::new(move |c| c.alerts = cfg)),
        ..Default::default()
    })
    .await;
    h.api("items", "GET", "/v1/items/{id}", "A1").await;
    let (app, secret) = h.app("Fintech", "server").await;
    h.grant(&app, "items").await;
    let (s, _) = h.admin("GET", &format!("/v1/baselines/{app}"), None).await;
    assert_eq!(s, 404, "nothing learned yet");
    let c = h.client(&app, &secret);
    assert_eq!(
        c.call("GET", "/v1/items/1", None).await.unwrap().status,
        200
    );
    // Through the existing alert path, severity warning.
    let list = until(
        &h,
        "/v1/alerts?state=all",
        "baseline_new_network",
        |_, v| {
            v.as_array()
                .is_some_and(|l| l.iter().any(|a| a["rule"] == "baseline_new_network"))
        },
    )
    .await;
    let a = list
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["rule"] == "baseline_new_network")
        .unwrap()
        .clone();
    assert_eq!(a["severity"], "warning");
    assert_eq!(a["key"], format!("baseline_new_network:{app}:127.0.0.0/24"));
    // Saved (every save_secs) and inspectable.
    let path = format!("/v1/baselines/{app}");
    let has_net = |s: u16, v: &Value| {
        s == 200
            && v["networks"]["networks"]
                .as_array()
                .is_some_and(|n| n.iter().any(|x| x["network"] == "127.0.0.0/24"))
    };
    until(&h, &path, "saved", has_net).await;
    // Still there after a restart.
    let h = h.restart().await;
    let v = until(&h, &path, "kept", has_net).await;
    assert_eq!(v["app_id"], app.as_str());
}
