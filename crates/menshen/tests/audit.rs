//! The audit log from the outside: message retention with masking (AUD-4,
//! AUD-5), admin actions in the chain (ADM-1), search (AUD-2, AUD-6), and
//! failing closed on a failing disk (DEP-2).

mod common;

use common::{setup, Harness, HarnessOptions};
use menshen_crypto::{PrivateKey, SigAlg};
use serde_json::json;

const CARD: &str = "6222021234567890123";
const ID_NO: &str = "11010519491231002X";
const PHONE: &str = "13812345678";

fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[tokio::test]
async fn aud_4_aud_5_retained_messages_are_masked_and_no_full_pii_lands_on_disk() {
    let s = setup().await;
    let (st, v) = s
        .h
        .admin("POST", "/v1/apis", Some(json!({"api_id": "kyc", "method": "POST", "path": "/v1/kyc/{account}", "upstream": s.h.upstream_url,
            "level": "A1", "category": 1, "subcategory": 2, "controls": {"audit_messages": "bodies", "mask_fields": ["nickname"]}})))
        .await;
    assert_eq!(st, 201, "{v}");
    s.h.grant(&s.app_id, "kyc").await;
    let body = json!({"card_no": CARD, "id_number": ID_NO, "mobile": PHONE, "name": "张三", "nickname": "xiaozhang",
                      "remark": format!("customer {ID_NO} phone {PHONE} card {CARD}"), "amount": "88.00"});
    let r = s
        .client
        .call(
            "POST",
            &format!("/v1/kyc/{CARD}"),
            Some(body.to_string().into_bytes()),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let rec = s.h.record(r.txn_id().unwrap()).await;
    let parts = rec.message_parts.expect("bodies retained");
    let req_body = &parts["request"]["body"];
    assert_eq!(req_body["amount"], "88.00", "non-sensitive data kept");
    assert_eq!(req_body["card_no"], "622202*********0123");
    assert_eq!(req_body["nickname"], "***", "per-API field rule");
    assert!(parts["request"]["headers"].get("signature").is_none());
    assert!(parts["response"]["body"]["ok"].as_bool().unwrap());
    // Nothing under the data directory holds the full values: not the log,
    // not the database index, not the store.
    let mut h = s.h;
    h.stop().await;
    let mut files = vec![];
    walk(&h.data_dir(), &mut files);
    assert!(files.len() > 3);
    for f in files {
        let data = std::fs::read(&f).unwrap();
        let data = if f.extension().is_some_and(|e| e == "zst") {
            zstd_decode(&data)
        } else {
            data
        };
        for needle in [CARD, ID_NO, PHONE, "张三", "xiaozhang"] {
            assert!(
                !data.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle} found in {}",
                f.display()
            );
        }
    }
}

fn zstd_decode(b: &[u8]) -> Vec<u8> {
    let text = menshen_audit::writer::read_segment(&{
        let p = std::env::temp_dir().join(format!("z{}.jsonl.zst", std::process::id()));
        std::fs::write(&p, b).unwrap();
        p
    })
    .unwrap();
    text.into_bytes()
}

#[tokio::test]
async fn adm_1_admin_changes_are_recorded_in_the_chain_with_actor_before_and_after() {
    let s = setup().await;
    let (st, _) =
        s.h.admin("POST", &format!("/v1/apps/{}/suspend", s.app_id), None)
            .await;
    assert_eq!(st, 200);
    // The index follows the log within ~100 ms: poll (bounded).
    let action = format!("POST /v1/apps/{}/suspend", s.app_id);
    let mut rows = json!([]);
    for _ in 0..200 {
        let (st, r) =
            s.h.admin("GET", "/v1/audit?kind=admin&limit=100", None)
                .await;
        assert_eq!(st, 200, "{r}");
        rows = r;
        if rows
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["record"]["action"] == action.as_str())
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let rows = rows.as_array().unwrap();
    let suspend = rows
        .iter()
        .map(|r| &r["record"])
        .find(|r| r["action"] == action.as_str())
        .unwrap_or_else(|| panic!("no admin record of the suspension: {rows:?}"));
    assert_eq!(suspend["actor"], "test");
    assert_eq!(suspend["before"]["status"], "active");
    assert_eq!(suspend["after"]["status"], "suspended");
    assert!(!suspend["timestamp"].as_str().unwrap().is_empty());
    // The App_Secret shown once at creation is not in the admin record.
    let create = rows
        .iter()
        .map(|r| &r["record"])
        .find(|r| r["action"] == "POST /v1/apps")
        .unwrap();
    assert_eq!(create["after"]["app_secret"], "***");
    assert!(!serde_json::to_string(rows).unwrap().contains(&s.secret));
}

