//! Prints the protocol's test vectors as JSON (see `testdata/README.md`).
//!
//! ```text
//! cargo run -q -p menshen-protocol --example gen_vectors -- hmac > crates/menshen-protocol/testdata/hmac-vectors.json
//! cargo run -q -p menshen-protocol --example gen_vectors -- all  > crates/menshen-protocol/testdata/vectors.json
//! ```
//!
//! `hmac` (App_ID + App_Secret cases) is fully deterministic: the same inputs
//! always give the same file. `all` (the default) adds key-pair cases whose
//! test keys are generated fresh on each run; MAC, Ed25519 and RSA signatures
//! are deterministic, SM2 and ECDSA are not, so those vectors carry one valid
//! signature to verify rather than to reproduce.

use menshen_crypto::{DigestAlg, MacAlg, PrivateKey, SigAlg};
use menshen_protocol::signature::RequestView;
use menshen_protocol::{content_digest, sign_mac, sign_with_key, signature_base, SignatureParams};
use serde::Serialize;
use serde_json::json;

const APP_ID: &str = "app_0123456789abcdef0123";
/// The App_Secret of the main cases (a test value; real ones are 43 characters).
const SECRET: &str = "test-only-App-Secret-0123456789abcdefghijk";
/// A realistic App_Secret: 43 characters of base64url, as the bank issues them.
/// It is the base64url text of the bytes 0x00..=0x1f, and the HMAC key is this
/// TEXT, not those bytes.
const SECRET_43: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
const AUTHORITY: &str = "gateway.bank.example:8443";
const CREATED: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z
const NONCE: &str = "n-0123456789abcdef";
const BODY: &str = r#"{"amount":"100.00","currency":"CNY","to_account":"6217000010001234567"}"#;

/// One App_ID + App_Secret case of `hmac-vectors.json`.
#[derive(Serialize)]
struct HmacCase {
    name: String,
    description: String,
    inputs: Inputs,
    expected: Expected,
    #[serde(skip_serializing_if = "Option::is_none")]
    independent_check: Option<String>,
}

/// What a client starts from. `keyid` is always `app_id`.
#[derive(Serialize)]
struct Inputs {
    app_id: String,
    app_secret: String,
    alg: String,
    method: String,
    url: String,
    authority: String,
    path: String,
    query: Option<String>,
    /// Further request headers the signature covers, beside `content-digest`
    /// (computed from the body) and `x-app-id` (equal to `app_id`).
    extra_headers: Vec<(String, String)>,
    body: String,
    /// RFC 9530 algorithm for `Content-Digest`; `null` when there is no body.
    digest_alg: Option<String>,
    components: Vec<String>,
    created: i64,
    expires: Option<i64>,
    nonce: String,
}

/// What a correct implementation computes from the inputs.
#[derive(Serialize)]
struct Expected {
    content_digest: Option<String>,
    signature_base: String,
    signature_input: String,
    signature: String,
}

/// A request to sign, described as a client sees it.
struct Req<'a> {
    secret: &'a str,
    mac: MacAlg,
    digest: DigestAlg,
    method: &'a str,
    authority: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    extra_headers: &'a [(&'a str, &'a str)],
    body: &'a str,
    expires: Option<i64>,
    nonce: &'a str,
}

fn hmac_case(name: &str, description: &str, r: &Req<'_>) -> HmacCase {
    let has_body = !r.body.is_empty();
    let cd = has_body.then(|| content_digest(r.digest, r.body.as_bytes()));
    let mut headers = vec![("x-app-id".to_string(), APP_ID.to_string())];
    if let Some(cd) = &cd {
        headers.push(("content-digest".into(), cd.clone()));
    }
    for (k, v) in r.extra_headers {
        headers.push((k.to_string(), v.to_string()));
    }
    let view = RequestView {
        method: r.method.into(),
        authority: r.authority.into(),
        scheme: "https".into(),
        path: r.path.into(),
        query: r.query.map(str::to_string),
        headers,
    };
    // What `menshen_sdk::sign_request` covers, then any extra headers.
    let mut components = SignatureParams::required_components(r.query.is_some(), has_body);
    components.push("x-app-id".into());
    components.extend(r.extra_headers.iter().map(|(k, _)| k.to_string()));
    let params = SignatureParams {
        components: components.clone(),
        created: CREATED,
        expires: r.expires,
        nonce: r.nonce.into(),
        keyid: APP_ID.into(),
        alg: r.mac.name().into(),
    };
    let (si, sig, base) = sign_mac(r.mac, r.secret.as_bytes(), &params, &view).expect("sign");
    let url = match r.query {
        Some(q) => format!("https://{}{}?{q}", r.authority, r.path),
        None => format!("https://{}{}", r.authority, r.path),
    };
    HmacCase {
        name: name.into(),
        description: description.into(),
        inputs: Inputs {
            app_id: APP_ID.into(),
            app_secret: r.secret.into(),
            alg: r.mac.name().into(),
            method: r.method.into(),
            url,
            authority: r.authority.into(),
            path: r.path.into(),
            query: r.query.map(str::to_string),
            extra_headers: r
                .extra_headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: r.body.into(),
            digest_alg: has_body.then(|| r.digest.name().to_string()),
            components,
            created: CREATED,
            expires: r.expires,
            nonce: r.nonce.into(),
        },
        expected: Expected {
            content_digest: cd,
            signature_base: base,
            signature_input: si,
            signature: sig,
        },
        independent_check: None,
    }
}

