//! The test vectors of `testdata/` (see `testdata/README.md`), the same ones
//! `docs/protocol.md` shows.
//!
//! - `hmac-vectors.json`: every App_ID + App_Secret case is recomputed from
//!   its inputs with the crate's public API (digest, signature base,
//!   `Signature-Input`, `Signature`), parsed back with `ParsedSignature::parse`
//!   and its MAC verified; the MACs are also pinned to the values OpenSSL
//!   computed independently.
//! - `vectors.json`: MAC, Ed25519 and RSA signatures must be reproduced
//!   exactly, SM2 and ECDSA signatures (randomized) must verify.
//! - `docs/protocol.md` must show every HMAC vector byte for byte and list
//!   every error code with its HTTP status.

use base64::Engine;
use menshen_crypto::{DigestAlg, MacAlg, PrivateKey, PublicKey};
use menshen_protocol::signature::RequestView;
use menshen_protocol::{
    content_digest, sign_mac, signature_base, verify_content_digest, ErrorCode, ParsedSignature,
    SignatureParams,
};
use serde_json::Value;

const HMAC_VECTORS: &str = include_str!("../testdata/hmac-vectors.json");
const ALL_VECTORS: &str = include_str!("../testdata/vectors.json");
const PROTOCOL_DOC: &str = include_str!("../../../docs/protocol.md");

/// The MACs OpenSSL 3.0 printed for each case's `expected.signature_base`
/// (`openssl dgst -sm3|-sha256 -hmac APP_SECRET -binary base.txt | base64`,
/// see testdata/README.md): an implementation independent of this crate.
const OPENSSL_MACS: &[(&str, &str)] = &[
    (
        "hmac-sm3 POST with query and body",
        "fCu7YgFuYrMgqyL+CB3R8Kpmo9W2J59w+T6hQt87gLE=",
    ),
    (
        "hmac-sha256 POST with query and body",
        "NmyUDSDP68lxcZ4mjKsgjthmO8D/F14xRVNs/J/PEDg=",
    ),
    (
        "hmac-sm3 GET without body",
        "s3OTFYFmj9LDwaUAnK83qLIuCH6HpuBKhW0eSS9ZIRM=",
    ),
    (
        "hmac-sha256 GET without body",
        "0CWTtR0gxZPOcSXIP0Qr8G1xzj9k/yOtmMuy9TtTaYs=",
    ),
    (
        "hmac-sha256 GET, mixed-case host on the default port, percent-encoded path and query",
        "mrwBZ5np/qhgqnW0rQZ9tTL2tO/ZPZP5mKjz9LIFa6c=",
    ),
    (
        "hmac-sm3 POST with UTF-8 body, sha-256 digest, extra header and expires",
        "sFhFtT2WYr+aTQQmKsKA5UoQQzRLwgnBJ/ObbxiZn3E=",
    ),
];

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("`{key}` is not a string in {v}"))
}

fn opt_s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    match &v[key] {
        Value::Null => None,
        Value::String(x) => Some(x),
        other => panic!("`{key}` is neither null nor a string: {other}"),
    }
}

fn hmac_cases() -> Vec<Value> {
    let v: Value = serde_json::from_str(HMAC_VECTORS).expect("hmac-vectors.json is JSON");
    let cases = v.as_array().expect("hmac-vectors.json is an array").clone();
    assert!(
        cases.len() >= 4,
        "at least the POST and GET cases of both algorithms"
    );
    cases
}

/// The `sig1=:<base64>:` payload.
fn sig_b64(signature: &str) -> &str {
    signature
        .strip_prefix("sig1=:")
        .and_then(|r| r.strip_suffix(':'))
        .unwrap_or_else(|| panic!("not a sig1 byte sequence: {signature}"))
}

