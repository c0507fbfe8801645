//! Per-API controls (LVL-3, AUD-4, AUD-5): authentication methods, message
//! retention, masking and forwarded headers.

use serde::{Deserialize, Serialize};

use crate::headers::header_list;
use crate::Fallback;
use crate::FieldEnvelopes;
use crate::{ApiSchema, ConsentRule, Level, ResponseMask, Screening, ValidationError};

str_enum!(
    /// How a request may authenticate to an API (AUTH-1, LVL-3).
    AuthMethod {
        /// App_ID + App_Secret with an HMAC signature (A1 only).
        Secret = "secret",
        /// App_ID + registered key pair (SM2, P-256, Ed25519, RSA).
        KeyPair = "key_pair",
        /// A client certificate bound to the App_ID (mutual TLS), plus a signature.
        Certificate = "certificate"
    }
);
str_enum!(
    /// How much of each message the audit log keeps (AUD-4: minimum necessary).
    MessageRetention {
        /// Only the access record.
        None = "none",
        /// Plus request and response headers.
        Headers = "headers",
        /// Plus headers and (masked) bodies.
        Bodies = "bodies"
    }
);

// The enum comes from `str_enum!`, which cannot attach `#[default]`.
#[allow(clippy::derivable_impls)]
impl Default for MessageRetention {
    fn default() -> Self {
        MessageRetention::None
    }
}

/// The controls an API runs beyond its level's minimum (LVL-3). A level
/// compiles into a minimum; an API can add controls, never drop below it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiControls {
    /// Accepted authentication methods.
    pub auth: Vec<AuthMethod>,
    /// Whether the bank signs responses.
    pub sign_responses: bool,
    /// Message parts kept in the audit log (AUD-4).
    #[serde(default)]
    pub audit_messages: MessageRetention,
    /// Extra JSON field names whose values are removed before logging (AUD-5),
    /// beside the built-in detectors.
    #[serde(default)]
    pub mask_fields: Vec<String>,
    /// Request headers passed to the upstream beside the gateway's default
    /// list (CONF-5: anything not listed stays at the gateway).
    #[serde(default)]
    pub forward_request_headers: Vec<String>,
    /// Upstream response headers passed to the app beside the default list.
    #[serde(default)]
    pub forward_response_headers: Vec<String>,
    /// The answer given instead of calling the upstream while its circuit
    /// breaker is open or none of its targets is healthy (TRF-2); none:
    /// the error `SERVICE_DEGRADED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Fallback>,
    /// Customer consent (USR-2, USR-4): whether calls need a customer's
    /// token, and where the call names its account.
    #[serde(default)]
    pub consent: ConsentRule,
    /// JSON Schemas of the query and body (LVL-5), checked before anything
    /// is forwarded; none: no schema check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<ApiSchema>,
    /// Attack screening of the request (ATK-1).
    #[serde(default)]
    pub screening: Screening,
    /// Masking of the response body (CONF-3).
    #[serde(default)]
    pub response_mask: ResponseMask,
    /// Fields that travel encrypted, per direction (CONF-1, CONF-2).
    #[serde(default, skip_serializing_if = "FieldEnvelopes::is_empty")]
    pub envelope: FieldEnvelopes,
    /// Where a funds API's request carries amount, counterparty and
    /// account type, for the risk rules (RSK-1).
    #[serde(default, skip_serializing_if = "crate::risk::RiskFields::is_unset")]
    pub risk: crate::risk::RiskFields,
}

impl ApiControls {
    /// The minimum (and default) controls of a level.
    pub fn minimum(level: Level) -> ApiControls {
        match level {
            Level::A1 => ApiControls {
                auth: vec![
                    AuthMethod::Secret,
                    AuthMethod::KeyPair,
                    AuthMethod::Certificate,
                ],
                sign_responses: false,
                audit_messages: MessageRetention::None,
                mask_fields: vec![],
                forward_request_headers: vec![],
                forward_response_headers: vec![],
                fallback: None,
                consent: ConsentRule::default(),
                schema: None,
                screening: Screening::default(),
                response_mask: ResponseMask::default(),
                envelope: FieldEnvelopes::default(),
                risk: Default::default(),
            },
            Level::A2 | Level::A3 => ApiControls {
                auth: vec![AuthMethod::KeyPair, AuthMethod::Certificate],
                sign_responses: true,
                audit_messages: MessageRetention::None,
                mask_fields: vec![],
                forward_request_headers: vec![],
                forward_response_headers: vec![],
                fallback: None,
                consent: ConsentRule::default(),
                schema: None,
                screening: Screening::default(),
                response_mask: ResponseMask::default(),
                envelope: FieldEnvelopes::default(),
                risk: Default::default(),
            },
        }
    }

