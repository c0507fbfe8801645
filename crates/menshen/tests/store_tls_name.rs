//! The PostgreSQL server's name under `store.tls` (DEP-2, CONF-2): a server
//! whose certificate is issued by the configured CA but names another host
//! is refused with `verify-full` (an attacker holding any certificate of
//! the bank's CA cannot stand in for the database); `require` connects to
//! it all the same, which is what it is documented to do (encrypts, does
//! not verify). Likewise a TLS Redis (`rediss://`) whose certificate names
//! another host is refused. Its own PostgreSQL on 127.0.0.1; without the server it
//! prints "skipped: ..." unless `MENSHEN_REQUIRE_SERVICES=1`.

mod common;

use std::path::{Path, PathBuf};

use common::Harness;
use menshen_store::postgres::tls::PgTlsMode;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

/// A CA, and a server certificate it issued for `db.other.example` only.
fn pki_other_name(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(DnType::CommonName, "Bank CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut sp = CertificateParams::new(vec!["db.other.example".to_string()]).unwrap();
    sp.distinguished_name
        .push(DnType::CommonName, "db.other.example");
    let cert = sp.signed_by(&key, &ca_cert, &ca_key).unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
    menshen::pki::write_private(&dir.join("server.key"), key.serialize_pem().as_bytes()).unwrap();
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

/// DEP-2, CONF-2: `verify-full` refuses a certificate of the right CA for
/// the wrong name, saying so; `require` (documented as not verifying)
/// connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dep_2_verify_full_refuses_a_certificate_for_another_name() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = pki_other_name(certs.path());
    let Some(pg) = menshen_testsupport::postgres_tls(&cert, &key) else {
        return;
    };
    pg.create_database("menshen");
    let h = Harness::start().await;
    let mut cfg = h.config.clone();
    cfg.data_dir = h.dir.path().join("data-pg");
    cfg.node_id = Some("0000a0f1".into());
    cfg.store.url = Some(pg.url("menshen"));
    cfg.store.tls = Some(PgTlsMode::VerifyFull);
    cfg.store.ca_file = Some(ca);
    let e = match menshen::node::Node::start_with(cfg.clone(), None).await {
        Ok(_) => panic!("verify-full accepted a certificate naming another host"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        e.starts_with("store.url: cannot open the PostgreSQL store")
            && e.contains("certificate")
            && e.contains("not valid for name"),
        "{e}"
    );

    // `require`: encrypted, not verified (docs/operations.md says so): the
    // same server is accepted.
    cfg.store.tls = Some(PgTlsMode::Require);
    cfg.store.ca_file = None;
    cfg.data_dir = h.dir.path().join("data-pg-require");
    let node = menshen::node::Node::start_with(cfg, None)
        .await
        .expect("require connects without checking the certificate");
    node.shutdown().await;
}

/// DEP-2, CONF-2: `rediss://` refuses a certificate of the configured CA
/// for another name: the node does not start and says where.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dep_2_rediss_refuses_a_certificate_for_another_name() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = pki_other_name(certs.path());
    let Some(redis) = menshen_testsupport::redis_tls(&menshen_testsupport::RedisTlsFiles {
        cert,
        key,
        ca: ca.clone(),
        client: None,
    }) else {
        return;
    };
    assert!(redis.url().starts_with("rediss://127.0.0.1:"));
    let h = Harness::start().await;
    let mut cfg = h.config.clone();
    cfg.data_dir = h.dir.path().join("data-redis");
    cfg.hot_state.url = Some(redis.url());
    cfg.hot_state.ca_file = Some(ca);
    let e = match menshen::node::Node::start_with(cfg, None).await {
        Ok(_) => panic!("rediss:// accepted a certificate naming another host"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        e.contains("hot_state.url: cannot reach Redis") && e.contains("not valid for name"),
        "{e}"
    );
}
