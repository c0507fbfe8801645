//! Access records (AUD-1): built here, written through [`finish`] exactly
//! once per request, whatever happens to it:
//! - a request that runs its course (answered or refused) is recorded by
//!   `pipeline::handle`;
//! - a request dropped before that (the runtime stopping under it) is
//!   recorded by [`interrupted`], from `Exchange`'s `Drop`, with the outcome
//!   `unknown` when it had been forwarded and `failure` otherwise;
//! - failures below HTTP (TLS handshakes, parse errors, header timeouts,
//!   connections over a cap) get one record per connection through
//!   [`ConnRecorder`], rate-limited per client IP with a count of what was
//!   left out.
// std Mutex (clippy.toml ban list): the connection-record limiter is taken
// only on connection-level failures, never on a request's path, for a
// few map operations; nothing awaits under it.
#![allow(clippy::disallowed_types)]

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::Response;
use menshen_audit::{mask_text, AccessRecord, AuditLog, Outcome};

use crate::exchange::Exchange;
use crate::GatewayError;

/// Stage name (response phase).
pub const NAME: &str = "record";

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC) of `t`, written directly: this runs for
/// every request, and a general formatter costs several times more.
pub(crate) fn rfc3339_ms(t: SystemTime) -> String {
    let ms = unix_ms(t);
    let (secs, milli) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut out = String::with_capacity(24);
    use std::fmt::Write;
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{milli:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    );
    out
}

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Most bytes of the path kept in the record of a request whose signature
/// did not verify (AUD-1: bounded audit volume; an attacker's 60 KB path
/// must not cost 60 KB of log per request). Longer paths are cut at a
/// character boundary and marked with their full length.
pub const UNVERIFIED_PATH_MAX: usize = 1024;
/// Most bytes of the refusal reason kept for such a request (a reason may
/// quote what the client sent).
pub const UNVERIFIED_REASON_MAX: usize = 512;
/// Most bytes of each header value kept for such a request (message parts).
pub const UNVERIFIED_HEADER_MAX: usize = 256;
/// Most headers kept for such a request (message parts).
pub const UNVERIFIED_HEADERS_MAX: usize = 32;

/// `text` as the record keeps it: whole when the app was authenticated,
/// else cut to `max` bytes with the full length noted.
fn kept(ex: &Exchange, text: std::borrow::Cow<'_, str>, max: usize) -> String {
    if ex.app.is_some() {
        return text.into_owned();
    }
    truncated(&text, max)
}

/// `s` cut to at most `max` bytes at a character boundary, marked
/// `…[truncated, N bytes]` when cut.
pub(crate) fn truncated(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[truncated, {} bytes]", &s[..end], s.len())
}

