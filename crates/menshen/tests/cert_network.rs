//! A client certificate used from an unusual network (KEY-4, MON-3; issue
//! 14 item 6), end to end over mutual TLS: the app's learned networks (past
//! its learning period) are in the store; a call with its bound certificate
//! from a known network raises nothing; from a new network (a trusted
//! proxy's `X-Forwarded-For`) it raises one `cert_network` alert (warning)
//! naming the App_ID, the certificate's fingerprint and the network. With
//! `[alerts.cert_network] auto_suspend = true` the app is suspended: the
//! next call with that certificate is refused `APP_NOT_ACTIVE`, an admin
//! audit record and a `cert_network_suspended` alert say so; without it,
//! only the alert, and calls go on.

mod common;

use common::cert_network::{setup, until};
use common::{admin_records, Harness};
use menshen_sdk::Client;
use serde_json::Value;

/// The app's SDK client presenting the bound certificate.
fn with_cert(h: &Harness, app: &str, secret: &str) -> Client {
    let pki = h.client_pki.as_ref().unwrap();
    Client::builder(&h.gateway_url)
        .unwrap()
        .ca_pem(&h.ca_pem)
        .credentials(menshen_sdk::Credentials::hmac_sm3(
            app,
            secret.as_bytes().to_vec(),
        ))
        .client_cert_pem(pki.clients[0].0.as_bytes(), pki.clients[0].1.as_bytes())
        .build()
        .unwrap()
}

/// A call from `ip` (as the trusted proxy says): (status, error code).
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn key_4_mon_3_certificate_from_new_network_alerts_once_without_suspension() {
    let (h, app, secret, fp) = setup(false, 1).await;
    let c = with_cert(&h, &app, &secret);
    // A known network: nothing.
    assert_eq!(call_from(&c, "10.1.1.7").await, (200, None));
    // A new one: one alert, the calls go on.
    assert_eq!(call_from(&c, "203.0.113.9").await, (200, None));
    assert_eq!(call_from(&c, "203.0.113.10").await, (200, None));
    let v = until(&h, "/v1/alerts?state=all", "cert_network", |v| {
        !of_rule(v, "cert_network").is_empty()
    })
    .await;
    let a = of_rule(&v, "cert_network");
    assert_eq!(a.len(), 1, "{v}");
    assert_eq!(a[0]["severity"], "warning");
    assert_eq!(a[0]["count"], 1);
    assert_eq!(a[0]["details"]["app_id"], app.as_str());
    assert_eq!(a[0]["details"]["fingerprint"], fp.as_str());
    assert_eq!(a[0]["details"]["network"], "203.0.113.0/24");
    assert_eq!(a[0]["details"]["auto_suspend"], false);
    assert!(of_rule(&v, "cert_network_suspended").is_empty());
    // Without a certificate, a new network is the baseline's alert only.
    let plain = h.client(&app, &secret);
    let mut req = plain.request("GET", "/v1/items/2", None).unwrap();
    req.headers_mut()
        .insert("x-forwarded-for", "198.51.100.4".parse().unwrap());
    plain.sign(&mut req, None).unwrap();
    assert_eq!(plain.send(req).await.unwrap().status, 200);
    until(&h, "/v1/alerts?state=all", "baseline alert", |v| {
        of_rule(v, "baseline_new_network")
            .iter()
            .any(|a| a["details"]["network"] == "198.51.100.0/24")
    })
    .await;
    let (_, v) = h.admin("GET", "/v1/alerts?state=all", None).await;
    assert_eq!(of_rule(&v, "cert_network").len(), 1, "{v}");
    let (_, app_now) = h.admin("GET", &format!("/v1/apps/{app}"), None).await;
    assert_eq!(app_now["status"], "active");
    assert_eq!(call_from(&c, "203.0.113.11").await, (200, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn key_4_mon_3_certificate_from_new_network_suspends_the_app_when_configured() {
    let (h, app, secret, fp) = setup(true, 1).await;
    let c = with_cert(&h, &app, &secret);
    assert_eq!(call_from(&c, "10.1.1.7").await, (200, None));
    assert_eq!(call_from(&c, "203.0.113.9").await, (200, None));
    let v = until(&h, "/v1/alerts?state=all", "suspension", |v| {
        !of_rule(v, "cert_network_suspended").is_empty()
    })
    .await;
    let a = of_rule(&v, "cert_network");
    assert_eq!(a.len(), 1, "{v}");
    assert_eq!(a[0]["severity"], "warning");
    assert_eq!(a[0]["details"]["fingerprint"], fp.as_str());
    assert_eq!(a[0]["details"]["network"], "203.0.113.0/24");
    let s = of_rule(&v, "cert_network_suspended");
    assert_eq!(s[0]["severity"], "critical");
    assert_eq!(s[0]["details"]["app_id"], app.as_str());
    // The next call with the certificate is refused, from any network.
    assert_eq!(
        call_from(&c, "10.1.1.7").await,
        (403, Some("APP_NOT_ACTIVE".into()))
    );
    let (_, app_now) = h.admin("GET", &format!("/v1/apps/{app}"), None).await;
    assert_eq!(app_now["status"], "suspended");
    // The suspension is in the audit log, by the rule.
    let recs = admin_records(&h).await;
    let r = recs
        .iter()
        .find(|r| r["actor"] == "menshen:alerts.cert_network")
        .unwrap_or_else(|| panic!("no audit record of the suspension: {recs:?}"));
    assert!(r["action"]
        .as_str()
        .unwrap()
        .starts_with(&format!("POST /v1/apps/{app}/suspend")));
    assert_eq!(r["before"]["status"], "active");
    assert_eq!(r["after"]["status"], "suspended");
    assert_eq!(r["request"]["fingerprint"], fp.as_str());
    assert_eq!(r["request"]["network"], "203.0.113.0/24");
    // An officer resumes the app: calls pass again.
    let (s, _) = h
        .admin("POST", &format!("/v1/apps/{app}/resume"), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(call_from(&c, "203.0.113.9").await, (200, None));
}
