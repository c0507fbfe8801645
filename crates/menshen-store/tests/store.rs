//! Store behaviour, through the `Store` trait and the control plane, on a real
//! SQLite file. The same cases are meant to run against PostgreSQL later.

use std::sync::Arc;

use menshen_crypto::MasterKey;
use menshen_model::{
    AppKind, AppStatus, IpAction, Level, Lifecycle, Method, NewApi, NewApp, NewIpRule, UApiId,
};
use menshen_store::{ControlPlane, SqliteStore, StoreError, UApiConfig};

fn setup() -> (tempfile::TempDir, ControlPlane) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("menshen.db")).unwrap());
    let master = Arc::new(MasterKey::from_text(&MasterKey::generate()).unwrap());
    let cp = ControlPlane::new(
        store,
        master,
        UApiConfig {
            prefix: "0P".into(),
            institution: "C10305".into(),
        },
    );
    (dir, cp)
}

fn api(id: &str, path: &str, level: Level) -> NewApi {
    NewApi {
        api_id: id.into(),
        version: "v1".into(),
        name: None,
        method: Method::Get,
        path: path.into(),
        upstream: "http://127.0.0.1:9".into(),
        level,
        integrations: vec![],
        owner: None,
        category: 1,
        subcategory: 1,
        lifecycle: None,
        controls: None,
    }
}

#[tokio::test]
async fn auth_3_secret_never_stored_in_clear() {
    let (dir, cp) = setup();
    let created = cp
        .create_app(&NewApp {
            name: "Fintech".into(),
            kind: AppKind::Server,
            contact: None,
        })
        .await
        .unwrap();
    assert!(created.app_secret.len() >= 43, "256-bit secret");
    // Close the store so the WAL is checkpointed into the file, then grep it.
    drop(cp);
    let mut all = Vec::new();
    for e in std::fs::read_dir(dir.path()).unwrap() {
        all.extend(std::fs::read(e.unwrap().path()).unwrap());
    }
    let needle = created.app_secret.as_bytes();
    assert!(
        !all.windows(needle.len()).any(|w| w == needle),
        "App_Secret found in clear in the store files"
    );
}

#[tokio::test]
async fn onb_3_new_app_has_no_grants_and_secret_opens() {
    let (_d, cp) = setup();
    let c = cp
        .create_app(&NewApp {
            name: "A".into(),
            kind: AppKind::Mobile,
            contact: None,
        })
        .await
        .unwrap();
    assert!(cp
        .store
        .list_grants(Some(&c.app.app_id))
        .await
        .unwrap()
        .is_empty());
    let creds = cp.store.list_credentials(&c.app.app_id).await.unwrap();
    assert_eq!(creds.len(), 1);
    assert_eq!(
        cp.open_secret(&creds[0]).unwrap().as_slice(),
        c.app_secret.as_bytes()
    );
}

#[tokio::test]
async fn uid_2_sequence_assigned_and_cancelled_code_never_reused() {
    let (_d, cp) = setup();
    let a = cp
        .create_api(&api("products", "/v1/products", Level::A1))
        .await
        .unwrap();
    let b = cp
        .create_api(&api("rates", "/v1/rates", Level::A1))
        .await
        .unwrap();
    let ua = UApiId::decode(&a.u_api_id).unwrap();
    let ub = UApiId::decode(&b.u_api_id).unwrap();
    assert_eq!((ua.sequence, ub.sequence), (1, 2));
    assert_eq!(ua.institution, "C10305");
    // A2 APIs have their own type and sequence.
    let c = cp
        .create_api(&api("balance", "/v1/balance", Level::A2))
        .await
        .unwrap();
    assert_eq!(UApiId::decode(&c.u_api_id).unwrap().sequence, 1);
    // Take `rates` offline: its code is cancelled, the next API gets 3, not 2.
    cp.store
        .set_api_lifecycle("rates", Lifecycle::Offline)
        .await
        .unwrap();
    assert_eq!(cp.store.uapi_status(&b.u_api_id).await.unwrap(), Some(true));
    let d = cp
        .create_api(&api("fx", "/v1/fx", Level::A1))
        .await
        .unwrap();
    assert_eq!(UApiId::decode(&d.u_api_id).unwrap().sequence, 3);
    // Offline cannot come back.
    assert!(matches!(
        cp.store
            .set_api_lifecycle("rates", Lifecycle::Published)
            .await,
        Err(StoreError::Conflict(_))
    ));
}

