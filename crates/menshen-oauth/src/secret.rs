//! Secret values (request URIs, codes, tokens, session ids) and the records
//! kept for them in hot state (TOK-1, TOK-3).
//!
//! Every secret is 32 bytes from the operating system's CSPRNG, base64url
//! (43 characters, 256 bits). It is handed out once and kept only as the hex
//! SM3 of its text, which is the hot-state key: a dump of the hot state
//! holds nothing that can be presented.

use serde::{Deserialize, Serialize};

/// Hot-state namespaces (`docs/authorization.md`, "Where data lives").
pub mod ns {
    /// request_uri hash -> [`super::ParRecord`].
    pub const PAR: &str = "par";
    /// code hash -> [`super::CodeRecord`].
    pub const CODE: &str = "code";
    /// code hash -> JSON list of token hashes issued from it.
    pub const CODE_USED: &str = "code_used";
    /// code hash -> mark: a second redemption was tried.
    pub const CODE_REUSE: &str = "code_reuse";
    /// access token hash -> [`super::TokenRecord`].
    pub const AT: &str = "at";
    /// refresh token hash -> [`super::TokenRecord`].
    pub const RT: &str = "rt";
    /// app + customer -> the live access token's hash (zjrcb).
    pub const LIVE: &str = "live";
    /// session id hash -> session JSON.
    pub const SESS: &str = "sess";
    /// consent id -> use count.
    pub const USES: &str = "uses";
    /// consent id + Shanghai date -> use count of that day.
    pub const DAILY: &str = "daily";
    /// customer + OTP -> used.
    pub const OTP: &str = "otp";
    /// consent id -> JSON list of token hashes (access and refresh).
    pub const CTOK: &str = "ctok";
    /// consent id -> the consent (opt-in cache, 60 s).
    pub const CONSENT: &str = "consent";
}

/// Bytes of entropy of every secret value (256 bits; TOK-1 asks >= 128).
pub const SECRET_BYTES: usize = 32;

/// A new secret value: 32 CSPRNG bytes, base64url, 43 characters.
pub fn new_secret() -> String {
    menshen_crypto::random_token(SECRET_BYTES)
}

/// The hot-state key of a secret: hex SM3 of its text.
pub fn hash(secret: &str) -> String {
    hex::encode(menshen_crypto::sm3(secret.as_bytes()))
}

/// The hot-state key of a pair of stable ids (no secret in it).
pub fn pair_key(a: &str, b: &str) -> String {
    hex::encode(menshen_crypto::sm3_parts(&[
        &(a.len() as u64).to_be_bytes(),
        a.as_bytes(),
        b.as_bytes(),
    ]))
}

/// The `request_uri` prefix of RFC 9126.
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// A pushed authorization request (RFC 9126), kept until used or 60 s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParRecord {
    /// The app that pushed it; only it may use the request_uri.
    pub app_id: String,
    /// The app's name, for the consent page.
    pub app_name: String,
    /// The consent created for it.
    pub consent_id: String,
    /// Registered redirect URI (exact match).
    pub redirect_uri: String,
    /// Opaque value returned to the app.
    pub state: String,
    /// PKCE S256 challenge.
    pub code_challenge: String,
    /// API_IDs.
    pub scopes: Vec<String>,
    /// Whether an A3 scope is among them (two factors needed, USR-1).
    pub needs_two_factor: bool,
    /// Agent mode (USR-5): the agent's login name.
    pub agent_username: Option<String>,
}

/// An authorization code (TOK-3), kept until redeemed or 60 s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeRecord {
    /// Bound app.
    pub app_id: String,
    /// Bound redirect URI.
    pub redirect_uri: String,
    /// PKCE S256 challenge.
    pub code_challenge: String,
    /// The consent.
    pub consent_id: String,
    /// The customer.
    pub user_id: String,
    /// API_IDs.
    pub scopes: Vec<String>,
}

/// An access or refresh token (TOK-1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Bound app.
    pub app_id: String,
    /// Its consent.
    pub consent_id: String,
    /// The customer.
    pub user_id: String,
    /// API_IDs.
    pub scopes: Vec<String>,
    /// RFC 8705 `x5t#S256`-style binding: the client certificate's
    /// fingerprint as the gateway gives it, when the app used mutual TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<String>,
    /// Unix seconds.
    pub exp: i64,
    /// Hash of the code it came from (for revocation on code reuse).
    pub code: String,
    /// Usable for one call (cmbc).
    #[serde(default)]
    pub one_time: bool,
}

/// Encode a record for hot state.
pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // Serializing these plain structs cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

/// Decode a record from hot state (`None` if it does not parse).
pub fn decode<T: for<'de> Deserialize<'de>>(b: &[u8]) -> Option<T> {
    serde_json::from_slice(b).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tok_1_secrets_are_256_bit_base64url_and_stored_hashed() {
        let a = new_secret();
        let b = new_secret();
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        let h = hash(&a);
        assert_eq!(h.len(), 64);
        assert!(!h.contains(&a));
        assert_ne!(pair_key("ab", "c"), pair_key("a", "bc"));
    }
}
