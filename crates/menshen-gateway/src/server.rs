//! Listeners: TLS 1.2/1.3 only (INT-5), HTTP/1.1 and HTTP/2 by ALPN, on every
//! configured address (IPv4 and IPv6, DEP-4), with graceful shutdown.
//!
//! Bounded under attack (issue 9), with no credential needed to reach any of
//! it: connections are admitted under a global and a per-IP cap (the oldest
//! idle one is shed to make room), TLS handshakes and request heads have
//! timeouts, a connection with nothing in flight is closed after
//! `idle_timeout_ms`, HTTP/2 streams per connection are capped and their
//! flow-control windows kept small, and bodies are held under one memory
//! budget (`pipeline`/`stages::body`).
//!
//! Every request runs in a task of its own: a client that hangs up (or an
//! HTTP/2 stream reset) cannot cancel a request half-way, so a forwarded
//! exchange always runs to its access record (AUD-1). Failures below HTTP get
//! a connection record ([`crate::record::ConnRecorder`]).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use menshen_audit::AuditLog;
use menshen_store::{ControlPlane, HotState};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;

use crate::budget::BodyBudget;
use crate::conn::Connections;
use crate::pipeline::ConnInfo;
use crate::record::{ConnEvent, ConnRecorder};
use crate::snapshot::{canonical_ip, SnapshotHandle};
use crate::txn::TxnIds;
use crate::upstream::{provider, UpstreamClient};
use crate::GatewayConfig;

/// Shared state of a running gateway.
pub struct State {
    /// Settings.
    pub config: GatewayConfig,
    /// Current snapshot.
    pub snapshot: SnapshotHandle,
    /// Nonces and other hot state.
    pub hot: Arc<dyn HotState>,
    /// Access-record writer.
    pub audit: AuditLog,
    /// Upstream client.
    pub upstream: UpstreamClient,
    /// Transaction ids.
    pub txn: TxnIds,
    /// The one memory budget for request bodies.
    pub budget: BodyBudget,
    /// The one memory budget for upstream answers.
    pub answer_budget: BodyBudget,
    /// INT-4 after an unclean stop: signatures `created` before this are
    /// refused (set for one replay window after such a start).
    pub replay_not_before: Option<i64>,
    /// Open connections.
    pub connections: Arc<Connections>,
    /// Connection-level records, rate-limited per client IP.
    pub conn_records: ConnRecorder,
    /// The node's counters (MON-1): every call is counted by `record`.
    pub metrics: Arc<menshen_metrics::Metrics>,
    /// Customer authorization (issue 11): the authorization server's
    /// endpoints and the consent check. `None`: APIs that need consent are
    /// refused, and the AS paths are not served.
    pub authorizer: Option<Arc<dyn crate::authorizer::Authorizer>>,
    /// Flow control's node-wide state (TRF-1): the fallback while the
    /// shared hot state is down, and the counters.
    pub flow: crate::flow::FlowState,
    /// The store, for what a call must write there (RSK-1 review items).
    pub store: Arc<dyn menshen_store::Store>,
    /// Where call spans are exported (OTLP, issue 14 item 7); `None`: off.
    pub spans: Option<Arc<dyn crate::trace::SpanSink>>,
}

/// Options decided by the node at start-up, beside the config file.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Node id (8 hex characters) for transaction serial numbers.
    pub node_id: Option<String>,
    /// Refuse signatures `created` before this Unix time (INT-4 after an
    /// unclean stop, until one replay window has passed).
    pub replay_not_before: Option<i64>,
    /// The process's open-file limit, if known: the connection cap is kept
    /// below it with a reserve.
    pub fd_limit: Option<u64>,
    /// Customer authorization (see [`State::authorizer`]).
    pub authorizer: Option<Arc<dyn crate::authorizer::Authorizer>>,
    /// Call span export (see [`State::spans`]).
    pub spans: Option<Arc<dyn crate::trace::SpanSink>>,
}

