//! Store behaviour, through the `Store` trait and the control plane: one
//! suite, two backends (issue 12 item 1). Every case runs twice, as
//! `sqlite::NAME` on a real SQLite file and as `postgres::NAME` on a real
//! PostgreSQL server (one per test process, a fresh database per case,
//! started by `menshen-testsupport`; skipped with a message when PostgreSQL
//! is not installed, unless `MENSHEN_REQUIRE_SERVICES=1`).

use std::sync::Arc;

use menshen_crypto::MasterKey;
use menshen_model::{
    AppKind, AppStatus, IpAction, Level, Lifecycle, LimitAction, LimitWindow, Method, NewApi,
    NewApp, NewIpRule, NewLimitRule, UApiId,
};
use menshen_store::{
    ControlPlane, PgStore, PgStoreConfig, SqliteStore, Store, StoreError, UApiConfig,
};

/// Which store a case runs on.
#[derive(Debug, Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

/// Where a store keeps its bytes, for the cases that check no secret is in
/// them in clear.
enum Files {
    Sqlite(tempfile::TempDir),
    Postgres(&'static menshen_testsupport::PgServer),
}

impl Files {
    /// Every byte the store has written so far (after a checkpoint, so
    /// nothing is only in the server's memory).
    fn bytes(&self) -> Vec<u8> {
        fn walk(p: &std::path::Path, out: &mut Vec<u8>) {
            for e in std::fs::read_dir(p).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, out);
                } else if let Ok(b) = std::fs::read(&p) {
                    out.extend(b);
                }
            }
        }
        let mut all = Vec::new();
        match self {
            Files::Sqlite(d) => walk(d.path(), &mut all),
            Files::Postgres(srv) => {
                srv.psql("postgres", "CHECKPOINT");
                walk(&srv.dir().join("data"), &mut all);
            }
        }
        all
    }
}

async fn store(b: Backend) -> Option<(Files, Arc<dyn Store>)> {
    Some(match b {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let s = SqliteStore::open(&dir.path().join("menshen.db")).unwrap();
            (Files::Sqlite(dir), Arc::new(s))
        }
        Backend::Postgres => {
            let url = menshen_testsupport::shared_postgres_db()?;
            let s = PgStore::connect(&PgStoreConfig {
                url,
                pool_size: 8,
                node: "0a1b2c3d".into(),
                tls: Default::default(),
            })
            .await
            .unwrap();
            let srv = menshen_testsupport::shared_postgres().unwrap();
            (Files::Postgres(srv), Arc::new(s))
        }
    })
}

async fn setup(b: Backend) -> Option<(Files, ControlPlane)> {
    let (files, store) = store(b).await?;
    let master = Arc::new(MasterKey::from_text(&MasterKey::generate()).unwrap());
    let cp = ControlPlane::new(
        store,
        master,
        UApiConfig {
            prefix: "0P".into(),
            institution: "C10305".into(),
        },
    );
    Some((files, cp))
}

/// Each case as `sqlite::NAME` and `postgres::NAME`.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Backend::Postgres).await
                }
            )*
        }
    };
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

async fn auth_3_secret_never_stored_in_clear(b: Backend) {
    let Some((dir, cp)) = setup(b).await else {
        return;
    };
    let created = cp
        .create_app(&NewApp {
            name: "Fintech".into(),
            kind: AppKind::Server,
            contact: None,
            notify_url: None,
        })
        .await
        .unwrap();
    assert!(created.app_secret.len() >= 43, "256-bit secret");
    // Close the store so the WAL is checkpointed into the file (SQLite; a
    // CHECKPOINT on PostgreSQL), then grep every file.
    drop(cp);
    let all = dir.bytes();
    let needle = created.app_secret.as_bytes();
    assert!(
        !all.windows(needle.len()).any(|w| w == needle),
        "App_Secret found in clear in the store files"
    );
}

