//! Flow control (TRF-1) end to end: a real gateway over TLS on 127.0.0.1,
//! a recording upstream, rules set through the admin API (and the CLI).
//! Windows are a minute long; each test starts early in a minute, so the
//! window cannot end half-way through it.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{setup, Setup};
use menshen_audit::Outcome;
use serde_json::{json, Value};

/// Wait, if needed, until at most 40 s of the current UTC minute have
/// passed: each test's calls then take place in one minute window. (This
/// waits for a boundary; it asserts no timing.)
async fn early_in_a_minute() {
    let s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 60;
    if s > 40 {
        tokio::time::sleep(Duration::from_secs(61 - s)).await;
    }
}

async fn add_rule(s: &Setup, rule: Value) -> i64 {
    let (st, v) = s.h.admin("POST", "/v1/limits", Some(rule)).await;
    assert_eq!(st, 201, "{v}");
    v["id"].as_i64().unwrap()
}

#[tokio::test]
async fn trf_1_reject_rule_lets_n_calls_through_then_answers_429_with_headers() {
    let s = setup().await;
    let id = add_rule(
        &s,
        json!({"app_id": s.app_id, "api_id": "items", "window": "minute", "max": 3, "action": "reject"}),
    )
    .await;
    early_in_a_minute().await;
    let before = s.h.upstream.count();
    for i in 0..3 {
        let r = s.client.call("GET", "/v1/items/1", None).await.unwrap();
        assert_eq!(r.status, 200, "call {i}: {:?}", r.body);
    }
    assert_eq!(s.h.upstream.count(), before + 3);
    let r = s.client.call("GET", "/v1/items/1", None).await.unwrap();
    let body = r.error().expect("an error body");
    assert_eq!((r.status, body.code.as_str()), (429, "RATE_LIMITED"));
    assert_eq!(s.h.upstream.count(), before + 3, "nothing forwarded");
    let retry: i64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(
        r.headers["ratelimit-policy"],
        format!("\"rule-{id}\";q=3;w=60").as_str()
    );
    assert_eq!(
        r.headers["ratelimit"],
        format!("\"rule-{id}\";r=0;t={retry}").as_str()
    );
    assert_eq!(r.txn_id(), Some(body.txn_id.as_str()));
    // AUD-1: the refusal has its record, naming the rule.
    let rec = s.h.record(&body.txn_id).await;
    assert_eq!(rec.code.as_deref(), Some("RATE_LIMITED"));
    assert_eq!((rec.status, rec.result), (429, Outcome::Failure));
    assert!(
        rec.reason
            .as_deref()
            .is_some_and(|x| x.contains(&format!("limit rule {id} reached"))),
        "{:?}",
        rec.reason
    );
    // The rule counts this app's calls to `items` only.
    let r = s
        .client
        .call("POST", "/v1/orders", Some(b"{}".to_vec()))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    // An unrelated change (a new API) rebuilds the snapshot and resets
    // nothing: the counter is keyed by stable ids.
    s.h.api("other", "GET", "/v1/other", "A1").await;
    let r = s.client.call("GET", "/v1/items/1", None).await.unwrap();
    assert_eq!(r.status, 429);
    // Removing the rule lifts it at once.
    let (st, _) = s.h.admin("DELETE", &format!("/v1/limits/{id}"), None).await;
    assert_eq!(st, 204);
    let r = s.client.call("GET", "/v1/items/1", None).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(r.headers.get("ratelimit").is_none());
    let (st, _) = s.h.admin("DELETE", &format!("/v1/limits/{id}"), None).await;
    assert_eq!(st, 404);
}

