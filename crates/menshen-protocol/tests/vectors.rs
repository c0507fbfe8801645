//! The test vectors in `testdata/vectors.json` (see testdata/README.md), the
//! same ones docs/protocol.md shows: recompute every digest and signature
//! base; MAC, Ed25519 and RSA signatures must be reproduced exactly, SM2 and
//! ECDSA signatures must verify.

use base64::Engine;
use menshen_crypto::{MacAlg, PrivateKey, PublicKey};
use menshen_protocol::signature::RequestView;
use menshen_protocol::{content_digest, signature_base, verify_content_digest, ParsedSignature};
use serde_json::Value;

#[test]
fn int_1_int_2_vectors_reproduce() {
    let v: Value = serde_json::from_str(include_str!("../testdata/vectors.json")).unwrap();
    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() >= 7);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let body = c["body"].as_str().unwrap();
        let mut headers = vec![("x-app-id".to_string(), c["app_id"].as_str().unwrap().to_string())];
        if let Some(cd) = c["content_digest"].as_str() {
            verify_content_digest(cd, body.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
            let alg = menshen_crypto::DigestAlg::from_name(cd.split('=').next().unwrap()).unwrap();
            assert_eq!(content_digest(alg, body.as_bytes()), cd, "{name}");
            headers.push(("content-digest".into(), cd.to_string()));
        }
        let view = RequestView {
            method: c["method"].as_str().unwrap().into(),
            authority: c["authority"].as_str().unwrap().into(),
            scheme: "https".into(),
            path: c["path"].as_str().unwrap().into(),
            query: c["query"].as_str().map(str::to_string),
            headers,
        };
        let parsed = ParsedSignature::parse(c["signature_input"].as_str().unwrap(), c["signature"].as_str().unwrap()).unwrap();
        let base = signature_base(&parsed.params.components, &parsed.params_value, &view).unwrap();
        assert_eq!(base, c["signature_base"].as_str().unwrap(), "{name}");
        let sig_b64 = base64::engine::general_purpose::STANDARD.encode(&parsed.signature);
        assert_eq!(c["signature"].as_str().unwrap(), format!("sig1=:{sig_b64}:"));
        let alg = c["alg"].as_str().unwrap();
        if let Some(mac) = MacAlg::from_name(alg) {
            let tag = mac.mac(c["app_secret"].as_str().unwrap().as_bytes(), base.as_bytes());
            assert_eq!(tag.to_vec(), parsed.signature, "{name}: MAC reproduces");
        } else {
            let pk = PublicKey::from_spki_pem(c["public_key_pem"].as_str().unwrap()).unwrap();
            assert!(pk.verify(base.as_bytes(), &parsed.signature), "{name}: signature verifies");
            let sk = PrivateKey::from_pkcs8_pem(c["private_key_pem"].as_str().unwrap()).unwrap();
            if c["deterministic"].as_bool().unwrap() {
                assert_eq!(sk.sign(base.as_bytes()).unwrap(), parsed.signature, "{name}: signature reproduces");
            }
            assert!(!pk.verify(format!("{base}x").as_bytes(), &parsed.signature));
        }
    }
}
