//! The gateway's side of customer authorization (issue 11, USR-2, USR-4,
//! TOK-1..4; design in `docs/authorization.md`).
//!
//! The authorization server lives in its own crate (`menshen-oauth`); the
//! gateway only knows this trait, which the node implements with it. The
//! gateway (a) serves the AS's signed endpoints as *built-in APIs*, so they
//! get the whole pipeline (signature, nonce, app status, IP lists, the
//! record) before [`Authorizer::handle_signed`] runs, (b) hands the
//! customer-facing pages to [`Authorizer::handle_web`], and (c) asks
//! [`Authorizer::check_call`] about every call to an API that needs consent.
//! It knows nothing of the token's format.

use std::net::IpAddr;

use async_trait::async_trait;
use bytes::Bytes;
use menshen_model::{
    Api, ApiControls, AppKind, AuthMethod, Integration, Level, Lifecycle, MessageRetention, Method,
};
use menshen_protocol::ErrorCode;

/// The app making a call, as authenticated by the pipeline.
#[derive(Debug, Clone)]
pub struct Caller {
    /// App_ID.
    pub app_id: String,
    /// Server or mobile.
    pub kind: AppKind,
    /// Fingerprint of the client certificate on the connection, if any
    /// (certificate-bound tokens, RFC 8705).
    pub client_cert: Option<String>,
}

/// A call the consent allows: who the customer is, under which consent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentGrant {
    /// The customer's stable id (sent to the upstream).
    pub user_id: String,
    /// The consent (sent to the upstream).
    pub consent_id: String,
}

/// Why a call was refused by the consent check: one of the consent codes
/// (`TOKEN_MISSING`, `TOKEN_INVALID`, `CONSENT_NOT_ACTIVE`, `CONSENT_SCOPE`,
/// `ACCOUNT_NOT_CONSENTED`, `CONSENT_LIMIT_REACHED`, or `SERVICE_UNAVAILABLE`
/// when the hot state or store failed), and the reason for the record.
#[derive(Debug, Clone)]
pub struct ConsentRefusal {
    /// What the client is told.
    pub code: ErrorCode,
    /// What the audit record keeps.
    pub reason: String,
    /// The customer, when the token named one (for the record).
    pub user_id: Option<String>,
    /// The consent, when the token named one (for the record).
    pub consent_id: Option<String>,
}

/// What an authorization-server answer did, for its access record (USR-4:
/// the customer's approval, with time, client IP and user agent; logins
/// failed or locked; tokens issued; codes reused): the authorizer attaches
/// it to the response as an extension, the record keeps it.
#[derive(Debug, Clone, Default)]
pub struct AuthNote {
    /// The customer concerned.
    pub user_id: Option<String>,
    /// The consent concerned.
    pub consent_id: Option<String>,
    /// What happened, for auditors (no secret).
    pub note: String,
}

/// Customer authorization, as the gateway needs it.
#[async_trait]
pub trait Authorizer: Send + Sync + 'static {
    /// A built-in signed endpoint ([`BUILTIN_ENDPOINTS`]), after the
    /// pipeline authenticated `caller`.
    async fn handle_signed(
        &self,
        endpoint: &'static str,
        caller: &Caller,
        parts: &http::request::Parts,
        body: &[u8],
        now: i64,
    ) -> http::Response<Bytes>;

    /// The customer-facing pages and the metadata document; `None` when
    /// `parts` is not one of them.
    async fn handle_web(
        &self,
        parts: &http::request::Parts,
        body: &[u8],
        client_ip: IpAddr,
        now: i64,
    ) -> Option<http::Response<Bytes>>;

    /// Whether `bearer` lets `caller` call `api_id` on `account` now; counts
    /// the use when it does.
    async fn check_call(
        &self,
        bearer: Option<&str>,
        caller: &Caller,
        api_id: &str,
        account: Option<&str>,
        now: i64,
    ) -> Result<ConsentGrant, ConsentRefusal>;
}

