//! Bounded under attack (issue 9), no credentials needed by the attacker:
//! idle connections, stalled and trickled bodies, unauthenticated bodies,
//! the body memory budget. Each test checks that a signed call still
//! succeeds during the attack, and that what the attacker holds is bounded.
//! Loopback only; every wait is bounded.

mod common;

use std::time::Duration;

use common::{
    closed_within, eventually, h1_head, raw_tls, read_h1_response, setup_with, signed,
    HarnessOptions, Setup,
};
use menshen_gateway::GatewayConfig;
use tokio::io::AsyncWriteExt;

async fn signed_call_works(s: &Setup) {
    let r = s.client.call("GET", "/v1/items/1", None).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
}

fn short_timeouts(g: &mut GatewayConfig) {
    g.idle_timeout_ms = 400;
    g.body_read_timeout_ms = 400;
    g.request_timeout_ms = 2_000;
    g.header_read_timeout_ms = 1_000;
}

#[tokio::test]
async fn idle_http1_and_http2_connections_are_closed() {
    let s = setup_with(HarnessOptions {
        tune: Some(short_timeouts),
        ..Default::default()
    })
    .await;
    // Before any request: HTTP/1.1 and HTTP/2 (after the preface).
    let mut h1 = raw_tls(&s.h, false).await;
    let mut h2 = raw_tls(&s.h, true).await;
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    // After a request: keep-alive connection left idle.
    let mut after = raw_tls(&s.h, false).await;
    let req = signed(&s, "GET", "/v1/items/7", None);
    after.write_all(&h1_head(&req, None)).await.unwrap();
    let (status, _) = read_h1_response(&mut after, Duration::from_secs(5))
        .await
        .expect("answer");
    assert_eq!(status, 200);
    signed_call_works(&s).await;
    for (name, c) in [("h1", &mut h1), ("after", &mut after)] {
        assert!(
            closed_within(c, Duration::from_secs(5)).await,
            "idle {name} connection still open"
        );
    }
    assert!(
        closed_within(&mut h2, Duration::from_secs(5)).await,
        "idle h2 connection still open"
    );
    let state = &s.h.node().gateway.state;
    eventually("connections released", Duration::from_secs(5), || {
        state.connections.open() == 0
    })
    .await;
}

#[tokio::test]
async fn a_stalled_or_trickled_body_gets_408_with_the_error_body_and_a_record() {
    let s = setup_with(HarnessOptions {
        tune: Some(short_timeouts),
        ..Default::default()
    })
    .await;
    let body = br#"{"amount":"9999.00","to":"acct"}"#;
    // Stalled: the head and 5 bytes, then nothing.
    let req = signed(&s, "POST", "/v1/orders", Some(body));
    let mut c = raw_tls(&s.h, false).await;
    c.write_all(&h1_head(&req, Some(body.len()))).await.unwrap();
    c.write_all(&body[..5]).await.unwrap();
    let (status, text) = read_h1_response(&mut c, Duration::from_secs(5))
        .await
        .expect("an answer to a stalled body");
    assert_eq!(status, 408, "{text}");
    let e: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(e["code"], "REQUEST_TIMEOUT");
    let rec = s.h.record(e["txn_id"].as_str().unwrap()).await;
    assert_eq!(rec.code.as_deref(), Some("REQUEST_TIMEOUT"));
    assert_eq!(rec.status, 408);

    // Trickled: a byte every 50 ms would take 1.6 s, past the 400 ms budget.
    let req = signed(&s, "POST", "/v1/orders", Some(body));
    let mut c = raw_tls(&s.h, false).await;
    c.write_all(&h1_head(&req, Some(body.len()))).await.unwrap();
    let trickle = async {
        for b in body.iter() {
            if c.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), trickle)
        .await
        .unwrap();
    let (status, _) = read_h1_response(&mut c, Duration::from_secs(5))
        .await
        .expect("an answer to a trickled body");
    assert_eq!(status, 408);
    assert_eq!(s.h.upstream.count(), 0, "nothing reached the upstream");
    signed_call_works(&s).await;
}

