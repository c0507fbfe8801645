//! Audit in a cluster (issue 12 item 8; AUD-2, AUD-3, AUD-6, DEP-2): three
//! real nodes on one real PostgreSQL (and Redis). Each node keeps its own
//! hash chain, named by its node id in its segment files and in every
//! line, and indexes it into PostgreSQL; a call served by node 2 is found
//! by a search through node 1 (admin API and `menshen audit search`), its
//! body fetched from node 2's admin API through the node registry;
//! `menshen audit verify` over the three nodes' directories passes, and
//! fails after one byte of node 2's segment was changed, or when two
//! directories claim one node id.
//!
//! Each test starts its own `postgres` and `redis-server` on 127.0.0.1
//! (`menshen-testsupport`); without them it prints "skipped: ..." unless
//! `MENSHEN_REQUIRE_SERVICES=1`, when it fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Harness, HarnessOptions};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_menshen");

fn node_id(i: usize) -> String {
    format!("0000000{}", i + 1)
}

/// `menshen audit verify DIRS... --public-key PEM`: exit code and output.
fn verify(dirs: &[PathBuf], pem: &Path) -> (i32, String) {
    let mut args: Vec<String> = vec!["audit".into(), "verify".into()];
    args.extend(dirs.iter().map(|d| d.display().to_string()));
    args.extend(["--public-key".into(), pem.display().to_string()]);
    let o = Command::new(BIN).args(&args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

/// DEP-2, AUD-6, AUD-3 (issue 12 item 8).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dep_2_aud_6_a_call_on_node_2_is_found_and_shown_through_node_1_and_every_chain_verifies() {
    let Some(pg) = menshen_testsupport::postgres() else {
        return;
    };
    let Some(redis) = menshen_testsupport::redis() else {
        return;
    };
    pg.create_database("menshen");
    let master_key = menshen_crypto::MasterKey::generate().as_bytes().to_vec();
    let mut nodes: Vec<Harness> = Vec::new();
    for i in 0..3 {
        nodes.push(
            Harness::start_with(HarnessOptions {
                store_url: Some(pg.url("menshen")),
                hot_state_url: Some(redis.url()),
                node_id: Some(node_id(i)),
                master_key: Some(master_key.clone()),
                ..Default::default()
            })
            .await,
        );
    }
    nodes[0].api("ping", "GET", "/v1/ping", "A1").await;
    let (app_id, secret) = nodes[0].app("fintech", "server").await;
    nodes[0].grant(&app_id, "ping").await;

    // One call served by node 2 (once node 2 has the grant, bounded).
    let client = nodes[1].client(&app_id, &secret);
    let t = Instant::now();
    let txn = loop {
        let r = client.call("GET", "/v1/ping", None).await.unwrap();
        if r.status == 200 {
            break r.txn_id().unwrap().to_string();
        }
        assert!(t.elapsed() < Duration::from_secs(5), "node 2 never served");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    // Through node 1's admin API: found, the row names node 2, and the body
    // (from node 2's files, fetched through its admin API) is the call's.
    let t = Instant::now();
    let row = loop {
        let (s, v) = nodes[0]
            .admin("GET", &format!("/v1/audit?txn_id={txn}"), None)
            .await;
        assert_eq!(s, 200, "{v}");
        if let Some(r) = v.as_array().and_then(|a| a.first()) {
            break r.clone();
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "node 2's record not in the shared index"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(row["node"], node_id(1), "{row}");
    assert_eq!(row["record"]["txn_id"], txn.as_str(), "{row}");
    assert_eq!(row["record"]["node_id"], node_id(1), "{row}");
    assert_eq!(row["record"]["api_id"], "ping", "{row}");
    let seg = row["segment"].as_str().unwrap();
    assert!(seg.starts_with("seg-00000002-"), "{seg}");

    // Node 1 does not serve node 2's records itself: asked for them, it
    // refuses, naming the field.
    let (s, v) = nodes[0]
        .admin(
            "GET",
            &format!("/v1/audit/records?node={}&places=1.0.1", node_id(1)),
            None,
        )
        .await;
    assert_eq!((s, v["field"].as_str()), (400, Some("node")), "{v}");

    // The CLI through node 1: the same record, with its node.
    let token_file = nodes[0].dir.path().join("admin-token");
    std::fs::write(&token_file, &nodes[0].admin_token).unwrap();
    let search = |json: bool| {
        let mut args = vec!["audit", "search", "--txn-id", txn.as_str()];
        if json {
            args.push("--json");
        }
        let o = Command::new(BIN)
            .args(&args)
            .env("MENSHEN_ADMIN_URL", &nodes[0].admin_url)
            .env("MENSHEN_ADMIN_TOKEN_FILE", &token_file)
            .env_remove("MENSHEN_ADMIN_TOKEN")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let v: Value = serde_json::from_str(&search(true)).unwrap();
    assert_eq!(v[0]["node"], node_id(1), "{v}");
    assert_eq!(v[0]["record"]["txn_id"], txn.as_str(), "{v}");
    let table = search(false);
    assert!(
        table.contains(&node_id(1)) && table.contains(&txn),
        "{table}"
    );

    // Node 2 stopped: its rows are still found through node 1, with their
    // indexed fields and a record_error naming node 2 (the search answers).
    nodes[1].stop().await;
    let (s, v) = nodes[0]
        .admin("GET", &format!("/v1/audit?txn_id={txn}"), None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v[0]["indexed"]["txn_id"], txn.as_str(), "{v}");
    assert!(v[0].get("record").is_none(), "{v}");
    assert!(
        v[0]["record_error"]
            .as_str()
            .is_some_and(|e| e.contains(&node_id(1))),
        "{v}"
    );

    // The nodes stop (every record sealed); the audit public key.
    let audit_pem = nodes[0]
        .node()
        .cp
        .store
        .list_bank_keys()
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.purpose == "audit" && !k.retired)
        .unwrap()
        .public_pem;
    let pem = nodes[0].dir.path().join("audit-public.pem");
    std::fs::write(&pem, audit_pem).unwrap();
    for n in &mut nodes {
        n.stop().await;
    }
    let dirs: Vec<PathBuf> = nodes.iter().map(|n| n.data_dir().join("audit")).collect();
    // Each node's segments carry its id.
    for (i, d) in dirs.iter().enumerate() {
        for (_, p) in menshen_audit::verify::list_segments(d).unwrap() {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            assert_eq!(
                menshen_audit::writer::segment_node(&name),
                Some(node_id(i).as_str()),
                "{name}"
            );
        }
    }
    let (code, out) = verify(&dirs, &pem);
    assert_eq!(code, 0, "{out}");
    for i in 0..3 {
        assert!(out.contains(&format!("OK: node {}", node_id(i))), "{out}");
    }
    assert!(out.contains("3 of 3 node logs verified"), "{out}");

    // Two directories claiming one node id: refused.
    let (code, out) = verify(&[dirs[0].clone(), dirs[1].clone(), dirs[1].clone()], &pem);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("two directories claim"), "{out}");

    // One byte of node 2's record of the call changed: node 2 fails, the
    // others still verify.
    let (_, seg) = menshen_audit::verify::list_segments(&dirs[1])
        .unwrap()
        .into_iter()
        .find(|(_, p)| {
            menshen_audit::writer::read_segment(p)
                .unwrap()
                .contains(&txn)
        })
        .unwrap();
    let text = menshen_audit::writer::read_segment(&seg).unwrap();
    let at = text.find("\"path\":\"/v1/ping\"").unwrap() + "\"path\":\"/v1/".len();
    let mut bytes = text.into_bytes();
    bytes[at] = b'P';
    let plain = if seg.extension().is_some_and(|e| e == "zst") {
        std::fs::remove_file(&seg).unwrap();
        seg.with_extension("")
    } else {
        seg.clone()
    };
    std::fs::write(&plain, bytes).unwrap();
    let (code, out) = verify(&dirs, &pem);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("FAILED: node {}", node_id(1))) && out.contains("hash mismatch"),
        "{out}"
    );
    assert!(out.contains(&format!("OK: node {}", node_id(0))), "{out}");
    assert!(out.contains(&format!("OK: node {}", node_id(2))), "{out}");
    assert!(out.contains("2 of 3 node logs verified; FAILED"), "{out}");
}

/// AUD-6, DEP-2: nodes that have gone for good (or hang) do not hold a
/// search: the search lists their records with `record_error` after one
/// peer timeout, whatever the number of such nodes and of their records,
/// and well within `admin.store_timeout_ms`. Two registered nodes whose
/// admin URL accepts connections and never answers hold 250 and 150 of the
/// records found (several fetches each); the local records keep their
/// bodies. The embedded store holds the shared index here (rows of other
/// node ids written into it directly), so no PostgreSQL is needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn aud_6_dep_2_nodes_that_do_not_answer_cost_a_search_one_peer_timeout() {
    let h = Harness::start().await;
    h.api("ping", "GET", "/v1/ping", "A1").await;
    let (app_id, secret) = h.app("fintech", "server").await;
    h.grant(&app_id, "ping").await;
    let client = h.client(&app_id, &secret);
    assert_eq!(
        client.call("GET", "/v1/ping", None).await.unwrap().status,
        200
    );
    // The call's own record indexed first (the index gathers for 100 ms).
    let t = Instant::now();
    while h
        .admin("GET", &format!("/v1/audit?app_id={app_id}"), None)
        .await
        .1
        .as_array()
        .is_none_or(|a| a.is_empty())
    {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the call is not indexed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Accepts connections, never answers (kept open until the test ends).
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = silent.accept().await {
            conns.push(c);
        }
    });
    let store = &h.node().cp.store;
    let mut rows = Vec::new();
    for (node, n, base) in [
        ("0dead001", 250u64, 1_000_000u64),
        ("0dead002", 150, 2_000_000),
    ] {
        store.register_node(node, &silent_url).await.unwrap();
        for i in 0..n {
            rows.push(menshen_store::AuditRow {
                seq: base + i,
                segment: 1,
                offset: i * 100,
                kind: "access".into(),
                txn_id: Some(format!("T{node}{i}")),
                time_ms: 1_795_996_800_000 + i as i64,
                app_id: Some(app_id.clone()),
                api_id: Some("ping".into()),
                user_id: None,
                result: Some("success".into()),
                status: Some(200),
                code: None,
                duration_us: Some(1000),
                node: Some(node.into()),
            });
        }
    }
    store.index_audit(rows, None, None).await.unwrap();

    let t = Instant::now();
    let (s, v) = h
        .admin(
            "GET",
            &format!("/v1/audit?app_id={app_id}&limit=1000"),
            None,
        )
        .await;
    let took = t.elapsed();
    assert_eq!(s, 200, "{v}");
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 401, "400 remote + 1 local");
    let unreachable = rows
        .iter()
        .filter(|r| {
            r["node"].as_str().is_some_and(|n| n.starts_with("0dead"))
                && r["record_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("no answer within"))
        })
        .count();
    assert_eq!(unreachable, 400, "{v}");
    assert!(
        rows.iter().any(|r| r["record"]["txn_id"].is_string()),
        "the local record keeps its body"
    );
    // One 10 s peer timeout (both nodes asked at once, one fetch each),
    // not one per 100 records and node (5 x 10 s).
    assert!(took < Duration::from_secs(25), "{took:?}");
    held.abort();
}
