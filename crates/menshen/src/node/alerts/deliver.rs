//! Delivering new alerts (MON-2): webhooks (JSON, signed with HMAC-SM3)
//! and email (SMTP, through `lettre`). Each receiver has its own bounded
//! queue and task: a slow or dead receiver delays only its own deliveries,
//! never a call and never another receiver; a full queue drops the alert
//! for that receiver (logged; the alert stays in the store). A failed
//! attempt is retried after `retry_base_ms`, doubling up to `retry_max_ms`,
//! `max_attempts` times in all.
//!
//! # The webhook signature
//! Each POST carries
//! - `X-Menshen-Alert-Timestamp`: unix seconds when it was signed;
//! - `X-Menshen-Alert-Signature`: `hmac-sm3=` and the lowercase hex of
//!   HMAC-SM3(secret, timestamp + "." + body), the secret being the
//!   receiver's `secret_file` content (trimmed).
//!
//! A receiver recomputes the MAC over the exact bytes received, compares it
//! in constant time, and refuses a timestamp far from its clock (replays).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use menshen_model::alert::{Alert, AlertSeverity};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::AlertsConfig;

/// `[[alerts.webhook]]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `https://...` (or `http://` on loopback, for tests).
    pub url: String,
    /// File holding the HMAC-SM3 secret shared with the receiver.
    pub secret_file: PathBuf,
    /// CA certificate (PEM) of an `https://` receiver.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Least severity delivered (default `info`: all).
    #[serde(default = "info")]
    pub min_severity: AlertSeverity,
}

/// `[[alerts.email]]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// SMTP server host name.
    pub smtp_host: String,
    /// SMTP port (default 587).
    #[serde(default = "d_port")]
    pub smtp_port: u16,
    /// `starttls` (default), `tls` (implicit TLS) or `none` (plain SMTP:
    /// loopback only).
    #[serde(default = "d_security")]
    pub security: String,
    /// CA certificate (PEM) of the SMTP server, for a private CA.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// SMTP login, if the server needs one ...
    #[serde(default)]
    pub username: Option<String>,
    /// ... and the file holding its password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Sender address.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// Least severity delivered (default `warning`).
    #[serde(default = "warning")]
    pub min_severity: AlertSeverity,
}

fn info() -> AlertSeverity {
    AlertSeverity::Info
}
fn warning() -> AlertSeverity {
    AlertSeverity::Warning
}
fn d_port() -> u16 {
    587
}
fn d_security() -> String {
    "starttls".into()
}

impl WebhookConfig {
    pub(super) fn validate(&self) -> Result<(), String> {
        let loopback = ["http://127.0.0.1:", "http://[::1]:", "http://localhost:"];
        if !(self.url.starts_with("https://") || loopback.iter().any(|p| self.url.starts_with(p))) {
            return Err("url: must be https:// (plain http only to a loopback address)".into());
        }
        Ok(())
    }
}

impl EmailConfig {
    pub(super) fn validate(&self) -> Result<(), String> {
        if !["starttls", "tls", "none"].contains(&self.security.as_str()) {
            return Err("security: starttls, tls or none".into());
        }
        if self.security == "none"
            && !(self.smtp_host == "127.0.0.1"
                || self.smtp_host == "localhost"
                || self.smtp_host == "::1")
        {
            return Err("security: `none` (plain SMTP) only to a loopback smtp_host".into());
        }
        if self.to.is_empty() {
            return Err("to: at least one recipient".into());
        }
        Ok(())
    }
}

/// Severity rank.
fn rank(s: AlertSeverity) -> usize {
    AlertSeverity::ALL.iter().position(|x| *x == s).unwrap_or(0)
}

/// The body of a webhook: the alert and the node that raised it.
pub fn webhook_body(a: &Alert, node_id: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "id": a.id, "rule": a.rule, "key": a.key, "severity": a.severity,
        "state": a.state, "summary": a.summary, "details": a.details,
        "count": a.count, "first_at": a.first_at, "last_at": a.last_at,
        "node_id": node_id,
    }))
    .unwrap_or_default()
}

