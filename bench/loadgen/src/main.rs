//! `menshen-loadgen`: what `bench/run.sh` drives.
//!
//! - `upstream`: a minimal hyper 1.x HTTP/1.1 upstream on 127.0.0.1 answering
//!   `GET /v1/products`, `GET /v1/bench/products` (and
//!   `GET /v1/bench/accounts/*`, for the optional A2 target) with a fixed
//!   200-byte JSON body, and `POST /v1/bench/transfers/*` (the A3 targets)
//!   with a fixed transfer receipt that names the payee's account (404
//!   otherwise).
//! - `load`: closed-loop load for a fixed time over exactly N keep-alive
//!   HTTP/1.1 connections (one hyper client connection per worker, TLS with
//!   rustls when the URL is `https`). With credentials it signs every request
//!   fresh (`created` = now, random nonce), as a real application party must;
//!   with `--body-file` it POSTs that JSON body, and with `--encrypt` it
//!   first seals those fields for the bank's encryption key (field envelopes,
//!   protocol §12: a fresh SM4 session key wrapped with SM2 per request),
//!   then digests and signs. Prints one JSON line.
//! - `audit`: audit-log throughput with group commit, and the latency of a
//!   durable record under concurrent load.
//! - `sign`: the client-side cost of signing one request, on one thread.
//! - `sm2-bound`: the crypto bound of an A2 call, 1 / (sign + verify) with the
//!   `sm2` crate, next to Menshen's own SM2 verify (per-key table).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use clap::{Args, Parser, Subcommand};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use menshen_sdk::{Credentials, SignOptions};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};

#[derive(Parser)]
#[command(about = "Menshen benchmark load generator")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve a fixed JSON answer on 127.0.0.1:PORT (0 = any free port); the
    /// bound address is the first line on stdout.
    Upstream {
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
    /// Closed-loop load against URL for DURATION seconds after WARMUP seconds.
    Load(Box<LoadArgs>),
    /// Audit writer throughput and durable-record latency.
    Audit {
        #[arg(long, default_value_t = 200_000)]
        records: u64,
        #[arg(long, default_value_t = 64)]
        writers: usize,
    },
    /// Client-side signing cost on one thread (signatures/s).
    Sign {
        /// PKCS#8 key (key-pair signature); default: HMAC-SM3 with a test secret.
        #[arg(long)]
        key: Option<PathBuf>,
        /// How long to sign for.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
    },
    /// A bare TLS reverse proxy on the same stack as Menshen's gateway
    /// (hyper-util auto server + rustls/aws-lc-rs, hyper-util pooled client),
    /// with no checks and no audit: the floor of the stack on this machine.
    BareProxy {
        /// Upstream `http://host:port`.
        #[arg(long)]
        upstream: String,
        /// PEM certificate chain.
        #[arg(long)]
        cert: PathBuf,
        /// PEM private key.
        #[arg(long)]
        key: PathBuf,
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
    /// SM2 sign and verify times on one thread (the A2 crypto bound).
    Sm2Bound {
        /// Seconds per operation.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
    },
}

#[derive(Args)]
struct LoadArgs {
    /// `http://` or `https://` URL (IP literal or resolvable host).
    #[arg(long)]
    url: String,
    /// Label printed with the result (default: the URL).
    #[arg(long)]
    target: Option<String>,
    /// PEM CA certificate(s) to trust for `https`.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// App_ID to sign with (sign every request).
    #[arg(long, alias = "app-id")]
    sign_app_id: Option<String>,
    /// App_Secret file (HMAC-SM3).
    #[arg(long, alias = "secret-file")]
    sign_secret_file: Option<PathBuf>,
    /// PKCS#8 PEM private key (key-pair signature, e.g. SM2) instead of a secret.
    #[arg(long, alias = "key")]
    sign_key: Option<PathBuf>,
    /// File holding a customer's access token: every request carries it as
    /// `Authorization: Bearer`, covered by the signature (a reusable token:
    /// the node's `oauth.token_profile` must be `zjrcb` or `standard`).
    #[arg(long)]
    bearer_file: Option<PathBuf>,
    /// POST this JSON body (default: GET without a body).
    #[arg(long)]
    body_file: Option<PathBuf>,
    /// JSON Pointer of a body field to encrypt for the bank (repeatable;
    /// needs `--bank-keys`): sealed fresh for every request.
    #[arg(long = "encrypt", requires = "bank_keys")]
    encrypt: Vec<String>,
    /// The gateway's key set (`/.well-known/menshen/keys` JSON): its current
    /// encryption key wraps the session keys of `--encrypt`.
    #[arg(long)]
    bank_keys: Option<PathBuf>,
    /// Concurrent keep-alive connections (one closed-loop worker each).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Paced load: at most this many requests/s in all (each worker sends at
    /// most every connections/rate seconds; 0 = as fast as answers come).
    /// For latency comparisons below saturation.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Measured seconds.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Seconds of load before measuring (not counted).
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Connect and per-request timeout, seconds (a timeout counts as an error).
    #[arg(long, default_value_t = 5)]
    timeout: u64,
    /// Also report the CPU time used by process PID during the measurement,
    /// as NAME=PID (repeatable); the loadgen's own CPU is always reported.
    #[arg(long = "cpu-pid", value_parser = parse_named_pid)]
    cpu_pids: Vec<(String, u32)>,
}

fn parse_named_pid(s: &str) -> Result<(String, u32), String> {
    let (n, p) = s.split_once('=').ok_or("expected NAME=PID")?;
    Ok((n.to_string(), p.parse().map_err(|e| format!("{p}: {e}"))?))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Upstream { port } => upstream(port).await,
        Cmd::BareProxy {
            upstream,
            cert,
            key,
            port,
        } => bare_proxy(upstream, cert, key, port).await,
        Cmd::Load(a) => load(*a).await,
        Cmd::Audit { records, writers } => audit(records, writers).await,
        Cmd::Sign { key, seconds } => sign(key, seconds),
        Cmd::Sm2Bound { seconds } => sm2_bound(seconds),
    }
}

