//! Issue 13 from outside: schema validation (LVL-5), attack screening
//! (ATK-1) and response masking (CONF-3), through a real node, the SDK and
//! the recording upstream.

mod common;

use common::*;
use serde_json::{json, Value};

/// The body of a response as JSON.
fn body(r: &menshen_sdk::Response) -> Value {
    serde_json::from_slice(&r.body).unwrap_or(Value::Null)
}

/// Percent-encode everything but unreserved characters (for a query value
/// or a path segment).
fn enc(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

async fn create_api(h: &Harness, v: Value) {
    let (s, r) = h.admin("POST", "/v1/apis", Some(v)).await;
    assert_eq!(s, 201, "{r}");
}

fn a1(api_id: &str, method: &str, path: &str, upstream: &str, controls: Value) -> Value {
    json!({"api_id": api_id, "method": method, "path": path, "upstream": upstream,
           "level": "A1", "category": 3, "subcategory": 1, "controls": controls})
}

/// LVL-5: a malformed query or body is refused with 400 `INVALID_REQUEST`
/// and the failing field's pointer, nothing about the schema, and the
/// upstream is never called; a good call passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lvl_5_schema_refusals_name_the_field_and_never_reach_the_upstream() {
    let s = setup().await;
    let h = &s.h;
    let query = json!({
        "type": "object",
        "properties": {"page": {"type": "integer", "minimum": 1}, "size": {"type": "integer", "maximum": 50}},
        "required": ["page"],
        "additionalProperties": false
    });
    let body_schema = json!({
        "type": "object",
        "required": ["payee", "amount"],
        "properties": {
            "payee": {"$ref": "#/$defs/party"},
            "amount": {"type": "string", "pattern": "^[0-9]+\\.[0-9]{2}$"}
        },
        "$defs": {"party": {"type": "object", "required": ["account"],
                            "properties": {"account": {"type": "string", "pattern": "^[0-9]{12,20}$"}}}}
    });
    create_api(
        h,
        a1(
            "list-s",
            "GET",
            "/v1/schema/list",
            &h.upstream_url,
            json!({"schema": {"query": query}}),
        ),
    )
    .await;
    create_api(
        h,
        a1(
            "pay-s",
            "POST",
            "/v1/schema/pay",
            &h.upstream_url,
            json!({"schema": {"body": body_schema}}),
        ),
    )
    .await;
    h.grant(&s.app_id, "list-s").await;
    h.grant(&s.app_id, "pay-s").await;

    let cases: Vec<(&str, &str, Option<Value>, &str)> = vec![
        ("GET", "/v1/schema/list?page=0", None, "/query/page"),
        ("GET", "/v1/schema/list?page=abc", None, "/query/page"),
        ("GET", "/v1/schema/list?size=10", None, "/query/page"),
        (
            "GET",
            "/v1/schema/list?page=1&size=500",
            None,
            "/query/size",
        ),
        ("GET", "/v1/schema/list?page=1&debug=1", None, "/query"),
        (
            "POST",
            "/v1/schema/pay",
            Some(json!({"amount": "1.00"})),
            "/body/payee",
        ),
        (
            "POST",
            "/v1/schema/pay",
            Some(json!({"payee": {}, "amount": "1.00"})),
            "/body/payee/account",
        ),
        (
            "POST",
            "/v1/schema/pay",
            Some(json!({"payee": {"account": "12"}, "amount": "1.00"})),
            "/body/payee/account",
        ),
        (
            "POST",
            "/v1/schema/pay",
            Some(json!({"payee": {"account": "622848001234"}, "amount": "1"})),
            "/body/amount",
        ),
    ];
    for (m, pq, b, pointer) in cases {
        let r = s
            .client
            .call(m, pq, b.map(|v| v.to_string().into_bytes()))
            .await
            .unwrap();
        assert_eq!(r.status, 400, "{m} {pq}");
        let v = body(&r);
        assert_eq!(v["code"], "INVALID_REQUEST", "{v}");
        assert_eq!(v["pointer"], pointer, "{m} {pq}: {v}");
        let text = v.to_string();
        for internal in [
            "pattern", "minimum", "maximum", "$defs", "required", "^[0-9]",
        ] {
            assert!(!text.contains(internal), "schema internals in {text}");
        }
        let rec = h.record(v["txn_id"].as_str().unwrap()).await;
        assert_eq!(rec.code.as_deref(), Some("INVALID_REQUEST"));
    }
    // A body that is not JSON at all.
    let r = s
        .client
        .call("POST", "/v1/schema/pay", Some(b"not json".to_vec()))
        .await
        .unwrap();
    assert_eq!(body(&r)["pointer"], "/body");
    assert_eq!(h.upstream.count(), 0, "nothing reached the upstream");

    let ok = s
        .client
        .call("GET", "/v1/schema/list?page=2&size=10", None)
        .await
        .unwrap();
    assert_eq!(ok.status, 200);
    let ok = s
        .client
        .call(
            "POST",
            "/v1/schema/pay",
            Some(
                json!({"payee": {"account": "622848001234"}, "amount": "10.00"})
                    .to_string()
                    .into_bytes(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(ok.status, 200);
    assert_eq!(h.upstream.count(), 2);
}

/// LVL-5: an API whose schema has a `response` part: the upstream's
/// answer that does not match is withheld (502 `UPSTREAM_RESPONSE_INVALID`,
/// outcome unknown: the upstream acted), the client learns nothing of the
/// schema or of the upstream's body, and the access record names the code
/// and the failing pointer without keeping the body (bodies retained for
/// this API); a matching answer passes unchanged (and masked as usual).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lvl_5_an_upstream_answer_that_breaks_the_response_schema_is_withheld() {
    let s = setup().await;
    let h = &s.h;
    // The recording upstream answers `/pii` with holder, card_no, accounts
    // [{number, balance}], ...: `balance` is a string there, the schema
    // wants a number; and `/ok` with {"ok": true, "path": ...}.
    let pii_schema = json!({
        "type": "object",
        "required": ["holder", "accounts"],
        "properties": {
            "holder": {"type": "string"},
            "accounts": {"type": "array", "items": {"type": "object",
                "properties": {"balance": {"type": "number", "minimum": 0}}}}
        }
    });
    let ok_schema = json!({
        "type": "object", "required": ["ok"],
        "properties": {"ok": {"type": "boolean"}, "path": {"type": "string"}}
    });
    create_api(
        h,
        a1(
            "rs-bad",
            "GET",
            "/v1/rs/pii",
            &h.upstream_url,
            json!({"schema": {"response": pii_schema}, "audit_messages": "bodies"}),
        ),
    )
    .await;
    create_api(
        h,
        a1(
            "rs-good",
            "GET",
            "/v1/rs/ok",
            &h.upstream_url,
            json!({"schema": {"response": ok_schema}}),
        ),
    )
    .await;
    h.grant(&s.app_id, "rs-bad").await;
    h.grant(&s.app_id, "rs-good").await;

    let r = s.client.call("GET", "/v1/rs/pii", None).await.unwrap();
    assert_eq!(r.status, 502);
    let v = body(&r);
    assert_eq!(v["code"], "UPSTREAM_RESPONSE_INVALID", "{v}");
    let text = String::from_utf8_lossy(&r.body).to_string();
    for leak in [
        "张三丰",
        "6228480012345678",
        "6222020200112233445",
        "balance",
        "accounts",
        "number",
        "minimum",
        "schema",
    ] {
        assert!(
            !text.contains(leak),
            "{leak} in the client's answer: {text}"
        );
    }
    assert_eq!(
        h.upstream.count(),
        1,
        "the upstream was called (and may have acted)"
    );
    let txn = v["txn_id"].as_str().unwrap();
    let rec = h.record(txn).await;
    assert_eq!(rec.code.as_deref(), Some("UPSTREAM_RESPONSE_INVALID"));
    assert_eq!(rec.status, 502);
    assert_eq!(rec.result, menshen_audit::Outcome::Unknown);
    let reason = rec.reason.clone().unwrap_or_default();
    assert!(
        reason.contains("response schema") && reason.contains("/accounts/0/balance"),
        "{reason}"
    );
    // Nothing of the upstream's body in the audit log.
    h.node().audit.flush().await.unwrap();
    let line = menshen_audit::writer::read_all_records(h.node().audit.dir())
        .unwrap()
        .into_iter()
        .find(|l| l.contains(txn))
        .expect("the record");
    for leak in ["张三丰", "6228480012345678", "13812345678"] {
        assert!(!line.contains(leak), "{leak} in the record: {line}");
    }

    let r = s.client.call("GET", "/v1/rs/ok", None).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(body(&r)["ok"], true);
    assert_eq!(h.upstream.count(), 2);
}

/// LVL-5: a schema with a remote or file `$ref` is refused when the API is
/// saved (created or patched), naming the field; nothing is fetched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lvl_5_remote_and_file_refs_are_refused_when_the_api_is_saved() {
    let h = Harness::start().await;
    for r in ["https://schemas.example/party.json", "file:///etc/passwd"] {
        let (st, v) = h
            .admin(
                "POST",
                "/v1/apis",
                Some(a1(
                    "bad",
                    "POST",
                    "/v1/bad",
                    &h.upstream_url,
                    json!({"schema": {"body": {"$ref": r}}}),
                )),
            )
            .await;
        assert_eq!(st, 400, "{v}");
        assert_eq!(v["field"], "controls.schema.body", "{v}");
    }
    h.api("ok", "GET", "/v1/ok", "A1").await;
    let (st, v) = h
        .admin(
            "PATCH",
            "/v1/apis/ok/controls",
            Some(json!({"schema": {"query": {"properties": {"a": {"$ref": "http://x/y"}}}}})),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["field"], "controls.schema.query", "{v}");
}

/// The API `search` (GET /v1/search/{term}) and `notes` (POST /v1/notes),
/// both screening in `mode`, reading the header `x-remark`.
async fn screening_setup(mode: &str) -> Setup {
    let s = setup().await;
    let controls = json!({"screening": {"mode": mode, "headers": ["x-remark"]}});
    create_api(
        &s.h,
        a1(
            "search",
            "GET",
            "/v1/search/{term}",
            &s.h.upstream_url,
            controls.clone(),
        ),
    )
    .await;
    create_api(
        &s.h,
        a1("notes", "POST", "/v1/notes", &s.h.upstream_url, controls),
    )
    .await;
    s.h.grant(&s.app_id, "search").await;
    s.h.grant(&s.app_id, "notes").await;
    s
}

/// One attack per place: query, header, path segment, nested JSON string,
/// double-encoded JSON string.
async fn attacks(s: &Setup) -> Vec<(&'static str, menshen_sdk::Response)> {
    let sqli = "1' OR '1'='1";
    let mut out = vec![];
    let r = s
        .client
        .call("GET", &format!("/v1/search/books?q={}", enc(sqli)), None)
        .await
        .unwrap();
    out.push(("query parameter `q`", r));
    let mut req = s.client.request("GET", "/v1/search/books", None).unwrap();
    req.headers_mut().insert(
        "x-remark",
        http::HeaderValue::from_static("<script>alert(1)</script>"),
    );
    s.client.sign(&mut req, None).unwrap();
    out.push(("header x-remark", s.client.send(req).await.unwrap()));
    let r = s
        .client
        .call("GET", &format!("/v1/search/{}", enc(sqli)), None)
        .await
        .unwrap();
    out.push(("path segment 3", r));
    let nested =
        json!({"payer": {"remarks": [{"text": "ok"}, {"text": "<img src=x onerror=alert(1)>"}]}});
    let r = s
        .client
        .call("POST", "/v1/notes", Some(nested.to_string().into_bytes()))
        .await
        .unwrap();
    out.push(("body /payer/remarks/1/text", r));
    let double = json!({"a": {"b": ["fine", "1%2527%2520OR%2520%25271%2527%253D%25271"]}});
    let r = s
        .client
        .call("POST", "/v1/notes", Some(double.to_string().into_bytes()))
        .await
        .unwrap();
    out.push(("body /a/b/1", r));
    out
}

/// ATK-1: in `block` mode an attack in the query, a header, a path segment
/// and a nested JSON string (also double-encoded) is refused with 403
/// `SUSPICIOUS_INPUT`, recorded with where it was, and never forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atk_1_block_mode_refuses_attacks_in_every_place_and_records_them() {
    let s = screening_setup("block").await;
    for (place, r) in attacks(&s).await {
        assert_eq!(
            r.status,
            403,
            "{place}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let v = body(&r);
        assert_eq!(v["code"], "SUSPICIOUS_INPUT", "{place}");
        let rec = s.h.record(v["txn_id"].as_str().unwrap()).await;
        assert_eq!(rec.code.as_deref(), Some("SUSPICIOUS_INPUT"));
        let reason = rec.reason.clone().unwrap_or_default();
        assert!(reason.contains(place), "{place} not in {reason}");
    }
    assert_eq!(s.h.upstream.count(), 0, "nothing was forwarded");
    // Clean calls pass.
    let r = s
        .client
        .call("GET", "/v1/search/books?q=%E5%BC%A0%E4%B8%89", None)
        .await
        .unwrap();
    assert_eq!(r.status, 200);
}

/// ATK-1: in `detect` mode the same attacks reach the upstream and each
/// access record names the finding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atk_1_detect_mode_lets_attacks_through_and_records_each() {
    let s = screening_setup("detect").await;
    let all = attacks(&s).await;
    let n = all.len();
    for (place, r) in all {
        assert_eq!(r.status, 200, "{place}");
        let txn = r
            .headers
            .get("x-menshen-txn-id")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let rec = s.h.record(&txn).await;
        let reason = rec.reason.clone().unwrap_or_default();
        assert!(
            reason.contains("screening (detect)") && reason.contains(place),
            "{place}: {reason}"
        );
    }
    assert_eq!(s.h.upstream.count(), n);
}

