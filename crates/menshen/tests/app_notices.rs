//! Notices to apps at their notification URL (MON-4, KEY-4, issue 14 item
//! 6): with an injected clock, the app's receiver gets exactly one signed
//! notice per threshold (30, 7, 1 days, expired) of its client certificate,
//! verifies it with the bank's published response-signing key, and gets no
//! duplicate after a restart; through a running node, a failing receiver is
//! retried with back-off while calls go on unslowed, and one that never
//! answers 2xx leaves the notice `failed` and an alert for the operators.
// The test receiver keeps what it got behind a std Mutex, each lock held
// for one push or read, never across an await.
#![allow(clippy::disallowed_types)]

mod common;

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use bytes::Bytes;
use common::{Harness, HarnessOptions};
use menshen::node::alerts::expiry::{ExpiryConfig, Watch};
use menshen::node::alerts::notify::Notifier;
use menshen::node::alerts::{deliver, AlertsConfig};
use menshen_model::notice::NoticeState;
use menshen_model::{AppKind, NewApp};
use menshen_sdk::notice::verify_notice;
use menshen_store::{ControlPlane, SqliteStore, UApiConfig};
use serde_json::{json, Value};

const DAY: i64 = 86_400;

/// What a receiver got: the body, and whether its signature verified.
type Got = Arc<Mutex<Vec<(Value, bool)>>>;

