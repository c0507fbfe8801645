//! SM2/SM3 interoperability with an independent implementation: the OpenSSL 3
//! command line from Debian (`scripts/test` installs it). OpenSSL signs with
//! user ID 1234567812345678 only when told (`-pkeyopt distid:...`), and reads
//! and writes DER signatures, converted here to and from r||s.

use std::path::Path;
use std::process::Command;

use menshen_crypto::{
    ecdsa_der_to_rs, ecdsa_rs_to_der, sm3, PrivateKey, PublicKey, SigAlg, SM2_DEFAULT_ID,
};

fn openssl(dir: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn int_2_sm2_signatures_interoperate_with_openssl_both_ways() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let msg = b"\"@status\": 200\n\"@signature-params\": (\"@status\");created=1700000000;keyid=\"bank\";alg=\"sm2-sm3\"";
    std::fs::write(dir.join("msg"), msg).unwrap();
    let distid = format!("distid:{SM2_DEFAULT_ID}");

    // OpenSSL key and signature -> Menshen verifies.
    openssl(dir, &["genpkey", "-algorithm", "SM2", "-out", "ossl.key"]);
    openssl(
        dir,
        &["pkey", "-in", "ossl.key", "-pubout", "-out", "ossl.pub"],
    );
    openssl(
        dir,
        &[
            "pkeyutl", "-sign", "-rawin", "-digest", "sm3", "-pkeyopt", &distid, "-inkey",
            "ossl.key", "-in", "msg", "-out", "ossl.sig",
        ],
    );
    let pk =
        PublicKey::from_spki_pem(&std::fs::read_to_string(dir.join("ossl.pub")).unwrap()).unwrap();
    assert_eq!(pk.alg(), SigAlg::Sm2Sm3);
    let rs = ecdsa_der_to_rs(&std::fs::read(dir.join("ossl.sig")).unwrap()).unwrap();
    assert!(
        pk.verify(msg, &rs),
        "Menshen must verify OpenSSL's SM2 signature"
    );
    assert!(!pk.verify(b"other", &rs));

    // The OpenSSL private key loads in Menshen and its signatures verify in OpenSSL.
    let k = PrivateKey::from_pkcs8_pem(&std::fs::read_to_string(dir.join("ossl.key")).unwrap())
        .unwrap();
    assert_eq!(k.public_key().fingerprint(), pk.fingerprint());

    // Menshen key and signature -> OpenSSL verifies.
    let (mk, mk_pem) = PrivateKey::generate(SigAlg::Sm2Sm3).unwrap();
    std::fs::write(dir.join("m.pub"), mk.public_key().to_pem()).unwrap();
    std::fs::write(dir.join("m.key"), mk_pem.as_bytes()).unwrap();
    openssl(dir, &["pkey", "-in", "m.key", "-noout"]);
    let sig = mk.sign(msg).unwrap();
    assert_eq!(sig.len(), 64);
    std::fs::write(dir.join("m.sig"), ecdsa_rs_to_der(&sig).unwrap()).unwrap();
    let out = openssl(
        dir,
        &[
            "pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pkeyopt", &distid, "-pubin",
            "-inkey", "m.pub", "-in", "msg", "-sigfile", "m.sig",
        ],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Signature Verified Successfully"));

    // A wrong user ID does not verify: the ID is really part of the signature.
    let bad = Command::new("openssl")
        .current_dir(dir)
        .args([
            "pkeyutl",
            "-verify",
            "-rawin",
            "-digest",
            "sm3",
            "-pkeyopt",
            "distid:0000000000000000",
            "-pubin",
            "-inkey",
            "m.pub",
            "-in",
            "msg",
            "-sigfile",
            "m.sig",
        ])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&bad.stdout).contains("Signature Verified Successfully"));

    // SM3 digests agree.
    let out = openssl(dir, &["dgst", "-sm3", "-r", "msg"]);
    let hex_out = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        hex_out.split_whitespace().next().unwrap(),
        hex::encode(sm3(msg))
    );
}

