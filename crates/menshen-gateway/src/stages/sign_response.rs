//! The bank signs its responses (AUTH-2, INT-2): for APIs whose controls say
//! so (always for A2/A3) and, when configured, for every response. The
//! signature covers `@status`, `content-digest` (added here), the transaction
//! serial number and the request's own signature (`;req`), so the app can
//! prove what the bank answered to which request. Error responses are signed
//! too.

use bytes::Bytes;
use http::{HeaderValue, Response};
use menshen_crypto::DigestAlg;
use menshen_protocol::{
    content_digest, headers, response_components, sign_with_key, ResponseView, SignatureParams,
};

use crate::exchange::Exchange;
use crate::GatewayError;

/// Stage name (response phase).
pub const NAME: &str = "sign_response";

/// Whether this exchange's response must be signed.
pub fn wanted(ex: &Exchange, sign_all: bool) -> bool {
    sign_all || ex.api.as_ref().is_some_and(|a| a.plan.sign_response)
}

/// Request phase: refuse before forwarding when a response that must be
/// signed could not be (no signing key), so the upstream never acts on a
/// call whose answer cannot be delivered.
pub fn on_request(ex: &Exchange, sign_all: bool) -> Result<(), GatewayError> {
    if wanted(ex, sign_all) && ex.snapshot.bank_signer.is_none() {
        return Err(GatewayError::SigningUnavailable(
            "no response-signing key in the keystore".into(),
        ));
    }
    Ok(())
}

/// Response phase: sign `resp` when wanted.
pub fn on_response(
    ex: &Exchange,
    sign_all: bool,
    resp: &mut Response<Bytes>,
) -> Result<(), GatewayError> {
    if wanted(ex, sign_all) && !sign(ex, resp) {
        return Err(GatewayError::SigningUnavailable(
            "response could not be signed".into(),
        ));
    }
    Ok(())
}

/// Add `Content-Digest`, `Signature-Input` and `Signature` to `resp`.
/// Returns false when no signing key is available (the caller fails closed).
pub fn sign(ex: &Exchange, resp: &mut Response<Bytes>) -> bool {
    let Some(signer) = ex.snapshot.bank_signer.clone() else {
        return false;
    };
    let cd = content_digest(DigestAlg::Sm3, resp.body());
    if let Ok(v) = HeaderValue::from_str(&cd) {
        resp.headers_mut().insert(headers::CONTENT_DIGEST, v);
    }
    let view = ResponseView {
        status: resp.status().as_u16(),
        headers: resp
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
    };
    // Cover the request's signature only when it parsed (its label is known).
    let label = ex.signature.as_ref().map(|s| s.label.as_str());
    let params = SignatureParams {
        components: response_components(label),
        created: ex.now_unix(),
        expires: None,
        nonce: menshen_crypto::random_token(16),
        keyid: signer.key_id.clone(),
        alg: signer.key.alg().name().to_string(),
    };
    match sign_with_key(
        &signer.key,
        &params,
        &view,
        label.map(|_| ex as &dyn menshen_protocol::signature::Components),
    ) {
        Ok((si, sig)) => {
            let h = resp.headers_mut();
            if let (Ok(a), Ok(b)) = (HeaderValue::from_str(&si), HeaderValue::from_str(&sig)) {
                h.insert(headers::SIGNATURE_INPUT, a);
                h.insert(headers::SIGNATURE, b);
                return true;
            }
            false
        }
        Err(e) => {
            tracing::error!(txn_id = %ex.txn_id, error = %e, "response signing failed");
            false
        }
    }
}
