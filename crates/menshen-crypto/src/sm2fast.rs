//! SM2 signatures (GB/T 32918.2) the way a gateway uses them: a few keys,
//! each used for many signatures.
//!
//! Why this exists: per A2 call Menshen verifies one SM2 signature and makes
//! one, with the same few keys every time, and the `sm2` crate redoes per call
//! what depends only on the key:
//!
//! - **Verify** ([`Sm2Verifier`]): the crate computes `s·G + t·P` with a
//!   constant-time `lincomb` that uses no table for either point (~240 µs
//!   here). Verification only handles public values (message, signature,
//!   public key), so variable-time arithmetic is sound, and a table of
//!   multiples of each registered key, built once when the key is loaded
//!   (~25 KiB, ~0.2 ms), makes `t·P` cost what `s·G` costs with the crate's
//!   own base-point table: ~95 µs per verification.
//! - **Sign** ([`Sm2Signer`]): the crate inverts `1 + d` (a constant-time
//!   scalar inversion, ~19 µs) and runs an HMAC-DRBG (RFC 6979) per
//!   signature. Here `(1 + d)^-1` is computed once per key and `k` comes from
//!   the system CSPRNG (aws-lc-rs), as GB/T 32918.2 §6.1 A3 specifies
//!   (random k), so a signature costs one constant-time fixed-base
//!   multiplication plus one inversion for the affine x.
//!
//! - **Encryption** (`sm2pke`): [k]P for the receiver's static key P uses
//!   the same per-key table ([`KeyTable`]), read with the crate's
//!   constant-time selection, since k is secret.
//!
//! Only the equations are written here; every group and field operation
//! is the `sm2` / `primeorder` crates' (point addition and doubling, the
//! constant-time base-point table, radix-16 digits, lookup tables, scalar
//! arithmetic). Tests check both against the crate, against OpenSSL
//! (tests/sm2_openssl.rs) and against malformed input.

use primeorder::{LookupTable, Radix16Decomposition, Radix16Digits};
use sm2::elliptic_curve::group::Group;
use sm2::elliptic_curve::ops::{MulByGeneratorVartime, Reduce};
use sm2::elliptic_curve::point::AffineCoordinates;
use sm2::elliptic_curve::sec1::ToSec1Point;
use sm2::elliptic_curve::PrimeField;
use sm2::{FieldBytes, NonZeroScalar, ProjectivePoint, Scalar, Sm2};
use sm3::Digest;
use zeroize::Zeroizing;

/// Tables per key: one per 8 bits of the scalar plus one (as the crate's
/// base-point table): 33 tables of 8 points.
const TABLES: usize = 33;

/// SM2 curve parameters a and b and the generator's coordinates (GB/T
/// 32918.5), as they enter the user hash Z.
const A: [u8; 32] = hex32("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC");
const B: [u8; 32] = hex32("28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93");
const GX: [u8; 32] = hex32("32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7");
const GY: [u8; 32] = hex32("BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0");

const fn hex32(s: &str) -> [u8; 32] {
    const fn nib(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'A'..=b'F' => c - b'A' + 10,
            _ => panic!("not upper-case hex"),
        }
    }
    let b = s.as_bytes();
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = (nib(b[2 * i]) << 4) | nib(b[2 * i + 1]);
        i += 1;
    }
    out
}

/// Z_A = SM3(ENTL || ID || a || b || xG || yG || xA || yA).
fn user_hash(id: &str, public_key: &sm2::PublicKey) -> Option<[u8; 32]> {
    let id = id.as_bytes();
    let entl = u16::try_from(id.len().checked_mul(8)?).ok()?;
    let sec1 = public_key.to_sec1_point(false);
    let xy = sec1.as_bytes().get(1..65)?;
    let mut h = sm3::Sm3::new();
    h.update(entl.to_be_bytes());
    h.update(id);
    for part in [&A, &B, &GX, &GY] {
        h.update(part);
    }
    h.update(xy);
    Some(h.finalize().into())
}

/// e = SM3(Z_A || M) mod n.
fn message_scalar(z: &[u8; 32], msg: &[u8]) -> Scalar {
    let mut h = sm3::Sm3::new();
    h.update(z);
    h.update(msg);
    <Scalar as Reduce<FieldBytes>>::reduce(&FieldBytes::from(<[u8; 32]>::from(h.finalize())))
}

