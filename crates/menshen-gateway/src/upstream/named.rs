//! Named upstreams at run time (TRF-2): targets with their health and
//! calls in flight, load balancing, the bulkhead (in-flight and connection
//! caps), the circuit breaker and the active health checks. Everything a
//! call touches is atomic: no lock on the request path.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body_util::{BodyExt, Full, Limited};
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::breaker::Breaker;
use super::config::{Balance, HealthConfig, UpstreamConfig};
use super::{Connector, UpstreamClient};

/// The connection cap of an upstream was reached: nothing was sent.
#[derive(Debug, thiserror::Error)]
#[error("connection cap of the upstream reached")]
pub struct ConnectionCap;

/// A connector that keeps at most `max` connections open (idle ones
/// included); one more is refused at once with [`ConnectionCap`].
#[derive(Clone)]
pub struct CappedConnector {
    inner: Connector,
    open: Arc<AtomicUsize>,
    max: usize,
}

/// Frees its connection slot when the connection is dropped.
struct ConnSlot(Arc<AtomicUsize>);

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A connection counted against its upstream's cap.
pub struct Capped<T> {
    io: T,
    _slot: ConnSlot,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Uri> for CappedConnector {
    type Response = Capped<<Connector as tower_service::Service<Uri>>::Response>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        if self.open.fetch_add(1, Ordering::AcqRel) >= self.max {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return Box::pin(std::future::ready(Err(Box::new(ConnectionCap) as BoxError)));
        }
        let slot = ConnSlot(self.open.clone());
        let fut = self.inner.call(uri);
        Box::pin(async move {
            let io = fut.await?;
            Ok(Capped { io, _slot: slot })
        })
    }
}

impl<T: Connection> Connection for Capped<T> {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

impl<T: Read + Unpin> Read for Capped<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for Capped<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
}

/// One target of an upstream.
#[derive(Debug)]
pub struct Target {
    /// Base URL, without trailing slash.
    pub base: Box<str>,
    healthy: AtomicBool,
    in_flight: AtomicUsize,
}

impl Target {
    /// Whether it gets traffic (active health checks).
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }
    /// Calls in flight to it.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// Holds one unit of a counter for as long as it lives.
