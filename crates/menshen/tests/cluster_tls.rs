//! TLS on the cluster's connections (issue 12 items 1 and 3; DEP-2,
//! CONF-2): a node reaches PostgreSQL with `store.tls = "verify-full"` (the
//! pool and the LISTEN connection both over TLS) and serves; with the wrong
//! CA it does not start and says why; a node reaches a TLS-only Redis
//! (`rediss://`, a client certificate required) and serves a
//! nonce-protected call, refusing its replay.
//!
//! Each test starts its own servers on 127.0.0.1 (`menshen-testsupport`),
//! with certificates made for the test (rcgen, `menshen::pki`); without the
//! servers it prints "skipped: ..." unless `MENSHEN_REQUIRE_SERVICES=1`.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Harness, HarnessOptions};
use menshen_sdk::SignOptions;
use menshen_store::postgres::tls::PgTlsMode;

/// A CA and a server certificate naming 127.0.0.1 in `dir`.
fn pki(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    menshen::pki::write_demo_pki(dir).unwrap();
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

/// DEP-2, CONF-2: `tls = "verify-full"` with the server's CA: the node
/// starts, is served by the store, and every one of its PostgreSQL
/// connections (the pool's and the LISTEN one) is TLS (`pg_stat_ssl`); a
/// change made through its admin API is served at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dep_2_postgres_verify_full_node_connects_and_serves() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = pki(certs.path());
    let Some(pg) = menshen_testsupport::postgres_tls(&cert, &key) else {
        return;
    };
    pg.create_database("menshen");
    let h = Harness::start_with(HarnessOptions {
        store_url: Some(pg.url("menshen")),
        node_id: Some("0000a001".into()),
        configure: Some(Box::new(move |c| {
            c.store.tls = Some(PgTlsMode::VerifyFull);
            c.store.ca_file = Some(ca);
        })),
        ..Default::default()
    })
    .await;
    h.api("ping", "GET", "/v1/ping", "A1").await;
    let (app_id, secret) = h.app("fintech", "server").await;
    h.grant(&app_id, "ping").await;
    let c = h.client(&app_id, &secret);
    // The refresher picks the grant up (bounded).
    let t = std::time::Instant::now();
    loop {
        let r = c.call("GET", "/v1/ping", None).await.unwrap();
        if r.status == 200 {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", r.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let count = |ssl: bool| -> usize {
        pg.psql(
            "menshen",
            &format!(
                "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
                 WHERE a.application_name IN ('menshen', '{}') AND s.ssl = {ssl}",
                menshen_store::postgres::LISTEN_APP_NAME
            ),
        )
        .trim()
        .parse()
        .unwrap()
    };
    assert_eq!(count(false), 0, "no plain connection from the node");
    assert!(count(true) >= 2, "the pool's and the listener's over TLS");
    let listen_tls: usize = pg
        .psql(
            "menshen",
            &format!(
                "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
                 WHERE a.application_name = '{}' AND s.ssl",
                menshen_store::postgres::LISTEN_APP_NAME
            ),
        )
        .trim()
        .parse()
        .unwrap();
    assert_eq!(listen_tls, 1, "the LISTEN connection is TLS");
}

/// DEP-2, CONF-2: a CA that did not issue the server's certificate: the
/// node refuses to start, naming `store` and the certificate problem; a
/// server without TLS is refused too (no silent fallback to plain).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dep_2_postgres_wrong_ca_node_does_not_start() {
    let certs = tempfile::tempdir().unwrap();
    let (_ca, cert, key) = pki(&certs.path().join("right"));
    let (wrong_ca, _, _) = pki(&certs.path().join("wrong"));
    let Some(pg) = menshen_testsupport::postgres_tls(&cert, &key) else {
        return;
    };
    pg.create_database("menshen");
    // A node on the embedded store, whose config is the template.
    let h = Harness::start().await;
    let mut cfg = h.config.clone();
    cfg.data_dir = h.dir.path().join("data-pg");
    cfg.node_id = Some("0000a002".into());
    cfg.store.url = Some(pg.url("menshen"));
    cfg.store.tls = Some(PgTlsMode::VerifyFull);
    cfg.store.ca_file = Some(wrong_ca.clone());
    let e = match menshen::node::Node::start_with(cfg.clone(), None).await {
        Ok(_) => panic!("started with a CA that did not issue the server's certificate"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        e.starts_with("store.url: cannot open the PostgreSQL store")
            && e.contains("certificate")
            && e.contains("store.ca_file"),
        "{e}"
    );

    // verify-full against a server without TLS: refused, not downgraded.
    let Some(plain) = menshen_testsupport::postgres() else {
        return;
    };
    plain.create_database("menshen");
    cfg.store.url = Some(plain.url("menshen"));
    let e = match menshen::node::Node::start_with(cfg, None).await {
        Ok(_) => panic!("verify-full connected to a server without TLS"),
        Err(e) => format!("{e:#}"),
    };
    assert!(e.starts_with("store.url: cannot open"), "{e}");
}

/// DEP-2, INT-4, CONF-2: Redis with a TLS port only and client
/// certificates required: a node with `rediss://`, the CA and its client
/// certificate serves a signed call and refuses its replay (the nonce in
/// Redis, over TLS); without the client certificate it does not start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dep_2_rediss_with_client_certificate_serves_and_refuses_a_replay() {
    let certs = tempfile::tempdir().unwrap();
    let dir = certs.path();
    let (ca, cert, key) = pki(&dir.join("server"));
    let clients = menshen::pki::client_pki(&dir.join("clients"), &["menshen-node"]).unwrap();
    std::fs::write(dir.join("client.pem"), &clients.clients[0].0).unwrap();
    menshen::pki::write_private(&dir.join("client.key"), clients.clients[0].1.as_bytes()).unwrap();
    // One bundle: Redis checks client certificates against it, redis-cli
    // the server's.
    let bundle = dir.join("bundle.pem");
    let mut b = std::fs::read(&ca).unwrap();
    b.extend(std::fs::read(&clients.ca_file).unwrap());
    std::fs::write(&bundle, b).unwrap();
    let Some(redis) = menshen_testsupport::redis_tls(&menshen_testsupport::RedisTlsFiles {
        cert,
        key,
        ca: bundle,
        client: Some((dir.join("client.pem"), dir.join("client.key"))),
    }) else {
        return;
    };
    assert!(redis.url().starts_with("rediss://"));
    let (ca2, cc, ck) = (ca.clone(), dir.join("client.pem"), dir.join("client.key"));
    let h = Harness::start_with(HarnessOptions {
        hot_state_url: Some(redis.url()),
        configure: Some(Box::new(move |c| {
            c.hot_state.ca_file = Some(ca2);
            c.hot_state.client_cert = Some(cc);
            c.hot_state.client_key = Some(ck);
        })),
        ..Default::default()
    })
    .await;
    h.api("ping", "GET", "/v1/ping", "A1").await;
    let (app_id, secret) = h.app("fintech", "server").await;
    h.grant(&app_id, "ping").await;
    let c = h.client(&app_id, &secret);
    let opts = SignOptions {
        nonce: Some("tls-nonce-0123456789abcdef".into()),
        ..Default::default()
    };
    let send = || async {
        let mut req = c.request("GET", "/v1/ping", None).unwrap();
        c.sign(&mut req, Some(&opts)).unwrap();
        let r = c.send(req).await.unwrap();
        (r.status, r.error().map(|e| e.code))
    };
    assert_eq!(send().await, (200, None));
    assert_eq!(send().await, (401, Some("REPLAYED_REQUEST".into())));
    // The nonce is in Redis (over TLS), under the app's stable id.
    let keys = redis.cli(&["--scan", "--pattern", "menshen:nonce:*"]);
    assert!(keys.contains("tls-nonce-0123456789abcdef"), "{keys}");

    // Without the client certificate the server refuses the handshake: the
    // node does not start, and says where.
    let mut cfg = h.config.clone();
    cfg.data_dir = h.dir.path().join("data-2");
    cfg.hot_state.client_cert = None;
    cfg.hot_state.client_key = None;
    let e = match menshen::node::Node::start_with(cfg, None).await {
        Ok(_) => panic!("started without the client certificate Redis requires"),
        Err(e) => format!("{e:#}"),
    };
    assert!(e.contains("hot_state.url: cannot reach Redis"), "{e}");
}