/// A uniformly random scalar in [1, n-1] from the system CSPRNG (aws-lc-rs),
/// by rejection (a draw is rejected with probability ~2^-32). `None` only if
/// the CSPRNG fails.
pub(crate) fn random_nonzero_scalar() -> Option<Zeroizing<Scalar>> {
    use aws_lc_rs::rand::SecureRandom;
    let rng = aws_lc_rs::rand::SystemRandom::new();
    for _ in 0..64 {
        let mut kb = Zeroizing::new([0u8; 32]);
        rng.fill(&mut kb[..]).ok()?;
        let k: Option<Scalar> = Scalar::from_repr(FieldBytes::from(*kb)).into();
        match k.map(Zeroizing::new) {
            Some(k) if !bool::from(k.is_zero()) => return Some(k),
            _ => continue,
        }
    }
    None
}

/// An SM2 private key prepared for signing (the bank's response-signing and
/// audit keys).
pub struct Sm2Signer {
    d: Zeroizing<Scalar>,
    /// (1 + d)^-1 mod n.
    d_plus_1_inv: Zeroizing<Scalar>,
    z: [u8; 32],
}

impl std::fmt::Debug for Sm2Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sm2Signer(..)")
    }
}

impl Sm2Signer {
    /// Prepare `secret` for distinguishing identifier `id`.
    pub fn new(id: &str, secret: &sm2::SecretKey) -> Option<Self> {
        let z = user_hash(id, &secret.public_key())?;
        let d: NonZeroScalar = secret.to_nonzero_scalar();
        let d = Zeroizing::new(*d.as_ref());
        // d = n - 1 has no inverse of 1 + d: such a key cannot sign (§6.1).
        let inv: Option<Scalar> = (*d + Scalar::ONE).invert().into();
        Some(Sm2Signer {
            d,
            d_plus_1_inv: Zeroizing::new(inv?),
            z,
        })
    }

    /// Sign `msg`: r || s, 64 bytes. `None` only if the system CSPRNG fails.
    pub fn sign(&self, msg: &[u8]) -> Option<[u8; 64]> {
        let e = message_scalar(&self.z, msg);
        // A3-A6, retried on the (negligible) rejections.
        for _ in 0..64 {
            let k = random_nonzero_scalar()?;
            // (x1, y1) = [k]G, constant time (the crate's base-point table).
            let x1: FieldBytes = ProjectivePoint::mul_by_generator(&*k).to_affine().x();
            let r = e + <Scalar as Reduce<FieldBytes>>::reduce(&x1);
            if bool::from(r.is_zero() | (r + *k).is_zero()) {
                continue;
            }
            let s = *self.d_plus_1_inv * (*k - r * *self.d);
            if bool::from(s.is_zero()) {
                continue;
            }
            let mut out = [0u8; 64];
            out[..32].copy_from_slice(&r.to_repr());
            out[32..].copy_from_slice(&s.to_repr());
            return Some(out);
        }
        None
    }
}

/// Multiples of one fixed point P, the layout of the crate's base-point
/// table: `tables[i]` holds 1..=8 times 2^(8i)·P (33 tables of 8 projective
/// points, ~25 KiB, built with 264 doublings and 231 additions). A public
/// key that is used many times (a registered verifying key, an encryption
/// key) gets one, so k·P costs what k·G costs.
#[derive(Clone)]
pub(crate) struct KeyTable {
    tables: Box<[LookupTable<ProjectivePoint>; TABLES]>,
}

impl KeyTable {
    /// The table of `p` (a public point: nothing here is secret).
    pub(crate) fn new(p: ProjectivePoint) -> Self {
        let mut base = p;
        let mut tables = Box::new([LookupTable::<ProjectivePoint>::default(); TABLES]);
        for t in tables.iter_mut() {
            *t = LookupTable::new(base);
            for _ in 0..8 {
                base = base.double();
            }
        }
        KeyTable { tables }
    }

    /// k·P in constant time (k secret): the crate's constant-time table
    /// selection (`LookupTable::select` reads every entry) and complete
    /// additions, the same sequence as its base-point `mul`.
    pub(crate) fn mul(&self, k: &Scalar) -> ProjectivePoint {
        // Signed radix-16 digits d_0..d_64 with k = Σ d_j 16^j, |d_j| <= 8.
        // Even digits sit at 2^(8i) (table i), odd ones at 16·2^(8i): sum
        // those separately and multiply that sum by 16 once at the end.
        let digits = Radix16Decomposition::<Radix16Digits<Sm2>>::new(k);
        let n = TABLES - 1;
        let mut even = self.tables[n].select(digits[2 * n]);
        let mut odd = ProjectivePoint::IDENTITY;
        for i in 0..n {
            even += &self.tables[i].select(digits[2 * i]);
            odd += &self.tables[i].select(digits[2 * i + 1]);
        }
        for _ in 0..4 {
            odd = odd.double();
        }
        even + odd
    }