impl std::fmt::Debug for dyn Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authorizer")
    }
}

/// Move the [`AuthNote`] of an authorization-server answer into the
/// exchange, for the record.
pub(crate) fn take_note(ex: &mut crate::exchange::Exchange, resp: &mut http::Response<Bytes>) {
    if let Some(n) = resp.extensions_mut().remove::<AuthNote>() {
        if let Some(user_id) = n.user_id {
            ex.consent = Some(ConsentGrant {
                user_id,
                consent_id: n.consent_id.unwrap_or_default(),
            });
        }
        ex.auth_note = Some(n.note);
    }
}

/// Path prefixes served by the authorization server's pages (unsigned).
pub const WEB_PREFIXES: &[&str] = &[
    "/oauth2/authorize",
    "/oauth2/login",
    "/oauth2/consent",
    "/oauth2/menshen.css",
    "/me/",
];
/// The RFC 8414 metadata document (unsigned).
pub const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";

/// Whether `path` is one of the authorization server's pages.
pub fn is_web_path(path: &str) -> bool {
    path == METADATA_PATH
        || path == "/me"
        || WEB_PREFIXES.iter().any(|p| {
            path.strip_prefix(p)
                .is_some_and(|rest| p.ends_with('/') || rest.is_empty() || rest.starts_with('/'))
        })
}

/// The built-in signed endpoints: (name, method, path pattern).
pub const BUILTIN_ENDPOINTS: &[(&str, Method, &str)] = &[
    ("par", Method::Post, "/oauth2/par"),
    ("token", Method::Post, "/oauth2/token"),
    ("revoke", Method::Post, "/oauth2/revoke"),
    ("introspect", Method::Post, "/oauth2/introspect"),
    (
        "consent_delete",
        Method::Delete,
        "/oauth2/consents/{consent_id}",
    ),
];

/// The catalog entry of a built-in endpoint: signed like an API call with
/// any of the app's credentials (App_Secret, key pair, bound certificate),
/// for server apps only (TOK-2: a mobile app is refused), responses signed
/// when the bank's key is configured, records durable.
pub fn builtin_api(name: &str, method: Method, path: &str) -> Api {
    Api {
        api_id: format!("menshen.oauth2.{name}"),
        version: "v1".to_string(),
        name: format!("authorization server: {name}"),
        method,
        path: path.to_string(),
        upstream: "builtin:".to_string(),
        level: Level::A1,
        integrations: vec![Integration::ServerToServer],
        owner: "menshen".to_string(),
        lifecycle: Lifecycle::Published,
        controls: ApiControls {
            auth: vec![
                AuthMethod::Secret,
                AuthMethod::KeyPair,
                AuthMethod::Certificate,
            ],
            // Token answers are signed by the bank like any A2 answer: the
            // app can prove what it was given.
            sign_responses: true,
            audit_messages: MessageRetention::None,
            ..ApiControls::minimum(Level::A1)
        },
        u_api_id: String::new(),
        created_at: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn web_paths_are_exactly_the_as_pages() {
        for p in [
            "/.well-known/oauth-authorization-server",
            "/oauth2/authorize",
            "/oauth2/login",
            "/oauth2/consent",
            "/oauth2/menshen.css",
            "/me",
            "/me/consents",
            "/me/consents/CN1/revoke",
        ] {
            assert!(is_web_path(p), "{p}");
        }
        for p in [
            "/oauth2/token",
            "/oauth2/par",
            "/oauth2/authorizex",
            "/v1/me",
            "/mex",
        ] {
            assert!(!is_web_path(p), "{p}");
        }
    }

    #[test]
    fn builtin_endpoints_parse_as_path_patterns() {
        for (name, m, p) in BUILTIN_ENDPOINTS {
            let a = builtin_api(name, *m, p);
            assert!(menshen_model::PathPattern::parse(&a.path).is_ok());
            assert!(a.controls.auth.contains(&AuthMethod::Secret));
        }
    }
}
