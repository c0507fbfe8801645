//! Menshen's authorization server (issue 11; `docs/authorization.md` is the
//! design): pushed authorization requests (RFC 9126), the authorization code
//! flow with PKCE S256 (RFC 6749, RFC 7636), the `iss` response parameter
//! (RFC 9207), revocation (RFC 7009), introspection (RFC 7662), metadata
//! (RFC 8414), certificate-bound tokens (RFC 8705); the customer's login and
//! consent pages and their own consent list (USR-1..7); and the consent
//! check the gateway runs on every call that needs one (TOK-1..4, AUTH-6).
//!
//! The gateway owns the sockets, TLS, the request signature and the audit
//! record; this crate owns the protocol and its state. It calls:
//!
//! * [`AuthServer::handle_signed`] for `POST /oauth2/par`, `/oauth2/token`,
//!   `/oauth2/revoke`, `/oauth2/introspect` and `DELETE
//!   /oauth2/consents/{id}`, after the app's signature is verified (client
//!   authentication is the RFC 9421 signature: the metadata names it
//!   `menshen-http-signature`);
//! * [`AuthServer::handle_web`] for the unsigned browser paths (it answers
//!   `None` for any other path);
//! * [`AuthServer::check_call`] in the consent stage.
//!
//! Responses carry an [`AuthEvent`] extension saying what happened (login
//! failed or locked, consent approved with time, client IP and user agent,
//! token issued, ...) for the gateway's audit record: the consent itself
//! keeps the approval time (`authorised_at`); the IP and user agent go only
//! to the audit record.
//!
//! Nothing secret is kept in clear: request URIs, codes, tokens and session
//! ids are 256-bit CSPRNG values stored only as SM3 hashes in hot state
//! ([`secret`]); customer passwords and OTPs are checked by the
//! [`CustomerAuthenticator`] and never stored or logged here.
//!
//! # Gateway integration
//!
//! ```text
//! // start-up (OAuthConfig::validate first)
//! let dir = BuiltinDirectory::new(cp.clone(), cfg.lock_after, cfg.lock_secs);
//! let auth = Arc::new(AuthServer::new(cfg, cp.clone(), hot.clone(), dir));
//! // `upstream` stage of a built-in signed API (after signature, nonce, app
//! // status, IP lists): the caller as authenticated
//! let ep = SignedEndpoint::from_request(&parts.method, parts.uri.path());
//! let caller = AppCaller { app_id, kind, client_cert: Some(cert_fingerprint) };
//! let resp = auth.handle_signed(ep, &caller, &parts, &body, now).await;
//! // `oauth_web` stage (unsigned), body bounded at 16 KiB
//! if let Some(resp) = auth.handle_web(&parts, &body, client_ip, now).await { .. }
//! // `consent` stage, for APIs with controls.consent.required
//! let check = auth.check_call_detailed(bearer, &caller, &api.api_id, account, now).await;
//! // Ok(CallGrant { user_id, consent_id }) -> x-menshen-customer-id / -consent-id
//! // Err(e) -> e.code(), e.status(); check.user_id / check.consent_id for the record
//! // admin: auth.revoke_consent(id, RevokedBy::Bank, now); on suspend/exit
//! // auth.void_app_tokens(app_id, now)
//! ```
//!
//! Each response may carry an [`AuthEvent`] extension for the access record.
//!
//! # Agent mode (USR-5)
//!
//! A pushed request with `agent_username` makes a consent that needs two
//! bank customers. In the same browser session the customer logs in and
//! approves (choosing the accounts); the consent stays
//! `awaiting_authorisation`; the page then asks the named agent to log in
//! with their own credentials (another customer; OTP too when the request
//! has an A3 scope or the agent has a TOTP) and shows them what the
//! customer approved. Only the agent's approval makes the consent
//! `authorised` and sends the code to the app; either one declining
//! rejects it. Calls act for the customer (`user_id`); the consent records
//! the agent (`agent_user_id`, `agent_approved`), and both see it on
//! `/me/consents` and may revoke it.
//!
//! # Customer directories
//!
//! [`BuiltinDirectory`] reads the store's customers (argon2id passwords, a
//! sealed TOTP secret, a failure count and lock). [`HttpsDirectory`] asks
//! the bank's own identity service; its JSON contract:
//!
//! | request | success | failure |
//! |---|---|---|
//! | `POST {base}/v1/authenticate` `{"username","password"}` | 200 `{"user_id","display_name","accounts":[..],"has_totp"}` (optional `"username"`) | 401 wrong credentials; 423 `{"locked_until": unix}` locked |
//! | `POST {base}/v1/otp` `{"user_id","otp"}` | 204 | 401 wrong code; 423 locked |
//! | `GET {base}/v1/customers/{user_id}` | 200 as for authenticate | 404 unknown |
//!
//! Requests carry `Authorization: Bearer {service_token}` when one is
//! configured; bodies are JSON, UTF-8, at most 64 KiB; the service answers
//! within the configured timeout (5 s by default) or the login fails closed.
//! The service owns its own lockout; Menshen still enforces the single use
//! of each OTP.
#![forbid(unsafe_code)]
// The ban list (clippy.toml): no `unwrap` outside tests (an `expect` names
// its invariant), no printing from a library (tracing instead).
#![deny(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::dbg_macro
)]
#![warn(missing_docs)]