/// `hmac-sm3=<hex>` over `timestamp.body` (see the module doc).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut data = format!("{timestamp}.").into_bytes();
    data.extend_from_slice(body);
    let mac = menshen_crypto::MacAlg::HmacSm3.mac(secret, &data);
    format!(
        "hmac-sm3={}",
        mac.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// Check a webhook signature header (constant-time), as a receiver does.
pub fn verify(secret: &[u8], timestamp: i64, body: &[u8], header: &str) -> bool {
    menshen_crypto::ct_eq(sign(secret, timestamp, body).as_bytes(), header.as_bytes())
}

enum Receiver {
    Webhook {
        url: String,
        secret: Zeroizing<Vec<u8>>,
        http: menshen_sdk::HttpClient,
    },
    Email {
        transport: lettre::AsyncSmtpTransport<lettre::Tokio1Executor>,
        from: lettre::message::Mailbox,
        to: Vec<lettre::message::Mailbox>,
    },
}

impl Receiver {
    fn name(&self) -> String {
        match self {
            Receiver::Webhook { url, .. } => format!("webhook {url}"),
            Receiver::Email { to, .. } => format!("email to {} recipient(s)", to.len()),
        }
    }

    async fn attempt(&self, a: &Alert, node_id: &str, timeout: Duration) -> Result<(), String> {
        match self {
            Receiver::Webhook { url, secret, http } => {
                let body = webhook_body(a, node_id);
                let ts = menshen_store::now_unix();
                let req = http::Request::builder()
                    .method("POST")
                    .uri(url)
                    .header("content-type", "application/json")
                    .header("x-menshen-alert-timestamp", ts.to_string())
                    .header("x-menshen-alert-signature", sign(secret, ts, &body))
                    .body(Bytes::from(body))
                    .map_err(|e| e.to_string())?;
                let r = tokio::time::timeout(timeout, menshen_sdk::send(http, req))
                    .await
                    .map_err(|_| "timed out".to_string())?
                    .map_err(|e| e.to_string())?;
                if (200..300).contains(&r.status) {
                    Ok(())
                } else {
                    Err(format!("answered {}", r.status))
                }
            }
            Receiver::Email {
                transport,
                from,
                to,
            } => {
                use lettre::AsyncTransport;
                let mut m = lettre::Message::builder()
                    .from(from.clone())
                    .subject(format!("[menshen {}] {}", a.severity, a.summary));
                for t in to {
                    m = m.to(t.clone());
                }
                let text = format!(
                    "Alert {} ({}), severity {}, state {}\n{}\n\nnode: {node_id}\nfirst: {}\nlast: {}\ncount: {}\n\n{}\n",
                    a.id,
                    a.rule,
                    a.severity,
                    a.state,
                    a.summary,
                    a.first_at,
                    a.last_at,
                    a.count,
                    serde_json::to_string_pretty(&a.details).unwrap_or_default()
                );
                let msg = m.body(text).map_err(|e| e.to_string())?;
                tokio::time::timeout(timeout, transport.send(msg))
                    .await
                    .map_err(|_| "timed out".to_string())?
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        }
    }
}

/// The receivers' queues.
pub struct Outbox {
    queues: Vec<(AlertSeverity, tokio::sync::mpsc::Sender<Alert>)>,
}

/// Alerts queued per receiver before new ones are dropped for it.
const RECEIVER_QUEUE: usize = 256;

fn read_secret(path: &PathBuf, what: &str) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let s = Zeroizing::new(
        std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("{what}: cannot read {}: {e}", path.display()))?,
    );
    let t = String::from_utf8_lossy(&s);
    let t = t.trim();
    if t.is_empty() {
        anyhow::bail!("{what}: {} is empty", path.display());
    }
    Ok(Zeroizing::new(t.as_bytes().to_vec()))
}