#[tokio::test]
async fn lvl_1_conflicts_name_the_field() {
    let (_d, cp) = setup();
    cp.create_api(&api("products", "/v1/products", Level::A1))
        .await
        .unwrap();
    match cp
        .create_api(&api("products", "/v1/other", Level::A1))
        .await
    {
        Err(StoreError::Conflict(v)) => assert_eq!(v.field, "api_id"),
        other => panic!("{other:?}"),
    }
    match cp
        .create_api(&api("products2", "/v1/products", Level::A1))
        .await
    {
        Err(StoreError::Conflict(v)) => assert_eq!(v.field, "path"),
        other => panic!("{other:?}"),
    }
    let mut bad = api("x", "/v1/x", Level::A1);
    bad.category = 0;
    match cp.create_api(&bad).await {
        Err(StoreError::Invalid(v)) => assert_eq!(v.field, "category"),
        other => panic!("{other:?}"),
    }
    // Nothing half-written: the failed ones are not listed.
    assert_eq!(cp.store.list_apis().await.unwrap().len(), 1);
}

#[tokio::test]
async fn rotation_with_grace_keeps_two_then_revokes() {
    let (_d, cp) = setup();
    let c = cp
        .create_app(&NewApp {
            name: "A".into(),
            kind: AppKind::Server,
            contact: None,
        })
        .await
        .unwrap();
    let s2 = cp.rotate_secret(&c.app.app_id, 60).await.unwrap();
    assert_ne!(*s2, *c.app_secret);
    let dump = cp.store.dump_catalog().await.unwrap();
    let active: Vec<_> = dump
        .credentials
        .iter()
        .filter(|x| x.app_id == c.app.app_id)
        .collect();
    assert_eq!(active.len(), 2);
    assert!(active.iter().any(|x| x.not_after.is_some()));
    cp.rotate_secret(&c.app.app_id, 0).await.unwrap();
    let dump = cp.store.dump_catalog().await.unwrap();
    assert_eq!(
        dump.credentials
            .iter()
            .filter(|x| x.app_id == c.app.app_id)
            .count(),
        1
    );
}

#[tokio::test]
async fn auth_5_ip_rules_validated_and_versions_bump() {
    let (_d, cp) = setup();
    let v0 = cp.store.version().await.unwrap();
    let rx = cp.store.subscribe();
    let r = cp
        .store
        .add_ip_rule(&NewIpRule {
            app_id: None,
            action: IpAction::Deny,
            cidr: "2001:db8::/32".into(),
            note: None,
        })
        .await
        .unwrap();
    assert!(cp.store.version().await.unwrap() > v0);
    assert!(rx.has_changed().unwrap());
    assert_eq!(r.cidr.to_string(), "2001:db8::/32");
    let e = cp
        .store
        .add_ip_rule(&NewIpRule {
            app_id: None,
            action: IpAction::Deny,
            cidr: "300.1.1.1".into(),
            note: None,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(e, StoreError::Invalid(ref v) if v.field == "cidr"),
        "{e:?}"
    );
    let e = cp
        .store
        .add_ip_rule(&NewIpRule {
            app_id: None,
            action: IpAction::Allow,
            cidr: "10.0.0.0/8".into(),
            note: None,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(e, StoreError::Invalid(ref v) if v.field == "action"),
        "{e:?}"
    );
    let s = cp.store.set_app_status("nope", AppStatus::Suspended).await;
    assert!(matches!(s, Err(StoreError::NotFound(_))));
}

#[tokio::test]
async fn lvl_2_two_level_profile_refuses_a3_and_keeps_a2() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("menshen.db")).unwrap());
    let master = Arc::new(MasterKey::from_text(&MasterKey::generate()).unwrap());
    let cp = ControlPlane::new(
        store,
        master,
        UApiConfig {
            prefix: "0P".into(),
            institution: "C10305".into(),
        },
    )
    .with_profile(menshen_model::LevelProfile::TwoLevel);
    match cp.create_api(&api("pay", "/v1/pay", Level::A3)).await {
        Err(StoreError::Invalid(v)) => assert_eq!(v.field, "level"),
        other => panic!("{other:?}"),
    }
    // A2 covers funds in this profile and keeps the A2/A3 minimum controls.
    let a = cp
        .create_api(&api("pay", "/v1/pay", Level::A2))
        .await
        .unwrap();
    assert!(a.controls.sign_responses);
    assert!(!a.controls.auth.contains(&menshen_model::AuthMethod::Secret));
}

fn row(seq: u64, time_ms: i64, app: &str, result: &str) -> menshen_store::AuditRow {
    menshen_store::AuditRow {
        seq,
        segment: 1,
        offset: seq * 100,
        kind: "access".into(),
        txn_id: Some(format!("T{seq}")),
        time_ms,
        app_id: Some(app.into()),
        api_id: Some("products".into()),
        user_id: None,
        result: Some(result.into()),
        status: Some(200),
        code: None,
        duration_us: Some(1000),
    }
}

