//! A client certificate used from an unusual network (KEY-4, MON-3).
//!
//! When a verified call of an app comes over mutual TLS with one of the
//! app's bound client certificates from a client network the app has not
//! used before (the learned baseline's notion: the /24 of an IPv4 address,
//! the /48 of an IPv6 one, once the app has been learned for
//! `alerts.baseline.learning_days`), the rule raises `cert_network`
//! (warning), naming the App_ID, the certificate's fingerprint and the
//! network. It runs on the alert feed, off the request path, and so needs
//! `[alerts.baseline]` on (it is by default).
//!
//! In a cluster, "new" means new to the cluster: the node re-reads the
//! networks every node has saved (merged in the store) first, so a network
//! another node has seen raises nothing here and suspends nothing; if the
//! store cannot be read the alert is raised but nothing is suspended.
//!
//! With `[alerts.cert_network] auto_suspend = true` (off by default) the
//! bank also suspends the app at once: a certificate cannot be suspended
//! on its own in the model (only revoked, which is final and would need a
//! new certificate), while an app's suspension is undone with
//! `menshen app resume` once the officer is satisfied. From the next call
//! on, every call of the app is refused `APP_NOT_ACTIVE`. The suspension
//! leaves an admin audit record (actor `menshen:alerts.cert_network`), a
//! critical alert `cert_network_suspended`, and (if the app registered a
//! notification URL) a notice `app_suspended` to the app.

use std::sync::Arc;

use menshen_model::alert::{AlertSeverity, NewAlert};
use menshen_model::notice::NewAppNotice;
use menshen_model::{AppStatus, CredentialKind};
use menshen_store::ControlPlane;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::deliver::Outbox;
use super::notify::Notifier;
use super::Signal;

/// The actor named in the audit record of an automatic suspension.
pub const ACTOR: &str = "menshen:alerts.cert_network";

/// `[alerts.cert_network]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertNetworkConfig {
    /// Raise `cert_network` (default true; needs `[alerts.baseline]`).
    #[serde(default = "d_true")]
    pub enabled: bool,
    /// Also suspend the app at once (default false).
    #[serde(default)]
    pub auto_suspend: bool,
}

fn d_true() -> bool {
    true
}

impl Default for CertNetworkConfig {
    fn default() -> Self {
        CertNetworkConfig {
            enabled: true,
            auto_suspend: false,
        }
    }
}

/// The rule's collaborators.
pub struct CertNetwork {
    /// Settings.
    pub cfg: CertNetworkConfig,
    /// The store.
    pub cp: ControlPlane,
    /// The operators' receivers.
    pub out: Arc<Outbox>,
    /// Where the suspension is recorded.
    pub audit: menshen_audit::AuditLog,
    /// Notices to the app (suspension), if any.
    pub notifier: Option<Arc<Notifier>>,
    /// Whether the app is told of its suspension.
    pub notify_suspension: bool,
}

impl CertNetwork {
    /// `s` came from `network`, new for its app (the baseline said so,
    /// after re-reading the cluster's networks in the store: `confirmed`;
    /// not confirmed when the store could not be read).
    /// Raise the alert if `s` presented one of the app's own certificates,
    /// and suspend the app if so configured and confirmed.
    pub async fn on_new_network(&self, s: &Signal, network: &str, confirmed: bool) {
        if !self.cfg.enabled || !s.app_verified {
            return;
        }
        let (Some(app_id), Some(fp)) = (s.app_id.as_deref(), s.client_cert.as_deref()) else {
            return;
        };
        let cred = match self.cp.store.find_credential_by_fingerprint(fp).await {
            Ok(Some(c))
                if c.app_id == app_id && c.kind == CredentialKind::Certificate && !c.revoked =>
            {
                c
            }
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cert_network: cannot look the certificate up");
                return;
            }
        };
        let alert = NewAlert {
            rule: "cert_network".into(),
            key: format!("cert_network:{app_id}:{fp}:{network}"),
            severity: AlertSeverity::Warning,
            summary: format!(
                "client certificate {} of App_ID {app_id} used from a new network {network}{}",
                &fp[..fp.len().min(16)],
                if self.cfg.auto_suspend {
                    " (the app is suspended automatically)"
                } else {
                    ""
                }
            ),
            details: json!({"app_id": app_id, "fingerprint": fp, "network": network,
                "client_ip": s.client_ip, "txn_id": s.txn_id, "credential_id": cred.id,
                "subject": cred.subject, "auto_suspend": self.cfg.auto_suspend}),
        };
        let raised = match self.cp.store.raise_alert(&alert).await {
            Ok((a, new)) => {
                if new {
                    tracing::warn!(id = a.id, key = %a.key, summary = %a.summary, "alert raised");
                    self.out.send(&a);
                }
                a
            }
            Err(e) => {
                tracing::error!(error = %e, "cert_network: the alert could not be stored");
                return;
            }
        };
        if self.cfg.auto_suspend && confirmed {
            self.suspend(app_id, fp, network, raised.id).await;
        }
    }

    async fn suspend(&self, app_id: &str, fp: &str, network: &str, alert_id: i64) {
        let before = match self.cp.store.get_app(app_id).await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, app_id, "cert_network: cannot read the app");
                return;
            }
        };
        if before.status != AppStatus::Active {
            return;
        }
        let after = match self
            .cp
            .store
            .set_app_status(app_id, AppStatus::Suspended)
            .await
        {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, app_id, "cert_network: the app could not be suspended");
                return;
            }
        };
        tracing::warn!(
            app_id,
            network,
            "app suspended automatically: its certificate was used from a new network"
        );
        let rec = menshen_audit::AdminRecord {
            kind: "admin".into(),
            timestamp: menshen_store::now_rfc3339(),
            actor: ACTOR.into(),
            action: format!(
                "POST /v1/apps/{app_id}/suspend (automatic: client certificate used from a new network)"
            ),
            status: 200,
            before: serde_json::to_value(&before).ok(),
            request: Some(json!({"fingerprint": fp, "network": network, "alert_id": alert_id})),
            after: serde_json::to_value(&after).ok(),
        };
        if let Err(e) = self.audit.record(&rec).await {
            tracing::error!(error = %e, app_id, "the automatic suspension could not be recorded");
        }
        super::raise(
            &self.cp,
            &self.out,
            NewAlert {
                rule: "cert_network_suspended".into(),
                key: format!("cert_network_suspended:{app_id}:{alert_id}"),
                severity: AlertSeverity::Critical,
                summary: format!(
                    "App_ID {app_id} suspended automatically: its client certificate {} was used from a new network {network}; resume it with `menshen app resume {app_id}` once cleared",
                    &fp[..fp.len().min(16)]
                ),
                details: json!({"app_id": app_id, "fingerprint": fp, "network": network,
                    "alert_id": alert_id, "actor": ACTOR}),
            },
        )
        .await;
        if let (true, Some(n)) = (self.notify_suspension, &self.notifier) {
            n.notify(NewAppNotice {
                key: format!("suspended:{app_id}:{alert_id}"),
                app_id: app_id.into(),
                kind: "app_suspended".into(),
                body: json!({
                    "type": "app_suspended",
                    "app_id": app_id,
                    "created_at": menshen_store::now_rfc3339(),
                    "reason": "client_certificate_new_network",
                    "certificate": {"fingerprint": fp},
                    "network": network,
                    "message": format!("Your app was suspended: your client certificate was used from a network it had not used before ({network}). Calls are refused (APP_NOT_ACTIVE) until the bank resumes the app. Contact the bank."),
                }),
            })
            .await;
        }
    }
}