impl Outbox {
    /// Build every receiver and start its task.
    pub fn start(cfg: &AlertsConfig, node_id: String) -> anyhow::Result<Outbox> {
        let mut receivers: Vec<(AlertSeverity, Receiver)> = Vec::new();
        for (i, w) in cfg.webhook.iter().enumerate() {
            let secret = read_secret(&w.secret_file, &format!("alerts.webhook[{i}].secret_file"))?;
            let ca = match &w.ca_file {
                Some(f) => Some(std::fs::read(f).map_err(|e| {
                    anyhow::anyhow!(
                        "alerts.webhook[{i}].ca_file: cannot read {}: {e}",
                        f.display()
                    )
                })?),
                None => None,
            };
            let http = menshen_sdk::http_client(ca.as_deref())
                .map_err(|e| anyhow::anyhow!("alerts.webhook[{i}].ca_file: {e}"))?;
            receivers.push((
                w.min_severity,
                Receiver::Webhook {
                    url: w.url.clone(),
                    secret,
                    http,
                },
            ));
        }
        for (i, e) in cfg.email.iter().enumerate() {
            let at = |f: &str| format!("alerts.email[{i}].{f}");
            let transport =
                email_transport(e).map_err(|x| anyhow::anyhow!("{}: {x}", at("smtp_host")))?;
            let from = e
                .from
                .parse()
                .map_err(|x| anyhow::anyhow!("{}: {x}", at("from")))?;
            let to =
                e.to.iter()
                    .map(|t| t.parse())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|x| anyhow::anyhow!("{}: {x}", at("to")))?;
            receivers.push((
                e.min_severity,
                Receiver::Email {
                    transport,
                    from,
                    to,
                },
            ));
        }
        let mut queues = Vec::new();
        for (min, r) in receivers {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Alert>(RECEIVER_QUEUE);
            let (node, cfg) = (node_id.clone(), cfg.clone());
            let r = Arc::new(r);
            tokio::spawn(async move {
                while let Some(a) = rx.recv().await {
                    deliver(&r, &a, &node, &cfg).await;
                }
            });
            queues.push((min, tx));
        }
        Ok(Outbox { queues })
    }

    /// Queue a new alert for every receiver it is grave enough for; never waits.
    pub fn send(&self, a: &Alert) {
        for (min, tx) in &self.queues {
            if rank(a.severity) >= rank(*min) && tx.try_send(a.clone()).is_err() {
                tracing::error!(id = a.id, "alert receiver queue full: this alert is not delivered to it (it stays in the store)");
            }
        }
    }
}

/// One alert to one receiver, with retries and back-off.
async fn deliver(r: &Receiver, a: &Alert, node_id: &str, cfg: &AlertsConfig) {
    let timeout = Duration::from_millis(cfg.timeout_ms);
    let mut wait = Duration::from_millis(cfg.retry_base_ms);
    for attempt in 1..=cfg.max_attempts {
        match r.attempt(a, node_id, timeout).await {
            Ok(()) => {
                tracing::info!(id = a.id, receiver = %r.name(), attempt, "alert delivered");
                return;
            }
            Err(e) if attempt < cfg.max_attempts => {
                tracing::warn!(id = a.id, receiver = %r.name(), attempt, error = %e, retry_in_ms = wait.as_millis() as u64, "alert delivery failed; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_millis(cfg.retry_max_ms));
            }
            Err(e) => {
                tracing::error!(id = a.id, receiver = %r.name(), attempts = attempt, error = %e, "alert not delivered: giving up (it stays in the store)");
            }
        }
    }
}

fn email_transport(
    e: &EmailConfig,
) -> Result<lettre::AsyncSmtpTransport<lettre::Tokio1Executor>, String> {
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
    let mut b =
        lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous(&e.smtp_host)
            .port(e.smtp_port)
            .timeout(Some(Duration::from_secs(10)));
    if e.security != "none" {
        let mut p = TlsParameters::builder(e.smtp_host.clone());
        if let Some(f) = &e.ca_file {
            let pem = std::fs::read(f).map_err(|x| format!("ca_file {}: {x}", f.display()))?;
            p = p.add_root_certificate(Certificate::from_pem(&pem).map_err(|x| x.to_string())?);
        }
        let p = p.build().map_err(|x| x.to_string())?;
        b = b.tls(if e.security == "tls" {
            Tls::Wrapper(p)
        } else {
            Tls::Required(p)
        });
    }
    if let (Some(u), Some(f)) = (&e.username, &e.password_file) {
        let pw = read_secret(f, "password_file").map_err(|x| x.to_string())?;
        b = b.credentials(Credentials::new(
            u.clone(),
            String::from_utf8_lossy(&pw).into_owned(),
        ));
    }
    Ok(b.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mon_2_webhook_signature_verifies_and_any_change_breaks_it() {
        let s = sign(b"secret", 1_700_000_000, b"{\"a\":1}");
        assert!(s.starts_with("hmac-sm3=") && s.len() == 9 + 64);
        assert!(verify(b"secret", 1_700_000_000, b"{\"a\":1}", &s));
        assert!(!verify(b"secret", 1_700_000_001, b"{\"a\":1}", &s));
        assert!(!verify(b"secret", 1_700_000_000, b"{\"a\":2}", &s));
        assert!(!verify(b"other", 1_700_000_000, b"{\"a\":1}", &s));
    }
}
