//! Notices to apps (MON-4, KEY-4): signed POSTs to an app's registered
//! notification URL (应用方通知地址), off the request path.
//!
//! A notice is created in the store once per key ([`Notifier::notify`]:
//! `expiry:credential:42:7d`, `suspended:<app>:<alert id>`), on whichever
//! node gets there first, and only that node delivers it: in the
//! background, through a bounded number of concurrent deliveries, retried
//! with exponential back-off (the alert receivers' `retry_base_ms`,
//! `retry_max_ms`, `max_attempts`, `timeout_ms`). Every attempt is counted
//! in the store with its error; after the last one the notice is `failed`
//! and the bank's operators get an alert `app_notice_failed` (warning). A
//! notice still `pending` when a node stops is delivered again when a node
//! starts ([`Notifier::resume_pending`]): delivery is at least once, and
//! the receiver de-duplicates by the notice's `id`.
//!
//! # The signature
//! The bank signs each POST with its response-signing key (the SM2 key the
//! app already verifies responses with, published at
//! `/.well-known/menshen/keys`), as an RFC 9421 request signature over
//! `"@method" "@authority" "@path" "content-digest" "x-menshen-notice-id"`
//! with `created`, `nonce`, `keyid` and `alg`; the body's `Content-Digest`
//! is SM3. The app needs no new secret and no new code beyond what it uses
//! for responses, and nobody but the bank can sign (no shared secret to
//! leak on either side). See docs/protocol.md, "Notices to your app".

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use menshen_model::alert::{AlertSeverity, NewAlert};
use menshen_model::notice::{AppNotice, NewAppNotice, NoticeState};
use menshen_store::ControlPlane;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::deliver::Outbox;
use super::egress::{Destinations, NoticeClient};
use super::AlertsConfig;

pub use menshen_sdk::notice::{
    notice_components, verify_notice, verify_notice_at, NOTICE_ID_HEADER,
};

/// `[alerts.app_notice]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppNoticeConfig {
    /// Send notices to apps that registered a notification URL (default true).
    #[serde(default = "d_true")]
    pub enabled: bool,
    /// Accept (at registration) and deliver to plain `http://` URLs on a
    /// loopback address: tests and demos only (default false: `https://`).
    #[serde(default)]
    pub allow_http_loopback: bool,
    /// The CA certificates (PEM bundle) trusted for apps' `https://`
    /// receivers (default: the system bundle
    /// `/etc/ssl/certs/ca-certificates.crt`, if present).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Also tell an app when the bank suspends it automatically
    /// (`[alerts.cert_network] auto_suspend`; default true).
    #[serde(default = "d_true")]
    pub suspension: bool,
    /// Deliveries in flight at once, across apps (default 16). A slot is
    /// held for one attempt, not across the back-off between attempts.
    #[serde(default = "d_parallel")]
    pub parallel: usize,
    /// Private networks (CIDR) where apps' receivers may be all the same
    /// (a partner reached over a private line). By default notices only go
    /// to public addresses: see [`super::egress`].
    #[serde(default)]
    pub allow_networks: Vec<ipnet::IpNet>,
}

fn d_true() -> bool {
    true
}
fn d_parallel() -> usize {
    16
}

impl Default for AppNoticeConfig {
    fn default() -> Self {
        AppNoticeConfig {
            enabled: true,
            allow_http_loopback: false,
            ca_file: None,
            suspension: true,
            parallel: d_parallel(),
            allow_networks: Vec::new(),
        }
    }
}

impl AppNoticeConfig {
    /// Check the settings, naming the field.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.parallel == 0 || self.parallel > 1024 {
            anyhow::bail!("alerts.app_notice.parallel: 1 to 1024");
        }
        Ok(())
    }
}

/// The system CA bundle used when `ca_file` is not set.
const SYSTEM_CA: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Sends notices to apps.
pub struct Notifier {
    cp: ControlPlane,
    cfg: AlertsConfig,
    http: NoticeClient,
    out: Arc<Outbox>,
    slots: Arc<tokio::sync::Semaphore>,
}

