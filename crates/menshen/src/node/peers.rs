//! This node in the cluster's audit (issue 12 item 8): its node id (the one
//! its audit chain, segment names and transaction serial numbers carry), its
//! admin API URL in the store's node registry, and fetching other nodes'
//! audit records from their admin APIs.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use serde_json::Value;

use crate::config::Config;

/// How long a fetch from another node's admin API may take.
const PEER_TIMEOUT: Duration = Duration::from_secs(10);

/// This node's id for the gateway (transaction serial numbers) and for its
/// audit log: `node_id` when configured; else the id the audit directory's
/// segment files already carry; else, for a new log, a random one (kept
/// from then on by the segment names). A log written before node ids and no
/// `node_id` configured stays without one (the gateway then picks a random
/// id per start, as before).
pub(crate) fn resolve_node_id(
    cfg: &Config,
    audit_dir: &Path,
) -> anyhow::Result<(Option<String>, Option<String>)> {
    if let Some(n) = &cfg.node_id {
        return Ok((Some(n.clone()), Some(n.clone())));
    }
    let found = menshen_audit::verify::log_node(audit_dir)
        .map_err(|e| anyhow::anyhow!("data_dir: audit log: {e}"))?;
    if let Some(n) = found {
        return Ok((Some(n.clone()), Some(n)));
    }
    let has_segments = !menshen_audit::verify::list_segments(audit_dir)
        .with_context(|| format!("data_dir: cannot list {}", audit_dir.display()))?
        .is_empty();
    if has_segments {
        return Ok((None, None));
    }
    let n = menshen_gateway::txn::TxnIds::random_node_id();
    Ok((Some(n.clone()), Some(n)))
}

/// The URL other nodes reach this admin API at: `admin.advertise_url`, else
/// the bound address (none when it is unspecified, e.g. 0.0.0.0).
pub(crate) fn advertise_url(cfg: &Config, bound: std::net::SocketAddr) -> Option<String> {
    if let Some(u) = &cfg.admin.advertise_url {
        return Some(u.trim_end_matches('/').to_string());
    }
    if bound.ip().is_unspecified() {
        return None;
    }
    let scheme = if cfg.admin.tls.is_some() {
        "https"
    } else {
        "http"
    };
    Some(format!("{scheme}://{bound}"))
}

/// Keep this node's entry in the store's node registry (`cluster_nodes`:
/// node id -> admin API URL) fresh: registered again every `every` until
/// `stop` turns true, so a registry that lost it (PostgreSQL wiped, or
/// restored from a backup older than the node) learns it again without a
/// restart. A failed registration (the database down) is logged once and
/// retried by the next period.
pub(crate) fn keep_registered(
    cp: menshen_store::ControlPlane,
    node: String,
    url: String,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is now: registered at start already.
        tick.tick().await;
        let mut failing = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                r = stop.changed() => {
                    if r.is_err() || *stop.borrow() {
                        return;
                    }
                    continue;
                }
            }
            match cp.store.register_node(&node, &url).await {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!("node registry: this node's admin API URL registered again");
                }
                Ok(()) => {}
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "node registry: cannot register this node's admin API URL (retried every period)");
                }
                Err(_) => {}
            }
        }
    });
}

/// Fetch JSON from another node's admin API with the caller's
/// `Authorization` header (that node checks the token and records the
/// read). https peers are trusted through `admin.peer_ca_file`; a plain
/// http peer off loopback is refused (the token would cross the network
/// in clear) unless `admin.allow_plaintext_non_loopback` (ADM-1).
pub(crate) fn peer_fetch(cfg: &Config) -> anyhow::Result<menshen_admin::audit::PeerFetch> {
    let ca = match &cfg.admin.peer_ca_file {
        Some(f) => Some(
            std::fs::read(f)
                .with_context(|| format!("admin.peer_ca_file: cannot read {}", f.display()))?,
        ),
        None => None,
    };
    let has_ca = ca.is_some();
    let plaintext_ok = cfg.admin.allow_plaintext_non_loopback;
    let http = menshen_sdk::http_client(ca.as_deref())
        .map_err(|e| anyhow::anyhow!("admin.peer_ca_file: {e}"))?;
    Ok(Arc::new(move |base: String, path: String, auth: String| {
        let http = http.clone();
        Box::pin(async move {
            if base.starts_with("https://") && !has_ca {
                return Err(format!(
                    "{base} is https: set admin.peer_ca_file to the CA of the nodes' admin certificates"
                ));
            }
            if base.starts_with("http://") && !plaintext_ok && !is_loopback_url(&base) {
                return Err(format!(
                    "{base} is plain http off loopback: the admin token would cross the network in clear (serve the admin API over TLS, or set admin.allow_plaintext_non_loopback)"
                ));
            }
            let req = http::Request::builder()
                .method("GET")
                .uri(format!("{base}{path}"))
                .header(http::header::AUTHORIZATION, auth)
                .body(Bytes::new())
                .map_err(|e| e.to_string())?;
            let resp = tokio::time::timeout(PEER_TIMEOUT, menshen_sdk::send(&http, req))
                .await
                .map_err(|_| format!("no answer within {} s", PEER_TIMEOUT.as_secs()))?
                .map_err(|e| format!("cannot reach it: {e}"))?;
            let v: Value = serde_json::from_slice(&resp.body)
                .map_err(|_| format!("answered {} without JSON", resp.status))?;
            if resp.status >= 400 {
                let msg = v
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("request failed");
                return Err(format!("{msg} ({})", resp.status));
            }
            Ok(v)
        })
    }))
}

/// Whether an `http://` URL's host is a loopback address or `localhost`.
fn is_loopback_url(url: &str) -> bool {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return false;
    };
    match uri.host() {
        Some("localhost") => true,
        Some(h) => h
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ADM-1 for node-to-node fetches: plain http only on loopback.
    #[test]
    fn adm_1_plain_http_peers_only_on_loopback() {
        assert!(is_loopback_url("http://127.0.0.1:9080"));
        assert!(is_loopback_url("http://[::1]:9080"));
        assert!(is_loopback_url("http://localhost:9080"));
        assert!(!is_loopback_url("http://10.0.0.2:9080"));
        assert!(!is_loopback_url("http://node2.bank.example:9080"));
        assert!(!is_loopback_url("not a url"));
    }
}
