//! TRF-1 per client IP over IPv6: one subscriber holds a whole /64 (any
//! IPv6 host can send from 2^64 addresses), so a `per = "ip"` rule counts an
//! IPv6 client by its /64, as the connection caps already do
//! (`conn::client_key`); counting single addresses let a client rotate its
//! source address and never reach the limit. IPv4 clients are counted by
//! their address. The client addresses come from a trusted proxy's
//! `X-Forwarded-For` (the only way to have several source addresses on
//! 127.0.0.1). All on 127.0.0.1.

mod common;

use common::*;
use serde_json::{json, Value};

/// A call from `ip` (as the trusted proxy says): (status, error code).
async fn call_from(s: &Setup, ip: &str) -> (u16, Option<String>) {
    let c = &s.client;
    let mut req = c.request("GET", "/v1/items/1", None).unwrap();
    req.headers_mut()
        .insert("x-forwarded-for", ip.parse().unwrap());
    c.sign(&mut req, None).unwrap();
    let r = c.send_unverified(req).await.unwrap();
    let code = serde_json::from_slice::<Value>(&r.body)
        .ok()
        .and_then(|v| v["code"].as_str().map(str::to_string));
    (r.status, code)
}

/// TRF-1: a per-IP limit of 3 holds for an IPv6 client rotating its source
/// address within its /64; another /64 and IPv4 clients have their own
/// counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trf_1_a_per_ip_limit_counts_an_ipv6_client_by_its_64() {
    let s = setup_with(HarnessOptions {
        trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
        ..Default::default()
    })
    .await;
    // A day window: the test cannot straddle its end.
    let (st, v) =
        s.h.admin(
            "POST",
            "/v1/limits",
            Some(json!({"app_id": s.app_id, "api_id": "items", "per": "ip",
                "window": "day", "max": 3, "action": "reject"})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    // Three calls from three addresses of one /64, then a fourth: refused.
    for i in 1..=3 {
        let ip = format!("2001:db8:1:2::{i:x}");
        assert_eq!(call_from(&s, &ip).await, (200, None), "{ip}");
    }
    let before = s.h.upstream.count();
    assert_eq!(
        call_from(&s, "2001:db8:1:2:ffff:ffff:ffff:ffff").await,
        (429, Some("RATE_LIMITED".into())),
        "a fourth address of the same /64"
    );
    assert_eq!(s.h.upstream.count(), before, "nothing forwarded");
    // Another /64 has its own count; so does an IPv4 client.
    assert_eq!(call_from(&s, "2001:db8:1:3::1").await, (200, None));
    for _ in 0..3 {
        assert_eq!(call_from(&s, "198.51.100.7").await, (200, None));
    }
    assert_eq!(
        call_from(&s, "198.51.100.7").await,
        (429, Some("RATE_LIMITED".into()))
    );
    assert_eq!(call_from(&s, "198.51.100.8").await, (200, None));
}
