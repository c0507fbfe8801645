//! Test-only helpers (a dev-dependency, never shipped): real PostgreSQL and
//! Redis servers started on 127.0.0.1 and a free port, in a temporary
//! directory, for the store suite (`menshen-store/tests/store.rs`, one suite,
//! two backends) and the cluster tests (`menshen/tests/cluster.rs`).
//!
//! When the server binaries are absent, [`postgres`] and [`redis`] print
//! "skipped: ... not installed" and return `None`, unless
//! `MENSHEN_REQUIRE_SERVICES=1` (scripts/test sets it): then they panic.
//!
//! PostgreSQL refuses to run as root, so when the tests run as root the
//! server runs as the `postgres` user (created by Debian's package) through
//! `runuser`, with the temporary directory handed to that user. Each server
//! runs under a small `sh` guard that stops it (fast shutdown) as soon as
//! its standard input closes: when the [`PgServer`] is dropped, and also
//! when the test process ends without dropping it (the shared server of
//! [`shared_postgres`] lives in a static).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// Whether a missing service fails the test instead of skipping it.
pub fn services_required() -> bool {
    std::env::var("MENSHEN_REQUIRE_SERVICES").as_deref() == Ok("1")
}

fn skip(what: &str, install: &str) {
    if services_required() {
        panic!("{what} not installed and MENSHEN_REQUIRE_SERVICES=1: install it ({install})");
    }
    println!("skipped: {what} not installed");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ---------------------------------------------------------------- PostgreSQL

/// Where the PostgreSQL server binaries are: `MENSHEN_PG_BIN`, else the
/// directory `initdb` on `PATH` links to, else the newest
/// `/usr/lib/postgresql/N/bin` (Debian does not put them on `PATH`).
pub fn pg_bindir() -> Option<PathBuf> {
    if let Ok(d) = std::env::var("MENSHEN_PG_BIN") {
        return Some(PathBuf::from(d));
    }
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            if d.join("initdb").is_file() && d.join("postgres").is_file() {
                // The real directory (a PATH entry may hold symlinks to a
                // few of the binaries only): psql and pg_isready are there.
                let real = std::fs::canonicalize(d.join("initdb")).ok()?;
                return real.parent().map(Path::to_path_buf);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, b)| b)
}

/// The user the server runs as when we are root (`postgres`), with its uid
/// and gid.
fn run_as() -> Option<(u32, u32)> {
    let me = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&me.stdout).trim() != "0" {
        return None;
    }
    let id = |flag: &str| -> u32 {
        let o = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("run `id`");
        assert!(
            o.status.success(),
            "running as root and there is no `postgres` user to run PostgreSQL as (apt-get install postgresql creates it)"
        );
        String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
    };
    Some((id("-u"), id("-g")))
}

/// A command, run as the `postgres` user when we are root.
fn pg_command(bin: &Path, as_user: bool) -> Command {
    if as_user {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

fn chown_tree(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
    if p.is_dir() {
        for e in std::fs::read_dir(p).unwrap() {
            chown_tree(&e.unwrap().path(), uid, gid);
        }
    }
}

/// A PostgreSQL server of its own: data directory and unix socket in a
/// temporary directory, TCP on 127.0.0.1 and a free port, superuser
/// `menshen` trusted on loopback. Stopped (and its files removed) on drop.
pub struct PgServer {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_user: bool,
    guard: Option<Child>,
    /// The guard removes the directory when the server stops (the shared
    /// server, never dropped).
    remove_on_exit: bool,
}

impl std::fmt::Debug for PgServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgServer")
            .field("port", &self.port)
            .finish()
    }
}

/// Start a PostgreSQL server of the test's own, or `None` (after saying so)
/// when PostgreSQL is not installed and not required.
pub fn postgres() -> Option<PgServer> {
    let Some(bin) = pg_bindir() else {
        skip(
            "PostgreSQL (initdb, postgres)",
            "apt-get install postgresql",
        );
        return None;
    };
    Some(PgServer::init_with(bin, false))
}

static SHARED: OnceLock<Option<PgServer>> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// One server for the whole test process (initdb costs seconds), each
/// caller getting a database of its own: the URL of a fresh, empty database,
/// or `None` when PostgreSQL is not installed and not required. The server
/// stops when the test process ends.
pub fn shared_postgres_db() -> Option<String> {
    let srv = shared_postgres()?;
    let name = format!(
        "t{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::Relaxed)
    );
    srv.create_database(&name);
    Some(srv.url(&name))
}

/// The test process's shared server (see [`shared_postgres_db`]), or `None`
/// when PostgreSQL is not installed and not required.
pub fn shared_postgres() -> Option<&'static PgServer> {
    SHARED
        .get_or_init(|| {
            let bin = pg_bindir();
            let Some(bin) = bin else {
                skip(
                    "PostgreSQL (initdb, postgres)",
                    "apt-get install postgresql",
                );
                return None;
            };
            Some(PgServer::init_with(bin, true))
        })
        .as_ref()
}