pub struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One named upstream.
pub struct Upstream {
    /// Its name (`upstream://NAME`).
    pub name: Box<str>,
    /// Its targets.
    pub targets: Box<[Target]>,
    balance: Balance,
    next: AtomicUsize,
    in_flight: AtomicUsize,
    /// Bulkhead: calls in flight at once.
    pub max_in_flight: usize,
    open_connections: Arc<AtomicUsize>,
    /// Bulkhead: connections open at once.
    pub max_connections: usize,
    /// Further targets tried after a connect failure (idempotent methods).
    pub retries: u32,
    /// Whole-exchange timeout.
    pub timeout: Duration,
    /// Its own connection pool (the connection cap counts its connections).
    pub client: Client<CappedConnector, Full<Bytes>>,
    /// The circuit breaker, if enabled.
    pub breaker: Option<Arc<Breaker>>,
    /// Active health checks, if configured.
    pub health: Option<HealthConfig>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("targets", &self.targets)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    fn new(
        name: &str,
        cfg: &UpstreamConfig,
        connector: Connector,
        default_timeout: Duration,
    ) -> Upstream {
        let open_connections = Arc::new(AtomicUsize::new(0));
        let capped = CappedConnector {
            inner: connector,
            open: open_connections.clone(),
            max: cfg.max_connections,
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(cfg.max_connections)
            .build(capped);
        Upstream {
            name: name.into(),
            targets: cfg
                .targets
                .iter()
                .map(|t| Target {
                    base: t.trim_end_matches('/').into(),
                    healthy: AtomicBool::new(true),
                    in_flight: AtomicUsize::new(0),
                })
                .collect(),
            balance: cfg.balance,
            next: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: cfg.max_in_flight,
            open_connections,
            max_connections: cfg.max_connections,
            retries: cfg.retries,
            timeout: cfg
                .timeout_ms
                .map(Duration::from_millis)
                .unwrap_or(default_timeout),
            client,
            breaker: cfg
                .breaker
                .enabled
                .then(|| Breaker::new(cfg.breaker.clone())),
            health: cfg.health.clone(),
        }
    }

    /// Take one in-flight slot of the bulkhead; `None` when it is full.
    pub fn enter(&self) -> Option<InFlight<'_>> {
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= self.max_in_flight {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(InFlight(&self.in_flight))
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Connections open now (idle ones included).
    pub fn open_connections(&self) -> usize {
        self.open_connections.load(Ordering::Relaxed)
    }

    /// Choose a healthy target not in `tried` (bit i: target i), and count
    /// a call in flight on it.
    pub fn pick(&self, tried: u64) -> Option<(usize, InFlight<'_>)> {
        let n = self.targets.len();
        let start = if n == 1 {
            0
        } else {
            self.next.fetch_add(1, Ordering::Relaxed) % n
        };
        let mut best: Option<(usize, usize)> = None;
        for k in 0..n {
            let i = (start + k) % n;
            let t = &self.targets[i];
            if (tried >> i) & 1 == 1 || !t.healthy() {
                continue;
            }
            match self.balance {
                Balance::RoundRobin => {
                    best = Some((i, 0));
                    break;
                }
                Balance::LeastInFlight => {
                    let f = t.in_flight();
                    if best.is_none_or(|(_, b)| f < b) {
                        best = Some((i, f));
                        if f == 0 {
                            break;
                        }
                    }
                }
            }
        }
        let (i, _) = best?;
        let t = &self.targets[i];
        t.in_flight.fetch_add(1, Ordering::AcqRel);
        Some((i, InFlight(&t.in_flight)))
    }

    /// Milliseconds until a target may be back (for `Retry-After` when none
    /// is healthy).
    pub fn health_interval_ms(&self) -> u64 {
        self.health.as_ref().map(|h| h.interval_ms).unwrap_or(1000)
    }

    fn set_health(&self, i: usize, healthy: bool) {
        let t = &self.targets[i];
        if t.healthy.swap(healthy, Ordering::AcqRel) != healthy {
            if healthy {
                tracing::info!(upstream = %self.name, target = %t.base, "target healthy again: back in rotation");
            } else {
                tracing::warn!(upstream = %self.name, target = %t.base, "target unhealthy: taken out of rotation");
            }
        }
    }
}

/// The node's named upstreams.
#[derive(Debug, Default)]
pub struct Upstreams {
    by_name: HashMap<Box<str>, Arc<Upstream>>,
}

impl Upstreams {
    /// Build from `[gateway.upstreams]` (already validated), each with its
    /// own connection pool on the gateway's TLS settings.
    pub fn new(
        cfgs: &std::collections::BTreeMap<String, UpstreamConfig>,
        connector: impl Fn() -> Connector,
        default_timeout: Duration,
    ) -> Upstreams {
        Upstreams {
            by_name: cfgs
                .iter()
                .map(|(name, c)| {
                    (
                        name.as_str().into(),
                        Arc::new(Upstream::new(name, c, connector(), default_timeout)),
                    )
                })
                .collect(),
        }
    }

    /// The upstream called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Upstream>> {
        self.by_name.get(name)
    }

    /// Count every breaker's events in `metrics` (MON-1), labelled by the
    /// upstream's name (config names: a bounded set).
    pub fn report_to(&self, metrics: &Arc<menshen_metrics::Metrics>) {
        for (name, u) in &self.by_name {
            if let Some(b) = &u.breaker {
                b.report_to(metrics.clone(), menshen_metrics::intern(name));
            }
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Start the active health checks: one task per target of every
    /// upstream that has them, until `shutdown` fires.
    pub fn spawn_health_checks(
        &self,
        checker: &UpstreamClient,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = Vec::new();
        for u in self.by_name.values() {
            let Some(h) = u.health.clone() else { continue };
            for i in 0..u.targets.len() {
                tasks.push(tokio::spawn(check_target(
                    u.clone(),
                    i,
                    h.clone(),
                    checker.client.clone(),
                    shutdown.clone(),
                )));
            }
        }
        tasks
    }
}

/// Check target `i` of `u` every `interval_ms` until shutdown:
/// `unhealthy_threshold` failures in a row take it out of rotation,
/// `healthy_threshold` passes in a row put it back. A pass is an answer
/// 200-399 to `GET base + path` within `timeout_ms`.
async fn check_target(
    u: Arc<Upstream>,
    i: usize,
    h: HealthConfig,
    client: Client<Connector, Full<Bytes>>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let url = format!("{}{}", u.targets[i].base, h.path);
    let timeout = Duration::from_millis(h.timeout_ms);
    let mut tick = tokio::time::interval(Duration::from_millis(h.interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut passes, mut fails) = (0u32, 0u32);
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = tick.tick() => {}
        }
        let ok = tokio::time::timeout(timeout, probe(&client, &url))
            .await
            .unwrap_or(false);
        if ok {
            passes = passes.saturating_add(1);
            fails = 0;
            if passes >= h.healthy_threshold {
                u.set_health(i, true);
            }
        } else {
            fails = fails.saturating_add(1);
            passes = 0;
            if fails >= h.unhealthy_threshold {
                u.set_health(i, false);
            }
        }
    }
}

async fn probe(client: &Client<Connector, Full<Bytes>>, url: &str) -> bool {
    let Ok(req) = http::Request::get(url)
        .header(http::header::USER_AGENT, "menshen-health-check")
        .body(Full::new(Bytes::new()))
    else {
        return false;
    };
    match client.request(req).await {
        Ok(resp) => {
            let ok = (200..400).contains(&resp.status().as_u16());
            // Read (a bounded amount of) the body so the connection can be
            // reused.
            let _ = Limited::new(resp.into_body(), 64 * 1024).collect().await;
            ok
        }
        Err(_) => false,
    }
}

/// Whether `e` (a client error) is the connection cap refusing.
pub fn is_connection_cap(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(x) = cur {
        if x.is::<ConnectionCap>() {
            return true;
        }
        cur = x.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(targets: usize, balance: Balance) -> Upstream {
        let cfg = UpstreamConfig {
            targets: (0..targets)
                .map(|i| format!("http://127.0.0.1:{}", 1000 + i))
                .collect(),
            balance,
            max_in_flight: 2,
            max_connections: 2,
            retries: 1,
            timeout_ms: None,
            health: None,
            breaker: Default::default(),
        };
        let tls = rustls::ClientConfig::builder_with_provider(super::super::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let conn = super::super::connector(tls, Duration::from_secs(1));
        Upstream::new("u", &cfg, conn, Duration::from_secs(1))
    }

    #[tokio::test]
    async fn trf_2_least_in_flight_prefers_the_idle_target_and_skips_unhealthy_ones() {
        let u = upstream(3, Balance::LeastInFlight);
        let (a, _ga) = u.pick(0).unwrap();
        let (b, _gb) = u.pick(0).unwrap();
        let (c, _gc) = u.pick(0).unwrap();
        let mut all = [a, b, c];
        all.sort();
        assert_eq!(all, [0, 1, 2], "each idle target gets one call first");
        drop(_gb);
        assert_eq!(u.pick(0).unwrap().0, b, "the one with nothing in flight");
        u.set_health(1, false);
        for _ in 0..6 {
            let (i, _g) = u.pick(0).unwrap();
            assert_ne!(i, 1, "an unhealthy target gets no traffic");
        }
        // Tried 0 and 2, 1 unhealthy: none left.
        assert!(u.pick(0b101).is_none());
    }

    #[tokio::test]
    async fn trf_2_round_robin_and_the_in_flight_cap() {
        let u = upstream(2, Balance::RoundRobin);
        let seq: Vec<usize> = (0..4).map(|_| u.pick(0).unwrap().0).collect();
        assert_eq!(seq, [0, 1, 0, 1]);
        let g1 = u.enter().unwrap();
        let _g2 = u.enter().unwrap();
        assert!(u.enter().is_none(), "over max_in_flight");
        drop(g1);
        assert!(u.enter().is_some());
    }
}