// ---------------------------------------------------------------- upstream

/// The A3 targets' answer: `/payee/account` is what the envelope target
/// encrypts for the app.
const TRANSFER_BODY: &[u8] = br#"{"transfer_id":"T20260101000001","status":"accepted","amount":"100.00","currency":"CNY","payee":{"account":"6217000010001234567","name":"Wang Fang"}}"#;

const BODY: &[u8] = br#"{"products":[{"code":"WM-180","name":"Steady Income 180-day","annual_rate":"2.85%"},{"code":"TD-3Y","name":"3-year time deposit","annual_rate":"2.10%"}],"currency":"CNY","as_of":"2026-01-01","page":1}"#;

async fn upstream(port: u16) -> anyhow::Result<()> {
    let l = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("{}", l.local_addr()?);
    loop {
        let (s, _) = l.accept().await?;
        let _ = s.set_nodelay(true);
        tokio::spawn(async move {
            let svc = service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                let path = req.uri().path().to_string();
                let method = req.method().clone();
                // Read the whole request body (keep-alive needs it consumed).
                let _ = req.into_body().collect().await;
                let known = method == http::Method::GET
                    && (matches!(path.as_str(), "/v1/products" | "/v1/bench/products")
                        || path.starts_with("/v1/bench/accounts/"));
                let transfer =
                    method == http::Method::POST && path.starts_with("/v1/bench/transfers");
                let (status, body) = if known {
                    (200, Bytes::from_static(BODY))
                } else if transfer {
                    (200, Bytes::from_static(TRANSFER_BODY))
                } else {
                    (404, Bytes::from_static(br#"{"error":"not found"}"#))
                };
                Ok::<_, Infallible>(
                    http::Response::builder()
                        .status(status)
                        .header("content-type", "application/json")
                        .body(Full::new(body))
                        .expect("static response"),
                )
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(s), svc)
                .await;
        });
    }
}

async fn bare_proxy(
    upstream: String,
    cert: PathBuf,
    key: PathBuf,
    port: u16,
) -> anyhow::Result<()> {
    use hyper_util::client::legacy::{connect::HttpConnector, Client};
    use hyper_util::rt::{TokioExecutor, TokioTimer};
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(&cert)?.collect::<Result<_, _>>()?;
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(&key)?;
    let mut sc = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])?
    .with_no_client_auth()
    .with_single_cert(certs, key)?;
    sc.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(sc));
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(256)
        .build(http);
    let base: http::Uri = upstream.parse()?;
    let l = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("{}", l.local_addr()?);
    loop {
        let (s, _) = l.accept().await?;
        let _ = s.set_nodelay(true);
        let (acceptor, client, base) = (acceptor.clone(), client.clone(), base.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(s).await else {
                return;
            };
            let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let (client, base) = (client.clone(), base.clone());
                async move {
                    let (parts, body) = req.into_parts();
                    let body = body
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let pq = parts
                        .uri
                        .path_and_query()
                        .map(|p| p.as_str())
                        .unwrap_or("/");
                    let uri = format!(
                        "http://{}{}",
                        base.authority().map(|a| a.as_str()).unwrap_or(""),
                        pq
                    );
                    let mut up = http::Request::builder().method(parts.method).uri(uri);
                    for (k, v) in parts.headers.iter() {
                        if k != http::header::HOST {
                            up = up.header(k, v);
                        }
                    }
                    let up = up.body(Full::new(body)).expect("request");
                    let resp = match client.request(up).await {
                        Ok(r) => {
                            let (p, b) = r.into_parts();
                            let b = b.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            http::Response::from_parts(p, Full::new(b))
                        }
                        Err(_) => http::Response::builder()
                            .status(502)
                            .body(Full::new(Bytes::new()))
                            .expect("static"),
                    };
                    Ok::<_, Infallible>(resp)
                }
            });
            let mut b = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            b.http1()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .keep_alive(true);
            let _ = b.serve_connection(TokioIo::new(tls), svc).await;
        });
    }
}

