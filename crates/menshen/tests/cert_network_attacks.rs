//! KEY-4, MON-3 from an attacker's side: the certificate-network rule
//! (`[alerts.cert_network] auto_suspend = true`) must not let someone who
//! does not hold an app's client certificate get that app suspended. From
//! a network new to the app, calls with the app's App_ID and a wrong
//! secret (with no certificate, or with another certificate of the same
//! client CA), and calls with the right secret but without the app's
//! certificate, raise no `cert_network` alert and suspend nothing; the
//! app's own verified call over its certificate from another new network
//! then does (the signals are handled in order, so the earlier ones were
//! looked at first).

mod common;

use common::cert_network::{setup, until};
use common::Harness;
use menshen_sdk::Client;
use serde_json::Value;

/// An SDK client for App_ID `app` with `secret`, presenting client
/// certificate number `cert` of the harness (0 is the one bound to the
/// app; 1 is another, issued by the same client CA), or none.
fn client(h: &Harness, app: &str, secret: &str, cert: Option<usize>) -> Client {
    let pki = h.client_pki.as_ref().unwrap();
    let b = Client::builder(&h.gateway_url)
        .unwrap()
        .ca_pem(&h.ca_pem)
        .credentials(menshen_sdk::Credentials::hmac_sm3(
            app,
            secret.as_bytes().to_vec(),
        ));
    let b = match cert {
        Some(i) => b.client_cert_pem(pki.clients[i].0.as_bytes(), pki.clients[i].1.as_bytes()),
        None => b,
    };
    b.build().unwrap()
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

/// KEY-4: only a verified call over the app's own certificate counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn key_4_only_the_certificate_holder_can_trigger_the_suspension() {
    let (h, app, secret, fp) = setup(true, 2).await;
    let holder = client(&h, &app, &secret, Some(0));
    assert_eq!(call_from(&holder, "10.1.1.7").await.0, 200);
    // Without the certificate: a wrong secret, with no certificate or
    // with another one of the same client CA; the right secret (stolen)
    // without the certificate.
    for (secret, cert) in [
        ("wrong-secret", None),
        ("wrong-secret", Some(1)),
        (secret.as_str(), Some(1)),
        (secret.as_str(), None),
    ] {
        let c = client(&h, &app, secret, cert);
        for ip in ["203.0.113.50", "203.0.113.51"] {
            let (s, code) = call_from(&c, ip).await;
            assert_ne!(
                (s, code.as_deref()),
                (403, Some("APP_NOT_ACTIVE")),
                "suspended by a call without the certificate ({secret:?}, {cert:?})"
            );
        }
    }
    // The holder, from another new network: now the rule acts.
    assert_eq!(call_from(&holder, "198.51.100.9").await.0, 200);
    let v = until(&h, "/v1/alerts?state=all", "suspension", |v| {
        !of_rule(v, "cert_network_suspended").is_empty()
    })
    .await;
    let a = of_rule(&v, "cert_network");
    assert_eq!(a.len(), 1, "only the holder's call counts: {v}");
    assert_eq!(a[0]["details"]["network"], "198.51.100.0/24");
    assert_eq!(a[0]["details"]["fingerprint"], fp.as_str());
    let s = of_rule(&v, "cert_network_suspended");
    assert_eq!(s.len(), 1, "{v}");
    assert_eq!(s[0]["details"]["network"], "198.51.100.0/24");
}