#[test]
fn int_1_hmac_vectors_reproduce_and_verify() {
    for c in hmac_cases() {
        let name = s(&c, "name");
        let i = &c["inputs"];
        let e = &c["expected"];
        let app_id = s(i, "app_id");
        let secret = s(i, "app_secret").as_bytes();
        let mac = MacAlg::from_name(s(i, "alg")).unwrap_or_else(|| panic!("{name}: alg"));
        let body = s(i, "body");
        let query = opt_s(i, "query");

        // The URL is exactly https://authority + path [+ "?" + query].
        let url = match query {
            Some(q) => format!("https://{}{}?{q}", s(i, "authority"), s(i, "path")),
            None => format!("https://{}{}", s(i, "authority"), s(i, "path")),
        };
        assert_eq!(s(i, "url"), url, "{name}: url");

        // Content-Digest: present exactly when there is a body.
        let mut headers = vec![("x-app-id".to_string(), app_id.to_string())];
        match (opt_s(i, "digest_alg"), opt_s(e, "content_digest")) {
            (Some(alg), Some(cd)) => {
                assert!(!body.is_empty(), "{name}: a digest without a body");
                let alg = DigestAlg::from_name(alg).unwrap_or_else(|| panic!("{name}: digest"));
                assert_eq!(
                    content_digest(alg, body.as_bytes()),
                    cd,
                    "{name}: content-digest"
                );
                assert_eq!(
                    verify_content_digest(cd, body.as_bytes()),
                    Ok(alg),
                    "{name}"
                );
                assert!(verify_content_digest(cd, format!("{body} ").as_bytes()).is_err());
                headers.push(("content-digest".into(), cd.to_string()));
            }
            (None, None) => assert!(body.is_empty(), "{name}: a body without a digest"),
            _ => panic!("{name}: digest_alg and content_digest disagree"),
        }
        let extra: Vec<(String, String)> = serde_json::from_value(i["extra_headers"].clone())
            .unwrap_or_else(|err| panic!("{name}: extra_headers: {err}"));
        headers.extend(extra.iter().cloned());

        // Covered components: the profile's required ones, x-app-id, extras.
        let components: Vec<String> = serde_json::from_value(i["components"].clone()).unwrap();
        let mut want = SignatureParams::required_components(query.is_some(), !body.is_empty());
        want.push("x-app-id".into());
        want.extend(extra.iter().map(|(k, _)| k.clone()));
        assert_eq!(components, want, "{name}: components");

        let view = RequestView {
            method: s(i, "method").into(),
            authority: s(i, "authority").into(),
            scheme: "https".into(),
            path: s(i, "path").into(),
            query: query.map(str::to_string),
            headers,
        };
        let params = SignatureParams {
            components,
            created: i["created"].as_i64().unwrap(),
            expires: i["expires"].as_i64(),
            nonce: s(i, "nonce").into(),
            keyid: app_id.into(),
            alg: mac.name().into(),
        };

        // Signing reproduces every expected value.
        let (si, sig, base) = sign_mac(mac, secret, &params, &view).unwrap();
        assert_eq!(base, s(e, "signature_base"), "{name}: signature base");
        assert_eq!(si, s(e, "signature_input"), "{name}: Signature-Input");
        assert_eq!(sig, s(e, "signature"), "{name}: Signature");
        let params_value = params.serialize().unwrap();
        assert_eq!(
            signature_base(&params.components, &params_value, &view).unwrap(),
            base
        );
        assert!(base.ends_with(&format!("\"@signature-params\": {params_value}")));
        assert!(
            !base.ends_with('\n'),
            "{name}: no newline after the last line"
        );
        assert!(!base.contains('\r'));

        // Verifying as the gateway does: parse, coverage, base, MAC.
        let parsed = ParsedSignature::parse(s(e, "signature_input"), s(e, "signature"))
            .unwrap_or_else(|err| panic!("{name}: {err}"));
        assert_eq!(parsed.label, "sig1");
        assert_eq!(parsed.params, params, "{name}: parsed parameters");
        assert_eq!(
            format!("sig1={}", parsed.params_value),
            s(e, "signature_input")
        );
        parsed
            .check_coverage(query.is_some(), !body.is_empty())
            .unwrap_or_else(|err| panic!("{name}: {err}"));
        let base2 = signature_base(&parsed.params.components, &parsed.params_value, &view).unwrap();
        assert_eq!(base2, base);
        assert!(
            mac.verify(secret, base2.as_bytes(), &parsed.signature),
            "{name}: MAC verifies"
        );
        assert!(!mac.verify(secret, format!("{base2}\n").as_bytes(), &parsed.signature));
        let other = match mac {
            MacAlg::HmacSm3 => MacAlg::HmacSha256,
            MacAlg::HmacSha256 => MacAlg::HmacSm3,
        };
        assert!(!other.verify(secret, base2.as_bytes(), &parsed.signature));

        // The App_Secret is the key as text: its base64url-decoded bytes
        // (when it decodes at all) give another MAC.
        if let Ok(raw) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s(i, "app_secret"))
        {
            assert!(
                !mac.verify(&raw, base2.as_bytes(), &parsed.signature),
                "{name}"
            );
        }
    }
}

#[test]
fn int_1_hmac_vectors_match_openssl() {
    let cases = hmac_cases();
    assert_eq!(
        cases.len(),
        OPENSSL_MACS.len(),
        "one OpenSSL result per case"
    );
    for (name, openssl_b64) in OPENSSL_MACS {
        let c = cases
            .iter()
            .find(|c| s(c, "name") == *name)
            .unwrap_or_else(|| panic!("no case `{name}`"));
        assert_eq!(
            sig_b64(s(&c["expected"], "signature")),
            *openssl_b64,
            "{name}"
        );
    }
    // The case the vectors file marks as checked independently.
    let sha = cases
        .iter()
        .find(|c| s(c, "name") == "hmac-sha256 POST with query and body")
        .unwrap();
    assert!(s(sha, "independent_check").contains("openssl dgst -sha256 -hmac"));
}

