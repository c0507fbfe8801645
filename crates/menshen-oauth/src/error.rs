//! Errors: what the consent stage refuses a call with ([`ConsentError`]),
//! what a customer directory answers ([`LoginError`]), and the RFC 6749
//! errors of the authorization server's own endpoints ([`OAuthError`]).

/// Why the consent stage refused a call (`docs/protocol.md` section 10). Each
/// variant is one error code; [`ConsentError::code`] and
/// [`ConsentError::status`] are what the app sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConsentError {
    /// No `Authorization: Bearer` token on an API that needs one (USR-2).
    #[error("this API needs a customer's access token")]
    TokenMissing,
    /// The token is unknown, expired, already used, revoked, another app's,
    /// or bound to another client certificate (TOK-1, TOK-4, AUTH-6).
    #[error("the access token is not valid")]
    TokenInvalid,
    /// The consent is not `authorised` (rejected, revoked, expired,
    /// consumed or still awaiting) (USR-3, USR-6).
    #[error("the customer's consent is not active")]
    ConsentNotActive,
    /// The API is not among the consent's scopes (USR-2).
    #[error("this API is not in the customer's consent")]
    ConsentScope,
    /// The account the call names is not among the consent's (USR-4).
    #[error("the account is not in the customer's consent")]
    AccountNotConsented,
    /// The consent's use or daily limit is reached (USR-3).
    #[error("the consent's use limit is reached")]
    ConsentLimitReached,
    /// The hot state or the store failed; the call is refused (fail closed).
    #[error("consent check unavailable: {0}")]
    Unavailable(String),
}

impl ConsentError {
    /// The error code the app sees.
    pub fn code(&self) -> &'static str {
        match self {
            ConsentError::TokenMissing => "TOKEN_MISSING",
            ConsentError::TokenInvalid => "TOKEN_INVALID",
            ConsentError::ConsentNotActive => "CONSENT_NOT_ACTIVE",
            ConsentError::ConsentScope => "CONSENT_SCOPE",
            ConsentError::AccountNotConsented => "ACCOUNT_NOT_CONSENTED",
            ConsentError::ConsentLimitReached => "CONSENT_LIMIT_REACHED",
            ConsentError::Unavailable(_) => "SERVICE_UNAVAILABLE",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            ConsentError::TokenMissing | ConsentError::TokenInvalid => 401,
            ConsentError::ConsentNotActive
            | ConsentError::ConsentScope
            | ConsentError::AccountNotConsented => 403,
            ConsentError::ConsentLimitReached => 429,
            ConsentError::Unavailable(_) => 503,
        }
    }
}

impl From<menshen_store::hot::HotError> for ConsentError {
    fn from(e: menshen_store::hot::HotError) -> Self {
        ConsentError::Unavailable(e.to_string())
    }
}

impl From<menshen_store::StoreError> for ConsentError {
    fn from(e: menshen_store::StoreError) -> Self {
        ConsentError::Unavailable(e.to_string())
    }
}

/// A customer directory's answer to a failed login step (USR-1, USR-7).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoginError {
    /// Unknown user, wrong password or wrong one-time password. Never says
    /// which. `user_id` is set when the user is known (for the audit record).
    #[error("wrong username, password or one-time password")]
    Invalid {
        /// The customer, when known.
        user_id: Option<String>,
    },
    /// Locked after repeated failures, until `until` (unix seconds).
    /// `locked_now` is true on the failure that locked it (raise an audit
    /// record then).
    #[error("locked after repeated failures")]
    Locked {
        /// The customer, when known.
        user_id: Option<String>,
        /// Unix seconds.
        until: i64,
        /// Whether this attempt caused the lock.
        locked_now: bool,
    },
    /// The customer has no second factor enrolled, and one is needed.
    #[error("no second factor enrolled")]
    NoSecondFactor,
    /// The directory could not be asked (store or identity service down).
    #[error("customer directory unavailable: {0}")]
    Unavailable(String),
}

impl From<menshen_store::StoreError> for LoginError {
    fn from(e: menshen_store::StoreError) -> Self {
        LoginError::Unavailable(e.to_string())
    }
}

