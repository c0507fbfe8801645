//! Field envelopes, response side (stage `encrypt`; CONF-1, CONF-2,
//! `docs/protocol.md` §12): the response fields the API lists are encrypted
//! for the app's registered encryption key under a fresh session key, after
//! masking and before the bank signs the answer. Only the upstream's answers
//! are touched; the gateway's own error bodies carry no listed field.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http::Response;
use menshen_crypto::Sm2EncryptionKey;
use menshen_model::CredentialKind;
use menshen_protocol::envelope;
use menshen_protocol::ErrorCode;
use menshen_store::CredentialRecord;

use super::authenticate::Authenticated;
use super::route::Routed;
use crate::exchange::Exchange;
use crate::GatewayError;

/// Stage name (response phase).
pub const NAME: &str = "encrypt";

/// An app's encryption key as the gateway uses it.
#[derive(Debug)]
pub struct AppEncKey {
    /// Its fingerprint, the envelope's `kid`.
    pub kid: String,
    /// The key.
    pub key: Sm2EncryptionKey,
    /// Valid until (unix seconds), if limited.
    pub not_after: Option<i64>,
}

/// Each app's newest live encryption key (snapshot build).
pub fn app_keys(creds: &[CredentialRecord]) -> HashMap<String, Arc<AppEncKey>> {
    let mut newest: HashMap<String, (&CredentialRecord, AppEncKey)> = HashMap::new();
    for c in creds
        .iter()
        .filter(|c| c.kind == CredentialKind::EncryptionKey && !c.revoked)
    {
        let Some(Ok(key)) = c.public_pem.as_deref().map(Sm2EncryptionKey::from_spki_pem) else {
            tracing::error!(app_id = %c.app_id, credential = c.id, "stored encryption key does not parse");
            continue;
        };
        if newest.get(&c.app_id).is_some_and(|(n, _)| n.id > c.id) {
            continue;
        }
        // [k]P for this key on every answer: its table now, not on the
        // first answer (~0.2 ms; issue 13 performance).
        key.precompute();
        let e = AppEncKey {
            kid: key.fingerprint(),
            key,
            not_after: c.not_after,
        };
        newest.insert(c.app_id.clone(), (c, e));
    }
    newest
        .into_iter()
        .map(|(a, (_, e))| (a, Arc::new(e)))
        .collect()
}

/// Request phase: an API whose answers carry encrypted fields is refused
/// before forwarding to an app without a live encryption key (the upstream
/// must never act on a call whose answer cannot be delivered).
pub fn on_request(
    ex: &Exchange,
    routed: &Routed,
    auth: &Authenticated,
) -> Result<(), GatewayError> {
    if routed.api.api.controls.envelope.response.is_empty() {
        return Ok(());
    }
    let now = ex.now_unix();
    match &auth.app.enc_key {
        Some(k) if k.not_after.is_none_or(|t| t > now) => Ok(()),
        _ => Err(GatewayError::new(
            ErrorCode::EncryptionKeyMissing,
            "no live encryption key registered for the app",
        )),
    }
}

/// Response phase: encrypt the listed fields of the upstream's answer. A
/// failure withholds the answer (the caller reports the outcome unknown);
/// so does an answer that claims to be JSON and does not parse
/// (`UPSTREAM_RESPONSE_INVALID`).
pub fn on_response(
    routed: &Routed,
    auth: &Authenticated,
    resp: &mut Response<Bytes>,
) -> Result<(), GatewayError> {
    let pointers = &routed.api.api.controls.envelope.response;
    if pointers.is_empty() || resp.body().is_empty() {
        return Ok(());
    }
    // Only a JSON answer has fields to address. One that claims to be JSON
    // and does not parse may hold them all the same: withheld, never passed
    // on in clear.
    let v = match serde_json::from_slice::<serde_json::Value>(resp.body()) {
        Ok(v) => v,
        Err(_) if super::validate::claims_json(resp) => {
            return Err(GatewayError::UpstreamResponseInvalid(
                "the upstream's answer is not readable JSON; the API lists encrypted response fields"
                    .into(),
            ))
        }
        Err(_) => return Ok(()),
    };
    // Holds the fields in clear until they are sealed (and on any error):
    // wiped when dropped (CONF-4).
    let mut v = envelope::PlainBody(v);
    let Some(k) = &auth.app.enc_key else {
        return Err(GatewayError::OutcomeUnknown(
            "after forwarding: no encryption key for the answer".into(),
        ));
    };
    let n = envelope::seal(&mut v, pointers, &k.kid, &k.key).map_err(|e| {
        GatewayError::OutcomeUnknown(format!("after forwarding: response fields: {e}"))
    })?;
    if n == 0 {
        return Ok(());
    }
    let sealed = serde_json::to_vec(&*v)
        .map_err(|e| GatewayError::OutcomeUnknown(format!("after forwarding: {e}")))?;
    // The upstream's body held the fields in clear: wiped if this is its
    // only reference (CONF-4).
    let old = std::mem::replace(resp.body_mut(), Bytes::from(sealed));
    if let Ok(mut b) = old.try_into_mut() {
        zeroize::Zeroize::zeroize(&mut b[..]);
    }
    super::mask::body_replaced(resp);
    Ok(())
}
