//! `menshen demo --cluster` (issue 12 item 9): the demo on PostgreSQL and
//! Redis with several nodes. The first node runs in the demo's process (it
//! seeds the data, exactly as the embedded demo does); the others are
//! `menshen serve --config DIR/node-K/menshen.toml` processes sharing the
//! store, the hot state, the master key and the TLS certificate, each with
//! its own node id, data directory (audit log) and ports.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::localsvc::{self, LocalServer};

/// A node of the cluster demo in `demo.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoNode {
    /// Node id (8 hex characters; in transaction serial numbers and records).
    pub node_id: String,
    /// Gateway base URL.
    pub gateway_url: String,
    /// Admin API base URL.
    pub admin_url: String,
    /// Process id (the first node is the demo process itself).
    pub pid: u32,
    /// Its config file.
    pub config_file: PathBuf,
}

/// The shared services of a cluster demo.
pub struct Services {
    /// PostgreSQL (the store).
    pub postgres: LocalServer,
    /// Redis (the hot state).
    pub redis: LocalServer,
}

impl Services {
    /// Install (if missing, as root) and start PostgreSQL and Redis under `dir`.
    pub fn start(dir: &Path) -> anyhow::Result<Services> {
        localsvc::ensure_installed()?;
        let postgres = localsvc::start_postgres(&dir.join("postgres"))
            .context("start the demo's PostgreSQL")?;
        let redis = localsvc::start_redis(&dir.join("redis")).context("start the demo's Redis")?;
        Ok(Services { postgres, redis })
    }
}

/// The id of node `k` (1-based).
pub fn node_id(k: usize) -> String {
    format!("{k:08x}")
}

/// The other nodes' processes; stopped (SIGTERM, then SIGKILL after 10 s)
/// when dropped, before the services.
pub struct Nodes {
    children: Vec<Child>,
}

impl Nodes {
    /// Stop every node process.
    pub fn stop(&mut self) {
        for c in &self.children {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for c in &mut self.children {
            while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        self.children.clear();
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// Start nodes 2..=`count` from the first node's config `first`: each gets
/// its own node id, data directory and free ports. Returns when every one
/// accepts connections on its gateway and admin ports (bounded: 60 s each).
pub fn start_nodes(
    first: &Config,
    dir: &Path,
    count: usize,
) -> anyhow::Result<(Nodes, Vec<DemoNode>)> {
    let exe = std::env::current_exe().context("find the menshen executable")?;
    let mut nodes = Nodes { children: vec![] };
    let mut out = vec![];
    for k in 2..=count {
        let home = dir.join(format!("node-{k}"));
        std::fs::create_dir_all(&home)?;
        let (gw, admin) = (free_port()?, free_port()?);
        let mut cfg = first.clone();
        cfg.data_dir = home.join("data");
        cfg.node_id = Some(node_id(k));
        cfg.gateway.listen = vec![SocketAddr::from((Ipv4Addr::LOCALHOST, gw))];
        cfg.admin.listen = SocketAddr::from((Ipv4Addr::LOCALHOST, admin));
        let config_file = home.join("menshen.toml");
        std::fs::write(&config_file, toml::to_string_pretty(&cfg)?)?;
        let log = std::fs::File::create(home.join("node.log"))?;
        let child = Command::new(&exe)
            .arg("serve")
            .arg("--config")
            .arg(&config_file)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("start node {k}"))?;
        let pid = child.id();
        nodes.children.push(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        for port in [gw, admin] {
            loop {
                if let Some(c) = nodes.children.last_mut() {
                    if let Ok(Some(st)) = c.try_wait() {
                        bail!(
                            "node {k} exited ({st}) while starting; see {}",
                            home.join("node.log").display()
                        );
                    }
                }
                let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    break;
                }
                if Instant::now() > deadline {
                    bail!(
                        "node {k} did not listen on 127.0.0.1:{port} within 60 s; see {}",
                        home.join("node.log").display()
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        out.push(DemoNode {
            node_id: node_id(k),
            gateway_url: format!("https://127.0.0.1:{gw}"),
            admin_url: format!("http://127.0.0.1:{admin}"),
            pid,
            config_file,
        });
    }
    Ok((nodes, out))
}