#[tokio::test]
async fn aud_6_search_by_txn_app_api_result_and_time() {
    let s = setup().await;
    let ok = s.client.call("GET", "/v1/items/1", None).await.unwrap();
    let bad = s.client.call("GET", "/v1/nowhere", None).await.unwrap();
    let (ok_txn, bad_txn) = (
        ok.txn_id().unwrap().to_string(),
        bad.txn_id().unwrap().to_string(),
    );
    s.h.node().audit.flush().await.unwrap();
    // The index is fed after the batch is durable; give it a moment by polling.
    let mut rows = json!([]);
    for _ in 0..100 {
        let (_, r) =
            s.h.admin("GET", &format!("/v1/audit?txn_id={ok_txn}"), None)
                .await;
        if r.as_array().is_some_and(|a| !a.is_empty()) {
            rows = r;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    assert_eq!(rows[0]["record"]["api_id"], "items");
    let (_, by_app) =
        s.h.admin(
            "GET",
            &format!("/v1/audit?app_id={}&kind=access", s.app_id),
            None,
        )
        .await;
    assert!(
        by_app
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["record"]["txn_id"] == ok_txn.as_str()),
        "{by_app}"
    );
    let (_, failures) = s.h.admin("GET", "/v1/audit?result=failure", None).await;
    assert!(failures
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["record"]["txn_id"] == bad_txn.as_str()));
    assert!(!failures
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["record"]["txn_id"] == ok_txn.as_str()));
    let (_, by_api) = s.h.admin("GET", "/v1/audit?api_id=items", None).await;
    assert!(by_api
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["record"]["api_id"] == "items"));
    let (_, future) =
        s.h.admin("GET", "/v1/audit?from=2999-01-01T00:00:00Z", None)
            .await;
    assert_eq!(future, json!([]));
    let (_, past) =
        s.h.admin("GET", "/v1/audit?to=2000-01-01T00:00:00Z", None)
            .await;
    assert_eq!(past, json!([]));
}

#[tokio::test]
async fn dep_2_a_failing_disk_fails_a2_calls_closed() {
    // The active segment is /dev/full: every write fails with ENOSPC, as on a full disk.
    fn full_disk(dir: &std::path::Path) {
        let seg = dir.join("data/audit/segments");
        std::fs::create_dir_all(&seg).unwrap();
        // The node refuses a data directory others can enter.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("data"), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::symlink("/dev/full", seg.join("seg-00000001.jsonl")).unwrap();
    }
    let h = Harness::start_with(HarnessOptions {
        prepare: Some(full_disk),
        ..Default::default()
    })
    .await;
    let h: &Harness = &h;
    // ADM-1: an admin change whose audit record cannot be written is refused,
    // and nothing changes.
    let apps_before = h.node().cp.store.list_apps().await.unwrap().len();
    let (st, v) = h
        .admin(
            "POST",
            "/v1/apps",
            Some(json!({"name": "unaudited", "kind": "server"})),
        )
        .await;
    assert_eq!(st, 503, "{v}");
    assert_eq!(v["code"], "AUDIT_UNAVAILABLE");
    assert_eq!(
        h.node().cp.store.list_apps().await.unwrap().len(),
        apps_before
    );
    // Set up through the control plane directly (the admin API refuses).
    let cp = &h.node().cp;
    let api: menshen_model::NewApi =
        serde_json::from_value(json!({"api_id": "acct", "method": "GET",
        "path": "/v1/accounts/{id}", "upstream": h.upstream_url, "level": "A2", "category": 1,
        "subcategory": 1, "integrations": ["server_to_server"]}))
        .unwrap();
    cp.create_api(&api).await.unwrap();
    let app: menshen_model::NewApp =
        serde_json::from_value(json!({"name": "keyed", "kind": "server"})).unwrap();
    let app = cp.create_app(&app).await.unwrap().app.app_id;
    let (key, _) = PrivateKey::generate(SigAlg::Sm2Sm3).unwrap();
    cp.add_public_key(&app, &key.public_key().to_pem(), None, None)
        .await
        .unwrap();
    cp.add_grant(&app, "acct").await.unwrap();
    h.node().gateway.snapshot.refresh(cp).await.unwrap();
    let c = h.key_client(&app, key, None).await;
    let before = h.upstream.count();
    let r = c.call("GET", "/v1/accounts/1", None).await.unwrap();
    assert_eq!(r.status, 503, "{:?}", String::from_utf8_lossy(&r.body));
    let e = r.error().unwrap();
    assert_eq!(e.code, "SERVICE_UNAVAILABLE");
    assert!(
        !e.message.to_lowercase().contains("disk"),
        "nothing internal leaks"
    );
    assert_eq!(
        h.upstream.count(),
        before,
        "not forwarded while the log fails"
    );
    assert!(
        h.node().audit.flush().await.is_err(),
        "the writer reports the failure"
    );
}