#[test]
fn der_and_rs_round_trip() {
    let (k, _) = PrivateKey::generate(SigAlg::EcdsaP256Sha256).unwrap();
    let sig = k.sign(b"x").unwrap();
    assert_eq!(
        ecdsa_der_to_rs(&ecdsa_rs_to_der(&sig).unwrap())
            .unwrap()
            .to_vec(),
        sig
    );
    assert!(ecdsa_der_to_rs(b"\x30\x00").is_err());
}

/// Whether the OpenSSL command line is here and does SM2 encryption. When it
/// is not, the caller skips with a message, unless
/// `MENSHEN_REQUIRE_SERVICES=1` (then the test fails).
fn openssl_sm2_encryption_available() -> bool {
    let ok = Command::new("openssl")
        .args(["list", "-public-key-algorithms"])
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("SM2"));
    if !ok {
        if std::env::var("MENSHEN_REQUIRE_SERVICES").as_deref() == Ok("1") {
            panic!("openssl with SM2 not installed and MENSHEN_REQUIRE_SERVICES=1");
        }
        eprintln!("skipped: openssl with SM2 not installed");
    }
    ok
}

/// CONF-2: SM2 public-key encryption (GB/T 32918.4, C1C3C2) interoperates
/// with OpenSSL both ways; OpenSSL writes the GM/T 0009 DER form, converted
/// by `ciphertext_from_der` / `ciphertext_to_der`.
#[test]
fn conf_2_sm2_encryption_interoperates_with_openssl_both_ways() {
    use menshen_crypto::sm2pke::{ciphertext_from_der, ciphertext_to_der};
    use menshen_crypto::{Sm2DecryptionKey, Sm2EncryptionKey};
    if !openssl_sm2_encryption_available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let session_key = [0x5au8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0xa5];
    std::fs::write(dir.join("key.bin"), session_key).unwrap();

    // OpenSSL encrypts for a Menshen key; Menshen decrypts.
    let (ours, ours_pem) = Sm2DecryptionKey::generate().unwrap();
    std::fs::write(dir.join("m.key"), ours_pem.as_bytes()).unwrap();
    openssl(dir, &["pkey", "-in", "m.key", "-pubout", "-out", "m.pub"]);
    let pub_pem = std::fs::read_to_string(dir.join("m.pub")).unwrap();
    assert_eq!(
        Sm2EncryptionKey::from_spki_pem(&pub_pem).unwrap().to_sec1(),
        ours.public_key().to_sec1()
    );
    openssl(
        dir,
        &[
            "pkeyutl",
            "-encrypt",
            "-pubin",
            "-inkey",
            "m.pub",
            "-in",
            "key.bin",
            "-out",
            "to_ours.der",
        ],
    );
    let c1c3c2 = ciphertext_from_der(&std::fs::read(dir.join("to_ours.der")).unwrap()).unwrap();
    assert_eq!(c1c3c2.len(), 65 + 32 + 16);
    assert_eq!(&*ours.decrypt(&c1c3c2).unwrap(), &session_key);

    // Menshen encrypts for an OpenSSL key; OpenSSL decrypts.
    openssl(dir, &["genpkey", "-algorithm", "SM2", "-out", "o.key"]);
    openssl(dir, &["pkey", "-in", "o.key", "-pubout", "-out", "o.pub"]);
    let theirs =
        Sm2EncryptionKey::from_spki_pem(&std::fs::read_to_string(dir.join("o.pub")).unwrap())
            .unwrap();
    let ct = theirs.encrypt(&session_key).unwrap();
    std::fs::write(dir.join("to_them.der"), ciphertext_to_der(&ct).unwrap()).unwrap();
    let out = openssl(
        dir,
        &[
            "pkeyutl",
            "-decrypt",
            "-inkey",
            "o.key",
            "-in",
            "to_them.der",
        ],
    );
    assert_eq!(out.stdout, session_key);
    // The OpenSSL private key also loads and decrypts in Menshen.
    let o = Sm2DecryptionKey::from_pkcs8_pem(&std::fs::read_to_string(dir.join("o.key")).unwrap())
        .unwrap();
    assert_eq!(&*o.decrypt(&ct).unwrap(), &session_key);
}
