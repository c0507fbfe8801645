//! `menshen-loadgen`: what `bench/run.sh` drives.
//!
//! - `upstream`: a minimal HTTP/1.1 upstream (fixed ~200-byte JSON answer).
//! - `load`: closed-loop load over keep-alive connections for a fixed time;
//!   when given credentials it signs every request fresh (new nonce, current
//!   `created`), as a real application party must. Prints one JSON line.
//! - `audit`: audit-log throughput with group commit, and the latency of a
//!   durable record under concurrent load.
//! - `sign`: the client-side cost of signing one request.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::{Parser, Subcommand};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use menshen_sdk::{Credentials, SignOptions};

#[derive(Parser)]
#[command(about = "Menshen benchmark load generator")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve a fixed JSON answer on 127.0.0.1:PORT (0 = any); prints the address.
    Upstream {
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
    /// Closed-loop load against URL for DURATION seconds.
    Load {
        #[arg(long)]
        url: String,
        /// Label printed with the result.
        #[arg(long)]
        target: String,
        #[arg(long)]
        ca: Option<PathBuf>,
        #[arg(long)]
        app_id: Option<String>,
        /// App_Secret file (HMAC-SM3).
        #[arg(long)]
        secret_file: Option<PathBuf>,
        /// PKCS#8 key (key-pair signature).
        #[arg(long)]
        key: Option<PathBuf>,
        #[arg(long, default_value_t = 32)]
        connections: usize,
        #[arg(long, default_value_t = 8)]
        duration: u64,
        #[arg(long, default_value_t = 2)]
        warmup: u64,
    },
    /// Audit writer throughput and durable-record latency.
    Audit {
        #[arg(long, default_value_t = 200_000)]
        records: u64,
        #[arg(long, default_value_t = 64)]
        writers: usize,
    },
    /// Client-side signing cost.
    Sign {
        #[arg(long)]
        key: Option<PathBuf>,
    },
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Upstream { port } => upstream(port).await,
        Cmd::Load {
            url,
            target,
            ca,
            app_id,
            secret_file,
            key,
            connections,
            duration,
            warmup,
        } => {
            load(
                url,
                target,
                ca,
                app_id,
                secret_file,
                key,
                connections,
                duration,
                warmup,
            )
            .await
        }
        Cmd::Audit { records, writers } => audit(records, writers).await,
        Cmd::Sign { key } => sign(key),
    }
}

async fn upstream(port: u16) -> anyhow::Result<()> {
    let l = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("{}", l.local_addr()?);
    let body = Bytes::from_static(br#"{"products":[{"code":"WM-180","name":"Steady Income 180-day","annual_rate":"2.85%"},{"code":"TD-3Y","name":"3-year time deposit","annual_rate":"2.10%"}],"currency":"CNY","page":1}"#);
    loop {
        let (s, _) = l.accept().await?;
        let _ = s.set_nodelay(true);
        let body = body.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |_req| {
                let b = body.clone();
                async move {
                    Ok::<_, Infallible>(
                        http::Response::builder()
                            .header("content-type", "application/json")
                            .body(Full::new(b))
                            .expect("static response"),
                    )
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(s), svc)
                .await;
        });
    }
}

