//! A1 calls end to end: a real gateway over TLS on 127.0.0.1, a real upstream,
//! the SDK signing. Every refusal is checked for its documented code, for the
//! upstream not being called, and for its access record.

mod common;

use bytes::Bytes;
use common::{setup, setup_with, HarnessOptions, Setup};
use menshen_audit::Outcome;
use menshen_sdk::{Response, SignOptions};
use serde_json::json;

/// Send `req`, expect a refusal with `code`, no upstream call, and an access
/// record carrying the same code and txn_id.
async fn refused(s: &Setup, req: http::Request<Bytes>, status: u16, code: &str) -> Response {
    let before = s.h.upstream.count();
    let r = s.client.send(req).await.unwrap();
    let body = r
        .error()
        .unwrap_or_else(|| panic!("no error body: {} {:?}", r.status, r.body));
    assert_eq!((r.status, body.code.as_str()), (status, code), "{body:?}");
    assert_eq!(s.h.upstream.count(), before, "upstream must not be called");
    assert_eq!(r.txn_id(), Some(body.txn_id.as_str()));
    assert!(r.headers.get("server").is_none());
    let rec = s.h.record(&body.txn_id).await;
    assert_eq!(rec.code.as_deref(), Some(code));
    assert_eq!(rec.status, status);
    assert_eq!(rec.result, Outcome::Failure);
    r
}

fn signed(s: &Setup, method: &str, pq: &str, body: Option<&str>) -> http::Request<Bytes> {
    let mut req = s
        .client
        .request(method, pq, body.map(|b| b.as_bytes().to_vec()))
        .unwrap();
    s.client.sign(&mut req, None).unwrap();
    req
}

fn swap_uri(req: &mut http::Request<Bytes>, pq: &str) {
    let u = req.uri().clone();
    *req.uri_mut() = format!(
        "{}://{}{}",
        u.scheme_str().unwrap(),
        u.authority().unwrap(),
        pq
    )
    .parse()
    .unwrap();
}

