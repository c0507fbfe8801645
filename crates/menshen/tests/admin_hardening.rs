//! The admin plane does what it is told (issue 10 item 3; ADM-1): a body over
//! the limit is refused with 413 and changes nothing; slow and idle clients
//! are disconnected; failed token attempts and reads of audit data leave
//! admin records; a plain-HTTP admin API off loopback does not start; the
//! admin API is served over TLS when configured.

mod common;
mod node_config;

use std::time::Duration;

use common::{admin_records, closed_within, read_h1_response, setup, Harness};
use menshen::node::Node;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

const BIN: &str = env!("CARGO_BIN_EXE_menshen");

#[tokio::test]
async fn adm_1_body_over_1_mib_is_refused_with_413_and_changes_nothing() {
    let s = setup().await;
    let h = &s.h;
    let path = format!("/v1/apps/{}/secret-rotate", s.app_id);
    let creds = |v: Value| v.as_array().map(Vec::len);
    let (_, before) = h
        .admin("GET", &format!("/v1/apps/{}/credentials", s.app_id), None)
        .await;
    let records_before = admin_records(h).await.len();

    // The reproduction from the issue: a valid body padded past 1 MiB.
    let padded = format!(
        "{{\"grace_seconds\":86400{}}}",
        " ".repeat(menshen_admin::MAX_BODY_BYTES)
    );
    let (st, v) = h
        .admin_raw("POST", &path, Some(padded), Some(&h.admin_token))
        .await;
    assert_eq!(st, 413, "{v}");
    assert_eq!(v["code"], "PAYLOAD_TOO_LARGE", "{v}");
    assert_eq!(v["field"], "body", "{v}");
    assert!(v["message"].as_str().unwrap().contains("1 MiB"), "{v}");

    // The same without a Content-Length (chunked), so the limit holds while
    // the body streams in.
    let mut tcp = tokio::net::TcpStream::connect(h.node().admin_addr)
        .await
        .unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
        h.admin_token
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let (mut rd, mut wr) = tcp.into_split();
    let writer = tokio::spawn(async move {
        let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, " ".repeat(64 * 1024));
        let _ = wr.write_all(b"10\r\n{\"grace_seconds\"\r\n").await;
        for _ in 0..20 {
            if wr.write_all(chunk.as_bytes()).await.is_err() {
                return;
            }
        }
        let _ = wr.write_all(b"7\r\n:86400}\r\n0\r\n\r\n").await;
    });
    let (st, body) = read_h1_response(&mut rd, Duration::from_secs(20))
        .await
        .expect("an answer to the chunked upload");
    writer.abort();
    assert_eq!(st, 413, "{body}");
    assert!(body.contains("PAYLOAD_TOO_LARGE"), "{body}");

    // Nothing changed: the old secret still signs, the credentials are the
    // same, and no change was recorded as requested or made.
    let (_, after) = h
        .admin("GET", &format!("/v1/apps/{}/credentials", s.app_id), None)
        .await;
    assert_eq!(after, before);
    assert_eq!(creds(after), Some(1));
    let r = s.client.call("GET", "/v1/items/1", None).await.unwrap();
    assert_eq!(r.status, 200, "the old secret still works");
    let recs = admin_records(h).await;
    assert!(
        recs[records_before..]
            .iter()
            .all(|r| !r["action"].as_str().unwrap().contains("secret-rotate")),
        "no rotation recorded: {recs:?}"
    );

    // A body within the limit is still taken as sent.
    let (st, v) = h
        .admin("POST", &path, Some(json!({"grace_seconds": 86400})))
        .await;
    assert_eq!(
        (st, v["old_secret_valid_for_seconds"].as_u64()),
        (200, Some(86400)),
        "{v}"
    );
}

/// A node with short admin timeouts.
async fn node_with_admin_timeouts(header_ms: u64, idle_ms: u64) -> (tempfile::TempDir, Node) {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = node_config::config(tmp.path());
    cfg.admin.header_read_timeout_ms = header_ms;
    cfg.admin.idle_timeout_ms = idle_ms;
    let node = Node::start(cfg).await.unwrap();
    (tmp, node)
}

#[tokio::test]
async fn adm_1_admin_client_sending_half_a_head_is_disconnected() {
    let (_tmp, node) = node_with_admin_timeouts(300, 60_000).await;
    let mut tcp = tokio::net::TcpStream::connect(node.admin_addr)
        .await
        .unwrap();
    tcp.write_all(b"POST /v1/apps HTTP/1.1\r\nhost: x\r\nauthorization: Bear")
        .await
        .unwrap();
    // Bounded wait for the close (the bound is 300 ms; allow a slow machine).
    assert!(
        closed_within(&mut tcp, Duration::from_secs(15)).await,
        "half a request head held the connection open"
    );
    // A connection that sends nothing at all is closed too.
    let mut silent = tokio::net::TcpStream::connect(node.admin_addr)
        .await
        .unwrap();
    assert!(closed_within(&mut silent, Duration::from_secs(15)).await);
    node.shutdown().await;
}

