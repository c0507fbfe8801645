//! Test-only helpers (a dev-dependency, never shipped): real PostgreSQL and
//! Redis servers started on 127.0.0.1 and a free port, in a temporary
//! directory, for the store suite (`menshen-store/tests/store.rs`, one suite,
//! two backends) and the cluster tests (`menshen/tests/cluster.rs`).
//!
//! With TLS: [`postgres_tls`] (`ssl=on` with a given certificate),
//! [`redis_tls`] (`--tls-port` only); high availability: [`redis_sentinel`]
//! (a master, a replica and one sentinel) and [`redis_cluster`] (three
//! masters joined by `redis-cli --cluster create`).
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
    /// More `postgres` arguments (TLS).
    extra: Vec<String>,
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
    Some(PgServer::init_with(bin, false, |_| Vec::new()))
}

/// Start a PostgreSQL server of the test's own with `ssl=on`, serving
/// `cert` / `key` (PEM; copied into its directory, the key 0600 as
/// PostgreSQL demands); plain connections are still accepted, so
/// [`PgServer::psql`] works. `None` as [`postgres`].
pub fn postgres_tls(cert: &Path, key: &Path) -> Option<PgServer> {
    postgres_tls_with(cert, key, None)
}

/// [`postgres_tls`], and connections to the database `menshen` over TLS must
/// present a client certificate issued by `client_ca` whose CN is the user
/// (`hostssl menshen all 127.0.0.1/32 cert`); other databases and plain
/// connections stay trusted (so [`PgServer::psql`] works on `postgres`).
pub fn postgres_tls_client_auth(cert: &Path, key: &Path, client_ca: &Path) -> Option<PgServer> {
    postgres_tls_with(cert, key, Some(client_ca))
}

fn postgres_tls_with(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Option<PgServer> {
    let Some(bin) = pg_bindir() else {
        skip(
            "PostgreSQL (initdb, postgres)",
            "apt-get install postgresql",
        );
        return None;
    };
    let (cert, key) = (cert.to_path_buf(), key.to_path_buf());
    let client_ca = client_ca.map(Path::to_path_buf);
    Some(PgServer::init_with(bin, false, move |dir| {
        let c = dir.join("server.crt");
        let k = dir.join("server.key");
        std::fs::copy(&cert, &c).unwrap();
        std::fs::copy(&key, &k).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut args = vec![
            "-c".into(),
            "ssl=on".into(),
            "-c".into(),
            format!("ssl_cert_file={}", c.display()),
            "-c".into(),
            format!("ssl_key_file={}", k.display()),
        ];
        if let Some(ca) = &client_ca {
            let ca_copy = dir.join("client-ca.crt");
            std::fs::copy(ca, &ca_copy).unwrap();
            let hba = dir.join("pg_hba.conf");
            std::fs::write(
                &hba,
                "local all all trust\n\
                 hostssl menshen all 127.0.0.1/32 cert\n\
                 host all all 127.0.0.1/32 trust\n\
                 host all all ::1/128 trust\n",
            )
            .unwrap();
            args.extend([
                "-c".into(),
                format!("ssl_ca_file={}", ca_copy.display()),
                "-c".into(),
                format!("hba_file={}", hba.display()),
            ]);
        }
        args
    }))
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
            Some(PgServer::init_with(bin, true, |_| Vec::new()))
        })
        .as_ref()
}

impl PgServer {
    fn init_with(
        bin: PathBuf,
        remove_on_exit: bool,
        prepare: impl FnOnce(&Path) -> Vec<String>,
    ) -> PgServer {
        let dir = tempfile::Builder::new()
            .prefix("menshen-pg")
            .tempdir()
            .unwrap();
        let extra = prepare(dir.path());
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
            extra,
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
bin="$0"; data="$1"; port="$2"; dir="$3"; mode="$4"; shift 4
"$bin" -D "$data" -p "$port" -k "$dir" -c listen_addresses=127.0.0.1 -c fsync=off \
     -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 \
     "$@" >"$dir/server.log" 2>&1 &
pid=$!
trap 'kill -INT $pid 2>/dev/null; wait $pid; exit 0' TERM INT
cat >/dev/null
kill -INT $pid 2>/dev/null
wait $pid
[ "$mode" = remove ] && rm -rf "$dir"
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
            .args(&self.extra)
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
    /// Its whole command line (the port in it), to start it again.
    argv: Vec<String>,
    /// `redis-cli` options to reach it (TLS files).
    cli: Vec<String>,
    tls: bool,
}

impl std::fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisServer")
            .field("port", &self.port)
            .finish()
    }
}

