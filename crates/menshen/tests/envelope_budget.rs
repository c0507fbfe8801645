//! Issue 9 item 1 (bounded: one memory budget for every request body held
//! at once) after field envelopes (CONF-1, issue 13): the body the
//! `decrypt` stage rebuilds from the opened fields is a second body held by
//! the request, and re-serialized JSON can be several times the bytes that
//! arrived (`1e15` comes back as `1000000000000000.0`, 4.5 times its
//! length). It is charged to the same budget as the body read: an opened
//! body the budget cannot hold is refused, 503 `SERVER_BUSY` with the
//! documented error body and a record, nothing forwarded. All on 127.0.0.1.

mod common;

use common::*;
use menshen_gateway::GatewayConfig;
use menshen_protocol::envelope;
use menshen_sdk::BankEncryptionKey;
use serde_json::{json, Value};

const BUDGET: usize = 160 * 1024;

fn small_budget(g: &mut GatewayConfig) {
    g.body_memory_budget_bytes = BUDGET;
}

/// A sealed transfer body padded with `n` numbers written `1e15`.
fn sealed(bank: &BankEncryptionKey, n: usize) -> Vec<u8> {
    let mut v = json!({"payee": {"account": "6217000010001234567"}, "amount": "1.00"});
    envelope::seal(&mut v, &["/payee/account".into()], &bank.key_id, &bank.key).unwrap();
    let mut text = v.to_string();
    assert_eq!(text.pop(), Some('}'));
    text.push_str(",\"pad\":[");
    text.push_str(&vec!["1e15"; n].join(","));
    text.push_str("]}");
    text.into_bytes()
}

/// Issue 9 item 1, CONF-1: an opened envelope body the memory budget cannot
/// hold is refused (503 `SERVER_BUSY`, recorded, not forwarded) instead of
/// growing the process past the budget; the same call with a small body
/// passes (positive control).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dos_an_opened_envelope_body_is_charged_to_the_body_memory_budget() {
    let s = setup_with(HarnessOptions {
        tune: Some(small_budget),
        ..Default::default()
    })
    .await;
    let h = &s.h;
    let (st, v) = h
        .admin(
            "POST",
            "/v1/apis",
            Some(
                json!({"api_id": "xfer", "method": "POST", "path": "/v1/transfers",
                "upstream": h.upstream_url, "level": "A1", "category": 3, "subcategory": 1,
                "controls": {"envelope": {"request": ["/payee/account"], "response": []}}}),
            ),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    h.grant(&s.app_id, "xfer").await;
    let keys = s
        .client
        .send_unverified(
            s.client
                .request("GET", "/.well-known/menshen/keys", None)
                .unwrap(),
        )
        .await
        .unwrap();
    let bank = BankEncryptionKey::from_key_set(&keys.body).unwrap();

    // Positive control: a small enveloped body is opened and forwarded.
    let r = s
        .client
        .call("POST", "/v1/transfers", Some(sealed(&bank, 10)))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let forwarded = h.upstream.count();

    // 12,000 x `1e15`: a 60 KB body (within max_body_bytes, 64 KiB, and the
    // budget) that opens to about 230 KB, over the 160 KiB budget.
    let body = sealed(&bank, 12_000);
    assert!(body.len() < 64 * 1024 && body.len() < BUDGET);
    let r = s
        .client
        .call("POST", "/v1/transfers", Some(body))
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    assert_eq!(
        (r.status, v["code"].as_str()),
        (503, Some("SERVER_BUSY")),
        "{}",
        String::from_utf8_lossy(&r.body[..r.body.len().min(300)])
    );
    assert_eq!(h.upstream.count(), forwarded, "nothing forwarded");
    let rec = h.record(v["txn_id"].as_str().unwrap()).await;
    assert_eq!(rec.code.as_deref(), Some("SERVER_BUSY"));
    assert_eq!(rec.result, menshen_audit::Outcome::Failure);

    // The budget was given back: the small call passes again.
    let r = s
        .client
        .call("POST", "/v1/transfers", Some(sealed(&bank, 10)))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}
