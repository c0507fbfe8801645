//! CONF-1 and CONF-3 from a hostile (or merely careless) upstream's side:
//! the response-phase stages `mask` and `encrypt` must never let an answer
//! through unmasked or unencrypted because they could not read it. An
//! answer labelled JSON (or shaped like it) that does not parse, for
//! instance because one string holds a lone UTF-16 surrogate escape
//! (`"\ud800"`, which a customer's memo stored by the bank can carry into
//! every later answer that lists it) or because it nests deeper than the
//! parser's limit, is withheld: 502 `UPSTREAM_RESPONSE_INVALID` with the
//! documented error body, outcome `unknown` in its record, and nothing of
//! the listed fields in clear. The same fields in a readable answer are
//! sealed or masked (positive control). And once `mask` or `encrypt`
//! replaced the body, no header bound to the clear body (`ETag`, digests)
//! is passed on. All on 127.0.0.1.

mod common;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::get;
use common::*;
use menshen_crypto::Sm2DecryptionKey;
use serde_json::{json, Value};

const ACCOUNT: &str = "6217000010001234567";
const HOLDER: &str = "王芳";

/// An upstream answering each path with a fixed answer holding an account
/// number and a name: readable (`ok`), with a lone surrogate escape in
/// another member (`surrogate`), or with a member nested beyond the
/// parser's limit (`deep`).
async fn upstream() -> String {
    fn answer(body: Vec<u8>) -> (StatusCode, HeaderMap, Vec<u8>) {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("application/json"));
        (StatusCode::OK, h, body)
    }
    let head = format!(r#"{{"account":"{ACCOUNT}","holder":"{HOLDER}""#);
    let ok = format!("{head}}}").into_bytes();
    let surrogate = format!(r#"{head},"memo":"\ud800"}}"#).into_bytes();
    let deep = format!(r#"{head},"x":{}{}}}"#, "[".repeat(200), "]".repeat(200)).into_bytes();
    let mut app = axum::Router::new();
    for prefix in ["enc", "mask"] {
        for (name, body) in [
            ("ok", ok.clone()),
            ("surrogate", surrogate.clone()),
            ("deep", deep.clone()),
        ] {
            app = app.route(
                &format!("/v1/{prefix}/{name}"),
                get(move || {
                    let b = body.clone();
                    async move { answer(b) }
                }),
            );
        }
    }
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    url
}

/// CONF-1, CONF-3: an answer `encrypt` or `mask` cannot read is withheld
/// (502 `UPSTREAM_RESPONSE_INVALID`, outcome unknown, recorded), never
/// passed on with the API's listed fields in clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conf_1_conf_3_an_answer_the_response_stages_cannot_read_is_withheld_not_sent_in_clear() {
    let s = setup().await;
    let h = &s.h;
    let up = upstream().await;
    // The app's encryption key (the answers' listed field is sealed for it).
    let (app_enc, _) = Sm2DecryptionKey::generate().unwrap();
    let enc_pub = menshen_crypto::PublicKey::from_spki_der(&app_enc.public_key().spki_der())
        .unwrap()
        .to_pem();
    let (st, v) = h
        .admin(
            "POST",
            &format!("/v1/apps/{}/encryption-keys", s.app_id),
            Some(json!({"public_key_pem": enc_pub})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    for name in ["ok", "surrogate", "deep"] {
        for (prefix, controls) in [
            (
                "enc",
                json!({"envelope": {"request": [], "response": ["/account", "/holder"]}}),
            ),
            (
                "mask",
                json!({"response_mask": {"detect": false, "fields": [
                    {"pointer": "/account", "kind": "account"},
                    {"pointer": "/holder", "kind": "name"}]}}),
            ),
        ] {
            let api_id = format!("{prefix}-{name}");
            let (st, r) = h
                .admin(
                    "POST",
                    "/v1/apis",
                    Some(json!({"api_id": api_id, "method": "GET",
                        "path": format!("/v1/{prefix}/{name}"), "upstream": up.clone(),
                        "level": "A1", "category": 3, "subcategory": 1,
                        "controls": controls})),
                )
                .await;
            assert_eq!(st, 201, "{r}");
            h.grant(&s.app_id, &api_id).await;
        }
    }

    // Positive control: a readable answer has its fields sealed or masked.
    let r = s.client.call("GET", "/v1/enc/ok", None).await.unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert!(v["account"].as_str().unwrap().starts_with("SM4GCM."), "{v}");
    let r = s.client.call("GET", "/v1/mask/ok", None).await.unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["account"], "621700*********4567", "{v}");
    assert_eq!(v["holder"], "王*", "{v}");

    // Unreadable answers: withheld, recorded, never in clear.
    for path in [
        "/v1/enc/surrogate",
        "/v1/enc/deep",
        "/v1/mask/surrogate",
        "/v1/mask/deep",
    ] {
        let r = s.client.call("GET", path, None).await.unwrap();
        let text = String::from_utf8_lossy(&r.body).to_string();
        assert!(
            !text.contains(ACCOUNT) && !text.contains(HOLDER),
            "{path}: listed fields reached the app in clear: {text}"
        );
        let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        assert_eq!(
            (r.status, v["code"].as_str()),
            (502, Some("UPSTREAM_RESPONSE_INVALID")),
            "{path}: {text}"
        );
        let rec = h.record(v["txn_id"].as_str().unwrap()).await;
        assert_eq!(
            rec.code.as_deref(),
            Some("UPSTREAM_RESPONSE_INVALID"),
            "{path}"
        );
        assert_eq!(rec.result, menshen_audit::Outcome::Unknown, "{path}");
        assert_eq!(rec.status, 502, "{path}");
    }
}

/// An upstream whose answer carries headers bound to its clear body: an
/// `ETag` (an MD5 of the body, as many frameworks make it) and digests.
async fn tagging_upstream() -> String {
    let body = format!(r#"{{"account":"{ACCOUNT}","holder":"{HOLDER}"}}"#).into_bytes();
    let digest = menshen_protocol::content_digest(menshen_crypto::DigestAlg::Sm3, &body);
    let handler = move || {
        let (b, d) = (body.clone(), digest.clone());
        async move {
            let mut h = HeaderMap::new();
            h.insert("content-type", HeaderValue::from_static("application/json"));
            h.insert(
                "etag",
                HeaderValue::from_static("\"9e107d9d372bb6826bd81d3542a419d6\""),
            );
            for name in ["content-digest", "repr-digest", "digest", "content-md5"] {
                h.insert(name, HeaderValue::from_str(&d).unwrap());
            }
            (StatusCode::OK, h, b)
        }
    };
    let app = axum::Router::new()
        .route("/v1/tag/plain", get(handler.clone()))
        .route("/v1/tag/enc", get(handler.clone()))
        .route("/v1/tag/mask", get(handler));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    url
}

/// CONF-1, CONF-3: when `mask` or `encrypt` replaced the upstream's body,
/// the headers bound to the clear body (`ETag`, which is in the default
/// response allowlist, and the digests an API may let through) are not
/// passed on: a hash of the clear answer would let whoever holds the answer
/// confirm guesses of the masked or sealed values offline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conf_1_conf_3_no_hash_of_the_clear_answer_reaches_the_app_after_masking_or_sealing() {
    let s = setup().await;
    let h = &s.h;
    let up = tagging_upstream().await;
    let (app_enc, _) = Sm2DecryptionKey::generate().unwrap();
    let enc_pub = menshen_crypto::PublicKey::from_spki_der(&app_enc.public_key().spki_der())
        .unwrap()
        .to_pem();
    let (st, v) = h
        .admin(
            "POST",
            &format!("/v1/apps/{}/encryption-keys", s.app_id),
            Some(json!({"public_key_pem": enc_pub})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let extra = json!(["content-digest", "repr-digest", "digest", "content-md5"]);
    for (name, mut controls) in [
        ("plain", json!({})),
        (
            "enc",
            json!({"envelope": {"request": [], "response": ["/account", "/holder"]}}),
        ),
        (
            "mask",
            json!({"response_mask": {"detect": false, "fields": [
                {"pointer": "/account", "kind": "account"},
                {"pointer": "/holder", "kind": "name"}]}}),
        ),
    ] {
        controls["forward_response_headers"] = extra.clone();
        let (st, r) = h
            .admin(
                "POST",
                "/v1/apis",
                Some(json!({"api_id": format!("tag-{name}"), "method": "GET",
                    "path": format!("/v1/tag/{name}"), "upstream": up.clone(),
                    "level": "A1", "category": 3, "subcategory": 1,
                    "controls": controls})),
            )
            .await;
        assert_eq!(st, 201, "{r}");
        h.grant(&s.app_id, &format!("tag-{name}")).await;
    }
    // Positive control: an answer passed as it is keeps them.
    let r = s.client.call("GET", "/v1/tag/plain", None).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(r.headers.contains_key("etag"), "{:?}", r.headers);
    assert!(r.headers.contains_key("content-md5"), "{:?}", r.headers);

    for path in ["/v1/tag/enc", "/v1/tag/mask"] {
        let r = s.client.call("GET", path, None).await.unwrap();
        assert_eq!(
            r.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let text = String::from_utf8_lossy(&r.body);
        assert!(!text.contains(ACCOUNT), "{path}: {text}");
        for name in ["etag", "repr-digest", "digest", "content-md5"] {
            assert!(
                !r.headers.contains_key(name),
                "{path}: {name} passed: {:?}",
                r.headers
            );
        }
        // A Content-Digest, if any, is the gateway's, of what the app got.
        if let Some(cd) = r.headers.get("content-digest") {
            assert_eq!(
                cd.to_str().unwrap(),
                menshen_protocol::content_digest(menshen_crypto::DigestAlg::Sm3, &r.body),
                "{path}"
            );
        }
    }
}