mod check;
pub mod clock;
pub mod directory;
pub mod error;
pub mod form;
mod metadata;
mod par;
pub mod pkce;
mod resp;
pub mod secret;
mod token;
mod web;

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use menshen_model::{AppKind, TokenProfile};
use menshen_store::{ControlPlane, HotState};

pub use directory::builtin::BuiltinDirectory;
pub use directory::https::{HttpsDirectory, HttpsDirectoryConfig};
pub use directory::CustomerAuthenticator;
pub use error::{ConsentError, LoginError, OAuthError};

/// Settings of the authorization server (config section `[oauth]`).
#[derive(Debug, Clone)]
pub struct OAuthConfig {
    /// The gateway's public https base URL, e.g. `https://api.bank.example`:
    /// the `issuer` (RFC 8414) and the base of every endpoint URL.
    pub issuer: String,
    /// How tokens behave (TOK-1, TOK-4); default `cmbc`.
    pub token_profile: TokenProfile,
    /// Lifetime of a pushed authorization request (<= 60 s).
    pub par_ttl_secs: i64,
    /// Lifetime of an authorization code (<= 60 s).
    pub code_ttl_secs: i64,
    /// A login session ends after this long without a request (USR-7).
    pub session_idle_secs: i64,
    /// Failed logins in a row before the customer is locked.
    pub lock_after: u32,
    /// How long a lock lasts.
    pub lock_secs: i64,
}

impl OAuthConfig {
    /// Check the settings; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        let i = self.issuer.trim_end_matches('/');
        if !i.starts_with("https://") || i.len() <= "https://".len() || i.contains(['?', '#']) {
            return Err(format!(
                "oauth.issuer must be the gateway's public https:// base URL without query or fragment (got `{}`)",
                self.issuer
            ));
        }
        let checks: [(&str, i64, i64, i64); 5] = [
            ("oauth.par_ttl_secs", self.par_ttl_secs, 1, 60),
            ("oauth.code_ttl_secs", self.code_ttl_secs, 1, 60),
            ("oauth.session_idle_secs", self.session_idle_secs, 30, 300),
            ("oauth.lock_secs", self.lock_secs, 60, 86_400),
            ("oauth.lock_after", i64::from(self.lock_after), 1, 100),
        ];
        for (name, v, lo, hi) in checks {
            if !(lo..=hi).contains(&v) {
                return Err(format!("{name} must be {lo} to {hi} (got {v})"));
            }
        }
        Ok(())
    }
}

impl Default for OAuthConfig {
    fn default() -> Self {
        OAuthConfig {
            issuer: "https://localhost:8443".into(),
            token_profile: TokenProfile::Cmbc,
            par_ttl_secs: 60,
            code_ttl_secs: 60,
            session_idle_secs: 300,
            lock_after: 5,
            lock_secs: 900,
        }
    }
}

/// The app making a signed request, as the gateway authenticated it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppCaller {
    /// App_ID.
    pub app_id: String,
    /// Server or mobile (TOK-2: mobile apps get no tokens).
    pub kind: AppKind,
    /// Fingerprint of the client certificate of the mutual-TLS connection
    /// (as the gateway computes it, e.g. hex SHA-256 of the DER), if any.
    pub client_cert: Option<String>,
}

