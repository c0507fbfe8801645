//! Field envelopes (CONF-1, CONF-2; `docs/protocol.md` §12): the JSON
//! fields an API lists (RFC 6901 JSON Pointers) travel encrypted under a
//! one-time SM4 key, wrapped with SM2 (GB/T 32918.4, C1C3C2) for the
//! receiver. Each field is SM4-GCM with a fresh 96-bit IV and the field's
//! pointer as associated data, so a ciphertext moved to another field does
//! not open. The wrapped key travels in the body's top-level member
//! [`ENVELOPE_MEMBER`]; each IV travels inside its field's value:
//!
//! ```text
//! {"payee": {"account": "SM4GCM.<base64 IV>.<base64 ciphertext||tag>"},
//!  "menshen_envelope": {"v": 1, "kid": "<receiver key id>", "key": "<base64 C1C3C2>"}}
//! ```
//!
//! The sender seals first, then computes `Content-Digest` over the body it
//! sends and signs; the receiver checks the signature, then opens.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use menshen_crypto::sm4gcm::{IV_LEN, KEY_LEN, TAG_LEN};
use menshen_crypto::{Sm2DecryptionKey, Sm2EncryptionKey, Sm4GcmKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use zeroize::{Zeroize, Zeroizing};

/// An API's lists of encrypted fields, per direction (`controls.envelope`).
pub use menshen_model::FieldEnvelopes as Fields;

/// The body's top-level member carrying the wrapped session key.
pub const ENVELOPE_MEMBER: &str = menshen_model::ENVELOPE_MEMBER;
/// The prefix of an encrypted field's string value.
pub const FIELD_PREFIX: &str = "SM4GCM.";
/// The envelope format version.
pub const VERSION: u8 = 1;
/// Domain label of the session-key fingerprint ([`Opened::key_fingerprint`]).
pub const KEY_FINGERPRINT_LABEL: &[u8] = b"menshen/envelope/v1/session-key";

/// The envelope member (`menshen_envelope`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeMember {
    /// Format version, 1.
    pub v: u8,
    /// The receiver's encryption key id: the bank's `key_id` (purpose
    /// `encryption`, /.well-known/menshen/keys) for requests, the app's
    /// registered encryption key's fingerprint for responses.
    pub kid: String,
    /// The 16-byte SM4 key, SM2-encrypted for the receiver, C1C3C2
    /// (`04 || x1 || y1 || C3 || C2`, 113 bytes), standard base64.
    pub key: String,
}

/// Why an envelope was refused. Each maps to its own error code (§10).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The envelope or a field's value does not follow the format.
    #[error("malformed envelope: {0}")]
    Malformed(String),
    /// A field the API lists arrived in clear.
    #[error("field {0} must be encrypted")]
    NotEncrypted(String),
    /// The wrapped key does not decrypt (wrong key id, tampered, not 16 bytes).
    #[error("the wrapped session key does not decrypt")]
    KeyInvalid,
    /// A field does not authenticate (ciphertext, tag or IV changed).
    #[error("field {0} does not decrypt")]
    FieldInvalid(String),
    /// A field's ciphertext was made for another field.
    #[error("the ciphertext at {at} was made for {made_for}")]
    FieldMoved {
        /// Where it was found.
        at: String,
        /// The pointer it authenticates under.
        made_for: String,
    },
}

/// Check an API's list of pointers (when the API is saved).
pub use menshen_model::validate_envelope_pointers as validate_pointers;

/// Deterministic inputs for [`seal_with`]. INSECURE outside test vectors.
pub struct FixedInputs<'a> {
    /// The session key.
    pub session_key: [u8; KEY_LEN],
    /// One IV per sealed field, in the order of the pointer list.
    pub ivs: &'a [[u8; IV_LEN]],
    /// The SM2 ephemeral scalar k.
    pub k: [u8; 32],
}

/// Seal the fields of `body` that `pointers` name and that are present,
/// for `receiver` (key id `kid`), under a fresh session key and fresh IVs.
/// Adds the envelope member when at least one field was sealed. Returns the
/// number of fields sealed.
pub fn seal(
    body: &mut Value,
    pointers: &[String],
    kid: &str,
    receiver: &Sm2EncryptionKey,
) -> Result<usize, EnvelopeError> {
    seal_inner(body, pointers, kid, receiver, None)
}

/// [`seal`] with fixed key, IVs and k: reproducible test vectors only.
pub fn seal_with(
    body: &mut Value,
    pointers: &[String],
    kid: &str,
    receiver: &Sm2EncryptionKey,
    fixed: &FixedInputs<'_>,
) -> Result<usize, EnvelopeError> {
    seal_inner(body, pointers, kid, receiver, Some(fixed))
}

