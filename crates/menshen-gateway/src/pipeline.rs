//! The request pipeline: THE place where the order of stages is declared.
//! Each stage lives in `stages/<name>.rs`; `docs/pipeline.md` draws this order.
//!
//! Every request, whatever happens to it, leaves through [`handle`], which
//! signs the response when the API requires it and calls [`finish`] exactly
//! once to write its access record (AUD-1).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use menshen_audit::{mask_text, AccessRecord, Outcome};
use menshen_model::Level;
use menshen_protocol::ErrorCode;

use crate::error::error_response;
use crate::exchange::Exchange;
use crate::server::State;
use crate::stages::{
    app_status, authenticate, authorize, body, client_cert, client_ip, ip_lists, replay, route,
    sign_response, upstream, well_known,
};
use crate::GatewayError;

/// Handle one request from start to access record.
pub async fn handle(
    state: &State,
    req: Request<Incoming>,
    peer: SocketAddr,
    client_cert: Option<Arc<str>>,
) -> Response<Full<Bytes>> {
    let started_at = SystemTime::now();
    let ms = started_at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let (parts, incoming) = req.into_parts();
    let mut ex = Exchange {
        txn_id: state.txn.next(ms),
        started: Instant::now(),
        started_at,
        peer,
        client_ip: peer.ip(),
        parts,
        body: Bytes::new(),
        snapshot: state.snapshot.current().clone(),
        api: None,
        claimed_app_id: None,
        app: None,
        signature: None,
        upstream_status: None,
        client_cert: client_cert.map(|c| c.to_string()),
        key_pair_auth: false,
        nonce_recorded: false,
    };
    let result = run(state, &mut ex, incoming).await;
    let (mut resp, mut err) = match result {
        Ok(r) => (r, None),
        Err(e) => (e.to_response(&ex.txn_id), Some(e)),
    };
    let cfg = &state.config;
    // Every response carries its transaction serial number.
    if let Ok(v) = http::HeaderValue::from_str(&ex.txn_id) {
        resp.headers_mut()
            .entry(menshen_protocol::headers::TXN_ID)
            .or_insert(v);
    }
    // AUTH-2/INT-2: sign (errors too); with no signing key, fail closed.
    if sign_response::wanted(&ex, cfg.sign_all_responses) && !sign_response::sign(&ex, &mut resp) {
        let e = GatewayError::new(
            ErrorCode::AuditUnavailable,
            "response signing key unavailable",
        );
        resp = e.to_response(&ex.txn_id);
        err = Some(e);
    }
    // DEP-2: A2/A3 answer only once their record is durable.
    let durable = !cfg.unsafe_async_audit
        && (cfg.durable_audit_a1 || ex.api.as_ref().is_some_and(|a| a.api.level >= Level::A2));
    if !finish(state, &ex, &resp, err.as_ref(), durable).await && durable {
        tracing::error!(txn_id = %ex.txn_id, "access record not durable: failing the call closed");
        resp = error_response(ErrorCode::AuditUnavailable, &ex.txn_id);
        if sign_response::wanted(&ex, cfg.sign_all_responses) {
            sign_response::sign(&ex, &mut resp);
        }
    }
    resp.map(Full::new)
}

/// The stages, in order. A stage that fails stops the request here: nothing
/// after it runs, and nothing reaches the upstream.
async fn run(
    state: &State,
    ex: &mut Exchange,
    incoming: Incoming,
) -> Result<Response<Bytes>, GatewayError> {
    let cfg = &state.config;
    // 1. Client IP + global blocklist: first, so a blocked address learns
    //    nothing, not even whether an API exists.
    client_ip::on_request(ex, &cfg.trusted_proxies)?;
    // 1b. The bank's public keys, for anyone not blocked.
    if let Some(r) = well_known::on_request(ex) {
        return Ok(r);
    }
    // 2. Route + lifecycle: a terminated API answers its tombstone here.
    route::on_request(ex)?;
    // 3. Body, bounded: the digest check in (4) needs all of it.
    body::read(ex, incoming, cfg.max_body_bytes).await?;
    // 4. Authenticate: signature (MAC or key pair), digest, created window,
    //    the API's minimum controls.
    authenticate::on_request(ex, cfg.replay_window_secs)?;
    // 5. Client certificate binding: a certificate of another app is refused.
    client_cert::on_request(ex)?;
    // 6. App status on every call (AUTH-4): after (4), so only the app itself
    //    learns its status.
    app_status::on_request(ex)?;
    // 7. Per-app IP block/allow lists (AUTH-5); needs the app from (4).
    ip_lists::on_request(ex)?;
    // 8. Replay (INT-4): after (4), so forged requests cannot burn nonces.
    replay::on_request(ex, state.hot.as_ref(), cfg.replay_window_secs).await?;
    // 9. Authorize: grant (ONB-3), client kind vs level (LVL-4).
    authorize::on_request(ex)?;
    // 10. Upstream: the only stage that talks to the bank's systems.
    upstream::forward(ex, &state.upstream).await
}

