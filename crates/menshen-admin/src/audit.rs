//! Audit reads (AUD-6): `/v1/audit` searches the index and shows each
//! record as its node's log files hold it, `/v1/audit/records` reads records
//! of this node's log by place, `/v1/audit/checkpoint` the latest seal.
//!
//! In a cluster (issue 12 item 8) every node keeps its own hash chain in its
//! own segment files and indexes it into the shared database, so a search
//! on any node finds every node's records, but a record's body lives only
//! in the files of the node that wrote it. The node asked fetches those
//! bodies from the owning node's admin API (its URL from the node registry
//! in the store), with the caller's own admin token: the owning node checks
//! the token and records the read in its own chain (ADM-1). The bodies are
//! not copied into the database: the files are what the hash chain and the
//! signed checkpoints cover, and a second copy of every (masked) message
//! would double what a loaded node writes per call.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::extract::Query;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::Json;
use menshen_model::ValidationError;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{AdminError, AdminState};

type R = Result<axum::response::Response, AdminError>;

/// Places per request to another node (keeps the URL short).
const PLACES_PER_FETCH: usize = 100;

/// Fetches JSON from another node's admin API: (its base URL, path and
/// query, the caller's `Authorization` header) -> the JSON body, or why not.
pub type PeerFetch = Arc<
    dyn Fn(String, String, String) -> Pin<Box<dyn Future<Output = Result<Value, String>> + Send>>
        + Send
        + Sync,
>;

/// This node in the cluster's audit (issue 12 item 8).
#[derive(Clone, Default)]
pub struct AuditNode {
    /// This node's id: the rows of the index under it are read from the
    /// local files. `None`: a log without node ids (all rows are local).
    pub node_id: Option<String>,
    /// How to reach other nodes' admin APIs; `None`: their records are
    /// listed from the index without bodies (`record_error` says where
    /// they are).
    pub fetch: Option<PeerFetch>,
}

/// Search the audit index (AUD-6). The index holds each record's key fields
/// and its place in its node's log; the records themselves are read from the
/// log files (this node's, or the owning node's through its admin API), so
/// what an auditor sees is what the hash chain covers.
pub async fn search_audit(
    State(st): State<AdminState>,
    headers: HeaderMap,
    Query(q): Query<menshen_store::AuditQuery>,
) -> R {
    let rows = st.cp.store.search_audit(&q).await?;
    let me = st.audit_node.node_id.clone();
    let local = |r: &menshen_store::AuditRow| r.node.is_none() || r.node == me;
    // This node's rows: from the files here.
    let places: Vec<(u64, u64, u64)> = rows
        .iter()
        .filter(|r| local(r))
        .map(|r| (r.segment, r.offset, r.seq))
        .collect();
    let mut local_recs = read_local(&st, places).await?.into_iter();
    // Other nodes' rows: from their admin APIs (below, all nodes at once).
    let mut remote: BTreeMap<String, Vec<(u64, u64, u64)>> = BTreeMap::new();
    for r in rows.iter().filter(|r| !local(r)) {
        if let Some(n) = &r.node {
            remote
                .entry(n.clone())
                .or_default()
                .push((r.segment, r.offset, r.seq));
        }
    }
    let auth = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    // All nodes at once: a node that does not answer costs the search one
    // peer timeout, however many nodes do not.
    let mut asked = tokio::task::JoinSet::new();
    for (node, places) in remote {
        let (st, auth) = (st.clone(), auth.clone());
        asked.spawn(async move {
            let got = fetch_remote(&st, &node, &places, &auth).await;
            (node, got)
        });
    }
    let mut fetched: BTreeMap<(String, u64), Result<String, String>> = BTreeMap::new();
    while let Some(done) = asked.join_next().await {
        let (node, got) = done.map_err(|e| AdminError::Internal(e.to_string()))?;
        for (seq, rec) in got {
            fetched.insert((node.clone(), seq), rec);
        }
    }
    let out: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            let rec = if local(&r) {
                local_recs
                    .next()
                    .unwrap_or_else(|| Err("not read".to_string()))
            } else {
                let node = r.node.clone().unwrap_or_default();
                fetched
                    .remove(&(node.clone(), r.seq))
                    .unwrap_or_else(|| Err(format!("held by node {node}: not fetched")))
            };
            let mut v = json!({
                "seq": r.seq,
                "node": r.node,
                "segment": menshen_audit::writer::node_segment_name(r.node.as_deref(), r.segment),
                "indexed": {
                    "kind": r.kind, "txn_id": r.txn_id, "time_ms": r.time_ms,
                    "app_id": r.app_id, "api_id": r.api_id, "user_id": r.user_id,
                    "result": r.result, "status": r.status, "code": r.code,
                    "duration_us": r.duration_us,
                },
            });
            match rec.map(|t| serde_json::from_str::<Value>(&t)) {
                // A row without a node (indexed before node ids) on a shared
                // index may be another node's: its chain has the same
                // sequence numbers and places, so the local record found
                // there is another call. The transaction serial number (it
                // names the node) tells.
                Ok(Ok(rec))
                    if r.txn_id.is_some()
                        && rec.get("txn_id").and_then(|t| t.as_str()) != r.txn_id.as_deref() =>
                {
                    v["record_error"] =
                        json!("the record is in another node's audit log (its txn_id names the node)")
                }
                Ok(Ok(rec)) => v["record"] = rec,
                Ok(Err(e)) => v["record_error"] = json!(format!("record is not JSON: {e}")),
                Err(e) => {
                    tracing::warn!(seq = r.seq, node = ?r.node, error = %e, "audit search: record not readable from the log");
                    v["record_error"] = json!(e);
                }
            }
            v
        })
        .collect();
    Ok(Json(out).into_response())
}

