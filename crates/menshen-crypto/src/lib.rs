//! Cryptography for Menshen: SM3/SHA-256 digests, HMAC-SM3/HMAC-SHA256 request
//! MACs, SM4-GCM sealing of stored secrets under the master key, and CSPRNG
//! identifiers and secrets. Key material is zeroized on drop; MACs are compared
//! in constant time.
#![forbid(unsafe_code)]
// The ban list (clippy.toml): no `unwrap` outside tests (an `expect` names
// its invariant), no printing from a library (tracing instead).
#![deny(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::dbg_macro
)]

pub mod keys;
pub mod master;
pub mod sm2fast;
pub mod sm2pke;
pub mod sm4gcm;
pub mod totp;

pub use keys::{ecdsa_der_to_rs, ecdsa_rs_to_der, PrivateKey, PublicKey, SigAlg, SM2_DEFAULT_ID};
pub use master::{MasterKey, MasterKeyError};
pub use sm2pke::{Sm2DecryptionKey, Sm2EncryptionKey};
pub use sm4gcm::Sm4GcmKey;

use hmac::{Hmac, Mac as _};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sm3::Sm3;
use zeroize::Zeroizing;

/// Errors from this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// Key of unusable length or form.
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    /// Authenticated decryption failed (wrong key, or tampered data).
    #[error("decryption failed")]
    Decrypt,
    /// Encoded data is malformed.
    #[error("malformed data: {0}")]
    Malformed(&'static str),
}

/// Digest algorithms of `Content-Digest` (RFC 9530).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestAlg {
    /// SM3 (GB/T 32905), name `sm3`.
    Sm3,
    /// SHA-256, name `sha-256`.
    Sha256,
}

impl DigestAlg {
    /// The RFC 9530 algorithm key.
    pub fn name(self) -> &'static str {
        match self {
            DigestAlg::Sm3 => "sm3",
            DigestAlg::Sha256 => "sha-256",
        }
    }
    /// Parse the RFC 9530 algorithm key.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "sm3" => Some(DigestAlg::Sm3),
            "sha-256" => Some(DigestAlg::Sha256),
            _ => None,
        }
    }
    /// Hash `data`.
    pub fn digest(self, data: &[u8]) -> [u8; 32] {
        match self {
            DigestAlg::Sm3 => sm3(data),
            DigestAlg::Sha256 => sha256(data),
        }
    }
}

/// SM3 digest.
pub fn sm3(data: &[u8]) -> [u8; 32] {
    Sm3::digest(data).into()
}

/// SM3 digest of the concatenation of `parts` (no copy into one buffer).
pub fn sm3_parts(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sm3::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// SHA-256 digest.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// MAC algorithms for App_ID + App_Secret authentication (INT-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacAlg {
    /// HMAC with SM3, `hmac-sm3`.
    HmacSm3,
    /// HMAC with SHA-256, `hmac-sha256`.
    HmacSha256,
}

impl MacAlg {
    /// The RFC 9421 `alg` name.
    pub fn name(self) -> &'static str {
        match self {
            MacAlg::HmacSm3 => "hmac-sm3",
            MacAlg::HmacSha256 => "hmac-sha256",
        }
    }
    /// Parse an `alg` name.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "hmac-sm3" => Some(MacAlg::HmacSm3),
            "hmac-sha256" => Some(MacAlg::HmacSha256),
            _ => None,
        }
    }
    /// Compute the MAC of `data` under `key`.
    pub fn mac(self, key: &[u8], data: &[u8]) -> [u8; 32] {
        match self {
            MacAlg::HmacSm3 => {
                // HMAC accepts keys of any length; new_from_slice cannot fail.
                let mut m = <Hmac<Sm3>>::new_from_slice(key).expect("HMAC takes any key length");
                m.update(data);
                m.finalize().into_bytes().into()
            }
            MacAlg::HmacSha256 => {
                let mut m = <Hmac<Sha256>>::new_from_slice(key).expect("HMAC takes any key length");
                m.update(data);
                m.finalize().into_bytes().into()
            }
        }
    }
    /// Verify `tag` over `data` in constant time.
    pub fn verify(self, key: &[u8], data: &[u8], tag: &[u8]) -> bool {
        let expected = self.mac(key, data);
        ct_eq(&expected, tag)
    }
}

