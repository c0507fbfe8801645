//! Asymmetric keys for request and response signatures (AUTH-1, AUTH-2,
//! INT-2): SM2 with SM3 (GB/T 32918, user ID `1234567812345678`, signature
//! r||s), ECDSA P-256 with SHA-256 (r||s), Ed25519, RSA PKCS#1 v1.5 with
//! SHA-256. SM2 uses RustCrypto's `sm2`; the others use aws-lc-rs, which
//! measured 4-10x faster than the pure-Rust crates here.
//!
//! Public keys are X.509 SubjectPublicKeyInfo (PEM "PUBLIC KEY"); private keys
//! are PKCS#8 (PEM "PRIVATE KEY"). The algorithm is read from the key itself.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as awssig, KeyPair as _};
use pkcs8::der::{Decode, Encode};
use pkcs8::LineEnding;
use sm2::pkcs8::{DecodePublicKey, EncodePublicKey};
use zeroize::Zeroizing;

use crate::CryptoError;

/// The default SM2 distinguishing identifier (GB/T 35276).
pub const SM2_DEFAULT_ID: &str = "1234567812345678";

const OID_EC: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_SM2: &str = "1.2.156.10197.1.301";
const OID_ED25519: &str = "1.3.101.112";
const OID_RSA: &str = "1.2.840.113549.1.1.1";

/// A fresh SM2 secret key from the system CSPRNG (aws-lc-rs).
fn sm2_random_secret() -> Result<sm2::SecretKey, CryptoError> {
    let d = crate::sm2fast::random_nonzero_scalar().ok_or(bad("system random"))?;
    let d: Option<sm2::NonZeroScalar> = sm2::NonZeroScalar::new(*d).into();
    Ok(sm2::SecretKey::from(d.ok_or(bad("system random"))?))
}

/// Signature algorithms, by their protocol `alg` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigAlg {
    /// `sm2-sm3`.
    Sm2Sm3,
    /// `ecdsa-p256-sha256`.
    EcdsaP256Sha256,
    /// `ed25519`.
    Ed25519,
    /// `rsa-v1_5-sha256`.
    RsaV15Sha256,
}

impl SigAlg {
    /// Every algorithm.
    pub const ALL: &'static [SigAlg] = &[
        SigAlg::Sm2Sm3,
        SigAlg::EcdsaP256Sha256,
        SigAlg::Ed25519,
        SigAlg::RsaV15Sha256,
    ];
    /// Protocol name.
    pub fn name(self) -> &'static str {
        match self {
            SigAlg::Sm2Sm3 => "sm2-sm3",
            SigAlg::EcdsaP256Sha256 => "ecdsa-p256-sha256",
            SigAlg::Ed25519 => "ed25519",
            SigAlg::RsaV15Sha256 => "rsa-v1_5-sha256",
        }
    }
    /// Parse a protocol name.
    pub fn from_name(s: &str) -> Option<Self> {
        SigAlg::ALL.iter().copied().find(|a| a.name() == s)
    }
}

fn bad(what: &'static str) -> CryptoError {
    CryptoError::InvalidKey(what)
}

fn pem_body(pem: &str, label: &'static str) -> Result<Vec<u8>, CryptoError> {
    let (l, der) = pem_rfc7468_decode(pem)?;
    if l != label {
        return Err(CryptoError::Malformed(match label {
            "PUBLIC KEY" => "expected a PEM `PUBLIC KEY` (SubjectPublicKeyInfo)",
            _ => "expected a PEM `PRIVATE KEY` (PKCS#8)",
        }));
    }
    Ok(der)
}

fn pem_rfc7468_decode(pem: &str) -> Result<(String, Vec<u8>), CryptoError> {
    let (label, der) = spki::der::pem::decode_vec(pem.trim().as_bytes())
        .map_err(|_| CryptoError::Malformed("not a PEM document"))?;
    Ok((label.to_string(), der))
}

