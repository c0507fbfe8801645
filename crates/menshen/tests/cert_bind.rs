//! Certificates bound once (AUTH-1, KEY-4), end to end: many concurrent
//! admin API binds of one client certificate to different apps leave one
//! binding; the others are answered 409 with the admin error body, and the
//! gateway admits the winning app with that certificate and refuses the
//! others with it.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::{Harness, HarnessOptions};
use menshen_sdk::Client;
use serde_json::{json, Value};

/// Apps racing for the certificate in each round.
const APPS: usize = 20;
/// Rounds; between rounds the winner's binding is revoked, so the
/// certificate is free to bind again.
const ROUNDS: usize = 3;

/// POST `body` to the admin API at `path` on a fresh task; (status, JSON).
async fn post(
    http: menshen_sdk::HttpClient,
    url: String,
    token: String,
    body: Value,
    start: Arc<tokio::sync::Barrier>,
) -> (u16, Value) {
    let req = http::Request::builder()
        .method("POST")
        .uri(url)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Bytes::from(body.to_string()))
        .unwrap();
    start.wait().await;
    let r = menshen_sdk::send(&http, req).await.unwrap();
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

/// An SDK client for `app` with its App_Secret, presenting the client
/// certificate over mutual TLS.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn auth_1_key_4_concurrent_admin_binds_of_one_certificate_leave_one_binding() {
    let h = Harness::start_with(HarnessOptions {
        client_certs: 1,
        ..Default::default()
    })
    .await;
    h.api("items", "GET", "/v1/items/{id}", "A1").await;
    let mut apps = Vec::new();
    for i in 0..APPS {
        let (app, secret) = h.app(&format!("cert app {i}"), "server").await;
        h.grant(&app, "items").await;
        apps.push((app, secret));
    }
    let cert_pem = h.client_pki.as_ref().unwrap().clients[0].0.clone();
    for round in 0..ROUNDS {
        let start = Arc::new(tokio::sync::Barrier::new(APPS));
        let tasks: Vec<_> = apps
            .iter()
            .map(|(app, _)| {
                tokio::spawn(post(
                    h.admin_http.clone(),
                    format!("{}/v1/apps/{app}/certificates", h.admin_url),
                    h.admin_token.clone(),
                    json!({ "certificate_pem": cert_pem }),
                    start.clone(),
                ))
            })
            .collect();
        let mut won = Vec::new();
        for (i, t) in tasks.into_iter().enumerate() {
            let (status, body) = t.await.unwrap();
            match status {
                201 => won.push((i, body)),
                409 => {
                    assert_eq!(body["code"], "CONFLICT", "round {round}: {body}");
                    assert_eq!(body["field"], "certificate_pem", "round {round}: {body}");
                    assert!(
                        body["message"]
                            .as_str()
                            .is_some_and(|m| m.contains("already bound")),
                        "round {round}: {body}"
                    );
                }
                other => panic!("round {round}: bind answered {other}: {body}"),
            }
        }
        assert_eq!(won.len(), 1, "round {round}: {} binds succeeded", won.len());
        let (w, cred) = &won[0];
        let (winner, winner_secret) = &apps[*w];
        // The store holds one live binding, the winner's.
        let mut holders = Vec::new();
        for (app, _) in &apps {
            let (s, creds) = h
                .admin("GET", &format!("/v1/apps/{app}/credentials"), None)
                .await;
            assert_eq!(s, 200, "{creds}");
            let live = creds
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["kind"] == "certificate" && c["revoked"] == false)
                .count();
            holders.extend(std::iter::repeat_n(app.clone(), live));
        }
        assert_eq!(holders, std::slice::from_ref(winner), "round {round}");
        // The gateway admits the winner with the certificate...
        let r = with_cert(&h, winner, winner_secret)
            .call("GET", "/v1/items/1", None)
            .await
            .unwrap();
        assert_eq!(r.status, 200, "round {round}: {:?}", r.body);
        // ...and refuses any other app presenting it.
        let (loser, loser_secret) = &apps[(*w + 1) % APPS];
        let r = with_cert(&h, loser, loser_secret)
            .call("GET", "/v1/items/1", None)
            .await
            .unwrap();
        assert_eq!(
            r.error().map(|e| e.code.clone()).as_deref(),
            Some("CLIENT_CERTIFICATE_MISMATCH"),
            "round {round}: {:?}",
            r.body
        );
        // Free the certificate for the next round (KEY-4: revoked on exit).
        let id = cred["id"].as_i64().unwrap();
        let (s, v) = h
            .admin(
                "DELETE",
                &format!("/v1/apps/{winner}/credentials/{id}"),
                None,
            )
            .await;
        assert!((200..300).contains(&s), "{s} {v}");
    }
}