fn seal_inner(
    body: &mut Value,
    pointers: &[String],
    kid: &str,
    receiver: &Sm2EncryptionKey,
    fixed: Option<&FixedInputs<'_>>,
) -> Result<usize, EnvelopeError> {
    let present: Vec<&String> = pointers
        .iter()
        .filter(|p| body.pointer(p).is_some())
        .collect();
    if present.is_empty() {
        return Ok(0);
    }
    let Some(obj) = body.as_object() else {
        return Err(EnvelopeError::Malformed(
            "the body is not a JSON object".into(),
        ));
    };
    if obj.contains_key(ENVELOPE_MEMBER) {
        return Err(EnvelopeError::Malformed(format!(
            "the body already has `{ENVELOPE_MEMBER}`"
        )));
    }
    let key = match fixed {
        Some(f) => Sm4GcmKey::from_bytes(&f.session_key),
        None => Sm4GcmKey::generate(),
    };
    let wrapped = match fixed {
        Some(f) => receiver.encrypt_with_fixed_k_insecure(key.as_bytes(), &f.k),
        None => receiver.encrypt(key.as_bytes()),
    }
    .map_err(|_| EnvelopeError::KeyInvalid)?;
    for (i, p) in present.iter().enumerate() {
        let iv = match fixed {
            Some(f) => *f
                .ivs
                .get(i)
                .ok_or_else(|| EnvelopeError::Malformed("too few fixed IVs".into()))?,
            None => menshen_crypto::sm4gcm::random_iv(),
        };
        let slot = body
            .pointer_mut(p)
            .ok_or_else(|| EnvelopeError::Malformed(format!("{p} vanished")))?;
        let plain = Zeroizing::new(
            serde_json::to_vec(slot).map_err(|e| EnvelopeError::Malformed(e.to_string()))?,
        );
        let sealed = key
            .seal(&iv, p.as_bytes(), &plain)
            .map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
        // The field's plaintext leaves the body wiped (CONF-4).
        let mut old = std::mem::replace(
            slot,
            Value::String(format!(
                "{FIELD_PREFIX}{}.{}",
                B64.encode(iv),
                B64.encode(&sealed)
            )),
        );
        wipe(&mut old);
    }
    let member = EnvelopeMember {
        v: VERSION,
        kid: kid.to_string(),
        key: B64.encode(&wrapped),
    };
    if let Some(obj) = body.as_object_mut() {
        obj.insert(
            ENVELOPE_MEMBER.to_string(),
            serde_json::to_value(member).map_err(|e| EnvelopeError::Malformed(e.to_string()))?,
        );
    }
    Ok(present.len())
}