fn hmac_cases() -> Vec<HmacCase> {
    let post = |mac, digest| Req {
        secret: SECRET,
        mac,
        digest,
        method: "POST",
        authority: AUTHORITY,
        path: "/v1/transfers",
        query: Some("channel=web"),
        extra_headers: &[],
        body: BODY,
        expires: None,
        nonce: NONCE,
    };
    let get = |mac| Req {
        method: "GET",
        path: "/v1/products",
        query: None,
        body: "",
        ..post(mac, DigestAlg::Sm3)
    };
    let mut sha_post = hmac_case(
        "hmac-sha256 POST with query and body",
        "The worked example of docs/protocol.md with hmac-sha256 and a sha-256 Content-Digest.",
        &post(MacAlg::HmacSha256, DigestAlg::Sha256),
    );
    sha_post.independent_check = Some(format!(
        "HMAC-SHA256 checked with OpenSSL 3: write expected.signature_base to base.txt with no \
         trailing newline, run `openssl dgst -sha256 -hmac '{SECRET}' -binary base.txt | base64`; \
         it prints the base64 between the colons of expected.signature"
    ));
    vec![
        hmac_case(
            "hmac-sm3 POST with query and body",
            "The worked example of docs/protocol.md: hmac-sm3 and an sm3 Content-Digest.",
            &post(MacAlg::HmacSm3, DigestAlg::Sm3),
        ),
        sha_post,
        hmac_case(
            "hmac-sm3 GET without body",
            "No query and no body: neither @query nor content-digest is covered.",
            &get(MacAlg::HmacSm3),
        ),
        hmac_case(
            "hmac-sha256 GET without body",
            "No query and no body, with hmac-sha256.",
            &get(MacAlg::HmacSha256),
        ),
        hmac_case(
            "hmac-sha256 GET, mixed-case host on the default port, percent-encoded path and query",
            "A 43-character App_Secret used as text. @authority is the Host as sent, lower-cased \
             (no port, as the client sent none); @path and @query keep their percent-encoding \
             byte for byte.",
            &Req {
                secret: SECRET_43,
                mac: MacAlg::HmacSha256,
                digest: DigestAlg::Sha256,
                method: "GET",
                authority: "API.Bank.Example",
                path: "/v1/products/%E7%90%86%E8%B4%A2",
                query: Some("from=2026-01-01&to=2026-01-31&fields=name%2Crate"),
                extra_headers: &[],
                body: "",
                expires: None,
                nonce: "Xq3d9LmR2tVb7YwK1pZs0A",
            },
        ),
        hmac_case(
            "hmac-sm3 POST with UTF-8 body, sha-256 digest, extra header and expires",
            "The digest algorithm is chosen independently of the MAC. The body is digested as its \
             UTF-8 bytes. content-type is covered as an extra header; expires is set.",
            &Req {
                secret: SECRET_43,
                mac: MacAlg::HmacSm3,
                digest: DigestAlg::Sha256,
                method: "POST",
                authority: AUTHORITY,
                path: "/v1/payments",
                query: None,
                extra_headers: &[("content-type", "application/json; charset=utf-8")],
                body: r#"{"payee":"张三","amount":"88.00","memo":"房租"}"#,
                expires: Some(CREATED + 60),
                nonce: "Xq3d9LmR2tVb7YwK1pZs0B",
            },
        ),
    ]
}

/// `vectors.json`: the three main MAC cases and one key-pair case per algorithm.
fn all_cases() -> serde_json::Value {
    fn request(
        method: &str,
        path: &str,
        query: Option<&str>,
        body: &str,
        digest: DigestAlg,
    ) -> (RequestView, Option<String>) {
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
        let mut components = SignatureParams::required_components(
            view.query.is_some(),
            view.headers.iter().any(|(k, _)| k == "content-digest"),
        );
        components.push("x-app-id".into());
        SignatureParams {
            components,
            created: CREATED,
            expires: None,
            nonce: nonce.into(),
            keyid: APP_ID.into(),
            alg: alg.into(),
        }
    }

    let mut cases = vec![];
    #[allow(clippy::type_complexity)]
    let macs: [(&str, MacAlg, DigestAlg, &str, &str, Option<&str>, &str); 3] = [
        (
            "hmac-sm3 POST with query and body",
            MacAlg::HmacSm3,
            DigestAlg::Sm3,
            "POST",
            "/v1/transfers",
            Some("channel=web"),
            BODY,
        ),
        (
            "hmac-sha256 POST with query and body",
            MacAlg::HmacSha256,
            DigestAlg::Sha256,
            "POST",
            "/v1/transfers",
            Some("channel=web"),
            BODY,
        ),
        (
            "hmac-sm3 GET without body",
            MacAlg::HmacSm3,
            DigestAlg::Sm3,
            "GET",
            "/v1/products",
            None,
            "",
        ),
    ];
    for (name, mac, digest, method, path, query, body) in macs {
        let (view, cd) = request(method, path, query, body, digest);
        let p = params(&view, mac.name(), NONCE);
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
        let (view, cd) = request(
            "POST",
            "/v1/transfers",
            Some("channel=web"),
            BODY,
            DigestAlg::Sm3,
        );
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
    json!({ "cases": cases })
}

fn main() -> std::process::ExitCode {
    let which = std::env::args().nth(1);
    let out = match which.as_deref() {
        Some("hmac") => serde_json::to_string_pretty(&hmac_cases()),
        None | Some("all") => serde_json::to_string_pretty(&all_cases()),
        Some(other) => {
            eprintln!("usage: gen_vectors [hmac|all]  (unknown `{other}`)");
            return std::process::ExitCode::from(2);
        }
    };
    println!("{}", out.expect("serialize"));
    std::process::ExitCode::SUCCESS
}
