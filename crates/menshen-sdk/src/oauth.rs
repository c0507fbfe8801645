//! The app's side of customer authorization (issue 11; `docs/protocol.md`
//! section 11): a pushed authorization request with PKCE (RFC 9126, RFC
//! 7636 S256), the authorize URL for the customer's browser, the code
//! exchange, refresh and revocation — each a request signed like any API
//! call — and calls that carry the customer's access token, with the
//! `Authorization` header covered by the signature.

use base64::Engine;
use bytes::Bytes;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::{Client, Response, SdkError, SignOptions};

/// A PKCE pair (RFC 7636, `S256` only): keep the verifier secret until the
/// code is exchanged.
pub struct Pkce {
    /// 43 characters of base64url (256 random bits).
    pub verifier: Zeroizing<String>,
    /// `BASE64URL(SHA-256(verifier))`.
    pub challenge: String,
}

impl Pkce {
    /// A fresh pair.
    pub fn new() -> Self {
        let verifier = Zeroizing::new(menshen_crypto::random_token(32));
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(menshen_crypto::sha256(verifier.as_bytes()));
        Pkce {
            verifier,
            challenge,
        }
    }
}

impl Default for Pkce {
    fn default() -> Self {
        Self::new()
    }
}

/// What the app asks the customer to consent to.
#[derive(Debug, Clone, Default)]
pub struct AuthorizationRequest {
    /// One of the app's registered redirect URIs (exact match).
    pub redirect_uri: String,
    /// API_IDs the consent should cover.
    pub scope: Vec<String>,
    /// Opaque value returned with the code (CSRF protection on the app's side).
    pub state: String,
    /// Consent validity, seconds (default: the bank's).
    pub consent_expires_in: Option<u64>,
    /// `once`, a number of calls, or `unlimited` (default).
    pub use_limit: Option<String>,
    /// Most calls per day.
    pub daily_limit: Option<u32>,
    /// Agent mode (USR-5): the username of the second customer who must approve.
    pub agent_username: Option<String>,
}

/// The answer to a pushed authorization request.
#[derive(Debug, Clone, Deserialize)]
pub struct ParResponse {
    /// `urn:ietf:params:oauth:request_uri:...`, single use.
    pub request_uri: String,
    /// Seconds it stays valid.
    pub expires_in: u64,
}

/// Tokens from the token endpoint.
#[derive(Clone, Deserialize)]
pub struct TokenResponse {
    /// The access token (secret).
    pub access_token: String,
    /// `Bearer`.
    pub token_type: String,
    /// Lifetime, seconds.
    pub expires_in: u64,
    /// API_IDs covered.
    #[serde(default)]
    pub scope: String,
    /// The consent behind it.
    #[serde(default)]
    pub consent_id: String,
    /// Refresh token (`standard` profile only).
    #[serde(default)]
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .field("consent_id", &self.consent_id)
            .finish_non_exhaustive()
    }
}

/// An error answer of the authorization server (RFC 6749 section 5.2), or
/// a gateway refusal before it.
#[derive(Debug, Clone)]
pub struct OAuthError {
    /// HTTP status.
    pub status: u16,
    /// `error` (RFC 6749) or the gateway's `code`.
    pub error: String,
    /// `error_description` or the gateway's message.
    pub description: String,
}

fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut out = String::new();
    for (k, v) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(&enc(k));
        out.push('=');
        out.push_str(&enc(v));
    }
    out.into_bytes()
}

/// `application/x-www-form-urlencoded` encoding of one name or value.
fn enc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                o.push(b as char)
            }
            b' ' => o.push('+'),
            _ => o.push_str(&format!("%{b:02X}")),
        }
    }
    o
}

fn oauth_error(r: &Response) -> OAuthError {
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
    let pick = |a: &str, b: &str| {
        v.get(a)
            .or_else(|| v.get(b))
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_string()
    };
    OAuthError {
        status: r.status,
        error: pick("error", "code"),
        description: pick("error_description", "message"),
    }
}

/// The result of an authorization server call.
pub type OAuthResult<T> = Result<Result<T, OAuthError>, SdkError>;

impl Client {
    async fn post_form(&self, path: &str, body: Vec<u8>) -> Result<Response, SdkError> {
        let mut req = self.request("POST", path, Some(body))?;
        req.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        self.sign(&mut req, None)?;
        self.send(req).await
    }

    fn parse<T: for<'de> Deserialize<'de>>(r: Response, ok: u16) -> OAuthResult<T> {
        if r.status != ok {
            return Ok(Err(oauth_error(&r)));
        }
        serde_json::from_slice(&r.body)
            .map(Ok)
            .map_err(|e| SdkError::Http(format!("authorization server answer: {e}")))
    }

