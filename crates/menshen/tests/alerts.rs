//! Alerts to operators (MON-2, TRF-4, ATK-2) end to end: a real node on
//! 127.0.0.1 whose `[alerts]` deliver to a webhook receiver (and an SMTP
//! listener) in the test, both on loopback. Each rule fires once with its
//! severity, is de-duplicated, and is followed up through the admin API and
//! the CLI; a receiver that never answers does not slow calls.
// The test receivers keep what they got behind a std Mutex, each lock held
// for one push or read, never across an await.
#![allow(clippy::disallowed_types)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use bytes::Bytes;
use common::{Harness, HarnessOptions};
use menshen::node::alerts::{deliver, AlertsConfig};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const SECRET: &str = "webhook-shared-secret-0123456789";

/// What the webhook receiver got: (timestamp, signature, body).
type Got = Arc<Mutex<Vec<(String, String, Bytes)>>>;

async fn receiver() -> (String, Got) {
    let got: Got = Arc::default();
    let g = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |h: HeaderMap, body: Bytes| {
            let g = g.clone();
            async move {
                let v = |n: &str| {
                    h.get(n)
                        .map(|v| v.to_str().unwrap().to_string())
                        .unwrap_or_default()
                };
                g.lock().unwrap().push((
                    v("x-menshen-alert-timestamp"),
                    v("x-menshen-alert-signature"),
                    body,
                ));
                "ok"
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    (url, got)
}

fn alerts_cfg(dir: &std::path::Path, url: &str) -> AlertsConfig {
    let secret = dir.join("hook.secret");
    std::fs::write(&secret, SECRET).unwrap();
    AlertsConfig {
        auth_failures: 3,
        stuffing_app_ids: 4,
        failure_min_calls: 4,
        upstream_failures: 2,
        retry_base_ms: 50,
        timeout_ms: 2000,
        webhook: vec![toml::from_str(&format!(
            "url = \"{url}\"\nsecret_file = \"{}\"",
            secret.display()
        ))
        .unwrap()],
        ..AlertsConfig::default()
    }
}

async fn start(a: AlertsConfig) -> Harness {
    Harness::start_with(HarnessOptions {
        configure: Some(Box::new(move |c| c.alerts = a)),
        ..Default::default()
    })
    .await
}

/// Poll the alerts until `f` holds (deadline 10 s).
async fn alerts_until(h: &Harness, what: &str, f: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, v) = h.admin("GET", "/v1/alerts?state=all", None).await;
        assert_eq!(s, 200, "{v}");
        let list = v.as_array().unwrap().clone();
        if f(&list) {
            return list;
        }
        assert!(Instant::now() < end, "{what}: not within 10 s: {list:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn by_rule<'a>(list: &'a [Value], rule: &str) -> Vec<&'a Value> {
    list.iter().filter(|a| a["rule"] == rule).collect()
}

async fn bad_call(h: &Harness, app: &str) -> u16 {
    let c = h.client(app, "not-the-secret");
    c.call("GET", "/v1/items/1", None).await.unwrap().status
}

#[tokio::test]
async fn atk_2_mon_2_auth_failures_fire_once_deduplicated_signed_webhook_ack_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let (url, got) = receiver().await;
    let h = start(alerts_cfg(dir.path(), &url)).await;
    h.api("items", "GET", "/v1/items/{id}", "A1").await;
    let (app, _) = h.app("Fintech", "server").await;
    for _ in 0..3 {
        assert_eq!(bad_call(&h, &app).await, 401);
    }
    let list = alerts_until(&h, "auth_failures", |l| {
        !by_rule(l, "auth_failures").is_empty()
    })
    .await;
    let a = by_rule(&list, "auth_failures")[0].clone();
    assert_eq!(a["severity"], "warning");
    assert_eq!(a["state"], "open");
    assert_eq!(a["key"], format!("auth_failures:{app}"));
    // Three more: the same alert counts them, no second alert.
    for _ in 0..3 {
        bad_call(&h, &app).await;
    }
    let list = alerts_until(&h, "repeat counted", |l| {
        by_rule(l, "auth_failures")
            .first()
            .is_some_and(|a| a["count"] == 2)
    })
    .await;
    assert_eq!(by_rule(&list, "auth_failures").len(), 1, "de-duplicated");
    // The webhook got it once, signed: the receiver verifies the signature.
    let end = Instant::now() + Duration::from_secs(10);
    while got.lock().unwrap().is_empty() {
        assert!(Instant::now() < end, "webhook not called");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (ts, sig, body) = got.lock().unwrap()[0].clone();
    let ts: i64 = ts.parse().unwrap();
    assert!(deliver::verify(SECRET.as_bytes(), ts, &body, &sig), "{sig}");
    assert!(!deliver::verify(b"another secret", ts, &body, &sig));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["rule"], "auth_failures");
    assert_eq!(v["id"], a["id"]);
    assert_eq!(
        got.lock()
            .unwrap()
            .iter()
            .filter(
                |(_, _, b)| serde_json::from_slice::<Value>(b).unwrap()["rule"] == "auth_failures"
            )
            .count(),
        1
    );
    // Follow-up: acknowledge, resolve; a resolved alert cannot be acknowledged.
    let id = a["id"].as_i64().unwrap();
    let (s, v) = h.admin("POST", &format!("/v1/alerts/{id}/ack"), None).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("acknowledged")), "{v}");
    assert_eq!(v["updated_by"], "test");
    let (s, v) = h
        .admin("POST", &format!("/v1/alerts/{id}/resolve"), None)
        .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("resolved")));
    let (s, _) = h.admin("POST", &format!("/v1/alerts/{id}/ack"), None).await;
    assert_eq!(s, 409);
    // After resolving, a repeat is a new alert.
    for _ in 0..3 {
        bad_call(&h, &app).await;
    }
    alerts_until(&h, "a new alert after resolve", |l| {
        by_rule(l, "auth_failures").len() == 2
    })
    .await;
}