impl Notifier {
    /// A notifier using the alert settings' retries and `[alerts.app_notice]`.
    pub fn new(
        cp: ControlPlane,
        cfg: &AlertsConfig,
        out: Arc<Outbox>,
    ) -> anyhow::Result<Arc<Notifier>> {
        let n = &cfg.app_notice;
        let dest = Destinations {
            loopback: n.allow_http_loopback,
            allow: Arc::new(n.allow_networks.clone()),
        };
        let http = match &n.ca_file {
            Some(f) => {
                let pem = std::fs::read(f).map_err(|e| {
                    anyhow::anyhow!(
                        "alerts.app_notice.ca_file: cannot read {}: {e}",
                        f.display()
                    )
                })?;
                NoticeClient::new(Some(&pem), dest)
                    .map_err(|e| anyhow::anyhow!("alerts.app_notice.ca_file: {e}"))?
            }
            // The system bundle, if present and usable: a certificate in it
            // that rustls refuses must not stop the node (https receivers
            // then fail, visibly, until ca_file is set).
            None => match std::fs::read(SYSTEM_CA)
                .ok()
                .map(|pem| NoticeClient::new(Some(&pem), dest.clone()))
            {
                Some(Ok(c)) => c,
                other => {
                    if let Some(Err(e)) = other {
                        tracing::warn!(error = %e, "app notices: the system CA bundle {SYSTEM_CA} is not usable; set alerts.app_notice.ca_file");
                    }
                    NoticeClient::new(None, dest)
                        .map_err(|e| anyhow::anyhow!("app notices: {e}"))?
                }
            },
        };
        Ok(Arc::new(Notifier {
            cp,
            cfg: cfg.clone(),
            http,
            out,
            slots: Arc::new(tokio::sync::Semaphore::new(n.parallel)),
        }))
    }

    /// Whether notices of `kind` are sent at all.
    pub fn enabled(&self) -> bool {
        self.cfg.app_notice.enabled
    }

    /// Create the notice (once per key, across restarts and nodes) and, if
    /// it is new, deliver it in the background. Returns the notice if this
    /// call created it. Apps without a notification URL get nothing.
    pub async fn notify(self: &Arc<Self>, n: NewAppNotice) -> Option<AppNotice> {
        if !self.enabled() {
            return None;
        }
        match self.cp.store.get_app(&n.app_id).await {
            Ok(app) if app.notify_url.is_some() => {}
            Ok(_) => return None,
            Err(e) => {
                tracing::warn!(error = %e, app_id = %n.app_id, "app notice: cannot read the app");
                return None;
            }
        }
        match self.cp.store.add_app_notice(&n).await {
            Ok((notice, true)) => {
                tracing::info!(id = notice.id, app_id = %notice.app_id, key = %notice.key, "app notice created");
                self.spawn(notice.clone());
                Some(notice)
            }
            Ok((_, false)) => None,
            Err(e) => {
                tracing::error!(error = %e, key = %n.key, "app notice could not be stored");
                None
            }
        }
    }

    /// Deliver the notices left `pending` by an earlier run.
    pub async fn resume_pending(self: &Arc<Self>) {
        if !self.enabled() {
            return;
        }
        match self
            .cp
            .store
            .list_app_notices(None, Some(NoticeState::Pending))
            .await
        {
            Ok(list) => {
                for n in list.into_iter().rev() {
                    self.spawn(n);
                }
            }
            Err(e) => tracing::warn!(error = %e, "app notices: cannot list the pending ones"),
        }
    }

    fn spawn(self: &Arc<Self>, n: AppNotice) {
        let me = self.clone();
        tokio::spawn(async move {
            me.deliver(n).await;
        });
    }

