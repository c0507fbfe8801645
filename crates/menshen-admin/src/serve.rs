//! The admin listener (ADM-1): HTTP/1.1, optionally over TLS, with a bound
//! on every phase a client controls, so a slow or silent client cannot hold
//! a connection (or a request's audit record) open.
//!
//! - TLS handshake and each request head: `header_read_timeout`. hyper's
//!   header timer also runs while a keep-alive connection waits for its next
//!   request, so an idle keep-alive connection is closed after it as well.
//! - A connection with no request in flight: closed after `idle_timeout`.
//! - A request body: must arrive within `idle_timeout` (checked where it is
//!   read, in the token middleware) and be at most [`crate::MAX_BODY_BYTES`].

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

/// How long open connections get to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Errors setting up the admin listener.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The TLS certificate or key could not be used; names the setting.
    #[error("{field}: {message}")]
    Tls {
        /// The config setting, e.g. `admin.tls.cert`.
        field: &'static str,
        /// What is wrong and where.
        message: String,
    },
}

/// How the admin listener serves connections.
#[derive(Clone)]
pub struct ServeOptions {
    /// Serve over TLS with this config (see [`tls_config`]); plain HTTP if `None`.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// TLS handshake and each request head must arrive within this.
    pub header_read_timeout: Duration,
    /// A connection with no request in flight is closed after this; a
    /// request body must arrive within it.
    pub idle_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            tls: None,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// The admin API's TLS config from a PEM certificate chain and a PEM private
/// key (TLS 1.2 and 1.3 only, INT-5; HTTP/1.1). Errors name `admin.tls.cert`
/// or `admin.tls.key`.
pub fn tls_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, ServeError> {
    let tls = |field, message| ServeError::Tls { field, message };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| {
            tls(
                "admin.tls.cert",
                format!("cannot read {}: {e}", cert.display()),
            )
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| tls("admin.tls.cert", format!("{}: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(tls(
            "admin.tls.cert",
            format!("{} holds no certificate", cert.display()),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        tls(
            "admin.tls.key",
            format!("cannot read a private key from {}: {e}", key.display()),
        )
    })?;
    // The provider is chosen here, not taken from a process-wide default.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut sc = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .map_err(|e| tls("admin.tls.cert", e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            tls(
                "admin.tls.key",
                format!("does not match admin.tls.cert: {e}"),
            )
        })?;
    sc.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(sc)
}

/// Serve `router` on `listener` until `shutdown` turns true (or its sender
/// is dropped); then stop accepting, let open connections finish their
/// requests for a few seconds, and return.
///
/// Each request carries the peer address as
/// `axum::extract::ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    opts: ServeOptions,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = opts.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let mut conns = tokio::task::JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let (tcp, peer) = tokio::select! {
            _ = shutdown.changed() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "admin API: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if *shutdown.borrow() {
            break;
        }
        let (router, opts, acceptor, stop) = (
            router.clone(),
            opts.clone(),
            acceptor.clone(),
            shutdown.clone(),
        );
        conns.spawn(async move {
            match acceptor {
                None => serve_conn(tcp, peer, router, &opts, stop).await,
                Some(a) => {
                    match tokio::time::timeout(opts.header_read_timeout, a.accept(tcp)).await {
                        Ok(Ok(tls)) => serve_conn(tls, peer, router, &opts, stop).await,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "admin API: TLS handshake failed")
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "admin API: no TLS handshake in time")
                        }
                    }
                }
            }
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    // Connections still open are aborted as the set is dropped.
}

/// Requests in flight on one connection and when the last one ended.
struct Activity {
    born: Instant,
    in_flight: AtomicUsize,
    last_end_ms: AtomicU64,
}

impl Activity {
    /// How long the connection has had no request in flight, if none is.
    fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = self.born.elapsed();
        Some(since.saturating_sub(Duration::from_millis(
            self.last_end_ms.load(Ordering::Acquire),
        )))
    }
}

/// Marks a request in flight until dropped (also when the client hangs up
/// and its service future is dropped).
struct InFlight(Arc<Activity>);

impl InFlight {
    fn new(a: Arc<Activity>) -> Self {
        a.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(a)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let ms = u64::try_from(self.0.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.last_end_ms.store(ms, Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn serve_conn<I>(
    io: I,
    peer: SocketAddr,
    router: Router,
    opts: &ServeOptions,
    mut shutdown: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity {
        born: Instant::now(),
        in_flight: AtomicUsize::new(0),
        last_end_ms: AtomicU64::new(0),
    });
    let act = activity.clone();
    let svc = hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
        let mut router = router.clone();
        let guard = InFlight::new(act.clone());
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        async move {
            let _guard = guard;
            // Router is always ready (its poll_ready returns Ready).
            tower_service::Service::call(&mut router, req.map(axum::body::Body::new)).await
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(opts.header_read_timeout)
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let idle = opts.idle_timeout;
    let mut closing: Option<tokio::time::Instant> = None;
    loop {
        let next_idle_check = match activity.idle_for() {
            Some(d) => idle.saturating_sub(d),
            None => idle,
        };
        let hard_stop =
            closing.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    if e.is_timeout() {
                        tracing::debug!(%peer, "admin API: request head not received in time; connection closed");
                    } else {
                        tracing::debug!(%peer, error = %e, "admin API: connection ended with an error");
                    }
                }
                break;
            }
            _ = tokio::time::sleep(next_idle_check), if closing.is_none() => {
                if activity.idle_for().is_some_and(|d| d >= idle) {
                    conn.as_mut().graceful_shutdown();
                    closing = Some(tokio::time::Instant::now() + Duration::from_secs(1));
                }
            }
            _ = shutdown.changed(), if closing.is_none() => {
                conn.as_mut().graceful_shutdown();
                closing = Some(tokio::time::Instant::now() + SHUTDOWN_GRACE);
            }
            _ = tokio::time::sleep_until(hard_stop), if closing.is_some() => break,
        }
    }
}