/// An RFC 6749 section 5.2 error of a signed endpoint, answered as
/// `{"error", "error_description"}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OAuthError {
    /// Missing, repeated or malformed parameter.
    #[error("invalid_request: {0}")]
    InvalidRequest(String),
    /// `client_id` is not the signing app.
    #[error("invalid_client: {0}")]
    InvalidClient(String),
    /// Code or refresh token unknown, expired, used, another app's, or the
    /// redirect URI or PKCE verifier does not match.
    #[error("invalid_grant: {0}")]
    InvalidGrant(String),
    /// The app may not use this grant (a mobile app, TOK-2).
    #[error("unauthorized_client: {0}")]
    UnauthorizedClient(String),
    /// Not `authorization_code` (nor `refresh_token` under `standard`).
    #[error("unsupported_grant_type: {0}")]
    UnsupportedGrantType(String),
    /// An API_ID that does not exist or is not granted to the app.
    #[error("invalid_scope: {0}")]
    InvalidScope(String),
    /// The store or hot state failed.
    #[error("server_error: {0}")]
    ServerError(String),
}

impl OAuthError {
    /// The RFC 6749 `error` value.
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::InvalidClient(_) => "invalid_client",
            OAuthError::InvalidGrant(_) => "invalid_grant",
            OAuthError::UnauthorizedClient(_) => "unauthorized_client",
            OAuthError::UnsupportedGrantType(_) => "unsupported_grant_type",
            OAuthError::InvalidScope(_) => "invalid_scope",
            OAuthError::ServerError(_) => "server_error",
        }
    }

    /// The HTTP status (RFC 6749 section 5.2: 400, 401 for a client
    /// authentication failure).
    pub fn status(&self) -> u16 {
        match self {
            OAuthError::InvalidClient(_) => 401,
            OAuthError::ServerError(_) => 500,
            _ => 400,
        }
    }

    /// The description shown to the app (never a secret).
    pub fn description(&self) -> &str {
        match self {
            OAuthError::InvalidRequest(d)
            | OAuthError::InvalidClient(d)
            | OAuthError::InvalidGrant(d)
            | OAuthError::UnauthorizedClient(d)
            | OAuthError::UnsupportedGrantType(d)
            | OAuthError::InvalidScope(d) => d,
            OAuthError::ServerError(_) => "temporarily unavailable; retry later",
        }
    }
}

impl From<menshen_store::hot::HotError> for OAuthError {
    fn from(e: menshen_store::hot::HotError) -> Self {
        OAuthError::ServerError(e.to_string())
    }
}

impl From<menshen_store::StoreError> for OAuthError {
    fn from(e: menshen_store::StoreError) -> Self {
        OAuthError::ServerError(e.to_string())
    }
}

pub(crate) fn bad(msg: impl Into<String>) -> OAuthError {
    OAuthError::InvalidRequest(msg.into())
}

pub(crate) fn grant(msg: impl Into<String>) -> OAuthError {
    OAuthError::InvalidGrant(msg.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usr_2_consent_error_codes_and_statuses_as_documented() {
        let all = [
            (ConsentError::TokenMissing, "TOKEN_MISSING", 401),
            (ConsentError::TokenInvalid, "TOKEN_INVALID", 401),
            (ConsentError::ConsentNotActive, "CONSENT_NOT_ACTIVE", 403),
            (ConsentError::ConsentScope, "CONSENT_SCOPE", 403),
            (
                ConsentError::AccountNotConsented,
                "ACCOUNT_NOT_CONSENTED",
                403,
            ),
            (
                ConsentError::ConsentLimitReached,
                "CONSENT_LIMIT_REACHED",
                429,
            ),
            (
                ConsentError::Unavailable("x".into()),
                "SERVICE_UNAVAILABLE",
                503,
            ),
        ];
        for (e, code, status) in all {
            assert_eq!((e.code(), e.status()), (code, status));
        }
        let e = OAuthError::ServerError("db down at /secret/path".into());
        assert!(
            !e.description().contains("secret"),
            "internal detail not shown"
        );
        assert_eq!(OAuthError::InvalidClient(String::new()).status(), 401);
    }
}
