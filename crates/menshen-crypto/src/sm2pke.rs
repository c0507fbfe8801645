//! SM2 public-key encryption (GB/T 32918.4-2016), ciphertext order C1C3C2:
//! `04 || x1 || y1 || C3 || C2` (65 + 32 + len(M) bytes), the digital
//! envelope that carries a message's one-time SM4 key (CONF-2).
//!
//! Why the two equations are written here and not taken whole from the
//! `sm2` crate's `pke` feature (0.14.0), which does implement GB/T 32918.4
//! with C1C3C2: its `DecryptingKey` keeps a copy of the private scalar that
//! is not wiped on drop, its encryption leaves the ephemeral `k` and the
//! shared point `[k]P` (from which the session key follows) in memory
//! unwiped, it compares C3 with a non-constant-time `!=`, and it does not
//! refuse an all-zero KDF output on decryption (B4). CONF-4 asks that key
//! material be cleared after use. So only the scheme's steps are here; every
//! group and field operation, the point decoding (on-curve check) and the
//! ASN.1 form are the crate's, and tests check this against the crate's own
//! `pke` in both directions and against the OpenSSL command line
//! (`tests/sm2_openssl.rs`).
//!
//! OpenSSL (`pkeyutl -encrypt`) reads and writes the GM/T 0009 ASN.1 form
//! `SEQUENCE { x INTEGER, y INTEGER, hash OCTET STRING, ciphertext OCTET
//! STRING }`; [`ciphertext_from_der`] and [`ciphertext_to_der`] convert.

use sm2::elliptic_curve::group::Group;
use sm2::elliptic_curve::point::BatchNormalize;
use sm2::elliptic_curve::sec1::{FromSec1Point, ToSec1Point};
use sm2::elliptic_curve::PrimeField;
use sm2::pke::{Cipher, Mode};
use sm2::{AffinePoint, FieldBytes, ProjectivePoint, Scalar};
use zeroize::{Zeroize, Zeroizing};

use std::sync::{Arc, OnceLock};

use crate::sm2fast::KeyTable;
use crate::CryptoError;

/// Length of C1 (uncompressed point) plus C3 (SM3 digest).
pub const OVERHEAD: usize = 65 + 32;

/// The largest message this module encrypts: a session key or a small
/// secret, never bulk data (bulk data goes under SM4).
pub const MAX_MESSAGE: usize = 1024;

/// An SM2 public key used for encryption (a receiver's encryption key,
/// separate from any signing key: KEY-1).
///
/// Encryption computes [k]P for this fixed P every time, so the key keeps a
/// table of multiples of P (the layout of the crate's base-point table,
/// ~25 KiB), built on the first encryption or by [`Self::precompute`] (the
/// gateway does it when the snapshot is built) and shared by clones: [k]P
/// then costs what [k]G costs, in constant time.
#[derive(Clone)]
pub struct Sm2EncryptionKey {
    point: sm2::PublicKey,
    table: Arc<OnceLock<KeyTable>>,
}

impl std::fmt::Debug for Sm2EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sm2EncryptionKey(..)")
    }
}

impl Sm2EncryptionKey {
    /// From a PEM SubjectPublicKeyInfo holding an SM2 key.
    pub fn from_spki_pem(pem_text: &str) -> Result<Self, CryptoError> {
        use sm2::pkcs8::DecodePublicKey;
        let point = sm2::PublicKey::from_public_key_pem(pem_text.trim())
            .map_err(|_| CryptoError::InvalidKey("not an SM2 public key"))?;
        Ok(Self::from_point(point))
    }

    fn from_point(point: sm2::PublicKey) -> Self {
        Sm2EncryptionKey {
            point,
            table: Arc::new(OnceLock::new()),
        }
    }

    /// Build the key's table of multiples now rather than on the first
    /// encryption (~0.2 ms).
    pub fn precompute(&self) {
        self.table();
    }

    fn table(&self) -> &KeyTable {
        self.table
            .get_or_init(|| KeyTable::new(self.point.to_projective()))
    }

