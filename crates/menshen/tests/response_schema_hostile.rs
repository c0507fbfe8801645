//! LVL-5 from a hostile upstream's side: where an API has a response
//! schema, the upstream's 2xx answer reaches the app only if it is JSON,
//! labelled as JSON, and matches. A schema-valid body labelled `text/html`
//! (markup inside JSON strings, for a web view to render), invalid UTF-8,
//! nesting far beyond the parser's limit, a body over
//! `gateway.max_response_bytes`, and an upstream that sets the gateway's
//! own fallback marker to skip the check: each is withheld with the
//! documented error body, the record names the code, nothing panics and
//! the node serves on. All on 127.0.0.1.

mod common;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::get;
use common::*;
use serde_json::{json, Value};

fn body(r: &menshen_sdk::Response) -> Value {
    serde_json::from_slice(&r.body).unwrap_or(Value::Null)
}

/// An upstream answering each path with a fixed (hostile) answer.
async fn hostile_upstream() -> String {
    fn answer(ct: &'static str, body: Vec<u8>) -> (StatusCode, HeaderMap, Vec<u8>) {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static(ct));
        (StatusCode::OK, h, body)
    }
    let deep = {
        let mut v = "[".repeat(200_000).into_bytes();
        v.extend(std::iter::repeat_n(b']', 200_000));
        v
    };
    let app = axum::Router::new()
        .route(
            "/v1/hostile/html",
            get(|| async {
                answer(
                    "text/html",
                    br#"{"ok":true,"path":"<script>alert(document.cookie)</script>"}"#.to_vec(),
                )
            }),
        )
        .route(
            "/v1/hostile/untyped",
            get(|| async {
                let (s, _, b) = answer("application/json", br#"{"ok":true}"#.to_vec());
                (s, b)
            }),
        )
        .route(
            "/v1/hostile/json",
            get(|| async {
                answer(
                    "application/json; charset=utf-8",
                    br#"{"ok":true,"path":"/json"}"#.to_vec(),
                )
            }),
        )
        .route(
            "/v1/hostile/problem",
            get(|| async { answer("application/problem+json", br#"{"ok":true}"#.to_vec()) }),
        )
        .route(
            "/v1/hostile/utf8",
            get(|| async {
                answer(
                    "application/json",
                    b"{\"ok\":true,\"path\":\"\xff\xfe\"}".to_vec(),
                )
            }),
        )
        .route(
            "/v1/hostile/deep",
            get(move || {
                let d = deep.clone();
                async move { answer("application/json", d) }
            }),
        )
        .route(
            "/v1/hostile/huge",
            get(|| async {
                let mut b = br#"{"ok":true,"path":""#.to_vec();
                b.extend(std::iter::repeat_n(b'x', 12 << 20));
                b.extend_from_slice(br#""}"#);
                answer("application/json", b)
            }),
        )
        .route(
            "/v1/hostile/marker",
            get(|| async {
                let (s, mut h, b) = answer("application/json", br#"{"ok":"yes"}"#.to_vec());
                h.insert("x-menshen-degraded", HeaderValue::from_static("fallback"));
                (s, h, b)
            }),
        );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    url
}

/// LVL-5: hostile upstream answers under a response schema are withheld
/// (502 `UPSTREAM_RESPONSE_INVALID`, documented body, record says so);
/// JSON labelled `application/json` (with parameters) or `+json` passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lvl_5_hostile_upstream_answers_are_withheld_bounded_and_recorded() {
    let s = setup().await;
    let h = &s.h;
    let up = hostile_upstream().await;
    let schema = json!({"type": "object", "required": ["ok"],
        "properties": {"ok": {"type": "boolean"}, "path": {"type": "string"}}});
    for p in [
        "html", "untyped", "json", "problem", "utf8", "deep", "huge", "marker",
    ] {
        let (st, r) = h
            .admin(
                "POST",
                "/v1/apis",
                Some(json!({"api_id": format!("h-{p}"), "method": "GET",
                    "path": format!("/v1/hostile/{p}"), "upstream": up.clone(),
                    "level": "A1", "category": 3, "subcategory": 1,
                    "controls": {"schema": {"response": schema}}})),
            )
            .await;
        assert_eq!(st, 201, "{r}");
        h.grant(&s.app_id, &format!("h-{p}")).await;
    }
    // Passes: JSON, labelled as such.
    for p in ["json", "problem"] {
        let r = s
            .client
            .call("GET", &format!("/v1/hostile/{p}"), None)
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{p}: {}", String::from_utf8_lossy(&r.body));
    }
    // Withheld by validate_response.
    for p in ["html", "untyped", "utf8", "deep", "marker"] {
        let r = s
            .client
            .call("GET", &format!("/v1/hostile/{p}"), None)
            .await
            .unwrap();
        let v = body(&r);
        assert_eq!(r.status, 502, "{p}: {v}");
        assert_eq!(v["code"], "UPSTREAM_RESPONSE_INVALID", "{p}: {v}");
        let text = String::from_utf8_lossy(&r.body);
        assert!(
            !text.contains("script") && !text.contains("schema"),
            "{p}: {text}"
        );
        let rec = h.record(v["txn_id"].as_str().unwrap()).await;
        assert_eq!(
            rec.code.as_deref(),
            Some("UPSTREAM_RESPONSE_INVALID"),
            "{p}"
        );
        assert_eq!(rec.status, 502);
    }
    // Over gateway.max_response_bytes (8 MiB): cut off at the upstream
    // stage and withheld as an invalid answer (the upstream answered and
    // may have acted: outcome unknown), not as a timeout.
    let r = s
        .client
        .call("GET", "/v1/hostile/huge", None)
        .await
        .unwrap();
    let v = body(&r);
    assert_eq!(
        (r.status, v["code"].as_str()),
        (502, Some("UPSTREAM_RESPONSE_INVALID")),
        "{v}"
    );
    let rec = h.record(v["txn_id"].as_str().unwrap()).await;
    assert_eq!(rec.result, menshen_audit::Outcome::Unknown);
    assert!(
        rec.message.contains("max_response_bytes")
            || rec
                .reason
                .as_deref()
                .unwrap_or("")
                .contains("max_response_bytes"),
        "{rec:?}"
    );
    // The node serves on.
    let r = s
        .client
        .call("GET", "/v1/hostile/json", None)
        .await
        .unwrap();
    assert_eq!(r.status, 200);
}