    /// Attempts with back-off until delivered or `max_attempts` is reached.
    async fn deliver(&self, n: AppNotice) {
        let timeout = Duration::from_millis(self.cfg.timeout_ms);
        let mut wait = Duration::from_millis(self.cfg.retry_base_ms);
        let max = self.cfg.max_attempts.max(1) as i64;
        let mut attempt = n.attempts;
        loop {
            attempt += 1;
            // One slot per attempt: a receiver that never answers holds one
            // for `timeout_ms` at most, and none while it waits to retry.
            let Ok(slot) = self.slots.acquire().await else {
                return;
            };
            let (url, result) = match self.attempt(&n, timeout).await {
                Ok(url) => (url, Ok(())),
                Err((url, e)) => (url, Err(e)),
            };
            drop(slot);
            match result {
                Ok(()) => {
                    tracing::info!(id = n.id, app_id = %n.app_id, attempt, "app notice delivered");
                    self.record(n.id, NoticeState::Delivered, None).await;
                    return;
                }
                Err(e) if attempt < max => {
                    tracing::warn!(id = n.id, app_id = %n.app_id, attempt, error = %e, retry_in_ms = wait.as_millis() as u64, "app notice not delivered; retrying");
                    self.record(n.id, NoticeState::Pending, Some(&e)).await;
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_millis(self.cfg.retry_max_ms));
                }
                Err(e) => {
                    tracing::error!(id = n.id, app_id = %n.app_id, attempts = attempt, error = %e, "app notice not delivered: giving up");
                    self.record(n.id, NoticeState::Failed, Some(&e)).await;
                    super::raise(
                        &self.cp,
                        &self.out,
                        NewAlert {
                            rule: "app_notice_failed".into(),
                            key: format!("app_notice_failed:{}", n.id),
                            severity: AlertSeverity::Warning,
                            summary: format!(
                                "notice {} ({}) to App_ID {} could not be delivered after {attempt} attempts: {e}",
                                n.id, n.kind, n.app_id
                            ),
                            details: json!({"notice_id": n.id, "app_id": n.app_id, "kind": n.kind,
                                "key": n.key, "url": url, "attempts": attempt, "error": e}),
                        },
                    )
                    .await;
                    return;
                }
            }
        }
    }

    async fn record(&self, id: i64, state: NoticeState, error: Option<&str>) {
        if let Err(e) = self
            .cp
            .store
            .record_app_notice_attempt(id, state, error)
            .await
        {
            tracing::error!(error = %e, id, "app notice state could not be stored");
        }
    }

    /// One POST; the URL used (for the operators' alert), or the error.
    async fn attempt(
        &self,
        n: &AppNotice,
        timeout: Duration,
    ) -> Result<Option<String>, (Option<String>, String)> {
        let app = self
            .cp
            .store
            .get_app(&n.app_id)
            .await
            .map_err(|e| (None, format!("cannot read the app: {e}")))?;
        let Some(url) = app.notify_url else {
            return Err((None, "the app has no notification URL any more".into()));
        };
        let fail = |e: String| (Some(url.clone()), e);
        let kind = menshen_model::check_notify_url(&url).map_err(|e| fail(e.to_string()))?;
        if kind.plain_http && !self.cfg.app_notice.allow_http_loopback {
            return Err(fail(
                "plain http:// is not allowed (alerts.app_notice.allow_http_loopback)".into(),
            ));
        }
        let key = self
            .cp
            .store
            .list_bank_keys()
            .await
            .map_err(|e| fail(format!("bank keys: {e}")))?
            .into_iter()
            .filter(|k| {
                k.purpose == menshen_store::control::purpose::RESPONSE_SIGNING && !k.retired
            })
            .max_by(|a, b| a.created_at.cmp(&b.created_at))
            .ok_or_else(|| fail("no response-signing key".into()))?;
        let signer = self
            .cp
            .open_bank_key(&key)
            .ok_or_else(|| fail("the response-signing key does not open".into()))?;
        let req = signed_request(n, &url, &key.key_id, &signer, menshen_store::now_unix())
            .map_err(fail)?;
        // The status line decides; the body is never read (egress).
        let status = tokio::time::timeout(timeout, self.http.post(req))
            .await
            .map_err(|_| fail("timed out".into()))?
            .map_err(fail)?;
        if (200..300).contains(&status) {
            Ok(Some(url))
        } else {
            Err(fail(format!("answered {status}")))
        }
    }
}