    /// From a DER SubjectPublicKeyInfo holding an SM2 key.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, CryptoError> {
        use sm2::pkcs8::DecodePublicKey;
        let point = sm2::PublicKey::from_public_key_der(der)
            .map_err(|_| CryptoError::InvalidKey("not an SM2 public key"))?;
        Ok(Self::from_point(point))
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> Vec<u8> {
        use sm2::pkcs8::EncodePublicKey;
        self.point
            .to_public_key_der()
            .map(|d| d.as_bytes().to_vec())
            .unwrap_or_default()
    }

    /// SHA-256 of the DER SubjectPublicKeyInfo, lower-case hex: the key's
    /// fingerprint (the same as [`crate::PublicKey::fingerprint`]), the `kid`
    /// of envelopes wrapped for an app's encryption key.
    pub fn fingerprint(&self) -> String {
        hex::encode(crate::sha256(&self.spki_der()))
    }

    /// The key as an uncompressed SEC1 point (`04 || x || y`).
    pub fn to_sec1(&self) -> Vec<u8> {
        self.point.to_sec1_point(false).as_bytes().to_vec()
    }

    /// Encrypt `msg` (1..=[`MAX_MESSAGE`] bytes): C1C3C2.
    pub fn encrypt(&self, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        // A1-A5 with a fresh k from the system CSPRNG; a k whose KDF output
        // is all zero (probability ~2^-256 per byte string) is redrawn.
        for _ in 0..16 {
            let k = crate::sm2fast::random_nonzero_scalar()
                .ok_or(CryptoError::InvalidKey("system random generator failed"))?;
            if let Some(c) = self.encrypt_with(msg, &k)? {
                return Ok(c);
            }
        }
        Err(CryptoError::InvalidKey("SM2 encryption failed"))
    }

    /// Encrypt with a caller-chosen `k` (32 big-endian bytes, in [1, n-1]).
    /// INSECURE: a known or repeated `k` reveals the message. Only for
    /// reproducible test vectors (docs/protocol.md).
    pub fn encrypt_with_fixed_k_insecure(
        &self,
        msg: &[u8],
        k: &[u8; 32],
    ) -> Result<Vec<u8>, CryptoError> {
        let k: Option<Scalar> = Scalar::from_repr(FieldBytes::from(*k)).into();
        let k = Zeroizing::new(k.ok_or(CryptoError::InvalidKey("k out of range"))?);
        if bool::from(k.is_zero()) {
            return Err(CryptoError::InvalidKey("k is zero"));
        }
        self.encrypt_with(msg, &k)?.ok_or(CryptoError::InvalidKey(
            "this k gives an all-zero KDF output",
        ))
    }

    /// `None` when t = KDF(x2 || y2) is all zero (A5: choose another k).
    fn encrypt_with(&self, msg: &[u8], k: &Scalar) -> Result<Option<Vec<u8>>, CryptoError> {
        if msg.is_empty() || msg.len() > MAX_MESSAGE {
            return Err(CryptoError::Malformed("SM2 message length"));
        }
        // A2: C1 = [k]G (constant time, the crate's base-point table).
        // A3: S = [h]P_B with h = 1 for the SM2 curve: P_B is a valid
        // non-identity point (checked when it was decoded).
        // A4: (x2, y2) = [k]P_B (constant time, the key's table).
        // Both made affine with one field inversion (batch normalization).
        let both = Zeroizing::new([ProjectivePoint::mul_by_generator(k), self.table().mul(k)]);
        let affine = Zeroizing::new(
            <ProjectivePoint as BatchNormalize<[ProjectivePoint; 2]>>::batch_normalize(&both),
        );
        let c1 = affine[0];
        let shared = Zeroizing::new(point_xy(&affine[1]));
        let mut out = Vec::with_capacity(OVERHEAD + msg.len());
        out.extend_from_slice(c1.to_sec1_point(false).as_bytes());
        out.extend_from_slice(&[0u8; 32]);
        // A5, A6: t = KDF(x2 || y2, klen); C2 = M xor t.
        let start = out.len();
        out.extend_from_slice(msg);
        if !kdf_xor(&shared, &mut out[start..]) {
            out.zeroize();
            return Ok(None);
        }
        // A7: C3 = SM3(x2 || M || y2).
        let c3 = crate::sm3_parts(&[&shared[..32], msg, &shared[32..]]);
        out[65..97].copy_from_slice(&c3);
        Ok(Some(out))
    }
}