impl PgServer {
    fn init_with(bin: PathBuf, remove_on_exit: bool) -> PgServer {
        let dir = tempfile::Builder::new()
            .prefix("menshen-pg")
            .tempdir()
            .unwrap();
        let owner = run_as();
        if let Some((uid, gid)) = owner {
            chown_tree(dir.path(), uid, gid);
        }
        let data = dir.path().join("data");
        let out = pg_command(&bin.join("initdb"), owner.is_some())
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "menshen",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "-N",
            ])
            .stdout(Stdio::null())
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut s = PgServer {
            bin,
            dir,
            port: 0,
            as_user: owner.is_some(),
            guard: None,
            remove_on_exit,
        };
        for _ in 0..5 {
            s.port = free_port();
            if s.try_start() {
                return s;
            }
        }
        let log = std::fs::read_to_string(s.dir.path().join("server.log")).unwrap_or_default();
        panic!("postgres did not start on any of 5 free ports; its log:\n{log}");
    }

    /// Start on `self.port`; false if it exits or never answers.
    fn try_start(&mut self) -> bool {
        let data = self.dir.path().join("data");
        // The guard: start postgres, wait for stdin to close, then ask for a
        // fast shutdown and wait for it.
        let script = r#"
"$0" -D "$1" -p "$2" -k "$3" -c listen_addresses=127.0.0.1 -c fsync=off \
     -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 \
     >"$3/server.log" 2>&1 &
pid=$!
trap 'kill -INT $pid 2>/dev/null; wait $pid; exit 0' TERM INT
cat >/dev/null
kill -INT $pid 2>/dev/null
wait $pid
[ "$4" = remove ] && rm -rf "$3"
exit 0
"#;
        let child = pg_command(Path::new("sh"), self.as_user)
            .arg("-c")
            .arg(script)
            .arg(self.bin.join("postgres"))
            .arg(&data)
            .arg(self.port.to_string())
            .arg(self.dir.path())
            .arg(if self.remove_on_exit {
                "remove"
            } else {
                "keep"
            })
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn postgres");
        self.guard = Some(child);
        // Bounded: 200 x 50 ms.
        for _ in 0..200 {
            if let Some(g) = self.guard.as_mut() {
                if g.try_wait().unwrap().is_some() {
                    self.guard = None;
                    return false;
                }
            }
            if self.ready() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.stop();
        false
    }

    fn ready(&self) -> bool {
        Command::new(self.bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://menshen@127.0.0.1:PORT/DB`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://menshen@127.0.0.1:{}/{db}", self.port)
    }

    /// The directory holding the server's data (`data/`), socket and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Run SQL with `psql` (over TCP, as `menshen`) on database `db`;
    /// returns its unaligned output. Panics when it fails.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "menshen", "-d", db, "-c", sql])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Create an empty database.
    pub fn create_database(&self, name: &str) {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
    }

    /// Stop the server (fast shutdown: sessions are cut) and wait for it.
    pub fn stop(&mut self) {
        if let Some(mut g) = self.guard.take() {
            drop(g.stdin.take());
            let _ = g.wait();
        }
    }

    /// Start it again on the same port with the same data.
    pub fn restart(&mut self) {
        self.stop();
        assert!(
            self.try_start(),
            "postgres did not start again on port {}",
            self.port
        );
    }

    /// Whether it is running.
    pub fn is_running(&self) -> bool {
        self.guard.is_some()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}

// --------------------------------------------------------------------- Redis

/// A `redis-server` child process on 127.0.0.1 and a free port, in a
/// temporary directory, no persistence; killed on drop.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

fn redis_installed() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Start a Redis server, or `None` (after saying so) when it is not
/// installed and not required.
pub fn redis() -> Option<RedisServer> {
    if !redis_installed() {
        skip("redis-server", "apt-get install redis-server");
        return None;
    }
    let mut s = RedisServer {
        child: None,
        port: 0,
        dir: tempfile::tempdir().unwrap(),
    };
    // redis-server has no `--port 0`: take a free port, release it, and try
    // again with another if someone else took it meanwhile.
    for _ in 0..5 {
        s.port = free_port();
        if s.try_start() {
            return Some(s);
        }
    }
    panic!("redis-server did not start on any of 5 free ports");
}

impl RedisServer {
    fn try_start(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        for _ in 0..100 {
            if let Some(c) = self.child.as_mut() {
                if c.try_wait().unwrap().is_some() {
                    self.child = None;
                    return false;
                }
            }
            if ping(self.port) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.stop();
        false
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kill it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn ping(port: u16) -> bool {
    let Ok(mut c) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = c.set_read_timeout(Some(Duration::from_secs(1)));
    let mut buf = [0u8; 7];
    c.write_all(b"PING\r\n").is_ok() && c.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}
