//! Authenticate the app (AUTH-1, AUTH-2, INT-1, INT-2): an RFC 9421 signature
//! made with the App_Secret (`hmac-sm3`, `hmac-sha256`) or a registered key
//! pair (`sm2-sm3`, `ecdsa-p256-sha256`, `ed25519`, `rsa-v1_5-sha256`), the
//! body's `Content-Digest` (RFC 9530), the `created`/`expires` window (INT-4,
//! first half; the nonce is the replay stage's), and the API's minimum
//! controls (LVL-3): above A1 a MAC alone is refused unless the connection
//! carries the app's bound client certificate.
//!
//! The client learns one stable code; the audit record keeps the precise reason.

use menshen_crypto::{MacAlg, SigAlg};
use menshen_model::AuthMethod;
use menshen_protocol::{
    headers, signature_base, verify_content_digest, verify_with_key, ErrorCode, ParsedSignature,
    ProtocolError,
};

use crate::exchange::Exchange;
use crate::GatewayError;

fn malformed(e: ProtocolError) -> GatewayError {
    GatewayError::new(ErrorCode::MalformedSignature, e.to_string())
}

/// Verify the request's signature and resolve `ex.app`.
pub fn on_request(ex: &mut Exchange, window_secs: u32) -> Result<(), GatewayError> {
    let (Some(input), Some(sig)) = (
        ex.header_str(headers::SIGNATURE_INPUT),
        ex.header_str(headers::SIGNATURE),
    ) else {
        return Err(GatewayError::new(
            ErrorCode::MissingSignature,
            "no signature headers",
        ));
    };
    let parsed = ParsedSignature::parse(input, sig).map_err(malformed)?;
    ex.claimed_app_id = Some(parsed.params.keyid.clone());
    // Kept even if it fails below: the bank's signed answer covers it (;req).
    ex.signature = Some(parsed.clone());
    let has_query = ex.parts.uri.query().is_some();
    let has_body = !ex.body.is_empty();
    parsed
        .check_coverage(has_query, has_body)
        .map_err(malformed)?;
    if parsed.params.components.iter().any(|c| c.contains(';')) {
        return Err(malformed(ProtocolError::MissingComponent(
            "no `;req`/`;key` components in requests".into(),
        )));
    }
    if let Some(claimed) = ex.header_str(headers::APP_ID) {
        if claimed != parsed.params.keyid {
            return Err(GatewayError::new(
                ErrorCode::MalformedSignature,
                "x-app-id header differs from keyid",
            ));
        }
    }

    let snapshot = ex.snapshot.clone();
    let Some(app) = snapshot.app(&parsed.params.keyid) else {
        return Err(GatewayError::new(
            ErrorCode::InvalidSignature,
            "unknown App_ID",
        ));
    };
    let mac = MacAlg::from_name(&parsed.params.alg);
    let sig_alg = SigAlg::from_name(&parsed.params.alg);
    if mac.is_none() && sig_alg.is_none() {
        return Err(GatewayError::new(
            ErrorCode::UnsupportedAlgorithm,
            format!("alg `{}` unknown", parsed.params.alg),
        ));
    }
    let now = ex.now_unix();
    // No algorithm confusion: a key-pair alg must be the alg of a registered key.
    if let Some(a) = sig_alg {
        if !app.keys.iter().any(|k| k.key.alg() == a) {
            return Err(GatewayError::new(
                if app.keys.is_empty() {
                    ErrorCode::InvalidSignature
                } else {
                    ErrorCode::UnsupportedAlgorithm
                },
                format!("alg `{}` differs from the app's registered keys", a.name()),
            ));
        }
    }

    // The body must match its digest before the signature over the digest
    // means anything.
    if parsed
        .params
        .components
        .iter()
        .any(|c| c == headers::CONTENT_DIGEST)
    {
        let Some(cd) = ex.header_str(headers::CONTENT_DIGEST) else {
            return Err(malformed(ProtocolError::ComponentAbsent(
                headers::CONTENT_DIGEST.into(),
            )));
        };
        verify_content_digest(cd, &ex.body).map_err(|e| match e {
            ProtocolError::DigestMismatch => GatewayError::new(
                ErrorCode::DigestMismatch,
                "body does not match content-digest",
            ),
            other => malformed(other),
        })?;
    }

    let verified = match (mac, sig_alg) {
        (Some(m), _) => {
            let base = signature_base(&parsed.params.components, &parsed.params_value, &*ex)
                .map_err(malformed)?;
            app.secrets
                .iter()
                .filter(|s| s.valid_at(now))
                .any(|s| m.verify(&s.secret, base.as_bytes(), &parsed.signature))
        }
        (None, Some(a)) => {
            let mut ok = false;
            for k in app
                .keys
                .iter()
                .filter(|k| k.key.alg() == a && k.valid_at(now))
            {
                if verify_with_key(&k.key, &parsed, &*ex, None).map_err(malformed)? {
                    ok = true;
                    break;
                }
            }
            if !ok && !app.keys.iter().any(|k| k.key.alg() == a && k.valid_at(now)) {
                return Err(GatewayError::new(
                    ErrorCode::InvalidSignature,
                    "no key of this algorithm is valid now (expired or not yet valid)",
                ));
            }
            ok
        }
        (None, None) => false,
    };
    if !verified {
        return Err(GatewayError::new(
            ErrorCode::InvalidSignature,
            "signature does not verify",
        ));
    }
    ex.app = Some(app.clone());
    ex.key_pair_auth = sig_alg.is_some();

    let window = i64::from(window_secs);
    if (parsed.params.created - now).abs() > window {
        return Err(GatewayError::new(
            ErrorCode::StaleTimestamp,
            format!(
                "created {} is {}s from gateway time",
                parsed.params.created,
                parsed.params.created - now
            ),
        ));
    }
    if let Some(exp) = parsed.params.expires {
        if exp <= now {
            return Err(GatewayError::new(
                ErrorCode::StaleTimestamp,
                "signature expired",
            ));
        }
    }

    // LVL-3: the method used must be one the API accepts; above A1 that
    // excludes a bare MAC.
    if let Some(api) = &ex.api {
        let auth = &api.api.controls.auth;
        let cert_bound = ex
            .client_cert
            .as_ref()
            .is_some_and(|fp| app.certs.contains(fp));
        let ok = (ex.key_pair_auth && auth.contains(&AuthMethod::KeyPair))
            || (!ex.key_pair_auth && auth.contains(&AuthMethod::Secret))
            || (cert_bound && auth.contains(&AuthMethod::Certificate));
        if !ok {
            return Err(GatewayError::new(
                ErrorCode::InsufficientAuth,
                format!(
                    "{} API called with {}{}; it accepts {:?}",
                    api.api.level.as_str(),
                    parsed.params.alg,
                    if cert_bound {
                        " over a bound certificate"
                    } else {
                        ""
                    },
                    auth.iter().map(|a| a.as_str()).collect::<Vec<_>>()
                ),
            ));
        }
    }
    Ok(())
}