fn pem(label: &'static str, der: &[u8]) -> String {
    spki::der::pem::encode_string(label, LineEnding::LF, der).unwrap_or_default()
}

#[derive(Clone)]
enum PubInner {
    Sm2(Box<crate::sm2fast::Sm2Verifier>),
    Aws(Vec<u8>),
}

/// A public key with its algorithm.
#[derive(Clone)]
pub struct PublicKey {
    alg: SigAlg,
    spki_der: Vec<u8>,
    inner: PubInner,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({}, {})", self.alg.name(), self.fingerprint())
    }
}

fn spki_alg(der: &[u8]) -> Result<SigAlg, CryptoError> {
    let spki = spki::SubjectPublicKeyInfoRef::from_der(der)
        .map_err(|_| CryptoError::Malformed("not a SubjectPublicKeyInfo"))?;
    alg_from(
        &spki.algorithm.oid.to_string(),
        spki.algorithm.parameters_oid().ok().map(|o| o.to_string()),
    )
}

fn alg_from(oid: &str, param: Option<String>) -> Result<SigAlg, CryptoError> {
    match (oid, param.as_deref()) {
        (OID_EC, Some(OID_SM2)) => Ok(SigAlg::Sm2Sm3),
        (OID_EC, Some(OID_P256)) => Ok(SigAlg::EcdsaP256Sha256),
        (OID_ED25519, _) => Ok(SigAlg::Ed25519),
        (OID_RSA, _) => Ok(SigAlg::RsaV15Sha256),
        _ => Err(bad("unsupported key type (use SM2, P-256, Ed25519 or RSA)")),
    }
}

impl PublicKey {
    /// Parse a PEM SubjectPublicKeyInfo.
    pub fn from_spki_pem(pem_text: &str) -> Result<Self, CryptoError> {
        Self::from_spki_der(&pem_body(pem_text, "PUBLIC KEY")?)
    }

    /// Parse a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, CryptoError> {
        let alg = spki_alg(der)?;
        let inner = match alg {
            SigAlg::Sm2Sm3 => {
                let pk = sm2::PublicKey::from_public_key_der(der)
                    .map_err(|_| bad("SM2 public key does not parse"))?;
                PubInner::Sm2(Box::new(
                    crate::sm2fast::Sm2Verifier::new(SM2_DEFAULT_ID, &pk)
                        .ok_or(bad("SM2 public key"))?,
                ))
            }
            SigAlg::RsaV15Sha256 => {
                // aws-lc-rs verifies with the PKCS#1 RSAPublicKey inside the SPKI.
                let spki =
                    spki::SubjectPublicKeyInfoRef::from_der(der).map_err(|_| bad("RSA SPKI"))?;
                let bits = spki.subject_public_key.raw_bytes().to_vec();
                let n_bits = rsa_modulus_bits(&bits).ok_or(bad("RSA public key does not parse"))?;
                if n_bits < 2048 {
                    return Err(bad("RSA keys must be at least 2048 bits"));
                }
                PubInner::Aws(bits)
            }
            SigAlg::EcdsaP256Sha256 | SigAlg::Ed25519 => {
                let spki = spki::SubjectPublicKeyInfoRef::from_der(der).map_err(|_| bad("SPKI"))?;
                PubInner::Aws(spki.subject_public_key.raw_bytes().to_vec())
            }
        };
        let me = PublicKey {
            alg,
            spki_der: der.to_vec(),
            inner,
        };
        Ok(me)
    }

    /// The algorithm this key signs with.
    pub fn alg(&self) -> SigAlg {
        self.alg
    }

    /// PEM SubjectPublicKeyInfo.
    pub fn to_pem(&self) -> String {
        pem("PUBLIC KEY", &self.spki_der)
    }

    /// SHA-256 of the SubjectPublicKeyInfo, hex: a stable key fingerprint.
    pub fn fingerprint(&self) -> String {
        hex::encode(crate::sha256(&self.spki_der))
    }

    /// Verify `sig` over `msg`.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        match &self.inner {
            PubInner::Sm2(v) => v.verify(msg, sig),
            PubInner::Aws(raw) => {
                let alg: &dyn awssig::VerificationAlgorithm = match self.alg {
                    SigAlg::EcdsaP256Sha256 => &awssig::ECDSA_P256_SHA256_FIXED,
                    SigAlg::Ed25519 => &awssig::ED25519,
                    SigAlg::RsaV15Sha256 => &awssig::RSA_PKCS1_2048_8192_SHA256,
                    SigAlg::Sm2Sm3 => return false,
                };
                awssig::UnparsedPublicKey::new(alg, raw)
                    .verify(msg, sig)
                    .is_ok()
            }
        }
    }
}

