//! An API's degraded answer (TRF-2): what the gateway answers instead of
//! calling the upstream while its circuit breaker is open or none of its
//! targets is healthy.

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// Most bytes of a fallback body.
pub const FALLBACK_BODY_MAX: usize = 64 * 1024;

/// A fixed answer: status, content type and body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fallback {
    /// HTTP status, 200-599.
    pub status: u16,
    /// `Content-Type` of the body; default `application/json`.
    #[serde(default = "default_content_type")]
    pub content_type: String,
    /// The body (UTF-8 text), at most 64 KiB.
    #[serde(default)]
    pub body: String,
}

fn default_content_type() -> String {
    "application/json".into()
}

impl Fallback {
    /// Check every field.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if !(200..=599).contains(&self.status) {
            return Err(ValidationError::new(
                "controls.fallback.status",
                "must be 200-599",
            ));
        }
        if self.content_type.is_empty()
            || self.content_type.len() > 128
            || !self.content_type.bytes().all(|b| (0x20..0x7f).contains(&b))
        {
            return Err(ValidationError::new(
                "controls.fallback.content_type",
                "must be 1-128 printable ASCII characters, e.g. application/json",
            ));
        }
        if self.body.len() > FALLBACK_BODY_MAX {
            return Err(ValidationError::new(
                "controls.fallback.body",
                "must be at most 64 KiB",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trf_2_fallback_defaults_and_limits() {
        let f: Fallback =
            serde_json::from_str(r#"{"status": 200, "body": "{\"busy\":true}"}"#).unwrap();
        assert_eq!(f.content_type, "application/json");
        f.validate().unwrap();
        let bad = Fallback {
            status: 101,
            ..f.clone()
        };
        assert_eq!(
            bad.validate().unwrap_err().field,
            "controls.fallback.status"
        );
        let bad = Fallback {
            content_type: "text/plain\r\nx: y".into(),
            ..f
        };
        assert_eq!(
            bad.validate().unwrap_err().field,
            "controls.fallback.content_type"
        );
    }
}