    /// k·P in variable time (public scalars only).
    fn mul_vartime(&self, k: &Scalar) -> ProjectivePoint {
        let digits = Radix16Decomposition::<Radix16Digits<Sm2>>::new(k);
        let n = TABLES - 1;
        let mut even = self.tables[n].select_vartime(digits[2 * n]);
        let mut odd = ProjectivePoint::IDENTITY;
        for i in 0..n {
            even += &self.tables[i].select_vartime(digits[2 * i]);
            odd += &self.tables[i].select_vartime(digits[2 * i + 1]);
        }
        for _ in 0..4 {
            odd = odd.double();
        }
        even + odd
    }
}

/// A registered SM2 public key prepared for fast verification.
#[derive(Clone)]
pub struct Sm2Verifier {
    /// Z_A = SM3(ENTL || ID || a || b || xG || yG || xA || yA).
    z: [u8; 32],
    /// Multiples of the public key.
    table: KeyTable,
}

impl std::fmt::Debug for Sm2Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sm2Verifier(..)")
    }
}

impl Sm2Verifier {
    /// Prepare `public_key` for distinguishing identifier `id`.
    pub fn new(id: &str, public_key: &sm2::PublicKey) -> Option<Self> {
        let z = user_hash(id, public_key)?;
        Some(Sm2Verifier {
            z,
            table: KeyTable::new(public_key.to_projective()),
        })
    }

    /// Verify signature `sig` (r || s, 64 bytes) over `msg`.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        if sig.len() != 64 {
            return false;
        }
        let (Some(r), Some(s)) = (scalar_in_range(&sig[..32]), scalar_in_range(&sig[32..])) else {
            return false;
        };
        let e = message_scalar(&self.z, msg);
        // t = r + s mod n, t != 0
        let t = r + s;
        if bool::from(t.is_zero()) {
            return false;
        }
        // (x1, y1) = s·G + t·P, not the point at infinity
        let point = ProjectivePoint::mul_by_generator_vartime(&s) + self.table.mul_vartime(&t);
        if bool::from(point.is_identity()) {
            return false;
        }
        let x1: FieldBytes = point.to_affine().x();
        // R = e + x1 mod n must equal r
        r == e + <Scalar as Reduce<FieldBytes>>::reduce(&x1)
    }
}

