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
///
/// No member key (algorithm) and no parameter key may appear twice, even with
/// equal values ([`ProtocolError::Duplicate`]): a dictionary parser keeps only
/// the last of `sm3=:A:, sm3=:B:`, so another reader of the same header (or of
/// its field lines joined by `, `) could act on a digest never checked here.
pub fn verify_content_digest(header: &str, body: &[u8]) -> Result<DigestAlg, ProtocolError> {
    let dict =
        Parser::parse_dictionary(header.as_bytes()).map_err(|e| malformed("content-digest", e))?;
    crate::sf::unique_members("content-digest", header)?;
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

    fn dup(key: &str) -> Result<DigestAlg, ProtocolError> {
        Err(ProtocolError::Duplicate {
            header: "content-digest",
            what: "member",
            key: key.into(),
        })
    }

    /// An algorithm twice is refused, even when both values match: sfv
    /// would keep only the last one.
    #[test]
    fn same_algorithm_twice_is_refused() {
        let good = content_digest(DigestAlg::Sm3, b"abc");
        let bad = content_digest(DigestAlg::Sm3, b"abd");
        let sha = content_digest(DigestAlg::Sha256, b"abc");
        assert_eq!(
            verify_content_digest(&format!("{good}, {good}"), b"abc"),
            dup("sm3")
        );
        // The unchecked first value would otherwise vanish.
        assert_eq!(
            verify_content_digest(&format!("{bad}, {good}"), b"abc"),
            dup("sm3")
        );
        assert_eq!(
            verify_content_digest(&format!("{good},{bad}"), b"abc"),
            dup("sm3")
        );
        assert_eq!(
            verify_content_digest(&format!("{good}, {sha}, {good}"), b"abc"),
            dup("sm3")
        );
        assert_eq!(
            verify_content_digest(&format!("{sha}, {sha}"), b"abc"),
            dup("sha-256")
        );
        // A bare key is a member too.
        assert_eq!(
            verify_content_digest(&format!("sm3, {good}"), b"abc"),
            dup("sm3")
        );
        // Unknown algorithms may not repeat either.
        assert_eq!(
            verify_content_digest(&format!("md5=:AAAA:, {good}, md5=:AAAA:"), b"abc"),
            dup("md5")
        );
        // Nor may a member's parameters.
        assert_eq!(
            verify_content_digest(&format!("{good};p=1;p=1"), b"abc"),
            Err(ProtocolError::Duplicate {
                header: "content-digest",
                what: "parameter",
                key: "p".into(),
            })
        );
        // Different algorithms are fine, in any order.
        assert_eq!(
            verify_content_digest(&format!("{sha}, {good}"), b"abc"),
            Ok(DigestAlg::Sha256)
        );
        assert_eq!(
            verify_content_digest(&format!("{good};p=1;q=1, md5=:AAAA:"), b"abc"),
            Ok(DigestAlg::Sm3)
        );
    }

    /// Two `Content-Digest` field lines are one value joined by `, ` (RFC
    /// 9110 section 5.3), as `Components::header` joins them.
    #[test]
    fn same_algorithm_on_two_field_lines_is_refused() {
        let good = content_digest(DigestAlg::Sm3, b"abc");
        let lines = vec![
            ("content-digest".to_string(), good.clone()),
            ("Content-Digest".to_string(), format!(" {good} ")),
        ];
        let joined = crate::signature::combined_header(&lines, "content-digest").unwrap();
        assert_eq!(joined, format!("{good}, {good}"));
        assert_eq!(verify_content_digest(&joined, b"abc"), dup("sm3"));
    }
}
