//! Files at rest (issue 10 item 6; AUTH-3, KEY-3): the data directory is
//! created 0700 and the store's files 0600; a master key file or a data
//! directory that group or others can access stops the node at start-up
//! with a message naming the path, its mode and the fix.
#![cfg(unix)]

mod common;
mod node_config;

use std::os::unix::fs::PermissionsExt;

use common::Harness;
use menshen::node::Node;
use node_config::mode;

#[tokio::test]
async fn auth_3_data_dir_is_0700_and_the_node_files_0600() {
    let mut h = Harness::start().await;
    // Something written through the store and the log.
    h.app("Files", "server").await;
    h.node().audit.flush().await.unwrap();
    let data = h.data_dir();
    assert_eq!(mode(&data), 0o700, "data dir");
    assert_eq!(mode(&data.join("audit")), 0o700, "audit dir");
    assert_eq!(mode(&data.join("menshen.db")), 0o600, "menshen.db");
    assert_eq!(
        mode(&data.join(menshen::node::RUNNING_MARKER)),
        0o600,
        "running marker"
    );
    // SQLite's side files take the database file's mode.
    for side in ["menshen.db-wal", "menshen.db-shm"] {
        let p = data.join(side);
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{side}");
        }
    }
    h.stop().await;
}

#[tokio::test]
async fn auth_3_a_db_file_left_0644_is_tightened_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = node_config::config(tmp.path());
    let node = Node::start(cfg.clone()).await.unwrap();
    node.shutdown().await;
    let db = cfg.data_dir.join("menshen.db");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let node = Node::start(cfg.clone()).await.unwrap();
    assert_eq!(mode(&db), 0o600);
    node.shutdown().await;
}

#[tokio::test]
async fn key_3_master_key_readable_by_others_stops_the_node_naming_path_mode_and_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = node_config::config(tmp.path());
    let mk = cfg.master_key_file.clone().unwrap();
    for bad in [0o644, 0o640, 0o620, 0o604] {
        std::fs::set_permissions(&mk, std::fs::Permissions::from_mode(bad)).unwrap();
        let e = match Node::start(cfg.clone()).await {
            Ok(n) => {
                n.shutdown().await;
                panic!("node started with a master key of mode {bad:04o}");
            }
            Err(e) => format!("{e:#}"),
        };
        assert!(e.contains(&mk.display().to_string()), "{e}");
        assert!(e.contains(&format!("mode {bad:04o}")), "{e}");
        assert!(e.contains(&format!("chmod 600 {}", mk.display())), "{e}");
    }
    std::fs::set_permissions(&mk, std::fs::Permissions::from_mode(0o600)).unwrap();
    Node::start(cfg).await.unwrap().shutdown().await;
}

#[tokio::test]
async fn auth_3_data_dir_open_to_others_stops_the_node_naming_path_mode_and_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = node_config::config(tmp.path());
    std::fs::create_dir(&cfg.data_dir).unwrap();
    std::fs::set_permissions(&cfg.data_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let e = match Node::start(cfg.clone()).await {
        Ok(n) => {
            n.shutdown().await;
            panic!("node started on a data dir of mode 0755");
        }
        Err(e) => format!("{e:#}"),
    };
    let d = cfg.data_dir.display().to_string();
    assert!(e.contains("data_dir") && e.contains(&d), "{e}");
    assert!(e.contains("mode 0755"), "{e}");
    assert!(e.contains(&format!("chmod 700 {d}")), "{e}");
    assert!(
        !cfg.data_dir.join("menshen.db").exists(),
        "nothing created in the refused directory"
    );
}

/// USR-1: the bank's identity service is selected by `[oauth.directory]`;
/// a node configured with a plain-HTTP service does not start, and says
/// which field to fix.
#[tokio::test]
async fn usr_1_an_identity_service_over_plain_http_is_refused_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = node_config::config(tmp.path());
    cfg.oauth.directory = Some(menshen::config::DirectorySection {
        url: "http://idp.bank.example".into(),
        ca_file: tmp.path().join("tls/ca.pem"),
        service_token_file: None,
        timeout_ms: None,
    });
    let err = match menshen::node::Node::start(cfg).await {
        Ok(n) => {
            n.shutdown().await;
            panic!("a plain-HTTP identity service was accepted");
        }
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("oauth.directory.url"), "{err}");
}
