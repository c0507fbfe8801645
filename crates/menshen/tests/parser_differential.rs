//! RSK-2 against a parser differential: the risk rules read a funds call's
//! amount with `serde_json` (a member named twice keeps its last value),
//! the bank's service reads the same bytes with its own library, which may
//! keep the first, or bind `AMOUNT` to its field `amount` (fastjson's smart
//! match, Jackson's case-insensitive properties). A body that names the
//! amount twice, or beside a look-alike, would pass the rules at one amount
//! and move another. Such a body is refused (403 `RISK_REJECTED`, recorded,
//! nothing forwarded); a plain body within the rules passes. All on
//! 127.0.0.1.

mod common;

use common::*;
use serde_json::{json, Value};

const PAYEE: &str = "6222020200001234";

/// RSK-2: a funds call whose body names the amount ambiguously is refused
/// whole, not read one way at the gateway and another at the bank.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsk_2_an_amount_named_twice_or_beside_a_look_alike_is_refused_not_guessed() {
    let s = setup().await;
    let h = &s.h;
    let (st, v) = h
        .admin(
            "POST",
            "/v1/apis",
            Some(
                json!({"api_id": "transfer", "method": "POST", "path": "/v1/transfers",
                "upstream": h.upstream_url, "level": "A1", "category": 3, "subcategory": 1,
                "controls": {"risk": {"amount": "/payment/amount",
                                      "counterparty": "/payment/payee"}}}),
            ),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    h.grant(&s.app_id, "transfer").await;
    let (st, v) = h
        .admin(
            "POST",
            "/v1/risk-rules",
            Some(json!({"app_id": s.app_id, "max_per_txn": "1000.00", "counterparties": [PAYEE]})),
        )
        .await;
    assert_eq!(st, 201, "{v}");

    let send = |body: String| {
        let c = s.client.clone();
        async move {
            c.call("POST", "/v1/transfers", Some(body.into_bytes()))
                .await
                .unwrap()
        }
    };
    // Positive control: within the rules, forwarded.
    let r = send(format!(
        r#"{{"payment":{{"amount":"999.99","payee":"{PAYEE}"}}}}"#
    ))
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let forwarded = h.upstream.count();

    for body in [
        // Named twice: serde_json keeps the last, a first-wins reader the first.
        format!(r#"{{"payment":{{"amount":"999999.00","payee":"{PAYEE}","amount":"1.00"}}}}"#),
        // Beside a look-alike a lenient binder takes for `amount`.
        format!(r#"{{"payment":{{"amount":"1.00","AMOUNT":"999999.00","payee":"{PAYEE}"}}}}"#),
        format!(
            r#"{{"payment":{{"amount":"1.00","payee":"{PAYEE}"}},"Payment":{{"amount":"999999.00"}}}}"#
        ),
        // The counterparty too.
        format!(
            r#"{{"payment":{{"amount":"1.00","payee":"{PAYEE}","PAYEE":"6222020200009999"}}}}"#
        ),
    ] {
        let r = send(body.clone()).await;
        let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        assert_eq!(
            (r.status, v["code"].as_str()),
            (403, Some("RISK_REJECTED")),
            "{body}: {v}"
        );
        let rec = h.record(v["txn_id"].as_str().unwrap()).await;
        assert_eq!(rec.code.as_deref(), Some("RISK_REJECTED"), "{body}");
        assert_eq!(rec.risk.as_ref().unwrap()["decision"], "reject", "{body}");
        assert!(
            rec.reason.as_deref().unwrap_or("").contains("ambiguous"),
            "{body}: {rec:?}"
        );
    }
    assert_eq!(h.upstream.count(), forwarded, "nothing forwarded");
}
