//! Bounded under attack (issue 9): HTTP/2 connections opening many streams
//! with large bodies. Unsigned ones are refused from their heads; signed
//! ones are held under the body memory budget. The process's resident
//! memory stays bounded and signed calls still succeed. Alone in its test
//! binary, so the process's memory is this test's.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{raw_tls, rss_bytes, setup_with, HarnessOptions, Setup};
use http_body_util::Full;

async fn h2_sender(s: &Setup) -> hyper::client::conn::http2::SendRequest<Full<Bytes>> {
    let tls = raw_tls(&s.h, true).await;
    let (send, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .initial_stream_window_size(4 << 20)
            .initial_connection_window_size(16 << 20)
            .handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    send
}

#[tokio::test]
async fn an_http2_stream_flood_with_large_bodies_stays_within_memory() {
    let s = setup_with(HarnessOptions {
        max_body_bytes: 1 << 20,
        tune: Some(|g| {
            g.body_memory_budget_bytes = 16 << 20;
            g.body_read_timeout_ms = 2_000;
        }),
        ..Default::default()
    })
    .await;
    let big = Bytes::from(vec![b'x'; 1 << 20]);
    let rss_before = rss_bytes();
    let mut peak = rss_before;
    let mut tasks = Vec::new();
    // Five connections x 128 unsigned streams x 1 MiB, and one connection
    // x 64 signed streams x 1 MiB.
    for _ in 0..5 {
        let send = h2_sender(&s).await;
        for _ in 0..128 {
            let mut send = send.clone();
            let body = big.clone();
            let uri = format!("{}/v1/orders", s.h.gateway_url);
            tasks.push(tokio::spawn(async move {
                let req = http::Request::post(uri)
                    .header("content-type", "application/json")
                    .header("content-length", body.len())
                    .body(Full::new(body))
                    .unwrap();
                let _ = send.ready().await;
                send.send_request(req)
                    .await
                    .map(|r| r.status().as_u16())
                    .ok()
            }));
        }
    }
    let send = h2_sender(&s).await;
    for _ in 0..64 {
        let mut req = s
            .client
            .request("POST", "/v1/orders", Some(big.to_vec()))
            .unwrap();
        s.client.sign(&mut req, None).unwrap();
        let (parts, body) = req.into_parts();
        let mut send = send.clone();
        tasks.push(tokio::spawn(async move {
            let req = http::Request::from_parts(parts, Full::new(body));
            let _ = send.ready().await;
            send.send_request(req)
                .await
                .map(|r| r.status().as_u16())
                .ok()
        }));
    }
    // Meanwhile, a signed call succeeds.
    let r = s.client.call("GET", "/v1/items/1", None).await.unwrap();
    assert_eq!(r.status, 200);
    let mut statuses = std::collections::BTreeMap::new();
    let all = async {
        for t in tasks {
            while !t.is_finished() {
                peak = peak.max(rss_bytes());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let st = t.await.unwrap();
            *statuses.entry(st).or_insert(0) += 1;
        }
    };
    tokio::time::timeout(Duration::from_secs(120), all)
        .await
        .expect("the flood ends");
    let grown = peak.saturating_sub(rss_before);
    eprintln!("statuses {statuses:?}; RSS before {rss_before} peak {peak} (+{grown})");
    // Unsigned streams: 401 from their heads (or reset by the client library
    // once refused mid-upload); signed ones: 200 within the budget, 503
    // SERVER_BUSY past it. Nothing else.
    assert!(
        statuses
            .keys()
            .all(|k| matches!(k, None | Some(200) | Some(401) | Some(503))),
        "{statuses:?}"
    );
    assert!(
        statuses.get(&Some(401)).copied().unwrap_or(0) >= 100,
        "{statuses:?}"
    );
    assert!(
        statuses.get(&Some(503)).copied().unwrap_or(0) >= 1,
        "the budget was reached: {statuses:?}"
    );
    assert!(
        statuses.get(&Some(200)).copied().unwrap_or(0) <= 64,
        "{statuses:?}"
    );
    assert!(
        grown < 300 << 20,
        "resident memory grew by {grown} bytes under the flood"
    );
    let r = s.client.call("GET", "/v1/items/2", None).await.unwrap();
    assert_eq!(r.status, 200);
}
