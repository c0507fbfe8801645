//! Risk rules for fund movements (RSK-1, RSK-2) end to end: a real node on
//! 127.0.0.1, an A3 funds API whose controls name the amount and the
//! counterparty (JSON Pointers), an SM2-signing app, rules and reviews
//! through the admin API (and the CLI), decisions checked in the answers,
//! at the upstream and in the access records.

mod common;

use std::process::Command;

use common::Harness;
use menshen_sdk::Client;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_menshen");
const PAYEE: &str = "6222020200001234";

struct Funds {
    h: Harness,
    app: String,
    client: Client,
}

/// An A3 transfer API (`POST /v1/transfers`) whose body carries the amount
/// at `/payment/amount`, the payee at `/payment/payee` and its account type
/// at `/payment/payee_type`, and an app with an SM2 key granted it.
async fn funds() -> Funds {
    let h = Harness::start().await;
    let (s, v) = h
        .admin(
            "POST",
            "/v1/apis",
            Some(
                json!({"api_id": "transfer", "method": "POST", "path": "/v1/transfers",
                        "upstream": h.upstream_url, "level": "A3", "category": 3, "subcategory": 1,
                        "integrations": ["server_to_server"],
                        "controls": {"risk": {"amount": "/payment/amount",
                                               "counterparty": "/payment/payee",
                                               "account_type": "/payment/payee_type"}}}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["controls"]["risk"]["amount"], "/payment/amount");
    let (app, _) = h.app("Payments Co", "server").await;
    let (key, pem) = menshen_crypto::PrivateKey::generate(menshen_crypto::SigAlg::Sm2Sm3).unwrap();
    h.add_key(&app, &key, None, None).await;
    h.grant(&app, "transfer").await;
    let client = h
        .key_client(
            &app,
            menshen_crypto::PrivateKey::from_pkcs8_pem(&pem).unwrap(),
            None,
        )
        .await;
    Funds { h, app, client }
}

async fn rule(f: &Funds, r: Value) -> i64 {
    let mut r = r;
    r["app_id"] = json!(f.app);
    let (s, v) = f.h.admin("POST", "/v1/risk-rules", Some(r)).await;
    assert_eq!(s, 201, "{v}");
    v["id"].as_i64().unwrap()
}

/// Transfer `amount` (yuan, as a string) to `payee`: (status, code, txn).
async fn pay(f: &Funds, amount: &str, payee: &str) -> (u16, Option<String>, String) {
    let body = json!({"payment": {"amount": amount, "payee": payee, "payee_type": "personal"}});
    let r = f
        .client
        .call("POST", "/v1/transfers", Some(body.to_string().into_bytes()))
        .await
        .unwrap();
    let txn = r.txn_id().unwrap().to_string();
    (r.status, r.error().map(|e| e.code), txn)
}

async fn risk_of(f: &Funds, txn: &str) -> Value {
    f.h.record(txn).await.risk.unwrap_or(Value::Null)
}

#[tokio::test]
async fn rsk_2_reject_per_transaction_and_counterparty_with_records() {
    let f = funds().await;
    let id = rule(
        &f,
        json!({"max_per_txn": "1000.00", "counterparties": [PAYEE], "capacity": "tier B (2026 assessment)"}),
    )
    .await;
    let before = f.h.upstream.count();
    let (st, code, ok_txn) = pay(&f, "999.99", PAYEE).await;
    assert_eq!((st, code), (200, None));
    assert_eq!(f.h.upstream.count(), before + 1);
    let r = risk_of(&f, &ok_txn).await;
    assert_eq!(r["decision"], "pass", "{r}");
    assert_eq!(r["amount"], "999.99");
    assert_eq!(r["counterparty"], "***1234", "the payee is masked: {r}");
    // Over the per-transaction maximum: refused, nothing forwarded.
    let (st, code, txn) = pay(&f, "1000.01", PAYEE).await;
    assert_eq!((st, code.as_deref()), (403, Some("RISK_REJECTED")));
    assert_eq!(f.h.upstream.count(), before + 1, "nothing forwarded");
    let rec = f.h.record(&txn).await;
    assert_eq!(rec.code.as_deref(), Some("RISK_REJECTED"));
    let r = rec.risk.unwrap();
    assert_eq!(r["decision"], "reject");
    assert_eq!(r["breaches"][0]["rule"], id);
    assert!(
        r["breaches"][0]["what"]
            .as_str()
            .unwrap()
            .contains("per-transaction maximum 1000.00"),
        "{r}"
    );
    // Another payee: refused.
    let (st, code, txn) = pay(&f, "10", "6222020200009999").await;
    assert_eq!((st, code.as_deref()), (403, Some("RISK_REJECTED")));
    let r = risk_of(&f, &txn).await;
    assert!(
        r["breaches"][0]["what"]
            .as_str()
            .unwrap()
            .contains("counterparty ***9999 not allowed"),
        "{r}"
    );
    // An amount that is not a decimal of yuan is refused, not guessed.
    let r = f
        .client
        .call(
            "POST",
            "/v1/transfers",
            Some(br#"{"payment":{"amount":"1e3","payee":"6222020200001234"}}"#.to_vec()),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    // Removing the rule lifts it.
    let (s, _) =
        f.h.admin("DELETE", &format!("/v1/risk-rules/{id}"), None)
            .await;
    assert_eq!(s, 204);
    let (st, _, txn) = pay(&f, "5000", "6222020200009999").await;
    assert_eq!(st, 200);
    assert_eq!(risk_of(&f, &txn).await, Value::Null, "no rule, no decision");
}

#[tokio::test]
async fn rsk_2_daily_sum_is_kept_and_a_refused_call_adds_nothing() {
    let f = funds().await;
    rule(&f, json!({"max_per_day": "1000"})).await;
    assert_eq!(pay(&f, "600", PAYEE).await.0, 200);
    assert_eq!(pay(&f, "300", PAYEE).await.0, 200);
    let (st, code, txn) = pay(&f, "200", PAYEE).await;
    assert_eq!((st, code.as_deref()), (403, Some("RISK_REJECTED")));
    let r = risk_of(&f, &txn).await;
    assert!(
        r["breaches"][0]["what"]
            .as_str()
            .unwrap()
            .contains("day's sum 900.00 + 200.00 over the daily maximum 1000.00"),
        "{r}"
    );
    // The refused 200 was not added: 100 still fits, then nothing does.
    assert_eq!(pay(&f, "100", PAYEE).await.0, 200);
    assert_eq!(pay(&f, "0.01", PAYEE).await.0, 403);
}

#[tokio::test]
async fn rsk_1_alert_lets_the_call_through_and_records_the_breach() {
    let f = funds().await;
    let id = rule(&f, json!({"max_per_txn": "100", "action": "alert"})).await;
    let before = f.h.upstream.count();
    let (st, _, txn) = pay(&f, "500", PAYEE).await;
    assert_eq!(st, 200);
    assert_eq!(f.h.upstream.count(), before + 1);
    let rec = f.h.record(&txn).await;
    let r = rec.risk.unwrap();
    assert_eq!(r["decision"], "alert");
    assert_eq!(r["breaches"][0]["rule"], id);
    assert_eq!(r["breaches"][0]["action"], "alert");
}

#[tokio::test]
async fn rsk_1_unusual_amount_against_the_apps_own_mean_after_the_count_guard() {
    let f = funds().await;
    rule(
        &f,
        json!({"unusual_multiple": 5, "unusual_min_count": 4, "action": "reject"}),
    )
    .await;
    // Under the count guard even a large amount passes (3 calls of history).
    for a in ["100", "100", "100"] {
        assert_eq!(pay(&f, a, PAYEE).await.0, 200);
    }
    assert_eq!(
        pay(&f, "2000", PAYEE).await.0,
        200,
        "only 3 calls of history"
    );
    // Now 4 calls, mean 575: 5 x = 2875.
    let (st, code, txn) = pay(&f, "3000", PAYEE).await;
    assert_eq!((st, code.as_deref()), (403, Some("RISK_REJECTED")));
    let r = risk_of(&f, &txn).await;
    assert!(
        r["breaches"][0]["what"]
            .as_str()
            .unwrap()
            .contains("unusual amount 3000.00: over 5 x the app's mean 575.00 of 4 calls"),
        "{r}"
    );
    assert_eq!(pay(&f, "2800", PAYEE).await.0, 200);
}

#[tokio::test]
async fn rsk_1_hold_creates_one_review_and_an_approval_lets_that_exact_call_through_once() {
    let f = funds().await;
    let id = rule(
        &f,
        json!({"max_per_txn": "50000", "action": "hold", "review_window_secs": 600}),
    )
    .await;
    let before = f.h.upstream.count();
    let (st, code, txn) = pay(&f, "80000", PAYEE).await;
    assert_eq!((st, code.as_deref()), (403, Some("RISK_REVIEW_REQUIRED")));
    assert_eq!(f.h.upstream.count(), before, "nothing forwarded");
    let r = risk_of(&f, &txn).await;
    assert_eq!(r["decision"], "hold");
    assert_eq!(r["breaches"][0]["rule"], id);
    let review = r["review_id"].as_i64().unwrap();
    // The same call again: the same review, not a second one.
    let (st, _, txn2) = pay(&f, "80000", PAYEE).await;
    assert_eq!(st, 403);
    assert_eq!(risk_of(&f, &txn2).await["review_id"], review);
    let (s, list) =
        f.h.admin("GET", "/v1/risk-reviews?state=pending", None)
            .await;
    assert_eq!(s, 200);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["id"], review);
    assert_eq!(list[0]["txn_id"], txn.as_str());
    assert_eq!(list[0]["amount"], "80000.00");
    assert_eq!(list[0]["counterparty"], "***1234");
    // An officer approves (named by the admin token).
    let (s, v) =
        f.h.admin("POST", &format!("/v1/risk-reviews/{review}/approve"), None)
            .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"], "approved");
    assert!(v["decided_by"].is_string());
    assert!(v["approved_until"].as_i64().unwrap() > 0);
    // A different amount is not the approved call.
    let (st, code, _) = pay(&f, "80000.01", PAYEE).await;
    assert_eq!((st, code.as_deref()), (403, Some("RISK_REVIEW_REQUIRED")));
    // The exact call goes through, once.
    let (st, _, ok) = pay(&f, "80000", PAYEE).await;
    assert_eq!(st, 200);
    assert_eq!(f.h.upstream.count(), before + 1);
    let r = risk_of(&f, &ok).await;
    assert_eq!(r["decision"], "approved", "{r}");
    assert_eq!(r["review_id"], review);
    let (_, v) = f.h.admin("GET", "/v1/risk-reviews?state=used", None).await;
    assert_eq!(v[0]["used_txn_id"], ok.as_str());
    let (st, code, again) = pay(&f, "80000", PAYEE).await;
    assert_eq!((st, code.as_deref()), (403, Some("RISK_REVIEW_REQUIRED")));
    let second = risk_of(&f, &again).await["review_id"].as_i64().unwrap();
    assert_ne!(second, review, "a used approval is not reused");
    // Rejecting: the item is closed; deciding twice is a conflict.
    let (s, v) =
        f.h.admin("POST", &format!("/v1/risk-reviews/{second}/reject"), None)
            .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("rejected")));
    let (s, _) =
        f.h.admin("POST", &format!("/v1/risk-reviews/{second}/approve"), None)
            .await;
    assert_eq!(s, 409);
}

// The CLI runs as a child process and blocks its thread: the node needs
// another one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsk_2_cli_sets_lists_and_removes_rules_and_decides_reviews() {
    let f = funds().await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, &f.h.admin_token).unwrap();
    let run = |args: &[&str]| {
        let o = Command::new(BIN)
            .args(args)
            .args(["--admin-url", &f.h.admin_url, "--admin-token-file"])
            .arg(&token)
            .env_remove("MENSHEN_ADMIN_TOKEN")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(o.status.success(), "{args:?}: {text}");
        text
    };
    let out = run(&[
        "risk",
        "set",
        "--app",
        &f.app,
        "--api",
        "transfer",
        "--max-per-txn",
        "100",
        "--action",
        "hold",
        "--json",
    ]);
    let v: Value = serde_json::from_str(&out).unwrap();
    let id = v["id"].as_i64().unwrap();
    assert!(run(&["risk", "list"]).contains("hold"));
    let (st, _, txn) = pay(&f, "150", PAYEE).await;
    assert_eq!(st, 403);
    let review = risk_of(&f, &txn).await["review_id"].as_i64().unwrap();
    assert!(run(&["review", "list"]).contains(&txn));
    run(&["review", "approve", &review.to_string()]);
    assert_eq!(pay(&f, "150", PAYEE).await.0, 200);
    run(&["risk", "remove", &id.to_string()]);
    assert_eq!(pay(&f, "150", PAYEE).await.0, 200);
}

