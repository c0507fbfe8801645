//! Expiry watch (MON-4, KEY-4): certificates and keys close to their end.
//!
//! Once at start-up and then every `check_every_hours` (default daily), the
//! watch looks at:
//! - client certificates bound to apps (credentials of kind `certificate`,
//!   their `not_after`),
//! - app public keys (signature and encryption) with a `not_after`, unless
//!   a newer key of the same kind outlives them (a rotation's grace period
//!   ending is expected, not news),
//! - the gateway's (and the admin API's) server certificate, its leaf's
//!   notAfter read from the configured PEM.
//!
//! The bank's keys (`bank_keys`) carry no expiry in the keystore (they are
//! retired, not expired), so there is nothing to watch there.
//!
//! Each item is told once per threshold (`days`, default 30, 7 and 1 days
//! ahead) and once when expired: the alert key is
//! `expiry:<item>:<threshold>` (`expiry:credential:42:7d`,
//! `expiry:server_cert:<fingerprint>:expired`), so the store's
//! de-duplication keeps one alert per threshold across nodes, and the watch
//! remembers what it raised (seeded from the stored alerts at start) so a
//! resolved notice is not raised again. 30 and 7 days are warnings, 1 day
//! and expired are critical. Alerts go to the bank's operators through the
//! alert delivery (webhooks, email). The app that owns a certificate or key
//! is told too, at its registered notification URL (应用方通知地址), with
//! a signed notice `credential_expiry` per threshold ([`super::notify`]),
//! kept in the store under the same key so it is sent once across
//! restarts and nodes.
//!
//! The clock is injected ([`menshen_store::Clock`]) so tests can walk days.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use menshen_model::alert::{AlertSeverity, NewAlert};
use menshen_model::CredentialKind;
use menshen_store::{Clock, ControlPlane, CredentialRecord};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::deliver::Outbox;
use super::notify::Notifier;
use menshen_model::notice::NewAppNotice;

const DAY: i64 = 86_400;

/// `[alerts.expiry]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpiryConfig {
    /// Watch at all (default true).
    #[serde(default = "d_true")]
    pub enabled: bool,
    /// Hours between two checks (default 24; one check runs at start-up).
    #[serde(default = "d_hours")]
    pub check_every_hours: u64,
    /// Days ahead at which to tell (default 30, 7, 1).
    #[serde(default = "d_days")]
    pub days: Vec<u32>,
}

fn d_true() -> bool {
    true
}
fn d_hours() -> u64 {
    24
}
fn d_days() -> Vec<u32> {
    vec![30, 7, 1]
}

impl Default for ExpiryConfig {
    fn default() -> Self {
        ExpiryConfig {
            enabled: true,
            check_every_hours: d_hours(),
            days: d_days(),
        }
    }
}

impl ExpiryConfig {
    /// Check the settings, naming the field (under `alerts.expiry.`).
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.check_every_hours == 0 || self.check_every_hours > 24 * 31 {
            anyhow::bail!("alerts.expiry.check_every_hours: 1 to 744");
        }
        if self.days.is_empty() || self.days.iter().any(|d| *d == 0 || *d > 3650) {
            anyhow::bail!("alerts.expiry.days: one or more whole days, 1 to 3650, e.g. [30, 7, 1]");
        }
        Ok(())
    }
}

/// One thing that expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiring {
    /// Stable id within the alert key (`credential:42`,
    /// `server_cert:<sha256 prefix>`).
    pub id: String,
    /// What it is, for people (`client certificate`, `app public key`,
    /// `gateway server certificate`).
    pub what: String,
    /// The owning app, if any.
    pub app_id: Option<String>,
    /// Certificate subject or file, fingerprint: what identifies it.
    pub details: serde_json::Value,
    /// Unix seconds.
    pub not_after: i64,
}

/// The notice `item` is due at `now` (thresholds in days), if any: the
/// smallest threshold reached, or `expired`. Items expired longer ago than
/// the largest threshold are left alone (old, revoked history).
pub fn notice(item: &Expiring, now: i64, days: &[u32]) -> Option<NewAlert> {
    let left = item.not_after - now;
    let max = days.iter().copied().max().unwrap_or(30) as i64;
    let (label, severity) = if left <= 0 {
        if -left > max * DAY {
            return None;
        }
        ("expired".to_string(), AlertSeverity::Critical)
    } else {
        let t = days
            .iter()
            .copied()
            .filter(|d| left <= *d as i64 * DAY)
            .min()?;
        let sev = if t <= 1 {
            AlertSeverity::Critical
        } else {
            AlertSeverity::Warning
        };
        (format!("{t}d"), sev)
    };
    let until = time::OffsetDateTime::from_unix_timestamp(item.not_after)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| item.not_after.to_string());
    let owner = item
        .app_id
        .as_deref()
        .map(|a| format!(" of App_ID {a}"))
        .unwrap_or_default();
    let summary = if left <= 0 {
        format!("{}{owner} expired at {until}", item.what)
    } else {
        format!(
            "{}{owner} expires at {until} (in {} days)",
            item.what,
            (left + DAY - 1) / DAY
        )
    };
    Some(NewAlert {
        rule: "expiry".into(),
        key: format!("expiry:{}:{label}", item.id),
        severity,
        summary,
        details: json!({
            "item": item.id,
            "what": item.what,
            "app_id": item.app_id,
            "not_after": until,
            "seconds_left": left,
            "threshold": label,
            "about": item.details,
        }),
    })
}