#[tokio::test]
async fn auth_1_int_1_signed_a1_call_succeeds_and_upstream_sees_verified_app() {
    let s = setup().await;
    let mut req = signed(
        &s,
        "POST",
        "/v1/orders?channel=web",
        Some(r#"{"amount":"10.00"}"#),
    );
    // A forged copy of a gateway header must never reach the upstream.
    req.headers_mut()
        .insert("x-menshen-app-id", "app_forged".parse().unwrap());
    let r = s.client.send(req).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(
        r.headers.get("server").is_none(),
        "CONF-5: no Server header"
    );
    let seen = s.h.upstream.last();
    assert_eq!(seen.uri, "/v1/orders?channel=web");
    assert_eq!(seen.body.as_ref(), br#"{"amount":"10.00"}"#);
    assert_eq!(seen.headers["x-menshen-app-id"], s.app_id.as_str());
    assert_eq!(seen.headers["x-menshen-api-id"], "orders");
    assert_eq!(seen.headers.get_all("x-menshen-app-id").iter().count(), 1);
    let txn = r.txn_id().unwrap().to_string();
    assert_eq!(seen.headers["x-menshen-txn-id"], txn.as_str());
    assert!(seen.headers.get("signature").is_none());
    // AUD-1: the access record.
    let rec = s.h.record(&txn).await;
    assert_eq!(rec.app_id.as_deref(), Some(s.app_id.as_str()));
    assert!(rec.app_verified);
    assert_eq!(rec.api_id.as_deref(), Some("orders"));
    assert!(rec.u_api_id.as_deref().unwrap().starts_with("0PC1030501"));
    assert_eq!((rec.status, rec.result), (200, Outcome::Success));
    assert_eq!(rec.client_ip, "127.0.0.1");
    assert!(!rec.timestamp.is_empty());
    // The same works with HMAC-SHA256 and a SHA-256 digest.
    let c2 = menshen_sdk::Client::builder(&s.h.gateway_url)
        .unwrap()
        .ca_pem(&s.h.ca_pem)
        .credentials(menshen_sdk::Credentials::hmac_sha256(
            &s.app_id,
            s.secret.as_bytes().to_vec(),
        ))
        .digest(menshen_crypto::DigestAlg::Sha256)
        .build()
        .unwrap();
    let r = c2
        .call("POST", "/v1/orders", Some(b"{}".to_vec()))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn int_1_missing_signature_refused() {
    let s = setup().await;
    let req = s.client.request("GET", "/v1/items/1", None).unwrap();
    refused(&s, req, 401, "MISSING_SIGNATURE").await;
}

#[tokio::test]
async fn auth_1_wrong_secret_refused() {
    let s = setup().await;
    let bad = s.h.client(&s.app_id, "not-the-secret");
    let mut req = bad.request("GET", "/v1/items/1", None).unwrap();
    bad.sign(&mut req, None).unwrap();
    refused(&s, req, 401, "INVALID_SIGNATURE").await;
}

#[tokio::test]
async fn auth_1_unknown_app_id_refused() {
    let s = setup().await;
    let ghost = s.h.client("app_doesnotexist", &s.secret);
    let mut req = ghost.request("GET", "/v1/items/1", None).unwrap();
    ghost.sign(&mut req, None).unwrap();
    let r = refused(&s, req, 401, "INVALID_SIGNATURE").await;
    let rec = s.h.record(r.txn_id().unwrap()).await;
    assert_eq!(rec.app_id.as_deref(), Some("app_doesnotexist"));
    assert!(!rec.app_verified, "an unverified App_ID is marked as such");
}

#[tokio::test]
async fn int_1_body_changed_after_signing_refused() {
    let s = setup().await;
    let mut req = signed(&s, "POST", "/v1/orders", Some(r#"{"amount":"10.00"}"#));
    *req.body_mut() = Bytes::from_static(br#"{"amount":"99999.00"}"#);
    refused(&s, req, 401, "DIGEST_MISMATCH").await;
    // Body and digest both replaced: the signature over the digest fails.
    let mut req = signed(&s, "POST", "/v1/orders", Some(r#"{"amount":"10.00"}"#));
    let evil = br#"{"amount":"99999.00"}"#;
    *req.body_mut() = Bytes::from_static(evil);
    let cd = menshen_protocol::content_digest(menshen_crypto::DigestAlg::Sm3, evil);
    req.headers_mut()
        .insert("content-digest", cd.parse().unwrap());
    refused(&s, req, 401, "INVALID_SIGNATURE").await;
}

#[tokio::test]
async fn int_1_path_or_query_changed_refused() {
    let s = setup().await;
    let mut req = signed(&s, "GET", "/v1/items/1", None);
    swap_uri(&mut req, "/v1/items/2");
    refused(&s, req, 401, "INVALID_SIGNATURE").await;
    let mut req = signed(&s, "GET", "/v1/items/1?limit=10", None);
    swap_uri(&mut req, "/v1/items/1?limit=1000");
    refused(&s, req, 401, "INVALID_SIGNATURE").await;
    // A query added to a request signed without one is not covered at all.
    let mut req = signed(&s, "GET", "/v1/items/1", None);
    swap_uri(&mut req, "/v1/items/1?admin=true");
    refused(&s, req, 400, "MALFORMED_SIGNATURE").await;
    // The signed App_ID header cannot be changed either.
    let mut req = signed(&s, "GET", "/v1/items/1", None);
    req.headers_mut()
        .insert("x-app-id", "app_other".parse().unwrap());
    refused(&s, req, 400, "MALFORMED_SIGNATURE").await;
}

#[tokio::test]
async fn int_4_created_outside_window_refused() {
    let s = setup().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for created in [now - 301, now + 301] {
        let mut req = s.client.request("GET", "/v1/items/1", None).unwrap();
        s.client
            .sign(
                &mut req,
                Some(&SignOptions {
                    created: Some(created),
                    ..Default::default()
                }),
            )
            .unwrap();
        refused(&s, req, 401, "STALE_TIMESTAMP").await;
    }
    // Inside the window is fine.
    let mut req = s.client.request("GET", "/v1/items/1", None).unwrap();
    s.client
        .sign(
            &mut req,
            Some(&SignOptions {
                created: Some(now - 200),
                ..Default::default()
            }),
        )
        .unwrap();
    assert_eq!(s.client.send(req).await.unwrap().status, 200);
}

#[tokio::test]
async fn int_4_replayed_nonce_refused() {
    let s = setup().await;
    let req = signed(&s, "POST", "/v1/orders", Some(r#"{"amount":"1.00"}"#));
    let again = req.clone();
    assert_eq!(s.client.send(req).await.unwrap().status, 200);
    refused(&s, again, 401, "REPLAYED_REQUEST").await;
    // The same nonce with a fresh signature is a replay too.
    let opts = SignOptions {
        nonce: Some("fixed-nonce-0123456789".into()),
        ..Default::default()
    };
    let mut a = s.client.request("GET", "/v1/items/1", None).unwrap();
    s.client.sign(&mut a, Some(&opts)).unwrap();
    assert_eq!(s.client.send(a).await.unwrap().status, 200);
    let mut b = s.client.request("GET", "/v1/items/2", None).unwrap();
    s.client.sign(&mut b, Some(&opts)).unwrap();
    refused(&s, b, 401, "REPLAYED_REQUEST").await;
}

#[tokio::test]
async fn auth_4_suspended_app_refused_at_once_and_resume_restores() {
    let s = setup().await;
    assert_eq!(
        s.client
            .call("GET", "/v1/items/1", None)
            .await
            .unwrap()
            .status,
        200
    );
    let (st, v) =
        s.h.admin("POST", &format!("/v1/apps/{}/suspend", s.app_id), None)
            .await;
    assert_eq!((st, v["status"].as_str()), (200, Some("suspended")));
    // No restart, no sleep: the very next call is refused.
    refused(
        &s,
        signed(&s, "GET", "/v1/items/1", None),
        403,
        "APP_NOT_ACTIVE",
    )
    .await;
    let (st, _) =
        s.h.admin("POST", &format!("/v1/apps/{}/resume", s.app_id), None)
            .await;
    assert_eq!(st, 200);
    assert_eq!(
        s.client
            .call("GET", "/v1/items/1", None)
            .await
            .unwrap()
            .status,
        200
    );
    // Blacklisted (TRF-3: only through its own route, with a reason) is
    // refused the same way.
    let (st, v) =
        s.h.admin(
            "POST",
            &format!("/v1/apps/{}/blacklist", s.app_id),
            Some(json!({"reason": "risk control"})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    refused(
        &s,
        signed(&s, "GET", "/v1/items/1", None),
        403,
        "APP_NOT_ACTIVE",
    )
    .await;
}

#[tokio::test]
async fn onb_3_no_grant_refused() {
    let s = setup().await;
    s.h.api("secret-stuff", "GET", "/v1/stuff", "A1").await;
    refused(&s, signed(&s, "GET", "/v1/stuff", None), 403, "NOT_GRANTED").await;
    // Removing a grant takes effect at once.
    let (st, _) =
        s.h.admin("DELETE", &format!("/v1/grants/{}/items", s.app_id), None)
            .await;
    assert_eq!(st, 204);
    refused(
        &s,
        signed(&s, "GET", "/v1/items/1", None),
        403,
        "NOT_GRANTED",
    )
    .await;
}

#[tokio::test]
async fn auth_5_global_blocklist_and_spoofed_xff() {
    let s = setup().await;
    let (st, _) =
        s.h.admin(
            "POST",
            "/v1/ip-rules",
            Some(json!({"action": "deny", "cidr": "127.0.0.0/8"})),
        )
        .await;
    assert_eq!(st, 201);
    refused(
        &s,
        signed(&s, "GET", "/v1/items/1", None),
        403,
        "IP_FORBIDDEN",
    )
    .await;
    // An untrusted peer naming an allowed address changes nothing.
    let mut req = signed(&s, "GET", "/v1/items/1", None);
    req.headers_mut()
        .insert("x-forwarded-for", "203.0.113.10".parse().unwrap());
    let r = refused(&s, req, 403, "IP_FORBIDDEN").await;
    assert_eq!(s.h.record(r.txn_id().unwrap()).await.client_ip, "127.0.0.1");
    // Blocked addresses are refused before routing: unknown paths too.
    refused(
        &s,
        s.client.request("GET", "/nope", None).unwrap(),
        403,
        "IP_FORBIDDEN",
    )
    .await;
}

#[tokio::test]
async fn auth_5_app_allowlist_and_blocklist() {
    let s = setup().await;
    let (st, v) =
        s.h.admin(
            "POST",
            "/v1/ip-rules",
            Some(json!({"app_id": s.app_id, "action": "allow", "cidr": "10.0.0.0/8"})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let mut req = signed(&s, "GET", "/v1/items/1", None);
    req.headers_mut()
        .insert("x-forwarded-for", "10.1.2.3".parse().unwrap());
    refused(&s, req, 403, "IP_FORBIDDEN").await;
    // Allow loopback (IPv6 form too), then the app's own blocklist wins over it.
    let (st, v) =
        s.h.admin(
            "POST",
            "/v1/ip-rules",
            Some(json!({"app_id": s.app_id, "action": "allow", "cidr": "127.0.0.1"})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(
        s.client
            .call("GET", "/v1/items/1", None)
            .await
            .unwrap()
            .status,
        200
    );
    let (st, _) =
        s.h.admin(
            "POST",
            "/v1/ip-rules",
            Some(json!({"app_id": s.app_id, "action": "deny", "cidr": "127.0.0.0/24"})),
        )
        .await;
    assert_eq!(st, 201);
    refused(
        &s,
        signed(&s, "GET", "/v1/items/1", None),
        403,
        "IP_FORBIDDEN",
    )
    .await;
}

#[tokio::test]
async fn auth_5_trusted_proxy_xff_is_believed() {
    let s = setup_with(HarnessOptions {
        trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
        ..Default::default()
    })
    .await;
    s.h.admin(
        "POST",
        "/v1/ip-rules",
        Some(json!({"action": "deny", "cidr": "198.51.100.0/24"})),
    )
    .await;
    let mut req = signed(&s, "GET", "/v1/items/1", None);
    req.headers_mut()
        .insert("x-forwarded-for", "198.51.100.7".parse().unwrap());
    refused(&s, req, 403, "IP_FORBIDDEN").await;
    let mut req = signed(&s, "GET", "/v1/items/1", None);
    req.headers_mut()
        .insert("x-forwarded-for", "203.0.113.5".parse().unwrap());
    let r = s.client.send(req).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        s.h.record(r.txn_id().unwrap()).await.client_ip,
        "203.0.113.5"
    );
}

#[tokio::test]
async fn chg_2_terminated_api_answers_tombstone() {
    let s = setup().await;
    let (st, v) =
        s.h.admin(
            "POST",
            "/v1/apis/items/lifecycle",
            Some(json!({"state": "terminated"})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let r = refused(
        &s,
        signed(&s, "GET", "/v1/items/1", None),
        410,
        "SERVICE_TERMINATED",
    )
    .await;
    assert!(r.error().unwrap().message.contains("service terminated"));
    // Offline: the API is gone entirely.
    s.h.admin(
        "POST",
        "/v1/apis/items/lifecycle",
        Some(json!({"state": "offline"})),
    )
    .await;
    refused(&s, signed(&s, "GET", "/v1/items/1", None), 404, "NOT_FOUND").await;
}

#[tokio::test]
async fn conf_5_unknown_route_and_oversized_body() {
    let s = setup().await;
    refused(&s, signed(&s, "GET", "/v1/unknown", None), 404, "NOT_FOUND").await;
    let big = "x".repeat(70 * 1024);
    refused(
        &s,
        signed(&s, "POST", "/v1/orders", Some(&big)),
        413,
        "PAYLOAD_TOO_LARGE",
    )
    .await;
}

#[tokio::test]
async fn conf_5_upstream_failure_reveals_nothing() {
    let s = setup().await;
    s.h.api("failing", "GET", "/v1/fail", "A1").await;
    s.h.grant(&s.app_id, "failing").await;
    let r = s.client.call("GET", "/v1/fail", None).await.unwrap();
    assert_eq!(r.status, 502);
    assert_eq!(r.error().unwrap().code, "UPSTREAM_UNAVAILABLE");
    let text = String::from_utf8_lossy(&r.body);
    for leak in ["ORA-", "SQLException", "bank.internal", "Apache", "Servlet"] {
        assert!(!text.contains(leak), "{leak} leaked: {text}");
    }
    assert!(r.headers.get("server").is_none() && r.headers.get("x-powered-by").is_none());
    let rec = s.h.record(r.txn_id().unwrap()).await;
    assert_eq!(rec.result, Outcome::Failure);
    assert_eq!(s.h.upstream.count(), 1, "the upstream was called once");
}

#[tokio::test]
async fn aud_1_upstream_timeout_is_unknown_outcome() {
    let s = setup().await;
    s.h.api("slow", "GET", "/v1/slow", "A1").await;
    s.h.grant(&s.app_id, "slow").await;
    let r = s.client.call("GET", "/v1/slow", None).await.unwrap();
    assert_eq!(r.status, 504);
    assert_eq!(r.error().unwrap().code, "UPSTREAM_TIMEOUT");
    let rec = s.h.record(r.txn_id().unwrap()).await;
    assert_eq!(rec.result, Outcome::Unknown);
}

#[tokio::test]
async fn lvl_3_lvl_4_level_and_client_kind() {
    let s = setup().await;
    // A2 with only an App_Secret is refused (AUTH-2, LVL-3).
    s.h.api("balance", "GET", "/v1/accounts/{id}/balance", "A2")
        .await;
    // The admin API refuses this grant (a2_call.rs); an older grant made
    // behind its back must still not let a MAC-only call through.
    s.h.node()
        .cp
        .store
        .add_grant(&s.app_id, "balance")
        .await
        .unwrap();
    s.h.node()
        .gateway
        .snapshot
        .refresh(&s.h.node().cp)
        .await
        .unwrap();
    refused(
        &s,
        signed(&s, "GET", "/v1/accounts/6222020200112233445/balance", None),
        403,
        "INSUFFICIENT_AUTHENTICATION",
    )
    .await;
    let rec = s.h.records().await.pop().unwrap();
    assert!(
        !rec.path.contains("6222020200112233445"),
        "AUD-5: card number masked in the record"
    );
    // A mobile app may call A1 APIs offered for mobile integration only.
    let (mobile, msecret) = s.h.app("Mobile App", "mobile").await;
    s.h.grant(&mobile, "items").await;
    let mc = s.h.client(&mobile, &msecret);
    assert_eq!(
        mc.call("GET", "/v1/items/1", None).await.unwrap().status,
        200
    );
    s.h.api("server-only", "GET", "/v1/server-only", "A1").await;
    let (st, v) = s
        .h
        .admin("POST", "/v1/apis", Some(json!({"api_id": "srv2", "method": "GET", "path": "/v1/srv2", "upstream": s.h.upstream_url, "level": "A1", "category": 3, "subcategory": 1})))
        .await;
    assert_eq!(st, 201, "{v}");
    s.h.grant(&mobile, "srv2").await;
    let mut req = mc.request("GET", "/v1/srv2", None).unwrap();
    mc.sign(&mut req, None).unwrap();
    refused(&s, req, 403, "CLIENT_KIND_NOT_ALLOWED").await;
}

#[tokio::test]
async fn auth_3_secret_rotation_with_and_without_grace() {
    let s = setup().await;
    let (st, v) =
        s.h.admin(
            "POST",
            &format!("/v1/apps/{}/secret-rotate", s.app_id),
            Some(json!({"grace_seconds": 60})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let new_secret = v["app_secret"].as_str().unwrap().to_string();
    // Both work during the overlap.
    assert_eq!(
        s.client
            .call("GET", "/v1/items/1", None)
            .await
            .unwrap()
            .status,
        200
    );
    let c2 = s.h.client(&s.app_id, &new_secret);
    assert_eq!(
        c2.call("GET", "/v1/items/1", None).await.unwrap().status,
        200
    );
    // Rotating again without grace voids both older secrets at once.
    let (_, v) =
        s.h.admin(
            "POST",
            &format!("/v1/apps/{}/secret-rotate", s.app_id),
            None,
        )
        .await;
    let newest = v["app_secret"].as_str().unwrap().to_string();
    refused(
        &s,
        signed(&s, "GET", "/v1/items/1", None),
        401,
        "INVALID_SIGNATURE",
    )
    .await;
    let mut req = c2.request("GET", "/v1/items/1", None).unwrap();
    c2.sign(&mut req, None).unwrap();
    refused(&s, req, 401, "INVALID_SIGNATURE").await;
    assert_eq!(
        s.h.client(&s.app_id, &newest)
            .call("GET", "/v1/items/1", None)
            .await
            .unwrap()
            .status,
        200
    );
    // The secret never appears in the access log or the store files in clear.
    s.h.records().await;
    for e in walk(&s.h.data_dir()) {
        let data = std::fs::read(&e).unwrap();
        for secret in [&s.secret, &new_secret, &newest] {
            assert!(
                !data.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "secret in clear in {}",
                e.display()
            );
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