/// Bits of the modulus of a PKCS#1 RSAPublicKey.
fn rsa_modulus_bits(pkcs1: &[u8]) -> Option<usize> {
    use spki::der::{asn1::UintRef, Decode as _, Reader as _, SliceReader};
    let mut r = SliceReader::new(pkcs1).ok()?;
    let n_len = r
        .sequence(|r| {
            let n = UintRef::decode(r)?;
            let _e = UintRef::decode(r)?;
            Ok(n.as_bytes().to_vec())
        })
        .ok()?;
    let lead = n_len.first().copied()?;
    Some((n_len.len() - 1) * 8 + (8 - lead.leading_zeros() as usize))
}

/// Convert a DER `SEQUENCE { r INTEGER, s INTEGER }` signature (as OpenSSL
/// writes for SM2 and ECDSA) to the protocol's 64-byte r||s form.
pub fn ecdsa_der_to_rs(der: &[u8]) -> Result<[u8; 64], CryptoError> {
    use spki::der::{asn1::UintRef, Decode as _, Reader as _, SliceReader};
    let err = || CryptoError::Malformed("not a DER (r, s) signature");
    let mut r = SliceReader::new(der).map_err(|_| err())?;
    let (a, b) = r
        .sequence(|r| {
            Ok((
                UintRef::decode(r)?.as_bytes().to_vec(),
                UintRef::decode(r)?.as_bytes().to_vec(),
            ))
        })
        .map_err(|_| err())?;
    if a.len() > 32 || b.len() > 32 {
        return Err(err());
    }
    let mut out = [0u8; 64];
    out[32 - a.len()..32].copy_from_slice(&a);
    out[64 - b.len()..].copy_from_slice(&b);
    Ok(out)
}

/// Convert a 64-byte r||s signature to DER, for tools such as OpenSSL.
pub fn ecdsa_rs_to_der(rs: &[u8]) -> Result<Vec<u8>, CryptoError> {
    use spki::der::asn1::UintRef;
    use spki::der::Encode as _;
    if rs.len() != 64 {
        return Err(CryptoError::Malformed("r||s signature must be 64 bytes"));
    }
    let r = UintRef::new(&rs[..32]).map_err(|_| CryptoError::Malformed("r"))?;
    let s = UintRef::new(&rs[32..]).map_err(|_| CryptoError::Malformed("s"))?;
    let mut body = Vec::new();
    r.encode_to_vec(&mut body)
        .map_err(|_| CryptoError::Malformed("r"))?;
    s.encode_to_vec(&mut body)
        .map_err(|_| CryptoError::Malformed("s"))?;
    let mut out = vec![0x30];
    if body.len() < 128 {
        out.push(body.len() as u8);
    } else {
        out.extend_from_slice(&[0x81, body.len() as u8]);
    }
    out.extend_from_slice(&body);
    Ok(out)
}

enum PrivInner {
    Sm2(Box<crate::sm2fast::Sm2Signer>),
    Ecdsa(awssig::EcdsaKeyPair),
    Ed25519(awssig::Ed25519KeyPair),
    Rsa(awssig::RsaKeyPair),
}