/// Overwrite every string in `v` with zeros (their whole buffers) and
/// leave `v` null (CONF-4): for a JSON value that held opened or
/// to-be-sealed field plaintext. Numbers and booleans sit inside the value
/// itself and are not wiped (a field's sensitive content is a string:
/// account numbers, names, ID numbers).
pub fn wipe(v: &mut Value) {
    match v {
        Value::String(s) => s.zeroize(),
        Value::Array(a) => a.iter_mut().for_each(wipe),
        Value::Object(m) => m.values_mut().for_each(wipe),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
    *v = Value::Null;
}

/// A JSON body that holds opened field plaintext: [`wipe`]d when dropped,
/// on every path (an error half-way through [`open`] included).
#[derive(Debug, Default)]
pub struct PlainBody(pub Value);

impl Drop for PlainBody {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

impl std::ops::Deref for PlainBody {
    type Target = Value;
    fn deref(&self) -> &Value {
        &self.0
    }
}

impl std::ops::DerefMut for PlainBody {
    fn deref_mut(&mut self) -> &mut Value {
        &mut self.0
    }
}

/// What [`open`] found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Opened {
    /// Fields decrypted.
    pub fields: usize,
    /// SM3(label || session key): the receiver remembers it for the replay
    /// window and refuses a second message under the same key (CONF-2).
    /// `None` when the message carried no envelope.
    pub key_fingerprint: Option<[u8; 32]>,
}

/// A session key wrapped with SM2, C1C3C2: 65 (C1, uncompressed point) +
/// 32 (C3) + 16 (C2, the key) bytes.
pub const WRAPPED_KEY_LEN: usize = 65 + 32 + 16;

/// Parse an encrypted field's value: IV and ciphertext||tag.
fn parse_field(p: &str, s: &str) -> Result<([u8; IV_LEN], Vec<u8>), EnvelopeError> {
    let bad = |m: &str| EnvelopeError::Malformed(format!("{p}: {m}"));
    let rest = s
        .strip_prefix(FIELD_PREFIX)
        .ok_or_else(|| bad("not an encrypted value"))?;
    let (iv, ct) = rest
        .split_once('.')
        .ok_or_else(|| bad("expected SM4GCM.<iv>.<ciphertext>"))?;
    let iv = B64.decode(iv).map_err(|_| bad("IV is not base64"))?;
    let iv: [u8; IV_LEN] = iv.try_into().map_err(|_| bad("IV must be 12 bytes"))?;
    let ct = B64
        .decode(ct)
        .map_err(|_| bad("ciphertext is not base64"))?;
    if ct.len() < TAG_LEN {
        return Err(bad("ciphertext shorter than its tag"));
    }
    Ok((iv, ct))
}

/// Open the fields of `body` that `pointers` name, in place, with the
/// receiver key `keys(kid)` returns, and remove the envelope member.
/// Refuses a listed field present in clear, a malformed envelope, a key that
/// does not unwrap, and a field that does not authenticate (telling a field
/// moved from another listed pointer apart). On error `body` may be partly
/// opened: the caller drops it.
pub fn open<'k>(
    body: &mut Value,
    pointers: &[String],
    keys: impl Fn(&str) -> Option<&'k Sm2DecryptionKey>,
) -> Result<Opened, EnvelopeError> {
    let member = match body.as_object_mut() {
        Some(obj) => obj.remove(ENVELOPE_MEMBER),
        None => None,
    };
    // Which listed fields are here, and are they sealed?
    let mut sealed: Vec<(&String, [u8; IV_LEN], Vec<u8>)> = Vec::new();
    for p in pointers {
        match body.pointer(p) {
            None => {}
            Some(Value::String(s)) if s.starts_with(FIELD_PREFIX) => {
                let (iv, ct) = parse_field(p, s)?;
                sealed.push((p, iv, ct));
            }
            Some(_) => return Err(EnvelopeError::NotEncrypted(p.clone())),
        }
    }
    let Some(member) = member else {
        if sealed.is_empty() {
            return Ok(Opened::default());
        }
        return Err(EnvelopeError::Malformed(format!(
            "encrypted fields without `{ENVELOPE_MEMBER}`"
        )));
    };
    let member: EnvelopeMember = serde_json::from_value(member)
        .map_err(|e| EnvelopeError::Malformed(format!("`{ENVELOPE_MEMBER}`: {e}")))?;
    if member.v != VERSION {
        return Err(EnvelopeError::Malformed(format!(
            "unknown envelope version {}",
            member.v
        )));
    }
    if sealed.is_empty() {
        return Err(EnvelopeError::Malformed(
            "an envelope without encrypted fields".into(),
        ));
    }
    for (i, (_, iv, _)) in sealed.iter().enumerate() {
        if sealed[i + 1..].iter().any(|(_, other, _)| other == iv) {
            return Err(EnvelopeError::Malformed(
                "an IV repeats within the message".into(),
            ));
        }
    }
    let wrapped = B64
        .decode(&member.key)
        .map_err(|_| EnvelopeError::Malformed("`key` is not base64".into()))?;
    // A wrapped session key is exactly 113 bytes (§12): anything else is
    // refused before SM2 spends a point multiplication and a KDF over it.
    if wrapped.len() != WRAPPED_KEY_LEN {
        return Err(EnvelopeError::KeyInvalid);
    }
    let receiver = keys(&member.kid).ok_or(EnvelopeError::KeyInvalid)?;
    let raw = receiver
        .decrypt(&wrapped)
        .map_err(|_| EnvelopeError::KeyInvalid)?;
    let key = Sm4GcmKey::from_slice(&raw).map_err(|_| EnvelopeError::KeyInvalid)?;
    let fingerprint = menshen_crypto::sm3_parts(&[KEY_FINGERPRINT_LABEL, &raw[..]]);
    drop(raw);
    for (p, iv, ct) in &sealed {
        let plain = match key.open(iv, p.as_bytes(), ct) {
            Ok(x) => x,
            Err(_) => {
                // Made for another listed field? (Only on failure: at most
                // one try per listed pointer.)
                let made_for = pointers
                    .iter()
                    .find(|q| q != p && key.open(iv, q.as_bytes(), ct).is_ok());
                return Err(match made_for {
                    Some(q) => EnvelopeError::FieldMoved {
                        at: (*p).clone(),
                        made_for: q.clone(),
                    },
                    None => EnvelopeError::FieldInvalid((*p).clone()),
                });
            }
        };
        let value: Value = serde_json::from_slice(&plain)
            .map_err(|_| EnvelopeError::Malformed(format!("{p}: the plaintext is not JSON")))?;
        if let Some(slot) = body.pointer_mut(p) {
            *slot = value;
        }
    }
    Ok(Opened {
        fields: sealed.len(),
        key_fingerprint: Some(fingerprint),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    /// CONF-4: `wipe` zeroes every string of a value, nested ones too.
    #[test]
    fn conf_4_wipe_zeroes_every_string() {
        let mut v = json!({"a": "6217000010001234567", "b": [{"c": "王芳"}], "n": 1});
        let before = v.clone();
        wipe(&mut v);
        assert_eq!(v, Value::Null);
        let mut s = String::from("6217000010001234567");
        s.zeroize();
        assert!(s.is_empty());
        // The body guard wipes when it goes out of scope (checked through
        // `wipe` itself above; here: it is a transparent wrapper).
        let g = PlainBody(before.clone());
        assert_eq!(*g, before);
    }

    fn ptrs() -> Vec<String> {
        vec!["/payee/account".into(), "/payee/name".into()]
    }

    #[test]
    fn conf_1_seal_open_round_trip_and_each_refusal() {
        let (k, _) = Sm2DecryptionKey::generate().unwrap();
        let plain =
            json!({"amount": "100.00", "payee": {"account": "6228480012345678", "name": "张三"}});
        let mut body = plain.clone();
        assert_eq!(
            seal(&mut body, &ptrs(), "bank-enc-1", k.public_key()).unwrap(),
            2
        );
        let wire = body.to_string();
        assert!(!wire.contains("6228480012345678") && !wire.contains("张三"));
        let lookup = |kid: &str| (kid == "bank-enc-1").then_some(&k);
        let mut opened = body.clone();
        let o = open(&mut opened, &ptrs(), lookup).unwrap();
        assert_eq!(opened, plain);
        assert_eq!(o.fields, 2);
        assert!(o.key_fingerprint.is_some());

        // A listed field in clear.
        let mut clear = plain.clone();
        assert_eq!(
            open(&mut clear, &ptrs(), lookup),
            Err(EnvelopeError::NotEncrypted("/payee/account".into()))
        );
        // Moved: swap the two ciphertexts.
        let mut moved = body.clone();
        let a = moved.pointer("/payee/account").unwrap().clone();
        let n = moved.pointer("/payee/name").unwrap().clone();
        *moved.pointer_mut("/payee/account").unwrap() = n;
        *moved.pointer_mut("/payee/name").unwrap() = a;
        assert!(matches!(
            open(&mut moved, &ptrs(), lookup),
            Err(EnvelopeError::FieldMoved { .. })
        ));
        // Tag changed.
        let mut tag = body.clone();
        let s = tag
            .pointer("/payee/name")
            .unwrap()
            .as_str()
            .unwrap()
            .to_string();
        let (head, ct) = s.rsplit_once('.').unwrap();
        let mut raw = B64.decode(ct).unwrap();
        *raw.last_mut().unwrap() ^= 1;
        *tag.pointer_mut("/payee/name").unwrap() = json!(format!("{head}.{}", B64.encode(&raw)));
        assert_eq!(
            open(&mut tag, &ptrs(), lookup),
            Err(EnvelopeError::FieldInvalid("/payee/name".into()))
        );
        // Wrapped key changed, unknown kid.
        let mut wk = body.clone();
        let key = wk[ENVELOPE_MEMBER]["key"].as_str().unwrap().to_string();
        let mut raw = B64.decode(&key).unwrap();
        raw[100] ^= 1;
        wk[ENVELOPE_MEMBER]["key"] = json!(B64.encode(&raw));
        assert_eq!(
            open(&mut wk, &ptrs(), lookup),
            Err(EnvelopeError::KeyInvalid)
        );
        let mut kid = body.clone();
        kid[ENVELOPE_MEMBER]["kid"] = json!("other");
        assert_eq!(
            open(&mut kid, &ptrs(), lookup),
            Err(EnvelopeError::KeyInvalid)
        );
        // A wrapped key of any length but 113 bytes is refused before the
        // key is looked up and SM2 runs (a 1 MiB `key` would cost a KDF
        // over it): the look-up is never made.
        for len in [112usize, 114, 1 << 20] {
            let mut long = body.clone();
            long[ENVELOPE_MEMBER]["key"] = json!(B64.encode(vec![4u8; len]));
            let asked = std::cell::Cell::new(0);
            let counting = |kid: &str| {
                asked.set(asked.get() + 1);
                lookup(kid)
            };
            assert_eq!(
                open(&mut long, &ptrs(), counting),
                Err(EnvelopeError::KeyInvalid)
            );
            assert_eq!(asked.get(), 0, "{len}");
        }
        // No fields listed present: nothing to do, no envelope added.
        let mut none = json!({"amount": 1});
        assert_eq!(seal(&mut none, &ptrs(), "k", k.public_key()).unwrap(), 0);
        assert_eq!(none, json!({"amount": 1}));
    }
}
