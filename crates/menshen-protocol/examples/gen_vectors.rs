//! Regenerates `testdata/vectors.json`: `cargo run -p menshen-protocol --example gen_vectors > crates/menshen-protocol/testdata/vectors.json`
//! Key pairs are generated fresh each run (test keys only, never use them);
//! MAC, Ed25519 and RSA signatures are deterministic, SM2 and ECDSA are not,
//! so their vectors carry one valid signature to verify rather than reproduce.

use menshen_crypto::{DigestAlg, MacAlg, PrivateKey, SigAlg};
use menshen_protocol::signature::RequestView;
use menshen_protocol::{content_digest, sign_mac, sign_with_key, signature_base, SignatureParams};
use serde_json::json;

const APP_ID: &str = "app_0123456789abcdef0123";
const SECRET: &str = "test-only-App-Secret-0123456789abcdefghijk";
const AUTHORITY: &str = "gateway.bank.example:8443";
const CREATED: i64 = 1_767_225_600;
const BODY: &str = r#"{"amount":"100.00","currency":"CNY","to_account":"6217000010001234567"}"#;

fn request(method: &str, path: &str, query: Option<&str>, body: &str, digest: DigestAlg) -> (RequestView, Option<String>) {
    let mut headers = vec![("x-app-id".to_string(), APP_ID.to_string())];
    let cd = (!body.is_empty()).then(|| content_digest(digest, body.as_bytes()));
    if let Some(cd) = &cd {
        headers.push(("content-digest".into(), cd.clone()));
    }
    (
        RequestView {
            method: method.into(),
            authority: AUTHORITY.into(),
            scheme: "https".into(),
            path: path.into(),
            query: query.map(str::to_string),
            headers,
        },
        cd,
    )
}

fn params(view: &RequestView, alg: &str, nonce: &str) -> SignatureParams {
    let mut components = SignatureParams::required_components(view.query.is_some(), view.headers.iter().any(|(k, _)| k == "content-digest"));
    components.push("x-app-id".into());
    SignatureParams { components, created: CREATED, expires: None, nonce: nonce.into(), keyid: APP_ID.into(), alg: alg.into() }
}

fn main() {
    let mut cases = vec![];
    for (name, mac, digest, method, path, query, body) in [
        ("hmac-sm3 POST with query and body", MacAlg::HmacSm3, DigestAlg::Sm3, "POST", "/v1/transfers", Some("channel=web"), BODY),
        ("hmac-sha256 POST with query and body", MacAlg::HmacSha256, DigestAlg::Sha256, "POST", "/v1/transfers", Some("channel=web"), BODY),
        ("hmac-sm3 GET without body", MacAlg::HmacSm3, DigestAlg::Sm3, "GET", "/v1/products", None, ""),
    ] {
        let (view, cd) = request(method, path, query, body, digest);
        let p = params(&view, mac.name(), "n-0123456789abcdef");
        let (si, sig, base) = sign_mac(mac, SECRET.as_bytes(), &p, &view).unwrap();
        cases.push(json!({
            "name": name, "alg": mac.name(), "app_id": APP_ID, "app_secret": SECRET,
            "method": method, "authority": AUTHORITY, "path": path, "query": query, "body": body,
            "content_digest": cd, "signature_base": base, "signature_input": si, "signature": sig,
            "deterministic": true,
        }));
    }
    for alg in SigAlg::ALL {
        let (key, pem) = PrivateKey::generate(*alg).unwrap();
        let (view, cd) = request("POST", "/v1/transfers", Some("channel=web"), BODY, DigestAlg::Sm3);
        let p = params(&view, alg.name(), "n-fedcba9876543210");
        let (si, sig) = sign_with_key(&key, &p, &view, None).unwrap();
        let base = signature_base(&p.components, &p.serialize().unwrap(), &view).unwrap();
        let deterministic = matches!(alg, SigAlg::Ed25519 | SigAlg::RsaV15Sha256);
        cases.push(json!({
            "name": format!("{} POST with query and body", alg.name()), "alg": alg.name(), "app_id": APP_ID,
            "private_key_pem": pem.as_str(), "public_key_pem": key.public_key().to_pem(),
            "method": "POST", "authority": AUTHORITY, "path": "/v1/transfers", "query": "channel=web", "body": BODY,
            "content_digest": cd, "signature_base": base, "signature_input": si, "signature": sig,
            "deterministic": deterministic,
        }));
    }
    println!("{}", serde_json::to_string_pretty(&json!({"cases": cases})).unwrap());
}