/// File descriptors kept free of client connections (upstream connections,
/// store, log segments, admin API).
pub const FD_RESERVE: u64 = 256;

/// Builder for a gateway.
pub struct Gateway;

/// A running gateway.
pub struct GatewayHandle {
    /// The bound addresses (useful with port 0).
    pub addrs: Vec<SocketAddr>,
    /// The snapshot handle (tests and admin can force a refresh).
    pub snapshot: SnapshotHandle,
    /// The shared state (tests read the budget and connection counts).
    pub state: Arc<State>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    requests: TaskTracker,
}

/// How long in-flight requests get at shutdown beyond the upstream timeout.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

impl GatewayHandle {
    /// Stop accepting, let in-flight requests finish (each runs to its
    /// access record; bounded by the request deadline), then return whether
    /// every request finished (false: some were still running at the
    /// deadline and may have no record).
    pub async fn shutdown(self) -> bool {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        self.requests.close();
        let limit = Duration::from_millis(self.state.config.request_timeout_ms) + SHUTDOWN_GRACE;
        if tokio::time::timeout(limit, self.requests.wait())
            .await
            .is_err()
        {
            tracing::error!(
                running = self.requests.len(),
                "requests still running at the shutdown deadline: the next start treats this stop as unclean"
            );
            return false;
        }
        true
    }
}

/// Build the TLS server config: TLS 1.2 and 1.3 only, h2 and http/1.1.
pub fn tls_config(cfg: &GatewayConfig) -> Result<rustls::ServerConfig, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cfg.tls_cert)
        .map_err(|e| {
            format!(
                "gateway.tls_cert: cannot read {}: {e}",
                cfg.tls_cert.display()
            )
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("gateway.tls_cert: {}: {e}", cfg.tls_cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "gateway.tls_cert: {} holds no certificate",
            cfg.tls_cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&cfg.tls_key).map_err(|e| {
        format!(
            "gateway.tls_key: cannot read a private key from {}: {e}",
            cfg.tls_key.display()
        )
    })?;
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .map_err(|e| e.to_string())?;
    let builder = match &cfg.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            // Mutual TLS: certificates are optional at the TLS layer; which
            // app a certificate belongs to (and whether an app requires one)
            // is the client_cert stage's decision.
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca)
                .map_err(|e| format!("gateway.client_ca: cannot read {}: {e}", ca.display()))?
            {
                let c = c.map_err(|e| format!("gateway.client_ca: {}: {e}", ca.display()))?;
                roots
                    .add(c)
                    .map_err(|e| format!("gateway.client_ca: {}: {e}", ca.display()))?;
            }
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
            .allow_unauthenticated()
            .build()
            .map_err(|e| format!("gateway.client_ca: {e}"))?;
            builder.with_client_cert_verifier(v)
        }
    };
    let mut sc = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("gateway.tls_key: does not match gateway.tls_cert: {e}"))?;
    sc.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(sc)
}

/// The soft open-file limit of this process, from `/proc/self/limits`
/// (Linux); `None` elsewhere or when unlimited.
pub fn open_file_limit() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = s.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

