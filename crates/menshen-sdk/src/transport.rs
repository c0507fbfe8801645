//! Transport: the TLS 1.2+ HTTP client, sending a request, the response.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use menshen_protocol::{headers, ErrorBody};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::SdkError;

/// A response as the SDK returns it.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Response {
    /// The uniform error body, if this is an error response.
    pub fn error(&self) -> Option<ErrorBody> {
        if self.status < 400 {
            return None;
        }
        serde_json::from_slice(&self.body).ok()
    }
    /// The transaction serial number the gateway assigned.
    pub fn txn_id(&self) -> Option<&str> {
        self.headers.get(headers::TXN_ID)?.to_str().ok()
    }
}

/// The HTTP client type used underneath.
pub type HttpClient =
    hyper_util::client::legacy::Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// An HTTP(S) client trusting only `ca_pem` (PEM bytes) for TLS; TLS 1.2+.
pub fn http_client(ca_pem: Option<&[u8]>) -> Result<HttpClient, SdkError> {
    http_client_with_identity(ca_pem, None)
}

/// Like [`http_client`], presenting a client certificate (mutual TLS) given
/// as PEM certificate chain and PEM PKCS#8 key.
pub fn http_client_with_identity(
    ca_pem: Option<&[u8]>,
    identity: Option<(&[u8], &[u8])>,
) -> Result<HttpClient, SdkError> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(pem) = ca_pem {
        for c in CertificateDer::pem_slice_iter(pem) {
            let c = c.map_err(|e| SdkError::Ca(e.to_string()))?;
            roots.add(c).map_err(|e| SdkError::Ca(e.to_string()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .map_err(|e| SdkError::Tls(e.to_string()))?
        .with_root_certificates(roots);
    let tls = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_slice_iter(cert)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| SdkError::Tls(format!("client certificate: {e}")))?;
            let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key)
                .map_err(|e| SdkError::Tls(format!("client key: {e}")))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| SdkError::Tls(format!("client certificate: {e}")))?
        }
    };
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(10)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(https))
}

/// Send a request and read the whole response.
pub async fn send(client: &HttpClient, req: Request<Bytes>) -> Result<Response, SdkError> {
    let (parts, body) = req.into_parts();
    let req = Request::from_parts(parts, Full::new(body));
    let resp = client
        .request(req)
        .await
        .map_err(|e| SdkError::Http(format!("{e:?}")))?;
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| SdkError::Http(e.to_string()))?
        .to_bytes();
    Ok(Response {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    })
}