#[tokio::test]
async fn aud_2_closed_segments_archive_and_stay_verifiable() {
    use menshen::config::{AdminSection, AuditSection, Config, UApiSection};
    let tmp = tempfile::tempdir().unwrap();
    let audit_dir = tmp.path().join("data/audit");
    let (key, _) = PrivateKey::generate(SigAlg::Sm2Sm3).unwrap();
    let pk = key.public_key().clone();
    let mut ac = menshen_audit::AuditConfig::new(audit_dir.clone());
    ac.segment_max_bytes = 4096;
    let log = menshen_audit::AuditLog::open(
        ac,
        Some(menshen_audit::AuditSigner {
            key_id: "a".into(),
            key,
        }),
        None,
    )
    .unwrap();
    for i in 0..120 {
        log.record_durable(&json!({"kind": "access", "txn_id": format!("T{i}"), "timestamp": "2026-11-22T00:00:00.000Z"})).await.unwrap();
    }
    // Wait (bounded) for the background compression of rotated segments.
    let zst = |d: &std::path::Path| {
        std::fs::read_dir(d)
            .map(|r| {
                r.filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .path()
                        .to_string_lossy()
                        .ends_with(".jsonl.zst")
                })
                .count()
            })
            .unwrap_or(0)
    };
    for _ in 0..200 {
        if zst(&audit_dir.join("segments")) >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let closed = zst(&audit_dir.join("segments"));
    assert!(closed >= 2, "segments rotated and compressed");
    let cfg = Config {
        data_dir: tmp.path().join("data"),
        master_key_file: None,
        node_id: None,
        level_profile: None,
        uapi: UApiSection {
            prefix: "0P".into(),
            institution: "C10305".into(),
        },
        gateway: menshen_gateway::GatewayConfig::new(
            vec!["127.0.0.1:0".parse().unwrap()],
            "x.pem".into(),
            "x.key".into(),
        ),
        admin: AdminSection {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..Default::default()
        },
        audit: AuditSection {
            archive_after_days: 0,
            ..Default::default()
        },
        oauth: Default::default(),
        hot_state: Default::default(),
        store: Default::default(),
        alerts: Default::default(),
        stats: Default::default(),
        tracing: Default::default(),
    };
    // Seal what the writer has not sealed yet (durable records are sealed
    // within 10 ms; a flush seals at once).
    log.flush().await.unwrap();
    menshen::cli::audit_archive(&cfg, false).unwrap();
    assert_eq!(
        zst(&audit_dir.join("archive")),
        closed,
        "closed segments moved to archive/"
    );
    assert_eq!(zst(&audit_dir.join("segments")), 0);
    // The active segment stays; the whole log still verifies across both directories.
    let r = menshen_audit::verify::verify_dir(&audit_dir, &[pk], |_, _| {}).unwrap();
    assert_eq!(r.records, 120);
    // The writer keeps going after archiving.
    log.record_durable(&json!({"kind": "access", "txn_id": "AFTER"}))
        .await
        .unwrap();
}