#[tokio::test]
async fn aud_6_index_search_by_fields_and_time_and_bad_times_name_the_field() {
    let (_d, cp) = setup();
    // 2026-11-30T00:00:00Z.
    let t0 = 1_795_996_800_000i64;
    let rows = vec![
        row(1, t0, "a", "success"),
        row(2, t0 + 60_000, "b", "failure"),
        row(3, t0 + 120_000, "a", "success"),
    ];
    cp.store.index_audit(rows, None, None).await.unwrap();
    let q = |f: fn(&mut menshen_store::AuditQuery)| {
        let mut q = menshen_store::AuditQuery {
            limit: 100,
            ..Default::default()
        };
        f(&mut q);
        q
    };
    let seqs = |r: Vec<menshen_store::AuditRow>| r.iter().map(|r| r.seq).collect::<Vec<_>>();
    let all = cp.store.search_audit(&q(|_| {})).await.unwrap();
    assert_eq!(seqs(all), [3, 2, 1]);
    let by_app = cp
        .store
        .search_audit(&q(|q| q.app_id = Some("a".into())))
        .await
        .unwrap();
    assert_eq!(seqs(by_app), [3, 1]);
    let failed = cp
        .store
        .search_audit(&q(|q| q.result = Some("failure".into())))
        .await
        .unwrap();
    assert_eq!(seqs(failed), [2]);
    // [from, to): the time range in RFC 3339, any offset.
    let range = cp
        .store
        .search_audit(&q(|q| {
            q.from = Some("2026-11-30T08:01:00+08:00".into());
            q.to = Some("2026-11-30T00:02:00Z".into());
        }))
        .await
        .unwrap();
    assert_eq!(seqs(range), [2]);
    // The resume mark: absent until set, never lowered.
    assert!(cp.store.audit_index_watermark().await.unwrap().is_none());
    cp.store.index_audit(vec![], None, Some(2)).await.unwrap();
    cp.store.index_audit(vec![], None, Some(1)).await.unwrap();
    let w = cp.store.audit_index_watermark().await.unwrap().unwrap();
    assert_eq!((w.seq, w.segment, w.offset), (2, 1, 200));
    for field in ["from", "to"] {
        let mut bad = q(|_| {});
        if field == "from" {
            bad.from = Some("yesterday".into());
        } else {
            bad.to = Some("2026-13-01".into());
        }
        match cp.store.search_audit(&bad).await {
            Err(menshen_store::StoreError::Invalid(e)) => assert_eq!(e.field, field),
            other => panic!("{field}: {other:?}"),
        }
    }
}

/// Concurrent binds of one certificate leave exactly one binding (AUTH-1,
/// KEY-4): 20 apps race to bind the same certificate, 10 rounds on a fresh
/// store each; one bind wins, the other 19 get a conflict naming
/// `certificate_pem`, and one unrevoked credential holds the fingerprint.
/// Once that binding is revoked, another app may bind the certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn auth_1_key_4_concurrent_certificate_binds_leave_one_binding() {
    const PEM: &str = include_str!("fixtures/client-cert.pem");
    const TASKS: usize = 20;
    for round in 0..10 {
        let (_d, cp) = setup();
        let cp = Arc::new(cp);
        let mut apps = Vec::new();
        for i in 0..TASKS {
            let c = cp
                .create_app(&NewApp {
                    name: format!("bank-app-{i}"),
                    kind: AppKind::Server,
                    contact: None,
                })
                .await
                .unwrap();
            apps.push(c.app.app_id);
        }
        let start = Arc::new(tokio::sync::Barrier::new(TASKS));
        let tasks: Vec<_> = apps
            .iter()
            .cloned()
            .map(|app| {
                let (cp, start) = (cp.clone(), start.clone());
                tokio::spawn(async move {
                    start.wait().await;
                    cp.add_certificate(&app, PEM).await
                })
            })
            .collect();
        let mut won = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                Ok(c) => won.push(c),
                Err(StoreError::Conflict(v)) => assert_eq!(v.field, "certificate_pem", "{v}"),
                Err(e) => panic!("round {round}: unexpected {e:?}"),
            }
        }
        assert_eq!(won.len(), 1, "round {round}: {} binds succeeded", won.len());
        let fp = won[0].fingerprint.clone().unwrap();
        let bound = cp.store.find_credential_by_fingerprint(&fp).await.unwrap();
        assert_eq!(bound.map(|c| c.app_id), Some(won[0].app_id.clone()));
        let dump = cp.store.dump_catalog().await.unwrap();
        let live = dump
            .credentials
            .iter()
            .filter(|c| c.fingerprint.as_deref() == Some(&fp))
            .count();
        assert_eq!(live, 1, "round {round}");
        if round == 9 {
            cp.store
                .revoke_credential(&won[0].app_id, won[0].id)
                .await
                .unwrap();
            let other = apps.iter().find(|a| **a != won[0].app_id).unwrap();
            let again = cp.add_certificate(other, PEM).await.unwrap();
            assert_eq!(again.app_id, *other);
        }
    }
}
