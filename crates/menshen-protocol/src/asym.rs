//! Key-pair signatures (A2/A3, INT-2) over the same RFC 9421 profile, and the
//! bank's response signature: it covers `@status`, `content-digest`, the
//! transaction serial number and the request's own signature
//! (`"signature";req;key="sig1"`), so each side can prove what the other sent.

use base64::Engine;
use menshen_crypto::{PrivateKey, PublicKey};

use crate::signature::{
    signature_base_with_request, Components, ParsedSignature, SignatureParams, SIGNATURE_LABEL,
};
use crate::{headers, ProtocolError};

/// A response as signing and verification see it.
#[derive(Debug, Clone)]
pub struct ResponseView {
    /// Status code.
    pub status: u16,
    /// Headers (lower-case names).
    pub headers: Vec<(String, String)>,
}

impl Components for ResponseView {
    fn method(&self) -> &str {
        ""
    }
    fn authority(&self) -> Option<&str> {
        None
    }
    fn scheme(&self) -> &str {
        "https"
    }
    fn path(&self) -> &str {
        ""
    }
    fn query(&self) -> Option<&str> {
        None
    }
    fn header(&self, name: &str) -> Option<String> {
        crate::signature::combined_header(&self.headers, name)
    }
    fn status(&self) -> Option<u16> {
        Some(self.status)
    }
}

/// Components the bank's response signature covers. `request_label` is the
/// label of the request's signature, when the request had one.
pub fn response_components(request_label: Option<&str>) -> Vec<String> {
    let mut c = vec![
        "@status".to_string(),
        headers::CONTENT_DIGEST.to_string(),
        headers::TXN_ID.to_string(),
    ];
    if let Some(l) = request_label {
        c.push(format!("{};req;key=\"{l}\"", headers::SIGNATURE));
    }
    c
}

/// Sign `msg` (and, for `;req` components, `req`) with `key`; returns the
/// `Signature-Input` and `Signature` values.
pub fn sign_with_key(
    key: &PrivateKey,
    params: &SignatureParams,
    msg: &dyn Components,
    req: Option<&dyn Components>,
) -> Result<(String, String), ProtocolError> {
    let params_value = params.serialize()?;
    let base = signature_base_with_request(&params.components, &params_value, msg, req)?;
    let sig = key
        .sign(base.as_bytes())
        .map_err(|e| crate::malformed("signature", e.to_string()))?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(sig);
    Ok((
        format!("{SIGNATURE_LABEL}={params_value}"),
        format!("{SIGNATURE_LABEL}=:{b64}:"),
    ))
}

/// Verify a parsed signature with `pk`. The `alg` parameter must name the
/// key's own algorithm (no algorithm confusion).
pub fn verify_with_key(
    pk: &PublicKey,
    parsed: &ParsedSignature,
    msg: &dyn Components,
    req: Option<&dyn Components>,
) -> Result<bool, ProtocolError> {
    if parsed.params.alg != pk.alg().name() {
        return Ok(false);
    }
    let base =
        signature_base_with_request(&parsed.params.components, &parsed.params_value, msg, req)?;
    Ok(pk.verify(base.as_bytes(), &parsed.signature))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::RequestView;
    use menshen_crypto::SigAlg;

    #[test]
    fn int_2_response_signature_binds_request_signature() {
        let (bank, _) = PrivateKey::generate(SigAlg::Sm2Sm3).unwrap();
        let req = RequestView {
            method: "GET".into(),
            authority: "gw".into(),
            scheme: "https".into(),
            path: "/v1/x".into(),
            query: None,
            headers: vec![("signature".into(), "sig1=:AAAA:".into())],
        };
        let resp = ResponseView {
            status: 200,
            headers: vec![
                ("content-digest".into(), "sm3=:BBBB:".into()),
                ("x-menshen-txn-id".into(), "T1".into()),
            ],
        };
        let params = SignatureParams {
            components: response_components(Some("sig1")),
            created: 1,
            expires: None,
            nonce: "0123456789abcdef".into(),
            keyid: "bank-1".into(),
            alg: "sm2-sm3".into(),
        };
        let (si, s) = sign_with_key(&bank, &params, &resp, Some(&req)).unwrap();
        assert!(si.contains("\"signature\";req;key=\"sig1\""), "{si}");
        let parsed = ParsedSignature::parse(&si, &s).unwrap();
        assert!(verify_with_key(bank.public_key(), &parsed, &resp, Some(&req)).unwrap());
        // Another request signature, status or body digest: no longer verifies.
        let mut other_req = req.clone();
        other_req.headers[0].1 = "sig1=:AAAB:".into();
        assert!(!verify_with_key(bank.public_key(), &parsed, &resp, Some(&other_req)).unwrap());
        let mut r2 = resp.clone();
        r2.status = 201;
        assert!(!verify_with_key(bank.public_key(), &parsed, &r2, Some(&req)).unwrap());
        let mut r3 = resp.clone();
        r3.headers[0].1 = "sm3=:CCCC:".into();
        assert!(!verify_with_key(bank.public_key(), &parsed, &r3, Some(&req)).unwrap());
    }
}
