//! Local PostgreSQL and Redis servers for `menshen demo --cluster` (issue 12
//! item 9): Debian's packages (installed with apt-get when missing and we are
//! root; otherwise the error says what to install), each server with its own
//! data directory, on a free 127.0.0.1 port, with a random password.
//!
//! Each server runs under a small `sh` guard that stops it (PostgreSQL: fast
//! shutdown; Redis: `SIGTERM`) when the guard's standard input closes: when
//! [`LocalServer`] is dropped, and also when the demo process dies without
//! dropping it (even by `kill -9`), so a demo never leaves servers behind.
//!
//! PostgreSQL refuses to run as root: as root the server runs as Debian's
//! `postgres` user (through `runuser`), and its data directory must be one
//! that user can reach; a demo directory under `/root` is not, so the data
//! then goes to a directory of its own under the system temporary directory
//! (removed when the demo stops).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// A server started by this module; stopped when dropped.
pub struct LocalServer {
    /// Connection URL (with its password).
    pub url: String,
    /// Where its data lives.
    pub data_dir: PathBuf,
    guard: Option<Child>,
    /// Removed after the server stopped (a temporary data directory).
    remove: Option<PathBuf>,
}

impl std::fmt::Debug for LocalServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalServer")
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl LocalServer {
    /// Stop the server and wait for it (bounded: 20 s).
    pub fn stop(&mut self) {
        if let Some(mut g) = self.guard.take() {
            drop(g.stdin.take());
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if matches!(g.try_wait(), Ok(Some(_)) | Err(_)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = g.kill();
            let _ = g.wait();
        }
        if let Some(d) = self.remove.take() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn random_password() -> String {
    hex::encode(menshen_crypto::random_bytes(18).as_slice())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The directory of PostgreSQL's server binaries: `MENSHEN_PG_BIN`, else
/// `initdb` on `PATH`, else the newest `/usr/lib/postgresql/N/bin` (Debian
/// does not put them on `PATH`).
pub fn pg_bindir() -> Option<PathBuf> {
    if let Ok(d) = std::env::var("MENSHEN_PG_BIN") {
        return Some(PathBuf::from(d));
    }
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            if d.join("initdb").is_file() && d.join("postgres").is_file() {
                // The real directory: a PATH entry may hold symlinks to a
                // few of the binaries only (createdb lives beside them).
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

fn redis_server() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("redis-server"))
        .find(|p| p.is_file())
}

/// Make sure PostgreSQL and Redis are installed: as root, install Debian's
/// packages when they are missing; otherwise say what to install.
pub fn ensure_installed() -> anyhow::Result<()> {
    let mut missing = vec![];
    if pg_bindir().is_none() {
        missing.push("postgresql");
    }
    if redis_server().is_none() {
        missing.push("redis-server");
    }
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "--cluster needs PostgreSQL and Redis; install them first: sudo apt-get install -y {}",
            missing.join(" ")
        );
    }
    eprintln!("installing {} (apt-get) ...", missing.join(" "));
    let apt = |args: &[&str]| -> anyhow::Result<bool> {
        Ok(Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .context("run apt-get (Debian's package manager)")?
            .success())
    };
    let mut install = vec!["install", "-y", "--no-install-recommends"];
    install.extend(&missing);
    // A fresh machine may have no package lists yet: update, then retry.
    let installed = apt(&install)? || (apt(&["update"])? && apt(&install)?);
    if !installed {
        bail!(
            "apt-get install {} failed; install them by hand and run the demo again",
            missing.join(" ")
        );
    }
    if pg_bindir().is_none() || redis_server().is_none() {
        bail!("PostgreSQL or Redis still not found after apt-get install");
    }
    Ok(())
}

/// Wait until something accepts TCP connections on `port`, or the guard
/// exits (then its log tells why), bounded by `limit`.
fn wait_listening(guard: &mut Child, port: u16, limit: Duration, log: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(st)) = guard.try_wait() {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            bail!(
                "server exited ({st}) before it listened; its log ({}):\n{text}",
                log.display()
            );
        }
        if TcpStream::connect_timeout(
            &(Ipv4Addr::LOCALHOST, port).into(),
            Duration::from_millis(200),
        )
        .is_ok()
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!(
        "server did not listen on 127.0.0.1:{port} within {limit:?}; see {}",
        log.display()
    )
}

/// Run `cmd` (as `postgres` when `as_user`), failing with its stderr.
fn run(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    let out = cmd
        .stdout(Stdio::null())
        .output()
        .with_context(|| format!("run {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn as_postgres(bin: &Path, as_user: bool) -> Command {
    if as_user {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

/// Whether Debian's `postgres` user can enter `dir` (every parent must be
/// searchable by it).
fn postgres_can_reach(dir: &Path) -> bool {
    Command::new("runuser")
        .args(["-u", "postgres", "--", "test", "-x"])
        .arg(dir)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Start PostgreSQL with its data in `dir` (or, as root when Debian's
/// `postgres` user cannot reach `dir`, in a temporary directory), user
/// `menshen` with a random password (SCRAM), database `menshen`.
pub fn start_postgres(dir: &Path) -> anyhow::Result<LocalServer> {
    let bin = pg_bindir().context("PostgreSQL is not installed (apt-get install postgresql)")?;
    let as_user = is_root();
    std::fs::create_dir_all(dir)?;
    let (base, remove) = if as_user && !postgres_can_reach(dir) {
        let t = std::env::temp_dir().join(format!("menshen-demo-pg-{}", random_password()));
        (t.clone(), Some(t))
    } else {
        (dir.to_path_buf(), None)
    };
    let data = base.join("data");
    std::fs::create_dir_all(&base)?;
    let password = random_password();
    let pwfile = base.join("initdb.pw");
    std::fs::write(&pwfile, &password)?;
    if as_user {
        chown_postgres(&base)?;
    }
    let init = run(
        as_postgres(&bin.join("initdb"), as_user)
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "menshen",
                "-A",
                "scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .arg(format!("--pwfile={}", pwfile.display())),
        "initdb",
    );
    let _ = std::fs::remove_file(&pwfile);
    init?;
    let port = free_port()?;
    let log = base.join("server.log");
    // The guard: start postgres, wait until stdin closes, then ask for a
    // fast shutdown and wait for it.
    let script = r#"
"$0" -D "$1" -p "$2" -k "$3" -c listen_addresses=127.0.0.1 -c max_connections=200 >"$3/server.log" 2>&1 &
pid=$!
trap 'kill -INT $pid 2>/dev/null; wait $pid; exit 0' TERM INT
cat >/dev/null
kill -INT $pid 2>/dev/null
wait $pid
"#;
    let mut guard = as_postgres(Path::new("sh"), as_user)
        .arg("-c")
        .arg(script)
        .arg(bin.join("postgres"))
        .arg(&data)
        .arg(port.to_string())
        .arg(&base)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start postgres")?;
    wait_listening(&mut guard, port, Duration::from_secs(30), &log)?;
    let mut server = LocalServer {
        url: format!("postgres://menshen:{password}@127.0.0.1:{port}/menshen"),
        data_dir: data,
        guard: Some(guard),
        remove,
    };
    // A fresh server accepts TCP a moment before it accepts logins: retry.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = run(
            Command::new(bin.join("createdb"))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "-U",
                    "menshen",
                    "menshen",
                ])
                .env("PGPASSWORD", &password),
            "createdb",
        );
        match r {
            Ok(()) => break,
            Err(e) if Instant::now() > deadline => {
                server.stop();
                return Err(e);
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
    Ok(server)
}

fn chown_postgres(dir: &Path) -> anyhow::Result<()> {
    let out = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(dir)
        .output()
        .context("run chown")?;
    if !out.status.success() {
        bail!(
            "cannot hand {} to the postgres user: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Start Redis with its data (an append-only file) in `dir`, a random
/// password, on a free 127.0.0.1 port.
pub fn start_redis(dir: &Path) -> anyhow::Result<LocalServer> {
    let bin = redis_server().context("Redis is not installed (apt-get install redis-server)")?;
    std::fs::create_dir_all(dir)?;
    let password = random_password();
    let port = free_port()?;
    // The password goes through a config file (0600), not the command line.
    let conf = dir.join("redis.conf");
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&conf)?;
        write!(
            f,
            "bind 127.0.0.1\nport {port}\ndir {}\nrequirepass {password}\nappendonly yes\nappendfsync everysec\nsave \"\"\nlogfile {}\n",
            dir.display(),
            dir.join("server.log").display()
        )?;
    }
    let script = r#"
"$0" "$1" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid; exit 0' TERM INT
cat >/dev/null
kill -TERM $pid 2>/dev/null
wait $pid
"#;
    let mut guard = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(&bin)
        .arg(&conf)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start redis-server")?;
    wait_listening(
        &mut guard,
        port,
        Duration::from_secs(15),
        &dir.join("server.log"),
    )?;
    let mut server = LocalServer {
        url: format!("redis://:{password}@127.0.0.1:{port}/0"),
        data_dir: dir.to_path_buf(),
        guard: Some(guard),
        remove: None,
    };
    // Check the password works (AUTH then PING, RESP by hand: two lines).
    let ok = (|| -> std::io::Result<bool> {
        let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(s, "AUTH {password}\r\nPING\r\n")?;
        let mut buf = [0u8; 64];
        let mut got = Vec::new();
        while !String::from_utf8_lossy(&got).contains("PONG") {
            let n = s.read(&mut buf)?;
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        Ok(String::from_utf8_lossy(&got).starts_with("+OK"))
    })()
    .unwrap_or(false);
    if !ok {
        server.stop();
        bail!("redis-server started but refused the demo's password");
    }
    Ok(server)
}