/// A scalar in [1, n-1] from 32 big-endian bytes, or None.
fn scalar_in_range(b: &[u8]) -> Option<Scalar> {
    let bytes: [u8; 32] = b.try_into().ok()?;
    let s: Scalar = Option::from(Scalar::from_repr(FieldBytes::from(bytes)))?;
    (!bool::from(s.is_zero())).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sm2::dsa::signature::{Signer, Verifier};

    fn key(seed: u8) -> sm2::dsa::SigningKey {
        let mut b = [seed; 32];
        b[0] = 1;
        sm2::dsa::SigningKey::new(
            crate::SM2_DEFAULT_ID,
            &sm2::SecretKey::from_slice(&b).unwrap(),
        )
        .unwrap()
    }

    fn verifier(k: &sm2::dsa::SigningKey) -> Sm2Verifier {
        let pk = sm2::PublicKey::from_affine(*k.verifying_key().as_affine()).unwrap();
        Sm2Verifier::new(crate::SM2_DEFAULT_ID, &pk).unwrap()
    }

    /// Agrees with the `sm2` crate on its own signatures, for many keys and
    /// messages, and refuses each mutated one exactly when the crate does.
    #[test]
    fn agrees_with_the_sm2_crate() {
        for seed in 0..24u8 {
            let k = key(seed);
            let v = verifier(&k);
            let msg = format!("message {seed}").repeat(seed as usize + 1);
            let sig: sm2::dsa::Signature = k.sign(msg.as_bytes());
            let raw = sig.to_bytes();
            assert!(v.verify(msg.as_bytes(), &raw), "seed {seed}");
            assert!(k.verifying_key().verify(msg.as_bytes(), &sig).is_ok());
            // Another message, another key, any flipped bit: refused.
            assert!(!v.verify(b"other", &raw));
            assert!(!verifier(&key(seed.wrapping_add(100))).verify(msg.as_bytes(), &raw));
            for bit in [0usize, 7, 100, 255, 256, 300, 511] {
                let mut bad = raw.to_vec();
                bad[bit / 8] ^= 1 << (bit % 8);
                let crate_says = sm2::dsa::Signature::from_slice(&bad)
                    .is_ok_and(|s| k.verifying_key().verify(msg.as_bytes(), &s).is_ok());
                assert!(!crate_says);
                assert!(!v.verify(msg.as_bytes(), &bad), "seed {seed} bit {bit}");
            }
        }
    }

    /// The crate's verifier accepts this signer's signatures (and so does
    /// ours); k is fresh each time, so two signatures of one message differ.
    #[test]
    fn signer_agrees_with_the_sm2_crate() {
        for seed in 0..24u8 {
            let k = key(seed);
            let mut b = [seed; 32];
            b[0] = 1;
            let signer = Sm2Signer::new(
                crate::SM2_DEFAULT_ID,
                &sm2::SecretKey::from_slice(&b).unwrap(),
            )
            .unwrap();
            let msg = format!("response {seed}").repeat(seed as usize + 1);
            let raw = signer.sign(msg.as_bytes()).unwrap();
            let sig = sm2::dsa::Signature::from_slice(&raw).unwrap();
            assert!(
                k.verifying_key().verify(msg.as_bytes(), &sig).is_ok(),
                "seed {seed}"
            );
            assert!(verifier(&k).verify(msg.as_bytes(), &raw));
            assert!(k.verifying_key().verify(b"other", &sig).is_err());
            assert_ne!(raw, signer.sign(msg.as_bytes()).unwrap(), "k must be fresh");
        }
    }

    /// The per-key table gives the crate's k·P, constant-time and
    /// variable-time, for random and edge scalars (1, 2, n-1, digits at the
    /// ends of the radix-16 range).
    #[test]
    fn key_table_agrees_with_the_crate() {
        let n_minus_1 = hex32("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54122");
        let mut scalars = vec![
            Scalar::ONE,
            Scalar::ONE + Scalar::ONE,
            Scalar::from_repr(FieldBytes::from(n_minus_1)).unwrap(),
            Scalar::from_repr(FieldBytes::from([0x88u8; 32])).unwrap(),
            Scalar::from_repr(FieldBytes::from([0x77u8; 32])).unwrap(),
        ];
        for _ in 0..16 {
            scalars.push(*random_nonzero_scalar().unwrap());
        }
        for seed in 0..4u8 {
            let p = sm2::PublicKey::from_affine(*key(seed).verifying_key().as_affine()).unwrap();
            let t = KeyTable::new(p.to_projective());
            for k in &scalars {
                let want = (p.to_projective() * k).to_affine();
                assert_eq!(t.mul(k).to_affine(), want);
                assert_eq!(t.mul_vartime(k).to_affine(), want);
            }
            assert!(bool::from(t.mul(&Scalar::ZERO).is_identity()));
        }
    }

    /// A key with d = n - 1 cannot sign (1 + d has no inverse): refused.
    #[test]
    fn signer_refuses_the_key_without_an_inverse() {
        let n_minus_1 = hex32("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54122");
        let sk = sm2::SecretKey::from_slice(&n_minus_1).unwrap();
        assert!(Sm2Signer::new(crate::SM2_DEFAULT_ID, &sk).is_none());
    }

    /// r or s of 0, >= n, a wrong length or t = r + s = 0: refused, no panic.
    #[test]
    fn refuses_out_of_range_signatures() {
        let k = key(3);
        let v = verifier(&k);
        let sig: sm2::dsa::Signature = k.sign(b"m");
        let raw = sig.to_bytes().to_vec();
        let n = hex32("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123");
        let mut zero_r = raw.clone();
        zero_r[..32].fill(0);
        let mut zero_s = raw.clone();
        zero_s[32..].fill(0);
        let mut big_r = raw.clone();
        big_r[..32].copy_from_slice(&n);
        let mut max_s = raw.clone();
        max_s[32..].fill(0xff);
        // s = n - r, so t = r + s = 0 mod n.
        let r = scalar_in_range(&raw[..32]).unwrap();
        let mut t_zero = raw.clone();
        t_zero[32..].copy_from_slice(&(-r).to_repr());
        for bad in [
            zero_r,
            zero_s,
            big_r,
            max_s,
            t_zero,
            raw[..63].to_vec(),
            [raw.clone(), vec![0]].concat(),
            vec![],
        ] {
            assert!(!v.verify(b"m", &bad));
        }
        assert!(v.verify(b"m", &raw));
    }
}
