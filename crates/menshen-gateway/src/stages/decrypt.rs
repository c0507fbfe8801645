//! Field envelopes, request side (stage `decrypt`; CONF-1, CONF-2,
//! `docs/protocol.md` §12): the fields the API lists arrive SM4-GCM
//! encrypted under a one-time session key the app wrapped with SM2 for the
//! bank's encryption key. After the signature and digest verified (the app
//! encrypted first, then signed), this stage unwraps the key, refuses a key
//! seen before within the replay window, opens each field with its pointer
//! as associated data and puts the plaintext back, so validation, screening
//! and the upstream see plaintext. The access record never keeps the opened
//! fields ([`redact`]).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use menshen_crypto::{DigestAlg, Sm2DecryptionKey};
use menshen_protocol::envelope::{self, EnvelopeError};
use menshen_protocol::ErrorCode;
use menshen_store::HotState;
use zeroize::Zeroizing;

use super::authenticate::Authenticated;
use super::route::Routed;
use crate::budget::{BodyBudget, Charge};
use crate::exchange::Exchange;
use crate::GatewayError;

/// Stage name.
pub const NAME: &str = "decrypt";

/// The hot-state namespace (in place of an App_ID) of the session-key
/// fingerprints: one key is refused a second time whatever app sends it.
const KEY_SEEN_NS: &str = "menshen/envelope";

/// The bank's encryption keys by key id (purpose `encryption`), opened once
/// when the snapshot is built. Retired keys still open envelopes during a
/// rotation overlap; they are no longer published as current.
#[derive(Default)]
pub struct BankKeys(HashMap<String, Arc<Sm2DecryptionKey>>);

impl BankKeys {
    /// Open the bank's encryption keys.
    pub fn compile(
        recs: &[menshen_store::BankKeyRecord],
        cp: &menshen_store::ControlPlane,
    ) -> BankKeys {
        let mut m = HashMap::new();
        for k in recs
            .iter()
            .filter(|k| k.purpose == menshen_store::control::purpose::ENCRYPTION)
        {
            match cp.open_bank_decryption_key(k) {
                Some(d) => {
                    m.insert(k.key_id.clone(), Arc::new(d));
                }
                None => {
                    tracing::error!(key_id = %k.key_id, "bank encryption key does not open with this master key")
                }
            }
        }
        BankKeys(m)
    }

    /// Whether no encryption key opened.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The key `kid` names.
    pub fn get(&self, kid: &str) -> Option<&Sm2DecryptionKey> {
        self.0.get(kid).map(|k| k.as_ref())
    }
}

/// The error code of each envelope refusal (protocol §10).
pub fn refusal(e: &EnvelopeError) -> GatewayError {
    let code = match e {
        EnvelopeError::Malformed(_) => ErrorCode::EnvelopeMalformed,
        EnvelopeError::NotEncrypted(_) => ErrorCode::FieldNotEncrypted,
        EnvelopeError::KeyInvalid => ErrorCode::EnvelopeKeyInvalid,
        EnvelopeError::FieldInvalid(_) => ErrorCode::FieldDecryptionFailed,
        EnvelopeError::FieldMoved { .. } => ErrorCode::FieldMoved,
        _ => ErrorCode::EnvelopeMalformed,
    };
    GatewayError::new(code, e.to_string())
}

/// Open the request's listed fields. Needs the verified signature (the
/// `Authenticated` proof): nothing is decrypted for an unauthenticated
/// sender. The opened body is charged to the request's `charge` in the
/// shared `budget` (over it: 503 `SERVER_BUSY`, the session key unspent).
pub async fn on_request(
    ex: &mut Exchange,
    routed: &Routed,
    _auth: &Authenticated,
    hot: &dyn HotState,
    window_secs: u32,
    budget: &BodyBudget,
    charge: &mut Charge,
) -> Result<(), GatewayError> {
    let pointers = &routed.api.api.controls.envelope.request;
    if pointers.is_empty() || ex.body.is_empty() {
        return Ok(());
    }
    // Holds the opened plaintext from here on: wiped however this ends
    // (CONF-4).
    let mut v = envelope::PlainBody(serde_json::from_slice(&ex.body).map_err(|_| {
        GatewayError::new(
            ErrorCode::EnvelopeMalformed,
            "the API has encrypted fields and the body is not JSON",
        )
    })?);
    let snap = ex.snapshot.clone();
    if snap.bank_decrypt.is_empty() {
        return Err(GatewayError::new(
            ErrorCode::EncryptionUnavailable,
            "no bank encryption key opens with this master key",
        ));
    }
    let opened = envelope::open(&mut v, pointers, |kid| snap.bank_decrypt.get(kid))
        .map_err(|e| refusal(&e))?;
    let Some(fp) = opened.key_fingerprint else {
        return Ok(());
    };
    // The opened body is a second body held by this request: charged to the
    // shared budget like the one read (issue 9), before the session key is
    // spent, so a refusal here can be retried. Its exact size first (a
    // counting pass, nothing allocated): re-serialized JSON can be several
    // times the bytes that arrived (`1e15` comes back as
    // `1000000000000000.0`).
    let mut size = Counted(0);
    serde_json::to_writer(&mut size, &*v)
        .map_err(|e| GatewayError::Internal(format!("re-serializing the opened body: {e}")))?;
    if !budget.charge(charge, size.0) {
        return Err(GatewayError::Overloaded(format!(
            "body memory budget ({} bytes) exhausted by the opened body ({} bytes)",
            budget.total_bytes(),
            size.0
        )));
    }
    // CONF-2: one session key, one message. Remembered for as long as a
    // request could be replayed (the signature window), by a hash only.
    let now = ex.now_unix();
    let seen = format!("k{}", hex_lower(&fp[..16]));
    if !hot
        .insert_nonce(KEY_SEEN_NS, &seen, now + i64::from(window_secs) + 1, now)
        .await
    {
        return Err(GatewayError::new(
            ErrorCode::SessionKeyReused,
            "session key already used within the replay window",
        ));
    }
    // Sized exactly up front so the buffer is never reallocated (a
    // reallocation would leave a copy of the plaintext behind); wiped when
    // the last reference to the body is dropped (CONF-4).
    let mut plain = Zeroizing::new(Vec::with_capacity(size.0));
    serde_json::to_writer(&mut *plain, &*v)
        .map_err(|e| GatewayError::Internal(format!("re-serializing the opened body: {e}")))?;
    drop(v);
    // The upstream gets the opened body; its Content-Digest is the gateway's
    // (the app's covered the encrypted body).
    let cd = menshen_protocol::content_digest(DigestAlg::Sm3, &plain);
    if let Ok(h) = http::HeaderValue::from_str(&cd) {
        ex.parts
            .headers
            .insert(menshen_protocol::headers::CONTENT_DIGEST, h);
    }
    ex.body = Bytes::from_owner(plain);
    Ok(())
}

/// Counts the bytes written to it, keeps none.
struct Counted(usize);

impl std::io::Write for Counted {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 = self.0.saturating_add(buf.len());
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Replace the listed (opened) fields in a body about to be retained in the
/// access record: their plaintext never reaches the audit log (CONF-1,
/// AUD-4).
pub fn redact(body: &mut serde_json::Value, pointers: &[String]) {
    for p in pointers {
        if let Some(slot) = body.pointer_mut(p) {
            *slot = serde_json::Value::String("<encrypted field, not retained>".into());
        }
    }
}