#[test]
fn hmac_vectors_agree_with_vectors_json() {
    let all: Value = serde_json::from_str(ALL_VECTORS).unwrap();
    let mut shared = 0;
    for c in hmac_cases() {
        let Some(o) = all["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == c["name"])
        else {
            continue;
        };
        shared += 1;
        let (i, e) = (&c["inputs"], &c["expected"]);
        assert_eq!(o["app_secret"], i["app_secret"]);
        assert_eq!(o["body"], i["body"]);
        for k in [
            "content_digest",
            "signature_base",
            "signature_input",
            "signature",
        ] {
            assert_eq!(o[k], e[k], "{}: {k}", s(&c, "name"));
        }
    }
    assert_eq!(shared, 3, "the three MAC cases of vectors.json");
}

#[test]
fn protocol_doc_shows_every_hmac_vector() {
    for c in hmac_cases() {
        let name = s(&c, "name");
        let e = &c["expected"];
        for k in ["signature_base", "signature_input", "signature"] {
            assert!(
                PROTOCOL_DOC.contains(s(e, k)),
                "docs/protocol.md lacks the {k} of `{name}`:\n{}",
                s(e, k)
            );
        }
        if let Some(cd) = opt_s(e, "content_digest") {
            assert!(PROTOCOL_DOC.contains(cd), "docs/protocol.md lacks `{cd}`");
        }
        assert!(PROTOCOL_DOC.contains(s(&c["inputs"], "app_secret")));
    }
}

#[test]
fn protocol_doc_lists_every_error_code() {
    for code in ErrorCode::ALL {
        let row = format!("| `{}` | {} |", code.as_str(), code.status());
        assert!(
            PROTOCOL_DOC.contains(&row),
            "docs/protocol.md lacks the row `{row}`"
        );
    }
}

#[test]
fn int_1_int_2_vectors_reproduce() {
    let v: Value = serde_json::from_str(ALL_VECTORS).unwrap();
    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() >= 7);
    for c in cases {
        let name = s(c, "name");
        let body = s(c, "body");
        let mut headers = vec![("x-app-id".to_string(), s(c, "app_id").to_string())];
        if let Some(cd) = opt_s(c, "content_digest") {
            verify_content_digest(cd, body.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
            let alg = DigestAlg::from_name(cd.split('=').next().unwrap()).unwrap();
            assert_eq!(content_digest(alg, body.as_bytes()), cd, "{name}");
            headers.push(("content-digest".into(), cd.to_string()));
        }
        let view = RequestView {
            method: s(c, "method").into(),
            authority: s(c, "authority").into(),
            scheme: "https".into(),
            path: s(c, "path").into(),
            query: opt_s(c, "query").map(str::to_string),
            headers,
        };
        let parsed = ParsedSignature::parse(s(c, "signature_input"), s(c, "signature")).unwrap();
        let base = signature_base(&parsed.params.components, &parsed.params_value, &view).unwrap();
        assert_eq!(base, s(c, "signature_base"), "{name}");
        let b64 = base64::engine::general_purpose::STANDARD.encode(&parsed.signature);
        assert_eq!(s(c, "signature"), format!("sig1=:{b64}:"));
        let alg = s(c, "alg");
        if let Some(mac) = MacAlg::from_name(alg) {
            let tag = mac.mac(s(c, "app_secret").as_bytes(), base.as_bytes());
            assert_eq!(tag.to_vec(), parsed.signature, "{name}: MAC reproduces");
        } else {
            let pk = PublicKey::from_spki_pem(s(c, "public_key_pem")).unwrap();
            assert!(
                pk.verify(base.as_bytes(), &parsed.signature),
                "{name}: signature verifies"
            );
            let sk = PrivateKey::from_pkcs8_pem(s(c, "private_key_pem")).unwrap();
            if c["deterministic"].as_bool().unwrap() {
                assert_eq!(
                    sk.sign(base.as_bytes()).unwrap(),
                    parsed.signature,
                    "{name}: signature reproduces"
                );
            }
            assert!(!pk.verify(format!("{base}x").as_bytes(), &parsed.signature));
        }
    }
}

/// Section 4.6 shows the `sm2-sm3` case of `vectors.json` byte for byte (an
/// outside implementer had only a pointer into the source tree), and the
/// signature shown verifies with the public key shown.
#[test]
fn int_2_protocol_doc_shows_the_sm2_vector_and_it_verifies() {
    let all: Value = serde_json::from_str(ALL_VECTORS).unwrap();
    let c = all["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| s(c, "alg") == "sm2-sm3")
        .expect("an sm2-sm3 case");
    for k in [
        "signature_base",
        "signature_input",
        "signature",
        "private_key_pem",
        "public_key_pem",
    ] {
        assert!(
            PROTOCOL_DOC.contains(s(c, k).trim()),
            "docs/protocol.md lacks the {k} of the sm2-sm3 vector"
        );
    }
    let pk = PublicKey::from_spki_pem(s(c, "public_key_pem")).unwrap();
    let sig = base64::engine::general_purpose::STANDARD
        .decode(sig_b64(s(c, "signature")))
        .unwrap();
    assert!(pk.verify(s(c, "signature_base").as_bytes(), &sig));
}