/// DEP-2, CONF-2: certificate authentication to PostgreSQL
/// (`hostssl ... cert`): with `client_cert` / `client_key` (CN = the
/// database user) the node connects, every connection presenting the
/// certificate; without them the server refuses and the node does not start;
/// a client key group or others can read is refused before any connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dep_2_postgres_client_certificate_authentication() {
    let certs = tempfile::tempdir().unwrap();
    let dir = certs.path();
    let (ca, cert, key) = pki(&dir.join("server"));
    let clients = menshen::pki::client_pki(&dir.join("clients"), &["menshen"]).unwrap();
    let (cc, ck) = (dir.join("pg-client.pem"), dir.join("pg-client.key"));
    std::fs::write(&cc, &clients.clients[0].0).unwrap();
    menshen::pki::write_private(&ck, clients.clients[0].1.as_bytes()).unwrap();
    let Some(pg) = menshen_testsupport::postgres_tls_client_auth(&cert, &key, &clients.ca_file)
    else {
        return;
    };
    pg.create_database("menshen");
    let (ca2, cc2, ck2) = (ca.clone(), cc.clone(), ck.clone());
    let h = Harness::start_with(HarnessOptions {
        store_url: Some(pg.url("menshen")),
        node_id: Some("0000a003".into()),
        configure: Some(Box::new(move |c| {
            c.store.ca_file = Some(ca2);
            c.store.tls = Some(PgTlsMode::VerifyFull);
            c.store.client_cert = Some(cc2);
            c.store.client_key = Some(ck2);
        })),
        ..Default::default()
    })
    .await;
    h.api("ping", "GET", "/v1/ping", "A1").await;
    let with_cert: usize = pg
        .psql(
            "postgres",
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.datname = 'menshen' AND s.ssl AND s.client_dn = '/CN=menshen'",
        )
        .trim()
        .parse()
        .unwrap();
    assert!(with_cert >= 2, "pool and listener present the certificate");

    let mut cfg = h.config.clone();
    cfg.data_dir = h.dir.path().join("data-2");
    cfg.node_id = Some("0000a004".into());
    cfg.store.client_cert = None;
    cfg.store.client_key = None;
    let e = match menshen::node::Node::start_with(cfg.clone(), None).await {
        Ok(_) => panic!("started without the client certificate the server requires"),
        Err(e) => format!("{e:#}"),
    };
    assert!(e.starts_with("store.url: cannot open"), "{e}");

    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&ck, std::fs::Permissions::from_mode(0o644)).unwrap();
    cfg.store.client_cert = Some(cc);
    cfg.store.client_key = Some(ck);
    let e = match menshen::node::Node::start_with(cfg, None).await {
        Ok(_) => panic!("used a client key others can read"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        e.starts_with("store.client_key: ") && e.contains("chmod 600"),
        "{e}"
    );
}