#[tokio::test]
async fn trf_1_alert_rule_lets_every_call_through_and_records_the_excess() {
    let s = setup().await;
    let id = add_rule(
        &s,
        json!({"api_id": "items", "window": "minute", "max": 2, "action": "alert"}),
    )
    .await;
    early_in_a_minute().await;
    let before = s.h.upstream.count();
    let mut txns = vec![];
    for _ in 0..4 {
        let r = s.client.call("GET", "/v1/items/1", None).await.unwrap();
        assert_eq!(r.status, 200, "{:?}", r.body);
        txns.push(r.txn_id().unwrap().to_string());
    }
    assert_eq!(s.h.upstream.count(), before + 4);
    for (i, t) in txns.iter().enumerate() {
        let rec = s.h.record(t).await;
        assert_eq!(rec.result, Outcome::Success);
        let alerted = rec
            .reason
            .as_deref()
            .is_some_and(|x| x.contains(&format!("limit rule {id} exceeded (alert)")));
        assert_eq!(alerted, i >= 2, "call {i}: {:?}", rec.reason);
    }
}

#[tokio::test]
async fn trf_1_twenty_concurrent_calls_against_max_5_exactly_5_pass() {
    let s = setup().await;
    add_rule(
        &s,
        json!({"app_id": s.app_id, "api_id": "items", "window": "minute", "max": 5}),
    )
    .await;
    early_in_a_minute().await;
    let before = s.h.upstream.count();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let c = s.client.clone();
            tokio::spawn(async move {
                c.call("GET", &format!("/v1/items/{i}"), None)
                    .await
                    .unwrap()
                    .status
            })
        })
        .collect();
    let mut statuses = vec![];
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((ok, limited), (5, 15), "{statuses:?}");
    assert_eq!(s.h.upstream.count(), before + 5);
}

#[tokio::test]
async fn trf_1_admin_api_names_the_wrong_field() {
    let s = setup().await;
    for (body, field) in [
        (json!({"window": "month", "max": 1}), "window"),
        (json!({"window": "minute", "max": 0}), "max"),
        (json!({"window": "minute"}), "max"),
        (
            json!({"window": "minute", "max": 1, "app_id": "nope"}),
            "app_id",
        ),
        (
            json!({"window": "minute", "max": 1, "api_id": "nope"}),
            "api_id",
        ),
        (
            json!({"window": "minute", "max": 1, "action": "pause"}),
            "action",
        ),
    ] {
        let (st, v) = s.h.admin("POST", "/v1/limits", Some(body.clone())).await;
        assert_eq!(st, 400, "{body}: {v}");
        assert_eq!(v["field"], field, "{body}: {v}");
    }
    assert_eq!(s.h.admin("GET", "/v1/limits", None).await.1, json!([]));
}

/// `menshen limit set|list|remove` against the admin API.
#[tokio::test]
async fn trf_1_cli_sets_lists_and_removes_a_rule() {
    let s = setup().await;
    let token = s.h.dir.path().join("admin.token");
    std::fs::write(&token, &s.h.admin_token).unwrap();
    let run = |args: Vec<String>| {
        let (url, token) = (s.h.admin_url.clone(), token.clone());
        tokio::task::spawn_blocking(move || {
            let o = std::process::Command::new(env!("CARGO_BIN_EXE_menshen"))
                .args(&args)
                .arg("--admin-url")
                .arg(url)
                .arg("--admin-token-file")
                .arg(token)
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            String::from_utf8(o.stdout).unwrap()
        })
    };
    let set = run([
        "limit", "set", "--app", &s.app_id, "--api", "items", "--window", "minute", "--max", "7",
        "--action", "reject",
    ]
    .map(String::from)
    .to_vec())
    .await
    .unwrap();
    let v: Value = serde_json::from_str(&set).unwrap();
    assert_eq!(
        (&v["api_id"], &v["window"], &v["max"], &v["action"]),
        (
            &json!("items"),
            &json!("minute"),
            &json!(7),
            &json!("reject")
        )
    );
    let id = v["id"].as_i64().unwrap();
    let list = run(vec!["limit".into(), "list".into()]).await.unwrap();
    assert!(list.contains("items") && list.contains("minute"), "{list}");
    run(vec!["limit".into(), "remove".into(), id.to_string()])
        .await
        .unwrap();
    assert_eq!(s.h.admin("GET", "/v1/limits", None).await.1, json!([]));
}
