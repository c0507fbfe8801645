//! Expiry watch (MON-4, KEY-4) with an injected clock: a client certificate
//! bound to an app and the gateway's server certificate are each told 30, 7
//! and 1 days ahead and when expired, exactly once per threshold, through a
//! signed webhook (HMAC-SM3) on loopback; a rotated-out key is not news.
// The test receiver keeps what it got behind a std Mutex, each lock held
// for one push or read, never across an await.
#![allow(clippy::disallowed_types)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use bytes::Bytes;
use menshen::node::alerts::expiry::{ExpiryConfig, Watch};
use menshen::node::alerts::{deliver, AlertsConfig};
use menshen_model::alert::AlertState;
use menshen_model::{AppKind, NewApp};
use menshen_store::{ControlPlane, SqliteStore, UApiConfig};
use serde_json::Value;

const SECRET: &str = "webhook-shared-secret-0123456789";
const DAY: i64 = 86_400;

type Got = Arc<Mutex<Vec<Value>>>;

/// A webhook receiver that keeps the bodies whose signature verifies.
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
                let ts: i64 = v("x-menshen-alert-timestamp").parse().unwrap();
                assert!(deliver::verify(
                    SECRET.as_bytes(),
                    ts,
                    &body,
                    &v("x-menshen-alert-signature")
                ));
                g.lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap());
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

/// A self-signed certificate PEM valid until `not_after`.
fn cert_pem(name: &str, not_after: time::OffsetDateTime) -> String {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
    p.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    p.not_after = not_after;
    p.self_signed(&key).unwrap().pem()
}

