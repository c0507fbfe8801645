//! The signing client bound to one gateway and one app, and its builder.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Uri};
use menshen_crypto::{DigestAlg, PublicKey, Sm2DecryptionKey};
use menshen_protocol::headers;
use zeroize::Zeroizing;

use crate::{
    http_client_with_identity, send, sign_request, verify_response, BankEncryptionKey, Credentials,
    HttpClient, Response, SdkError, SignOptions,
};

/// Builder of a [`Client`].
pub struct ClientBuilder {
    base: Uri,
    ca: Option<Vec<u8>>,
    creds: Option<Credentials>,
    opts: SignOptions,
    identity: Option<(Vec<u8>, Zeroizing<Vec<u8>>)>,
    bank_keys: Vec<PublicKey>,
    require_signed: Option<bool>,
    bank_enc: Option<BankEncryptionKey>,
    app_enc: Option<Arc<Sm2DecryptionKey>>,
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
    /// Encrypt request fields for this bank encryption key (§12).
    pub fn bank_encryption_key(mut self, k: BankEncryptionKey) -> Self {
        self.bank_enc = Some(k);
        self
    }
    /// Decrypt response fields with this app encryption key (PEM PKCS#8
    /// SM2; the private half of the key registered as the app's
    /// encryption key, never one of its signing keys).
    pub fn app_encryption_key_pem(mut self, pem: &str) -> Result<Self, SdkError> {
        self.app_enc = Some(Arc::new(
            Sm2DecryptionKey::from_pkcs8_pem(pem).map_err(|e| SdkError::Key(e.to_string()))?,
        ));
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
            bank_enc: self.bank_enc,
            app_enc: self.app_enc,
        })
    }
}

/// A signing client bound to one gateway and one app.
#[derive(Clone)]
pub struct Client {
    http: HttpClient,
    pub(crate) base: Uri,
    pub(crate) creds: Credentials,
    pub(crate) opts: SignOptions,
    bank_keys: Arc<Vec<PublicKey>>,
    require_signed: bool,
    bank_enc: Option<BankEncryptionKey>,
    app_enc: Option<Arc<Sm2DecryptionKey>>,
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
            bank_enc: None,
            app_enc: None,
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

    /// Build, encrypt the fields `envelope.request` lists (for the bank's
    /// encryption key), sign and send; verify the bank's signature; then
    /// decrypt the fields `envelope.response` lists with the app's
    /// encryption key (§12). The pointers are the API's
    /// `controls.envelope`.
    pub async fn call_enveloped(
        &self,
        method: &str,
        path_and_query: &str,
        body: Option<Vec<u8>>,
        envelope: &menshen_protocol::envelope::Fields,
    ) -> Result<Response, SdkError> {
        let body = match body {
            Some(b) if !envelope.request.is_empty() => {
                let bank = self.bank_enc.as_ref().ok_or_else(|| {
                    SdkError::Envelope("no bank encryption key configured".into())
                })?;
                Some(crate::seal_request_fields(&b, &envelope.request, bank)?)
            }
            b => b,
        };
        let mut resp = self.call(method, path_and_query, body).await?;
        if !envelope.response.is_empty() {
            let key = self
                .app_enc
                .as_ref()
                .ok_or_else(|| SdkError::Envelope("no app encryption key configured".into()))?;
            resp.body = crate::open_response_fields(&resp.body, &envelope.response, key)?.into();
        }
        Ok(resp)
    }
}