async fn onb_3_new_app_has_no_grants_and_secret_opens(b: Backend) {
    let Some((_d, cp)) = setup(b).await else {
        return;
    };
    let c = cp
        .create_app(&NewApp {
            name: "A".into(),
            kind: AppKind::Mobile,
            contact: None,
            notify_url: None,
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

async fn uid_2_sequence_assigned_and_cancelled_code_never_reused(b: Backend) {
    let Some((_d, cp)) = setup(b).await else {
        return;
    };
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

async fn lvl_1_conflicts_name_the_field(b: Backend) {
    let Some((_d, cp)) = setup(b).await else {
        return;
    };
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

async fn rotation_with_grace_keeps_two_then_revokes(b: Backend) {
    let Some((_d, cp)) = setup(b).await else {
        return;
    };
    let c = cp
        .create_app(&NewApp {
            name: "A".into(),
            kind: AppKind::Server,
            contact: None,
            notify_url: None,
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

async fn auth_5_ip_rules_validated_and_versions_bump(b: Backend) {
    let Some((_d, cp)) = setup(b).await else {
        return;
    };
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

/// TRF-1: limit rules are validated naming the field, stored, listed,
/// dumped for the snapshot and removed; every change bumps the version; a
/// removed rule's id is never given to a new one (its counters are keyed
/// by id).
async fn trf_1_limit_rules_validated_dumped_removed_and_versions_bump(b: Backend) {
    let Some((_d, cp)) = setup(b).await else {
        return;
    };
    let app = cp
        .create_app(&NewApp {
            name: "Fintech".into(),
            kind: AppKind::Server,
            contact: None,
            notify_url: None,
        })
        .await
        .unwrap()
        .app
        .app_id;
    cp.create_api(&api("rates", "/v1/rates", Level::A1))
        .await
        .unwrap();
    let rule = |app_id: Option<&str>, api_id: Option<&str>, max: u64| NewLimitRule {
        app_id: app_id.map(str::to_string),
        api_id: api_id.map(str::to_string),
        window: LimitWindow::Minute,
        max,
        action: LimitAction::Reject,
        per: menshen_model::LimitPer::All,
        pause_secs: None,
    };
    let v0 = cp.store.version().await.unwrap();
    let rx = cp.store.subscribe();
    let r1 = cp
        .store
        .add_limit_rule(&rule(Some(&app), Some("rates"), 5))
        .await
        .unwrap();
    assert!(cp.store.version().await.unwrap() > v0);
    assert!(rx.has_changed().unwrap());
    assert_eq!((r1.max, r1.window), (5, LimitWindow::Minute));
    let r2 = cp
        .store
        .add_limit_rule(&NewLimitRule {
            window: LimitWindow::Day,
            action: LimitAction::Alert,
            ..rule(None, None, u64::try_from(i64::MAX).unwrap())
        })
        .await
        .unwrap();
    for (bad, field) in [
        (rule(Some("nope"), None, 1), "app_id"),
        (rule(None, Some("nope"), 1), "api_id"),
        (rule(None, None, 0), "max"),
        (rule(Some(""), None, 1), "app_id"),
    ] {
        let v = cp.store.version().await.unwrap();
        let e = cp.store.add_limit_rule(&bad).await.unwrap_err();
        assert!(
            matches!(e, StoreError::Invalid(ref x) if x.field == field),
            "{field}: {e:?}"
        );
        assert_eq!(cp.store.version().await.unwrap(), v, "nothing written");
    }
    let listed = cp.store.list_limit_rules().await.unwrap();
    assert_eq!(listed, vec![r1.clone(), r2.clone()]);
    assert_eq!(cp.store.dump_catalog().await.unwrap().limit_rules, listed);
    let v = cp.store.version().await.unwrap();
    cp.store.remove_limit_rule(r1.id).await.unwrap();
    assert!(cp.store.version().await.unwrap() > v);
    assert!(matches!(
        cp.store.remove_limit_rule(r1.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        cp.store.dump_catalog().await.unwrap().limit_rules,
        vec![r2.clone()]
    );
    // Ids are never reused: a new rule does not inherit r1's counters.
    let r3 = cp
        .store
        .add_limit_rule(&rule(Some(&app), Some("rates"), 5))
        .await
        .unwrap();
    assert!(r3.id > r2.id);
}

async fn lvl_2_two_level_profile_refuses_a3_and_keeps_a2(b: Backend) {
    let Some((_d, cp)) = setup(b).await else {
        return;
    };
    let cp = cp.with_profile(menshen_model::LevelProfile::TwoLevel);
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
        // The PostgreSQL store indexes under its own node (setup's); the
        // SQLite index keeps the row's.
        node: Some("0a1b2c3d".into()),
    }
}

async fn aud_6_index_search_by_fields_and_time_and_bad_times_name_the_field(b: Backend) {
    let Some((_d, cp)) = setup(b).await else {
        return;
    };
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
    // Each row names the node whose chain holds it (issue 12 item 8).
    assert!(all.iter().all(|r| r.node.as_deref() == Some("0a1b2c3d")));
    assert_eq!(seqs(all), [3, 2, 1]);
    let other_node = cp
        .store
        .search_audit(&q(|q| q.node = Some("0a1b2c3e".into())))
        .await
        .unwrap();
    assert!(other_node.is_empty());
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

/// Searches by App_ID and API_ID (through the SQLite store's runs, issue 9)
/// return exactly what a scan of every row returns (AUD-6): the same
/// records, newest first, none twice, cut at the limit, with every other
/// filter applied; also after batches were indexed again by a catch-up
/// (overlapping, widened runs) and with record times out of sequence order
/// (a record is written when its call ends, timed when it began).
async fn aud_6_search_by_app_and_api_equals_a_scan_of_every_row(b: Backend) {
    let Some((_d, cp)) = setup(b).await else {
        return;
    };
    // A fixed pseudo-random sequence: the same rows on every run.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let apps = [Some("app-a"), Some("app-b"), Some("app-c"), None];
    let apis = [Some("products"), Some("transfer"), None];
    let results = ["success", "failure", "unknown"];
    let t0 = 1_795_996_800_000i64;
    let mut rows = Vec::new();
    for seq in 1..=2500u64 {
        let mut r = row(seq, 0, "x", results[next(3) as usize]);
        // Written in order of the call's end, timed at its start.
        r.time_ms = t0 + seq as i64 * 10 - next(3000) as i64;
        r.app_id = apps[next(4) as usize].map(str::to_string);
        r.api_id = apis[next(3) as usize].map(str::to_string);
        r.segment = 1 + seq / 1000;
        rows.push(r);
    }
    // Live batches of 1..300 rows, then catch-ups indexing ranges again.
    let mut at = 0;
    while at < rows.len() {
        let n = (1 + next(300) as usize).min(rows.len() - at);
        cp.store
            .index_audit(rows[at..at + n].to_vec(), None, None)
            .await
            .unwrap();
        at += n;
    }
    for _ in 0..6 {
        let a = next(2400) as usize;
        let n = 1 + next(500) as usize;
        let end = (a + n).min(rows.len());
        cp.store
            .index_audit(rows[a..end].to_vec(), None, None)
            .await
            .unwrap();
    }
    let iso = |ms: i64| {
        time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    // The SQLite index orders one node's records by sequence number; the
    // PostgreSQL one, shared by nodes, by time (then node, sequence).
    let mut newest_first: Vec<&menshen_store::AuditRow> = rows.iter().rev().collect();
    if matches!(b, Backend::Postgres) {
        newest_first.sort_by_key(|r| (std::cmp::Reverse(r.time_ms), std::cmp::Reverse(r.seq)));
    }
    let mut checked = 0;
    for app in [Some("app-a"), Some("app-c"), Some("nobody"), None] {
        for api in [Some("products"), Some("transfer"), None] {
            if app.is_none() && api.is_none() {
                continue;
            }
            for limit in [1u32, 7, 100, 1000] {
                for (from, to, result) in [
                    (None, None, None),
                    (Some(t0 + 5_000), None, None),
                    (None, Some(t0 + 12_000), Some("failure")),
                    (Some(t0 + 3_000), Some(t0 + 3_400), None),
                ] {
                    let q = menshen_store::AuditQuery {
                        app_id: app.map(str::to_string),
                        api_id: api.map(str::to_string),
                        from: from.map(iso),
                        to: to.map(iso),
                        result: result.map(str::to_string),
                        limit,
                        ..Default::default()
                    };
                    let got: Vec<u64> = cp
                        .store
                        .search_audit(&q)
                        .await
                        .unwrap()
                        .iter()
                        .map(|r| r.seq)
                        .collect();
                    let want: Vec<u64> = newest_first
                        .iter()
                        .filter(|r| app.is_none() || r.app_id.as_deref() == app)
                        .filter(|r| api.is_none() || r.api_id.as_deref() == api)
                        .filter(|r| from.is_none_or(|f| r.time_ms >= f))
                        .filter(|r| to.is_none_or(|t| r.time_ms < t))
                        .filter(|r| result.is_none_or(|x| r.result.as_deref() == Some(x)))
                        .take(limit as usize)
                        .map(|r| r.seq)
                        .collect();
                    assert_eq!(got, want, "{q:?}");
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 11 * 4 * 4);
}

/// Concurrent binds of one certificate leave exactly one binding (AUTH-1,
/// KEY-4): 20 apps race to bind the same certificate, 10 rounds on a fresh
/// store each; one bind wins, the other 19 get a conflict naming
/// `certificate_pem`, and one unrevoked credential holds the fingerprint.
/// Once that binding is revoked, another app may bind the certificate.
async fn auth_1_key_4_concurrent_certificate_binds_leave_one_binding(b: Backend) {
    const PEM: &str = include_str!("fixtures/client-cert.pem");
    const TASKS: usize = 20;
    for round in 0..10 {
        let Some((_d, cp)) = setup(b).await else {
            return;
        };
        let cp = Arc::new(cp);
        let mut apps = Vec::new();
        for i in 0..TASKS {
            let c = cp
                .create_app(&NewApp {
                    name: format!("bank-app-{i}"),
                    kind: AppKind::Server,
                    contact: None,
                    notify_url: None,
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

// ---- Customers and consents (issue 11) ----

fn consent(id: &str, app: &str, user: &str) -> menshen_model::Consent {
    menshen_model::Consent {
        consent_id: id.into(),
        app_id: app.into(),
        user_id: Some(user.into()),
        scopes: vec!["balance".into()],
        accounts: vec!["6222020000000001".into()],
        state: menshen_model::ConsentState::Authorised,
        expires_at: 2_000_000_000,
        use_limit: Some(3),
        daily_limit: None,
        uses: 0,
        agent_user_id: None,
        agent_approved: false,
        two_factor: true,
        created_at: 1_700_000_000,
        authorised_at: Some(1_700_000_001),
        revoked_by: None,
        ended_at: None,
    }
}

async fn usr_1_customer_password_hashed_totp_sealed_and_duplicates_refused(b: Backend) {
    let Some((dir, cp)) = setup(b).await else {
        return;
    };
    let (c, totp) = cp
        .create_customer(
            "zhang.san",
            "张三",
            "correct horse",
            vec!["6222020000000001".into(), "6222020000000002".into()],
            true,
        )
        .await
        .unwrap();
    assert!(
        c.user_id.starts_with('C') && c.user_id.len() == 27,
        "{}",
        c.user_id
    );
    assert!(c.has_totp && c.locked_until.is_none());
    let totp = totp.expect("TOTP secret shown once");
    let secret = cp.open_totp_secret(&c.user_id).await.unwrap().unwrap();
    assert_eq!(secret.len(), 20);
    assert_eq!(menshen_crypto::totp::base32_encode(&secret), totp.as_str());

    let (found, hash, sealed) = cp
        .store
        .find_customer_login("zhang.san")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, c);
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(ControlPlane::verify_password(&hash, "correct horse"));
    assert!(!ControlPlane::verify_password(&hash, "correct horsE"));
    assert!(!ControlPlane::verify_password(
        "not a hash",
        "correct horse"
    ));
    assert!(sealed.is_some());
    assert!(cp
        .store
        .find_customer_login("nobody")
        .await
        .unwrap()
        .is_none());
    assert_eq!(cp.store.get_customer(&c.user_id).await.unwrap(), c);

    // Duplicate username, and an account that already has an owner.
    match cp
        .create_customer(
            "zhang.san",
            "Other",
            "password1",
            vec!["6222020000000009".into()],
            false,
        )
        .await
    {
        Err(StoreError::Conflict(v)) => assert_eq!(v.field, "username"),
        other => panic!("{other:?}"),
    }
    match cp
        .create_customer(
            "li.si",
            "李四",
            "password1",
            vec!["6222020000000002".into()],
            false,
        )
        .await
    {
        Err(StoreError::Conflict(v)) => assert_eq!(v.field, "accounts"),
        other => panic!("{other:?}"),
    }
    // Input validation names the field.
    for (u, p, a, field) in [
        ("ab", "password1", "622202000001", "username"),
        ("with space", "password1", "622202000001", "username"),
        ("li.si", "short", "622202000001", "password"),
        ("li.si", "password1", "12345", "accounts"),
        ("li.si", "password1", "62220200000x", "accounts"),
    ] {
        match cp.create_customer(u, "N", p, vec![a.into()], false).await {
            Err(StoreError::Invalid(v)) => assert_eq!(v.field, field, "{u} {p} {a}"),
            other => panic!("{u} {p} {a}: {other:?}"),
        }
    }
    // Nothing half-written by the refused ones.
    let all = cp.store.list_customers().await.unwrap();
    assert_eq!(all.len(), 1);
    let (li, none) = cp
        .create_customer(
            "li.si",
            "李四",
            "password1",
            vec!["6222020000000003".into()],
            false,
        )
        .await
        .unwrap();
    assert!(none.is_none() && !li.has_totp);
    assert!(cp.open_totp_secret(&li.user_id).await.unwrap().is_none());
    assert_eq!(cp.store.list_customers().await.unwrap().len(), 2);

    // Neither the password nor the TOTP secret is in the files in clear.
    drop(cp);
    let bytes = dir.bytes();
    for needle in [
        b"correct horse".as_slice(),
        secret.as_slice(),
        totp.as_bytes(),
    ] {
        assert!(!bytes.windows(needle.len()).any(|w| w == needle));
    }
}

async fn usr_7_lockout_after_n_failures_and_cleared_by_success(b: Backend) {
    let Some((_d, cp)) = setup(b).await else {
        return;
    };
    let (c, _) = cp
        .create_customer(
            "wang.wu",
            "王五",
            "password1",
            vec!["6222020000000004".into()],
            false,
        )
        .await
        .unwrap();
    let v0 = cp.store.version().await.unwrap();
    for i in 1..5 {
        let after = cp
            .store
            .record_login_failure(&c.user_id, 1000 + i, 5, 900)
            .await
            .unwrap();
        assert_eq!(after.locked_until, None, "failure {i}");
    }
    let locked = cp
        .store
        .record_login_failure(&c.user_id, 1005, 5, 900)
        .await
        .unwrap();
    assert_eq!(locked.locked_until, Some(1905));
    // The count started again: four more failures do not extend the lock.
    for i in 0..4 {
        let after = cp
            .store
            .record_login_failure(&c.user_id, 1006 + i, 5, 900)
            .await
            .unwrap();
        assert_eq!(after.locked_until, Some(1905));
    }
    cp.store.clear_login_failures(&c.user_id).await.unwrap();
    let cleared = cp.store.get_customer(&c.user_id).await.unwrap();
    assert_eq!(cleared.locked_until, None);
    // Cleared means from zero again.
    for i in 0..4 {
        let after = cp
            .store
            .record_login_failure(&c.user_id, 2000 + i, 5, 900)
            .await
            .unwrap();
        assert_eq!(after.locked_until, None);
    }
    assert!(matches!(
        cp.store.record_login_failure("Cnobody", 0, 5, 900).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        cp.store.version().await.unwrap(),
        v0,
        "not a catalog change"
    );
}

async fn usr_6_consent_cas_refuses_a_wrong_expected_state(b: Backend) {
    use menshen_model::{ConsentState, RevokedBy};
    let Some((_d, cp)) = setup(b).await else {
        return;
    };
    let app = cp
        .create_app(&NewApp {
            name: "Fintech".into(),
            kind: AppKind::Server,
            contact: None,
            notify_url: None,
        })
        .await
        .unwrap()
        .app
        .app_id;
    let id = menshen_store::new_consent_id();
    assert!(id.starts_with("CN") && id.len() == 28, "{id}");
    let c = consent(&id, &app, "C1");
    let v0 = cp.store.version().await.unwrap();
    cp.store.insert_consent(&c).await.unwrap();
    assert!(matches!(
        cp.store.insert_consent(&c).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(cp.store.get_consent(&id).await.unwrap(), c);

    // A counted use, only from authorised.
    let mut used = c.clone();
    used.uses = 1;
    let stored = cp
        .store
        .update_consent(&used, &[ConsentState::Authorised])
        .await
        .unwrap();
    assert_eq!(stored.uses, 1);

    let revoked = cp.revoke_consent(&id, RevokedBy::Bank).await.unwrap();
    assert_eq!(revoked.state, ConsentState::Revoked);
    assert_eq!(revoked.revoked_by, Some(RevokedBy::Bank));
    assert!(revoked.ended_at.is_some());
    // Revoking an already revoked consent: the CAS refuses it.
    match cp.revoke_consent(&id, RevokedBy::Customer).await {
        Err(StoreError::Conflict(v)) => assert_eq!(v.field, "state"),
        other => panic!("{other:?}"),
    }
    // Nor can a stale writer bring it back.
    match cp
        .store
        .update_consent(&used, &[ConsentState::Authorised])
        .await
    {
        Err(StoreError::Conflict(v)) => assert_eq!(v.field, "state"),
        other => panic!("{other:?}"),
    }
    let now = cp.store.get_consent(&id).await.unwrap();
    assert_eq!(now.revoked_by, Some(RevokedBy::Bank));
    assert!(matches!(
        cp.store.get_consent("CNnone").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        cp.revoke_consent("CNnone", RevokedBy::Bank).await,
        Err(StoreError::NotFound(_))
    ));

    // Listing by app and by customer (the agent included, USR-5).
    let mut agent = consent(&menshen_store::new_consent_id(), &app, "C2");
    agent.agent_user_id = Some("C3".into());
    agent.state = ConsentState::AwaitingAuthorisation;
    cp.store.insert_consent(&agent).await.unwrap();
    assert_eq!(cp.store.list_consents(None, None).await.unwrap().len(), 2);
    assert_eq!(
        cp.store
            .list_consents(Some(&app), None)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        cp.store
            .list_consents(Some("other"), None)
            .await
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        cp.store.list_consents(None, Some("C1")).await.unwrap()[0].consent_id,
        id
    );
    assert_eq!(
        cp.store
            .list_consents(Some(&app), Some("C3"))
            .await
            .unwrap(),
        vec![agent]
    );
    assert_eq!(
        cp.store.version().await.unwrap(),
        v0,
        "consents are not catalog"
    );
}

async fn usr_6_concurrent_transitions_one_wins(b: Backend) {
    use menshen_model::{ConsentState, RevokedBy};
    let Some((_d, cp)) = setup(b).await else {
        return;
    };
    let id = menshen_store::new_consent_id();
    cp.store
        .insert_consent(&consent(&id, "A", "C1"))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (cp, id) = (cp.clone(), id.clone());
            tokio::spawn(async move { cp.revoke_consent(&id, RevokedBy::App).await })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(c) => {
                assert_eq!(c.state, ConsentState::Revoked);
                won += 1
            }
            Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(won, 1);
}

async fn redirect_uris_replaced_per_app_in_order(b: Backend) {
    let Some((_d, cp)) = setup(b).await else {
        return;
    };
    let app = cp
        .create_app(&NewApp {
            name: "Fintech".into(),
            kind: AppKind::Server,
            contact: None,
            notify_url: None,
        })
        .await
        .unwrap()
        .app
        .app_id;
    assert!(cp.store.redirect_uris(&app).await.unwrap().is_empty());
    let uris = vec![
        "https://fintech.example/cb".to_string(),
        "http://127.0.0.1:8080/cb".to_string(),
    ];
    cp.store.set_redirect_uris(&app, &uris).await.unwrap();
    assert_eq!(cp.store.redirect_uris(&app).await.unwrap(), uris);
    cp.store.set_redirect_uris(&app, &uris[1..]).await.unwrap();
    assert_eq!(cp.store.redirect_uris(&app).await.unwrap(), &uris[1..]);
    assert!(matches!(
        cp.store.set_redirect_uris("app_none", &uris).await,
        Err(StoreError::NotFound(_))
    ));
}

/// MON-2: an alert raised twice with one key is one alert counted twice
/// (severity only raised), acknowledged then resolved; a new raise after
/// resolution opens a new alert; a wrong transition names `state`.
async fn mon_2_alerts_deduplicated_acknowledged_resolved(b: Backend) {
    use menshen_model::alert::{AlertSeverity, AlertState, NewAlert};
    let Some((_d, cp)) = setup(b).await else {
        return;
    };
    let new = |sev| NewAlert {
        rule: "auth_failures".into(),
        key: "auth_failures:app_x".into(),
        severity: sev,
        summary: "many failures".into(),
        details: serde_json::json!({"n": 1}),
    };
    let (a, fresh) = cp
        .store
        .raise_alert(&new(AlertSeverity::Warning))
        .await
        .unwrap();
    assert!(fresh);
    let (again, fresh) = cp
        .store
        .raise_alert(&new(AlertSeverity::Critical))
        .await
        .unwrap();
    assert!(!fresh);
    assert_eq!(
        (again.id, again.count, again.severity),
        (a.id, 2, AlertSeverity::Critical)
    );
    let acked = cp
        .store
        .set_alert_state(a.id, AlertState::Acknowledged, "ops")
        .await
        .unwrap();
    assert_eq!(
        (acked.state, acked.updated_by.as_deref()),
        (AlertState::Acknowledged, Some("ops"))
    );
    match cp
        .store
        .set_alert_state(a.id, AlertState::Acknowledged, "ops")
        .await
    {
        Err(StoreError::Conflict(v)) => assert_eq!(v.field, "state"),
        other => panic!("{other:?}"),
    }
    cp.store
        .set_alert_state(a.id, AlertState::Resolved, "ops")
        .await
        .unwrap();
    let (b2, fresh) = cp
        .store
        .raise_alert(&new(AlertSeverity::Info))
        .await
        .unwrap();
    assert!(fresh && b2.id != a.id);
    let open = cp.store.list_alerts(Some(AlertState::Open)).await.unwrap();
    assert_eq!(open.iter().map(|x| x.id).collect::<Vec<_>>(), vec![b2.id]);
    assert_eq!(cp.store.list_alerts(None).await.unwrap().len(), 2);
}

/// MON-3: learned baselines are saved per app x API (a save replaces),
/// loaded for one app or all.
async fn mon_3_baselines_saved_replaced_and_loaded_per_app(b: Backend) {
    use menshen_model::baseline::StoredBaseline;
    let Some((_d, cp)) = setup(b).await else {
        return;
    };
    let item = |app: &str, api: &str, n: i64| StoredBaseline {
        app_id: app.into(),
        api_id: api.into(),
        model: serde_json::json!({"n": n}),
        updated_at: n,
    };
    assert!(cp.store.load_baselines(None).await.unwrap().is_empty());
    cp.store
        .save_baselines(&[item("a1", "x", 1), item("a1", "*", 1), item("a2", "x", 1)])
        .await
        .unwrap();
    cp.store
        .save_baselines(&[item("a1", "x", 2)])
        .await
        .unwrap();
    let a1 = cp.store.load_baselines(Some("a1")).await.unwrap();
    assert_eq!(a1, vec![item("a1", "*", 1), item("a1", "x", 2)]);
    assert_eq!(cp.store.load_baselines(None).await.unwrap().len(), 3);
}

/// MON-3, KEY-4 (cluster): an app's client networks saved by two nodes
/// (writers) at once are merged, never replaced: the stored set is the
/// union, each network with its latest sighting, and the app's earliest
/// first call; `load_baseline_networks` returns just these models (of one
/// app or all, saved since a time).
async fn mon_3_baseline_networks_from_two_writers_merged(b: Backend) {
    use menshen_model::baseline::{AppNetworks, StoredBaseline, NETWORKS};
    let Some((_d, cp)) = setup(b).await else {
        return;
    };
    let nets = |first_at: i64, list: &[(&str, i64)]| AppNetworks {
        first_at,
        networks: list.iter().map(|(n, t)| (n.to_string(), *t)).collect(),
    };
    let item = |app: &str, n: &AppNetworks, at: i64| StoredBaseline {
        app_id: app.into(),
        api_id: NETWORKS.into(),
        model: serde_json::to_value(n).unwrap(),
        updated_at: at,
    };
    // Node 1 has learned 10.1.1.0/24; an API model of the app too.
    cp.store
        .save_baselines(&[
            item("a1", &nets(100, &[("10.1.1.0/24", 150)]), 200),
            StoredBaseline {
                app_id: "a1".into(),
                api_id: "x".into(),
                model: serde_json::json!({"n": 1}),
                updated_at: 200,
            },
        ])
        .await
        .unwrap();
    // Both nodes save at once, each its own view (node 2 never saw 10.1.1/24
    // and started later); repeated so the writes overlap.
    for round in 0..20i64 {
        let n1 = item(
            "a1",
            &nets(100, &[("10.1.1.0/24", 300 + round), ("10.1.2.0/24", 300)]),
            300 + round,
        );
        let n2 = item(
            "a1",
            &nets(250, &[("192.0.2.0/24", 310), ("10.1.1.0/24", 120)]),
            310 + round,
        );
        let (r1, r2) = tokio::join!(
            cp.store.save_baselines(std::slice::from_ref(&n1)),
            cp.store.save_baselines(std::slice::from_ref(&n2))
        );
        r1.unwrap();
        r2.unwrap();
    }
    let stored = cp.store.load_baseline_networks(None, 0).await.unwrap();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].app_id, "a1");
    let m: AppNetworks = serde_json::from_value(stored[0].model.clone()).unwrap();
    assert_eq!(
        m,
        nets(
            100,
            &[
                ("10.1.1.0/24", 319),
                ("10.1.2.0/24", 300),
                ("192.0.2.0/24", 310)
            ]
        )
    );
    // One app's, and only what was saved since a time.
    assert_eq!(
        cp.store
            .load_baseline_networks(Some("a1"), 300)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(cp
        .store
        .load_baseline_networks(Some("a2"), 0)
        .await
        .unwrap()
        .is_empty());
    assert!(cp
        .store
        .load_baseline_networks(None, 10_000)
        .await
        .unwrap()
        .is_empty());
    // API models are still replaced as before.
    assert_eq!(cp.store.load_baselines(Some("a1")).await.unwrap().len(), 2);
}

/// The node registry (issue 12 item 8): a node's admin API URL, where
/// another node fetches the bodies of the records in its segment files;
/// registering again replaces it.
async fn dep_2_nodes_register_their_admin_url(b: Backend) {
    let Some((_d, cp)) = setup(b).await else {
        return;
    };
    assert_eq!(cp.store.node_admin_url("0a1b2c3e").await.unwrap(), None);
    cp.store
        .register_node("0a1b2c3e", "http://127.0.0.1:9081")
        .await
        .unwrap();
    cp.store
        .register_node("0a1b2c3e", "https://node2.bank.example:9080")
        .await
        .unwrap();
    assert_eq!(
        cp.store
            .node_admin_url("0a1b2c3e")
            .await
            .unwrap()
            .as_deref(),
        Some("https://node2.bank.example:9080")
    );
    assert_eq!(cp.store.node_admin_url("0a1b2c3d").await.unwrap(), None);
}

/// MON-4, KEY-4: an app's notification URL is set and cleared; a notice
/// is added once per key (a second add returns the first), its attempts
/// counted with the state and last error, listed per app and state.
async fn mon_4_app_notify_url_and_notices_once_per_key(b: Backend) {
    use menshen_model::notice::{NewAppNotice, NoticeState};
    let Some((_d, cp)) = setup(b).await else {
        return;
    };
    let app = cp
        .create_app(&NewApp {
            name: "Fintech".into(),
            kind: AppKind::Server,
            contact: None,
            notify_url: Some("https://fintech.example/notices".into()),
        })
        .await
        .unwrap()
        .app;
    assert_eq!(
        cp.store
            .get_app(&app.app_id)
            .await
            .unwrap()
            .notify_url
            .as_deref(),
        Some("https://fintech.example/notices")
    );
    let a = cp
        .store
        .set_app_notify_url(&app.app_id, Some("https://fintech.example/n2"))
        .await
        .unwrap();
    assert_eq!(a.notify_url.as_deref(), Some("https://fintech.example/n2"));
    let a = cp
        .store
        .set_app_notify_url(&app.app_id, None)
        .await
        .unwrap();
    assert_eq!(a.notify_url, None);
    assert!(matches!(
        cp.store.set_app_notify_url("nope", None).await,
        Err(StoreError::NotFound(_))
    ));
    let new = NewAppNotice {
        key: "expiry:credential:1:30d".into(),
        app_id: app.app_id.clone(),
        kind: "credential_expiry".into(),
        body: serde_json::json!({"threshold": "30d"}),
    };
    let (n, fresh) = cp.store.add_app_notice(&new).await.unwrap();
    assert!(fresh);
    assert_eq!((n.state, n.attempts), (NoticeState::Pending, 0));
    let (again, fresh) = cp.store.add_app_notice(&new).await.unwrap();
    assert!(!fresh);
    assert_eq!(again.id, n.id);
    let n1 = cp
        .store
        .record_app_notice_attempt(n.id, NoticeState::Pending, Some("answered 503"))
        .await
        .unwrap();
    assert_eq!(
        (n1.attempts, n1.last_error.as_deref()),
        (1, Some("answered 503"))
    );
    let n2 = cp
        .store
        .record_app_notice_attempt(n.id, NoticeState::Delivered, None)
        .await
        .unwrap();
    assert_eq!((n2.state, n2.attempts), (NoticeState::Delivered, 2));
    assert_eq!(n2.body, serde_json::json!({"threshold": "30d"}));
    let (m, _) = cp
        .store
        .add_app_notice(&NewAppNotice {
            key: "expiry:credential:1:7d".into(),
            ..new.clone()
        })
        .await
        .unwrap();
    let all = cp
        .store
        .list_app_notices(Some(&app.app_id), None)
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|x| x.id).collect::<Vec<_>>(),
        vec![m.id, n.id]
    );
    let pending = cp
        .store
        .list_app_notices(None, Some(NoticeState::Pending))
        .await
        .unwrap();
    assert_eq!(pending.iter().map(|x| x.id).collect::<Vec<_>>(), vec![m.id]);
}

suite!(
    mon_4_app_notify_url_and_notices_once_per_key,
    mon_3_baselines_saved_replaced_and_loaded_per_app,
    mon_3_baseline_networks_from_two_writers_merged,
    mon_2_alerts_deduplicated_acknowledged_resolved,
    auth_3_secret_never_stored_in_clear,
    onb_3_new_app_has_no_grants_and_secret_opens,
    uid_2_sequence_assigned_and_cancelled_code_never_reused,
    lvl_1_conflicts_name_the_field,
    rotation_with_grace_keeps_two_then_revokes,
    auth_5_ip_rules_validated_and_versions_bump,
    trf_1_limit_rules_validated_dumped_removed_and_versions_bump,
    lvl_2_two_level_profile_refuses_a3_and_keeps_a2,
    aud_6_index_search_by_fields_and_time_and_bad_times_name_the_field,
    aud_6_search_by_app_and_api_equals_a_scan_of_every_row,
    dep_2_nodes_register_their_admin_url,
    auth_1_key_4_concurrent_certificate_binds_leave_one_binding,
    usr_1_customer_password_hashed_totp_sealed_and_duplicates_refused,
    usr_7_lockout_after_n_failures_and_cleared_by_success,
    usr_6_consent_cas_refuses_a_wrong_expected_state,
    usr_6_concurrent_transitions_one_wins,
    redirect_uris_replaced_per_app_in_order,
);