/// The JSON body of notice `n` as sent: its stored body with `id`.
pub fn wire_body(n: &AppNotice) -> Vec<u8> {
    let mut body = json!({ "id": format!("notice-{}", n.id) });
    if let (Some(b), Some(stored)) = (body.as_object_mut(), n.body.as_object()) {
        for (k, v) in stored {
            b.insert(k.clone(), v.clone());
        }
    }
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The signed POST of notice `n` to `url` (see the module doc).
pub fn signed_request(
    n: &AppNotice,
    url: &str,
    key_id: &str,
    key: &menshen_crypto::PrivateKey,
    now: i64,
) -> Result<http::Request<Bytes>, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("notify_url: {e}"))?;
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_string())
        .ok_or("notify_url: no host")?;
    let path = uri.path().to_string();
    let body = wire_body(n);
    let digest = menshen_protocol::content_digest(menshen_crypto::DigestAlg::Sm3, &body);
    let id = format!("notice-{}", n.id);
    let view = menshen_protocol::signature::RequestView {
        method: "POST".into(),
        authority,
        scheme: uri.scheme_str().unwrap_or("https").into(),
        path,
        query: uri.query().map(str::to_string),
        headers: vec![
            ("content-digest".into(), digest.clone()),
            (NOTICE_ID_HEADER.into(), id.clone()),
        ],
    };
    let params = menshen_protocol::signature::SignatureParams {
        components: notice_components(),
        created: now,
        expires: None,
        nonce: menshen_crypto::random_token(16),
        keyid: key_id.to_string(),
        alg: key.alg().name().to_string(),
    };
    let (si, sig) =
        menshen_protocol::sign_with_key(key, &params, &view, None).map_err(|e| e.to_string())?;
    http::Request::builder()
        .method("POST")
        .uri(uri)
        .header("content-type", "application/json")
        .header("content-digest", digest)
        .header(NOTICE_ID_HEADER, id)
        .header("signature-input", si)
        .header("signature", sig)
        .body(Bytes::from(body))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mon_4_notice_signature_verifies_and_any_change_breaks_it() {
        let (key, _) =
            menshen_crypto::PrivateKey::generate(menshen_crypto::SigAlg::Sm2Sm3).unwrap();
        let n = AppNotice {
            id: 7,
            key: "expiry:credential:1:7d".into(),
            app_id: "app_1".into(),
            kind: "credential_expiry".into(),
            body: json!({"type": "credential_expiry", "app_id": "app_1", "threshold": "7d"}),
            state: NoticeState::Pending,
            attempts: 0,
            last_error: None,
            created_at: "t".into(),
            updated_at: "t".into(),
        };
        let req = signed_request(
            &n,
            "https://app.example:8443/hooks/menshen",
            "bank-sig-1",
            &key,
            1_700_000_000,
        )
        .unwrap();
        let headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap().to_string()))
            .collect();
        let body = req.body().to_vec();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["id"], "notice-7");
        assert_eq!(v["threshold"], "7d");
        let pk = key.public_key();
        verify_notice(
            std::slice::from_ref(pk),
            "app.example:8443",
            "/hooks/menshen",
            &headers,
            &body,
        )
        .unwrap();
        let mut tampered = body.clone();
        tampered[3] ^= 1;
        assert!(verify_notice(
            std::slice::from_ref(pk),
            "app.example:8443",
            "/hooks/menshen",
            &headers,
            &tampered
        )
        .is_err());
        assert!(verify_notice(
            std::slice::from_ref(pk),
            "other.example",
            "/hooks/menshen",
            &headers,
            &body
        )
        .is_err());
        let mut other_id = headers.clone();
        for (k, v) in other_id.iter_mut() {
            if k == NOTICE_ID_HEADER {
                *v = "notice-8".into();
            }
        }
        assert!(verify_notice(
            std::slice::from_ref(pk),
            "app.example:8443",
            "/hooks/menshen",
            &other_id,
            &body
        )
        .is_err());
        let (other, _) =
            menshen_crypto::PrivateKey::generate(menshen_crypto::SigAlg::Sm2Sm3).unwrap();
        assert!(verify_notice(
            std::slice::from_ref(other.public_key()),
            "app.example:8443",
            "/hooks/menshen",
            &headers,
            &body
        )
        .is_err());
    }

    /// MON-4: a notice replayed later (same headers and body) still
    /// verifies with `verify_notice` (the receiver must refuse ids it
    /// handled); `verify_notice_at` also refuses it once `created` is more
    /// than the allowed skew away, and accepts the fresh one.
    #[test]
    fn mon_4_a_stale_or_replayed_notice_is_refused_by_the_clock_check() {
        let (key, _) =
            menshen_crypto::PrivateKey::generate(menshen_crypto::SigAlg::Sm2Sm3).unwrap();
        let n = AppNotice {
            id: 9,
            key: "expiry:credential:1:1d".into(),
            app_id: "app_1".into(),
            kind: "credential_expiry".into(),
            body: json!({"type": "credential_expiry", "app_id": "app_1", "threshold": "1d"}),
            state: NoticeState::Pending,
            attempts: 0,
            last_error: None,
            created_at: "t".into(),
            updated_at: "t".into(),
        };
        let t0 = 1_700_000_000;
        let req = signed_request(&n, "https://app.example/hooks", "bank-sig-1", &key, t0).unwrap();
        let headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap().to_string()))
            .collect();
        let body = req.body().to_vec();
        let pk = std::slice::from_ref(key.public_key());
        let check = |now| verify_notice_at(pk, "app.example", "/hooks", &headers, &body, now, 300);
        assert!(check(t0 + 60).is_ok());
        assert!(check(t0 - 60).is_ok());
        assert!(verify_notice(pk, "app.example", "/hooks", &headers, &body).is_ok());
        let e = check(t0 + 3600).unwrap_err().to_string();
        assert!(e.contains("stale or replayed"), "{e}");
        assert!(check(t0 - 3600).is_err());
    }
}
