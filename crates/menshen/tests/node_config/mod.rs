//! A node config in a temp dir (demo PKI, master key 0600, loopback
//! listeners on port 0) for tests that start a node with settings the
//! shared harness does not expose, or expect it not to start.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use menshen::config::{AdminSection, AuditSection, Config, UApiSection};
use menshen_gateway::GatewayConfig;

/// A config rooted at `dir`: `dir/tls` (demo CA, server certificate for
/// localhost and 127.0.0.1), `dir/master.key`, `dir/data`.
pub fn config(dir: &Path) -> Config {
    let tls = dir.join("tls");
    let mk = dir.join("master.key");
    if !mk.exists() {
        menshen::pki::write_demo_pki(&tls).unwrap();
        menshen::pki::write_private(&mk, menshen_crypto::MasterKey::generate().as_bytes()).unwrap();
    }
    Config {
        data_dir: dir.join("data"),
        master_key_file: Some(mk),
        node_id: Some("0000test".into()),
        level_profile: None,
        uapi: UApiSection {
            prefix: "0P".into(),
            institution: "C10305".into(),
        },
        gateway: GatewayConfig::new(
            vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0))],
            tls.join("server.pem"),
            tls.join("server.key"),
        ),
        admin: AdminSection {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            ..Default::default()
        },
        audit: AuditSection::default(),
        oauth: Default::default(),
        hot_state: Default::default(),
        store: Default::default(),
        alerts: Default::default(),
        stats: Default::default(),
        tracing: Default::default(),
    }
}

/// The same config as a TOML file `dir/menshen.toml`, for the binary.
/// (`node_id` is left out: the file's check wants 8 hex characters.)
pub fn write_toml(dir: &Path, cfg: &Config) -> std::path::PathBuf {
    let p = dir.join("menshen.toml");
    let cfg = Config {
        node_id: None,
        ..cfg.clone()
    };
    std::fs::write(&p, toml::to_string_pretty(&cfg).unwrap()).unwrap();
    p
}

/// Permission bits of a path.
pub fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}