/// A private signing key. Key material is held by `sm2`/aws-lc-rs, which
/// clear it on drop.
pub struct PrivateKey {
    alg: SigAlg,
    inner: PrivInner,
    public: PublicKey,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({}, ..)", self.alg.name())
    }
}

impl PrivateKey {
    /// Generate a key; returns it with its PKCS#8 PEM (to store or write 0600).
    pub fn generate(alg: SigAlg) -> Result<(Self, Zeroizing<String>), CryptoError> {
        let der: Zeroizing<Vec<u8>> = match alg {
            SigAlg::Sm2Sm3 => {
                let sk = sm2_random_secret()?;
                Zeroizing::new(
                    sm2::pkcs8::EncodePrivateKey::to_pkcs8_der(&sk)
                        .map_err(|_| bad("SM2 encode"))?
                        .as_bytes()
                        .to_vec(),
                )
            }
            SigAlg::EcdsaP256Sha256 => {
                let kp = awssig::EcdsaKeyPair::generate(&awssig::ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(|_| bad("P-256 generate"))?;
                Zeroizing::new(
                    kp.to_pkcs8v1()
                        .map_err(|_| bad("P-256 encode"))?
                        .as_ref()
                        .to_vec(),
                )
            }
            SigAlg::Ed25519 => {
                let kp = awssig::Ed25519KeyPair::generate().map_err(|_| bad("Ed25519 generate"))?;
                Zeroizing::new(
                    kp.to_pkcs8v1()
                        .map_err(|_| bad("Ed25519 encode"))?
                        .as_ref()
                        .to_vec(),
                )
            }
            SigAlg::RsaV15Sha256 => {
                let kp = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                    .map_err(|_| bad("RSA generate"))?;
                let d: aws_lc_rs::encoding::Pkcs8V1Der =
                    kp.as_der().map_err(|_| bad("RSA encode"))?;
                Zeroizing::new(d.as_ref().to_vec())
            }
        };
        let key = Self::from_pkcs8_der(&der)?;
        Ok((key, Zeroizing::new(pem("PRIVATE KEY", &der))))
    }

    /// Load a PEM PKCS#8 private key.
    pub fn from_pkcs8_pem(pem_text: &str) -> Result<Self, CryptoError> {
        let der = Zeroizing::new(pem_body(pem_text, "PRIVATE KEY")?);
        Self::from_pkcs8_der(&der)
    }

    /// Load a DER PKCS#8 private key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, CryptoError> {
        let info = pkcs8::PrivateKeyInfo::from_der(der)
            .map_err(|_| CryptoError::Malformed("not PKCS#8"))?;
        let alg = alg_from(
            &info.algorithm.oid.to_string(),
            info.algorithm.parameters_oid().ok().map(|o| o.to_string()),
        )?;
        let (inner, spki_der) = match alg {
            SigAlg::Sm2Sm3 => {
                let sk = <sm2::SecretKey as sm2::pkcs8::DecodePrivateKey>::from_pkcs8_der(der)
                    .map_err(|_| bad("SM2 private key"))?;
                let spki = sk
                    .public_key()
                    .to_public_key_der()
                    .map_err(|_| bad("SM2 public"))?
                    .as_bytes()
                    .to_vec();
                let sign = crate::sm2fast::Sm2Signer::new(SM2_DEFAULT_ID, &sk)
                    .ok_or(bad("SM2 private key"))?;
                (PrivInner::Sm2(Box::new(sign)), spki)
            }
            SigAlg::EcdsaP256Sha256 => {
                let kp =
                    awssig::EcdsaKeyPair::from_pkcs8(&awssig::ECDSA_P256_SHA256_FIXED_SIGNING, der)
                        .map_err(|_| bad("P-256 private key"))?;
                let spki = kp
                    .public_key()
                    .as_der()
                    .map_err(|_| bad("P-256 public"))?
                    .as_ref()
                    .to_vec();
                (PrivInner::Ecdsa(kp), spki)
            }
            SigAlg::Ed25519 => {
                let kp = awssig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                    .map_err(|_| bad("Ed25519 private key"))?;
                let spki = kp
                    .public_key()
                    .as_der()
                    .map_err(|_| bad("Ed25519 public"))?
                    .as_ref()
                    .to_vec();
                (PrivInner::Ed25519(kp), spki)
            }
            SigAlg::RsaV15Sha256 => {
                let kp = awssig::RsaKeyPair::from_pkcs8(der).map_err(|_| bad("RSA private key"))?;
                let spki = kp
                    .public_key()
                    .as_der()
                    .map_err(|_| bad("RSA public"))?
                    .as_ref()
                    .to_vec();
                (PrivInner::Rsa(kp), spki)
            }
        };
        let public = PublicKey::from_spki_der(&spki_der)?;
        let _ = info.to_der();
        Ok(PrivateKey { alg, inner, public })
    }

