//! Signing requests (RFC 9421 signatures, RFC 9530 `Content-Digest`).

use bytes::Bytes;
use http::{HeaderValue, Request};
use menshen_crypto::DigestAlg;
use menshen_protocol::signature::RequestView;
use menshen_protocol::{content_digest, headers, sign_mac, sign_with_key, SignatureParams};

use crate::credentials::Signer;
use crate::{Credentials, SdkError};

/// Options of one signature (defaults: now, fresh nonce, SM3 digest).
#[derive(Debug, Clone)]
pub struct SignOptions {
    /// `created`, unix seconds (default: now).
    pub created: Option<i64>,
    /// `nonce` (default: 128 random bits).
    pub nonce: Option<String>,
    /// Digest algorithm for bodies.
    pub digest: DigestAlg,
    /// Extra header names to cover.
    pub extra_components: Vec<String>,
}

impl Default for SignOptions {
    fn default() -> Self {
        SignOptions {
            created: None,
            nonce: None,
            digest: DigestAlg::Sm3,
            extra_components: vec![],
        }
    }
}

/// Sign `req` in place: adds `Content-Digest` (when there is a body), `X-App-Id`,
/// `Signature-Input` and `Signature`. The URI must be absolute.
pub fn sign_request(
    req: &mut Request<Bytes>,
    creds: &Credentials,
    opts: &SignOptions,
) -> Result<(), SdkError> {
    let uri = req.uri().clone();
    let authority = uri
        .authority()
        .ok_or_else(|| SdkError::Url("request URI must be absolute".into()))?
        .as_str()
        .to_string();
    let has_body = !req.body().is_empty();
    let hs = req.headers_mut();
    if has_body {
        let cd = content_digest(opts.digest, req.body());
        req.headers_mut().insert(
            headers::CONTENT_DIGEST,
            HeaderValue::from_str(&cd).map_err(|e| SdkError::Sign(e.to_string()))?,
        );
    } else {
        hs.remove(headers::CONTENT_DIGEST);
    }
    req.headers_mut().insert(
        headers::APP_ID,
        HeaderValue::from_str(&creds.app_id).map_err(|e| SdkError::Sign(e.to_string()))?,
    );
    let mut components = SignatureParams::required_components(uri.query().is_some(), has_body);
    components.push(headers::APP_ID.to_string());
    components.extend(opts.extra_components.iter().cloned());
    let params = SignatureParams {
        components,
        created: opts.created.unwrap_or_else(now_unix),
        expires: None,
        nonce: opts
            .nonce
            .clone()
            .unwrap_or_else(|| menshen_crypto::random_token(16)),
        keyid: creds.app_id.clone(),
        alg: creds.alg_name().to_string(),
    };
    let view = RequestView {
        method: req.method().as_str().to_string(),
        authority,
        scheme: uri.scheme_str().unwrap_or("https").to_string(),
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        headers: req
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
    };
    let (si, sig) = match &creds.signer {
        Signer::Mac(secret, alg) => {
            let (si, sig, _base) = sign_mac(*alg, secret, &params, &view)
                .map_err(|e| SdkError::Sign(e.to_string()))?;
            (si, sig)
        }
        Signer::Key(key) => {
            sign_with_key(key, &params, &view, None).map_err(|e| SdkError::Sign(e.to_string()))?
        }
    };
    let hs = req.headers_mut();
    hs.insert(
        headers::SIGNATURE_INPUT,
        HeaderValue::from_str(&si).map_err(|e| SdkError::Sign(e.to_string()))?,
    );
    hs.insert(
        headers::SIGNATURE,
        HeaderValue::from_str(&sig).map_err(|e| SdkError::Sign(e.to_string()))?,
    );
    Ok(())
}

pub(crate) fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
