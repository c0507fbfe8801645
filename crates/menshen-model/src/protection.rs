//! Per-API data protection controls (issue 13): the request schema (LVL-5),
//! attack screening (ATK-1) and response masking (CONF-3). Stored inside
//! [`crate::ApiControls`] (a JSON column), so every field has a serde
//! default and rows written before these controls load unchanged.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ValidationError;

str_enum!(
    /// What the screening stage does with a finding (ATK-1).
    ScreenMode {
        /// No screening.
        Off = "off",
        /// Record the finding in the access record and the log, let the call through.
        Detect = "detect",
        /// Refuse the call (403 `SUSPICIOUS_INPUT`), recorded.
        Block = "block"
    }
);

// The enum comes from `str_enum!`, which cannot attach `#[default]`.
#[allow(clippy::derivable_impls)]
impl Default for ScreenMode {
    fn default() -> Self {
        ScreenMode::Detect
    }
}

/// Default deepest JSON nesting the screening stage reads (objects and
/// arrays); deeper is refused.
pub const SCREEN_MAX_DEPTH: u32 = 32;
/// Default most strings (values and keys, query parameters, path segments,
/// headers) one request may carry to the screening stage; more is refused.
pub const SCREEN_MAX_STRINGS: u32 = 10_000;

fn default_max_depth() -> u32 {
    SCREEN_MAX_DEPTH
}
fn default_max_strings() -> u32 {
    SCREEN_MAX_STRINGS
}

/// Attack screening of an API's requests (ATK-1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Screening {
    /// `off`, `detect` (default) or `block`.
    #[serde(default)]
    pub mode: ScreenMode,
    /// Request headers the API reads, screened beside its
    /// `forward_request_headers` (lower-case names).
    #[serde(default)]
    pub headers: Vec<String>,
    /// Deepest JSON nesting accepted (1-128).
    #[serde(default = "default_max_depth")]
    pub max_depth: u32,
    /// Most strings accepted in one request (1-100000).
    #[serde(default = "default_max_strings")]
    pub max_strings: u32,
}

impl Default for Screening {
    fn default() -> Self {
        Screening {
            mode: ScreenMode::default(),
            headers: vec![],
            max_depth: SCREEN_MAX_DEPTH,
            max_strings: SCREEN_MAX_STRINGS,
        }
    }
}

impl Screening {
    /// Check the limits and header names.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if !(1..=128).contains(&self.max_depth) {
            return Err(ValidationError::new(
                "controls.screening.max_depth",
                "must be 1-128",
            ));
        }
        if !(1..=100_000).contains(&self.max_strings) {
            return Err(ValidationError::new(
                "controls.screening.max_strings",
                "must be 1-100000",
            ));
        }
        for h in &self.headers {
            if h.is_empty()
                || h.len() > 64
                || !h
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(ValidationError::new(
                    "controls.screening.headers",
                    "header names must be 1-64 characters of a-z 0-9 -",
                ));
            }
        }
        Ok(())
    }
}

/// Largest schema document accepted (serialized), per part.
pub const MAX_SCHEMA_BYTES: usize = 64 * 1024;

/// The JSON Schemas an API version's messages must follow (LVL-5), each
/// optional. Draft 2020-12 unless the schema names another in `$schema`.
/// Only local references (`#...`) are allowed: a remote or file `$ref` is
/// refused when the API is saved, and nothing is ever fetched.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSchema {
    /// The query parameters, seen as one JSON object (name -> value; a
    /// value is a string, or a number or boolean where the schema's
    /// property says so; a repeated parameter is an array).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<Value>,
    /// The request body (JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// The upstream's successful (2xx) answer (JSON): checked by the
    /// gateway before masking, encryption and signing; an answer that does
    /// not match is withheld (`UPSTREAM_RESPONSE_INVALID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Value>,
}

impl ApiSchema {
    /// The parts, named.
    pub fn parts(&self) -> [(&'static str, Option<&Value>); 3] {
        [
            ("query", self.query.as_ref()),
            ("body", self.body.as_ref()),
            ("response", self.response.as_ref()),
        ]
    }

    /// Check every part: an object or a boolean, at most
    /// [`MAX_SCHEMA_BYTES`], only local `$ref`s, and one that compiles.
    pub fn validate(&self) -> Result<(), ValidationError> {
        for (name, part) in self.parts() {
            let Some(s) = part else { continue };
            let field = format!("controls.schema.{name}");
            if !(s.is_object() || s.is_boolean()) {
                return Err(ValidationError::new(
                    field,
                    "must be a JSON Schema (an object or a boolean)",
                ));
            }
            if serde_json::to_vec(s).map(|v| v.len()).unwrap_or(usize::MAX) > MAX_SCHEMA_BYTES {
                return Err(ValidationError::new(
                    field,
                    "must be at most 64 KiB when serialized",
                ));
            }
            if let Some(r) = non_local_ref(s, 0) {
                return Err(ValidationError::new(
                    field,
                    format!("only local references (#/...) are allowed, found `{r}`: remote and file references are never fetched; inline the definition under $defs"),
                ));
            }
            compile(s).map_err(|e| ValidationError::new(field, e))?;
        }
        Ok(())
    }
}

/// Compile a schema that passed [`ApiSchema::validate`]: draft 2020-12 by
/// default, formats asserted, no retrieval of anything outside the
/// document (the crate is built without its file and HTTP resolvers).
pub fn compile(schema: &Value) -> Result<jsonschema::Validator, String> {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(schema)
        .map_err(|e| format!("does not compile: {e}"))
}

/// The first reference keyword whose target is not inside the document.
fn non_local_ref(v: &Value, depth: usize) -> Option<String> {
    if depth > 64 {
        return Some("(nested deeper than 64 levels)".into());
    }
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if matches!(k.as_str(), "$ref" | "$dynamicRef" | "$recursiveRef") {
                    match x.as_str() {
                        Some(r) if r.starts_with('#') => {}
                        Some(r) => return Some(r.chars().take(128).collect()),
                        None => return Some(format!("{k} that is not a string")),
                    }
                }
                if let Some(r) = non_local_ref(x, depth + 1) {
                    return Some(r);
                }
            }
            None
        }
        Value::Array(a) => a.iter().find_map(|x| non_local_ref(x, depth + 1)),
        _ => None,
    }
}

