//! The chained line format and checkpoints (AUD-3).
//!
//! Each record is one line of a segment file:
//! `{"seq":N,"prev":"<hex SM3 of the previous line's body>","rec":<record JSON>,"hash":"<hex>"}`
//! where `hash` = SM3 of the line's *body*: the line up to (not including)
//! `,"hash":"` followed by `}`. The first record's `prev` is 64 zeros.
//!
//! A node with a node id (issue 12 item 8: every node of a cluster keeps its
//! own chain) writes it into every line, after `seq`:
//! `{"seq":N,"node":"0a1b2c3d","prev":...}`, so the hash covers it: a record
//! cannot be moved into another node's chain undetected. Lines written before
//! node ids (a single node's older log) have no `node` and still verify.
//!
//! A checkpoint, one JSON line in `checkpoints.jsonl`, seals a run of records
//! with the bank's audit key (SM2, separate from the response-signing key):
//! it signs `menshen-audit-checkpoint-v1|segment|first_seq|last_seq|head|time|key_id`.

use base64::Engine;
use menshen_crypto::{PrivateKey, PublicKey};
use serde::{Deserialize, Serialize};

/// `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Build a line for `rec` (JSON bytes) at `seq` after `prev`; returns the line
/// (with trailing newline) and its hash.
pub fn make_line(seq: u64, prev: &str, rec: &[u8]) -> (Vec<u8>, String) {
    let mut line = Vec::with_capacity(rec.len() + 160);
    let hash = make_line_into(&mut line, seq, prev, rec);
    (line, hash)
}

/// [`make_line`] appending to `out` (no intermediate copies); returns the hash.
pub fn make_line_into(out: &mut Vec<u8>, seq: u64, prev: &str, rec: &[u8]) -> String {
    make_node_line_into(out, seq, None, prev, rec)
}

/// [`make_line_into`] with the writing node's id in the line (covered by
/// the hash); `None` writes the older line without it.
pub fn make_node_line_into(
    out: &mut Vec<u8>,
    seq: u64,
    node: Option<&str>,
    prev: &str,
    rec: &[u8],
) -> String {
    let start = out.len();
    out.extend_from_slice(b"{\"seq\":");
    out.extend_from_slice(itoa_u64(seq, &mut [0u8; 20]));
    if let Some(n) = node {
        out.extend_from_slice(b",\"node\":\"");
        out.extend_from_slice(n.as_bytes());
        out.push(b'"');
    }
    out.extend_from_slice(b",\"prev\":\"");
    out.extend_from_slice(prev.as_bytes());
    out.extend_from_slice(b"\",\"rec\":");
    out.extend_from_slice(rec);
    // The hash covers the body closed by `}`: hashed in two parts, no copy.
    let hash = hex::encode(menshen_crypto::sm3_parts(&[&out[start..], b"}"]));
    out.extend_from_slice(b",\"hash\":\"");
    out.extend_from_slice(hash.as_bytes());
    out.extend_from_slice(b"\"}\n");
    hash
}

/// Decimal digits of `v` in `buf`.
fn itoa_u64(mut v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[i..]
}

/// A line taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedLine<'a> {
    /// Sequence number.
    pub seq: u64,
    /// The writing node's id; `None` in a line written before node ids.
    pub node: Option<&'a str>,
    /// Previous hash.
    pub prev: &'a str,
    /// Stated hash.
    pub hash: &'a str,
    /// Recomputed hash of the body.
    pub computed: String,
    /// The record JSON.
    pub rec: &'a str,
}

