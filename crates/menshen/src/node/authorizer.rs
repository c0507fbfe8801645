//! The node's authorizer: the gateway's [`Authorizer`] trait served by the
//! authorization server of `menshen-oauth` (issue 11). The gateway knows
//! only the trait; this is the one place that knows both.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use bytes::Bytes;
use menshen_gateway::authorizer::{AuthNote, Authorizer, Caller, ConsentGrant, ConsentRefusal};
use menshen_oauth::{AppCaller, AuthEvent, AuthServer, SignedEndpoint};
use menshen_protocol::ErrorCode;

/// [`AuthServer`] behind the gateway's trait. Set once the gateway has
/// bound its listeners (the issuer URL names the bound address when the
/// config does not); until then, which lasts only the start-up, the AS
/// answers that it is unavailable.
#[derive(Default)]
pub struct OAuthAuthorizer(pub OnceLock<Arc<AuthServer>>);

fn unavailable() -> http::Response<Bytes> {
    let mut r = http::Response::new(Bytes::from_static(
        b"{\"error\":\"temporarily_unavailable\"}",
    ));
    *r.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
    r
}

/// The authorization server's event on `r` as the gateway's [`AuthNote`]
/// (USR-4: the approval's time, client IP and user agent reach the record).
fn note(mut r: http::Response<Bytes>) -> http::Response<Bytes> {
    if let Some(e) = r.extensions_mut().remove::<AuthEvent>() {
        let mut text = format!("{:?} at {}", e.kind, e.time);
        if let Some(a) = &e.app_id {
            text.push_str(&format!("; app {a}"));
        }
        if let Some(ip) = e.client_ip {
            text.push_str(&format!("; browser {ip}"));
        }
        if let Some(ua) = &e.user_agent {
            text.push_str(&format!("; user agent {ua}"));
        }
        r.extensions_mut().insert(AuthNote {
            user_id: e.user_id,
            consent_id: e.consent_id,
            note: text,
        });
    }
    r
}

fn caller(c: &Caller) -> AppCaller {
    AppCaller {
        app_id: c.app_id.clone(),
        kind: c.kind,
        client_cert: c.client_cert.clone(),
    }
}

#[async_trait]
impl Authorizer for OAuthAuthorizer {
    async fn handle_signed(
        &self,
        endpoint: &'static str,
        c: &Caller,
        parts: &http::request::Parts,
        body: &[u8],
        now: i64,
    ) -> http::Response<Bytes> {
        let Some(asv) = self.0.get() else {
            return unavailable();
        };
        let Some(ep) = SignedEndpoint::from_request(&parts.method, parts.uri.path()) else {
            // The snapshot routed a built-in endpoint the AS does not know:
            // a mismatch between the two lists, never the client's fault.
            tracing::error!(
                endpoint,
                "built-in endpoint not served by the authorization server"
            );
            let mut r = http::Response::new(Bytes::from_static(b"{\"error\":\"server_error\"}"));
            *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
            return r;
        };
        note(asv.handle_signed(ep, &caller(c), parts, body, now).await)
    }

    async fn handle_web(
        &self,
        parts: &http::request::Parts,
        body: &[u8],
        client_ip: IpAddr,
        now: i64,
    ) -> Option<http::Response<Bytes>> {
        match self.0.get() {
            Some(asv) => asv.handle_web(parts, body, client_ip, now).await.map(note),
            None => Some(unavailable()),
        }
    }

    async fn check_call(
        &self,
        bearer: Option<&str>,
        c: &Caller,
        api_id: &str,
        account: Option<&str>,
        now: i64,
    ) -> Result<ConsentGrant, ConsentRefusal> {
        let Some(asv) = self.0.get() else {
            return Err(ConsentRefusal {
                code: ErrorCode::AuditUnavailable,
                reason: "authorization server not started yet".into(),
                user_id: None,
                consent_id: None,
            });
        };
        // The detailed check names the token's customer and consent even
        // when the call is refused, for its access record (USR-4).
        let chk = asv
            .check_call_detailed(bearer, &caller(c), api_id, account, now)
            .await;
        match chk.result {
            Ok(g) => Ok(ConsentGrant {
                user_id: g.user_id,
                consent_id: g.consent_id,
            }),
            Err(e) => {
                let code = ErrorCode::ALL
                    .iter()
                    .copied()
                    .find(|k| k.as_str() == e.code())
                    .unwrap_or(ErrorCode::Internal);
                Err(ConsentRefusal {
                    code,
                    reason: e.to_string(),
                    user_id: chk.user_id,
                    consent_id: chk.consent_id,
                })
            }
        }
    }
}
