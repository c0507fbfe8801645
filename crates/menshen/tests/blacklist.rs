//! The app blacklist (TRF-3) from outside: blacklisted through the admin API
//! (with a reason), every call refused like a suspension (APP_NOT_ACTIVE,
//! nothing forwarded, recorded), the history kept and returned; delisted,
//! the app works again; bulk import all or nothing with the bad line named;
//! the CLI.

mod common;

use common::setup;
use serde_json::{json, Value};

#[tokio::test]
async fn trf_3_blacklist_refuses_every_call_keeps_history_and_delisting_restores() {
    let s = setup().await;
    assert_eq!(
        s.client
            .call("GET", "/v1/items/1", None)
            .await
            .unwrap()
            .status,
        200
    );
    let path = format!("/v1/apps/{}/blacklist", s.app_id);
    // A reason is required.
    let (st, v) = s.h.admin("POST", &path, Some(json!({"reason": " "}))).await;
    assert_eq!((st, v["field"].as_str()), (400, Some("reason")), "{v}");
    let (st, v) =
        s.h.admin(
            "POST",
            &path,
            Some(json!({"reason": "fraud reported by risk control"})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["app"]["status"], "blacklisted");
    assert_eq!(v["event"]["action"], "add");
    assert_eq!(v["event"]["actor"], "test", "the admin token's name");
    // Enforced like a suspension, from the next call on.
    let before = s.h.upstream.count();
    for (m, p, b) in [
        ("GET", "/v1/items/1", None),
        ("POST", "/v1/orders", Some(b"{}".to_vec())),
    ] {
        let r = s.client.call(m, p, b).await.unwrap();
        let body = r.error().expect("an error body");
        assert_eq!((r.status, body.code.as_str()), (403, "APP_NOT_ACTIVE"));
        let rec = s.h.record(&body.txn_id).await;
        assert_eq!(rec.code.as_deref(), Some("APP_NOT_ACTIVE"));
        assert!(rec.reason.unwrap_or_default().contains("blacklisted"));
    }
    assert_eq!(s.h.upstream.count(), before, "nothing forwarded");
    // Resume or a plain status change cannot bypass the history.
    let (st, v) =
        s.h.admin("POST", &format!("/v1/apps/{}/resume", s.app_id), None)
            .await;
    assert_eq!(st, 409, "{v}");
    // Delist with a reason: the app works again.
    let (st, v) =
        s.h.admin(
            "POST",
            &format!("/v1/apps/{}/unblacklist", s.app_id),
            Some(json!({"reason": "cleared after review"})),
        )
        .await;
    assert_eq!((st, &v["app"]["status"]), (200, &json!("active")), "{v}");
    assert_eq!(
        s.client
            .call("GET", "/v1/items/1", None)
            .await
            .unwrap()
            .status,
        200
    );
    let (st, v) =
        s.h.admin(
            "POST",
            &format!("/v1/apps/{}/unblacklist", s.app_id),
            Some(json!({"reason": "again"})),
        )
        .await;
    assert_eq!(st, 409, "not blacklisted: {v}");
    // The history, oldest first, with reasons and actors.
    let (st, v) = s.h.admin("GET", &path, None).await;
    assert_eq!(st, 200);
    let events = v["events"].as_array().unwrap();
    let got: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            ("add", "fraud reported by risk control"),
            ("remove", "cleared after review")
        ]
    );
    let (_, all) = s.h.admin("GET", "/v1/blacklist", None).await;
    assert_eq!(all["blacklisted"], json!([]));
    assert_eq!(all["events"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn trf_3_bulk_import_is_all_or_nothing_and_names_the_bad_line() {
    let s = setup().await;
    let (b, _) = s.h.app("Fintech Two", "server").await;
    let (c, _) = s.h.app("Fintech Three", "server").await;
    let http = s.h.admin_http.clone();
    let import = |body: String, ct: &'static str| {
        let (url, token, http) = (s.h.admin_url.clone(), s.h.admin_token.clone(), http.clone());
        async move {
            let req = http::Request::builder()
                .method("POST")
                .uri(format!("{url}/v1/blacklist/import"))
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", ct)
                .body(bytes::Bytes::from(body))
                .unwrap();
            let r = menshen_sdk::send(&http, req).await.unwrap();
            (r.status, serde_json::from_slice::<Value>(&r.body).unwrap())
        }
    };
    // Line 4 names an unknown app: nothing is blacklisted.
    let csv =
        format!("app_id,reason\n{b},mule accounts\n\n{c}, scraping, at night\nnope,unknown\n");
    let (st, v) = import(csv, "text/csv").await;
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["field"], "line 5", "{v}");
    assert!(v["message"].as_str().unwrap().contains("nope"), "{v}");
    let (_, all) = s.h.admin("GET", "/v1/blacklist", None).await;
    assert_eq!(all["blacklisted"], json!([]), "all or nothing");
    // A line without a reason.
    let (st, v) = import(format!("{b},ok\n{c}\n"), "text/csv").await;
    assert_eq!((st, v["field"].as_str()), (400, Some("line 2")), "{v}");
    // The good file: both listed, each with its reason.
    let (st, v) = import(
        format!("app_id,reason\n{b},mule accounts\n\n{c}, scraping, at night\n"),
        "text/csv",
    )
    .await;
    assert_eq!((st, &v["imported"]), (200, &json!(2)), "{v}");
    let (_, all) = s.h.admin("GET", "/v1/blacklist", None).await;
    let mut listed: Vec<String> = serde_json::from_value(all["blacklisted"].clone()).unwrap();
    listed.sort();
    let mut want = vec![b.clone(), c.clone()];
    want.sort();
    assert_eq!(listed, want);
    let (_, h) =
        s.h.admin("GET", &format!("/v1/apps/{c}/blacklist"), None)
            .await;
    assert_eq!(h["events"][0]["reason"], "scraping, at night");
    // JSON: the third entry repeats the first; nothing more is listed.
    let (st, v) = import(
        json!([
            {"app_id": s.app_id, "reason": "x"},
            {"app_id": b, "reason": "again"},
            {"app_id": s.app_id, "reason": "y"}
        ])
        .to_string(),
        "application/json",
    )
    .await;
    assert_eq!((st, v["field"].as_str()), (400, Some("line 3")), "{v}");
    assert_eq!(
        s.client
            .call("GET", "/v1/items/1", None)
            .await
            .unwrap()
            .status,
        200
    );
}