#[allow(clippy::too_many_arguments)]
async fn load(
    url: String,
    target: String,
    ca: Option<PathBuf>,
    app_id: Option<String>,
    secret_file: Option<PathBuf>,
    key: Option<PathBuf>,
    connections: usize,
    duration: u64,
    warmup: u64,
) -> anyhow::Result<()> {
    let ca = match ca {
        Some(p) => Some(std::fs::read(&p).with_context(|| p.display().to_string())?),
        None => None,
    };
    let client = menshen_sdk::http_client(ca.as_deref())?;
    let creds = match (&app_id, secret_file, key) {
        (Some(a), _, Some(k)) => Some(Credentials::key_pair_from_file(a, &k)?),
        (Some(a), Some(f), None) => Some(Credentials::hmac_from_file(
            a,
            &f,
            menshen_crypto::MacAlg::HmacSm3,
        )?),
        _ => None,
    };
    let method = match (&creds, &key_alg(&creds)) {
        (None, _) => "unsigned".to_string(),
        (Some(_), a) => format!("each request signed ({a})"),
    };
    let creds = Arc::new(creds);
    let recording = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let non2xx = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (client, creds, url) = (client.clone(), creds.clone(), url.clone());
        let (recording, stop, errors, non2xx) = (
            recording.clone(),
            stop.clone(),
            errors.clone(),
            non2xx.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat: Vec<u32> = Vec::with_capacity(1 << 16);
            while !stop.load(Ordering::Relaxed) {
                let mut req = http::Request::get(&url)
                    .body(Bytes::new())
                    .expect("valid URL");
                if let Some(c) = creds.as_ref() {
                    if menshen_sdk::sign_request(&mut req, c, &SignOptions::default()).is_err() {
                        errors.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                }
                let t = Instant::now();
                let r = menshen_sdk::send(&client, req).await;
                let us = t.elapsed().as_micros().min(u32::MAX as u128) as u32;
                if recording.load(Ordering::Relaxed) {
                    match r {
                        Ok(resp) if resp.status < 300 => lat.push(us),
                        Ok(_) => {
                            non2xx.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            lat
        }));
    }
    tokio::time::sleep(Duration::from_secs(warmup)).await;
    recording.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(duration)).await;
    recording.store(false, Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await?);
    }
    all.sort_unstable();
    println!(
        "{}",
        serde_json::json!({
            "target": target, "connections": connections, "duration_s": duration, "requests": all.len(),
            "errors": errors.load(Ordering::Relaxed), "non_2xx": non2xx.load(Ordering::Relaxed),
            "rps": (all.len() as f64 / elapsed).round(), "p50_ms": pct(&all, 0.5), "p99_ms": pct(&all, 0.99), "method": method,
        })
    );
    Ok(())
}

fn key_alg(c: &Option<Credentials>) -> String {
    c.as_ref()
        .map(|c| c.alg_name().to_string())
        .unwrap_or_default()
}

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
    let rec = serde_json::json!({"kind":"access","txn_id":"T1795389532130436425410000001","node_id":"43642541","timestamp":"2026-11-22T23:18:52.130Z","duration_us":1585,"app_id":"app_b7cbf2f6f51791956117","app_verified":true,"api_id":"account-balance","u_api_id":"0PC103050201000100000100","level":"A2","client_ip":"127.0.0.1","peer":"127.0.0.1:53570","method":"GET","path":"/v1/accounts/622202*********3445/balance","status":200,"result":"success","code":null,"message":"upstream 200","reason":null,"alg":"sm2-sm3","nonce":"WGQhZPkVZgQrMrLsw2ezew","sig_created":1795389532});
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
            let mut lat = vec![];
            for _ in 0..stop_at {
                let t = Instant::now();
                log.record_durable(&rec).await.expect("durable");
                lat.push(t.elapsed().as_micros() as u32);
            }
            lat
        }));
    }
    let mut lat = vec![];
    for t in tasks {
        lat.extend(t.await?);
    }
    lat.sort_unstable();
    println!(
        "{}",
        serde_json::json!({
            "target": "audit", "records": total, "writers": writers, "seconds": secs,
            "records_per_s": (total as f64 / secs).round(),
            "durable_p50_ms": pct(&lat, 0.5), "durable_p99_ms": pct(&lat, 0.99),
            "method": "SM3 chain; fdatasync + SM2-signed checkpoint before answering any durable waiter, else at least every 100 ms (group commit)",
        })
    );
    Ok(())
}

fn sign(key: Option<PathBuf>) -> anyhow::Result<()> {
    let creds = match key {
        Some(k) => Credentials::key_pair_from_file("app_bench", &k)?,
        None => Credentials::hmac_sm3(
            "app_bench",
            b"0123456789abcdef0123456789abcdef0123456789a".to_vec(),
        ),
    };
    let n = 20_000;
    let t = Instant::now();
    for _ in 0..n {
        let mut req = http::Request::get("https://127.0.0.1:8443/v1/products").body(Bytes::new())?;
        menshen_sdk::sign_request(&mut req, &creds, &SignOptions::default())?;
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({"target": "client-signing", "alg": creds.alg_name(), "signatures_per_s": (n as f64 / s).round()})
    );
    Ok(())
}