str_enum!(
    /// How one configured response field is masked (CONF-3).
    MaskKind {
        /// Card or account number: first 6 and last 4 digits kept.
        Account = "account",
        /// A person's name: the first character kept (`张**`).
        Name = "name",
        /// Resident ID number: first 6 and last 4 (or last 3 and the check letter) kept.
        IdNumber = "id_number",
        /// Phone number: first 3 and last 4 digits of a mobile number kept.
        Phone = "phone",
        /// Replaced whole by `***`.
        Full = "full"
    }
);

/// One response field to mask, by JSON Pointer (RFC 6901; a `*` segment
/// stands for every element of an array or every member of an object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskField {
    /// Where, e.g. `/accounts/*/number`.
    pub pointer: String,
    /// How.
    pub kind: MaskKind,
}

/// Masking of an API's response bodies to apps (CONF-3), unless the app's
/// grant is approved for clearing/reconciliation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseMask {
    /// Fields masked by pointer.
    #[serde(default)]
    pub fields: Vec<MaskField>,
    /// The safety net: every other value detected as a card, account, ID
    /// or mobile number (digit runs) or found under a name, account, ID or
    /// phone key is masked too. Unset: on for A2/A3, off for A1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detect: Option<bool>,
}

impl ResponseMask {
    /// Check the pointers.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.fields.len() > 256 {
            return Err(ValidationError::new(
                "controls.response_mask.fields",
                "at most 256 fields",
            ));
        }
        for f in &self.fields {
            if !valid_pointer(&f.pointer) {
                return Err(ValidationError::new(
                    "controls.response_mask.fields",
                    format!(
                        "`{}` is not a JSON Pointer such as /payee/name or /accounts/*/number",
                        f.pointer.chars().take(64).collect::<String>()
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// An RFC 6901 pointer of 1-256 characters, starting with `/`, with only
/// `~0` and `~1` escapes.
pub fn valid_pointer(p: &str) -> bool {
    if !p.starts_with('/') || p.len() > 256 || p.chars().any(char::is_control) {
        return false;
    }
    let b = p.as_bytes();
    b.iter()
        .enumerate()
        .all(|(i, c)| *c != b'~' || matches!(b.get(i + 1), Some(b'0' | b'1')))
}

/// A change of an API's data-protection controls (the admin API's `PATCH
/// /v1/apis/{api_id}/controls`, `menshen api import`): each part given
/// replaces the stored one; an empty `schema` (`{}`) removes the schema.
/// Other controls (authentication, consent, headers) are not changed here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtectionPatch {
    /// The query and body schemas (LVL-5).
    #[serde(default)]
    pub schema: Option<ApiSchema>,
    /// Attack screening (ATK-1).
    #[serde(default)]
    pub screening: Option<Screening>,
    /// Response masking (CONF-3).
    #[serde(default)]
    pub response_mask: Option<ResponseMask>,
}

impl ProtectionPatch {
    /// Apply to `c`, checking each part given.
    pub fn apply(&self, c: &mut crate::ApiControls) -> Result<(), ValidationError> {
        if let Some(s) = &self.schema {
            s.validate()?;
            c.schema = (s != &ApiSchema::default()).then(|| s.clone());
        }
        if let Some(s) = &self.screening {
            s.validate()?;
            c.screening = s.clone();
        }
        if let Some(m) = &self.response_mask {
            m.validate()?;
            c.response_mask = m.clone();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn lvl_5_remote_and_file_refs_are_refused_local_ones_compile() {
        let ok = ApiSchema {
            body: Some(json!({
                "type": "object",
                "properties": {"payee": {"$ref": "#/$defs/party"}},
                "$defs": {"party": {"type": "object", "required": ["name"]}}
            })),
            ..Default::default()
        };
        ok.validate().unwrap();
        for r in [
            "https://example.com/s.json",
            "file:///etc/passwd",
            "other.json#/x",
            "//host/x",
        ] {
            let bad = ApiSchema {
                query: Some(json!({"type": "object", "properties": {"a": {"$ref": r}}})),
                ..Default::default()
            };
            let e = bad.validate().unwrap_err();
            assert_eq!(e.field, "controls.schema.query", "{r}");
        }
        let not_schema = ApiSchema {
            body: Some(json!("string")),
            ..Default::default()
        };
        assert!(not_schema.validate().is_err());
        let bad_keyword = ApiSchema {
            body: Some(json!({"type": "no-such-type"})),
            ..Default::default()
        };
        assert!(bad_keyword.validate().is_err());
    }

    #[test]
    fn conf_3_pointers_are_checked() {
        assert!(valid_pointer("/a/b~1c/*/d~0"));
        for p in ["", "a/b", "/a~2", "/a~"] {
            assert!(!valid_pointer(p), "{p}");
        }
    }

    #[test]
    fn old_rows_load_with_defaults() {
        let s: Screening = serde_json::from_value(json!({})).unwrap();
        assert_eq!(s, Screening::default());
        assert_eq!(s.mode, ScreenMode::Detect);
        let m: ResponseMask = serde_json::from_value(json!({})).unwrap();
        assert_eq!(m.detect, None);
    }
}