/// ATK-1: every line of the benign corpus (Chinese names with apostrophes,
/// addresses, remarks with quotes and dashes, amounts, English text)
/// passes a `block`-mode API as a query parameter and as a JSON string.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atk_1_benign_corpus_passes_block_mode_end_to_end() {
    let s = screening_setup("block").await;
    let corpus = include_str!("../../menshen-gateway/testdata/screening/benign.txt");
    let lines: Vec<&str> = corpus
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect();
    for l in &lines {
        let r = s
            .client
            .call("GET", &format!("/v1/search/books?q={}", enc(l)), None)
            .await
            .unwrap();
        assert_eq!(
            r.status,
            200,
            "query {l:?}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    let all = json!({"remarks": lines});
    let r = s
        .client
        .call("POST", "/v1/notes", Some(all.to_string().into_bytes()))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

/// ATK-1: JSON nested past the limit is refused (400 `REQUEST_TOO_COMPLEX`)
/// in `detect` mode too: what cannot be screened whole is not let through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atk_1_excessive_nesting_is_refused_in_every_screening_mode() {
    let s = screening_setup("detect").await;
    let deep = format!("{}1{}", "[".repeat(40), "]".repeat(40));
    let r = s
        .client
        .call("POST", "/v1/notes", Some(deep.into_bytes()))
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(body(&r)["code"], "REQUEST_TOO_COMPLEX");
    assert_eq!(s.h.upstream.count(), 0);
}

/// CONF-3: an app's responses are masked (configured pointers and the
/// detection safety net) unless its grant is approved for clearing; the
/// approval names who gave it and is in the admin audit log; withdrawing
/// it masks again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conf_3_responses_are_masked_unless_the_grant_is_approved_for_clearing() {
    let s = setup().await;
    let h = &s.h;
    create_api(
        h,
        a1(
            "acct",
            "GET",
            "/v1/acct/pii",
            &h.upstream_url,
            json!({"response_mask": {
            "fields": [{"pointer": "/holder", "kind": "name"},
                       {"pointer": "/accounts/*/number", "kind": "account"}],
            "detect": true}}),
        ),
    )
    .await;
    h.grant(&s.app_id, "acct").await;

    let masked = |v: &Value| {
        assert_eq!(v["holder"], "张**", "{v}");
        assert_eq!(v["accounts"][0]["number"], "622202*********3445", "{v}");
        assert_eq!(v["accounts"][0]["balance"], "1234.56", "{v}");
        assert_eq!(v["card_no"], "622848******5678", "{v}");
        assert_eq!(v["mobile"], "138****5678", "{v}");
        assert_eq!(v["id_number"], "110105********002X", "{v}");
        assert_eq!(v["remark"], "call 139****5678", "{v}");
        assert_eq!(v["amount"], "100.00", "{v}");
    };
    let r = s.client.call("GET", "/v1/acct/pii", None).await.unwrap();
    assert_eq!(r.status, 200);
    masked(&body(&r));

    let (st, g) = h
        .admin(
            "POST",
            &format!("/v1/grants/{}/acct/clearing", s.app_id),
            Some(json!({"clearing": true})),
        )
        .await;
    assert_eq!(st, 200, "{g}");
    assert_eq!(g["clearing"], true);
    assert!(
        g["clearing_approved_by"].is_string() && g["clearing_approved_at"].is_string(),
        "{g}"
    );
    let r = s.client.call("GET", "/v1/acct/pii", None).await.unwrap();
    let v = body(&r);
    assert_eq!(v["holder"], "张三丰", "{v}");
    assert_eq!(v["card_no"], "6228480012345678", "{v}");
    assert_eq!(v["accounts"][0]["number"], "6222020200112233445", "{v}");

    // The approval is in the admin audit log, before and after.
    h.node().audit.flush().await.unwrap();
    let admin: Vec<Value> = menshen_audit::writer::read_all_records(h.node().audit.dir())
        .unwrap()
        .into_iter()
        .filter(|l| l.contains("\"kind\":\"admin\""))
        .map(|l| serde_json::from_str(&l).unwrap())
        .collect();
    let rec = admin
        .iter()
        .find(|r| {
            r["action"] == format!("POST /v1/grants/{}/acct/clearing", s.app_id)
                && r["status"] == 200
        })
        .expect("the clearing approval is recorded");
    assert_eq!(rec["before"]["clearing"], false, "{rec}");
    assert_eq!(rec["after"]["clearing"], true, "{rec}");

    let (st, _) = h
        .admin(
            "POST",
            &format!("/v1/grants/{}/acct/clearing", s.app_id),
            Some(json!({"clearing": false})),
        )
        .await;
    assert_eq!(st, 200);
    let r = s.client.call("GET", "/v1/acct/pii", None).await.unwrap();
    masked(&body(&r));
}

