//! Authenticate the app (AUTH-1, AUTH-2, INT-1, INT-2, LVL-3) in two steps,
//! around the body read:
//!
//! 1. [`head`] (stage `authenticate`), from the headers alone, before a byte
//!    of the body is held: RFC 9421 signature syntax, one `X-App-Id` equal to
//!    `keyid`, the `created` window and `expires` (INT-4, first half; the
//!    nonce is the replay stage's), the start-up replay guard, the algorithm
//!    against the app's credentials, a key valid now, the API's minimum
//!    controls (LVL-3: above A1 a MAC alone is refused unless the connection
//!    carries the app's bound client certificate), and **the signature
//!    itself**: the signature base covers headers only (the body enters it
//!    through the `Content-Digest` header's value), so it can be verified
//!    before the body. An unknown App_ID or a bad signature is refused here,
//!    and no body is ever held for it (issue 9: bounded under attack).
//! 2. [`digest`] (stage `digest`), after the body: `content-digest` covered
//!    when there is a body, and the body matching its `Content-Digest`
//!    (RFC 9530).
//!
//! The client learns one stable code; the audit record keeps the precise
//! reason.

use std::sync::{Arc, OnceLock};

use menshen_crypto::{MacAlg, PublicKey, SigAlg};
use menshen_model::AuthMethod;
use menshen_protocol::{
    headers, signature_base, verify_content_digest, verify_with_key, ErrorCode, ParsedSignature,
    ProtocolError,
};

use super::route::Routed;
use crate::exchange::Exchange;
use crate::snapshot::{AppEntry, SecretEntry};
use crate::GatewayError;

/// Stage name of the header step.
pub const NAME_HEAD: &str = "authenticate";
/// Stage name of the body step.
pub const NAME_DIGEST: &str = "digest";

/// Forward clock skew accepted for one replay window after an unclean stop
/// (INT-4): a request signed before the crash, dated ahead, cannot be
/// replayed after the restart.
pub const GUARD_FORWARD_SKEW_SECS: i64 = 5;

/// A secret no app has, keyed like a real one: an unknown App_ID's MAC is
/// computed against it, so its refusal costs what a known App_ID's bad
/// signature costs.
fn dummy_secret() -> &'static SecretEntry {
    static S: OnceLock<SecretEntry> = OnceLock::new();
    S.get_or_init(|| {
        SecretEntry::new(
            zeroize::Zeroizing::new(b"menshen-no-such-app-menshen-none".to_vec()),
            0,
            None,
        )
    })
}

/// Public keys no app has (private halves discarded when they were made),
/// one per key-pair algorithm: a refusal before any real key is tried
/// verifies against one, so it costs what a bad signature costs.
fn dummy_key(alg: SigAlg) -> Option<&'static PublicKey> {
    static KEYS: OnceLock<Vec<PublicKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        DUMMY_KEYS_PEM
            .iter()
            .filter_map(|pem| PublicKey::from_spki_pem(pem).ok())
            .collect()
    })
    .iter()
    .find(|k| k.alg() == alg)
}

const DUMMY_KEYS_PEM: &[&str] = &[
    "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoEcz1UBgi0DQgAEegPeepIEYvBMbvSYj9V9EkLETWAh
Gk1RA843BSpS0W4waD2WdPMApiGbD9RvpW2FEuSjf5DLoiOjrG7NnuTBmQ==
-----END PUBLIC KEY-----",
    "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEPH4YZ/rMKKeMIt9iz0GaUGl1UoOX
j3v/A8Pl+lJaHlJkOI8sfskEvJrmLk0DxoxP7AyI0we7jPfRDdR/yPhCMw==
-----END PUBLIC KEY-----",
    "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAp37pPBkNxq8hZtRIJWBqeRmnRYqBoKxakXm3fBoJRm0=
-----END PUBLIC KEY-----",
    "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA3SeJ4L5qAlRwbngnA0gC
8cqWAPWLyq0tiLrzGlsZM7tSPz1/PqWuINpui63vls8KRhPzQXMUF/x5y2dkMsf4
GI5/vshfDJG8nngSz8NR5wh3BXFX9gZga5V2WLVRzF0El+/98DBzKNIRw9IhvpJD
jv79L//KpSL6jaW0xdXkjdRNTQql8oDxagxDb4pnmyGDGH7dQssY07UJdATlrojh
VnpfXRiZ4u0zyH9AujvhQtjgInZ5MvICW/WqQtyLzU/sFbPOa5LQL2U3gEjpzCOE
jLprPqaBAD+teRVh/QbabWvB2Py0A5Y9bONLvM1hxnLHJht4tYQS2UXxW2qoD1gY
pQIDAQAB
-----END PUBLIC KEY-----",
];