#[tokio::test]
async fn adm_1_idle_admin_connection_is_closed() {
    // The head timer is long here: the idle timeout closes the connection.
    let (_tmp, node) = node_with_admin_timeouts(60_000, 300).await;
    let mut tcp = tokio::net::TcpStream::connect(node.admin_addr)
        .await
        .unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let (st, _) = read_h1_response(&mut tcp, Duration::from_secs(10))
        .await
        .expect("healthz answered");
    assert_eq!(st, 200);
    assert!(
        closed_within(&mut tcp, Duration::from_secs(15)).await,
        "an idle keep-alive connection stayed open"
    );
    node.shutdown().await;
}

#[tokio::test]
async fn adm_1_failed_admin_token_attempts_are_recorded_without_the_token_and_rate_limited() {
    let h = Harness::start().await;
    let wrong = "msk_this_is_not_a_valid_admin_token_0123456789";
    let (st, _) = h.admin_raw("GET", "/v1/apps", None, Some(wrong)).await;
    assert_eq!(st, 401);
    let (st, _) = h
        .admin_raw(
            "POST",
            "/v1/apps",
            Some(r#"{"name":"x","kind":"server"}"#.into()),
            None,
        )
        .await;
    assert_eq!(st, 401);
    let recs = admin_records(&h).await;
    let refused: Vec<&Value> = recs
        .iter()
        .filter(|r| r["actor"] == menshen_admin::UNAUTHENTICATED)
        .collect();
    assert_eq!(refused.len(), 2, "{recs:?}");
    assert_eq!(refused[0]["status"], 401);
    assert!(
        refused[0]["action"]
            .as_str()
            .unwrap()
            .starts_with("GET /v1/apps (refused: wrong admin token"),
        "{}",
        refused[0]
    );
    assert_eq!(refused[0]["request"]["peer"], "127.0.0.1");
    assert!(refused[1]["action"]
        .as_str()
        .unwrap()
        .starts_with("POST /v1/apps (refused: no admin token"));
    // Never the token itself, anywhere in the log.
    for l in menshen_audit::writer::read_all_records(h.node().audit.dir()).unwrap() {
        assert!(!l.contains(wrong), "{l}");
    }

    // A flood is counted, not written one by one.
    for _ in 0..40 {
        h.admin_raw("GET", "/v1/apps", None, Some(wrong)).await;
    }
    let n = admin_records(&h)
        .await
        .iter()
        .filter(|r| r["actor"] == menshen_admin::UNAUTHENTICATED)
        .count();
    let limit = menshen_admin::FAILED_TOKEN_RECORDS_PER_MINUTE as usize;
    // (A minute boundary during the test allows one more minute's worth.)
    assert!(
        (limit..=2 * limit).contains(&n),
        "{n} records for 42 failed attempts"
    );
}

#[tokio::test]
async fn adm_1_reads_of_audit_data_are_recorded() {
    let h = Harness::start().await;
    let (st, _) = h.admin("GET", "/v1/audit?kind=admin&limit=5", None).await;
    assert_eq!(st, 200);
    h.admin("GET", "/v1/audit/checkpoint", None).await;
    // Customers' personal data (accounts, consents) is recorded likewise.
    let (st, _) = h.admin("GET", "/v1/customers", None).await;
    assert_eq!(st, 200);
    let (st, _) = h.admin("GET", "/v1/consents", None).await;
    assert_eq!(st, 200);
    // Other reads are not audit data and are not recorded.
    h.admin("GET", "/v1/apps", None).await;
    let recs = admin_records(&h).await;
    for path in ["/v1/customers", "/v1/consents"] {
        assert!(
            recs.iter()
                .any(|r| r["action"] == format!("GET {path}") && r["actor"] == "test"),
            "no record of {path}: {recs:?}"
        );
    }
    let search = recs
        .iter()
        .find(|r| r["action"].as_str().unwrap().starts_with("GET /v1/audit?"))
        .unwrap_or_else(|| panic!("no record of the audit search: {recs:?}"));
    assert_eq!(search["actor"], "test");
    assert_eq!(search["status"], 200);
    assert!(search["action"].as_str().unwrap().contains("kind=admin"));
    assert!(
        recs.iter()
            .any(|r| r["action"] == "GET /v1/audit/checkpoint" && r["actor"] == "test"),
        "{recs:?}"
    );
    assert!(
        !recs.iter().any(|r| r["action"] == "GET /v1/apps"),
        "{recs:?}"
    );
}

#[tokio::test]
async fn adm_1_plaintext_admin_on_a_non_loopback_address_does_not_start() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = node_config::config(tmp.path());
    // TEST-NET-1: not loopback, and nothing here can bind it.
    cfg.admin.listen = "192.0.2.1:9080".parse().unwrap();
    let e = match Node::start(cfg.clone()).await {
        Ok(n) => {
            n.shutdown().await;
            panic!("a plain-HTTP admin API on a non-loopback address started");
        }
        Err(e) => format!("{e:#}"),
    };
    assert!(e.contains("admin.listen"), "{e}");
    assert!(
        e.contains("admin.allow_plaintext_non_loopback = true"),
        "{e}"
    );
    assert!(e.contains("[admin.tls]"), "{e}");
    assert!(
        !cfg.data_dir.exists(),
        "refused before anything was created"
    );

    // The binary refuses the same config file, with the same message.
    let file = node_config::write_toml(tmp.path(), &cfg);
    let out = tokio::process::Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&file)
        .env("MENSHEN_LOG", "error")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .expect("serve exits")
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("admin.allow_plaintext_non_loopback = true"),
        "{err}"
    );
}

