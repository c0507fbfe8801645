//! The pooled keep-alive client to bank upstreams (`http://` or `https://`),
//! and the named upstreams of the node's config (TRF-2: several targets,
//! load balancing, health checks, circuit breaker, bulkhead; see
//! `docs/upstreams.md`).

pub mod breaker;
pub mod config;
pub mod named;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::GatewayConfig;

/// The connector type.
pub type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// A shared upstream client.
#[derive(Clone)]
pub struct UpstreamClient {
    /// The pooled client.
    pub client: Client<Connector, Full<Bytes>>,
    /// Whole-exchange timeout.
    pub timeout: Duration,
    /// Response size limit.
    pub max_response: usize,
    /// The named upstreams (`upstream://NAME`), each with its own pool.
    pub named: Arc<named::Upstreams>,
}

/// The process's crypto provider, chosen explicitly (never a global default).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

impl UpstreamClient {
    /// Build from config.
    pub fn new(cfg: &GatewayConfig) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        if let Some(ca) = &cfg.upstream_ca {
            let certs = CertificateDer::pem_file_iter(ca)
                .map_err(|e| format!("gateway.upstream_ca: cannot read {}: {e}", ca.display()))?;
            for c in certs {
                let c = c.map_err(|e| format!("gateway.upstream_ca: {}: {e}", ca.display()))?;
                roots
                    .add(c)
                    .map_err(|e| format!("gateway.upstream_ca: {}: {e}", ca.display()))?;
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connect_timeout = Duration::from_millis(cfg.upstream_connect_timeout_ms);
        let timeout = Duration::from_millis(cfg.upstream_timeout_ms);
        let named = named::Upstreams::new(
            &cfg.upstreams,
            || connector(tls.clone(), connect_timeout),
            timeout,
        );
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .build(connector(tls, connect_timeout));
        Ok(UpstreamClient {
            client,
            timeout,
            max_response: cfg.max_response_bytes,
            named: Arc::new(named),
        })
    }
}

/// An HTTP/1.1 connector for `http://` and `https://` on `tls`.
pub fn connector(tls: rustls::ClientConfig, connect_timeout: Duration) -> Connector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http)
}