    /// Refuse a configuration below the level's minimum, naming the control.
    pub fn validate_for(&self, level: Level) -> Result<(), ValidationError> {
        if let Some(s) = &self.schema {
            s.validate()?;
        }
        self.screening.validate()?;
        self.response_mask.validate()?;
        self.envelope.validate()?;
        self.risk.validate()?;
        if let Some(p) = &self.consent.account_pointer {
            if self
                .envelope
                .request
                .iter()
                .any(|e| p == e || p.starts_with(&format!("{e}/")))
            {
                return Err(ValidationError::new(
                    "controls.envelope.request",
                    format!("`{p}` is the consent's account field, which the gateway reads before it decrypts: it cannot be an encrypted field"),
                ));
            }
        }
        if self.auth.is_empty() {
            return Err(ValidationError::new(
                "controls.auth",
                "must name at least one method (A1 needs at least a MAC: `secret`)",
            ));
        }
        if level >= Level::A2 {
            if self.auth.contains(&AuthMethod::Secret) {
                return Err(ValidationError::new(
                    "controls.auth",
                    format!("{} APIs need a key pair or a bound client certificate; `secret` (MAC only) is below the minimum (missing control: key-pair or certificate authentication)", level.as_str()),
                ));
            }
            if !self.sign_responses {
                return Err(ValidationError::new(
                    "controls.sign_responses",
                    format!("{} APIs must have signed responses (missing control: bank response signature)", level.as_str()),
                ));
            }
        }
        Ok(())
    }
}

/// Optional overrides of an API's controls at creation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewApiControls {
    /// Accepted authentication methods.
    #[serde(default)]
    pub auth: Option<Vec<AuthMethod>>,
    /// Whether the bank signs responses.
    #[serde(default)]
    pub sign_responses: Option<bool>,
    /// Message parts kept in the audit log.
    #[serde(default)]
    pub audit_messages: Option<MessageRetention>,
    /// Extra JSON field names to remove before logging.
    #[serde(default)]
    pub mask_fields: Option<Vec<String>>,
    /// Extra request headers passed to the upstream (lower-case names).
    #[serde(default)]
    pub forward_request_headers: Option<Vec<String>>,
    /// Extra upstream response headers passed to the app (lower-case names).
    #[serde(default)]
    pub forward_response_headers: Option<Vec<String>>,
    /// The degraded answer while the upstream cannot be called (TRF-2).
    #[serde(default)]
    pub fallback: Option<Fallback>,
    /// Customer consent; A2/A3 APIs of customer-data categories always
    /// require it (see [`crate::NewApi::resolved_controls`]).
    #[serde(default)]
    pub consent: Option<ConsentRule>,
    /// JSON Schemas of the query and body (LVL-5).
    #[serde(default)]
    pub schema: Option<ApiSchema>,
    /// Attack screening (ATK-1); default mode `detect`.
    #[serde(default)]
    pub screening: Option<Screening>,
    /// Response masking (CONF-3).
    #[serde(default)]
    pub response_mask: Option<ResponseMask>,
    /// Fields that travel encrypted, per direction.
    #[serde(default)]
    pub envelope: Option<FieldEnvelopes>,
    /// Risk-rule fields of a funds API (RSK-1).
    #[serde(default)]
    pub risk: Option<crate::risk::RiskFields>,
}

impl NewApiControls {
    /// Apply the overrides to the level's minimum and validate the result.
    pub fn resolve(&self, level: Level) -> Result<ApiControls, ValidationError> {
        let mut c = ApiControls::minimum(level);
        if let Some(a) = &self.auth {
            c.auth = a.clone();
        }
        if let Some(s) = self.sign_responses {
            c.sign_responses = s;
        }
        if let Some(m) = self.audit_messages {
            c.audit_messages = m;
        }
        if let Some(f) = &self.mask_fields {
            if f.iter().any(|x| x.is_empty() || x.len() > 64) {
                return Err(ValidationError::new(
                    "controls.mask_fields",
                    "field names must be 1-64 characters",
                ));
            }
            c.mask_fields = f.clone();
        }
        if let Some(h) = &self.forward_request_headers {
            c.forward_request_headers = header_list("controls.forward_request_headers", h)?;
        }
        if let Some(h) = &self.forward_response_headers {
            c.forward_response_headers = header_list("controls.forward_response_headers", h)?;
        }
        if let Some(f) = &self.fallback {
            f.validate()?;
            c.fallback = Some(f.clone());
        }
        if let Some(r) = &self.consent {
            c.consent = r.clone();
        }
        if let Some(s) = &self.schema {
            c.schema = Some(s.clone());
        }
        if let Some(s) = &self.screening {
            c.screening = s.clone();
        }
        if let Some(m) = &self.response_mask {
            c.response_mask = m.clone();
        }
        if let Some(e) = &self.envelope {
            c.envelope = e.clone();
        }
        if let Some(r) = &self.risk {
            c.risk = r.clone();
        }
        c.validate_for(level)?;
        Ok(c)
    }
}
