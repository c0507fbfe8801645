//! Where notices to apps may go (MON-4, KEY-4): an app's notification URL
//! is a destination chosen outside the bank, and the node that POSTs to it
//! sits inside the bank's network. So the notifier's HTTP client
//! ([`NoticeClient`]) only ever connects to a public address:
//!
//! - an IP literal in the URL is checked before anything is sent;
//! - a DNS name is resolved by the client's own resolver, which drops every
//!   address that may not be used, and the connection goes to one of the
//!   addresses it kept: the check and the connection use the same answer,
//!   so a name that resolves to a public address when checked and to an
//!   internal one when used (DNS rebinding) gets nowhere;
//! - redirects are never followed (a 3xx is a failed attempt);
//! - the receiver's answer is judged on its status line alone: its body is
//!   never read, so a receiver that streams forever costs nothing.
//!
//! Not public: loopback, unspecified, RFC 1918 private, link-local (the
//! `169.254.169.254` metadata service among them), shared address space
//! (`100.64.0.0/10`), benchmarking, documentation, reserved, multicast,
//! broadcast, IPv6 unique-local and link-local, and an IPv4 address
//! embedded in IPv6 (mapped, NAT64, 6to4) that is one of these. An
//! operator who reaches partners over a private line lists those networks
//! in `alerts.app_notice.allow_networks`; loopback is allowed with
//! `alerts.app_notice.allow_http_loopback` (tests and demos).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use ipnet::IpNet;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

/// Which destination addresses notices may be sent to.
#[derive(Debug, Clone, Default)]
pub struct Destinations {
    /// Loopback allowed (`allow_http_loopback`: tests and demos).
    pub loopback: bool,
    /// Non-public networks allowed all the same (`allow_networks`).
    pub allow: Arc<Vec<IpNet>>,
}

impl Destinations {
    /// Whether a notice may be sent to `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        menshen_model::notify_ip_permitted(ip, self.loopback, &self.allow)
    }

    /// Why `ip` may not be used (for the notice's error and the alert).
    fn refusal(ip: IpAddr) -> String {
        format!(
            "{ip} is not a public address: notices are not sent to internal, loopback or link-local addresses (alerts.app_notice.allow_networks lists private networks that may be)"
        )
    }
}

/// Whether `ip` is a public unicast address (see the module doc).
pub fn is_public(ip: IpAddr) -> bool {
    menshen_model::is_public_ip(ip)
}

/// A resolver that keeps only the addresses [`Destinations`] permits.
#[derive(Clone)]
pub struct GuardedResolver(Destinations);

type Resolving =
    Pin<Box<dyn Future<Output = Result<std::vec::IntoIter<SocketAddr>, std::io::Error>> + Send>>;

impl tower_service::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Resolving;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let d = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept: Vec<SocketAddr> = all.iter().filter(|a| d.permits(a.ip())).copied().collect();
            if kept.is_empty() {
                let first = all
                    .first()
                    .map(|a| Destinations::refusal(a.ip()))
                    .unwrap_or_else(|| "no address".into());
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!("{host} resolves to no address notices may go to: {first}"),
                ));
            }
            Ok(kept.into_iter())
        })
    }
}

type Inner = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<HttpConnector<GuardedResolver>>,
    Full<Bytes>,
>;

/// The notifier's HTTP(S) client (see the module doc).
pub struct NoticeClient {
    inner: Inner,
    dest: Destinations,
}

impl NoticeClient {
    /// A client trusting `ca_pem` (PEM bundle) for TLS 1.2+, connecting only
    /// where `dest` permits.
    pub fn new(ca_pem: Option<&[u8]>, dest: Destinations) -> Result<NoticeClient, String> {
        let mut roots = rustls::RootCertStore::empty();
        if let Some(pem) = ca_pem {
            for c in CertificateDer::pem_slice_iter(pem) {
                let c = c.map_err(|e| e.to_string())?;
                roots.add(c).map_err(|e| e.to_string())?;
            }
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new_with_resolver(GuardedResolver(dest.clone()));
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let inner = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(https);
        Ok(NoticeClient { inner, dest })
    }

    /// Send `req` and return the status of the answer, without reading its
    /// body (the connection is closed). An IP literal that may not be used
    /// is refused before anything is sent; a name is checked by the
    /// resolver.
    pub async fn post(&self, req: http::Request<Bytes>) -> Result<u16, String> {
        if let Some(host) = req.uri().host() {
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            if let Ok(ip) = bare.parse::<IpAddr>() {
                if !self.dest.permits(ip) {
                    return Err(Destinations::refusal(ip));
                }
            }
        }
        let (parts, body) = req.into_parts();
        let resp = self
            .inner
            .request(http::Request::from_parts(parts, Full::new(body)))
            .await
            .map_err(|e| chain(&e))?;
        // The body is dropped unread: the connection is not reused.
        Ok(resp.status().as_u16())
    }
}

/// An error with its causes (the resolver's refusal is a cause).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mon_4_only_public_addresses_unless_allowed() {
        let d = Destinations::default();
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "198.18.0.1",
            "192.0.0.8",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:a00:1::1",
            "2001:db8::1",
            "::10.0.0.1",
        ] {
            assert!(!d.permits(bad.parse().unwrap()), "{bad}");
        }
        for good in ["203.0.114.5", "8.8.8.8", "2400:3200::1", "::ffff:8.8.8.8"] {
            assert!(d.permits(good.parse().unwrap()), "{good}");
        }
        let d = Destinations {
            loopback: true,
            allow: Arc::new(vec!["10.20.0.0/16".parse().unwrap()]),
        };
        assert!(d.permits("127.0.0.1".parse().unwrap()));
        assert!(d.permits("::1".parse().unwrap()));
        assert!(d.permits("10.20.3.4".parse().unwrap()));
        assert!(!d.permits("10.21.3.4".parse().unwrap()));
        assert!(!d.permits("169.254.169.254".parse().unwrap()));
    }
}