/// A call the consent stage allowed: who the customer is and under which
/// consent (the gateway sends both to the upstream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallGrant {
    /// The customer (`x-menshen-customer-id`).
    pub user_id: String,
    /// The consent (`x-menshen-consent-id`).
    pub consent_id: String,
}

/// The outcome of a consent check with who it concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallCheck {
    /// What [`AuthServer::check_call`] answers.
    pub result: Result<CallGrant, ConsentError>,
    /// The token's customer, once the token was found valid for this app.
    pub user_id: Option<String>,
    /// The token's consent, likewise.
    pub consent_id: Option<String>,
}

/// The signed endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignedEndpoint {
    /// `POST /oauth2/par` (RFC 9126).
    Par,
    /// `POST /oauth2/token` (RFC 6749 section 4.1.3, 6).
    Token,
    /// `POST /oauth2/revoke` (RFC 7009).
    Revoke,
    /// `POST /oauth2/introspect` (RFC 7662).
    Introspect,
    /// `DELETE /oauth2/consents/{consent_id}`.
    DeleteConsent(String),
}

impl SignedEndpoint {
    /// The endpoint of a method and path, if it is one.
    pub fn from_request(method: &http::Method, path: &str) -> Option<SignedEndpoint> {
        match (method, path) {
            (&http::Method::POST, "/oauth2/par") => Some(SignedEndpoint::Par),
            (&http::Method::POST, "/oauth2/token") => Some(SignedEndpoint::Token),
            (&http::Method::POST, "/oauth2/revoke") => Some(SignedEndpoint::Revoke),
            (&http::Method::POST, "/oauth2/introspect") => Some(SignedEndpoint::Introspect),
            (&http::Method::DELETE, p) => p
                .strip_prefix("/oauth2/consents/")
                .filter(|id| !id.is_empty() && !id.contains('/'))
                .map(|id| SignedEndpoint::DeleteConsent(id.to_string())),
            _ => None,
        }
    }
}

fn is_form(parts: &http::request::Parts) -> bool {
    parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// What an authorization-server request did, attached to its response as an
/// extension (`response.extensions().get::<AuthEvent>()`) for the gateway's
/// audit record. Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthEvent {
    /// What happened.
    pub kind: AuthEventKind,
    /// The app concerned.
    pub app_id: Option<String>,
    /// The customer concerned.
    pub user_id: Option<String>,
    /// The consent concerned.
    pub consent_id: Option<String>,
    /// The browser's IP (web endpoints).
    pub client_ip: Option<IpAddr>,
    /// The browser's `User-Agent` (web endpoints), at most 256 bytes.
    pub user_agent: Option<String>,
    /// Unix seconds.
    pub time: i64,
}

/// Kinds of [`AuthEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthEventKind {
    /// A pushed authorization request created a consent.
    ParCreated,
    /// A token was issued.
    TokenIssued,
    /// A code was presented a second time; its tokens were revoked.
    CodeReused,
    /// The app revoked a token or consent.
    RevokedByApp,
    /// A customer logged in.
    LoginSucceeded,
    /// A login failed.
    LoginFailed,
    /// A login failure locked the customer (USR-7).
    LoginLocked,
    /// The customer (or, in agent mode, the last approver) approved: the
    /// consent is authorised (USR-4: the affirmative action recorded).
    ConsentApproved,
    /// Agent mode: the customer approved; the agent has not yet.
    ConsentApprovedAwaitingAgent,
    /// The customer or agent declined.
    ConsentRejected,
    /// The customer revoked a consent on their page.
    RevokedByCustomer,
}

/// The authorization server: one per node.
pub struct AuthServer {
    cfg: OAuthConfig,
    store: ControlPlane,
    hot: Arc<dyn HotState>,
    customers: Arc<dyn CustomerAuthenticator>,
    consent_cache: bool,
}

impl AuthServer {
    /// Build one.
    pub fn new(
        cfg: OAuthConfig,
        store: ControlPlane,
        hot: Arc<dyn HotState>,
        customers: Arc<dyn CustomerAuthenticator>,
    ) -> Self {
        let mut cfg = cfg;
        cfg.issuer = cfg.issuer.trim_end_matches('/').to_string();
        AuthServer {
            cfg,
            store,
            hot,
            customers,
            consent_cache: false,
        }
    }

