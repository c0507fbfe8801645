//! W3C Trace Context (issue 14, item 7): every call carries a trace.
//!
//! A client's `traceparent` is accepted only when it is exactly one header
//! and well-formed (<https://www.w3.org/TR/trace-context/#traceparent-header>:
//! version `00` with exactly four fields, or a later version read by its
//! first four; lowercase hex; trace id and parent id not all zeros; version
//! `ff` refused). Anything else is replaced by a trace the gateway starts,
//! never passed on. Either way the gateway is a hop of its own: the upstream
//! gets the same trace id with the gateway's span id as its parent. The
//! trace id goes into the access record (`trace_id`); the transaction serial
//! number is an attribute of the call's span (`menshen.call`, `txn_id`).
//!
//! `tracestate` is passed on only beside an accepted `traceparent`, and only
//! when it is one header of at most 512 printable ASCII bytes.
//!
//! Export (optional, off by default): with a [`SpanSink`] installed (the
//! node's OpenTelemetry OTLP exporter, `[tracing.otlp]`), the gateway
//! decides at the start of each call whether its trace is exported
//! ([`SpanSink::sampled`], on the trace id alone: a client's sampled flag
//! neither forces nor suppresses export), sets the upstream's sampled flag
//! to that decision, and at the end hands the sink one [`CallSpan`]: the
//! gateway's span (the id the upstream saw as its parent), child of the
//! client's span when its `traceparent` was accepted. Without a sink
//! nothing of this runs: one `Option` test per call.

use std::fmt;

use http::{HeaderMap, HeaderName, HeaderValue};

/// The `traceparent` header.
pub const TRACEPARENT: &str = "traceparent";
/// The `tracestate` header.
pub const TRACESTATE: &str = "tracestate";
/// Longest `tracestate` passed on (the W3C limit is 32 members; 512 bytes is
/// what a vendor may count on).
pub const TRACESTATE_MAX: usize = 512;

/// The trace of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace id (the client's, or started here).
    pub trace_id: [u8; 16],
    /// The gateway's own span id, the upstream's parent.
    pub span_id: [u8; 8],
    /// The client's span id, when its `traceparent` was accepted.
    pub parent_id: Option<[u8; 8]>,
    /// Trace flags (bit 0: sampled), the client's when accepted.
    pub flags: u8,
    /// The client's `tracestate`, when passed on.
    pub tracestate: Option<HeaderValue>,
    /// Whether this call's span is exported (a [`SpanSink`] sampled it).
    pub export: bool,
}

/// One call as an exported span (issue 14 item 7): identifiers, the
/// transaction serial number and the outcome; never a secret, a customer
/// id, a client address or any body content. The URL path is not in it
/// either (it may carry an account number): the API's route is.
#[derive(Debug, Clone, PartialEq)]
pub struct CallSpan {
    /// The trace id.
    pub trace_id: [u8; 16],
    /// The gateway's span id (the upstream's parent).
    pub span_id: [u8; 8],
    /// The client's span, when its `traceparent` was accepted.
    pub parent_id: Option<[u8; 8]>,
    /// When the request arrived.
    pub start: std::time::SystemTime,
    /// When its answer was ready (after its access record).
    pub end: std::time::SystemTime,
    /// The transaction serial number (`X-Menshen-Txn-Id`).
    pub txn_id: String,
    /// This node's id.
    pub node_id: String,
    /// The App_ID (verified, or named by the request).
    pub app_id: Option<String>,
    /// Whether the App_ID was verified.
    pub app_verified: bool,
    /// The API_ID.
    pub api_id: Option<String>,
    /// The U_API_ID.
    pub u_api_id: Option<String>,
    /// The API's name.
    pub api_name: Option<String>,
    /// The API's route (method and path template from the catalog).
    pub route: Option<String>,
    /// The security level (A1, A2, A3).
    pub level: Option<&'static str>,
    /// The request method.
    pub method: String,
    /// The HTTP status answered.
    pub status: u16,
    /// The error code answered, if any (docs/protocol.md §10).
    pub error_code: Option<&'static str>,
    /// Time spent waiting for the upstream, microseconds, if called.
    pub upstream_us: Option<u64>,
}

/// Where finished calls' spans go (the node's OTLP exporter). Both
/// methods run on the call path: [`SpanSink::sampled`] must be a
/// computation, [`SpanSink::finish`] a non-blocking hand-over (a full
/// queue drops the span, never waits).
pub trait SpanSink: Send + Sync + fmt::Debug + 'static {
    /// Whether the trace is exported.
    fn sampled(&self, trace_id: &[u8; 16]) -> bool;
    /// A finished call whose trace was sampled.
    fn finish(&self, span: CallSpan);
}

