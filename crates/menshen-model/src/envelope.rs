//! Field envelopes of an API (CONF-1, CONF-2): per direction, the JSON
//! fields (RFC 6901 JSON Pointers into the JSON body) that travel SM4
//! encrypted under a one-time key (`docs/protocol.md` §12).

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// The body's top-level member that carries the wrapped session key.
pub const ENVELOPE_MEMBER: &str = "menshen_envelope";
/// Most pointers an API may list per direction.
pub const MAX_ENVELOPE_POINTERS: usize = 32;
/// Longest pointer, in bytes.
pub const MAX_ENVELOPE_POINTER_LEN: usize = 256;

/// The fields that travel encrypted, per direction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldEnvelopes {
    /// Request body fields the app encrypts for the bank's encryption key;
    /// the gateway refuses them in clear and forwards them decrypted.
    #[serde(default)]
    pub request: Vec<String>,
    /// Response body fields the gateway encrypts for the app's registered
    /// encryption key before the bank signs the answer.
    #[serde(default)]
    pub response: Vec<String>,
}

impl FieldEnvelopes {
    /// No field in either direction.
    pub fn is_empty(&self) -> bool {
        self.request.is_empty() && self.response.is_empty()
    }

    /// Check both lists.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_pointers(&self.request)
            .map_err(|m| ValidationError::new("controls.envelope.request", m))?;
        validate_pointers(&self.response)
            .map_err(|m| ValidationError::new("controls.envelope.response", m))
    }
}

/// Check one direction's list: RFC 6901 pointers into the body, none the
/// envelope member, none repeated or inside another.
pub fn validate_pointers(pointers: &[String]) -> Result<(), String> {
    if pointers.len() > MAX_ENVELOPE_POINTERS {
        return Err(format!("at most {MAX_ENVELOPE_POINTERS} pointers"));
    }
    let own = format!("/{ENVELOPE_MEMBER}");
    for (i, p) in pointers.iter().enumerate() {
        if !p.starts_with('/') || p.len() > MAX_ENVELOPE_POINTER_LEN {
            return Err(format!(
                "`{p}`: a JSON Pointer (RFC 6901) starting with `/`, at most {MAX_ENVELOPE_POINTER_LEN} bytes"
            ));
        }
        let b = p.as_bytes();
        let escapes_ok = b
            .iter()
            .enumerate()
            .all(|(j, &c)| c != b'~' || matches!(b.get(j + 1), Some(b'0') | Some(b'1')));
        if !escapes_ok || p.chars().any(char::is_control) {
            return Err(format!(
                "`{p}`: `~` must be written `~0` or `~1`; no control characters"
            ));
        }
        if *p == own || p.starts_with(&format!("{own}/")) {
            return Err(format!(
                "`{p}`: `{ENVELOPE_MEMBER}` is the envelope's own member"
            ));
        }
        for q in &pointers[i + 1..] {
            if p == q || q.starts_with(&format!("{p}/")) || p.starts_with(&format!("{q}/")) {
                return Err(format!("`{p}` and `{q}` repeat or contain one another"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conf_1_pointer_lists_are_checked() {
        let ok = vec![
            "/payee/account".to_string(),
            "/payee/name".into(),
            "/a~1b".into(),
        ];
        assert!(validate_pointers(&ok).is_ok());
        for bad in [
            vec!["payee".to_string()],
            vec!["/a".into(), "/a/b".into()],
            vec!["/a".into(), "/a".into()],
            vec!["/a~2".into()],
            vec!["/a~".into()],
            vec![format!("/{ENVELOPE_MEMBER}")],
            vec![format!("/{ENVELOPE_MEMBER}/kid")],
            (0..33).map(|i| format!("/f{i}")).collect(),
        ] {
            assert!(validate_pointers(&bad).is_err(), "{bad:?}");
        }
        let e = FieldEnvelopes {
            request: vec![],
            response: vec!["x".into()],
        };
        assert_eq!(
            e.validate().unwrap_err().field,
            "controls.envelope.response"
        );
    }
}