/// Parse one line (without newline). `None` if it is not in the format.
pub fn parse_line(line: &str) -> Option<ParsedLine<'_>> {
    let rest = line.strip_prefix("{\"seq\":")?;
    let comma = rest.find(',')?;
    let seq: u64 = rest[..comma].parse().ok()?;
    let mut rest = &rest[comma..];
    let mut node = None;
    if let Some(r) = rest.strip_prefix(",\"node\":\"") {
        let q = r.find('"')?;
        let n = &r[..q];
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return None;
        }
        node = Some(n);
        rest = &r[q + 1..];
    }
    let rest = rest.strip_prefix(",\"prev\":\"")?;
    let prev = rest.get(..64)?;
    let rest = rest.get(64..)?.strip_prefix("\",\"rec\":")?;
    let hpos = line.rfind(",\"hash\":\"")?;
    let hash = line.get(hpos + 9..hpos + 9 + 64)?;
    if line.get(hpos + 9 + 64..)? != "\"}" {
        return None;
    }
    let rec_len = rest.len().checked_sub(line.len() - hpos)?;
    let rec = &rest[..rec_len];
    let mut body = String::with_capacity(hpos + 1);
    body.push_str(&line[..hpos]);
    body.push('}');
    Some(ParsedLine {
        seq,
        node,
        prev,
        hash,
        computed: hex::encode(menshen_crypto::sm3(body.as_bytes())),
        rec,
    })
}

/// A signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Segment file name (without `.zst`).
    pub segment: String,
    /// First sequence number sealed.
    pub first_seq: u64,
    /// Last sequence number sealed.
    pub last_seq: u64,
    /// Hash of the record at `last_seq` (the chain head).
    pub head: String,
    /// When sealed (RFC 3339).
    pub time: String,
    /// Audit key id.
    pub key_id: String,
    /// Algorithm, `sm2-sm3`.
    pub alg: String,
    /// Signature (base64 r||s).
    pub sig: String,
}

impl Checkpoint {
    /// The signed message.
    pub fn message(&self) -> String {
        format!(
            "menshen-audit-checkpoint-v1|{}|{}|{}|{}|{}|{}",
            self.segment, self.first_seq, self.last_seq, self.head, self.time, self.key_id
        )
    }

    /// Seal: fill `sig` with `key`'s signature.
    pub fn sign(&mut self, key: &PrivateKey) {
        self.alg = key.alg().name().to_string();
        self.sig = key
            .sign(self.message().as_bytes())
            .map(|s| base64::engine::general_purpose::STANDARD.encode(s))
            .unwrap_or_default();
    }

    /// Check the signature with `pk`.
    pub fn verify(&self, pk: &PublicKey) -> bool {
        let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(&self.sig) else {
            return false;
        };
        self.alg == pk.alg().name() && pk.verify(self.message().as_bytes(), &sig)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aud_3_line_round_trip_and_tamper() {
        let (line, hash) = make_line(7, GENESIS, br#"{"kind":"access","txn_id":"T1"}"#);
        let text = std::str::from_utf8(&line).unwrap().trim_end();
        let p = parse_line(text).unwrap();
        assert_eq!((p.seq, p.prev, p.hash), (7, GENESIS, hash.as_str()));
        assert_eq!(p.computed, hash);
        assert_eq!(p.rec, r#"{"kind":"access","txn_id":"T1"}"#);
        let tampered = text.replace("T1", "T2");
        let p = parse_line(&tampered).unwrap();
        assert_ne!(p.computed, p.hash);
        assert!(parse_line("{\"seq\":1}").is_none());
        assert!(parse_line(&text[..text.len() - 3]).is_none());
        assert_eq!(p.node, None);
    }

    /// Issue 12 item 8: the node id is in the line and covered by the hash.
    #[test]
    fn aud_3_node_id_in_the_line_is_covered_by_the_hash() {
        let mut line = Vec::new();
        let hash = make_node_line_into(
            &mut line,
            3,
            Some("0a1b2c3d"),
            GENESIS,
            br#"{"kind":"admin"}"#,
        );
        let text = std::str::from_utf8(&line).unwrap().trim_end();
        assert!(
            text.starts_with(r#"{"seq":3,"node":"0a1b2c3d","prev":""#),
            "{text}"
        );
        let p = parse_line(text).unwrap();
        assert_eq!(
            (p.seq, p.node, p.computed.as_str()),
            (3, Some("0a1b2c3d"), hash.as_str())
        );
        assert_eq!(p.rec, r#"{"kind":"admin"}"#);
        let moved = text.replace("0a1b2c3d", "0a1b2c3e");
        let p = parse_line(&moved).unwrap();
        assert_ne!(p.computed, p.hash);
        assert!(parse_line(&text.replace("0a1b2c3d", "a\\\"b")).is_none());
    }
}