/// An App_Secret keyed once for HMAC-SM3 (INT-1): the inner and outer pads
/// are hashed when the key is loaded, so each request pays only for its own
/// bytes (two SM3 blocks less per call). The state is equivalent to the key:
/// it is wiped on drop (`sm3` with `zeroize`), and never printed.
#[derive(Clone)]
pub struct HmacSm3Key(hmac_keyed::Hmac<sm3_keyed::Sm3>);

impl HmacSm3Key {
    /// Key `secret` (any length).
    pub fn new(secret: &[u8]) -> Self {
        use hmac_keyed::KeyInit as _;
        // HMAC accepts keys of any length; new_from_slice cannot fail.
        HmacSm3Key(
            <hmac_keyed::Hmac<sm3_keyed::Sm3>>::new_from_slice(secret)
                .expect("HMAC takes any key length"),
        )
    }
    /// The MAC of `data`.
    pub fn mac(&self, data: &[u8]) -> [u8; 32] {
        use hmac_keyed::Mac as _;
        let mut m = self.0.clone();
        m.update(data);
        m.finalize().into_bytes().into()
    }
    /// Verify `tag` over `data` in constant time.
    pub fn verify(&self, data: &[u8], tag: &[u8]) -> bool {
        ct_eq(&self.mac(data), tag)
    }
}

impl std::fmt::Debug for HmacSm3Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HmacSm3Key(..)")
    }
}

/// Constant-time equality of two byte strings (length is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// `n` random bytes from the operating system's CSPRNG.
pub fn random_bytes(n: usize) -> Zeroizing<Vec<u8>> {
    let mut v = Zeroizing::new(vec![0u8; n]);
    rand::rngs::OsRng.fill_bytes(&mut v);
    v
}

/// A random URL-safe token of `n` bytes of entropy (base64url, no padding).
pub fn random_token(n: usize) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes(n).as_slice())
}

/// A new App_Secret: 256 bits from the CSPRNG, base64url (43 characters).
/// Shown once to the application party; the store keeps it only sealed.
pub fn generate_app_secret() -> Zeroizing<String> {
    Zeroizing::new(random_token(32))
}

/// An App_Secret as used for HMAC: the UTF-8 bytes of its printed form.
pub type SecretBytes = Zeroizing<Vec<u8>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sm3_known_answer_abc() {
        // GB/T 32905-2016 example 1.
        assert_eq!(
            hex::encode(sm3(b"abc")),
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
    }

    #[test]
    fn hmac_sha256_rfc4231_case2() {
        let tag = MacAlg::HmacSha256.mac(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(tag),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn int_1_keyed_hmac_sm3_equals_hmac_sm3_for_every_key_length() {
        for len in [0usize, 1, 32, 43, 63, 64, 65, 200] {
            let key: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let k = HmacSm3Key::new(&key);
            for data in [&b""[..], b"x", &[0x5a; 300][..]] {
                let want = MacAlg::HmacSm3.mac(&key, data);
                assert_eq!(k.mac(data), want);
                assert!(k.verify(data, &want));
                let mut bad = want;
                bad[31] ^= 1;
                assert!(!k.verify(data, &bad));
            }
        }
    }

    #[test]
    fn mac_verify_rejects_any_bit_flip() {
        let tag = MacAlg::HmacSm3.mac(b"k", b"data");
        assert!(MacAlg::HmacSm3.verify(b"k", b"data", &tag));
        for i in 0..tag.len() {
            let mut t = tag;
            t[i] ^= 1;
            assert!(!MacAlg::HmacSm3.verify(b"k", b"data", &t));
        }
        assert!(!MacAlg::HmacSm3.verify(b"k", b"data", &tag[..31]));
        assert!(!MacAlg::HmacSm3.verify(b"k2", b"data", &tag));
    }

    #[test]
    fn secrets_are_long_and_distinct() {
        let a = generate_app_secret();
        let b = generate_app_secret();
        assert_eq!(a.len(), 43);
        assert_ne!(*a, *b);
    }
}
