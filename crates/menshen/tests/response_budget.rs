//! Upstream answers are held under a memory budget too (issue 9 item
//! 1; review): an answer is charged as its frames arrive, to a budget
//! of its own (a flood of request bodies cannot starve it), so answers in
//! flight cannot grow the process past
//! `gateway.answer_memory_budget_bytes`. An answer that does not fit is
//! withheld 502 `OUTCOME_UNKNOWN` (the service answered, so it may have
//! acted), recorded with the outcome `unknown`; once the answers holding
//! the budget are done, the same call is answered again. All on 127.0.0.1.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::routing::get;
use common::*;
use serde_json::Value;

const MIB: usize = 1 << 20;

/// An upstream with `/v1/big`: 1.5 MiB of JSON at once, and `/v1/held`:
/// the same, whose last byte waits for `release` (so its first 1.5 MiB
/// stay held by the gateway meanwhile). `sent` fires when `/v1/held`'s
/// first part is out.
async fn upstream(release: Arc<tokio::sync::Notify>, sent: Arc<tokio::sync::Notify>) -> String {
    fn big() -> Vec<u8> {
        let mut b = br#"{"pad":""#.to_vec();
        b.extend(std::iter::repeat_n(b'x', 3 * MIB / 2));
        b
    }
    let app = axum::Router::new()
        .route(
            "/v1/big",
            get(|| async {
                let mut b = big();
                b.extend_from_slice(br#""}"#);
                ([("content-type", "application/json")], b)
            }),
        )
        .route(
            "/v1/held",
            get(move || {
                let (release, sent) = (release.clone(), sent.clone());
                async move {
                    let parts = futures_util::stream::unfold(0u8, move |step| {
                        let (release, sent) = (release.clone(), sent.clone());
                        async move {
                            match step {
                                0 => Some((Ok::<_, std::io::Error>(big()), 1)),
                                1 => {
                                    sent.notify_one();
                                    release.notified().await;
                                    Some((Ok(br#""}"#.to_vec()), 2))
                                }
                                _ => None,
                            }
                        }
                    });
                    (
                        [("content-type", "application/json")],
                        Body::from_stream(parts),
                    )
                }
            }),
        );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    url
}

/// Issue 9 item 1, AUD-1: answers in flight share the body memory budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dos_upstream_answers_are_charged_to_the_body_memory_budget() {
    let s = setup_with(HarnessOptions {
        configure: Some(Box::new(|c| {
            c.gateway.max_response_bytes = 2 * MIB;
            c.gateway.answer_memory_budget_bytes = 2 * MIB;
        })),
        ..Default::default()
    })
    .await;
    let h = &s.h;
    let release = Arc::new(tokio::sync::Notify::new());
    let sent = Arc::new(tokio::sync::Notify::new());
    let up = upstream(release.clone(), sent.clone()).await;
    for (id, path) in [("big", "/v1/big"), ("held", "/v1/held")] {
        let (st, r) = h
            .admin(
                "POST",
                "/v1/apis",
                Some(
                    serde_json::json!({"api_id": id, "method": "GET", "path": path,
                    "upstream": up.clone(), "level": "A1", "category": 3, "subcategory": 1}),
                ),
            )
            .await;
        assert_eq!(st, 201, "{r}");
        h.grant(&s.app_id, id).await;
    }
    // Alone, a 1.5 MiB answer fits the 2 MiB budget.
    let r = s.client.call("GET", "/v1/big", None).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body.len() > 3 * MIB / 2);

    // One answer of 1.5 MiB held in flight: a second one does not fit.
    let held = {
        let client = s.h.client(&s.app_id, &s.secret);
        tokio::spawn(async move { client.call("GET", "/v1/held", None).await.unwrap() })
    };
    sent.notified().await;
    // Its first 1.5 MiB charged (read by the gateway) before the next call,
    // so the two answers do not race for the budget.
    let budget = &h.node().gateway.state.answer_budget;
    let t = Instant::now();
    while budget.available_bytes() > MIB {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the held answer is not charged: {} bytes left",
            budget.available_bytes()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused = s.client.call("GET", "/v1/big", None).await.unwrap();
    let v: Value = serde_json::from_slice(&refused.body).unwrap();
    assert_eq!(
        (refused.status, v["code"].as_str()),
        (502, Some("OUTCOME_UNKNOWN")),
        "{v}"
    );
    assert!(refused.body.len() < 4096, "the answer is withheld");
    let rec = h.record(v["txn_id"].as_str().unwrap()).await;
    assert_eq!(rec.result, menshen_audit::Outcome::Unknown);
    assert_eq!(rec.code.as_deref(), Some("OUTCOME_UNKNOWN"));

    // The held answer completes; its charge is given back with its request.
    release.notify_one();
    let r = held.await.unwrap();
    assert_eq!(r.status, 200);
    let r = s.client.call("GET", "/v1/big", None).await.unwrap();
    assert_eq!(r.status, 200);
}

/// CONF-3 on a large answer: an answer over 256 KiB goes through the
/// response stages with `block_in_place` (so its parsing does not stall the
/// worker's other connections) and is masked exactly as a small one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conf_3_a_large_answer_is_masked_like_a_small_one() {
    let s = setup().await;
    let h = &s.h;
    let app = axum::Router::new().route(
        "/v1/statement",
        get(|| async {
            let mut b = br#"{"account":"6217000010001234567","pad":""#.to_vec();
            b.extend(std::iter::repeat_n(b'x', MIB));
            b.extend_from_slice(br#""}"#);
            ([("content-type", "application/json")], b)
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    let (st, r) = h
        .admin(
            "POST",
            "/v1/apis",
            Some(serde_json::json!({"api_id": "statement", "method": "GET",
                "path": "/v1/statement", "upstream": up, "level": "A1", "category": 3,
                "subcategory": 1, "controls": {"response_mask": {"detect": false,
                    "fields": [{"pointer": "/account", "kind": "account"}]}}})),
        )
        .await;
    assert_eq!(st, 201, "{r}");
    h.grant(&s.app_id, "statement").await;
    let r = s.client.call("GET", "/v1/statement", None).await.unwrap();
    assert_eq!(r.status, 200);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    let account = v["account"].as_str().unwrap();
    assert_ne!(account, "6217000010001234567");
    assert!(
        account.starts_with("621700") && account.ends_with("4567"),
        "{account}"
    );
    assert_eq!(v["pad"].as_str().unwrap().len(), MIB);
}