/// The credentials of one app worth watching.
fn credential_items(creds: &[CredentialRecord]) -> Vec<Expiring> {
    let mut out = Vec::new();
    for c in creds.iter().filter(|c| !c.revoked) {
        let Some(na) = c.not_after else { continue };
        let what = match c.kind {
            CredentialKind::Certificate => "client certificate",
            CredentialKind::PublicKey => "app public key",
            CredentialKind::EncryptionKey => "app encryption key",
            CredentialKind::Secret => continue,
        };
        // A key rotated out: a newer one of the same kind outlives it.
        if c.kind != CredentialKind::Certificate
            && creds.iter().any(|o| {
                o.id != c.id && !o.revoked && o.kind == c.kind && o.not_after.is_none_or(|x| x > na)
            })
        {
            continue;
        }
        out.push(Expiring {
            id: format!("credential:{}", c.id),
            what: what.into(),
            app_id: Some(c.app_id.clone()),
            details: json!({
                "credential_id": c.id,
                "kind": c.kind.to_string(),
                "fingerprint": c.fingerprint,
                "subject": c.subject,
            }),
            not_after: na,
        });
    }
    out
}

/// The leaf certificate of a PEM chain file.
pub fn server_cert_item(what: &str, path: &std::path::Path) -> anyhow::Result<Expiring> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    use x509_cert::der::Decode;
    let leaf = CertificateDer::pem_file_iter(path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        .next()
        .ok_or_else(|| anyhow::anyhow!("{}: no certificate in the file", path.display()))?
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let cert = x509_cert::Certificate::from_der(leaf.as_ref())
        .map_err(|e| anyhow::anyhow!("{}: not an X.509 certificate: {e}", path.display()))?;
    let na = cert
        .tbs_certificate
        .validity
        .not_after
        .to_unix_duration()
        .as_secs() as i64;
    let fp = hex::encode(menshen_crypto::sha256(leaf.as_ref()));
    Ok(Expiring {
        id: format!("server_cert:{}", &fp[..16]),
        what: what.into(),
        app_id: None,
        details: json!({
            "file": path.display().to_string(),
            "subject": cert.tbs_certificate.subject.to_string(),
            "fingerprint": fp,
        }),
        not_after: na,
    })
}

/// The watch's state.
pub struct Watch {
    cp: ControlPlane,
    cfg: ExpiryConfig,
    /// Server certificates: (what, PEM file).
    server_certs: Vec<(String, PathBuf)>,
    clock: Clock,
    /// Alert keys this watch raised or found stored.
    told: HashSet<String>,
    seeded: bool,
    /// Notices to the owning apps, if any.
    notifier: Option<std::sync::Arc<Notifier>>,
    /// Notice keys created (or found) by this watch.
    noticed: HashSet<String>,
}

impl Watch {
    /// A watch over the store's credentials and these server certificates.
    pub fn new(
        cp: ControlPlane,
        cfg: ExpiryConfig,
        server_certs: Vec<(String, PathBuf)>,
        clock: Clock,
    ) -> Watch {
        Watch {
            cp,
            cfg,
            server_certs,
            clock,
            told: HashSet::new(),
            seeded: false,
            notifier: None,
            noticed: HashSet::new(),
        }
    }

    /// Also tell the owning apps (MON-4, KEY-4), through `n`.
    pub fn with_notifier(mut self, n: std::sync::Arc<Notifier>) -> Watch {
        self.notifier = Some(n);
        self
    }