// -------------------------------------------------------------------- load

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// Where and how to connect; shared by all workers.
struct Target {
    addr: SocketAddr,
    /// Absolute URI (what the signature covers).
    abs_uri: http::Uri,
    /// Origin-form URI (what goes on the request line).
    origin: http::Uri,
    host: http::HeaderValue,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    /// A customer's access token sent as `Authorization: Bearer` and
    /// covered by the signature (issue 11 token-carrying calls).
    bearer: Option<http::HeaderValue>,
    /// POST this JSON body (else GET without one).
    body: Option<Bytes>,
    /// Fields of `body` sealed for the bank per request, and its key.
    encrypt: Vec<String>,
    bank: Option<menshen_sdk::BankEncryptionKey>,
}

impl Target {
    async fn new(url: &str, ca: Option<&[u8]>) -> anyhow::Result<Target> {
        let abs_uri: http::Uri = url.parse().with_context(|| format!("URL {url}"))?;
        let https = match abs_uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => bail!("{url}: scheme must be http or https"),
        };
        let auth = abs_uri
            .authority()
            .ok_or_else(|| anyhow!("{url}: no host"))?
            .clone();
        let port = auth.port_u16().unwrap_or(if https { 443 } else { 80 });
        let host = auth.host().trim_start_matches('[').trim_end_matches(']');
        let addr = tokio::net::lookup_host((host, port))
            .await?
            .next()
            .ok_or_else(|| anyhow!("{host}: no address"))?;
        let origin: http::Uri = abs_uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
            .parse()?;
        let tls = if https {
            let name = ServerName::try_from(host.to_string())
                .map_err(|e| anyhow!("server name {host}: {e}"))?;
            Some((
                tokio_rustls::TlsConnector::from(Arc::new(tls_config(ca)?)),
                name,
            ))
        } else {
            None
        };
        Ok(Target {
            addr,
            host: http::HeaderValue::from_str(auth.as_str())?,
            abs_uri,
            origin,
            tls,
            bearer: None,
            body: None,
            encrypt: Vec::new(),
            bank: None,
        })
    }

    /// One new keep-alive HTTP/1.1 connection; returns the sender and the
    /// negotiated TLS version and cipher suite.
    async fn connect(&self) -> anyhow::Result<(Sender, Option<String>)> {
        let tcp = tokio::net::TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        match &self.tls {
            None => {
                let (s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                Ok((s, None))
            }
            Some((connector, name)) => {
                let tls = connector.connect(name.clone(), tcp).await?;
                let info = {
                    let c = tls.get_ref().1;
                    format!(
                        "{:?} {:?} {:?}",
                        c.protocol_version()
                            .ok_or_else(|| anyhow!("no TLS version"))?,
                        c.negotiated_cipher_suite()
                            .ok_or_else(|| anyhow!("no cipher suite"))?
                            .suite(),
                        c.negotiated_key_exchange_group()
                            .map(|g| g.name())
                            .ok_or_else(|| anyhow!("no key exchange group"))?
                    )
                };
                let (s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                Ok((s, Some(info)))
            }
        }
    }

    /// A GET request (a POST with `body`), signed fresh when `creds` is
    /// given; the listed fields are sealed first (encrypt, then sign).
    fn request(&self, creds: Option<&Credentials>) -> anyhow::Result<http::Request<Full<Bytes>>> {
        let mut req = match (&self.body, &self.bank) {
            (None, _) => http::Request::get(self.abs_uri.clone()).body(Bytes::new())?,
            (Some(b), bank) => {
                let body = match bank {
                    Some(k) if !self.encrypt.is_empty() => {
                        Bytes::from(menshen_sdk::seal_request_fields(b, &self.encrypt, k)?)
                    }
                    _ => b.clone(),
                };
                http::Request::post(self.abs_uri.clone())
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(body)?
            }
        };
        let mut opts = SignOptions::default();
        if let Some(b) = &self.bearer {
            req.headers_mut()
                .insert(http::header::AUTHORIZATION, b.clone());
            opts.extra_components.push("authorization".into());
        }
        if let Some(c) = creds {
            // Default options: created = now, fresh 128-bit random nonce.
            menshen_sdk::sign_request(&mut req, c, &opts)?;
        }
        let (mut parts, body) = req.into_parts();
        parts.uri = self.origin.clone();
        parts.headers.insert(http::header::HOST, self.host.clone());
        Ok(http::Request::from_parts(parts, Full::new(body)))
    }
}

/// TLS 1.2 + 1.3, aws-lc-rs, trusting only `ca` (as `menshen_sdk::http_client`).
fn tls_config(ca: Option<&[u8]>) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(pem) = ca {
        for c in CertificateDer::pem_slice_iter(pem) {
            roots.add(c.context("CA certificate")?)?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

struct Flags {
    recording: AtomicBool,
    stop: AtomicBool,
}

/// What one worker saw during the measurement window.
struct WorkerOut {
    hist: Histogram<u64>,
    ok: u64,
    errors: u64,
    non_2xx: BTreeMap<u16, u64>,
    connects: u64,
    tls: Option<String>,
    first_error: Option<String>,
}

async fn worker(
    t: Arc<Target>,
    creds: Arc<Option<Credentials>>,
    flags: Arc<Flags>,
    tmo: Duration,
    period: Option<Duration>,
    offset: Duration,
) -> WorkerOut {
    // Paced workers start spread over one period, not all at once.
    let mut next_send = tokio::time::Instant::now() + offset;
    let mut out = WorkerOut {
        hist: Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds"),
        ok: 0,
        errors: 0,
        non_2xx: BTreeMap::new(),
        connects: 0,
        tls: None,
        first_error: None,
    };
    let note = |out: &mut WorkerOut, e: String| {
        if flags.recording.load(Ordering::Relaxed) {
            out.errors += 1;
        }
        out.first_error.get_or_insert(e);
    };
    let mut sender: Option<Sender> = None;
    while !flags.stop.load(Ordering::Relaxed) {
        if sender.as_ref().is_none_or(|s| s.is_closed()) {
            sender = None;
            match tokio::time::timeout(tmo, t.connect()).await {
                Ok(Ok((s, info))) => {
                    out.connects += 1;
                    if out.tls.is_none() {
                        out.tls = info;
                    }
                    sender = Some(s);
                }
                Ok(Err(e)) => {
                    note(&mut out, format!("connect: {e:#}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                Err(_) => {
                    note(&mut out, "connect: timeout".into());
                    continue;
                }
            }
        }
        let Some(s) = sender.as_mut() else { continue };
        if let Some(p) = period {
            tokio::time::sleep_until(next_send).await;
            // Behind schedule (the server is saturated): do not burst.
            next_send = (next_send + p).max(tokio::time::Instant::now());
        }
        // Latency covers building + signing the request, sending it and
        // reading the whole response.
        let t0 = Instant::now();
        let req = match t.request(creds.as_ref().as_ref()) {
            Ok(r) => r,
            Err(e) => {
                note(&mut out, format!("sign: {e:#}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let res = tokio::time::timeout(tmo, async {
            s.ready().await?;
            let resp = s.send_request(req).await?;
            let status = resp.status();
            resp.into_body().collect().await?;
            Ok::<_, hyper::Error>(status)
        })
        .await;
        let us = t0.elapsed().as_micros() as u64;
        let rec = flags.recording.load(Ordering::Relaxed);
        match res {
            Ok(Ok(st)) if st.is_success() => {
                if rec {
                    out.ok += 1;
                    out.hist.saturating_record(us.max(1));
                }
            }
            Ok(Ok(st)) => {
                if rec {
                    *out.non_2xx.entry(st.as_u16()).or_default() += 1;
                }
            }
            Ok(Err(e)) => {
                note(&mut out, format!("request: {e}"));
                sender = None;
            }
            Err(_) => {
                note(&mut out, "request: timeout".into());
                sender = None;
            }
        }
    }
    out
}

/// utime + stime of a process, seconds (USER_HZ = 100 on Linux).
fn cpu_seconds(pid: &str) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// `{"k":v,...}` in the given key order.
fn json_line(fields: &[(&str, Value)]) -> String {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{}", Value::from(*k), v))
        .collect();
    format!("{{{}}}", body.join(","))
}

async fn load(a: LoadArgs) -> anyhow::Result<()> {
    if a.connections == 0 || a.duration == 0 {
        bail!("--connections and --duration must be > 0");
    }
    let ca = match &a.ca {
        Some(p) => Some(std::fs::read(p).with_context(|| p.display().to_string())?),
        None => None,
    };
    let mut target = Target::new(&a.url, ca.as_deref()).await?;
    if let Some(f) = &a.bearer_file {
        let t = std::fs::read_to_string(f).with_context(|| f.display().to_string())?;
        target.bearer = Some(http::HeaderValue::from_str(&format!(
            "Bearer {}",
            t.trim()
        ))?);
    }
    if let Some(f) = &a.body_file {
        let b = std::fs::read(f).with_context(|| f.display().to_string())?;
        serde_json::from_slice::<Value>(&b)
            .with_context(|| format!("{}: not JSON", f.display()))?;
        target.body = Some(Bytes::from(b));
    }
    if let Some(f) = &a.bank_keys {
        let set = std::fs::read(f).with_context(|| f.display().to_string())?;
        target.bank = Some(menshen_sdk::BankEncryptionKey::from_key_set(&set)?);
    }
    if !a.encrypt.is_empty() && target.body.is_none() {
        bail!("--encrypt needs --body-file");
    }
    target.encrypt = a.encrypt.clone();
    let target = Arc::new(target);
    let creds = match (&a.sign_app_id, &a.sign_secret_file, &a.sign_key) {
        (Some(id), _, Some(k)) => Some(Credentials::key_pair_from_file(id, k)?),
        (Some(id), Some(f), None) => Some(
            Credentials::hmac_from_file(id, f, menshen_crypto::MacAlg::HmacSm3)
                .with_context(|| f.display().to_string())?,
        ),
        (None, None, None) => None,
        _ => bail!("signing needs --sign-app-id with --sign-secret-file or --sign-key"),
    };
    let signing = match &creds {
        None => "unsigned".to_string(),
        Some(c) => format!(
            "every request signed by the client ({}; created=now, fresh 128-bit nonce); \
             the signing cost is part of this target's throughput and latency",
            c.alg_name()
        ),
    };
    let signing = if a.encrypt.is_empty() {
        signing
    } else {
        format!(
            "{signing}; {} sealed per request for the bank's encryption key (fresh SM4 key, SM2-wrapped)",
            a.encrypt.join(", ")
        )
    };
    let client_threads = tokio::runtime::Handle::current().metrics().num_workers();
    let method = format!(
        "menshen-loadgen {}: {} workers, each one hyper 1.x HTTP/1.1 client connection \
         kept alive (exactly {} connections, reconnect only if closed){}; {} tokio worker thread(s); \
         latency = build+sign+send+read whole body, 2xx only; {}",
        if a.rate > 0.0 {
            format!("paced closed loop (at most {} req/s in all)", a.rate)
        } else {
            "closed loop".to_string()
        },
        a.connections,
        a.connections,
        if target.tls.is_some() {
            ", TLS 1.2/1.3 via rustls (aws-lc-rs)"
        } else {
            ", plain HTTP"
        },
        client_threads,
        signing
    );
    let flags = Arc::new(Flags {
        recording: AtomicBool::new(false),
        stop: AtomicBool::new(false),
    });
    let creds = Arc::new(creds);
    let tmo = Duration::from_secs(a.timeout.max(1));
    let period = (a.rate > 0.0).then(|| Duration::from_secs_f64(a.connections as f64 / a.rate));
    let tasks: Vec<_> = (0..a.connections)
        .map(|i| {
            let offset = period.map_or(Duration::ZERO, |p| {
                p.mul_f64(i as f64 / a.connections as f64)
            });
            tokio::spawn(worker(
                target.clone(),
                creds.clone(),
                flags.clone(),
                tmo,
                period,
                offset,
            ))
        })
        .collect();

    tokio::time::sleep(Duration::from_secs(a.warmup)).await;
    let mut pids: Vec<(String, String)> = vec![("loadgen".into(), "self".into())];
    pids.extend(a.cpu_pids.iter().map(|(n, p)| (n.clone(), p.to_string())));
    let cpu0: Vec<Option<f64>> = pids.iter().map(|(_, p)| cpu_seconds(p)).collect();
    flags.recording.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(a.duration)).await;
    flags.recording.store(false, Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu1: Vec<Option<f64>> = pids.iter().map(|(_, p)| cpu_seconds(p)).collect();
    flags.stop.store(true, Ordering::Relaxed);

    // Every worker ends within one connect or request timeout of `stop`.
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut ok, mut errors, mut connects) = (0u64, 0u64, 0u64);
    let mut non_2xx: BTreeMap<u16, u64> = BTreeMap::new();
    let (mut tls, mut first_error) = (None, None);
    for t in tasks {
        let w = t.await?;
        hist.add(&w.hist)?;
        ok += w.ok;
        errors += w.errors;
        connects += w.connects;
        for (k, v) in w.non_2xx {
            *non_2xx.entry(k).or_default() += v;
        }
        tls = tls.or(w.tls);
        first_error = first_error.or(w.first_error);
    }
    let non_2xx_total: u64 = non_2xx.values().sum();
    let answered = (ok + non_2xx_total).max(1) as f64;
    let mut cpu = serde_json::Map::new();
    for (((name, _), c0), c1) in pids.iter().zip(&cpu0).zip(&cpu1) {
        if let (Some(c0), Some(c1)) = (c0, c1) {
            let d = c1 - c0;
            cpu.insert(
                name.clone(),
                json!({
                    "cpu_pct": (d / elapsed * 1000.0).round() / 10.0,
                    "cpu_us_per_req": (d * 1e6 / answered).round(),
                }),
            );
        }
    }
    let ms = |q: f64| (hist.value_at_quantile(q) as f64 / 10.0).round() / 100.0;
    println!(
        "{}",
        json_line(&[
            ("target", json!(a.target.clone().unwrap_or(a.url.clone()))),
            ("connections", json!(a.connections)),
            ("duration_s", json!((elapsed * 100.0).round() / 100.0)),
            ("requests", json!(ok + non_2xx_total)),
            ("ok_2xx", json!(ok)),
            ("errors", json!(errors)),
            ("non_2xx", json!(non_2xx_total)),
            ("rps", json!((ok as f64 / elapsed).round() as u64)),
            ("p50_ms", json!(ms(0.50))),
            ("p99_ms", json!(ms(0.99))),
            ("p999_ms", json!(ms(0.999))),
            ("max_ms", json!(ms(1.0))),
            (
                "non_2xx_by_status",
                json!(non_2xx
                    .iter()
                    .map(|(k, v)| (k.to_string(), *v))
                    .collect::<BTreeMap<_, _>>())
            ),
            (
                "reconnects",
                json!(connects.saturating_sub(a.connections as u64))
            ),
            ("tls", json!(tls)),
            ("cpu", Value::Object(cpu)),
            ("first_error", json!(first_error)),
            ("method", json!(method)),
        ])
    );
    Ok(())
}

// ------------------------------------------------------------------- audit

async fn audit(records: u64, writers: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (key, _) = menshen_crypto::PrivateKey::generate(menshen_crypto::SigAlg::Sm2Sm3)?;
    let log = menshen_audit::AuditLog::open(
        menshen_audit::AuditConfig::new(dir.path().to_path_buf()),
        Some(menshen_audit::AuditSigner {
            key_id: "bench".into(),
            key,
        }),
        None,
    )?;
    let rec = json!({"kind":"access","txn_id":"T1795389532130436425410000001","node_id":"43642541","timestamp":"2026-11-22T23:18:52.130Z","duration_us":1585,"app_id":"app_b7cbf2f6f51791956117","app_verified":true,"api_id":"account-balance","u_api_id":"0PC103050201000100000100","level":"A2","client_ip":"127.0.0.1","peer":"127.0.0.1:53570","method":"GET","path":"/v1/accounts/622202*********3445/balance","status":200,"result":"success","code":null,"message":"upstream 200","reason":null,"alg":"sm2-sm3","nonce":"WGQhZPkVZgQrMrLsw2ezew","sig_created":1795389532});
    // Throughput: async records from many writers, then one flush.
    let t = Instant::now();
    let per = records / writers as u64;
    let mut tasks = vec![];
    for _ in 0..writers {
        let (log, rec) = (log.clone(), rec.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..per {
                log.record(&rec).await.expect("record");
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    log.flush().await?;
    let secs = t.elapsed().as_secs_f64();
    let total = per * writers as u64;
    // Durable latency: every writer waits for its record (as an A2 call does).
    let n = 2_000u64;
    let stop_at = n / writers as u64;
    let mut tasks = vec![];
    for _ in 0..writers {
        let (log, rec) = (log.clone(), rec.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
            for _ in 0..stop_at {
                let t = Instant::now();
                log.record_durable(&rec).await.expect("durable");
                lat.saturating_record(t.elapsed().as_micros() as u64);
            }
            lat
        }));
    }
    let mut lat = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for t in tasks {
        lat.add(t.await?)?;
    }
    let ms = |q: f64| lat.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{}",
        json!({
            "target": "audit", "records": total, "writers": writers, "seconds": secs,
            "records_per_s": (total as f64 / secs).round(),
            "durable_p50_ms": ms(0.5), "durable_p99_ms": ms(0.99),
            "method": "SM3 chain; group commit: fdatasync before answering any durable waiter; SM2-signed checkpoint within 10 ms of a durable record, 100 ms otherwise",
        })
    );
    Ok(())
}

// --------------------------------------------------------------- sm2-bound

/// Median of 5 slices of `seconds / 5` each: microseconds per call of `f`.
fn time_us(seconds: f64, mut f: impl FnMut()) -> f64 {
    let slice = Duration::from_secs_f64((seconds / 5.0).max(0.05));
    let mut per = vec![];
    for _ in 0..5 {
        let (t, mut n) = (Instant::now(), 0u64);
        while t.elapsed() < slice {
            for _ in 0..16 {
                f();
            }
            n += 16;
        }
        per.push(t.elapsed().as_secs_f64() * 1e6 / n as f64);
    }
    per.sort_by(f64::total_cmp);
    per[2]
}

fn sm2_bound(seconds: f64) -> anyhow::Result<()> {
    use sm2::dsa::signature::{Signer, Verifier};
    let msg = b"\"@method\": GET\n\"@authority\": 127.0.0.1:8443\n\"@path\": /v1/bench/accounts/6222020200112233445\n\"@signature-params\": (\"@method\" \"@authority\" \"@path\");created=1767225600;nonce=\"n-0123456789abcdef\";keyid=\"app_0123456789abcdef0123\";alg=\"sm2-sm3\"";
    let sk = sm2::SecretKey::from_slice(&[0x42; 32]).map_err(|e| anyhow!("{e}"))?;
    let k = sm2::dsa::SigningKey::new(menshen_crypto::SM2_DEFAULT_ID, &sk)
        .map_err(|e| anyhow!("{e}"))?;
    let vk = k.verifying_key().clone();
    let sig: sm2::dsa::Signature = k.sign(msg);
    let sign_us = time_us(seconds, || {
        std::hint::black_box::<sm2::dsa::Signature>(k.sign(std::hint::black_box(msg)));
    });
    let verify_us = time_us(seconds, || {
        vk.verify(std::hint::black_box(msg), &sig).expect("verify");
    });
    let (mk, _) = menshen_crypto::PrivateKey::generate(menshen_crypto::SigAlg::Sm2Sm3)?;
    let msig = mk.sign(msg)?;
    let mpk = mk.public_key().clone();
    let menshen_verify_us = time_us(seconds, || {
        assert!(mpk.verify(std::hint::black_box(msg), &msig));
    });
    println!(
        "{}",
        json!({
            "target": "sm2-bound",
            "crate_sign_us": (sign_us * 10.0).round() / 10.0,
            "crate_verify_us": (verify_us * 10.0).round() / 10.0,
            "menshen_verify_us": (menshen_verify_us * 10.0).round() / 10.0,
            "bound_per_core": (1e6 / (sign_us + verify_us)).round(),
            "method": "one thread; median of 5 slices; sm2 crate SigningKey::sign + VerifyingKey::verify over a 200-byte signature base; bound = 1 / (sign + verify)",
        })
    );
    Ok(())
}

// -------------------------------------------------------------------- sign

fn sign(key: Option<PathBuf>, seconds: f64) -> anyhow::Result<()> {
    let creds = match key {
        Some(k) => Credentials::key_pair_from_file("app_bench", &k)?,
        None => Credentials::hmac_sm3(
            "app_bench",
            b"0123456789abcdef0123456789abcdef0123456789a".to_vec(),
        ),
    };
    let target = "https://127.0.0.1:8443/v1/bench/products";
    let budget = Duration::from_secs_f64(seconds.max(0.1));
    let t = Instant::now();
    let mut n = 0u64;
    while t.elapsed() < budget {
        for _ in 0..64 {
            let mut req = http::Request::get(target).body(Bytes::new())?;
            menshen_sdk::sign_request(&mut req, &creds, &SignOptions::default())?;
            n += 1;
        }
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "{}",
        json_line(&[
            ("target", json!("client-signing")),
            ("alg", json!(creds.alg_name())),
            ("signatures", json!(n)),
            ("seconds", json!((s * 100.0).round() / 100.0)),
            ("signatures_per_s", json!((n as f64 / s).round() as u64)),
            ("us_per_signature", json!((s * 1e7 / n as f64).round() / 10.0)),
            (
                "method",
                json!("menshen_sdk::sign_request on one thread: GET, no body, created=now, fresh nonce (same call the load workers make)")
            ),
        ])
    );
    Ok(())
}