impl State {
    /// Build the state a gateway serves from, without listeners: the
    /// settings checked (and `max_connections` fitted to the open-file
    /// limit), the first snapshot, the upstream client, the budgets. The
    /// in-process pipeline tests call [`crate::pipeline::handle`] on it.
    pub async fn build(
        mut config: GatewayConfig,
        cp: &ControlPlane,
        hot: Arc<dyn HotState>,
        audit: AuditLog,
        opts: StartOptions,
    ) -> Result<Arc<State>, String> {
        config.validate()?;
        if let Some(limit) = opts.fd_limit {
            let fit = limit.saturating_sub(FD_RESERVE).max(16) as usize;
            if config.max_connections > fit {
                tracing::warn!(
                    max_connections = config.max_connections,
                    open_file_limit = limit,
                    lowered_to = fit,
                    "gateway.max_connections lowered to fit the open-file limit with a reserve of {FD_RESERVE}; raise `ulimit -n` (LimitNOFILE) to allow more"
                );
                config.max_connections = fit;
            }
        }
        let snapshot = SnapshotHandle::load(cp).await.map_err(|e| e.to_string())?;
        let txn = TxnIds::new(opts.node_id.unwrap_or_else(TxnIds::random_node_id));
        if config.answer_memory_budget_bytes < config.max_response_bytes {
            tracing::warn!(
                budget = config.answer_memory_budget_bytes,
                max_response = config.max_response_bytes,
                "gateway.answer_memory_budget_bytes is below gateway.max_response_bytes: upstream answers larger than the budget are always withheld (502 OUTCOME_UNKNOWN)"
            );
        }
        let state = Arc::new(State {
            metrics: menshen_metrics::Metrics::new(config.metrics),
            upstream: UpstreamClient::new(&config)?,
            budget: BodyBudget::new(config.body_memory_budget_bytes),
            answer_budget: BodyBudget::new(config.answer_memory_budget_bytes),
            connections: Connections::new(config.max_connections, config.max_connections_per_ip),
            conn_records: ConnRecorder::new(
                config.connection_records_per_ip_per_minute,
                txn.node().to_string(),
            ),
            replay_not_before: opts.replay_not_before,
            authorizer: opts.authorizer.clone(),
            spans: opts.spans.clone(),
            store: cp.store.clone(),
            flow: crate::flow::FlowState::default(),
            txn,
            config,
            snapshot,
            hot,
            audit,
        });
        state.metrics.set_probe(Arc::new(crate::metrics::NodeProbe {
            snapshot: state.snapshot.clone(),
            audit: state.audit.clone(),
            connections: state.connections.clone(),
        }));
        Ok(state)
    }
}

impl Gateway {
    /// Bind every listener and start serving.
    pub async fn start(
        config: GatewayConfig,
        cp: ControlPlane,
        hot: Arc<dyn HotState>,
        audit: AuditLog,
        opts: StartOptions,
    ) -> Result<GatewayHandle, String> {
        if config.unsafe_async_audit {
            tracing::warn!(
                "gateway.unsafe_async_audit is on: A2/A3 calls are answered before their access record is durable (DEP-2 RPO 0 is NOT met); for benchmarks only"
            );
        }
        let state = State::build(config, &cp, hot, audit, opts).await?;
        let config = &state.config;
        let acceptor = TlsAcceptor::from(Arc::new(tls_config(config)?));
        let snapshot = state.snapshot.clone();
        let (shutdown, rx) = watch::channel(false);
        let mut tasks = vec![snapshot.spawn_refresher(
            cp.clone(),
            Duration::from_millis(config.snapshot_refresh_ms),
            rx.clone(),
        )];
        // MON-1: the statistics' windows advance every second.
        tasks.push(crate::metrics::spawn_ticker(
            state.metrics.clone(),
            rx.clone(),
        ));
        // TRF-2: active health checks of the named upstreams' targets; the
        // breakers count their events (MON-1).
        state.upstream.named.report_to(&state.metrics);
        tasks.extend(
            state
                .upstream
                .named
                .spawn_health_checks(&state.upstream, rx.clone()),
        );
        let mut listeners = Vec::new();
        for addr in &config.listen {
            let l = TcpListener::bind(addr)
                .await
                .map_err(|e| format!("gateway.listen: cannot bind {addr}: {e}"))?;
            listeners.push(l);
        }
        let addrs = listeners
            .iter()
            .map(|l| l.local_addr().map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        let requests = TaskTracker::new();
        for l in listeners {
            tasks.push(tokio::spawn(accept_loop(
                l,
                acceptor.clone(),
                state.clone(),
                rx.clone(),
                requests.clone(),
            )));
        }
        Ok(GatewayHandle {
            addrs,
            snapshot,
            state,
            shutdown,
            tasks,
            requests,
        })
    }
}

fn conn_event(
    state: &State,
    peer: SocketAddr,
    code: &'static str,
    reason: String,
    started: (SystemTime, Instant),
    client_cert: Option<&str>,
) -> String {
    state.metrics.connection_failure(code);
    let txn_id = state.txn.next_at(started.0);
    state.conn_records.record(
        &state.audit,
        ConnEvent {
            peer,
            client_ip: canonical_ip(peer.ip()),
            code,
            reason,
            txn_id: txn_id.clone(),
            started_at: started.0,
            started: started.1,
            client_cert,
        },
    );
    txn_id
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
    requests: TaskTracker,
) {
    let connections = TaskTracker::new();
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.changed() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let started = (SystemTime::now(), Instant::now());
        let guard = match state.connections.admit(crate::conn::client_key(peer.ip())) {
            Ok(g) => g,
            Err(refusal) => {
                drop(tcp);
                conn_event(
                    &state,
                    peer,
                    refusal.code(),
                    "connection refused: cap reached and no idle connection to shed".into(),
                    started,
                    None,
                );
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let state = state.clone();
        let mut shutdown = shutdown.clone();
        let requests = requests.clone();
        connections.spawn(async move {
            let handshake_timeout = Duration::from_millis(state.config.header_read_timeout_ms);
            let tls = tokio::select! {
                r = tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)) => match r {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        conn_event(&state, peer, "TLS_HANDSHAKE_FAILED", format!("TLS handshake failed: {e}"), started, None);
                        return;
                    }
                    Err(_) => {
                        conn_event(&state, peer, "TLS_HANDSHAKE_TIMEOUT", format!("no TLS handshake within {} ms", handshake_timeout.as_millis()), started, None);
                        return;
                    }
                },
                _ = guard.slot.shed_requested() => return,
                _ = shutdown.changed() => return,
            };
            let client_cert: Option<Arc<str>> = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| Arc::from(hex_lower(&menshen_crypto::sha256(c.as_ref()))));
            serve(state, tls, peer, client_cert, guard, shutdown, requests, started).await;
        });
    }
    drop(listener);
    connections.close();
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, connections.wait()).await;
}