/// The trace-id ratio decision of OpenTelemetry's `TraceIdRatioBased`
/// sampler: the trace id's last 8 bytes (big-endian, shifted right by one)
/// below `ratio * 2^63`. The same trace gets the same decision on every
/// node and in every service using the standard sampler.
pub fn ratio_sampled(trace_id: &[u8; 16], ratio: f64) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    if ratio <= 0.0 || ratio.is_nan() {
        return false;
    }
    let mut low = [0u8; 8];
    low.copy_from_slice(&trace_id[8..]);
    let x = u64::from_be_bytes(low) >> 1;
    x < (ratio * (1u64 << 63) as f64) as u64
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

fn hex_into(s: &[u8], out: &mut [u8]) -> Option<()> {
    if s.len() != out.len() * 2 {
        return None;
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = (hex_val(s[2 * i])? << 4) | hex_val(s[2 * i + 1])?;
    }
    Some(())
}

/// The trace id, parent id and flags of a `traceparent` value, if valid.
pub fn parse_traceparent(v: &str) -> Option<([u8; 16], [u8; 8], u8)> {
    let b = v.as_bytes();
    // version "-" trace-id "-" parent-id "-" flags: 2+1+32+1+16+1+2 = 55.
    if b.len() < 55 {
        return None;
    }
    let mut version = [0u8; 1];
    hex_into(&b[0..2], &mut version)?;
    if version[0] == 0xff {
        return None;
    }
    // Version 00 has exactly these fields; a later version may append more
    // after a '-'.
    if (version[0] == 0 && b.len() != 55) || (b.len() > 55 && b[55] != b'-') {
        return None;
    }
    if b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return None;
    }
    let mut trace = [0u8; 16];
    let mut parent = [0u8; 8];
    let mut flags = [0u8; 1];
    hex_into(&b[3..35], &mut trace)?;
    hex_into(&b[36..52], &mut parent)?;
    hex_into(&b[53..55], &mut flags)?;
    if trace == [0; 16] || parent == [0; 8] {
        return None;
    }
    Some((trace, parent, flags[0]))
}

fn nonzero<const N: usize>() -> [u8; N] {
    use rand::RngCore;
    let mut v = [0u8; N];
    while v == [0; N] {
        rand::thread_rng().fill_bytes(&mut v);
    }
    v
}

impl TraceContext {
    /// The trace of a request with these headers: the client's, if its one
    /// `traceparent` is valid, else a new one (never the malformed value).
    pub fn from_headers(h: &HeaderMap) -> TraceContext {
        let mut all = h.get_all(TRACEPARENT).iter();
        let accepted = match (all.next(), all.next()) {
            (Some(v), None) => v.to_str().ok().and_then(parse_traceparent),
            _ => None,
        };
        match accepted {
            Some((trace_id, parent, flags)) => {
                let mut states = h.get_all(TRACESTATE).iter();
                let tracestate = match (states.next(), states.next()) {
                    (Some(v), None)
                        if v.len() <= TRACESTATE_MAX
                            && v.as_bytes().iter().all(|c| (0x20..0x7f).contains(c)) =>
                    {
                        Some(v.clone())
                    }
                    _ => None,
                };
                TraceContext {
                    trace_id,
                    span_id: nonzero(),
                    parent_id: Some(parent),
                    flags,
                    tracestate,
                    export: false,
                }
            }
            None => TraceContext::start(),
        }
    }

    /// A new trace (not sampled unless a [`SpanSink`] samples it).
    pub fn start() -> TraceContext {
        TraceContext {
            trace_id: nonzero(),
            span_id: nonzero(),
            parent_id: None,
            flags: 0,
            tracestate: None,
            export: false,
        }
    }

    /// Ask `sink` whether this trace is exported, and make the upstream's
    /// sampled flag (bit 0 of the flags) say so.
    pub fn sample(&mut self, sink: &dyn SpanSink) {
        self.export = sink.sampled(&self.trace_id);
        self.flags = (self.flags & !1) | u8::from(self.export);
    }

    /// The trace id, 32 lowercase hex characters.
    pub fn trace_id_hex(&self) -> String {
        let mut b = [0u8; 32];
        hex_to(&self.trace_id, &mut b);
        b.iter().map(|&c| char::from(c)).collect()
    }

    /// Whether the client's `traceparent` was accepted.
    pub fn accepted(&self) -> bool {
        self.parent_id.is_some()
    }