#[tokio::test]
async fn adm_1_admin_api_over_tls_end_to_end_via_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = node_config::config(tmp.path());
    let tls = tmp.path().join("tls");
    cfg.admin.tls = Some(menshen::config::AdminTls {
        cert: tls.join("server.pem"),
        key: tls.join("server.key"),
    });
    let node = Node::start(cfg).await.unwrap();
    let token = menshen_admin::create_admin_token(node.cp.store.as_ref(), "tls-admin")
        .await
        .unwrap();
    let ca = std::fs::read(tls.join("ca.pem")).unwrap();
    let http = menshen_sdk::http_client(Some(&ca)).unwrap();
    let url = format!("https://127.0.0.1:{}/v1/apps", node.admin_addr.port());
    let req = |body: Option<Value>| {
        http::Request::builder()
            .method(if body.is_some() { "POST" } else { "GET" })
            .uri(&url)
            .header("authorization", format!("Bearer {token}"))
            .body(bytes::Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            ))
            .unwrap()
    };
    let r = menshen_sdk::send(
        &http,
        req(Some(json!({"name": "Over TLS", "kind": "server"}))),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 201);
    let r = menshen_sdk::send(&http, req(None)).await.unwrap();
    assert_eq!(r.status, 200);
    let apps: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(apps[0]["name"], "Over TLS");
    // The CLI, pointed at the admin API's CA (--admin-ca / MENSHEN_ADMIN_CA).
    let cli = |args: &[&str], ca: Option<&std::path::Path>| {
        let mut c = tokio::process::Command::new(BIN);
        c.args(args)
            .env(
                "MENSHEN_ADMIN_URL",
                format!("https://127.0.0.1:{}", node.admin_addr.port()),
            )
            .env("MENSHEN_ADMIN_TOKEN", &token)
            .env_remove("MENSHEN_ADMIN_TOKEN_FILE")
            .env_remove("MENSHEN_ADMIN_CA")
            .kill_on_drop(true);
        if let Some(ca) = ca {
            c.env("MENSHEN_ADMIN_CA", ca);
        }
        async move {
            tokio::time::timeout(Duration::from_secs(60), c.output())
                .await
                .expect("the CLI exits")
                .unwrap()
        }
    };
    let ca_file = tls.join("ca.pem");
    let out = cli(&["app", "create", "--name", "Via CLI"], Some(&ca_file)).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&["app", "list", "--json"], Some(&ca_file)).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("Over TLS") && listed.contains("Via CLI"),
        "{listed}"
    );
    // Without the CA the CLI says what to pass.
    let out = cli(&["app", "list"], None).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--admin-ca"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Plain HTTP to the TLS port gets no answer from the admin API.
    let plain = menshen_sdk::http_client(None).unwrap();
    let r = menshen_sdk::send(
        &plain,
        http::Request::builder()
            .uri(format!(
                "http://127.0.0.1:{}/healthz",
                node.admin_addr.port()
            ))
            .body(bytes::Bytes::new())
            .unwrap(),
    )
    .await;
    assert!(r.is_err() || r.unwrap().status != 200);
    node.shutdown().await;
}
