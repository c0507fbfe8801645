//! RFC 9530 `Content-Digest` with `sha-256` and `sm3`.

use base64::Engine;
use menshen_crypto::{ct_eq, DigestAlg};
use sfv::{BareItem, ListEntry, Parser};

use crate::{malformed, ProtocolError};

/// The `Content-Digest` header value for `body`, e.g. `sm3=:base64:`.
pub fn content_digest(alg: DigestAlg, body: &[u8]) -> String {
    format!(
        "{}=:{}:",
        alg.name(),
        base64::engine::general_purpose::STANDARD.encode(alg.digest(body))
    )
}

/// Check `header` against `body`: at least one supported algorithm must be
/// present, and every supported one present must match. Returns the first
/// algorithm checked.
pub fn verify_content_digest(header: &str, body: &[u8]) -> Result<DigestAlg, ProtocolError> {
    let dict =
        Parser::parse_dictionary(header.as_bytes()).map_err(|e| malformed("content-digest", e))?;
    let mut first = None;
    for (name, entry) in &dict {
        let Some(alg) = DigestAlg::from_name(name) else {
            continue;
        };
        let ListEntry::Item(item) = entry else {
            return Err(malformed("content-digest", "value must be a byte sequence"));
        };
        let BareItem::ByteSeq(got) = &item.bare_item else {
            return Err(malformed("content-digest", "value must be a byte sequence"));
        };
        if !ct_eq(&alg.digest(body), got) {
            return Err(ProtocolError::DigestMismatch);
        }
        first.get_or_insert(alg);
    }
    first.ok_or_else(|| {
        malformed(
            "content-digest",
            "no supported algorithm (use sm3 or sha-256)",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc9530_sha256_example() {
        // RFC 9530 section 2 example body.
        let body = br#"{"hello": "world"}"#;
        assert_eq!(
            content_digest(DigestAlg::Sha256, body),
            "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
        );
    }

    #[test]
    fn verify_detects_change_and_garbage() {
        let h = content_digest(DigestAlg::Sm3, b"abc");
        assert_eq!(verify_content_digest(&h, b"abc"), Ok(DigestAlg::Sm3));
        assert_eq!(
            verify_content_digest(&h, b"abd"),
            Err(ProtocolError::DigestMismatch)
        );
        assert!(verify_content_digest("md5=:AAAA:", b"abc").is_err());
        assert!(verify_content_digest("sm3=1", b"abc").is_err());
        assert!(verify_content_digest("((", b"abc").is_err());
    }
}
