//! PKCE (RFC 7636), S256 only: `plain` and a missing challenge are refused
//! at the pushed authorization request.

use base64::Engine;

/// Whether `s` is a valid code verifier or S256 challenge: 43-128 characters
/// of `A-Z a-z 0-9 - . _ ~` (RFC 7636 section 4.1; a challenge is 43).
pub fn well_formed(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The S256 challenge of `verifier`: base64url(SHA-256(verifier)), no padding.
pub fn s256(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(menshen_crypto::sha256(verifier.as_bytes()))
}

/// Whether `verifier` answers `challenge` (constant-time compare).
pub fn verify(verifier: &str, challenge: &str) -> bool {
    well_formed(verifier) && menshen_crypto::ct_eq(s256(verifier).as_bytes(), challenge.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tok_3_rfc7636_appendix_b_vector() {
        let v = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(s256(v), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert!(verify(v, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
        assert!(!verify(v, v));
        assert!(!verify("short", &s256("short")));
        assert!(!well_formed(&"a".repeat(129)));
        assert!(!well_formed(&format!("{}!", "a".repeat(43))));
    }
}