#[allow(clippy::too_many_arguments)]
async fn serve(
    state: Arc<State>,
    tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    peer: SocketAddr,
    client_cert: Option<Arc<str>>,
    guard: crate::conn::ConnGuard,
    mut shutdown: watch::Receiver<bool>,
    requests: TaskTracker,
    started: (SystemTime, Instant),
) {
    let cfg = &state.config;
    let slot = guard.slot.clone();
    let info = ConnInfo {
        peer,
        client_cert: client_cert.clone(),
        slot: Some(slot.clone()),
    };
    let svc_state = state.clone();
    let task_cap = 2 * cfg.h2_max_concurrent_streams as usize;
    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let state = svc_state.clone();
        let info = info.clone();
        let slot = slot.clone();
        // HTTP/2 streams reset by the client free their slot while their
        // task runs on: cap the tasks of one connection, or rapid resets
        // would start unbounded work.
        if slot.in_flight() >= task_cap {
            // The answer carries the serial number of its record.
            let txn = conn_event(
                &state,
                info.peer,
                "REQUEST_TASK_LIMIT",
                format!("{task_cap} requests of this connection still running; refused with SERVER_BUSY"),
                (SystemTime::now(), Instant::now()),
                info.client_cert.as_deref(),
            );
            let resp = crate::error::error_response(menshen_protocol::ErrorCode::ServerBusy, &txn)
                .map(http_body_util::Full::new);
            return futures_ready(resp);
        }
        // AUD-1: the request runs in its own task; if the client goes away
        // (the service future is dropped) the task still runs to its record.
        slot.request_started();
        let guard = InFlight(slot);
        let task = requests.spawn(async move {
            let _ended = guard; // request_ended, also if the task panics
            crate::pipeline::handle(state, req, info).await
        });
        Box::pin(async move {
            Ok::<_, Infallible>(match task.await {
                Ok(r) => r,
                Err(_) => crate::error::error_response(menshen_protocol::ErrorCode::Internal, "-")
                    .map(http_body_util::Full::new),
            })
        }) as ServiceFuture
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(cfg.header_read_timeout_ms))
        // The bare-LF scanner follows heads up to this size; larger ones are
        // refused by hyper (and by the scanner).
        .max_buf_size(crate::h1scan::MAX_HEAD)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(cfg.h2_max_concurrent_streams)
        // Small windows: an HTTP/2 client cannot push more than these ahead
        // of what the pipeline reads (the body budget bounds what it reads).
        .initial_stream_window_size(64 * 1024)
        .initial_connection_window_size(256 * 1024)
        .max_header_list_size(64 * 1024)
        .max_pending_accept_reset_streams(32)
        .max_local_error_reset_streams(256);
    let io = crate::h1scan::HeadScanner::new(tls, guard.slot.clone());
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let idle = Duration::from_millis(cfg.idle_timeout_ms);
    let mut closing: Option<tokio::time::Instant> = None;
    let result = loop {
        // When to look at idleness next.
        let next_idle_check = match guard.slot.idle_for_ms() {
            Some(ms) => idle.saturating_sub(Duration::from_millis(ms)),
            None => idle,
        };
        let hard_stop =
            closing.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            r = conn.as_mut() => break r,
            _ = tokio::time::sleep(next_idle_check), if closing.is_none() => {
                if guard.slot.idle_for_ms().is_some_and(|ms| ms >= idle.as_millis() as u64) {
                    conn.as_mut().graceful_shutdown();
                    closing = Some(tokio::time::Instant::now() + Duration::from_secs(1));
                }
            }
            _ = guard.slot.shed_requested(), if closing.is_none() => {
                conn.as_mut().graceful_shutdown();
                // A request that started just now gets its answer delivered.
                let grace = if guard.slot.idle_for_ms().is_some() {
                    Duration::from_secs(1)
                } else {
                    Duration::from_millis(cfg.request_timeout_ms)
                };
                closing = Some(tokio::time::Instant::now() + grace);
            }
            _ = shutdown.changed(), if closing.is_none() => {
                conn.as_mut().graceful_shutdown();
                closing = Some(tokio::time::Instant::now() + SHUTDOWN_GRACE);
            }
            _ = tokio::time::sleep_until(hard_stop), if closing.is_some() => {
                // Closing took too long (a client not reading its answers):
                // drop the connection; requests already running finish in
                // their own tasks and are recorded.
                break Ok(());
            }
        }
    };
    if let Err(e) = result {
        // Parse errors and header timeouts end the connection below the
        // pipeline: one record per connection (rate-limited per IP).
        let code = if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if h.is_parse() || h.is_parse_status() {
                Some("HTTP_PARSE_ERROR")
            } else if h.is_timeout() && guard.slot.head_pending() {
                // Part of a head arrived, the rest did not: a slow client.
                // (hyper's header timer also runs while a keep-alive
                // connection waits for its next request: that is idleness,
                // not worth a record.)
                Some("HEADER_TIMEOUT")
            } else {
                None
            }
        } else {
            None
        };
        match code {
            Some(code) => {
                conn_event(
                    &state,
                    peer,
                    code,
                    format!("connection error: {e}"),
                    started,
                    client_cert.as_deref(),
                );
            }
            None => tracing::debug!(%peer, error = %e, "connection ended with an error"),
        }
    }
    drop(guard);
}

type ServiceFuture = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = Result<http::Response<http_body_util::Full<bytes::Bytes>>, Infallible>,
            > + Send,
    >,
>;

fn futures_ready(r: http::Response<http_body_util::Full<bytes::Bytes>>) -> ServiceFuture {
    Box::pin(std::future::ready(Ok(r)))
}

/// Marks a request ended when dropped (normally, or if its task panics).
struct InFlight(Arc<crate::conn::Slot>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

fn hex_lower(b: &[u8]) -> String {
    use std::fmt::Write;
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}
