//! An app's credentials: App_Secret (MAC) or a registered key pair.

use std::path::Path;
use std::sync::Arc;

use menshen_crypto::{MacAlg, PrivateKey};
use zeroize::Zeroizing;

use crate::SdkError;

/// How an app signs.
#[derive(Clone)]
pub(crate) enum Signer {
    Mac(Zeroizing<Vec<u8>>, MacAlg),
    Key(Arc<PrivateKey>),
}

/// An application party's credentials: App_ID with an App_Secret (A1) or a
/// registered key pair (A1-A3).
#[derive(Clone)]
pub struct Credentials {
    /// App_ID (used as `keyid`).
    pub app_id: String,
    pub(crate) signer: Signer,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("app_id", &self.app_id)
            .field("alg", &self.alg_name())
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// App_ID + App_Secret with HMAC-SM3.
    pub fn hmac_sm3(app_id: &str, secret: Vec<u8>) -> Self {
        Self::hmac(app_id, secret, MacAlg::HmacSm3)
    }
    /// App_ID + App_Secret with HMAC-SHA256.
    pub fn hmac_sha256(app_id: &str, secret: Vec<u8>) -> Self {
        Self::hmac(app_id, secret, MacAlg::HmacSha256)
    }
    /// App_ID + App_Secret with the given MAC.
    pub fn hmac(app_id: &str, secret: Vec<u8>, alg: MacAlg) -> Self {
        Credentials {
            app_id: app_id.to_string(),
            signer: Signer::Mac(Zeroizing::new(secret), alg),
        }
    }
    /// Read the App_Secret from a file (whitespace trimmed).
    pub fn hmac_from_file(app_id: &str, path: &Path, alg: MacAlg) -> std::io::Result<Self> {
        let text = Zeroizing::new(std::fs::read_to_string(path)?);
        Ok(Self::hmac(app_id, text.trim().as_bytes().to_vec(), alg))
    }
    /// App_ID + a registered key pair (SM2, P-256, Ed25519 or RSA); the
    /// algorithm follows from the key.
    pub fn key_pair(app_id: &str, key: PrivateKey) -> Self {
        Credentials {
            app_id: app_id.to_string(),
            signer: Signer::Key(Arc::new(key)),
        }
    }
    /// Read a PKCS#8 PEM private key from a file.
    pub fn key_pair_from_file(app_id: &str, path: &Path) -> Result<Self, SdkError> {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| SdkError::Key(format!("{}: {e}", path.display())))?,
        );
        let key = PrivateKey::from_pkcs8_pem(&text)
            .map_err(|e| SdkError::Key(format!("{}: {e}", path.display())))?;
        Ok(Self::key_pair(app_id, key))
    }
    /// The `alg` these credentials sign with.
    pub fn alg_name(&self) -> &'static str {
        match &self.signer {
            Signer::Mac(_, a) => a.name(),
            Signer::Key(k) => k.alg().name(),
        }
    }
}