    /// Everything watched, now.
    pub async fn items(&self) -> Vec<Expiring> {
        let mut out = Vec::new();
        for (what, path) in &self.server_certs {
            match server_cert_item(what, path) {
                Ok(i) => out.push(i),
                Err(e) => tracing::error!(error = %e, "expiry watch: cannot read the {what}"),
            }
        }
        let apps = match self.cp.store.list_apps().await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "expiry watch: cannot list apps");
                return out;
            }
        };
        for app in apps {
            match self.cp.store.list_credentials(&app.app_id).await {
                Ok(creds) => out.extend(credential_items(&creds)),
                Err(e) => {
                    tracing::error!(error = %e, app_id = %app.app_id, "expiry watch: cannot list credentials")
                }
            }
        }
        out
    }

    /// One check: raise (and deliver) the notices due, each once. Returns
    /// the keys of the alerts newly raised by this check.
    pub async fn check(&mut self, out: &Outbox) -> Vec<String> {
        if !self.seeded {
            match self.cp.store.list_alerts(None).await {
                Ok(all) => {
                    self.told.extend(
                        all.into_iter()
                            .filter(|a| a.rule == "expiry")
                            .map(|a| a.key),
                    );
                    self.seeded = true;
                }
                Err(e) => tracing::warn!(error = %e, "expiry watch: cannot read stored alerts"),
            }
        }
        let now = (self.clock)();
        let mut raised = Vec::new();
        for item in self.items().await {
            let Some(a) = notice(&item, now, &self.cfg.days) else {
                continue;
            };
            self.notice_app(&item, &a, now).await;
            if self.told.contains(&a.key) {
                continue;
            }
            match self.cp.store.raise_alert(&a).await {
                Ok((alert, new)) => {
                    self.told.insert(a.key.clone());
                    if new {
                        tracing::warn!(id = alert.id, key = %alert.key, severity = %alert.severity, summary = %alert.summary, "alert raised");
                        out.send(&alert);
                        raised.push(a.key);
                    }
                }
                Err(e) => tracing::error!(error = %e, key = %a.key, "alert could not be stored"),
            }
        }
        raised
    }

    /// The owning app's notice of `a` (once per key; only apps with a
    /// notification URL get one).
    async fn notice_app(&mut self, item: &Expiring, a: &NewAlert, now: i64) {
        let (Some(n), Some(app_id)) = (&self.notifier, &item.app_id) else {
            return;
        };
        if self.noticed.contains(&a.key) {
            return;
        }
        let created_at = time::OffsetDateTime::from_unix_timestamp(now)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default();
        let d = &a.details;
        let left = d["seconds_left"].as_i64().unwrap_or(0);
        n.notify(NewAppNotice {
            key: a.key.clone(),
            app_id: app_id.clone(),
            kind: "credential_expiry".into(),
            body: json!({
                "type": "credential_expiry",
                "app_id": app_id,
                "created_at": created_at,
                "credential": item.details,
                "what": item.what,
                "not_after": d["not_after"],
                "threshold": d["threshold"],
                "days_left": if left > 0 { (left + DAY - 1) / DAY } else { 0 },
                "message": a.summary,
            }),
        })
        .await;
        // Created now or already stored: either way not asked again (an
        // app without a URL is asked again at the next check).
        if self.noticed.len() < 100_000 {
            if let Ok(app) = self.cp.store.get_app(app_id).await {
                if app.notify_url.is_some() {
                    self.noticed.insert(a.key.clone());
                }
            }
        }
    }

    /// Check at start and then every `check_every_hours`, until `stop`.
    pub async fn run(
        mut self,
        out: std::sync::Arc<Outbox>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let every = Duration::from_secs(self.cfg.check_every_hours * 3600);
        loop {
            self.check(&out).await;
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(not_after: i64) -> Expiring {
        Expiring {
            id: "credential:1".into(),
            what: "client certificate".into(),
            app_id: Some("A".into()),
            details: json!({}),
            not_after,
        }
    }

    #[test]
    fn mon_4_thresholds_and_severities() {
        let d = d_days();
        let na = 100 * DAY;
        let at = |days_left: f64| notice(&item(na), na - (days_left * DAY as f64) as i64, &d);
        assert!(at(31.0).is_none());
        let a = at(30.0).unwrap();
        assert_eq!(
            (a.key.as_str(), a.severity),
            ("expiry:credential:1:30d", AlertSeverity::Warning)
        );
        assert_eq!(at(8.0).unwrap().key, "expiry:credential:1:30d");
        assert_eq!(at(6.5).unwrap().key, "expiry:credential:1:7d");
        let a = at(0.5).unwrap();
        assert_eq!(
            (a.key.as_str(), a.severity),
            ("expiry:credential:1:1d", AlertSeverity::Critical)
        );
        let a = at(-1.0).unwrap();
        assert_eq!(
            (a.key.as_str(), a.severity),
            ("expiry:credential:1:expired", AlertSeverity::Critical)
        );
        assert!(at(-31.0).is_none(), "old history is left alone");
    }
}
