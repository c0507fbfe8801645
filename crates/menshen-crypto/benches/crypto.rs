//! The cryptography of an A2 call, one operation at a time: SM2 sign and
//! verify (request verify + response sign bound an A2 call), P-256, Ed25519
//! and RSA-2048 verify (and the `sm2` crate's own SM2 sign and verify, the
//! baseline of the A2 crypto bound), SM3 and HMAC-SM3 over 1 KiB, SM4-GCM over 1 KiB.
//! `bench/crypto.sh` runs this beside `openssl speed` on the same machine.

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use menshen_crypto::{sm3, MacAlg, PrivateKey, SigAlg};
use std::time::Duration;

const BASE: &str = "\"@method\": POST\n\"@authority\": gateway.bank.example:8443\n\"@path\": /v1/transfers\n\"@query\": ?channel=web\n\"content-digest\": sm3=:+6UOjzDYerpZPDf0+/GbVSmvUiLQNGF+CZzlE6nGU8Y=:\n\"x-app-id\": app_0123456789abcdef0123\n\"@signature-params\": (\"@method\" \"@authority\" \"@path\" \"@query\" \"content-digest\" \"x-app-id\");created=1767225600;nonce=\"n-0123456789abcdef\";keyid=\"app_0123456789abcdef0123\";alg=\"sm2-sm3\"";

fn bench(c: &mut Criterion) {
    let msg = BASE.as_bytes();
    for alg in SigAlg::ALL {
        let (k, _) = PrivateKey::generate(*alg).unwrap();
        let sig = k.sign(msg).unwrap();
        let pk = k.public_key().clone();
        if *alg == SigAlg::Sm2Sm3 {
            c.bench_function("sm2 sign", |b| b.iter(|| k.sign(black_box(msg)).unwrap()));
        }
        c.bench_function(&format!("{} verify", alg.name()), |b| {
            b.iter(|| assert!(pk.verify(black_box(msg), &sig)))
        });
    }
    // The bound of issue #3 is stated with the `sm2` crate's own sign and
    // verify; Menshen verifies with a per-key table (src/sm2fast.rs).
    {
        use sm2::dsa::signature::{Signer, Verifier};
        let sk = sm2::SecretKey::from_slice(&[0x42; 32]).unwrap();
        let k = sm2::dsa::SigningKey::new(menshen_crypto::SM2_DEFAULT_ID, &sk).unwrap();
        let sig: sm2::dsa::Signature = k.sign(msg);
        let vk = k.verifying_key().clone();
        c.bench_function("sm2 crate sign", |b| {
            b.iter(|| -> sm2::dsa::Signature { k.sign(black_box(msg)) })
        });
        c.bench_function("sm2 crate verify", |b| {
            b.iter(|| vk.verify(black_box(msg), &sig).unwrap())
        });
    }
    // Field envelopes (issue 13): wrapping and unwrapping a 16-byte
    // session key.
    let (dk, _) = menshen_crypto::Sm2DecryptionKey::generate().unwrap();
    let ek = dk.public_key().clone();
    c.bench_function("sm2 encrypt 16 B (wrap a session key)", |b| {
        b.iter(|| ek.encrypt(black_box(&[7u8; 16])).unwrap())
    });
    let wrapped = ek.encrypt(&[7u8; 16]).unwrap();
    c.bench_function("sm2 decrypt 16 B (unwrap a session key)", |b| {
        b.iter(|| dk.decrypt(black_box(&wrapped)).unwrap())
    });
    let kib = vec![0x5au8; 1024];
    c.bench_function("sm3 1KiB", |b| b.iter(|| sm3(black_box(&kib))));
    c.bench_function("hmac-sm3 1KiB", |b| {
        b.iter(|| MacAlg::HmacSm3.mac(b"0123456789abcdef0123456789abcdef", black_box(&kib)))
    });
    let cipher = aes_gcm::AesGcm::<sm4::Sm4, U12>::new_from_slice(&[7u8; 16]).unwrap();
    let nonce = aes_gcm::Nonce::<U12>::from_slice(&[1u8; 12]);
    // Encrypts the same buffer in place each time: no allocation in the loop.
    let mut buf = kib.clone();
    c.bench_function("sm4-gcm encrypt 1KiB", |b| {
        b.iter(|| {
            cipher
                .encrypt_in_place_detached(nonce, b"", black_box(&mut buf[..]))
                .unwrap()
        })
    });
}

fn config() -> Criterion {
    Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(30)
}

criterion_group! { name = benches; config = config(); targets = bench }
criterion_main!(benches);