    /// The algorithm.
    pub fn alg(&self) -> SigAlg {
        self.alg
    }

    /// The public half.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Sign `msg`.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let rng = SystemRandom::new();
        match &self.inner {
            PrivInner::Sm2(k) => Ok(k.sign(msg).ok_or(bad("SM2 sign"))?.to_vec()),
            PrivInner::Ecdsa(k) => Ok(k
                .sign(&rng, msg)
                .map_err(|_| bad("P-256 sign"))?
                .as_ref()
                .to_vec()),
            PrivInner::Ed25519(k) => Ok(k.sign(msg).as_ref().to_vec()),
            PrivInner::Rsa(k) => {
                let mut out = vec![0u8; k.public_modulus_len()];
                k.sign(&awssig::RSA_PKCS1_SHA256, &rng, msg, &mut out)
                    .map_err(|_| bad("RSA sign"))?;
                Ok(out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_2_every_algorithm_signs_verifies_and_rejects_tampering() {
        for alg in SigAlg::ALL {
            let (k, pem_text) = PrivateKey::generate(*alg).unwrap();
            let k2 = PrivateKey::from_pkcs8_pem(&pem_text).unwrap();
            assert_eq!(k2.alg(), *alg);
            let pk = PublicKey::from_spki_pem(&k.public_key().to_pem()).unwrap();
            assert_eq!(pk.alg(), *alg);
            assert_eq!(pk.fingerprint(), k2.public_key().fingerprint());
            let sig = k2.sign(b"message").unwrap();
            if matches!(
                alg,
                SigAlg::Sm2Sm3 | SigAlg::EcdsaP256Sha256 | SigAlg::Ed25519
            ) {
                assert_eq!(sig.len(), 64, "{alg:?} signatures are r||s / 64 bytes");
            }
            assert!(pk.verify(b"message", &sig), "{alg:?}");
            assert!(!pk.verify(b"messagE", &sig), "{alg:?}");
            let mut bad_sig = sig.clone();
            bad_sig[5] ^= 1;
            assert!(!pk.verify(b"message", &bad_sig), "{alg:?}");
            // Another key of the same algorithm does not verify it.
            let (other, _) = PrivateKey::generate(*alg).unwrap();
            assert!(!other.public_key().verify(b"message", &sig));
        }
    }

    #[test]
    fn garbage_keys_are_refused() {
        assert!(PublicKey::from_spki_pem("not pem").is_err());
        assert!(PublicKey::from_spki_pem(
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
        )
        .is_err());
        let (k, priv_pem) = PrivateKey::generate(SigAlg::Ed25519).unwrap();
        assert!(
            PublicKey::from_spki_pem(&priv_pem).is_err(),
            "a private key is not a public key"
        );
        assert!(PrivateKey::from_pkcs8_pem(&k.public_key().to_pem()).is_err());
    }
}
