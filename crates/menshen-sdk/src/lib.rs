//! Menshen SDK for application parties (应用方): sign requests per the Menshen
//! protocol (RFC 9421 signatures, RFC 9530 `Content-Digest`), send them over
//! TLS to the bank's gateway, and read the uniform error body.
//!
//! ```no_run
//! # async fn demo() -> Result<(), menshen_sdk::SdkError> {
//! use menshen_sdk::{Client, Credentials};
//! let creds = Credentials::hmac_sm3("app_0123", b"the App_Secret".to_vec());
//! let client = Client::builder("https://127.0.0.1:8443")?
//!     .ca_pem_file("ca.pem")?
//!     .credentials(creds)
//!     .build()?;
//! let resp = client.call("GET", "/v1/products", None).await?;
//! println!("{} {}", resp.status, String::from_utf8_lossy(&resp.body));
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use menshen_crypto::{DigestAlg, MacAlg, PrivateKey, PublicKey};
use menshen_protocol::signature::RequestView;
use menshen_protocol::{
    content_digest, headers, sign_mac, sign_with_key, verify_content_digest, verify_with_key,
    ErrorBody, ParsedSignature, ResponseView, SignatureParams,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use zeroize::Zeroizing;

pub use menshen_protocol;

/// Errors of the SDK.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SdkError {
    /// Bad URL.
    #[error("invalid URL: {0}")]
    Url(String),
    /// CA file problem.
    #[error("CA certificate: {0}")]
    Ca(String),
    /// TLS setup failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// Signing failed.
    #[error("signing: {0}")]
    Sign(String),
    /// Network or HTTP error.
    #[error("HTTP: {0}")]
    Http(String),
    /// No credentials configured.
    #[error("no credentials configured")]
    NoCredentials,
    /// A key could not be read.
    #[error("key: {0}")]
    Key(String),
    /// The bank's response signature is missing or does not verify.
    #[error("response signature: {0}")]
    ResponseSignature(String),
}

/// How an app signs.
#[derive(Clone)]
enum Signer {
    Mac(Zeroizing<Vec<u8>>, MacAlg),
    Key(Arc<PrivateKey>),
}

/// An application party's credentials: App_ID with an App_Secret (A1) or a
/// registered key pair (A1-A3).
#[derive(Clone)]
pub struct Credentials {
    /// App_ID (used as `keyid`).
    pub app_id: String,
    signer: Signer,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("app_id", &self.app_id)
            .field("alg", &self.alg_name())
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// App_ID + App_Secret with HMAC-SM3.
    pub fn hmac_sm3(app_id: &str, secret: Vec<u8>) -> Self {
        Self::hmac(app_id, secret, MacAlg::HmacSm3)
    }
    /// App_ID + App_Secret with HMAC-SHA256.
    pub fn hmac_sha256(app_id: &str, secret: Vec<u8>) -> Self {
        Self::hmac(app_id, secret, MacAlg::HmacSha256)
    }
    /// App_ID + App_Secret with the given MAC.
    pub fn hmac(app_id: &str, secret: Vec<u8>, alg: MacAlg) -> Self {
        Credentials {
            app_id: app_id.to_string(),
            signer: Signer::Mac(Zeroizing::new(secret), alg),
        }
    }
    /// Read the App_Secret from a file (whitespace trimmed).
    pub fn hmac_from_file(app_id: &str, path: &Path, alg: MacAlg) -> std::io::Result<Self> {
        let text = Zeroizing::new(std::fs::read_to_string(path)?);
        Ok(Self::hmac(app_id, text.trim().as_bytes().to_vec(), alg))
    }
    /// App_ID + a registered key pair (SM2, P-256, Ed25519 or RSA); the
    /// algorithm follows from the key.
    pub fn key_pair(app_id: &str, key: PrivateKey) -> Self {
        Credentials {
            app_id: app_id.to_string(),
            signer: Signer::Key(Arc::new(key)),
        }
    }
    /// Read a PKCS#8 PEM private key from a file.
    pub fn key_pair_from_file(app_id: &str, path: &Path) -> Result<Self, SdkError> {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| SdkError::Key(format!("{}: {e}", path.display())))?,
        );
        let key = PrivateKey::from_pkcs8_pem(&text)
            .map_err(|e| SdkError::Key(format!("{}: {e}", path.display())))?;
        Ok(Self::key_pair(app_id, key))
    }
    /// The `alg` these credentials sign with.
    pub fn alg_name(&self) -> &'static str {
        match &self.signer {
            Signer::Mac(_, a) => a.name(),
            Signer::Key(k) => k.alg().name(),
        }
    }
}