/// An SM2 private key used for decryption (the bank's encryption key, an
/// app's encryption key). Its scalar is wiped on drop.
pub struct Sm2DecryptionKey {
    d: Zeroizing<Scalar>,
    public: Sm2EncryptionKey,
}

impl std::fmt::Debug for Sm2DecryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sm2DecryptionKey(..)")
    }
}

impl Sm2DecryptionKey {
    /// Generate a key; returns it with its PKCS#8 PEM.
    pub fn generate() -> Result<(Self, Zeroizing<String>), CryptoError> {
        let (_, pem) = crate::PrivateKey::generate(crate::SigAlg::Sm2Sm3)?;
        Ok((Self::from_pkcs8_pem(&pem)?, pem))
    }

    /// From a PEM PKCS#8 SM2 private key.
    pub fn from_pkcs8_pem(pem_text: &str) -> Result<Self, CryptoError> {
        use sm2::pkcs8::DecodePrivateKey;
        let sk = sm2::SecretKey::from_pkcs8_pem(pem_text)
            .map_err(|_| CryptoError::InvalidKey("not an SM2 PKCS#8 private key"))?;
        Ok(Self::from_secret(&sk))
    }

    /// From a DER PKCS#8 SM2 private key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, CryptoError> {
        use sm2::pkcs8::DecodePrivateKey;
        let sk = sm2::SecretKey::from_pkcs8_der(der)
            .map_err(|_| CryptoError::InvalidKey("not an SM2 PKCS#8 private key"))?;
        Ok(Self::from_secret(&sk))
    }

    /// From the private scalar, 32 big-endian bytes.
    pub fn from_scalar_bytes(bytes: &[u8; 32]) -> Result<Self, CryptoError> {
        let sk = sm2::SecretKey::from_slice(bytes)
            .map_err(|_| CryptoError::InvalidKey("SM2 private scalar out of range"))?;
        Ok(Self::from_secret(&sk))
    }

    fn from_secret(sk: &sm2::SecretKey) -> Self {
        let nz = Zeroizing::new(sk.to_nonzero_scalar());
        Sm2DecryptionKey {
            d: Zeroizing::new(*nz.as_ref()),
            public: Sm2EncryptionKey::from_point(sk.public_key()),
        }
    }

    /// The public half.
    pub fn public_key(&self) -> &Sm2EncryptionKey {
        &self.public
    }

    /// Decrypt a C1C3C2 ciphertext. The plaintext is wiped when dropped.
    /// Every failure (malformed, not on the curve, C3 mismatch) is the same
    /// [`CryptoError::Decrypt`] to the caller.
    pub fn decrypt(&self, ct: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        // B1: C1 must be an uncompressed point on the curve (the crate's
        // decoding checks the equation); B2: h = 1, so S = C1, not identity.
        if ct.len() <= OVERHEAD || ct.len() > OVERHEAD + MAX_MESSAGE || ct[0] != 0x04 {
            return Err(CryptoError::Decrypt);
        }
        let sec1 = sm2::Sec1Point::from_bytes(&ct[..65]).map_err(|_| CryptoError::Decrypt)?;
        let c1: Option<AffinePoint> = AffinePoint::from_sec1_point(&sec1).into();
        let c1 = c1.ok_or(CryptoError::Decrypt)?;
        if bool::from(ProjectivePoint::from(c1).is_identity()) {
            return Err(CryptoError::Decrypt);
        }
        let (c3, c2) = ct[65..].split_at(32);
        // B3: (x2, y2) = [d]C1 (constant time).
        let shared = Zeroizing::new(point_xy(&(ProjectivePoint::from(c1) * *self.d).to_affine()));
        // B4, B5: t = KDF(x2 || y2, klen), not all zero; M' = C2 xor t.
        let mut m = Zeroizing::new(c2.to_vec());
        if !kdf_xor(&shared, &mut m) {
            return Err(CryptoError::Decrypt);
        }
        // B6: u = SM3(x2 || M' || y2) must equal C3 (constant time).
        let u = crate::sm3_parts(&[&shared[..32], &m, &shared[32..]]);
        if !crate::ct_eq(&u, c3) {
            return Err(CryptoError::Decrypt);
        }
        Ok(m)
    }
}