#[tokio::test]
async fn mon_4_key_4_expiry_notices_30_7_1_days_once_each_client_and_server_certificates() {
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
    let start = time::OffsetDateTime::now_utc();
    let t0 = start.unix_timestamp();
    // The app's client certificate ends in 40 days, the server's in 20.
    let app = cp
        .create_app(&NewApp {
            name: "Fintech".into(),
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
    let server = dir.path().join("server.pem");
    std::fs::write(
        &server,
        cert_pem("gateway.bank", start + time::Duration::days(20)),
    )
    .unwrap();

    let secret = dir.path().join("hook.secret");
    std::fs::write(&secret, SECRET).unwrap();
    let (url, got) = receiver().await;
    let cfg = AlertsConfig {
        retry_base_ms: 50,
        timeout_ms: 2000,
        webhook: vec![toml::from_str(&format!(
            "url = \"{url}\"\nsecret_file = \"{}\"",
            secret.display()
        ))
        .unwrap()],
        ..AlertsConfig::default()
    };
    let out = deliver::Outbox::start(&cfg, "node-1".into()).unwrap();

    let now = Arc::new(AtomicI64::new(t0));
    let n2 = now.clone();
    let mut watch = Watch::new(
        cp.clone(),
        ExpiryConfig::default(),
        vec![("gateway server certificate".into(), server.clone())],
        Arc::new(move || n2.load(Ordering::SeqCst)),
    );

    // Walk 45 days, four checks a day; count what each check newly raised.
    let mut raised: HashMap<String, usize> = HashMap::new();
    let mut first_day: HashMap<String, i64> = HashMap::new();
    for step in 0..(45 * 4) {
        now.store(t0 + step * DAY / 4, Ordering::SeqCst);
        for k in watch.check(&out).await {
            *raised.entry(k.clone()).or_default() += 1;
            first_day.entry(k).or_insert(step / 4);
        }
    }
    let c = format!("expiry:credential:{}", client.id);
    let all: Vec<_> = raised.keys().cloned().collect();
    let server_keys: Vec<_> = all
        .iter()
        .filter(|k| k.starts_with("expiry:server_cert:"))
        .collect();
    for t in ["30d", "7d", "1d", "expired"] {
        assert_eq!(raised.get(&format!("{c}:{t}")), Some(&1), "{t}: {raised:?}");
        assert_eq!(
            server_keys
                .iter()
                .filter(|k| k.ends_with(&format!(":{t}")))
                .count(),
            1,
            "server {t}: {raised:?}"
        );
    }
    assert!(raised.values().all(|n| *n == 1));
    assert_eq!(raised.len(), 8, "{raised:?}");
    // On the right days: 40 days out, told at 30, 7, 1 days and at the end.
    assert_eq!(first_day[&format!("{c}:30d")], 10);
    assert_eq!(first_day[&format!("{c}:7d")], 33);
    assert_eq!(first_day[&format!("{c}:1d")], 39);
    assert_eq!(first_day[&format!("{c}:expired")], 40);
    // The server certificate (20 days) is due for its 30-day notice at once.
    let s30 = server_keys.iter().find(|k| k.ends_with(":30d")).unwrap();
    assert_eq!(first_day[*s30], 0);

    // Stored with their severities; a resolved notice is not raised again.
    let stored = cp.store.list_alerts(None).await.unwrap();
    let sev = |k: &str| {
        stored
            .iter()
            .find(|a| a.key == k)
            .map(|a| a.severity.to_string())
            .unwrap()
    };
    assert_eq!(sev(&format!("{c}:30d")), "warning");
    assert_eq!(sev(&format!("{c}:7d")), "warning");
    assert_eq!(sev(&format!("{c}:1d")), "critical");
    assert_eq!(sev(&format!("{c}:expired")), "critical");
    let expired = stored
        .iter()
        .find(|a| a.key == format!("{c}:expired"))
        .unwrap();
    cp.store
        .set_alert_state(expired.id, AlertState::Resolved, "officer")
        .await
        .unwrap();
    assert!(watch.check(&out).await.is_empty());
    // A new watch (a restart) finds them stored: nothing again.
    let mut again = Watch::new(
        cp.clone(),
        ExpiryConfig::default(),
        vec![("gateway server certificate".into(), server)],
        Arc::new(move || now.load(Ordering::SeqCst)),
    );
    assert!(again.check(&out).await.is_empty());

    // Delivered: eight signed webhooks, one per notice.
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let n = got.lock().unwrap().len();
        if n >= 8 {
            break;
        }
        assert!(Instant::now() < end, "webhooks: {n} of 8 within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let bodies = got.lock().unwrap().clone();
    assert_eq!(bodies.len(), 8);
    assert!(bodies.iter().all(|b| b["rule"] == "expiry"));
    let server_body = bodies
        .iter()
        .find(|b| {
            b["key"]
                .as_str()
                .unwrap()
                .starts_with("expiry:server_cert:")
        })
        .unwrap();
    assert_eq!(server_body["details"]["what"], "gateway server certificate");
    assert!(server_body["details"]["about"]["file"]
        .as_str()
        .unwrap()
        .ends_with("server.pem"));
    assert_eq!(
        server_body["details"]["about"]["fingerprint"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
}

#[tokio::test]
async fn key_4_a_rotated_out_public_key_is_not_news() {
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
    let t0 = menshen_store::now_unix();
    let app = cp
        .create_app(&NewApp {
            name: "Fintech".into(),
            kind: AppKind::Server,
            contact: None,
            notify_url: None,
        })
        .await
        .unwrap()
        .app
        .app_id;
    let pem = |_: u8| {
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .unwrap()
            .public_key_pem()
    };
    // An old key ending in 5 days, its successor without an end.
    cp.add_public_key(&app, &pem(1), None, Some(t0 + 5 * DAY))
        .await
        .unwrap();
    let mut w = Watch::new(
        cp.clone(),
        ExpiryConfig::default(),
        vec![],
        Arc::new(move || t0),
    );
    let cfg = AlertsConfig::default();
    let out = deliver::Outbox::start(&cfg, "node-1".into()).unwrap();
    let keys = w.check(&out).await;
    assert_eq!(keys.len(), 1, "the only key, ending: {keys:?}");
    assert!(keys[0].ends_with(":7d"));
    cp.add_public_key(&app, &pem(2), None, None).await.unwrap();
    let items = w.items().await;
    assert!(items.is_empty(), "superseded: {items:?}");
}