/// Options of one signature (defaults: now, fresh nonce, SM3 digest).
#[derive(Debug, Clone)]
pub struct SignOptions {
    /// `created`, unix seconds (default: now).
    pub created: Option<i64>,
    /// `nonce` (default: 128 random bits).
    pub nonce: Option<String>,
    /// Digest algorithm for bodies.
    pub digest: DigestAlg,
    /// Extra header names to cover.
    pub extra_components: Vec<String>,
}

impl Default for SignOptions {
    fn default() -> Self {
        SignOptions {
            created: None,
            nonce: None,
            digest: DigestAlg::Sm3,
            extra_components: vec![],
        }
    }
}

/// Sign `req` in place: adds `Content-Digest` (when there is a body), `X-App-Id`,
/// `Signature-Input` and `Signature`. The URI must be absolute.
pub fn sign_request(
    req: &mut Request<Bytes>,
    creds: &Credentials,
    opts: &SignOptions,
) -> Result<(), SdkError> {
    let uri = req.uri().clone();
    let authority = uri
        .authority()
        .ok_or_else(|| SdkError::Url("request URI must be absolute".into()))?
        .as_str()
        .to_string();
    let has_body = !req.body().is_empty();
    let hs = req.headers_mut();
    if has_body {
        let cd = content_digest(opts.digest, req.body());
        req.headers_mut().insert(
            headers::CONTENT_DIGEST,
            HeaderValue::from_str(&cd).map_err(|e| SdkError::Sign(e.to_string()))?,
        );
    } else {
        hs.remove(headers::CONTENT_DIGEST);
    }
    req.headers_mut().insert(
        headers::APP_ID,
        HeaderValue::from_str(&creds.app_id).map_err(|e| SdkError::Sign(e.to_string()))?,
    );
    let mut components = SignatureParams::required_components(uri.query().is_some(), has_body);
    components.push(headers::APP_ID.to_string());
    components.extend(opts.extra_components.iter().cloned());
    let params = SignatureParams {
        components,
        created: opts.created.unwrap_or_else(now_unix),
        expires: None,
        nonce: opts
            .nonce
            .clone()
            .unwrap_or_else(|| menshen_crypto::random_token(16)),
        keyid: creds.app_id.clone(),
        alg: creds.alg_name().to_string(),
    };
    let view = RequestView {
        method: req.method().as_str().to_string(),
        authority,
        scheme: uri.scheme_str().unwrap_or("https").to_string(),
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        headers: req
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
    };
    let (si, sig) = match &creds.signer {
        Signer::Mac(secret, alg) => {
            let (si, sig, _base) = sign_mac(*alg, secret, &params, &view)
                .map_err(|e| SdkError::Sign(e.to_string()))?;
            (si, sig)
        }
        Signer::Key(key) => {
            sign_with_key(key, &params, &view, None).map_err(|e| SdkError::Sign(e.to_string()))?
        }
    };
    let hs = req.headers_mut();
    hs.insert(
        headers::SIGNATURE_INPUT,
        HeaderValue::from_str(&si).map_err(|e| SdkError::Sign(e.to_string()))?,
    );
    hs.insert(
        headers::SIGNATURE,
        HeaderValue::from_str(&sig).map_err(|e| SdkError::Sign(e.to_string()))?,
    );
    Ok(())
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

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

/// Verify the bank's signature on a response (AUTH-2, INT-2): the body matches
/// `Content-Digest`; the signature covers `@status`, `content-digest`,
/// `x-menshen-txn-id` and, when the request was signed, the request's own
/// signature (`"signature";req;key=...`); and it verifies with one of
/// `bank_keys`. `request_headers` are the headers the request was sent with.
pub fn verify_response(
    resp: &Response,
    request_headers: &HeaderMap,
    bank_keys: &[PublicKey],
) -> Result<(), SdkError> {
    let bad = |m: &str| SdkError::ResponseSignature(m.to_string());
    let h = |n: &str| resp.headers.get(n).and_then(|v| v.to_str().ok());
    let (Some(si), Some(sig)) = (h(headers::SIGNATURE_INPUT), h(headers::SIGNATURE)) else {
        return Err(bad("the response is not signed"));
    };
    let parsed =
        ParsedSignature::parse(si, sig).map_err(|e| SdkError::ResponseSignature(e.to_string()))?;
    let cd = h(headers::CONTENT_DIGEST).ok_or_else(|| bad("no content-digest"))?;
    verify_content_digest(cd, &resp.body)
        .map_err(|_| bad("the body does not match its content-digest"))?;
    let view = |hs: &HeaderMap, status: u16| ResponseView {
        status,
        headers: hs
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
    };
    let req_signed = request_headers.contains_key(headers::SIGNATURE);
    let mut required = menshen_protocol::response_components(None);
    if req_signed {
        let label = request_headers
            .get(headers::SIGNATURE_INPUT)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split('=').next())
            .unwrap_or(menshen_protocol::SIGNATURE_LABEL);
        required = menshen_protocol::response_components(Some(label));
    }
    for c in &required {
        if !parsed.params.components.contains(c) {
            return Err(SdkError::ResponseSignature(format!(
                "the signature does not cover {c}"
            )));
        }
    }
    let rv = view(&resp.headers, resp.status);
    let reqv = view(request_headers, 0);
    for k in bank_keys {
        if verify_with_key(k, &parsed, &rv, Some(&reqv)).unwrap_or(false) {
            return Ok(());
        }
    }
    Err(bad("the signature does not verify with the bank's keys"))
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

/// Builder of a [`Client`].
pub struct ClientBuilder {
    base: Uri,
    ca: Option<Vec<u8>>,
    creds: Option<Credentials>,
    opts: SignOptions,
    identity: Option<(Vec<u8>, Zeroizing<Vec<u8>>)>,
    bank_keys: Vec<PublicKey>,
    require_signed: Option<bool>,
}

impl ClientBuilder {
    /// Trust this CA (PEM file) for the gateway's certificate.
    pub fn ca_pem_file(mut self, path: impl AsRef<Path>) -> Result<Self, SdkError> {
        self.ca = Some(
            std::fs::read(path.as_ref())
                .map_err(|e| SdkError::Ca(format!("{}: {e}", path.as_ref().display())))?,
        );
        Ok(self)
    }
    /// Trust this CA (PEM bytes).
    pub fn ca_pem(mut self, pem: &[u8]) -> Self {
        self.ca = Some(pem.to_vec());
        self
    }
    /// Sign with these credentials.
    pub fn credentials(mut self, c: Credentials) -> Self {
        self.creds = Some(c);
        self
    }
    /// Present this client certificate (PEM chain, PEM PKCS#8 key) for mutual TLS.
    pub fn client_cert_pem(mut self, cert: &[u8], key: &[u8]) -> Self {
        self.identity = Some((cert.to_vec(), Zeroizing::new(key.to_vec())));
        self
    }
    /// Verify responses with this bank public key (PEM SubjectPublicKeyInfo,
    /// from the gateway's `/.well-known/menshen/keys`). Once a bank key is
    /// set, unsigned responses are refused unless
    /// [`ClientBuilder::require_signed_responses`] says otherwise.
    pub fn bank_public_key_pem(mut self, pem: &str) -> Result<Self, SdkError> {
        self.bank_keys
            .push(PublicKey::from_spki_pem(pem).map_err(|e| SdkError::Key(e.to_string()))?);
        Ok(self)
    }
    /// Whether an unsigned response is an error (default: yes once a bank key is set).
    pub fn require_signed_responses(mut self, yes: bool) -> Self {
        self.require_signed = Some(yes);
        self
    }
    /// Body digest algorithm (default SM3).
    pub fn digest(mut self, d: DigestAlg) -> Self {
        self.opts.digest = d;
        self
    }
    /// Build.
    pub fn build(self) -> Result<Client, SdkError> {
        let identity = self
            .identity
            .as_ref()
            .map(|(c, k)| (c.as_slice(), k.as_slice()));
        Ok(Client {
            http: http_client_with_identity(self.ca.as_deref(), identity)?,
            base: self.base,
            creds: self.creds.ok_or(SdkError::NoCredentials)?,
            opts: self.opts,
            require_signed: self.require_signed.unwrap_or(!self.bank_keys.is_empty()),
            bank_keys: Arc::new(self.bank_keys),
        })
    }
}

/// A signing client bound to one gateway and one app.
#[derive(Clone)]
pub struct Client {
    http: HttpClient,
    base: Uri,
    creds: Credentials,
    opts: SignOptions,
    bank_keys: Arc<Vec<PublicKey>>,
    require_signed: bool,
}

impl Client {
    /// Start building a client for the gateway at `base_url` (`https://host:port`).
    pub fn builder(base_url: &str) -> Result<ClientBuilder, SdkError> {
        let base: Uri = base_url
            .parse()
            .map_err(|e| SdkError::Url(format!("{base_url}: {e}")))?;
        if base.authority().is_none() {
            return Err(SdkError::Url(format!("{base_url}: needs scheme and host")));
        }
        Ok(ClientBuilder {
            base,
            ca: None,
            creds: None,
            opts: SignOptions::default(),
            identity: None,
            bank_keys: vec![],
            require_signed: None,
        })
    }

    /// Build (unsigned) a request for `path_and_query` with an optional JSON body.
    pub fn request(
        &self,
        method: &str,
        path_and_query: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Request<Bytes>, SdkError> {
        let uri = format!(
            "{}://{}{}",
            self.base.scheme_str().unwrap_or("https"),
            self.base
                .authority()
                .map(|a| a.as_str())
                .unwrap_or_default(),
            path_and_query
        );
        let method =
            Method::from_bytes(method.as_bytes()).map_err(|e| SdkError::Url(e.to_string()))?;
        let mut b = Request::builder().method(method).uri(&uri);
        if body.is_some() {
            b = b.header(http::header::CONTENT_TYPE, "application/json");
        }
        b.body(Bytes::from(body.unwrap_or_default()))
            .map_err(|e| SdkError::Url(format!("{uri}: {e}")))
    }

    /// Sign a request with this client's credentials.
    pub fn sign(
        &self,
        req: &mut Request<Bytes>,
        opts: Option<&SignOptions>,
    ) -> Result<(), SdkError> {
        sign_request(req, &self.creds, opts.unwrap_or(&self.opts))
    }

    /// Send a request as it is (signed or not). With bank keys configured,
    /// the response's signature is verified; see [`verify_response`].
    pub async fn send(&self, req: Request<Bytes>) -> Result<Response, SdkError> {
        let sent_headers = req.headers().clone();
        let resp = send(&self.http, req).await?;
        if !self.bank_keys.is_empty()
            && (self.require_signed || resp.headers.contains_key(headers::SIGNATURE))
        {
            verify_response(&resp, &sent_headers, &self.bank_keys)?;
        }
        Ok(resp)
    }

    /// Send without verifying the response signature (for tests and tools).
    pub async fn send_unverified(&self, req: Request<Bytes>) -> Result<Response, SdkError> {
        send(&self.http, req).await
    }

    /// Build, sign and send.
    pub async fn call(
        &self,
        method: &str,
        path_and_query: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Response, SdkError> {
        let mut req = self.request(method, path_and_query, body)?;
        self.sign(&mut req, None)?;
        self.send(req).await
    }
}