/// LVL-5: `menshen api import openapi.yaml` creates the document's APIs
/// with their schemas, and the gateway enforces them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lvl_5_cli_imports_an_openapi_document_and_the_schema_is_enforced() {
    let s = setup().await;
    let h = &s.h;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.yaml");
    std::fs::write(
        &file,
        r#"openapi: 3.0.3
info: {title: products, version: "1.0"}
paths:
  /v1/imported/products:
    get:
      operationId: imported-products
      summary: Product list
      x-menshen-screening: block
      parameters:
        - {name: q, in: query, schema: {type: string, maxLength: 32}}
        - {name: page, in: query, required: true, schema: {type: integer, minimum: 1}}
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema: {type: object, required: [ok], properties: {ok: {type: boolean}}}
  /v1/imported/pii:
    get:
      operationId: imported-holder
      summary: Holder
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema: {type: object, required: [holder], properties: {holder: {type: integer}}}
"#,
    )
    .unwrap();
    let (url, token) = (h.admin_url.clone(), h.admin_token.clone());
    let up = h.upstream_url.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_menshen"))
            .args(["api", "import"])
            .arg(&file)
            .args(["--upstream", &up, "--category", "3"])
            .env("MENSHEN_ADMIN_URL", url)
            .env("MENSHEN_ADMIN_TOKEN", token)
            .env_remove("MENSHEN_ADMIN_TOKEN_FILE")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("imported-products"));
    h.grant(&s.app_id, "imported-products").await;
    h.grant(&s.app_id, "imported-holder").await;
    let r = s
        .client
        .call("GET", "/v1/imported/products?q=bond", None)
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(body(&r)["pointer"], "/query/page");
    let r = s
        .client
        .call(
            "GET",
            &format!("/v1/imported/products?page=1&q={}", enc("' OR 1=1--")),
            None,
        )
        .await
        .unwrap();
    assert_eq!(body(&r)["code"], "SUSPICIOUS_INPUT");
    let r = s
        .client
        .call("GET", "/v1/imported/products?page=1&q=bond", None)
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(h.upstream.count(), 1);
    // The 200 answer's schema was imported too: the recording upstream's
    // holder is a string, the document says integer.
    let r = s
        .client
        .call("GET", "/v1/imported/pii", None)
        .await
        .unwrap();
    assert_eq!(r.status, 502);
    assert_eq!(body(&r)["code"], "UPSTREAM_RESPONSE_INVALID");
    assert_eq!(h.upstream.count(), 2);
}
