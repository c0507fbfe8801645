//! Listeners: TLS 1.2/1.3 only (INT-5), HTTP/1.1 and HTTP/2 by ALPN, on every
//! configured address (IPv4 and IPv6, DEP-4), with graceful shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

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

use crate::snapshot::SnapshotHandle;
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
}

/// Builder for a gateway.
pub struct Gateway;

/// A running gateway.
pub struct GatewayHandle {
    /// The bound addresses (useful with port 0).
    pub addrs: Vec<SocketAddr>,
    /// The snapshot handle (tests and admin can force a refresh).
    pub snapshot: SnapshotHandle,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl GatewayHandle {
    /// Stop accepting, let in-flight requests finish (up to 10 s), then return.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
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

impl Gateway {
    /// Bind every listener and start serving.
    pub async fn start(
        config: GatewayConfig,
        cp: ControlPlane,
        hot: Arc<dyn HotState>,
        audit: AuditLog,
        node_id: Option<String>,
    ) -> Result<GatewayHandle, String> {
        config.validate()?;
        if config.unsafe_async_audit {
            tracing::warn!(
                "gateway.unsafe_async_audit is on: A2/A3 calls are answered before their access record is durable (DEP-2 RPO 0 is NOT met); for benchmarks only"
            );
        }
        let acceptor = TlsAcceptor::from(Arc::new(tls_config(&config)?));
        let snapshot = SnapshotHandle::load(&cp).await.map_err(|e| e.to_string())?;
        let (shutdown, rx) = watch::channel(false);
        let mut tasks = vec![snapshot.spawn_refresher(
            cp.clone(),
            Duration::from_millis(config.snapshot_refresh_ms),
            rx.clone(),
        )];
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
        let state = Arc::new(State {
            upstream: UpstreamClient::new(&config)?,
            txn: TxnIds::new(node_id.unwrap_or_else(TxnIds::random_node_id)),
            config,
            snapshot: snapshot.clone(),
            hot,
            audit,
        });
        for l in listeners {
            tasks.push(tokio::spawn(accept_loop(
                l,
                acceptor.clone(),
                state.clone(),
                rx.clone(),
            )));
        }
        Ok(GatewayHandle {
            addrs,
            snapshot,
            shutdown,
            tasks,
        })
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
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
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let state = state.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
            let client_cert: Option<Arc<str>> = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| Arc::from(hex_lower(&menshen_crypto::sha256(c.as_ref()))));
            let header_timeout = Duration::from_millis(state.config.header_read_timeout_ms);
            let svc = service_fn(move |req| {
                let state = state.clone();
                let client_cert = client_cert.clone();
                async move {
                    Ok::<_, Infallible>(
                        crate::pipeline::handle(&state, req, peer, client_cert).await,
                    )
                }
            });
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .keep_alive(true);
            builder
                .http2()
                .timer(TokioTimer::new())
                .max_concurrent_streams(256);
            let conn = builder.serve_connection(TokioIo::new(tls), svc);
            let _ = watcher.watch(conn).await;
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
}

fn hex_lower(b: &[u8]) -> String {
    use std::fmt::Write;
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}