/// A notice receiver at `/hooks/menshen` that verifies each POST with the
/// bank's public key and answers `fail_first` 503s, then 200 (`usize::MAX`:
/// never 200).
async fn receiver(bank_pem: String, fail_first: usize) -> (String, Got, Arc<AtomicUsize>) {
    let got: Got = Arc::default();
    let tries = Arc::new(AtomicUsize::new(0));
    let (g, t) = (got.clone(), tries.clone());
    let pk = Arc::new(menshen_crypto::PublicKey::from_spki_pem(&bank_pem).unwrap());
    let app = axum::Router::new().route(
        "/hooks/menshen",
        axum::routing::post(move |h: HeaderMap, body: Bytes| {
            let (g, t, pk) = (g.clone(), t.clone(), pk.clone());
            async move {
                let headers: Vec<(String, String)> = h
                    .iter()
                    .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap().to_string()))
                    .collect();
                let host = h["host"].to_str().unwrap().to_string();
                let ok = verify_notice(
                    std::slice::from_ref(&*pk),
                    &host,
                    "/hooks/menshen",
                    &headers,
                    &body,
                )
                .is_ok();
                let n = t.fetch_add(1, Ordering::SeqCst);
                if n < fail_first {
                    return (axum::http::StatusCode::SERVICE_UNAVAILABLE, "busy");
                }
                g.lock()
                    .unwrap()
                    .push((serde_json::from_slice(&body).unwrap(), ok));
                (axum::http::StatusCode::OK, "ok")
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/menshen", l.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    (url, got, tries)
}

/// A self-signed certificate PEM valid until `not_after`.
fn cert_pem(name: &str, not_after: time::OffsetDateTime) -> String {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
    p.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    p.not_after = not_after;
    p.self_signed(&key).unwrap().pem()
}

async fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < end, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn quick_retries() -> AlertsConfig {
    let mut cfg = AlertsConfig {
        retry_base_ms: 50,
        retry_max_ms: 200,
        timeout_ms: 2000,
        ..AlertsConfig::default()
    };
    cfg.app_notice.allow_http_loopback = true;
    cfg
}

#[tokio::test]
async fn mon_4_key_4_app_told_30_7_1_days_once_each_signed_and_not_again_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::new(
        Arc::new(SqliteStore::open(&dir.path().join("menshen.db")).unwrap()),
        Arc::new(
            menshen_crypto::MasterKey::from_text(&menshen_crypto::MasterKey::generate()).unwrap(),
        ),
        UApiConfig {
            prefix: "0P".into(),
            institution: "C10305".into(),
        },
    );
    let keys = cp.ensure_bank_keys().await.unwrap();
    let bank_pem = keys
        .iter()
        .find(|k| k.purpose == "response-signing")
        .unwrap()
        .public_pem
        .clone();
    let (url, got, _) = receiver(bank_pem, 0).await;
    let start = time::OffsetDateTime::now_utc();
    let t0 = start.unix_timestamp();
    let app = cp
        .create_app(&NewApp {
            name: "Fintech".into(),
            kind: AppKind::Server,
            contact: None,
            notify_url: Some(url.clone()),
        })
        .await
        .unwrap()
        .app
        .app_id;
    // An app without a URL is told nothing (its operators still are).
    let quiet = cp
        .create_app(&NewApp {
            name: "Quiet".into(),
            kind: AppKind::Server,
            contact: None,
            notify_url: None,
        })
        .await
        .unwrap()
        .app
        .app_id;
    let client = cp
        .add_certificate(
            &app,
            &cert_pem("client.fintech", start + time::Duration::days(40)),
        )
        .await
        .unwrap();
    cp.add_certificate(
        &quiet,
        &cert_pem("client.quiet", start + time::Duration::days(40)),
    )
    .await
    .unwrap();

    let cfg = quick_retries();
    let out = Arc::new(deliver::Outbox::start(&cfg, "node-1".into()).unwrap());
    let notifier = Notifier::new(cp.clone(), &cfg, out.clone()).unwrap();
    let now = Arc::new(AtomicI64::new(t0));
    let n2 = now.clone();
    let mut watch = Watch::new(
        cp.clone(),
        ExpiryConfig::default(),
        vec![],
        Arc::new(move || n2.load(Ordering::SeqCst)),
    )
    .with_notifier(notifier.clone());

    // Walk 45 days, four checks a day; after each day, what has arrived.
    let mut arrived_by_day: Vec<Vec<String>> = Vec::new();
    for step in 0..(45 * 4) {
        now.store(t0 + step * DAY / 4, Ordering::SeqCst);
        watch.check(&out).await;
        if step % 4 == 3 {
            // Every notice created by now is delivered before the next day.
            let created = cp
                .store
                .list_app_notices(Some(&app), None)
                .await
                .unwrap()
                .len();
            wait_for("notices delivered", Duration::from_secs(10), || {
                got.lock().unwrap().len() >= created
            })
            .await;
            arrived_by_day.push(
                got.lock()
                    .unwrap()
                    .iter()
                    .map(|(b, _)| b["threshold"].as_str().unwrap().to_string())
                    .collect(),
            );
        }
    }
    let bodies = got.lock().unwrap().clone();
    let thresholds: Vec<&str> = bodies
        .iter()
        .map(|(b, _)| b["threshold"].as_str().unwrap())
        .collect();
    assert_eq!(thresholds, ["30d", "7d", "1d", "expired"], "{bodies:?}");
    assert!(bodies.iter().all(|(_, ok)| *ok), "every signature verifies");
    // On the right days (the certificate ends on day 40).
    let first = |t: &str| arrived_by_day.iter().position(|d| d.iter().any(|x| x == t));
    assert_eq!(first("30d"), Some(10));
    assert_eq!(first("7d"), Some(33));
    assert_eq!(first("1d"), Some(39));
    assert_eq!(first("expired"), Some(40));
    let b = &bodies[1].0;
    assert_eq!(b["type"], "credential_expiry");
    assert_eq!(b["app_id"], app.as_str());
    assert_eq!(b["credential"]["credential_id"], client.id);
    assert_eq!(b["credential"]["kind"], "certificate");
    assert_eq!(b["credential"]["fingerprint"], json!(client.fingerprint));
    assert_eq!(b["days_left"], 7);
    assert!(b["id"].as_str().unwrap().starts_with("notice-"));
    // Stored delivered, one attempt each; nothing for the quiet app.
    let stored = cp.store.list_app_notices(None, None).await.unwrap();
    assert_eq!(stored.len(), 4);
    assert!(stored
        .iter()
        .all(|n| n.state == NoticeState::Delivered && n.attempts == 1 && n.app_id == app));

    // A restart: a new notifier and watch at the same time find them
    // stored and send nothing again.
    let notifier = Notifier::new(cp.clone(), &cfg, out.clone()).unwrap();
    notifier.resume_pending().await;
    let mut again = Watch::new(
        cp.clone(),
        ExpiryConfig::default(),
        vec![],
        Arc::new(move || now.load(Ordering::SeqCst)),
    )
    .with_notifier(notifier);
    again.check(&out).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(got.lock().unwrap().len(), 4, "no duplicate after a restart");
    assert_eq!(
        cp.store.list_app_notices(None, None).await.unwrap().len(),
        4
    );
}

/// Poll `GET path` until `f` holds (deadline 20 s).
async fn until(h: &Harness, path: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
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

#[tokio::test]
async fn mon_4_failing_receiver_retried_with_backoff_calls_not_slowed_dead_one_alerted() {
    let opts = || HarnessOptions {
        configure: Some(Box::new(|c| {
            let mut cfg = quick_retries();
            cfg.retry_base_ms = 300;
            cfg.retry_max_ms = 600;
            cfg.max_attempts = 4;
            c.alerts = cfg;
        })),
        ..Default::default()
    };
    let h = Harness::start_with(opts()).await;
    let bank_pem = h.bank_key_pem().await;
    // One receiver fails twice then answers; the other never does.
    let (flaky_url, flaky_got, flaky_tries) = receiver(bank_pem.clone(), 2).await;
    let (dead_url, dead_got, dead_tries) = receiver(bank_pem, usize::MAX).await;
    h.api("items", "GET", "/v1/items/{id}", "A1").await;
    let (s, v) = h
        .admin(
            "POST",
            "/v1/apps",
            Some(json!({"name": "Flaky", "kind": "server", "notify_url": flaky_url})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["app"]["notify_url"], flaky_url.as_str());
    let flaky = v["app"]["app_id"].as_str().unwrap().to_string();
    let secret = v["app_secret"].as_str().unwrap().to_string();
    h.grant(&flaky, "items").await;
    let (dead, _) = h.app("Dead", "server").await;
    let (s, v) = h
        .admin(
            "PUT",
            &format!("/v1/apps/{dead}/notify-url"),
            Some(json!({"notify_url": dead_url})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    for app in [&flaky, &dead] {
        let pem = cert_pem(
            "client.example",
            time::OffsetDateTime::now_utc() + time::Duration::days(5),
        );
        let (s, v) = h
            .admin(
                "POST",
                &format!("/v1/apps/{app}/certificates"),
                Some(json!({"certificate_pem": pem})),
            )
            .await;
        assert_eq!(s, 201, "{v}");
    }
    // The watch runs at start-up: a restart finds both certificates 5
    // days from their end (the 7-day notice).
    let h = h.restart_with(opts()).await;
    // Calls go on at once while the receivers fail: none waits for them.
    let c = h.client(&flaky, &secret);
    let started = Instant::now();
    for i in 0..20 {
        let r = c
            .call("GET", &format!("/v1/items/{i}"), None)
            .await
            .unwrap();
        assert_eq!(r.status, 200);
    }
    let calls = started.elapsed();
    // The flaky receiver: two 503s, then delivered, one notice.
    let v = until(
        &h,
        &format!("/v1/apps/{flaky}/notices"),
        "flaky delivered",
        |v| v[0]["state"] == "delivered",
    )
    .await;
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["attempts"], 3, "{v}");
    assert_eq!(v[0]["last_error"], "answered 503", "{v}");
    assert_eq!(flaky_tries.load(Ordering::SeqCst), 3);
    let got = flaky_got.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert!(got[0].1, "the notice's signature verifies");
    assert_eq!(got[0].0["threshold"], "7d");
    // The dead receiver: four attempts, then failed, and an alert.
    let v = until(
        &h,
        &format!("/v1/apps/{dead}/notices?state=failed"),
        "dead failed",
        |v| v.as_array().is_some_and(|l| l.len() == 1),
    )
    .await;
    assert_eq!(v[0]["attempts"], 4, "{v}");
    assert_eq!(dead_tries.load(Ordering::SeqCst), 4);
    assert!(dead_got.lock().unwrap().is_empty());
    let alerts = until(&h, "/v1/alerts?state=open", "app_notice_failed", |v| {
        v.as_array()
            .is_some_and(|l| l.iter().any(|a| a["rule"] == "app_notice_failed"))
    })
    .await;
    let a = alerts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["rule"] == "app_notice_failed")
        .unwrap();
    assert_eq!(a["severity"], "warning");
    assert_eq!(a["details"]["app_id"], dead.as_str());
    assert_eq!(a["details"]["url"], dead_url.as_str());
    // The 20 calls were done well before the back-off's total (~1.8 s for
    // the dead receiver): bounded, not a timing benchmark.
    assert!(calls < Duration::from_secs(10), "{calls:?}");
    // Another restart sends nothing again.
    let h = h.restart_with(opts()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(flaky_tries.load(Ordering::SeqCst), 3);
    assert_eq!(dead_tries.load(Ordering::SeqCst), 4);
    let (_, v) = h.admin("GET", "/v1/notices", None).await;
    assert_eq!(v.as_array().unwrap().len(), 2, "{v}");
}

#[tokio::test]
async fn mon_4_notify_url_validated_http_loopback_only_when_allowed() {
    let h = Harness::start().await;
    // Default policy: https only.
    let (s, v) = h
        .admin(
            "POST",
            "/v1/apps",
            Some(json!({"name": "A", "kind": "server", "notify_url": "http://127.0.0.1:9/n"})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["field"], "notify_url", "{v}");
    for bad in [
        "http://app.example/n",
        "ftp://x/y",
        "https://u:p@app.example/",
    ] {
        let (s, v) = h
            .admin(
                "POST",
                "/v1/apps",
                Some(json!({"name": "A", "kind": "server", "notify_url": bad})),
            )
            .await;
        assert_eq!(
            (s, v["field"].as_str()),
            (400, Some("notify_url")),
            "{bad}: {v}"
        );
    }
    let (app, _) = h.app("A", "server").await;
    let (s, v) = h
        .admin(
            "PUT",
            &format!("/v1/apps/{app}/notify-url"),
            Some(json!({"notify_url": "https://fintech.example/hooks/menshen"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (_, v) = h.admin("GET", &format!("/v1/apps/{app}"), None).await;
    assert_eq!(v["notify_url"], "https://fintech.example/hooks/menshen");
    let (_, list) = h.admin("GET", "/v1/apps", None).await;
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["notify_url"] == "https://fintech.example/hooks/menshen"));
    let (s, v) = h
        .admin(
            "PUT",
            &format!("/v1/apps/{app}/notify-url"),
            Some(json!({"notify_url": null})),
        )
        .await;
    assert_eq!((s, &v["notify_url"]), (200, &Value::Null), "{v}");
    let (s, _) = h
        .admin(
            "PUT",
            "/v1/apps/nope/notify-url",
            Some(json!({"notify_url": null})),
        )
        .await;
    assert_eq!(s, 404);
}

const BIN: &str = env!("CARGO_BIN_EXE_menshen");

/// `menshen ARGS` against the harness's admin API: (success, stdout, stderr).
async fn cli(h: &Harness, args: &[&str]) -> (bool, String, String) {
    let o = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(BIN)
            .args(args)
            .env("MENSHEN_ADMIN_URL", &h.admin_url)
            .env("MENSHEN_ADMIN_TOKEN", &h.admin_token)
            .env_remove("MENSHEN_ADMIN_TOKEN_FILE")
            .env_remove("MENSHEN_ADMIN_CA")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the CLI exits")
    .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The CLI's app parts (MON-4): `app create --notify-url`, `app list` (the
/// URL shown), `app notify-url` (set, `--clear`, a bad URL refused naming
/// the field), `app notices`.
#[tokio::test]
async fn mon_4_cli_sets_shows_and_clears_the_notify_url() {
    let h = Harness::start().await;
    let (ok, out, err) = cli(
        &h,
        &[
            "app",
            "create",
            "--name",
            "Via CLI",
            "--notify-url",
            "https://fintech.example/hooks/menshen",
        ],
    )
    .await;
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["app"]["notify_url"],
        "https://fintech.example/hooks/menshen"
    );
    let app = v["app"]["app_id"].as_str().unwrap().to_string();
    let (ok, out, err) = cli(&h, &["app", "list"]).await;
    assert!(ok, "{err}");
    assert!(
        out.contains("NOTIFY_URL") && out.contains("https://fintech.example/hooks/menshen"),
        "{out}"
    );
    let (ok, out, err) = cli(
        &h,
        &["app", "notify-url", &app, "https://fintech.example/n2"],
    )
    .await;
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["notify_url"], "https://fintech.example/n2");
    let (ok, _, err) = cli(&h, &["app", "notify-url", &app, "http://fintech.example/n"]).await;
    assert!(!ok);
    assert!(err.contains("notify_url"), "{err}");
    let (ok, out, err) = cli(&h, &["app", "notify-url", &app, "--clear"]).await;
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["notify_url"], Value::Null);
    let (ok, out, err) = cli(&h, &["app", "notices", &app, "--json"]).await;
    assert!(ok, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), json!([]));
}