#[tokio::test]
async fn atk_2_credential_stuffing_from_one_ip_is_critical() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _) = receiver().await;
    let h = start(alerts_cfg(dir.path(), &url)).await;
    h.api("items", "GET", "/v1/items/{id}", "A1").await;
    for i in 0..4 {
        bad_call(&h, &format!("guess_{i}")).await;
    }
    let list = alerts_until(&h, "credential_stuffing", |l| {
        !by_rule(l, "credential_stuffing").is_empty()
    })
    .await;
    let a = by_rule(&list, "credential_stuffing")[0];
    assert_eq!(a["severity"], "critical");
    assert_eq!(a["key"], "credential_stuffing:127.0.0.1");
    assert_eq!(a["details"]["app_ids"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn atk_2_trf_4_calls_without_a_grant_and_a_high_failure_rate_alert() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _) = receiver().await;
    let h = start(alerts_cfg(dir.path(), &url)).await;
    h.api("items", "GET", "/v1/items/{id}", "A1").await;
    let (app, secret) = h.app("Fintech", "server").await;
    let c = h.client(&app, &secret);
    for _ in 0..4 {
        let r = c.call("GET", "/v1/items/1", None).await.unwrap();
        assert_eq!(r.status, 403);
    }
    let list = alerts_until(&h, "not_granted and failure_rate", |l| {
        !by_rule(l, "not_granted").is_empty() && !by_rule(l, "failure_rate").is_empty()
    })
    .await;
    let ng = by_rule(&list, "not_granted");
    assert_eq!(ng.len(), 1, "four refusals, one alert");
    assert_eq!(ng[0]["count"], 4);
    assert_eq!(ng[0]["severity"], "warning");
    assert_eq!(ng[0]["key"], format!("not_granted:{app}:items"));
    let fr = by_rule(&list, "failure_rate")[0];
    assert_eq!(fr["details"]["calls"], 4);
    assert_eq!(fr["details"]["failed"], 4);
}

#[tokio::test]
async fn mon_2_upstream_down_is_critical_and_a_dead_receiver_does_not_slow_calls() {
    // A receiver that accepts connections and never answers.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("http://{}/hook", dead.local_addr().unwrap());
    let held = Arc::new(Mutex::new(Vec::new()));
    let h2 = held.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = dead.accept().await {
            h2.lock().unwrap().push(s);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = alerts_cfg(dir.path(), &dead_url);
    cfg.timeout_ms = 30_000;
    let h = start(cfg).await;
    h.admin(
        "POST",
        "/v1/apis",
        Some(json!({"api_id": "down", "method": "GET", "path": "/v1/down", "upstream": "http://127.0.0.1:9",
                    "level": "A1", "category": 3, "subcategory": 1, "integrations": ["server_to_server"]})),
    )
    .await;
    h.api("items", "GET", "/v1/items/{id}", "A1").await;
    let (app, secret) = h.app("Fintech", "server").await;
    h.grant(&app, "down").await;
    h.grant(&app, "items").await;
    let c = h.client(&app, &secret);
    for _ in 0..2 {
        let r = c.call("GET", "/v1/down", None).await.unwrap();
        assert_eq!(r.status, 502);
    }
    let list = alerts_until(&h, "upstream_down", |l| {
        !by_rule(l, "upstream_down").is_empty()
    })
    .await;
    let a = by_rule(&list, "upstream_down")[0];
    assert_eq!(a["severity"], "critical");
    assert_eq!(a["key"], "upstream_down:down");
    // The receiver holds the delivery; calls go on at full speed: 50 calls
    // in far less than one delivery attempt's 30 s timeout.
    let t = Instant::now();
    for _ in 0..50 {
        assert_eq!(
            c.call("GET", "/v1/items/1", None).await.unwrap().status,
            200
        );
    }
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "calls slowed: {:?}",
        t.elapsed()
    );
    assert!(
        !held.lock().unwrap().is_empty(),
        "the delivery is in flight"
    );
}

