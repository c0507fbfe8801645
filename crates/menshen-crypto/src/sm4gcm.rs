//! SM4-GCM (SM4, GB/T 32907, in the Galois/Counter Mode of NIST SP 800-38D,
//! as RFC 8998 uses it): a 128-bit key, a 96-bit IV, a 128-bit tag appended
//! to the ciphertext. The key and the cipher's round keys and GHASH state
//! are wiped on drop (the `sm4`, `aes-gcm` and `ghash` `zeroize` features).

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::AesGcm;
use zeroize::Zeroizing;

use crate::CryptoError;

type Sm4GcmCipher = AesGcm<sm4::Sm4, U12>;

/// Key length in bytes.
pub const KEY_LEN: usize = 16;
/// IV length in bytes.
pub const IV_LEN: usize = 12;
/// Tag length in bytes.
pub const TAG_LEN: usize = 16;

/// A one-time SM4 session key (CONF-2). Wiped on drop; never printed.
pub struct Sm4GcmKey {
    raw: Zeroizing<[u8; KEY_LEN]>,
    cipher: Sm4GcmCipher,
}

impl std::fmt::Debug for Sm4GcmKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sm4GcmKey(..)")
    }
}

impl Sm4GcmKey {
    /// A fresh key from the system CSPRNG.
    pub fn generate() -> Self {
        let r = crate::random_bytes(KEY_LEN);
        let mut k = Zeroizing::new([0u8; KEY_LEN]);
        k.copy_from_slice(&r);
        Self::from_bytes(&k)
    }

    /// From 16 bytes (copied; wipe your copy).
    pub fn from_bytes(k: &[u8; KEY_LEN]) -> Self {
        let raw = Zeroizing::new(*k);
        let cipher = Sm4GcmCipher::new(aes_gcm::Key::<Sm4GcmCipher>::from_slice(&raw[..]));
        Sm4GcmKey { raw, cipher }
    }

    /// From a byte string that must be 16 bytes long.
    pub fn from_slice(k: &[u8]) -> Result<Self, CryptoError> {
        let arr: &[u8; KEY_LEN] = k
            .try_into()
            .map_err(|_| CryptoError::InvalidKey("SM4 key must be 16 bytes"))?;
        Ok(Self::from_bytes(arr))
    }

    /// The key bytes (to wrap for the receiver).
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.raw
    }

    /// Encrypt: ciphertext || tag.
    pub fn seal(
        &self,
        iv: &[u8; IV_LEN],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        self.cipher
            .encrypt(
                aes_gcm::Nonce::<U12>::from_slice(iv),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| CryptoError::Malformed("SM4-GCM input too long"))
    }

    /// Decrypt and authenticate ciphertext || tag; the plaintext is wiped
    /// when dropped. Any change to the IV, the associated data, the
    /// ciphertext or the tag fails as [`CryptoError::Decrypt`].
    pub fn open(
        &self,
        iv: &[u8; IV_LEN],
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if sealed.len() < TAG_LEN {
            return Err(CryptoError::Decrypt);
        }
        self.cipher
            .decrypt(
                aes_gcm::Nonce::<U12>::from_slice(iv),
                Payload { msg: sealed, aad },
            )
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Decrypt)
    }
}

/// A fresh random IV.
pub fn random_iv() -> [u8; IV_LEN] {
    let mut iv = [0u8; IV_LEN];
    iv.copy_from_slice(&crate::random_bytes(IV_LEN));
    iv
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// RFC 8998 Appendix A.1 (SM4-GCM test vector).
    #[test]
    fn conf_1_sm4_gcm_rfc8998_vector() {
        let key = Sm4GcmKey::from_slice(&hex::decode("0123456789ABCDEFFEDCBA9876543210").unwrap())
            .unwrap();
        let iv: [u8; 12] = hex::decode("00001234567800000000ABCD")
            .unwrap()
            .try_into()
            .unwrap();
        let aad = hex::decode("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2").unwrap();
        let pt = hex::decode("AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDDEEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFFEEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA").unwrap();
        let ct = key.seal(&iv, &aad, &pt).unwrap();
        assert_eq!(
            hex::encode_upper(&ct[..pt.len()]),
            "17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D"
        );
        assert_eq!(
            hex::encode_upper(&ct[pt.len()..]),
            "83DE3541E4C2B58177E065A9BF7B62EC"
        );
        assert_eq!(&*key.open(&iv, &aad, &ct).unwrap(), &pt);
        let mut bad = ct.clone();
        bad[0] ^= 1;
        assert!(key.open(&iv, &aad, &bad).is_err());
        assert!(key.open(&iv, b"other", &ct).is_err());
        let mut iv2 = iv;
        iv2[0] ^= 1;
        assert!(key.open(&iv2, &aad, &ct).is_err());
    }
}
