//! Monitoring (issue 14 items 1, 2 and 7; MON-1): `/metrics` scraped and
//! parsed from a real node, the statistics against the calls made,
//! `/readyz`, and W3C trace context through to the upstream.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_menshen");

/// One sample: family name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// Parse the text exposition (the subset Menshen writes: no escapes in
/// label values, which only come from the catalog and fixed sets).
fn parse(text: &str) -> Vec<Sample> {
    let mut out = vec![];
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample line");
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => {
                let body = rest.strip_suffix('}').expect("closing brace");
                let mut m = BTreeMap::new();
                for kv in body.split("\",").filter(|s| !s.is_empty()) {
                    let (k, v) = kv.split_once("=\"").expect("label");
                    m.insert(k.to_string(), v.trim_end_matches('"').to_string());
                }
                (n.to_string(), m)
            }
            None => (series.to_string(), BTreeMap::new()),
        };
        let value = if value == "+Inf" {
            f64::INFINITY
        } else {
            value.parse().expect("number")
        };
        out.push((name, labels, value));
    }
    out
}

fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && want
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.2)
        .sum()
}

/// MON-1: the scrape parses; counters move by exactly the calls made;
/// histograms have buckets up to +Inf agreeing with their count; no label
/// carries an IP; the endpoint needs a token.
#[tokio::test]
async fn mon_1_metrics_scraped_parsed_and_counters_move_by_exactly_the_calls_made() {
    let s = setup().await;
    let h = &s.h;
    assert_eq!(scrape(h, None).await.0, 401);
    assert_eq!(scrape(h, Some("wrong")).await.0, 401);
    let (st, before) = scrape(h, Some(&h.admin_token)).await;
    assert_eq!(st, 200);
    let before = parse(&before);
    let calls = |v: &[Sample], class: &str, api: &str| {
        value(
            v,
            "menshen_calls_total",
            &[
                ("app", &s.app_id),
                ("api", api),
                ("level", "A1"),
                ("class", class),
            ],
        )
    };
    for i in 0..3 {
        let r = s
            .client
            .call("GET", &format!("/v1/items/{i}"), None)
            .await
            .unwrap();
        assert_eq!(r.status, 200);
    }
    // A wrong secret: refused, INVALID_SIGNATURE, counted under the App_ID
    // it named (in the catalog).
    let bad = h.client(&s.app_id, "not-the-secret");
    let r = bad.call("GET", "/v1/items/9", None).await.unwrap();
    assert_eq!(r.status, 401);
    // An App_ID the catalog does not know: `unknown`, never its text.
    let stranger = h.client("APPnotinthecatalog", "x");
    let r = stranger.call("GET", "/v1/items/9", None).await.unwrap();
    assert_eq!(r.status, 401);

    let (_, text) = scrape(h, Some(&h.admin_token)).await;
    assert!(text.ends_with("# EOF\n"));
    let after = parse(&text);
    assert_eq!(
        calls(&after, "success", "items") - calls(&before, "success", "items"),
        3.0
    );
    assert_eq!(
        calls(&after, "refused", "items") - calls(&before, "refused", "items"),
        1.0
    );
    let refused = |v: &[Sample]| {
        value(
            v,
            "menshen_refusals_total",
            &[("code", "INVALID_SIGNATURE")],
        )
    };
    assert_eq!(refused(&after) - refused(&before), 2.0);
    assert!(!text.contains("APPnotinthecatalog"));
    assert!(
        value(
            &after,
            "menshen_calls_total",
            &[("app", "unknown"), ("api", "items")]
        ) >= 1.0
    );

    // Histograms: buckets, cumulative, +Inf = count.
    let lbl = [
        ("app", s.app_id.as_str()),
        ("api", "items"),
        ("class", "success"),
    ];
    let count = value(&after, "menshen_call_duration_seconds_count", &lbl);
    assert_eq!(count, 3.0);
    let buckets: Vec<&Sample> = after
        .iter()
        .filter(|(n, l, _)| {
            n == "menshen_call_duration_seconds_bucket"
                && lbl
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .collect();
    assert!(buckets.len() >= 10, "{buckets:?}");
    assert_eq!(buckets.last().unwrap().1["le"], "+Inf");
    assert_eq!(buckets.last().unwrap().2, count);
    assert!(buckets.windows(2).all(|w| w[0].2 <= w[1].2), "cumulative");
    assert!(
        value(
            &after,
            "menshen_upstream_duration_seconds_count",
            &[("api", "items")]
        ) >= 3.0
    );
    for fam in [
        "menshen_audit_queue_depth",
        "menshen_audit_sync_duration_seconds_count",
        "menshen_snapshot_version",
        "menshen_snapshot_age_seconds",
        "menshen_tls_handshake_failures_total",
        "menshen_rate_limit_events_total",
    ] {
        assert!(after.iter().any(|(n, _, _)| n == fam), "{fam} missing");
    }
    assert!(value(&after, "menshen_snapshot_version", &[]) >= 1.0);

    // No label value is an IP (or anything but an id or a fixed word).
    for (n, labels, _) in &after {
        for (k, v) in labels {
            assert!(
                v.parse::<std::net::IpAddr>().is_err(),
                "{n}: {k}={v} is an IP"
            );
            assert!(!v.contains("127.0.0.1"), "{n}: {k}={v}");
            assert!(
                v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._:-+".contains(c)),
                "{n}: {k}={v}"
            );
        }
    }
}

/// MON-1: a TLS handshake that fails is counted (connection failures are
/// counted even when their records are rate-limited).
#[tokio::test]
async fn mon_1_tls_handshake_failures_are_counted() {
    use tokio::io::AsyncWriteExt;
    let s = setup().await;
    let h = &s.h;
    let failed = |t: &str| {
        value(
            &parse(t),
            "menshen_tls_handshake_failures_total",
            &[("reason", "failed")],
        )
    };
    let before = failed(&scrape(h, Some(&h.admin_token)).await.1);
    let addr = h.node().gateway.addrs[0];
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 256];
        use tokio::io::AsyncReadExt;
        while tcp.read(&mut buf).await.map(|n| n > 0).unwrap_or(false) {}
    })
    .await;
    let t0 = std::time::Instant::now();
    loop {
        let now = failed(&scrape(h, Some(&h.admin_token)).await.1);
        if now == before + 1.0 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "not counted: {before} -> {now}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// MON-1: the statistics count exactly the calls made, per app and per
/// API; the CLI shows them as a table.
#[tokio::test]
async fn mon_1_stats_match_the_calls_made() {
    let s = setup().await;
    let h = &s.h;
    for i in 0..4 {
        assert_eq!(
            s.client
                .call("GET", &format!("/v1/items/{i}"), None)
                .await
                .unwrap()
                .status,
            200
        );
    }
    let r = s
        .client
        .call("POST", "/v1/orders", Some(br#"{"n":1}"#.to_vec()))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let bad = h.client(&s.app_id, "not-the-secret");
    assert_eq!(
        bad.call("GET", "/v1/items/1", None).await.unwrap().status,
        401
    );

    let (st, app) = h
        .admin("GET", &format!("/v1/stats/apps/{}", s.app_id), None)
        .await;
    assert_eq!(st, 200, "{app}");
    for w in ["minute", "hour", "day"] {
        let f = &app[w];
        assert_eq!(f["calls"], 6, "{w}: {app}");
        assert_eq!(f["success"], 5, "{w}");
        assert_eq!(f["refused"], 1, "{w}");
        assert_eq!(f["auth_failures"], 1, "{w}");
        let rate = f["success_rate"].as_f64().unwrap();
        assert!((rate - 5.0 / 6.0).abs() < 1e-9, "{rate}");
        assert!(f["tps"].as_f64().unwrap() > 0.0);
        let (p50, p99) = (f["p50_ms"].as_f64().unwrap(), f["p99_ms"].as_f64().unwrap());
        assert!(p50 > 0.0 && p50 <= p99, "{p50} {p99}");
    }
    let (_, items) = h.admin("GET", "/v1/stats/apis/items", None).await;
    assert_eq!(items["minute"]["calls"], 5, "{items}");
    assert_eq!(items["minute"]["success"], 4);
    let (_, orders) = h.admin("GET", "/v1/stats/apis/orders", None).await;
    assert_eq!(orders["hour"]["calls"], 1);
    let (_, all) = h.admin("GET", "/v1/stats/apps", None).await;
    let ids: Vec<&str> = all["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&s.app_id.as_str()), "{all}");
    let (_, apis) = h.admin("GET", "/v1/stats/apis", None).await;
    assert_eq!(apis["apis"].as_array().unwrap().len(), 2, "{apis}");
    assert_eq!(
        h.admin("GET", "/v1/stats/apps/NOSUCHAPP", None).await.0,
        404
    );
    assert_eq!(
        h.admin_raw("GET", "/v1/stats/apps", None, None).await.0,
        401,
        "the statistics need the admin token"
    );

    // The CLI: a table with the app's row.
    let token_file = h.dir.path().join("admin.token");
    std::fs::write(&token_file, &h.admin_token).unwrap();
    let out = tokio::process::Command::new(BIN)
        .args(["stats", "--admin-url", &h.admin_url, "--admin-token-file"])
        .arg(&token_file)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let header = stdout.lines().next().unwrap();
    assert!(
        header.starts_with("ID") && header.contains("1M_CALLS") && header.contains("1M_P99_MS"),
        "{stdout}"
    );
    let row = stdout
        .lines()
        .find(|l| l.starts_with(&s.app_id))
        .expect("app row");
    assert_eq!(row.split_whitespace().nth(1), Some("6"), "{row}");
}

/// MON-1: `/readyz` is 200 with its checks on a serving node, and 503 once
/// the audit log cannot be written.
#[tokio::test]
async fn mon_1_readyz_ready_when_serving_and_not_when_the_audit_log_fails() {
    let h = Harness::start().await;
    let (st, v) = h.admin_raw("GET", "/readyz", None, None).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "ready");
    assert_eq!(v["checks"]["snapshot_loaded"], true);
    assert_eq!(v["checks"]["audit_writable"], true);
    assert_eq!(v["checks"]["serving"], true);
    drop(h);

    // The active segment is /dev/full: every write fails (as on a full disk).
    fn full_disk(dir: &std::path::Path) {
        let seg = dir.join("data/audit/segments");
        std::fs::create_dir_all(&seg).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("data"), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::symlink("/dev/full", seg.join("seg-00000001.jsonl")).unwrap();
    }
    let h = Harness::start_with(HarnessOptions {
        prepare: Some(full_disk),
        ..Default::default()
    })
    .await;
    // Anything recorded fails (an admin change is refused for it).
    let (st, _) = h
        .admin(
            "POST",
            "/v1/apps",
            Some(serde_json::json!({"name": "x", "kind": "server"})),
        )
        .await;
    assert_eq!(st, 503);
    let (st, v) = h.admin_raw("GET", "/readyz", None, None).await;
    assert_eq!(st, 503, "{v}");
    assert_eq!(v["status"], "not_ready");
    assert_eq!(v["checks"]["audit_writable"], false);
}

/// MON-1: a read-only scrape token (`admin.metrics_token_sha256`) opens
/// `/metrics` and nothing else.
#[tokio::test]
async fn mon_1_scrape_token_opens_metrics_only() {
    let mut h = Harness::start().await;
    h.stop().await;
    let token = "scrape-token-for-tests-0123456789";
    let mut cfg = h.config.clone();
    cfg.admin.metrics_token_sha256 = Some(hex::encode(menshen_crypto::sha256(token.as_bytes())));
    let node = menshen::node::Node::start(cfg).await.unwrap();
    let url = format!("http://{}", node.admin_addr);
    let get = |path: &str, tok: &str| {
        let req = http::Request::builder()
            .uri(format!("{url}{path}"))
            .header("authorization", format!("Bearer {tok}"))
            .body(Bytes::new())
            .unwrap();
        let c = h.admin_http.clone();
        async move { menshen_sdk::send(&c, req).await.unwrap() }
    };
    let r = get("/metrics", token).await;
    assert_eq!(r.status, 200);
    assert!(String::from_utf8_lossy(&r.body).contains("# TYPE menshen_calls counter"));
    assert_eq!(get("/v1/apps", token).await.status, 401);
    assert_eq!(get("/v1/stats/apps", token).await.status, 401);
    node.shutdown().await;
}

/// Issue 14 item 7: a valid `traceparent` is continued (same trace id, the
/// gateway's span as parent) to the upstream and its trace id is in the
/// access record; a malformed one is replaced, never passed on.
#[tokio::test]
async fn trace_context_propagated_to_the_upstream_and_a_malformed_one_replaced() {
    let s = setup().await;
    let h = &s.h;
    let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut req = signed(&s, "GET", "/v1/items/1", None);
    req.headers_mut()
        .insert("traceparent", good.parse().unwrap());
    req.headers_mut()
        .insert("tracestate", "congo=t61rcWkgMzE".parse().unwrap());
    let r = s.client.send(req).await.unwrap();
    assert_eq!(r.status, 200);
    let seen = h.upstream.last();
    let tp = seen.headers["traceparent"].to_str().unwrap().to_string();
    assert!(
        tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{tp}"
    );
    assert!(tp.ends_with("-01"), "{tp}");
    assert!(
        !tp.contains("00f067aa0ba902b7"),
        "the gateway is a hop: {tp}"
    );
    assert_eq!(seen.headers["tracestate"], "congo=t61rcWkgMzE");
    let txn = r.headers["x-menshen-txn-id"].to_str().unwrap().to_string();
    let rec = h.record(&txn).await;
    assert_eq!(
        rec.trace_id.as_deref(),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );

    // Malformed: replaced by a fresh, valid trace; nothing of it passes.
    let bad = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-<script>";
    let mut req = signed(&s, "GET", "/v1/items/2", None);
    req.headers_mut()
        .insert("traceparent", bad.parse().unwrap());
    req.headers_mut()
        .insert("tracestate", "evil=1".parse().unwrap());
    let r = s.client.send(req).await.unwrap();
    assert_eq!(r.status, 200);
    let seen = h.upstream.last();
    let tp = seen.headers["traceparent"].to_str().unwrap().to_string();
    assert!(!tp.contains("4bf92f3577b34da6a3ce929d0e0e4736"), "{tp}");
    assert_eq!(tp.len(), 55, "{tp}");
    assert!(seen.headers.get("tracestate").is_none());
    let txn = r.headers["x-menshen-txn-id"].to_str().unwrap().to_string();
    let rec = h.record(&txn).await;
    assert_eq!(rec.trace_id.as_deref(), Some(&tp[3..35]));

    // None sent: one is started.
    let r = s.client.call("GET", "/v1/items/3", None).await.unwrap();
    let tp = h.upstream.last().headers["traceparent"]
        .to_str()
        .unwrap()
        .to_string();
    let txn = r.headers["x-menshen-txn-id"].to_str().unwrap().to_string();
    assert_eq!(h.record(&txn).await.trace_id.as_deref(), Some(&tp[3..35]));
}
