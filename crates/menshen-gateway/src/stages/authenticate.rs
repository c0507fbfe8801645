//! Authenticate: App_ID + App_Secret with an RFC 9421 HMAC signature (AUTH-1,
//! INT-1), the body's `Content-Digest` (RFC 9530), and the `created`/`expires`
//! window (INT-4, first half; the nonce is the replay stage's).
//!
//! Checks run cheapest-first but the client learns only one stable code; the
//! audit record keeps the precise reason.

use menshen_crypto::MacAlg;
use menshen_model::Level;
use menshen_protocol::{
    headers, signature_base, verify_content_digest, ErrorCode, ParsedSignature, ProtocolError,
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
    let has_query = ex.parts.uri.query().is_some();
    let has_body = !ex.body.is_empty();
    parsed
        .check_coverage(has_query, has_body)
        .map_err(malformed)?;
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
    let Some(alg) = MacAlg::from_name(&parsed.params.alg) else {
        return Err(GatewayError::new(
            ErrorCode::UnsupportedAlgorithm,
            format!("alg `{}` is not an App_Secret algorithm", parsed.params.alg),
        ));
    };

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

    let base =
        signature_base(&parsed.params.components, &parsed.params_value, &*ex).map_err(malformed)?;
    let now = ex.now_unix();
    let verified = app
        .secrets
        .iter()
        .filter(|s| s.valid_at(now))
        .any(|s| alg.verify(&s.secret, base.as_bytes(), &parsed.signature));
    if !verified {
        return Err(GatewayError::new(
            ErrorCode::InvalidSignature,
            if app.secrets.iter().any(|s| s.valid_at(now)) {
                "signature does not verify"
            } else {
                "app has no valid App_Secret"
            },
        ));
    }
    ex.app = Some(app.clone());

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

    // LVL-3/AUTH-2: a MAC alone is not enough above A1. Until key-pair
    // signatures are available, A2/A3 APIs refuse every MAC-only call.
    if let Some(api) = &ex.api {
        if api.api.level >= Level::A2 {
            return Err(GatewayError::new(
                ErrorCode::InsufficientAuth,
                format!(
                    "{} API called with {}; a key-pair signature is required",
                    api.api.level.as_str(),
                    alg.name()
                ),
            ));
        }
    }
    ex.signature = Some(parsed);
    Ok(())
}