    /// Push the authorization request (RFC 9126), signed as this app.
    pub async fn par(&self, req: &AuthorizationRequest, pkce: &Pkce) -> OAuthResult<ParResponse> {
        let scope = req.scope.join(" ");
        let expires = req.consent_expires_in.map(|v| v.to_string());
        let daily = req.daily_limit.map(|v| v.to_string());
        let mut pairs: Vec<(&str, &str)> = vec![
            ("response_type", "code"),
            ("client_id", &self.creds.app_id),
            ("redirect_uri", &req.redirect_uri),
            ("scope", &scope),
            ("state", &req.state),
            ("code_challenge", &pkce.challenge),
            ("code_challenge_method", "S256"),
        ];
        if let Some(e) = &expires {
            pairs.push(("consent_expires_in", e));
        }
        if let Some(u) = &req.use_limit {
            pairs.push(("use_limit", u));
        }
        if let Some(d) = &daily {
            pairs.push(("daily_limit", d));
        }
        if let Some(a) = &req.agent_username {
            pairs.push(("agent_username", a));
        }
        let r = self.post_form("/oauth2/par", form(&pairs)).await?;
        Self::parse(r, 201)
    }

    /// Where to send the customer's browser for `request_uri`.
    pub fn authorize_url(&self, request_uri: &str) -> String {
        format!(
            "{}://{}/oauth2/authorize?client_id={}&request_uri={}",
            self.base.scheme_str().unwrap_or("https"),
            self.base
                .authority()
                .map(|a| a.as_str())
                .unwrap_or_default(),
            enc(&self.creds.app_id),
            enc(request_uri)
        )
    }

    /// Exchange the authorization code (RFC 6749 section 4.1.3, RFC 7636).
    pub async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &str,
        pkce: &Pkce,
    ) -> OAuthResult<TokenResponse> {
        let body = form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", &pkce.verifier),
            ("client_id", &self.creds.app_id),
        ]);
        let r = self.post_form("/oauth2/token", body).await?;
        Self::parse(r, 200)
    }

    /// A new access token from a refresh token (`standard` profile; the
    /// refresh token is rotated: use the one returned).
    pub async fn refresh(&self, refresh_token: &str) -> OAuthResult<TokenResponse> {
        let body = form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", &self.creds.app_id),
        ]);
        let r = self.post_form("/oauth2/token", body).await?;
        Self::parse(r, 200)
    }

    /// Revoke a token (RFC 7009; always succeeds for a well-formed request).
    pub async fn revoke_token(&self, token: &str) -> Result<u16, SdkError> {
        let body = form(&[("token", token), ("client_id", &self.creds.app_id)]);
        Ok(self.post_form("/oauth2/revoke", body).await?.status)
    }

    /// Revoke a consent this app holds (`DELETE /oauth2/consents/{id}`).
    pub async fn revoke_consent(&self, consent_id: &str) -> Result<u16, SdkError> {
        let mut req = self.request(
            "DELETE",
            &format!("/oauth2/consents/{}", enc(consent_id)),
            None,
        )?;
        self.sign(&mut req, None)?;
        Ok(self.send(req).await?.status)
    }

    /// A signed request carrying a customer's access token; the signature
    /// covers `authorization`, so the token cannot be moved to another
    /// request.
    pub fn request_with_token(
        &self,
        method: &str,
        path_and_query: &str,
        body: Option<Vec<u8>>,
        token: &str,
    ) -> Result<http::Request<Bytes>, SdkError> {
        let mut req = self.request(method, path_and_query, body)?;
        req.headers_mut().insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|e| SdkError::Sign(format!("token: {e}")))?,
        );
        let mut opts: SignOptions = self.opts.clone();
        opts.extra_components.push("authorization".into());
        self.sign(&mut req, Some(&opts))?;
        Ok(req)
    }

    /// Build, sign (covering the token) and send a call with a customer's token.
    pub async fn call_with_token(
        &self,
        method: &str,
        path_and_query: &str,
        body: Option<Vec<u8>>,
        token: &str,
    ) -> Result<Response, SdkError> {
        let req = self.request_with_token(method, path_and_query, body, token)?;
        self.send(req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usr_1_pkce_s256_matches_rfc_7636_appendix_b() {
        // RFC 7636 Appendix B.
        let v = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let c = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(menshen_crypto::sha256(v.as_bytes()));
        assert_eq!(c, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        let p = Pkce::new();
        assert_eq!(p.verifier.len(), 43);
        assert_ne!(p.verifier.as_str(), Pkce::new().verifier.as_str());
    }

    #[test]
    fn form_encoding_escapes_reserved_characters() {
        assert_eq!(
            String::from_utf8(form(&[("a b", "x&y=z"), ("u", "https://e.x/cb?q=1")])).unwrap(),
            "a+b=x%26y%3Dz&u=https%3A%2F%2Fe.x%2Fcb%3Fq%3D1"
        );
    }
}