/// A minimal SMTP server on 127.0.0.1 that keeps the DATA of each message.
async fn smtp() -> (u16, Arc<Mutex<Vec<String>>>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let mails: Arc<Mutex<Vec<String>>> = Arc::default();
    let m = mails.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let m = m.clone();
            tokio::spawn(async move {
                let (r, mut w) = s.into_split();
                let mut r = BufReader::new(r);
                w.write_all(b"220 test ESMTP\r\n").await.unwrap();
                let (mut line, mut data, mut in_data) = (String::new(), String::new(), false);
                loop {
                    line.clear();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if in_data {
                        if line == ".\r\n" {
                            in_data = false;
                            m.lock().unwrap().push(std::mem::take(&mut data));
                            w.write_all(b"250 queued\r\n").await.unwrap();
                        } else {
                            data.push_str(&line);
                        }
                        continue;
                    }
                    let cmd = line.to_ascii_uppercase();
                    let reply: &[u8] = if cmd.starts_with("EHLO") {
                        b"250-test\r\n250 8BITMIME\r\n"
                    } else if cmd.starts_with("DATA") {
                        in_data = true;
                        b"354 go on\r\n"
                    } else if cmd.starts_with("QUIT") {
                        let _ = w.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        b"250 ok\r\n"
                    };
                    w.write_all(reply).await.unwrap();
                }
            });
        }
    });
    (port, mails)
}

#[tokio::test]
async fn mon_2_alert_email_reaches_an_smtp_server() {
    let (port, mails) = smtp().await;
    let dir = tempfile::tempdir().unwrap();
    let (url, _) = receiver().await;
    let mut cfg = alerts_cfg(dir.path(), &url);
    cfg.email = vec![toml::from_str(&format!(
        "smtp_host = \"127.0.0.1\"\nsmtp_port = {port}\nsecurity = \"none\"\nfrom = \"menshen@bank.example\"\nto = [\"soc@bank.example\"]"
    ))
    .unwrap()];
    let h = start(cfg).await;
    h.api("items", "GET", "/v1/items/{id}", "A1").await;
    for i in 0..4 {
        bad_call(&h, &format!("guess_{i}")).await;
    }
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(m) = mails
            .lock()
            .unwrap()
            .iter()
            .find(|m| m.contains("credential_stuffing"))
        {
            assert!(m.contains("critical"), "{m}");
            assert!(m.contains("soc@bank.example"), "{m}");
            break;
        }
        assert!(
            Instant::now() < end,
            "no email: {:?}",
            mails.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// The CLI runs as a child process and blocks its thread: the node needs
// another one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mon_2_cli_lists_acknowledges_and_resolves_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _) = receiver().await;
    let h = start(alerts_cfg(dir.path(), &url)).await;
    h.api("items", "GET", "/v1/items/{id}", "A1").await;
    let (app, _) = h.app("Fintech", "server").await;
    for _ in 0..3 {
        bad_call(&h, &app).await;
    }
    let list = alerts_until(&h, "auth_failures", |l| {
        !by_rule(l, "auth_failures").is_empty()
    })
    .await;
    let id = by_rule(&list, "auth_failures")[0]["id"]
        .as_i64()
        .unwrap()
        .to_string();
    let token = dir.path().join("token");
    std::fs::write(&token, &h.admin_token).unwrap();
    let run = |args: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_menshen"))
            .args(args)
            .args(["--admin-url", &h.admin_url, "--admin-token-file"])
            .arg(&token)
            .env_remove("MENSHEN_ADMIN_TOKEN")
            .output()
            .unwrap();
        let t = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            o.status.success(),
            "{args:?}: {t}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        t
    };
    assert!(run(&["alert", "list"]).contains("auth_failures"));
    assert!(run(&["alert", "ack", &id]).contains("acknowledged"));
    assert!(run(&["alert", "resolve", &id]).contains("resolved"));
    assert!(!run(&["alert", "list"]).contains("auth_failures"));
}