/// `menshen app blacklist|unblacklist|blacklist-import|blacklist-history`.
#[tokio::test]
async fn trf_3_cli_blacklists_imports_and_shows_history() {
    let s = setup().await;
    let (b, _) = s.h.app("Fintech Two", "server").await;
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
            (
                o.status.success(),
                String::from_utf8(o.stdout).unwrap(),
                String::from_utf8(o.stderr).unwrap(),
            )
        })
    };
    let a = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let (ok, out, err) = run(a(&["app", "blacklist", &s.app_id, "--reason", "fraud"]))
        .await
        .unwrap();
    assert!(ok, "{err}");
    assert!(out.contains("blacklisted"), "{out}");
    let r = s.client.call("GET", "/v1/items/1", None).await.unwrap();
    assert_eq!(r.error().unwrap().code, "APP_NOT_ACTIVE");
    let (ok, _, err) = run(a(&["app", "unblacklist", &s.app_id, "--reason", "cleared"]))
        .await
        .unwrap();
    assert!(ok, "{err}");
    assert_eq!(
        s.client
            .call("GET", "/v1/items/1", None)
            .await
            .unwrap()
            .status,
        200
    );
    let file = s.h.dir.path().join("list.csv");
    std::fs::write(&file, format!("{b},mule accounts\nghost,unknown app\n")).unwrap();
    let (ok, _, err) = run(a(&["app", "blacklist-import", file.to_str().unwrap()]))
        .await
        .unwrap();
    assert!(!ok && err.contains("line 2"), "{err}");
    std::fs::write(&file, format!("{b},mule accounts\n")).unwrap();
    let (ok, out, err) = run(a(&["app", "blacklist-import", file.to_str().unwrap()]))
        .await
        .unwrap();
    assert!(ok, "{err}");
    assert!(
        out.contains("\"imported\": 1") || out.contains("\"imported\":1"),
        "{out}"
    );
    let (ok, out, _) = run(a(&["app", "blacklist-history", &s.app_id]))
        .await
        .unwrap();
    assert!(
        ok && out.contains("fraud") && out.contains("cleared"),
        "{out}"
    );
    let (ok, out, _) = run(a(&["app", "blacklist-history"])).await.unwrap();
    assert!(
        ok && out.contains(&b) && out.contains("mule accounts"),
        "{out}"
    );
}
