//! Field envelopes on the app's side (`docs/protocol.md` §12, CONF-1):
//! encrypt the request fields an API lists for the bank's encryption key,
//! decrypt the response fields the gateway encrypted for the app's
//! encryption key. The client seals before it computes `Content-Digest` and
//! signs, and opens only after the bank's response signature verified.

use menshen_crypto::{Sm2DecryptionKey, Sm2EncryptionKey};
use menshen_protocol::envelope;
use serde_json::Value;

use crate::SdkError;

/// The bank's encryption key as published at `/.well-known/menshen/keys`
/// (purpose `encryption`).
#[derive(Debug, Clone)]
pub struct BankEncryptionKey {
    /// Its `key_id`, sent as the envelope's `kid`.
    pub key_id: String,
    /// The public key.
    pub key: Sm2EncryptionKey,
}

impl BankEncryptionKey {
    /// From the key id and PEM SubjectPublicKeyInfo.
    pub fn from_pem(key_id: &str, pem: &str) -> Result<Self, SdkError> {
        Ok(BankEncryptionKey {
            key_id: key_id.to_string(),
            key: Sm2EncryptionKey::from_spki_pem(pem).map_err(|e| SdkError::Key(e.to_string()))?,
        })
    }

    /// The current (not retired) encryption key in the JSON of
    /// `/.well-known/menshen/keys`.
    pub fn from_key_set(json: &[u8]) -> Result<Self, SdkError> {
        let v: Value =
            serde_json::from_slice(json).map_err(|e| SdkError::Key(format!("key set: {e}")))?;
        let k = v["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|k| k["purpose"] == "encryption" && k["retired"] != true)
            .ok_or_else(|| SdkError::Key("the key set has no current encryption key".into()))?;
        Self::from_pem(
            k["key_id"].as_str().unwrap_or_default(),
            k["public_key_pem"].as_str().unwrap_or_default(),
        )
    }
}

/// Encrypt the fields `pointers` names in the JSON `body` for the bank
/// (a fresh session key and fresh IVs). A body with none of them comes
/// back unchanged.
pub fn seal_request_fields(
    body: &[u8],
    pointers: &[String],
    bank: &BankEncryptionKey,
) -> Result<Vec<u8>, SdkError> {
    if pointers.is_empty() {
        return Ok(body.to_vec());
    }
    let mut v: Value = serde_json::from_slice(body)
        .map_err(|e| SdkError::Envelope(format!("the body is not JSON: {e}")))?;
    let n = envelope::seal(&mut v, pointers, &bank.key_id, &bank.key)
        .map_err(|e| SdkError::Envelope(e.to_string()))?;
    if n == 0 {
        return Ok(body.to_vec());
    }
    serde_json::to_vec(&v).map_err(|e| SdkError::Envelope(e.to_string()))
}

/// Decrypt the fields `pointers` names in a response `body` with the app's
/// encryption key. A body without an envelope and without those fields in
/// encrypted form comes back unchanged; a listed field in clear is an error
/// (the bank must have encrypted it).
pub fn open_response_fields(
    body: &[u8],
    pointers: &[String],
    key: &Sm2DecryptionKey,
) -> Result<Vec<u8>, SdkError> {
    if pointers.is_empty() || body.is_empty() {
        return Ok(body.to_vec());
    }
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return Ok(body.to_vec());
    };
    // The opened fields' plaintext: wiped when this value is dropped
    // (CONF-4); the caller owns the returned body.
    let mut v = envelope::PlainBody(v);
    let fp = key.public_key().fingerprint();
    let o = envelope::open(&mut v, pointers, |kid| (kid == fp).then_some(key))
        .map_err(|e| SdkError::Envelope(e.to_string()))?;
    if o.fields == 0 {
        return Ok(body.to_vec());
    }
    serde_json::to_vec(&*v).map_err(|e| SdkError::Envelope(e.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// CONF-1: what the SDK seals for the bank's key set opens with the
    /// bank's key, and what is sealed for the app's key opens in the SDK.
    #[test]
    fn conf_1_sdk_seals_for_the_key_set_and_opens_its_own() {
        let (bank, _) = Sm2DecryptionKey::generate().unwrap();
        let pem = menshen_crypto::PublicKey::from_spki_der(&bank.public_key().spki_der())
            .unwrap()
            .to_pem();
        let set = serde_json::json!({"keys": [
            {"key_id": "bank-sig-1", "purpose": "response-signing", "public_key_pem": "x", "retired": false},
            {"key_id": "bank-enc-1", "purpose": "encryption", "public_key_pem": pem, "retired": false}
        ]});
        let bk = BankEncryptionKey::from_key_set(set.to_string().as_bytes()).unwrap();
        assert_eq!(bk.key_id, "bank-enc-1");
        let ptrs = vec!["/payee/account".to_string()];
        let body = br#"{"payee":{"account":"6228480012345678"},"amount":"1.00"}"#;
        let sealed = seal_request_fields(body, &ptrs, &bk).unwrap();
        assert!(!String::from_utf8_lossy(&sealed).contains("6228480012345678"));
        let mut v: Value = serde_json::from_slice(&sealed).unwrap();
        envelope::open(&mut v, &ptrs, |k| (k == "bank-enc-1").then_some(&bank)).unwrap();
        assert_eq!(v["payee"]["account"], "6228480012345678");

        let (app, _) = Sm2DecryptionKey::generate().unwrap();
        let mut resp: Value = serde_json::from_slice(body).unwrap();
        envelope::seal(
            &mut resp,
            &ptrs,
            &app.public_key().fingerprint(),
            app.public_key(),
        )
        .unwrap();
        let opened = open_response_fields(resp.to_string().as_bytes(), &ptrs, &app).unwrap();
        let opened: Value = serde_json::from_slice(&opened).unwrap();
        assert_eq!(opened["payee"]["account"], "6228480012345678");
        // Not for this key: refused.
        let (other, _) = Sm2DecryptionKey::generate().unwrap();
        assert!(open_response_fields(resp.to_string().as_bytes(), &ptrs, &other).is_err());
    }
}