fn redis_installed() -> bool {
    ["redis-server", "redis-cli"].iter().all(|b| {
        Command::new(b)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

fn redis_present() -> bool {
    if redis_installed() {
        return true;
    }
    skip("redis-server and redis-cli", "apt-get install redis-server");
    false
}

/// Start a Redis server, or `None` (after saying so) when it is not
/// installed and not required.
pub fn redis() -> Option<RedisServer> {
    if !redis_present() {
        return None;
    }
    Some(RedisServer::launch(plain_args, Vec::new(), false, false))
}

fn plain_args(port: u16, dir: &Path) -> Vec<String> {
    let mut a: Vec<String> = ["--port", &port.to_string(), "--bind", "127.0.0.1"]
        .map(String::from)
        .to_vec();
    a.extend(["--save", "", "--appendonly", "no", "--dir"].map(String::from));
    a.push(dir.display().to_string());
    a
}

/// TLS files of [`redis_tls`].
#[derive(Debug, Clone)]
pub struct RedisTlsFiles {
    /// Server certificate (PEM), naming 127.0.0.1.
    pub cert: PathBuf,
    /// Its key (PEM).
    pub key: PathBuf,
    /// The CA of client certificates, and the one `redis-cli` trusts for
    /// the server (the same CA here).
    pub ca: PathBuf,
    /// `--tls-auth-clients yes` with this client certificate and key for
    /// `redis-cli`; `None`: `no`.
    pub client: Option<(PathBuf, PathBuf)>,
}

/// Start a Redis server that speaks TLS only (`--port 0 --tls-port P`);
/// `None` as [`redis`]. Panics if this redis-server has no TLS.
pub fn redis_tls(files: &RedisTlsFiles) -> Option<RedisServer> {
    if !redis_present() {
        return None;
    }
    let mut cli: Vec<String> = vec![
        "--tls".into(),
        "--cacert".into(),
        files.ca.display().to_string(),
    ];
    if let Some((c, k)) = &files.client {
        cli.extend([
            "--cert".into(),
            c.display().to_string(),
            "--key".into(),
            k.display().to_string(),
        ]);
    }
    let f = files.clone();
    Some(RedisServer::launch(
        move |port, dir| {
            let mut a = plain_args(0, dir);
            a.extend([
                "--tls-port".to_string(),
                port.to_string(),
                "--tls-cert-file".into(),
                f.cert.display().to_string(),
                "--tls-key-file".into(),
                f.key.display().to_string(),
                "--tls-ca-cert-file".into(),
                f.ca.display().to_string(),
                "--tls-auth-clients".into(),
                if f.client.is_some() { "yes" } else { "no" }.into(),
            ]);
            a
        },
        cli,
        true,
        false,
    ))
}

impl RedisServer {
    /// Start on a free port: `argv(port, dir)` is the command line, `cli`
    /// the `redis-cli` options to reach it; `bus`: the port + 10000 must be
    /// free too (Redis Cluster's bus).
    fn launch(
        argv: impl Fn(u16, &Path) -> Vec<String>,
        cli: Vec<String>,
        tls: bool,
        bus: bool,
    ) -> RedisServer {
        let mut s = RedisServer {
            child: None,
            port: 0,
            dir: tempfile::Builder::new()
                .prefix("menshen-redis")
                .tempdir()
                .unwrap(),
            argv: Vec::new(),
            cli,
            tls,
        };
        // redis-server has no `--port 0`: take a free port, release it, and
        // try again with another if someone else took it meanwhile.
        for _ in 0..10 {
            s.port = free_port();
            if bus
                && (s.port > 55_000 || TcpListener::bind(("127.0.0.1", s.port + 10_000)).is_err())
            {
                continue;
            }
            s.argv = argv(s.port, s.dir.path());
            if s.try_start() {
                return s;
            }
        }
        panic!(
            "redis-server did not start on any of 10 free ports: {:?}",
            s.argv
        );
    }

    fn try_start(&mut self) -> bool {
        let log = std::fs::File::create(self.dir.path().join("redis.log")).unwrap();
        let child = Command::new("redis-server")
            .args(&self.argv)
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        // Bounded: 100 x 50 ms.
        for _ in 0..100 {
            if let Some(c) = self.child.as_mut() {
                if c.try_wait().unwrap().is_some() {
                    self.child = None;
                    return false;
                }
            }
            if self.answers() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.stop();
        false
    }

    fn answers(&self) -> bool {
        if self.cli.is_empty() {
            ping(self.port)
        } else {
            self.try_cli(&["PING"]).is_some_and(|o| o.trim() == "PONG")
        }
    }

    /// TCP port on 127.0.0.1 (the TLS port of [`redis_tls`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/0` (`rediss://` for [`redis_tls`]).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
    }

    /// The server's directory (its log is `redis.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn try_cli(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(&self.cli)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Run `redis-cli ARGS` against it; its output. Panics when redis-cli
    /// fails.
    pub fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args)
            .unwrap_or_else(|| panic!("redis-cli {args:?} on port {} failed", self.port))
    }

    /// Kill it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start it again on the same port (empty: nothing is persisted).
    pub fn restart(&mut self) {
        self.stop();
        assert!(
            self.try_start(),
            "redis-server did not start again on port {}",
            self.port
        );
    }

    /// Whether it is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

// ------------------------------------------------------------ Redis Sentinel

/// A Sentinel-watched pair: a master, one replica, one sentinel (quorum 1,
/// master down after 1 s), all on loopback.
#[derive(Debug)]
pub struct RedisSentinel {
    /// The first master.
    pub master: RedisServer,
    /// Its replica (the master after a failover).
    pub replica: RedisServer,
    /// The sentinel.
    pub sentinel: RedisServer,
}

/// The master's name in [`redis_sentinel`]'s sentinel.
pub const SENTINEL_MASTER: &str = "menshen";

/// Start a master, a replica of it and a sentinel watching them, and wait
/// (bounded) until the sentinel knows the replica; `None` as [`redis`].
pub fn redis_sentinel() -> Option<RedisSentinel> {
    redis_sentinel_with(None)
}

/// [`redis_sentinel`] with TLS only everywhere: the master, the replica
/// (replicating over TLS) and the sentinel listen on TLS ports only;
/// `files.client` must be `None`.
pub fn redis_sentinel_tls(files: &RedisTlsFiles) -> Option<RedisSentinel> {
    redis_sentinel_with(Some(files))
}

fn tls_args(f: &RedisTlsFiles) -> Vec<String> {
    vec![
        "--tls-cert-file".into(),
        f.cert.display().to_string(),
        "--tls-key-file".into(),
        f.key.display().to_string(),
        "--tls-ca-cert-file".into(),
        f.ca.display().to_string(),
        "--tls-auth-clients".into(),
        "no".into(),
        "--tls-replication".into(),
        "yes".into(),
    ]
}

fn redis_sentinel_with(tls: Option<&RedisTlsFiles>) -> Option<RedisSentinel> {
    let tls = tls.cloned();
    let master = match &tls {
        None => redis()?,
        Some(f) => {
            if !redis_present() {
                return None;
            }
            let f = f.clone();
            RedisServer::launch(
                move |port, dir| {
                    let mut a = plain_args(0, dir);
                    a.extend(["--tls-port".into(), port.to_string()]);
                    a.extend(tls_args(&f));
                    a
                },
                vec![
                    "--tls".into(),
                    "--cacert".into(),
                    tls.as_ref().unwrap().ca.display().to_string(),
                ],
                true,
                false,
            )
        }
    };
    let cli = master.cli.clone();
    let mport = master.port;
    let t2 = tls.clone();
    let replica = RedisServer::launch(
        move |port, dir| {
            let mut a = match &t2 {
                None => plain_args(port, dir),
                Some(f) => {
                    let mut a = plain_args(0, dir);
                    a.extend(["--tls-port".into(), port.to_string()]);
                    a.extend(tls_args(f));
                    a
                }
            };
            a.extend(["--replicaof".into(), "127.0.0.1".into(), mport.to_string()]);
            a
        },
        cli.clone(),
        tls.is_some(),
        false,
    );
    let t3 = tls.clone();
    let sentinel = RedisServer::launch(
        move |port, dir| {
            let conf = dir.join("sentinel.conf");
            let listen = match &t3 {
                None => format!("port {port}\n"),
                Some(f) => format!(
                    "port 0\ntls-port {port}\ntls-cert-file {}\ntls-key-file {}\n\
                     tls-ca-cert-file {}\ntls-auth-clients no\ntls-replication yes\n",
                    f.cert.display(),
                    f.key.display(),
                    f.ca.display()
                ),
            };
            std::fs::write(
                &conf,
                format!(
                    "{listen}bind 127.0.0.1\ndir {}\n\
                     sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {mport} 1\n\
                     sentinel down-after-milliseconds {SENTINEL_MASTER} 1000\n\
                     sentinel failover-timeout {SENTINEL_MASTER} 5000\n\
                     sentinel parallel-syncs {SENTINEL_MASTER} 1\n",
                    dir.display()
                ),
            )
            .unwrap();
            vec![conf.display().to_string(), "--sentinel".into()]
        },
        cli,
        tls.is_some(),
        false,
    );
    let s = RedisSentinel {
        master,
        replica,
        sentinel,
    };
    // The replica in sync, and known to the sentinel (bounded: 20 s).
    let t = std::time::Instant::now();
    loop {
        let synced = s
            .replica
            .try_cli(&["INFO", "replication"])
            .is_some_and(|o| o.contains("master_link_status:up"));
        let known = s
            .sentinel
            .try_cli(&["SENTINEL", "REPLICAS", SENTINEL_MASTER])
            .is_some_and(|o| o.contains(&s.replica.port.to_string()));
        if synced && known {
            return Some(s);
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "sentinel set-up: replica synced {synced}, known to the sentinel {known}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl RedisSentinel {
    /// `redis://127.0.0.1:PORT` of the sentinel (`rediss://` with TLS).
    pub fn sentinel_url(&self) -> String {
        let scheme = if self.sentinel.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}", self.sentinel.port)
    }

    /// The master's port as the sentinel names it now.
    pub fn master_port(&self) -> Option<u16> {
        let o = self
            .sentinel
            .try_cli(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", SENTINEL_MASTER])?;
        o.lines().nth(1)?.trim().parse().ok()
    }

    /// Kill the master and make the sentinel promote the replica at once
    /// (`SENTINEL FAILOVER`); waits (bounded: 20 s) until the sentinel names
    /// the replica as master.
    pub fn kill_master_and_fail_over(&mut self) {
        self.master.stop();
        let t = std::time::Instant::now();
        loop {
            // Refused while a failover is in progress: ask again.
            let _ = self
                .sentinel
                .try_cli(&["SENTINEL", "FAILOVER", SENTINEL_MASTER]);
            if self.master_port() == Some(self.replica.port) {
                return;
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "the sentinel did not promote the replica within 20 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

// ------------------------------------------------------------- Redis Cluster

/// A Redis Cluster of three masters (no replicas) on loopback.
#[derive(Debug)]
pub struct RedisCluster {
    /// The masters.
    pub nodes: Vec<RedisServer>,
}

/// Start three cluster-enabled servers, join them with `redis-cli --cluster
/// create ... --cluster-yes` and wait (bounded) for `cluster_state:ok`;
/// `None` as [`redis`].
pub fn redis_cluster() -> Option<RedisCluster> {
    if !redis_present() {
        return None;
    }
    let nodes: Vec<RedisServer> = (0..3)
        .map(|_| {
            RedisServer::launch(
                |port, dir| {
                    let mut a = plain_args(port, dir);
                    a.extend(
                        [
                            "--cluster-enabled",
                            "yes",
                            "--cluster-config-file",
                            "nodes.conf",
                            "--cluster-node-timeout",
                            "2000",
                        ]
                        .map(String::from),
                    );
                    a
                },
                Vec::new(),
                false,
                true,
            )
        })
        .collect();
    let addrs: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect();
    let out = Command::new("redis-cli")
        .arg("--cluster")
        .arg("create")
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .stdin(Stdio::null())
        .output()
        .expect("run redis-cli --cluster create");
    assert!(
        out.status.success(),
        "redis-cli --cluster create failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let c = RedisCluster { nodes };
    let t = std::time::Instant::now();
    while !c.nodes.iter().all(|n| {
        n.try_cli(&["CLUSTER", "INFO"])
            .is_some_and(|o| o.contains("cluster_state:ok"))
    }) {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the cluster did not reach cluster_state:ok within 20 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(c)
}

impl RedisCluster {
    /// `redis://127.0.0.1:PORT` of every master.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect()
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
