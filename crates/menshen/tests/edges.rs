//! Headers at the edges (CONF-5, issue 9) and IPv4-mapped addresses (AUTH-5):
//! an upstream that records what it receives and sends back what it must not.

mod common;

use std::time::Duration;

use common::{h1_head, raw_tls, read_h1_response, setup, signed};
use serde_json::json;
use tokio::io::AsyncWriteExt;

const SPOOFED: &[(&str, &str)] = &[
    ("forwarded", "for=10.9.9.9;host=core.bank.internal"),
    ("x-forwarded-for", "10.9.9.9"),
    ("x-real-ip", "10.9.9.9"),
    ("x-client-ip", "10.9.9.9"),
    ("true-client-ip", "10.9.9.9"),
    ("x-forwarded-host", "core.bank.internal"),
    ("x-original-url", "/admin/delete"),
    ("x-rewrite-url", "/admin/delete"),
    ("x-http-method-override", "DELETE"),
    ("authorization", "Basic YWRtaW46YWRtaW4="),
    ("cookie", "session=stolen"),
    ("x-menshen-app-id", "app_forged"),
];

#[tokio::test]
async fn conf_5_client_routing_and_credential_headers_never_reach_the_upstream() {
    let s = setup().await;
    let mut req = signed(&s, "POST", "/v1/orders", Some(br#"{"amount":"1.00"}"#));
    for (k, v) in SPOOFED {
        req.headers_mut().insert(*k, v.parse().unwrap());
    }
    req.headers_mut()
        .insert("x-request-id", "req-42".parse().unwrap());
    let r = s.client.send(req).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    let seen = s.h.upstream.last();
    for (k, v) in SPOOFED {
        if let Some(got) = seen.headers.get(*k) {
            assert_ne!(
                got.to_str().unwrap(),
                *v,
                "client's {k} reached the upstream"
            );
        }
    }
    // The gateway's own forwarding headers, from the verified peer.
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "https");
    assert_eq!(seen.headers["forwarded"], "for=127.0.0.1;proto=https");
    assert_eq!(seen.headers["x-menshen-app-id"], s.app_id.as_str());
    // Allowed headers pass.
    assert_eq!(seen.headers["x-request-id"], "req-42");
    assert_eq!(seen.headers["content-type"], "application/json");
}

#[tokio::test]
async fn conf_5_content_length_is_regenerated_and_ambiguous_heads_are_refused() {
    let s = setup().await;
    let body = br#"{"a":"1.0"}"#; // 11 bytes
    let req = signed(&s, "POST", "/v1/orders", Some(body));
    let mut head = String::from_utf8(h1_head(&req, None)).unwrap();
    head.insert_str(head.len() - 2, "content-length: 011\r\n");
    let mut c = raw_tls(&s.h, false).await;
    c.write_all(head.as_bytes()).await.unwrap();
    c.write_all(body).await.unwrap();
    let (status, text) = read_h1_response(&mut c, Duration::from_secs(5))
        .await
        .expect("answer");
    assert_eq!(status, 200, "{text}");
    assert_eq!(s.h.upstream.last().headers["content-length"], "11");

    // Two Host headers: refused, upstream not called, recorded.
    let before = s.h.upstream.count();
    let req = signed(&s, "GET", "/v1/items/1", None);
    let mut head = String::from_utf8(h1_head(&req, None)).unwrap();
    head.insert_str(head.len() - 2, "host: evil.example\r\n");
    let mut c = raw_tls(&s.h, false).await;
    c.write_all(head.as_bytes()).await.unwrap();
    let (status, text) = read_h1_response(&mut c, Duration::from_secs(5))
        .await
        .expect("answer");
    assert_eq!(status, 400, "{text}");
    let e: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(e["code"], "BAD_REQUEST");
    assert_eq!(s.h.upstream.count(), before);
    let rec = s.h.record(e["txn_id"].as_str().unwrap()).await;
    assert_eq!(rec.code.as_deref(), Some("BAD_REQUEST"));
}

#[tokio::test]
async fn conf_5_only_allowed_upstream_response_headers_reach_the_app() {
    let s = setup().await;
    s.h.api("leaky", "GET", "/v1/leaky", "A1").await;
    s.h.grant(&s.app_id, "leaky").await;
    let r = s.client.call("GET", "/v1/leaky", None).await.unwrap();
    assert_eq!(r.status, 200);
    for h in [
        "set-cookie",
        "x-backend-host",
        "x-internal-trace",
        "server",
        "x-rate-info",
    ] {
        assert!(r.headers.get(h).is_none(), "{h} reached the app");
    }
    assert_eq!(r.headers["etag"], "\"v1\"");
    assert_eq!(r.headers["content-type"], "application/json");
}

#[tokio::test]
async fn conf_5_an_api_can_let_more_headers_through_but_never_credentials() {
    let s = setup().await;
    let (st, v) =
        s.h.admin(
            "POST",
            "/v1/apis",
            Some(json!({"api_id": "traced", "method": "GET", "path": "/v1/leaky", "upstream": s.h.upstream_url,
                "level": "A1", "category": 3, "subcategory": 1,
                "controls": {"forward_request_headers": ["X-Trace"], "forward_response_headers": ["x-rate-info"]}})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    s.h.grant(&s.app_id, "traced").await;
    let mut req = signed(&s, "GET", "/v1/leaky", None);
    req.headers_mut().insert("x-trace", "t-1".parse().unwrap());
    req.headers_mut()
        .insert("x-other", "not-listed".parse().unwrap());
    let r = s.client.send(req).await.unwrap();
    assert_eq!(r.status, 200);
    let seen = s.h.upstream.last();
    assert_eq!(seen.headers["x-trace"], "t-1");
    assert!(seen.headers.get("x-other").is_none());
    assert_eq!(r.headers["x-rate-info"], "7");
    assert!(r.headers.get("set-cookie").is_none());
    // Credentials and cookies can never be allowed.
    for bad in [
        "cookie",
        "authorization",
        "x-forwarded-for",
        "x-menshen-app-id",
    ] {
        let (st, v) =
            s.h.admin(
                "POST",
                "/v1/apis",
                Some(json!({"api_id": format!("bad-{}", bad.len()), "method": "GET", "path": "/v1/bad", "upstream": s.h.upstream_url,
                    "level": "A1", "category": 3, "subcategory": 1,
                    "controls": {"forward_request_headers": [bad]}})),
            )
            .await;
        assert_eq!(st, 400, "{bad}: {v}");
        assert!(v.to_string().contains("forward_request_headers"), "{v}");
    }
}

#[tokio::test]
async fn auth_5_an_ipv4_mapped_or_any_ipv6_rule_blocks_an_ipv4_client() {
    let s = setup().await;
    for cidr in ["::ffff:127.0.0.1", "::/0"] {
        let (st, v) =
            s.h.admin(
                "POST",
                "/v1/ip-rules",
                Some(json!({"action": "deny", "cidr": cidr, "app_id": s.app_id})),
            )
            .await;
        assert_eq!(st, 201, "{v}");
        s.h.node()
            .gateway
            .snapshot
            .refresh(&s.h.node().cp)
            .await
            .unwrap();
        let r = s.client.call("GET", "/v1/items/1", None).await.unwrap();
        assert_eq!(r.status, 403, "{cidr}");
        assert_eq!(r.error().unwrap().code, "IP_FORBIDDEN", "{cidr}");
        let (st, _) =
            s.h.admin("DELETE", &format!("/v1/ip-rules/{}", v["id"]), None)
                .await;
        assert_eq!(st, 204);
    }
    s.h.node()
        .gateway
        .snapshot
        .refresh(&s.h.node().cp)
        .await
        .unwrap();
    let r = s.client.call("GET", "/v1/items/1", None).await.unwrap();
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn conf_5_a_bare_lf_in_a_request_head_is_refused_and_the_connection_closed() {
    let s = setup().await;
    let before = s.h.upstream.count();
    let req = signed(&s, "GET", "/v1/items/1", None);
    let head = String::from_utf8(h1_head(&req, None)).unwrap();
    // One header line ends in a bare LF; the rest is a valid signed call.
    let head = head.replacen("\r\nx-app-id", "\nx-app-id", 1);
    assert!(head.contains("\nx-app-id") && !head.contains("\r\nx-app-id"));
    let mut c = raw_tls(&s.h, false).await;
    c.write_all(head.as_bytes()).await.unwrap();
    let (status, text) = read_h1_response(&mut c, Duration::from_secs(5))
        .await
        .expect("answer");
    assert_eq!(status, 400, "{text}");
    let e: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(e["code"], "BAD_REQUEST");
    assert!(common::closed_within(&mut c, Duration::from_secs(5)).await);
    assert_eq!(s.h.upstream.count(), before);
    let rec = s.h.record(e["txn_id"].as_str().unwrap()).await;
    assert!(rec.reason.unwrap_or_default().contains("bare LF"));
    // The same call with CRLF everywhere passes.
    let req = signed(&s, "GET", "/v1/items/1", None);
    let mut c = raw_tls(&s.h, false).await;
    c.write_all(&h1_head(&req, None)).await.unwrap();
    let (status, _) = read_h1_response(&mut c, Duration::from_secs(5))
        .await
        .expect("answer");
    assert_eq!(status, 200);
}