    /// Keep consents in hot state for up to 60 s so that the consent stage
    /// does not read the store on every call (off by default). Sound only
    /// when every change to a consent goes through this crate: the bank's
    /// revocations through [`AuthServer::revoke_consent`], not
    /// `ControlPlane::revoke_consent` alone (a change made behind its back
    /// would be seen only when the entry expires; the tokens a revocation
    /// voids are refused at once either way).
    pub fn with_consent_cache(mut self, on: bool) -> Self {
        self.consent_cache = on;
        self
    }

    /// The configuration in force.
    pub fn config(&self) -> &OAuthConfig {
        &self.cfg
    }

    /// Authorization server metadata (RFC 8414), served at
    /// `/.well-known/oauth-authorization-server`.
    pub fn metadata_json(&self) -> serde_json::Value {
        metadata::metadata(&self.cfg)
    }

    /// Answer a signed endpoint for an authenticated app.
    pub async fn handle_signed(
        &self,
        ep: SignedEndpoint,
        caller: &AppCaller,
        parts: &http::request::Parts,
        body: &[u8],
        now: i64,
    ) -> http::Response<Bytes> {
        if !matches!(ep, SignedEndpoint::DeleteConsent(_)) && !is_form(parts) {
            return resp::oauth_error(&OAuthError::InvalidRequest(
                "the body must be application/x-www-form-urlencoded".into(),
            ));
        }
        let r = match ep {
            SignedEndpoint::Par => par::par(self, caller, body, now).await,
            SignedEndpoint::Token => token::token(self, caller, body, now).await,
            SignedEndpoint::Revoke => token::revoke(self, caller, body, now).await,
            SignedEndpoint::Introspect => token::introspect(self, caller, body, now).await,
            SignedEndpoint::DeleteConsent(id) => {
                token::delete_consent(self, caller, &id, now).await
            }
        };
        r.unwrap_or_else(|e| resp::oauth_error(&e))
    }

    /// Answer a browser request to an authorization-server path; `None` for
    /// any other path (the gateway goes on routing it).
    pub async fn handle_web(
        &self,
        parts: &http::request::Parts,
        body: &[u8],
        client_ip: IpAddr,
        now: i64,
    ) -> Option<http::Response<Bytes>> {
        web::handle(self, parts, body, client_ip, now).await
    }

    /// The consent stage (USR-2, USR-4, TOK-1): is this bearer token valid
    /// for this app, API and account now? Counts the use.
    pub async fn check_call(
        &self,
        bearer: Option<&str>,
        caller: &AppCaller,
        api_id: &str,
        account: Option<&str>,
        now: i64,
    ) -> Result<CallGrant, ConsentError> {
        check::check_call(self, bearer, caller, api_id, account, now)
            .await
            .result
    }

    /// [`AuthServer::check_call`], also naming the customer and consent of
    /// the token when they are known, for the access record of a refusal
    /// (e.g. `ACCOUNT_NOT_CONSENTED` names whose consent it was).
    pub async fn check_call_detailed(
        &self,
        bearer: Option<&str>,
        caller: &AppCaller,
        api_id: &str,
        account: Option<&str>,
        now: i64,
    ) -> CallCheck {
        check::check_call(self, bearer, caller, api_id, account, now).await
    }

    /// Revoke a consent (USR-6, AUTH-6): the bank's admin API and CLI call
    /// this with [`RevokedBy::Bank`](menshen_model::RevokedBy::Bank). Its
    /// tokens are void at once. Returns the consent as it now is; `None` if
    /// there is no such consent.
    pub async fn revoke_consent(
        &self,
        consent_id: &str,
        by: menshen_model::RevokedBy,
        now: i64,
    ) -> Result<Option<menshen_model::Consent>, menshen_store::StoreError> {
        token::revoke_consent(self, consent_id, by, now).await
    }

    /// Void every token of an app (AUTH-6: its suspension or exit). Its
    /// consents stay as they are (an exit should also revoke them with
    /// [`AuthServer::revoke_consent`]).
    pub async fn void_app_tokens(
        &self,
        app_id: &str,
        now: i64,
    ) -> Result<usize, menshen_store::StoreError> {
        token::void_app_tokens(self, app_id, now).await
    }
}
