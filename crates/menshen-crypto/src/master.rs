//! The master key that seals App_Secrets and keystore entries at rest (AUTH-3,
//! KEY-3). It comes from the environment variable `MENSHEN_MASTER_KEY` or from a
//! key file that only its owner can read; never from the config file itself.

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::AesGcm;
use base64::Engine;
use zeroize::{Zeroize, Zeroizing};

use crate::{random_bytes, MacAlg};

type Sm4Gcm = AesGcm<sm4::Sm4, U12>;

const SEAL_PREFIX: &str = "sm4gcm1:";

/// Errors loading the master key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MasterKeyError {
    /// File could not be read.
    #[error("cannot read master key file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// File readable or writable by group or others.
    #[error("master key file {path} is readable or writable by group or others (mode {mode:04o}); run `chmod 600 {path}`")]
    Permissions {
        /// The file.
        path: String,
        /// Its mode bits.
        mode: u32,
    },
    /// Not 32 bytes of hex or base64.
    #[error("master key must be 32 bytes written as 64 hex characters or base64")]
    Format,
}

/// The master key. Zeroized on drop; never printed.
pub struct MasterKey {
    seal_key: Zeroizing<[u8; 16]>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// Generate a fresh key and its printable (hex) form for a key file.
    pub fn generate() -> Zeroizing<String> {
        Zeroizing::new(hex::encode(random_bytes(32).as_slice()))
    }

    /// Parse the printable form (64 hex characters, or base64 of 32 bytes).
    pub fn from_text(text: &str) -> Result<Self, MasterKeyError> {
        let t = text.trim();
        let mut raw = Zeroizing::new(
            hex::decode(t)
                .ok()
                .or_else(|| base64::engine::general_purpose::STANDARD.decode(t).ok())
                .ok_or(MasterKeyError::Format)?,
        );
        if raw.len() != 32 {
            raw.zeroize();
            return Err(MasterKeyError::Format);
        }
        // Derive the SM4 sealing key; other keys can be derived with other labels.
        let derived = Zeroizing::new(MacAlg::HmacSm3.mac(&raw, b"menshen/seal/v1"));
        let mut seal_key = Zeroizing::new([0u8; 16]);
        seal_key.copy_from_slice(&derived[..16]);
        Ok(MasterKey { seal_key })
    }

    /// Load from a key file, refusing one that group or others can read.
    pub fn from_file(path: &std::path::Path) -> Result<Self, MasterKeyError> {
        let p = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|source| MasterKeyError::Read {
            path: p.clone(),
            source,
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(MasterKeyError::Permissions { path: p, mode });
            }
        }
        #[cfg(not(unix))]
        let _ = meta;
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|source| MasterKeyError::Read { path: p, source })?,
        );
        Self::from_text(&text)
    }

    /// Seal `plaintext`, binding it to `context` (e.g. the App_ID), so a sealed
    /// value copied to another row does not open.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> String {
        let cipher = Sm4Gcm::new_from_slice(self.seal_key.as_slice()).expect("16-byte SM4 key");
        let nonce = random_bytes(12);
        let ct = cipher
            .encrypt(
                aes_gcm::Nonce::<U12>::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .expect("SM4-GCM encryption of an in-memory buffer does not fail");
        let mut out = Vec::with_capacity(12 + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        format!(
            "{SEAL_PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(out)
        )
    }

    /// Open a value made by [`MasterKey::seal`] with the same `context`.
    pub fn open(
        &self,
        context: &str,
        sealed: &str,
    ) -> Result<Zeroizing<Vec<u8>>, crate::CryptoError> {
        let b64 = sealed
            .strip_prefix(SEAL_PREFIX)
            .ok_or(crate::CryptoError::Malformed("unknown seal format"))?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| crate::CryptoError::Malformed("seal is not base64"))?;
        if raw.len() < 12 + 16 {
            return Err(crate::CryptoError::Malformed("seal too short"));
        }
        let cipher = Sm4Gcm::new_from_slice(self.seal_key.as_slice()).expect("16-byte SM4 key");
        cipher
            .decrypt(
                aes_gcm::Nonce::<U12>::from_slice(&raw[..12]),
                Payload {
                    msg: &raw[12..],
                    aad: context.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| crate::CryptoError::Decrypt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trip_and_binding() {
        let k = MasterKey::from_text(&MasterKey::generate()).unwrap();
        let s = k.seal("app-1", b"secret");
        assert!(!s.contains("secret"));
        assert_eq!(k.open("app-1", &s).unwrap().as_slice(), b"secret");
        assert!(k.open("app-2", &s).is_err());
        let other = MasterKey::from_text(&MasterKey::generate()).unwrap();
        assert!(other.open("app-1", &s).is_err());
    }

    #[test]
    fn sm4_gcm_matches_rfc8998_vector() {
        // RFC 8998 A.1 SM4-GCM test vector.
        let key = hex::decode("0123456789ABCDEFFEDCBA9876543210").unwrap();
        let iv = hex::decode("00001234567800000000ABCD").unwrap();
        let aad = hex::decode("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2").unwrap();
        let pt = hex::decode("AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDDEEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFFEEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA").unwrap();
        let c = Sm4Gcm::new_from_slice(&key).unwrap();
        let out = c
            .encrypt(
                aes_gcm::Nonce::<U12>::from_slice(&iv),
                Payload {
                    msg: &pt,
                    aad: &aad,
                },
            )
            .unwrap();
        let (ct, tag) = out.split_at(pt.len());
        assert_eq!(hex::encode_upper(ct), "17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D");
        assert_eq!(hex::encode_upper(tag), "83DE3541E4C2B58177E065A9BF7B62EC");
    }

    #[cfg(unix)]
    #[test]
    fn key_file_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("mk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("master.key");
        std::fs::write(&f, MasterKey::generate().as_bytes()).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            MasterKey::from_file(&f),
            Err(MasterKeyError::Permissions { .. })
        ));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(MasterKey::from_file(&f).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