/// Proof that the signature over the headers verified. Only [`head`] makes
/// one; [`digest`] turns it into [`Authenticated`] once the body matches.
pub struct Verified {
    app: Arc<AppEntry>,
    key_pair_auth: bool,
    created: i64,
    nonce: String,
}

/// Proof that the signature verified: the later stages need it, so none of
/// them can run before authentication. Only [`verify`] makes one.
pub struct Authenticated {
    /// The authenticated app.
    pub app: Arc<AppEntry>,
    /// Whether a registered key pair signed (not a MAC).
    pub key_pair_auth: bool,
    /// The signature's `created`.
    pub created: i64,
    /// The signature's nonce.
    pub nonce: String,
}

fn malformed(e: ProtocolError) -> GatewayError {
    GatewayError::new(ErrorCode::MalformedSignature, e.to_string())
}

/// Step 1: everything the headers can prove. `not_before` is the start-up
/// replay guard (INT-4 after an unclean stop): a `created` older than it is
/// refused.
pub fn head(
    ex: &mut Exchange,
    routed: &Routed,
    window_secs: u32,
    not_before: Option<i64>,
) -> Result<Verified, GatewayError> {
    let (Some(input), Some(sig)) = (
        ex.header_str(headers::SIGNATURE_INPUT),
        ex.header_str(headers::SIGNATURE),
    ) else {
        return Err(GatewayError::new(
            ErrorCode::MissingSignature,
            "no signature headers",
        ));
    };
    let h = &ex.parts.headers;
    if [
        headers::SIGNATURE_INPUT,
        headers::SIGNATURE,
        headers::APP_ID,
        headers::CONTENT_DIGEST,
    ]
    .iter()
    .any(|n| h.get_all(*n).iter().count() > 1)
    {
        return Err(malformed(ProtocolError::MissingComponent(
            "Signature-Input, Signature, X-App-Id and Content-Digest are sent once each".into(),
        )));
    }
    let parsed = ParsedSignature::parse(input, sig).map_err(malformed)?;
    ex.claimed_app_id = Some(parsed.params.keyid.clone());
    // Kept whatever happens next: the record and the bank's signed answer
    // (`;req`) cover it.
    ex.signature = Some(parsed);
    let ex: &Exchange = ex;
    let Some(parsed) = ex.signature.as_ref() else {
        return Err(GatewayError::Internal("signature not kept".into()));
    };
    let params = &parsed.params;
    if params.components.iter().any(|c| c.contains(';')) {
        return Err(malformed(ProtocolError::MissingComponent(
            "no `;req`/`;key` components in requests".into(),
        )));
    }
    // Coverage: `content-digest` as soon as the head announces a body
    // (`Content-Length` > 0, or `Transfer-Encoding`); a body that arrives
    // unannounced (HTTP/2) is checked by the digest stage.
    let h = &ex.parts.headers;
    let body_announced = h.contains_key(http::header::TRANSFER_ENCODING)
        || h.get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0");
    parsed
        .check_coverage(ex.parts.uri.query().is_some(), body_announced)
        .map_err(malformed)?;
    if ex
        .header_str(headers::APP_ID)
        .is_some_and(|claimed| claimed != params.keyid)
    {
        return Err(GatewayError::new(
            ErrorCode::MalformedSignature,
            "x-app-id header differs from keyid",
        ));
    }

    // The time window first: a stale request costs no key lookup and no
    // signature verification, and tells nothing about the app. (`expires`
    // after `created` is the parser's rule.)
    let (created, now) = (params.created, ex.now_unix());
    let window = i64::from(window_secs);
    if (created - now).abs() > window {
        return Err(GatewayError::new(
            ErrorCode::StaleTimestamp,
            format!("created {created} is {}s from gateway time", created - now),
        ));
    }
    if params.expires.is_some_and(|exp| exp <= now) {
        return Err(GatewayError::new(
            ErrorCode::StaleTimestamp,
            "signature expired",
        ));
    }
    if let Some(nb) = not_before {
        if created < nb {
            return Err(GatewayError::new(
                ErrorCode::StaleTimestamp,
                format!(
                    "created {created} is before {nb}: after an unclean stop, requests signed before the restart are refused for one replay window"
                ),
            ));
        }
        // A request signed before the crash with `created` ahead of the
        // clock would pass the check above; during the guard window only a
        // small forward skew is accepted.
        if now < nb + window && created > now + GUARD_FORWARD_SKEW_SECS {
            return Err(GatewayError::new(
                ErrorCode::StaleTimestamp,
                format!(
                    "created {created} is {}s ahead: after an unclean stop, at most {GUARD_FORWARD_SKEW_SECS}s ahead is accepted for one replay window",
                    created - now
                ),
            ));
        }
    }

    let alg_name = params.alg.as_str();
    let mac = MacAlg::from_name(alg_name);
    let sig_alg = SigAlg::from_name(alg_name);
    if mac.is_none() && sig_alg.is_none() {
        // Decided by the request alone: the same for every App_ID.
        return Err(GatewayError::new(
            ErrorCode::UnsupportedAlgorithm,
            format!("alg `{alg_name}` unknown"),
        ));
    }

    // LVL-3: the method used must be one the API accepts; above A1 that
    // excludes a bare MAC. Decided before the App_ID is looked up, from what
    // the request shows (CONF-5: no App_ID oracle). The certificate path
    // counts only a client certificate bound to this very App_ID.
    let key_pair = sig_alg.is_some();
    let auth = &routed.api.api.controls.auth;
    let cert_bound = ex
        .client_cert
        .as_ref()
        .is_some_and(|fp| ex.snapshot.cert_owner.get(&**fp) == Some(&params.keyid));
    let ok = (key_pair && auth.contains(&AuthMethod::KeyPair))
        || (!key_pair && auth.contains(&AuthMethod::Secret))
        || (cert_bound && auth.contains(&AuthMethod::Certificate));
    if !ok {
        return Err(GatewayError::new(
            ErrorCode::InsufficientAuth,
            format!(
                "{} API called with {alg_name}{}; it accepts {:?}",
                routed.api.api.level.as_str(),
                if cert_bound {
                    " over a bound certificate"
                } else {
                    ""
                },
                auth.iter().map(|a| a.as_str()).collect::<Vec<_>>()
            ),
        ));
    }

    // From here every refusal is INVALID_SIGNATURE after the work of one
    // verification (CONF-5, protocol doc section 6): an unknown App_ID, an
    // algorithm the app has no key of, or no credential valid now answer
    // exactly as a known App_ID with a bad signature does, in code and in
    // time. The audit record keeps the precise reason.
    let mac_base =
        || signature_base(&params.components, &parsed.params_value, ex).map_err(malformed);
    let refuse = |why: &'static str| -> Result<Verified, GatewayError> {
        match (mac, sig_alg) {
            (Some(m), _) => {
                let base = mac_base()?;
                let _ = dummy_secret().verify_mac(m, base.as_bytes(), &parsed.signature);
            }
            (None, Some(a)) => {
                if let Some(k) = dummy_key(a) {
                    verify_with_key(k, parsed, ex, None).map_err(malformed)?;
                }
            }
            (None, None) => {}
        }
        Err(GatewayError::new(ErrorCode::InvalidSignature, why))
    };
    let Some(app) = ex.snapshot.app(&params.keyid).cloned() else {
        return refuse("unknown App_ID");
    };
    let verified = match (mac, sig_alg) {
        (Some(m), _) => {
            let base = mac_base()?;
            let mut valid = app.secrets.iter().filter(|s| s.valid_at(now)).peekable();
            if valid.peek().is_none() {
                return refuse("no App_Secret is valid now");
            }
            valid.any(|s| s.verify_mac(m, base.as_bytes(), &parsed.signature))
        }
        (None, Some(a)) => {
            // No algorithm confusion: a key-pair alg must be the alg of a
            // registered key.
            if !app.keys.iter().any(|k| k.key.alg() == a) {
                return refuse("alg differs from the app's registered keys");
            }
            let mut valid = app
                .keys
                .iter()
                .filter(|k| k.key.alg() == a && k.valid_at(now))
                .peekable();
            if valid.peek().is_none() {
                return refuse("no key of this algorithm is valid now (expired or not yet valid)");
            }
            let mut ok = false;
            for k in valid {
                if verify_with_key(&k.key, parsed, ex, None).map_err(malformed)? {
                    ok = true;
                    break;
                }
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
    Ok(Verified {
        app,
        key_pair_auth: sig_alg.is_some(),
        created,
        nonce: params.nonce.clone(),
    })
}

/// Step 2, after the body: the body matches its digest.
pub fn digest(ex: &mut Exchange, v: Verified) -> Result<Authenticated, GatewayError> {
    let Some(parsed) = ex.signature.as_ref() else {
        return Err(GatewayError::Internal(
            "signature missing after the head step".into(),
        ));
    };
    let has_query = ex.parts.uri.query().is_some();
    let has_body = !ex.body.is_empty();
    parsed
        .check_coverage(has_query, has_body)
        .map_err(malformed)?;
    // The signature covered the digest; the body must match it.
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
    ex.app = Some(v.app.clone());
    ex.key_pair_auth = v.key_pair_auth;
    if let Some(c) = &ex.conn {
        c.mark_proven();
    }
    Ok(Authenticated {
        app: v.app,
        key_pair_auth: v.key_pair_auth,
        created: v.created,
        nonce: v.nonce,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conf_5_a_dummy_key_exists_for_every_key_pair_algorithm() {
        for a in SigAlg::ALL {
            assert_eq!(dummy_key(*a).map(|k| k.alg()), Some(*a), "{a:?}");
        }
    }
}