fn rfc3339_ms(t: SystemTime) -> String {
    let dt = time::OffsetDateTime::from(t);
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    dt.format(&f).unwrap_or_default()
}

/// Write the request's access record (AUD-1). Called once per request.
/// Returns whether the record was accepted (and, when `durable`, synced).
async fn finish(
    state: &State,
    ex: &Exchange,
    resp: &Response<Bytes>,
    err: Option<&GatewayError>,
    durable: bool,
) -> bool {
    let status = resp.status().as_u16();
    let api = ex.api.as_ref().map(|a| &a.api);
    let (result, code, message, reason) = match err {
        None => (
            if status < 400 {
                Outcome::Success
            } else {
                Outcome::Failure
            },
            None,
            format!("upstream {status}"),
            None,
        ),
        Some(e) => (
            e.outcome(),
            Some(e.code.as_str().to_string()),
            e.code.message().to_string(),
            Some(mask_text(&e.reason).into_owned()),
        ),
    };
    let sig = ex.signature.as_ref().map(|s| &s.params);
    let rec = AccessRecord {
        kind: "access".into(),
        txn_id: ex.txn_id.clone(),
        node_id: state.txn.node().to_string(),
        timestamp: rfc3339_ms(ex.started_at),
        duration_us: ex.started.elapsed().as_micros() as u64,
        app_id: ex
            .app
            .as_ref()
            .map(|a| a.app.app_id.clone())
            .or_else(|| ex.claimed_app_id.clone()),
        app_verified: ex.app.is_some(),
        api_id: api.map(|a| a.api_id.clone()),
        u_api_id: api.map(|a| a.u_api_id.clone()),
        level: api.map(|a| a.level.as_str().to_string()),
        client_ip: ex.client_ip.to_string(),
        peer: ex.peer.to_string(),
        method: ex.parts.method.to_string(),
        path: mask_text(ex.parts.uri.path()).into_owned(),
        status,
        result,
        code,
        message,
        reason,
        alg: sig.map(|s| s.alg.clone()),
        nonce: sig.filter(|_| ex.nonce_recorded).map(|s| s.nonce.clone()),
        sig_created: sig.map(|s| s.created),
        client_cert: ex.client_cert.clone(),
        message_parts: ex
            .api
            .as_ref()
            .and_then(|a| message_parts(ex, resp, &a.api.controls)),
    };
    let time_ms = ex
        .started_at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let r = state.audit.record_access(&rec, time_ms, durable).await;
    match r {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(txn_id = %ex.txn_id, error = %e, "access record not written");
            false
        }
    }
}

/// Headers never written to the log (credentials and signatures).
const UNLOGGED: &[&str] = &[
    "authorization",
    "cookie",
    "set-cookie",
    "signature",
    "signature-input",
    "proxy-authorization",
];

fn headers_json(h: &http::HeaderMap) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for (k, v) in h {
        if UNLOGGED.contains(&k.as_str()) {
            continue;
        }
        let v = menshen_audit::mask::mask_pii_text(v.to_str().unwrap_or("<binary>"));
        m.insert(k.as_str().to_string(), serde_json::Value::String(v));
    }
    serde_json::Value::Object(m)
}

fn body_json(b: &Bytes, extra: &[String]) -> serde_json::Value {
    if b.is_empty() {
        return serde_json::Value::Null;
    }
    match serde_json::from_slice::<serde_json::Value>(b) {
        Ok(v) => menshen_audit::mask_json(&v, extra),
        Err(_) => match std::str::from_utf8(b) {
            Ok(t) if t.len() <= 64 * 1024 => {
                serde_json::Value::String(menshen_audit::mask::mask_pii_text(t))
            }
            _ => serde_json::Value::String(format!("<{} bytes not retained>", b.len())),
        },
    }
}

/// The message parts an API retains (AUD-4), masked (AUD-5) before they
/// reach the writer: nothing unmasked is ever written.
fn message_parts(
    ex: &Exchange,
    resp: &Response<Bytes>,
    c: &menshen_model::ApiControls,
) -> Option<serde_json::Value> {
    use menshen_model::MessageRetention as M;
    let bodies = match c.audit_messages {
        M::None => return None,
        M::Headers => false,
        M::Bodies => true,
    };
    let mut req = serde_json::json!({"headers": headers_json(&ex.parts.headers)});
    let mut res = serde_json::json!({"headers": headers_json(resp.headers())});
    if bodies {
        req["body"] = body_json(&ex.body, &c.mask_fields);
        res["body"] = body_json(resp.body(), &c.mask_fields);
    }
    Some(serde_json::json!({"request": req, "response": res}))
}