/// The records at `places` of this node's log.
async fn read_local(
    st: &AdminState,
    places: Vec<(u64, u64, u64)>,
) -> Result<Vec<Result<String, String>>, AdminError> {
    if places.is_empty() {
        return Ok(Vec::new());
    }
    Ok(match &st.audit {
        Some(log) => {
            let dir = log.dir().to_path_buf();
            tokio::task::spawn_blocking(move || {
                menshen_audit::writer::read_records_at(&dir, &places)
            })
            .await
            .map_err(|e| AdminError::Internal(e.to_string()))?
        }
        None => vec![Err("no audit log on this node".to_string()); places.len()],
    })
}

/// The records at `places` of node `node`'s log, through its admin API:
/// (seq, record JSON or why not), in any order.
async fn fetch_remote(
    st: &AdminState,
    node: &str,
    places: &[(u64, u64, u64)],
    auth: &str,
) -> Vec<(u64, Result<String, String>)> {
    let all_fail = |why: String| places.iter().map(|p| (p.2, Err(why.clone()))).collect();
    let Some(fetch) = &st.audit_node.fetch else {
        return all_fail(format!(
            "held by node {node}: ask that node's admin API (this node does not fetch from others)"
        ));
    };
    let url = match st.cp.store.node_admin_url(node).await {
        Ok(Some(u)) => u,
        Ok(None) => {
            return all_fail(format!(
                "held by node {node}, which has not registered its admin API URL"
            ))
        }
        Err(e) => {
            return all_fail(format!(
                "held by node {node}: node registry unreadable: {e}"
            ))
        }
    };
    let mut out = Vec::with_capacity(places.len());
    for chunk in places.chunks(PLACES_PER_FETCH) {
        let list: Vec<String> = chunk
            .iter()
            .map(|(s, o, q)| format!("{s}.{o}.{q}"))
            .collect();
        let path = format!("/v1/audit/records?node={node}&places={}", list.join(","));
        match fetch(url.clone(), path, auth.to_string()).await {
            Ok(Value::Array(items)) => {
                for (p, item) in chunk.iter().zip(items) {
                    let rec = match (item.get("record"), item.get("record_error")) {
                        (Some(r), _) if r.is_object() => Ok(r.to_string()),
                        (_, Some(e)) => Err(format!(
                            "node {node}: {}",
                            e.as_str().unwrap_or("record not readable")
                        )),
                        _ => Err(format!("node {node}: unexpected answer")),
                    };
                    out.push((p.2, rec));
                }
            }
            Ok(_) => out.extend(
                chunk
                    .iter()
                    .map(|p| (p.2, Err(format!("node {node} ({url}): unexpected answer")))),
            ),
            Err(e) => {
                // The node did not answer (gone, down, partitioned): its
                // other records are not asked for, so a search does not
                // wait for it once per chunk.
                tracing::warn!(%node, %url, error = %e, "audit search: another node's records could not be fetched");
                out.extend(
                    places[out.len()..]
                        .iter()
                        .map(|p| (p.2, Err(format!("held by node {node} ({url}): {e}")))),
                );
                break;
            }
        }
    }
    out
}

/// `GET /v1/audit/records?node=ID&places=SEG.OFF.SEQ,...`.
#[derive(Deserialize)]
pub struct RecordsQuery {
    /// The node whose log is meant: must be this node.
    node: Option<String>,
    /// Comma-separated `segment.offset.seq` places, as the index has them.
    places: String,
}

/// Records of this node's log at the given places (another node's search
/// asks for them, issue 12 item 8): `[{seq, record}|{seq, record_error}]`,
/// in the order asked.
pub async fn records(State(st): State<AdminState>, Query(q): Query<RecordsQuery>) -> R {
    if q.node.is_some() && q.node != st.audit_node.node_id {
        return Err(AdminError::Invalid(ValidationError::new(
            "node",
            format!(
                "this is node {}, not {}: ask the node that holds the records",
                st.audit_node.node_id.as_deref().unwrap_or("(without id)"),
                q.node.as_deref().unwrap_or_default()
            ),
        )));
    }
    let mut places = Vec::new();
    for p in q.places.split(',').filter(|p| !p.is_empty()) {
        let n: Vec<u64> = p.split('.').filter_map(|x| x.parse().ok()).collect();
        if n.len() != 3 {
            return Err(AdminError::Invalid(ValidationError::new(
                "places",
                format!("`{p}` is not SEGMENT.OFFSET.SEQ"),
            )));
        }
        places.push((n[0], n[1], n[2]));
    }
    if places.len() > 1000 {
        return Err(AdminError::Invalid(ValidationError::new(
            "places",
            "at most 1000 places per request",
        )));
    }
    let seqs: Vec<u64> = places.iter().map(|p| p.2).collect();
    let recs = read_local(&st, places).await?;
    let out: Vec<Value> = seqs
        .into_iter()
        .zip(recs)
        .map(
            |(seq, rec)| match rec.map(|t| serde_json::from_str::<Value>(&t)) {
                Ok(Ok(r)) => json!({"seq": seq, "record": r}),
                Ok(Err(e)) => {
                    json!({"seq": seq, "record_error": format!("record is not JSON: {e}")})
                }
                Err(e) => json!({"seq": seq, "record_error": e}),
            },
        )
        .collect();
    Ok(Json(out).into_response())
}

/// The latest checkpoint of this node's chain.
pub async fn latest_checkpoint(State(st): State<AdminState>) -> R {
    match st.cp.store.latest_audit_checkpoint().await? {
        Some((_, cp)) => {
            Ok(Json(serde_json::from_str::<Value>(&cp).unwrap_or_default()).into_response())
        }
        None => Err(AdminError::NotFound("checkpoint".into())),
    }
}