    /// The `traceparent` for the upstream: this trace, the gateway's span
    /// as parent.
    pub fn upstream_traceparent(&self) -> HeaderValue {
        // 2+1+32+1+16+1+2 = 55 bytes, written in place (per call: no
        // formatting machinery, one allocation for the header value).
        let mut b = [b'-'; 55];
        b[..2].copy_from_slice(b"00");
        hex_to(&self.trace_id, &mut b[3..35]);
        hex_to(&self.span_id, &mut b[36..52]);
        hex_to(&[self.flags], &mut b[53..55]);
        // Built from hex digits and dashes only.
        HeaderValue::from_bytes(&b).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// Set `traceparent` (and `tracestate`, when passed on) on the headers
    /// sent upstream, replacing whatever the client's headers left there.
    pub fn set_upstream_headers(&self, h: &mut HeaderMap) {
        // Names parsed at compile time, not per insert.
        const PARENT: HeaderName = HeaderName::from_static(TRACEPARENT);
        const STATE: HeaderName = HeaderName::from_static(TRACESTATE);
        h.insert(PARENT, self.upstream_traceparent());
        match &self.tracestate {
            Some(v) => {
                h.insert(STATE, v.clone());
            }
            None => {
                h.remove(STATE);
            }
        }
    }
}

impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.trace_id {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Hand a finished call's span to the node's [`SpanSink`], if its trace
/// was sampled (nothing when no sink is installed).
pub(crate) fn export(
    ex: &crate::exchange::Exchange,
    status: u16,
    err: Option<&crate::error::GatewayError>,
) {
    if !ex.trace.export {
        return;
    }
    let Some(sink) = &ex.state.spans else { return };
    let api = ex.api.as_ref().map(|a| &a.api);
    sink.finish(CallSpan {
        trace_id: ex.trace.trace_id,
        span_id: ex.trace.span_id,
        parent_id: ex.trace.parent_id,
        start: ex.started_at,
        end: std::time::SystemTime::now(),
        txn_id: ex.txn_id.clone(),
        node_id: ex.state.txn.node().to_string(),
        app_id: ex
            .app
            .as_ref()
            .map(|a| a.app.app_id.clone())
            .or_else(|| ex.claimed_app_id.clone()),
        app_verified: ex.app.is_some(),
        api_id: api.map(|a| a.api_id.clone()),
        u_api_id: api.map(|a| a.u_api_id.clone()),
        api_name: api.map(|a| a.name.clone()),
        route: api.map(|a| format!("{} {}", a.method, a.path)),
        level: api.map(|a| a.level.as_str()),
        method: ex.parts.method.to_string(),
        status,
        error_code: err.map(|e| e.code().as_str()),
        upstream_us: ex.upstream_us,
    });
}

/// Lowercase hex of `b` into `out` (twice as long).
fn hex_to(b: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (x, o) in b.iter().zip(out.chunks_exact_mut(2)) {
        o[0] = DIGITS[usize::from(x >> 4)];
        o[1] = DIGITS[usize::from(x & 0x0f)];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_is_continued_with_the_gateways_span() {
        let mut h = HeaderMap::new();
        h.insert(TRACEPARENT, HeaderValue::from_static(GOOD));
        h.insert(TRACESTATE, HeaderValue::from_static("congo=t61rcWkgMzE"));
        let t = TraceContext::from_headers(&h);
        assert!(t.accepted());
        assert_eq!(t.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let up = t.upstream_traceparent();
        let up = up.to_str().unwrap();
        assert!(up.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(up.ends_with("-01"));
        assert!(
            !up.contains("00f067aa0ba902b7"),
            "the gateway is a hop of its own"
        );
        assert!(parse_traceparent(up).is_some());
        let mut out = HeaderMap::new();
        t.set_upstream_headers(&mut out);
        assert_eq!(out.get(TRACESTATE).unwrap(), "congo=t61rcWkgMzE");
    }

    #[derive(Debug)]
    struct Ratio(f64);
    impl SpanSink for Ratio {
        fn sampled(&self, t: &[u8; 16]) -> bool {
            ratio_sampled(t, self.0)
        }
        fn finish(&self, _: CallSpan) {}
    }

    #[test]
    fn export_decision_sets_the_upstream_sampled_flag() {
        let mut h = HeaderMap::new();
        h.insert(
            TRACEPARENT,
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"),
        );
        let mut t = TraceContext::from_headers(&h);
        assert!(!t.export);
        t.sample(&Ratio(1.0));
        assert!(t.export);
        assert!(t.upstream_traceparent().to_str().unwrap().ends_with("-01"));
        let mut t = TraceContext::from_headers(&h);
        t.flags = 1;
        t.sample(&Ratio(0.0));
        assert!(!t.export);
        assert!(t.upstream_traceparent().to_str().unwrap().ends_with("-00"));
        // About the ratio asked for, over many new traces.
        let n = (0..10_000)
            .filter(|_| ratio_sampled(&TraceContext::start().trace_id, 0.25))
            .count();
        assert!((2_000..3_000).contains(&n), "{n}");
    }

    #[test]
    fn malformed_traceparents_are_replaced() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
            let mut h = HeaderMap::new();
            h.insert(TRACEPARENT, HeaderValue::from_str(bad).unwrap());
            h.insert(TRACESTATE, HeaderValue::from_static("a=b"));
            let t = TraceContext::from_headers(&h);
            assert!(!t.accepted());
            assert_ne!(t.trace_id, [0; 16]);
            assert!(t.tracestate.is_none());
        }
        // A later version may carry more fields.
        assert!(
            parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-abc")
                .is_some()
        );
        // Two traceparent headers: neither is trusted.
        let mut h = HeaderMap::new();
        h.append(TRACEPARENT, HeaderValue::from_static(GOOD));
        h.append(TRACEPARENT, HeaderValue::from_static(GOOD));
        assert!(!TraceContext::from_headers(&h).accepted());
    }
}
