//! Verifying the bank's signed responses (AUTH-2, INT-2).

use http::HeaderMap;
use menshen_crypto::PublicKey;
use menshen_protocol::{
    headers, verify_content_digest, verify_with_key, ParsedSignature, ResponseView,
};

use crate::{Response, SdkError};

/// Verify the bank's signature on a response (AUTH-2, INT-2): the body matches
/// `Content-Digest`; the signature covers `@status`, `content-digest`,
/// `x-menshen-txn-id` and, when the request was signed, the request's own
/// signature (`"signature";req;key=...`); and it verifies with one of
/// `bank_keys`. `request_headers` are the headers the request was sent with.
pub fn verify_response(
    resp: &Response,
    request_headers: &HeaderMap,
    bank_keys: &[PublicKey],
) -> Result<(), SdkError> {
    let bad = |m: &str| SdkError::ResponseSignature(m.to_string());
    let h = |n: &str| resp.headers.get(n).and_then(|v| v.to_str().ok());
    let (Some(si), Some(sig)) = (h(headers::SIGNATURE_INPUT), h(headers::SIGNATURE)) else {
        return Err(bad("the response is not signed"));
    };
    let parsed =
        ParsedSignature::parse(si, sig).map_err(|e| SdkError::ResponseSignature(e.to_string()))?;
    let cd = h(headers::CONTENT_DIGEST).ok_or_else(|| bad("no content-digest"))?;
    verify_content_digest(cd, &resp.body)
        .map_err(|_| bad("the body does not match its content-digest"))?;
    let view = |hs: &HeaderMap, status: u16| ResponseView {
        status,
        headers: hs
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
    };
    let req_signed = request_headers.contains_key(headers::SIGNATURE);
    let mut required = menshen_protocol::response_components(None);
    if req_signed {
        let label = request_headers
            .get(headers::SIGNATURE_INPUT)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split('=').next())
            .unwrap_or(menshen_protocol::SIGNATURE_LABEL);
        required = menshen_protocol::response_components(Some(label));
    }
    for c in &required {
        if !parsed.params.components.contains(c) {
            return Err(SdkError::ResponseSignature(format!(
                "the signature does not cover {c}"
            )));
        }
    }
    let rv = view(&resp.headers, resp.status);
    let reqv = view(request_headers, 0);
    for k in bank_keys {
        if verify_with_key(k, &parsed, &rv, Some(&reqv)).unwrap_or(false) {
            return Ok(());
        }
    }
    Err(bad("the signature does not verify with the bank's keys"))
}