#[tokio::test]
async fn an_unauthenticated_request_is_refused_from_its_head_without_its_body() {
    let s = setup_with(HarnessOptions::default()).await;
    // Declares 60 KiB and sends none of it: the answer comes anyway.
    let mut c = raw_tls(&s.h, false).await;
    c.write_all(
        b"POST /v1/orders HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 61440\r\n\r\n",
    )
    .await
    .unwrap();
    let (status, text) = read_h1_response(&mut c, Duration::from_secs(5))
        .await
        .expect("refused before the body");
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("MISSING_SIGNATURE"));
    // A stale signature, likewise.
    let mut req = s
        .client
        .request("POST", "/v1/orders", Some(b"{}".to_vec()))
        .unwrap();
    s.client
        .sign(
            &mut req,
            Some(&menshen_sdk::SignOptions {
                created: Some(menshen_store::now_unix() - 3_600),
                ..Default::default()
            }),
        )
        .unwrap();
    let mut c = raw_tls(&s.h, false).await;
    c.write_all(&h1_head(&req, Some(61_440))).await.unwrap();
    let (status, text) = read_h1_response(&mut c, Duration::from_secs(5))
        .await
        .expect("refused before the body");
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("STALE_TIMESTAMP"), "{text}");
    // A known App_ID with a forged signature, likewise: the signature is
    // verified from the headers, so it holds no body budget at all.
    let mut req = signed(&s, "POST", "/v1/orders", Some(b"{}"));
    req.headers_mut().insert(
        "signature",
        "sig1=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:"
            .parse()
            .unwrap(),
    );
    let mut c = raw_tls(&s.h, false).await;
    c.write_all(&h1_head(&req, Some(61_440))).await.unwrap();
    let (status, text) = read_h1_response(&mut c, Duration::from_secs(5))
        .await
        .expect("refused before the body");
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("INVALID_SIGNATURE"), "{text}");
    assert_eq!(
        s.h.node().gateway.state.budget.available_bytes(),
        s.h.node().gateway.state.budget.total_bytes(),
        "no body was charged"
    );
}

fn small_budget(g: &mut GatewayConfig) {
    g.body_memory_budget_bytes = 128 * 1024;
    g.body_read_timeout_ms = 1_500;
}

#[tokio::test]
async fn bodies_over_the_memory_budget_get_server_busy_not_memory() {
    let s = setup_with(HarnessOptions {
        tune: Some(small_budget),
        ..Default::default()
    })
    .await;
    let state = s.h.node().gateway.state.clone();
    let body = vec![b'x'; 60 * 1024];
    // Two signed requests announce 60 KiB each and hold their bodies back.
    let mut held = Vec::new();
    for _ in 0..2 {
        let req = signed(&s, "POST", "/v1/orders", Some(&body));
        let mut c = raw_tls(&s.h, false).await;
        c.write_all(&h1_head(&req, Some(body.len()))).await.unwrap();
        held.push(c);
    }
    eventually("two bodies charged", Duration::from_secs(5), || {
        state.budget.available_bytes() <= 8 * 1024
    })
    .await;
    // A third does not fit: 503 SERVER_BUSY with the error body, recorded.
    let req = signed(&s, "POST", "/v1/orders", Some(&body));
    let mut c = raw_tls(&s.h, false).await;
    c.write_all(&h1_head(&req, Some(body.len()))).await.unwrap();
    let (status, text) = read_h1_response(&mut c, Duration::from_secs(5))
        .await
        .expect("answer");
    assert_eq!(status, 503, "{text}");
    let e: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(e["code"], "SERVER_BUSY");
    assert_eq!(
        s.h.record(e["txn_id"].as_str().unwrap())
            .await
            .code
            .as_deref(),
        Some("SERVER_BUSY")
    );
    // Calls without a body still get in during the attack.
    signed_call_works(&s).await;
    // The held requests time out, and the budget is whole again.
    for c in held.iter_mut() {
        let (status, _) = read_h1_response(c, Duration::from_secs(5))
            .await
            .expect("408");
        assert_eq!(status, 408);
    }
    eventually("budget released", Duration::from_secs(5), || {
        state.budget.available_bytes() == state.budget.total_bytes()
    })
    .await;
    assert_eq!(s.h.upstream.count(), 1, "only the signed GET reached it");
}
