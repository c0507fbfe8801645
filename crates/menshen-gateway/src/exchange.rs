//! The per-request context every stage reads and fills in.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use menshen_protocol::signature::Components;
use menshen_protocol::ParsedSignature;

use crate::conn::Slot;
use crate::server::State;
use crate::snapshot::{ApiEntry, AppEntry, Snapshot};

/// One request on its way through the pipeline. If it is dropped before its
/// access record was written (the runtime stopping under it), its `Drop`
/// still queues one (AUD-1).
pub struct Exchange {
    /// The gateway this request runs in.
    pub state: Arc<State>,
    /// The connection it arrived on (idle tracking, shedding).
    pub conn: Option<Arc<Slot>>,
    /// Transaction serial number.
    pub txn_id: String,
    /// Monotonic start, for the duration.
    pub started: Instant,
    /// Wall-clock start, for the record.
    pub started_at: SystemTime,
    /// TCP peer.
    pub peer: SocketAddr,
    /// The client IP (the peer, or from `X-Forwarded-For` of a trusted proxy).
    pub client_ip: IpAddr,
    /// Request head.
    pub parts: http::request::Parts,
    /// Request body (read by the body stage).
    pub body: Bytes,
    /// The snapshot this request is served from (one view for the whole request).
    pub snapshot: Arc<Snapshot>,
    /// The API, once routed.
    pub api: Option<Arc<ApiEntry>>,
    /// The App_ID the signature claims, once parsed.
    pub claimed_app_id: Option<String>,
    /// The app, once its signature verified.
    pub app: Option<Arc<AppEntry>>,
    /// The parsed signature.
    pub signature: Option<ParsedSignature>,
    /// SHA-256 fingerprint of the client certificate (mutual TLS), hex.
    pub client_cert: Option<Arc<str>>,
    /// Whether the signature was made with a registered key pair.
    pub key_pair_auth: bool,
    /// Whether the replay stage recorded this request's nonce.
    pub nonce_recorded: bool,
    /// Whether the request was handed to the upstream (it may have acted).
    pub forwarded: bool,
    /// Whether the access record was handed to the writer.
    pub recorded: bool,
    /// The customer and consent of the call (the consent stage), for the
    /// upstream's headers and the record.
    pub consent: Option<crate::authorizer::ConsentGrant>,
    /// What the authorization server did for this request (its pages and
    /// signed endpoints), for the record.
    pub auth_note: Option<String>,
    /// The flow-control rules this call exceeded with action `alert` (or
    /// could not check), for the record (TRF-1).
    pub limit_note: Option<String>,
    /// The risk rules' decision on a funds call (RSK-1), for the record.
    pub risk: Option<serde_json::Value>,
    /// The day's sums this call was added to (RSK-2): taken back if the
    /// call is refused before the upstream could act on it.
    pub risk_undo: Option<crate::stages::risk::Undo>,
    /// The concurrency slots the call holds (TRF-1): given back when the
    /// exchange is dropped, however it ends.
    pub slots: Vec<crate::flow::HeldSlots>,
    /// What the screening stage found in `detect` mode (ATK-1), for the
    /// record.
    pub screen_note: Option<String>,
    /// The call's W3C trace (accepted from the client or started here).
    pub trace: crate::trace::TraceContext,
    /// Time spent waiting for the upstream, microseconds (MON-1).
    pub upstream_us: Option<u64>,
    /// What a named upstream did beside a plain call (TRF-2): a retry on
    /// another target, or a degraded (fallback) answer, for the record.
    pub upstream_note: Option<String>,
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if !self.recorded {
            crate::record::interrupted(self);
        }
    }
}

impl Exchange {
    /// Unix seconds at the start of the request.
    pub fn now_unix(&self) -> i64 {
        self.started_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }

    /// A header as a string, if present and visible ASCII.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.parts.headers.get(name)?.to_str().ok()
    }
}

impl Components for Exchange {
    fn method(&self) -> &str {
        self.parts.method.as_str()
    }
    fn authority(&self) -> Option<&str> {
        self.parts
            .uri
            .authority()
            .map(|a| a.as_str())
            .or_else(|| self.header_str("host"))
    }
    fn scheme(&self) -> &str {
        "https"
    }
    fn path(&self) -> &str {
        self.parts.uri.path()
    }
    fn query(&self) -> Option<&str> {
        self.parts.uri.query()
    }
    fn header(&self, name: &str) -> Option<String> {
        let mut out: Option<String> = None;
        for v in self.parts.headers.get_all(name) {
            let s = v.to_str().ok()?.trim();
            match &mut out {
                None => out = Some(s.to_string()),
                Some(o) => {
                    o.push_str(", ");
                    o.push_str(s);
                }
            }
        }
        out
    }
}
