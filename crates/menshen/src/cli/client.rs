//! A small admin API client: the token, the base URL, and errors that carry
//! the API's message.

use anyhow::{bail, Context};
use bytes::Bytes;
use http::{HeaderValue, Request};
use serde_json::{json, Value};

use super::AdminConn;

/// A small admin API client.
pub struct AdminClient {
    http: menshen_sdk::HttpClient,
    base: String,
    token: zeroize::Zeroizing<String>,
    /// Raw JSON output.
    pub json: bool,
}

impl AdminClient {
    /// Connect per the options.
    pub fn new(conn: &AdminConn) -> anyhow::Result<Self> {
        let token = match (&conn.admin_token_file, std::env::var("MENSHEN_ADMIN_TOKEN")) {
            (_, Ok(t)) if !t.is_empty() => zeroize::Zeroizing::new(t),
            (Some(f), _) => zeroize::Zeroizing::new(
                std::fs::read_to_string(f)
                    .with_context(|| format!("--admin-token-file {}", f.display()))?
                    .trim()
                    .to_string(),
            ),
            _ => bail!("no admin token: pass --admin-token-file FILE, or set MENSHEN_ADMIN_TOKEN_FILE or MENSHEN_ADMIN_TOKEN"),
        };
        let ca = match &conn.admin_ca {
            Some(f) => Some(
                std::fs::read(f).with_context(|| format!("--admin-ca {}", f.display()))?,
            ),
            None if conn.admin_url.starts_with("https://") => bail!(
                "--admin-url {} is https: pass --admin-ca FILE (or set MENSHEN_ADMIN_CA) with the CA that signed the admin API's certificate",
                conn.admin_url
            ),
            None => None,
        };
        Ok(AdminClient {
            http: menshen_sdk::http_client(ca.as_deref())
                .map_err(|e| anyhow::anyhow!("--admin-ca: {e}"))?,
            base: conn.admin_url.trim_end_matches('/').to_string(),
            token,
            json: conn.json,
        })
    }

    /// Call the admin API; returns the JSON body, or an error carrying the
    /// API's message (which names the field).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let raw = body.map(|v| ("application/json", Bytes::from(v.to_string())));
        self.call_raw(method, path, raw).await
    }

    /// [`AdminClient::call`] with a body of any content type (a CSV import).
    pub async fn call_raw(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, Bytes)>,
    ) -> anyhow::Result<Value> {
        let mut b = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path))
            .header(
                http::header::AUTHORIZATION,
                HeaderValue::from_str(&format!("Bearer {}", self.token.as_str()))?,
            );
        if let Some((content_type, _)) = &body {
            b = b.header(http::header::CONTENT_TYPE, *content_type);
        }
        let req = b.body(body.map(|(_, b)| b).unwrap_or_default())?;
        let resp = menshen_sdk::send(&self.http, req)
            .await
            .with_context(|| format!("cannot reach the admin API at {}", self.base))?;
        let v: Value = if resp.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&resp.body)
                .unwrap_or_else(|_| json!(String::from_utf8_lossy(&resp.body)))
        };
        if resp.status >= 400 {
            let msg = v
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("request failed");
            bail!("{} ({})", msg, resp.status);
        }
        Ok(v)
    }
}