/// x || y of an affine point (uncompressed SEC1 without the 04 prefix).
fn point_xy(p: &AffinePoint) -> [u8; 64] {
    let enc = p.to_sec1_point(false);
    let mut out = [0u8; 64];
    if let Some(xy) = enc.as_bytes().get(1..65) {
        out.copy_from_slice(xy);
    }
    out
}

/// XOR `data` with KDF(z, len(data)) (GB/T 32918.4 §5.4.3, SM3, counter
/// from 1, 32-bit big-endian). Returns false if the KDF output was all zero.
fn kdf_xor(z: &[u8; 64], data: &mut [u8]) -> bool {
    let mut any = 0u8;
    for (i, chunk) in data.chunks_mut(32).enumerate() {
        let ctr = (i as u32 + 1).to_be_bytes();
        let mut t = Zeroizing::new(crate::sm3_parts(&[z, &ctr]));
        for (b, k) in chunk.iter_mut().zip(t.iter()) {
            any |= *k;
            *b ^= *k;
        }
        t.zeroize();
    }
    any != 0
}

/// Convert OpenSSL's GM/T 0009 DER ciphertext to the C1C3C2 byte string.
pub fn ciphertext_from_der(der: &[u8]) -> Result<Vec<u8>, CryptoError> {
    use sm2::pkcs8::der::Decode;
    let c = <Cipher<'_, sm2::Sm2, sm3_keyed::Sm3>>::from_der(der)
        .map_err(|_| CryptoError::Malformed("not an SM2 ciphertext (GM/T 0009 DER)"))?;
    c.to_vec(Mode::C1C3C2, false)
        .map_err(|_| CryptoError::Malformed("SM2 ciphertext"))
}

