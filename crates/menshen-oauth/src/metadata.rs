//! Authorization server metadata (RFC 8414).

use crate::OAuthConfig;

/// The client authentication method of every signed endpoint: the request
/// is signed with RFC 9421 HTTP message signatures (HMAC-SM3 with the
/// App_Secret, or SM2 with the app's key pair), exactly like an API call
/// (`docs/protocol.md`). Not a registered IANA name: FAPI's
/// `private_key_jwt` and mTLS are not used (no JOSE library speaks SM2).
pub const AUTH_METHOD: &str = "menshen-http-signature";

/// The metadata document.
pub fn metadata(cfg: &OAuthConfig) -> serde_json::Value {
    let i = &cfg.issuer;
    let mut grants = vec!["authorization_code"];
    if cfg.token_profile.refreshes() {
        grants.push("refresh_token");
    }
    serde_json::json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/oauth2/authorize"),
        "token_endpoint": format!("{i}/oauth2/token"),
        "pushed_authorization_request_endpoint": format!("{i}/oauth2/par"),
        "revocation_endpoint": format!("{i}/oauth2/revoke"),
        "introspection_endpoint": format!("{i}/oauth2/introspect"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": grants,
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": [AUTH_METHOD],
        "revocation_endpoint_auth_methods_supported": [AUTH_METHOD],
        "introspection_endpoint_auth_methods_supported": [AUTH_METHOD],
        "require_pushed_authorization_requests": true,
        "authorization_response_iss_parameter_supported": true,
        "tls_client_certificate_bound_access_tokens": true,
        "menshen_token_profile": cfg.token_profile.as_str(),
        "menshen_consent_management_endpoint": format!("{i}/me/consents"),
    })
}
