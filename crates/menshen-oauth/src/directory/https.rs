//! A customer directory that asks the bank's own identity service over
//! HTTPS (USR-1). The JSON contract is in the crate documentation.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use menshen_model::Customer;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::CustomerAuthenticator;
use crate::LoginError;

/// Largest answer read from the service.
const MAX_BODY: usize = 64 * 1024;

/// Where and how to reach the identity service.
#[derive(Clone)]
pub struct HttpsDirectoryConfig {
    /// Base URL, `https://...` (no trailing slash needed).
    pub base_url: String,
    /// PEM of the CA certificate(s) that issued the service's certificate.
    pub ca_pem: String,
    /// Sent as `Authorization: Bearer ...` when set.
    pub service_token: Option<Zeroizing<String>>,
    /// Whole-exchange timeout.
    pub timeout: Duration,
}

impl std::fmt::Debug for HttpsDirectoryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsDirectoryConfig")
            .field("base_url", &self.base_url)
            .field(
                "service_token",
                &self.service_token.as_ref().map(|_| "<set>"),
            )
            .field("timeout", &self.timeout)
            .finish()
    }
}

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// The bank's identity service as a [`CustomerAuthenticator`].
pub struct HttpsDirectory {
    base: String,
    token: Option<Zeroizing<String>>,
    timeout: Duration,
    client: Client<Connector, Full<Bytes>>,
}

#[derive(Deserialize)]
struct Wire {
    user_id: String,
    #[serde(default)]
    username: Option<String>,
    display_name: String,
    #[serde(default)]
    accounts: Vec<String>,
    #[serde(default)]
    has_totp: bool,
}

#[derive(Deserialize)]
struct LockedWire {
    #[serde(default)]
    locked_until: Option<i64>,
}

fn safe_id(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl HttpsDirectory {
    /// Build the client (TLS 1.2+, only the given CA trusted).
    pub fn new(cfg: HttpsDirectoryConfig) -> Result<Arc<Self>, String> {
        let base = cfg.base_url.trim_end_matches('/').to_string();
        if !base.starts_with("https://") {
            return Err(format!(
                "identity service URL must be https:// (got `{base}`)"
            ));
        }
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(cfg.ca_pem.as_bytes()) {
            let c = c.map_err(|e| format!("identity service CA: {e}"))?;
            roots
                .add(c)
                .map_err(|e| format!("identity service CA: {e}"))?;
        }
        if roots.is_empty() {
            return Err("identity service CA: no certificate in the PEM".into());
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(cfg.timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        Ok(Arc::new(HttpsDirectory {
            base,
            token: cfg.service_token,
            timeout: cfg.timeout,
            client,
        }))
    }

    async fn call(
        &self,
        method: http::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(u16, Bytes), LoginError> {
        let unavailable = |e: String| LoginError::Unavailable(format!("identity service: {e}"));
        let mut b = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(http::header::ACCEPT, "application/json");
        if let Some(t) = &self.token {
            b = b.header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", t.as_str()),
            );
        }
        let body = match body {
            Some(v) => {
                b = b.header(http::header::CONTENT_TYPE, "application/json");
                // The JSON holds the password: wiped after sending.
                Zeroizing::new(serde_json::to_vec(&v).unwrap_or_default())
            }
            None => Zeroizing::new(Vec::new()),
        };
        let req = b
            .body(Full::new(Bytes::copy_from_slice(&body)))
            .map_err(|e| unavailable(e.to_string()))?;
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| unavailable(e.to_string()))?;
            let status = resp.status().as_u16();
            let bytes = Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| unavailable(e.to_string()))?
                .to_bytes();
            Ok::<_, LoginError>((status, bytes))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| unavailable("timed out".into()))?
    }

    fn locked(body: &[u8], user_id: Option<&str>, now: i64) -> LoginError {
        let until = serde_json::from_slice::<LockedWire>(body)
            .ok()
            .and_then(|l| l.locked_until)
            .unwrap_or(now + 60);
        LoginError::Locked {
            user_id: user_id.map(str::to_string),
            until,
            locked_now: false,
        }
    }

    fn customer_of(body: &[u8], username: Option<&str>) -> Result<Customer, LoginError> {
        let w: Wire = serde_json::from_slice(body).map_err(|e| {
            LoginError::Unavailable(format!("identity service: unexpected answer: {e}"))
        })?;
        if !safe_id(&w.user_id) {
            return Err(LoginError::Unavailable(
                "identity service: unusable user_id".into(),
            ));
        }
        Ok(Customer {
            user_id: w.user_id,
            username: w
                .username
                .or_else(|| username.map(str::to_string))
                .unwrap_or_default(),
            display_name: w.display_name,
            accounts: w.accounts,
            has_totp: w.has_totp,
            locked_until: None,
        })
    }
}

#[async_trait]
impl CustomerAuthenticator for HttpsDirectory {
    async fn password(
        &self,
        username: &str,
        password: &str,
        now: i64,
    ) -> Result<Customer, LoginError> {
        let (status, body) = self
            .call(
                http::Method::POST,
                "/v1/authenticate",
                Some(serde_json::json!({"username": username, "password": password})),
            )
            .await?;
        match status {
            200 => Self::customer_of(&body, Some(username)),
            401 | 403 | 404 => Err(LoginError::Invalid { user_id: None }),
            423 => Err(Self::locked(&body, None, now)),
            s => Err(LoginError::Unavailable(format!(
                "identity service answered {s}"
            ))),
        }
    }

    async fn second_factor(&self, user_id: &str, otp: &str, now: i64) -> Result<(), LoginError> {
        let (status, body) = self
            .call(
                http::Method::POST,
                "/v1/otp",
                Some(serde_json::json!({"user_id": user_id, "otp": otp})),
            )
            .await?;
        match status {
            200 | 204 => Ok(()),
            401 | 403 | 404 => Err(LoginError::Invalid {
                user_id: Some(user_id.to_string()),
            }),
            409 => Err(LoginError::NoSecondFactor),
            423 => Err(Self::locked(&body, Some(user_id), now)),
            s => Err(LoginError::Unavailable(format!(
                "identity service answered {s}"
            ))),
        }
    }

    async fn customer(&self, user_id: &str) -> Result<Option<Customer>, LoginError> {
        if !safe_id(user_id) {
            return Ok(None);
        }
        let (status, body) = self
            .call(http::Method::GET, &format!("/v1/customers/{user_id}"), None)
            .await?;
        match status {
            200 => {
                let c = Self::customer_of(&body, None)?;
                if c.user_id != user_id {
                    return Err(LoginError::Unavailable(
                        "identity service: answered for another user_id".into(),
                    ));
                }
                Ok(Some(c))
            }
            404 => Ok(None),
            s => Err(LoginError::Unavailable(format!(
                "identity service answered {s}"
            ))),
        }
    }
}
