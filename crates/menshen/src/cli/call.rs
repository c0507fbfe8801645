//! `menshen call ...`: one signed call to the gateway.

use anyhow::{bail, Context};
use bytes::Bytes;
use http::Request;
use menshen_crypto::MacAlg;
use menshen_sdk::{Credentials, SignOptions};
use serde_json::Value;

use super::render::print_json;
use super::CallArgs;

/// `menshen call ...`
pub async fn call(a: CallArgs) -> anyhow::Result<i32> {
    let creds = match (&a.secret_file, &a.key) {
        (_, Some(k)) => Credentials::key_pair_from_file(&a.app_id, k)
            .with_context(|| format!("--key {}", k.display()))?,
        (Some(f), None) => {
            let alg = MacAlg::from_name(&a.alg)
                .ok_or_else(|| anyhow::anyhow!("--alg: must be hmac-sm3 or hmac-sha256"))?;
            Credentials::hmac_from_file(&a.app_id, f, alg)
                .with_context(|| format!("--secret-file {}", f.display()))?
        }
        (None, None) => bail!("give --secret-file or --key"),
    };
    let ca = std::fs::read(&a.ca).with_context(|| format!("--ca {}", a.ca.display()))?;
    let identity = match (&a.cert, &a.cert_key) {
        (Some(c), Some(k)) => Some((
            std::fs::read(c).with_context(|| format!("--cert {}", c.display()))?,
            zeroize::Zeroizing::new(
                std::fs::read(k).with_context(|| format!("--cert-key {}", k.display()))?,
            ),
        )),
        _ => None,
    };
    let http = menshen_sdk::http_client_with_identity(
        Some(&ca),
        identity.as_ref().map(|(c, k)| (c.as_slice(), k.as_slice())),
    )?;
    let bank_keys = match &a.bank_key {
        Some(p) => vec![menshen_crypto::PublicKey::from_spki_pem(
            &std::fs::read_to_string(p).with_context(|| format!("--bank-key {}", p.display()))?,
        )
        .map_err(|e| anyhow::anyhow!("--bank-key {}: {e}", p.display()))?],
        None => vec![],
    };
    let method =
        http::Method::from_bytes(a.method.to_ascii_uppercase().as_bytes()).context("METHOD")?;
    let body = match &a.data {
        Some(d) => {
            serde_json::from_str::<Value>(d).context("--data: not valid JSON")?;
            Bytes::from(d.clone())
        }
        None => Bytes::new(),
    };
    // Field envelopes (protocol §12): encrypt first, then digest and sign.
    let body = if a.encrypt.is_empty() {
        body
    } else {
        let bank = bank_encryption_key(&http, &a.url).await?;
        let sealed = menshen_sdk::seal_request_fields(&body, &a.encrypt, &bank)?;
        eprintln!(
            "encrypted {} for the bank's encryption key {}",
            a.encrypt.join(", "),
            bank.key_id
        );
        Bytes::from(sealed)
    };
    if a.verbose && !body.is_empty() {
        eprintln!("> body: {}", String::from_utf8_lossy(&body));
    }
    let mut b = Request::builder().method(method).uri(&a.url);
    if a.data.is_some() {
        b = b.header(http::header::CONTENT_TYPE, "application/json");
    }
    let mut extra = Vec::new();
    for h in &a.headers {
        let (n, v) = h
            .split_once(':')
            .ok_or_else(|| anyhow::anyhow!("--header `{h}`: use `Name: value`"))?;
        let n = n.trim().to_ascii_lowercase();
        b = b.header(n.as_str(), v.trim());
        extra.push(n);
    }
    // A customer's token (issue 11): sent as a bearer token and covered by
    // the signature, so it cannot be moved to another request.
    let token = match (&a.token, &a.token_file) {
        (Some(t), _) => Some(t.trim().to_string()),
        (None, Some(f)) => Some(
            std::fs::read_to_string(f)
                .with_context(|| format!("--token-file {}", f.display()))?
                .trim()
                .to_string(),
        ),
        (None, None) => None,
    };
    if let Some(t) = &token {
        b = b.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
        extra.push("authorization".to_string());
    }
    let mut req = b.body(body).with_context(|| format!("URL {}", a.url))?;
    let opts = SignOptions {
        extra_components: extra,
        ..Default::default()
    };
    menshen_sdk::sign_request(&mut req, &creds, &opts)?;
    if a.verbose {
        for (k, v) in req.headers() {
            // Never print a secret: the customer's token is elided.
            let shown = if k == http::header::AUTHORIZATION {
                "Bearer ***"
            } else {
                v.to_str().unwrap_or("?")
            };
            eprintln!("> {k}: {shown}");
        }
    }
    let sent_headers = req.headers().clone();
    let resp = menshen_sdk::send(&http, req).await?;
    let verdict = (!bank_keys.is_empty())
        .then(|| menshen_sdk::verify_response(&resp, &sent_headers, &bank_keys));
    // Decrypt only an answer whose bank signature verified.
    let resp = match (&verdict, &a.enc_key) {
        (Some(Ok(())), Some(k)) if !a.decrypt.is_empty() => {
            let pem = zeroize::Zeroizing::new(
                std::fs::read_to_string(k).with_context(|| format!("--enc-key {}", k.display()))?,
            );
            let key = menshen_crypto::Sm2DecryptionKey::from_pkcs8_pem(&pem)
                .map_err(|e| anyhow::anyhow!("--enc-key {}: {e}", k.display()))?;
            if a.verbose {
                eprintln!("< body: {}", String::from_utf8_lossy(&resp.body));
            }
            let opened = menshen_sdk::open_response_fields(&resp.body, &a.decrypt, &key)?;
            eprintln!(
                "decrypted {} with the app's encryption key",
                a.decrypt.join(", ")
            );
            menshen_sdk::Response {
                body: opened.into(),
                ..resp
            }
        }
        _ => resp,
    };
    crate::out!("HTTP {}", resp.status);
    for (k, v) in &resp.headers {
        crate::out!("{k}: {}", v.to_str().unwrap_or("?"));
    }
    crate::out!();
    match serde_json::from_slice::<Value>(&resp.body) {
        Ok(v) => print_json(&v),
        Err(_) => crate::out!("{}", String::from_utf8_lossy(&resp.body)),
    }
    match verdict {
        Some(Ok(())) => eprintln!("response signature: verified with the bank's key"),
        Some(Err(e)) => {
            eprintln!("error: {e}");
            return Ok(2);
        }
        None => {}
    }
    Ok(if resp.status < 400 { 0 } else { 1 })
}

/// The bank's current encryption key, from the gateway's key set at the
/// origin of `url`.
async fn bank_encryption_key(
    http: &menshen_sdk::HttpClient,
    url: &str,
) -> anyhow::Result<menshen_sdk::BankEncryptionKey> {
    let uri: http::Uri = url.parse().with_context(|| format!("URL {url}"))?;
    let keys_url = format!(
        "{}://{}/.well-known/menshen/keys",
        uri.scheme_str().unwrap_or("https"),
        uri.authority().map(|a| a.as_str()).unwrap_or_default()
    );
    let req = Request::get(&keys_url)
        .body(Bytes::new())
        .with_context(|| format!("URL {keys_url}"))?;
    let resp = menshen_sdk::send(http, req).await?;
    if resp.status != 200 {
        bail!("{keys_url}: HTTP {}", resp.status);
    }
    Ok(menshen_sdk::BankEncryptionKey::from_key_set(&resp.body)?)
}