/// The record of `ex`, answered `status` (`resp` when there is a response to
/// retain parts of).
fn build(
    ex: &Exchange,
    status: u16,
    resp: Option<&Response<Bytes>>,
    err: Option<&GatewayError>,
) -> AccessRecord {
    let api = ex.api.as_ref().map(|a| &a.api);
    let (result, code, message, reason) = match err {
        None => (
            if status < 400 {
                Outcome::Success
            } else {
                Outcome::Failure
            },
            None,
            match (&ex.upstream_note, ex.forwarded) {
                // TRF-2: a fallback answer is the gateway's, not the upstream's.
                (Some(_), false) => format!("fallback {status} (degraded)"),
                _ => format!("upstream {status}"),
            },
            ex.auth_note
                .as_deref()
                .map(|n| kept(ex, mask_text(n), UNVERIFIED_REASON_MAX)),
        ),
        Some(e) => (
            e.outcome(),
            Some(e.code().as_str().to_string()),
            e.code().message().to_string(),
            Some(kept(ex, mask_text(e.reason()), UNVERIFIED_REASON_MAX)),
        ),
    };
    // TRF-1: an `alert` rule the call exceeded is named in its record,
    // whatever happened to the call afterwards.
    let reason = match (reason, ex.limit_note.as_deref()) {
        (Some(r), Some(n)) => Some(format!("{r}; {n}")),
        (None, Some(n)) => Some(n.to_string()),
        (r, None) => r,
    };
    // ATK-1: a finding let through in `detect` mode is named in the record.
    let reason = match (reason, ex.screen_note.as_deref()) {
        (Some(r), Some(n)) => Some(format!("{r}; {n}")),
        (None, Some(n)) => Some(n.to_string()),
        (r, None) => r,
    };
    // TRF-2: a retry on another target, or the degradation, is named too.
    let reason = match (reason, ex.upstream_note.as_deref()) {
        (Some(r), Some(n)) => Some(format!("{r}; {n}")),
        (None, Some(n)) => Some(n.to_string()),
        (r, None) => r,
    };
    let sig = ex.signature.as_ref().map(|s| &s.params);
    AccessRecord {
        kind: "access".into(),
        txn_id: ex.txn_id.clone(),
        node_id: ex.state.txn.node().to_string(),
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
        path: kept(ex, mask_text(ex.parts.uri.path()), UNVERIFIED_PATH_MAX),
        status,
        result,
        code,
        message,
        reason,
        alg: sig.map(|s| s.alg.clone()),
        nonce: sig.filter(|_| ex.nonce_recorded).map(|s| s.nonce.clone()),
        sig_created: sig.map(|s| s.created),
        client_cert: ex.client_cert.as_deref().map(str::to_string),
        user_id: ex.consent.as_ref().map(|g| g.user_id.clone()),
        consent_id: ex
            .consent
            .as_ref()
            .map(|g| g.consent_id.clone())
            .filter(|c| !c.is_empty()),
        trace_id: Some(ex.trace.trace_id_hex()),
        risk: ex.risk.clone(),
        message_parts: match (ex.api.as_ref(), resp) {
            (Some(a), Some(r)) => message_parts(ex, r, &a.api.controls),
            _ => None,
        },
    }
}

/// Request phase, just before forwarding: refuse (retry-safe, nothing
/// forwarded) when the record must be durable and the log is failing.
pub fn ready(ex: &Exchange, durable: bool) -> Result<(), GatewayError> {
    if durable && !ex.state.audit.is_healthy() {
        return Err(GatewayError::AuditUnavailable(
            "the audit log's last write failed; durable calls are not forwarded".into(),
        ));
    }
    Ok(())
}

/// Write the request's access record (AUD-1). Called once per request.
/// Returns whether the record was accepted (and, when `durable`, synced).
pub async fn finish(
    ex: &mut Exchange,
    resp: &Response<Bytes>,
    err: Option<&GatewayError>,
    durable: bool,
) -> bool {
    let rec = build(ex, resp.status().as_u16(), Some(resp), err);
    crate::metrics::observe(ex, resp.status().as_u16(), err);
    ex.recorded = true;
    let r = ex
        .state
        .audit
        .record_access(rec, unix_ms(ex.started_at), durable)
        .await;
    match r {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(txn_id = %ex.txn_id, error = %e, "access record not written");
            false
        }
    }
}

