//! TLS 1.2+ only (INT-5) and IPv6 listeners (DEP-4), checked with an
//! independent client (the OpenSSL command line) and the SDK.

mod common;

use std::process::Command;

use common::{Harness, HarnessOptions};

fn openssl(args: &[&str], port: u16) -> (bool, String) {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "localhost",
        ])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl is installed (the test command installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let ok =
        out.status.success() && text.contains("Cipher is ") && !text.contains("Cipher is (NONE)");
    (ok, text)
}

#[tokio::test]
async fn int_5_tls_1_0_and_1_1_handshakes_fail_1_2_and_1_3_succeed() {
    let h = Harness::start().await;
    let port = h.node().gateway.addrs[0].port();
    let ca = h
        .dir
        .path()
        .join("tls/ca.pem")
        .to_str()
        .unwrap()
        .to_string();
    let (ok12, ok13, old) = tokio::task::spawn_blocking(move || {
        // SECLEVEL=0 lets the *client* offer old versions, so a failure is the server's refusal.
        let old: Vec<(bool, String)> = ["-tls1", "-tls1_1"]
            .iter()
            .map(|v| openssl(&[v, "-cipher", "DEFAULT@SECLEVEL=0"], port))
            .collect();
        let ok12 = openssl(&["-tls1_2", "-CAfile", &ca, "-verify_return_error"], port);
        let ok13 = openssl(&["-tls1_3", "-CAfile", &ca, "-verify_return_error"], port);
        (ok12, ok13, old)
    })
    .await
    .unwrap();
    assert!(ok12.0, "TLS 1.2 must work: {}", ok12.1);
    assert!(ok12.1.contains("TLSv1.2"), "{}", ok12.1);
    assert!(ok13.0, "TLS 1.3 must work: {}", ok13.1);
    assert!(ok13.1.contains("TLSv1.3"), "{}", ok13.1);
    for (ok, text) in old {
        assert!(!ok, "TLS < 1.2 must fail: {text}");
        // The server refused the version: it answered the ClientHello with a
        // fatal alert (rustls sends handshake_failure, 40). A client that
        // could not offer the version, or reach the port, gets no alert.
        assert!(
            text.contains("SSL alert number"),
            "TLS < 1.2 must be refused by a server alert: {text}"
        );
    }
}

#[tokio::test]
async fn dep_4_ipv6_listener_serves_signed_calls() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback on this machine; skipping");
        return;
    }
    let h = Harness::start_with(HarnessOptions {
        listen_v6: true,
        ..Default::default()
    })
    .await;
    h.api("items", "GET", "/v1/items/{id}", "A1").await;
    let (app, secret) = h.app("v6", "server").await;
    h.grant(&app, "items").await;
    let v6 = h
        .node()
        .gateway
        .addrs
        .iter()
        .find(|a| a.is_ipv6())
        .copied()
        .unwrap();
    let client = menshen_sdk::Client::builder(&format!("https://{v6}"))
        .unwrap()
        .ca_pem(&h.ca_pem)
        .credentials(menshen_sdk::Credentials::hmac_sm3(
            &app,
            secret.into_bytes(),
        ))
        .build()
        .unwrap();
    let r = client.call("GET", "/v1/items/7", None).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    let rec = h.record(r.txn_id().unwrap()).await;
    assert_eq!(rec.client_ip, "::1");
    // AUTH-5 with IPv6: block ::1 and the next call is refused.
    h.admin(
        "POST",
        "/v1/ip-rules",
        Some(serde_json::json!({"action": "deny", "cidr": "::1/128"})),
    )
    .await;
    let r = client.call("GET", "/v1/items/7", None).await.unwrap();
    assert_eq!(r.error().unwrap().code, "IP_FORBIDDEN");
}