/// RSK-2: a call the rules let through that is refused later, before the
/// upstream could act (here its upstream refuses the connection: nothing
/// was sent), spends nothing of the day's sum; the next call still has the
/// whole daily maximum.
#[tokio::test]
async fn rsk_2_a_call_refused_after_the_risk_stage_takes_its_amount_back() {
    let f = funds().await;
    // The same transfer on an upstream that refuses connections.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        drop(l);
        format!("http://{a}")
    };
    let (s, v) =
        f.h.admin(
            "POST",
            "/v1/apis",
            Some(
                json!({"api_id": "transfer-down", "method": "POST", "path": "/v1/transfers-down",
                "upstream": closed, "level": "A3", "category": 3, "subcategory": 2,
                "integrations": ["server_to_server"],
                "controls": {"risk": {"amount": "/payment/amount",
                                      "counterparty": "/payment/payee",
                                      "account_type": "/payment/payee_type"}}}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    f.h.grant(&f.app, "transfer-down").await;
    rule(&f, json!({"max_per_day": "1000"})).await;
    let body = json!({"payment": {"amount": "900", "payee": PAYEE, "payee_type": "personal"}});
    let r = f
        .client
        .call(
            "POST",
            "/v1/transfers-down",
            Some(body.to_string().into_bytes()),
        )
        .await
        .unwrap();
    assert_eq!(
        r.error().map(|e| e.code).as_deref(),
        Some("UPSTREAM_UNAVAILABLE"),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    // The 900 was taken back: 600 fits the 1000 of the day, then 400, then
    // nothing more.
    assert_eq!(pay(&f, "600", PAYEE).await.0, 200);
    assert_eq!(pay(&f, "400", PAYEE).await.0, 200);
    assert_eq!(
        pay(&f, "0.01", PAYEE).await.1.as_deref(),
        Some("RISK_REJECTED")
    );
}