/// The record of a request dropped before [`finish`] (AUD-1): queued
/// without waiting, since this runs in `Drop`.
pub(crate) fn interrupted(ex: &mut Exchange) {
    ex.recorded = true;
    let err = if ex.forwarded {
        GatewayError::UpstreamTimeout("request interrupted after it was forwarded".into())
    } else {
        GatewayError::RequestTimeout("request interrupted before it was forwarded".into())
    };
    let mut rec = build(ex, 499, None, Some(&err));
    crate::metrics::observe(ex, 499, Some(&err));
    rec.code = Some("INTERRUPTED".into());
    if !ex
        .state
        .audit
        .try_record_access(rec, unix_ms(ex.started_at))
    {
        tracing::error!(txn_id = %ex.txn_id, "record of an interrupted request could not be queued");
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

/// The headers of a message, masked; for a request whose signature did not
/// verify (`bounded`), at most [`UNVERIFIED_HEADERS_MAX`] of them, each value
/// cut to [`UNVERIFIED_HEADER_MAX`] bytes.
fn headers_json(h: &http::HeaderMap, bounded: bool) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    let mut left_out = 0usize;
    for (k, v) in h {
        if UNLOGGED.contains(&k.as_str()) {
            continue;
        }
        if bounded && m.len() >= UNVERIFIED_HEADERS_MAX {
            left_out += 1;
            continue;
        }
        let mut v =
            menshen_audit::mask::mask_header_value(k.as_str(), v.to_str().unwrap_or("<binary>"));
        if bounded && v.len() > UNVERIFIED_HEADER_MAX {
            v = truncated(&v, UNVERIFIED_HEADER_MAX);
        }
        m.insert(k.as_str().to_string(), serde_json::Value::String(v));
    }
    if left_out > 0 {
        m.insert(
            "…".into(),
            serde_json::Value::String(format!("{left_out} more headers not kept")),
        );
    }
    serde_json::Value::Object(m)
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
    let bounded = ex.app.is_none();
    let mut req = serde_json::json!({"headers": headers_json(&ex.parts.headers, bounded)});
    let mut res = serde_json::json!({"headers": headers_json(resp.headers(), false)});
    if bodies {
        let ct = |h: &http::HeaderMap| {
            h.get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        req["body"] =
            menshen_audit::mask_body(&ex.body, ct(&ex.parts.headers).as_deref(), &c.mask_fields);
        // The opened fields never reach the log (CONF-1).
        crate::stages::decrypt::redact(&mut req["body"], &c.envelope.request);
        res["body"] =
            menshen_audit::mask_body(resp.body(), ct(resp.headers()).as_deref(), &c.mask_fields);
    }
    Some(serde_json::json!({"request": req, "response": res}))
}

/// Most addresses tracked by the connection-record limiter; past it, entries
/// of finished windows are dropped, then every further address shares one
/// bucket.
const MAX_TRACKED_IPS: usize = 10_000;

struct Bucket {
    window_start: Instant,
    written: u32,
    suppressed: u64,
}

/// Connection-level records (AUD-1 below HTTP), at most `per_minute` per
/// client (IPv4 address or IPv6 /64) per minute; the number left out is written with the next
/// record of that IP.
pub struct ConnRecorder {
    per_minute: u32,
    node_id: String,
    buckets: Mutex<Buckets>,
}

#[derive(Default)]
struct Buckets {
    map: HashMap<IpAddr, Bucket>,
    last_prune: Option<Instant>,
}

/// Everything said about one connection-level failure.
pub struct ConnEvent<'a> {
    /// TCP peer.
    pub peer: SocketAddr,
    /// Client IP (the peer, canonical form).
    pub client_ip: IpAddr,
    /// Stable code (`TLS_HANDSHAKE_FAILED`, `HTTP_PARSE_ERROR`, ...).
    pub code: &'static str,
    /// Detail for auditors.
    pub reason: String,
    /// The transaction serial number to use.
    pub txn_id: String,
    /// When the connection started.
    pub started_at: SystemTime,
    /// Monotonic start.
    pub started: Instant,
    /// Client certificate fingerprint, if one was presented.
    pub client_cert: Option<&'a str>,
}

impl ConnRecorder {
    /// A limiter writing for node `node_id`.
    pub fn new(per_minute: u32, node_id: String) -> Self {
        ConnRecorder {
            per_minute,
            node_id,
            buckets: Mutex::new(Buckets::default()),
        }
    }

    /// Whether this event may be written now, and how many of this IP's
    /// events were left out since its last written one.
    fn admit(&self, ip: IpAddr) -> Option<u64> {
        let ip = crate::conn::client_key(ip);
        let mut g = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let minute = std::time::Duration::from_secs(60);
        let shared = IpAddr::from([0u8; 16]);
        // Full: at most every 10 s, forget the addresses of past minutes;
        // what they had left out moves to the shared bucket (still counted).
        if g.map.len() >= MAX_TRACKED_IPS
            && !g.map.contains_key(&ip)
            && g.last_prune
                .is_none_or(|t| now.duration_since(t) >= minute / 6)
        {
            g.last_prune = Some(now);
            let mut carried = 0;
            g.map.retain(|k, v| {
                let keep = *k == shared || now.duration_since(v.window_start) < minute;
                if !keep {
                    carried += v.suppressed;
                }
                keep
            });
            if carried > 0 {
                g.map
                    .entry(shared)
                    .or_insert(Bucket {
                        window_start: now,
                        written: 0,
                        suppressed: 0,
                    })
                    .suppressed += carried;
            }
        }
        let key = if g.map.len() >= MAX_TRACKED_IPS && !g.map.contains_key(&ip) {
            shared
        } else {
            ip
        };
        let e = g.map.entry(key).or_insert(Bucket {
            window_start: now,
            written: 0,
            suppressed: 0,
        });
        if now.duration_since(e.window_start) >= minute {
            e.window_start = now;
            e.written = 0;
        }
        if e.written >= self.per_minute {
            e.suppressed += 1;
            return None;
        }
        e.written += 1;
        Some(std::mem::take(&mut e.suppressed))
    }

    /// Record one connection-level failure, unless its IP is over the rate.
    pub fn record(&self, audit: &AuditLog, ev: ConnEvent<'_>) {
        let Some(suppressed) = self.admit(ev.client_ip) else {
            return;
        };
        let mut reason = mask_text(&ev.reason).into_owned();
        if suppressed > 0 {
            reason.push_str(&format!(
                "; {suppressed} earlier connection-level records from this IP were left out (rate limit)"
            ));
        }
        let rec = AccessRecord {
            kind: "connection".into(),
            txn_id: ev.txn_id,
            node_id: self.node_id.clone(),
            timestamp: rfc3339_ms(ev.started_at),
            duration_us: ev.started.elapsed().as_micros() as u64,
            app_id: None,
            app_verified: false,
            api_id: None,
            u_api_id: None,
            level: None,
            client_ip: ev.client_ip.to_string(),
            peer: ev.peer.to_string(),
            method: "-".into(),
            path: "-".into(),
            status: 0,
            result: Outcome::Failure,
            code: Some(ev.code.to_string()),
            message: "connection closed".into(),
            reason: Some(reason),
            alg: None,
            nonce: None,
            sig_created: None,
            client_cert: ev.client_cert.map(str::to_string),
            user_id: None,
            consent_id: None,
            trace_id: None,
            message_parts: None,
            risk: None,
        };
        if !audit.try_record_access(rec, unix_ms(ev.started_at)) {
            tracing::warn!(code = ev.code, "connection record could not be queued");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_match_a_general_rfc3339_formatter() {
        let f = time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        let mut ms: u64 = 0;
        for i in 0..20_000u64 {
            // Spread over 1970..2300, leap days and year ends included.
            ms = ms
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407 + i);
            let v = ms % 10_413_792_000_000;
            let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(v);
            let want = time::OffsetDateTime::from(t).format(&f).unwrap();
            assert_eq!(rfc3339_ms(t), want, "{v}");
        }
        for v in [0u64, 951_782_400_000, 4_107_542_399_999, 1_709_164_800_000] {
            let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(v);
            let want = time::OffsetDateTime::from(t).format(&f).unwrap();
            assert_eq!(rfc3339_ms(t), want);
        }
    }

    #[test]
    fn aud_1_connection_records_are_rate_limited_per_ip_with_a_count() {
        let r = ConnRecorder::new(3, "00000000".into());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(r.admit(a), Some(0));
        assert_eq!(r.admit(a), Some(0));
        assert_eq!(r.admit(a), Some(0));
        assert_eq!(r.admit(a), None);
        assert_eq!(r.admit(a), None);
        // Another IP has its own allowance.
        assert_eq!(r.admit(b), Some(0));
        // A new window reports what was left out.
        r.buckets
            .lock()
            .unwrap()
            .map
            .get_mut(&a)
            .unwrap()
            .window_start -= std::time::Duration::from_secs(61);
        assert_eq!(r.admit(a), Some(2));
        assert_eq!(r.admit(a), Some(0));
    }
}