/// Convert a C1C3C2 byte string to GM/T 0009 DER (for OpenSSL).
pub fn ciphertext_to_der(ct: &[u8]) -> Result<Vec<u8>, CryptoError> {
    use sm2::pkcs8::der::Encode;
    let c = <Cipher<'_, sm2::Sm2, sm3_keyed::Sm3>>::from_slice(ct, Mode::C1C3C2)
        .map_err(|_| CryptoError::Malformed("not a C1C3C2 SM2 ciphertext"))?;
    c.to_der()
        .map_err(|_| CryptoError::Malformed("SM2 ciphertext"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn crate_keys(d: &Sm2DecryptionKey) -> (sm2::pke::EncryptingKey, sm2::pke::DecryptingKey) {
        let bytes: [u8; 32] = d.d.to_repr().into();
        let dk = sm2::pke::DecryptingKey::from_slice(&bytes).unwrap();
        (dk.encrypting_key().clone(), dk)
    }

    #[test]
    fn conf_2_round_trip_and_crate_agreement_both_ways() {
        let (k, _) = Sm2DecryptionKey::generate().unwrap();
        let (_enc, dec) = crate_keys(&k);
        for len in [1usize, 16, 31, 32, 33, 100] {
            let msg: Vec<u8> = (0..len).map(|i| i as u8 ^ 0xa5).collect();
            let ct = k.public_key().encrypt(&msg).unwrap();
            assert_eq!(ct.len(), OVERHEAD + len);
            assert_eq!(&*k.decrypt(&ct).unwrap(), &msg);
            // The crate (C1C3C2 by default) reads ours ...
            assert_eq!(dec.decrypt(&ct).unwrap(), msg);
            // ... and we read the crate's.
            let theirs = dec.encrypting_key().encrypt(&mut TestRng, &msg).unwrap();
            assert_eq!(&*k.decrypt(&theirs).unwrap(), &msg);
            // DER conversion round trip.
            let der = ciphertext_to_der(&ct).unwrap();
            assert_eq!(ciphertext_from_der(&der).unwrap(), ct);
        }
    }

    #[test]
    fn conf_2_every_tampering_and_wrong_key_fail() {
        let (k, _) = Sm2DecryptionKey::generate().unwrap();
        let (other, _) = Sm2DecryptionKey::generate().unwrap();
        let ct = k.public_key().encrypt(&[7u8; 16]).unwrap();
        let pem = crate::PublicKey::from_spki_der(&k.public_key().spki_der()).unwrap();
        assert_eq!(pem.fingerprint(), k.public_key().fingerprint());
        for i in 0..ct.len() {
            let mut t = ct.clone();
            t[i] ^= 0x01;
            assert!(k.decrypt(&t).is_err(), "flip at {i} accepted");
        }
        assert!(other.decrypt(&ct).is_err());
        assert!(k.decrypt(&ct[..OVERHEAD]).is_err());
        assert!(k.decrypt(&[]).is_err());
        assert!(k.public_key().encrypt(&[]).is_err());
    }

    #[test]
    fn conf_2_gmt_0003_5_example_encryption() {
        // GM/T 0003.5-2012 (= GB/T 32918.5) example of SM2 encryption on
        // the recommended curve: d_B, k, M = "encryption standard".
        let d: [u8; 32] =
            hex::decode("3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8")
                .unwrap()
                .try_into()
                .unwrap();
        let k: [u8; 32] =
            hex::decode("59276E27D506861A16680F3AD9C02DCCEF3CC1FA3CDBE4CE6D54B80DEAC1BC21")
                .unwrap()
                .try_into()
                .unwrap();
        let key = Sm2DecryptionKey::from_scalar_bytes(&d).unwrap();
        let ct = key
            .public_key()
            .encrypt_with_fixed_k_insecure(b"encryption standard", &k)
            .unwrap();
        assert_eq!(
            hex::encode_upper(&ct),
            concat!(
                "04",
                "04EBFC718E8D1798620432268E77FEB6415E2EDE0E073C0F4F640ECD2E149A73",
                "E858F9D81E5430A57B36DAAB8F950A3C64E6EE6A63094D99283AFF767E124DF0",
                "59983C18F809E262923C53AEC295D30383B54E39D609D160AFCB1908D0BD8766",
                "21886CA989CA9C7D58087307CA93092D651EFA",
            )
        );
        assert_eq!(&*key.decrypt(&ct).unwrap(), b"encryption standard");
    }

    #[test]
    fn fixed_k_is_deterministic() {
        let k = Sm2DecryptionKey::from_scalar_bytes(&[0x11; 32]).unwrap();
        let a = k
            .public_key()
            .encrypt_with_fixed_k_insecure(b"abc", &[0x22; 32])
            .unwrap();
        let b = k
            .public_key()
            .encrypt_with_fixed_k_insecure(b"abc", &[0x22; 32])
            .unwrap();
        assert_eq!(a, b);
        assert_eq!(&*k.decrypt(&a).unwrap(), b"abc");
    }

    /// The crate's `rand_core` 0.10 RNG interface over the OS generator.
    struct TestRng;
    impl rand_core_010::TryRng for TestRng {
        type Error = core::convert::Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
            let mut b = [0u8; 4];
            self.try_fill_bytes(&mut b)?;
            Ok(u32::from_le_bytes(b))
        }
        fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
            let mut b = [0u8; 8];
            self.try_fill_bytes(&mut b)?;
            Ok(u64::from_le_bytes(b))
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
            dst.copy_from_slice(&crate::random_bytes(dst.len()));
            Ok(())
        }
    }
    impl rand_core_010::TryCryptoRng for TestRng {}
}
