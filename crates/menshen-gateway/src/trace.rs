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
//! Not built: exporting spans (OTLP). The span is a `tracing` span; a
//! subscriber with an OpenTelemetry layer would export it.

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
                }
            }
            None => TraceContext::start(),
        }
    }

    /// A new trace (not sampled: the gateway exports nothing by itself).
    pub fn start() -> TraceContext {
        TraceContext {
            trace_id: nonzero(),
            span_id: nonzero(),
            parent_id: None,
            flags: 0,
            tracestate: None,
        }
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
