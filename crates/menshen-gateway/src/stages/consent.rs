//! Customer consent (USR-2, USR-4, TOK-1..4; issue 11): for an API whose
//! `controls.consent.required` is set, the call must carry a customer's
//! access token (`Authorization: Bearer`, covered by the signature, so it
//! cannot be moved to another signed request), issued to this app (and
//! certificate), under an authorised consent that names this API and the
//! account the call concerns. The authorizer counts the use atomically.
//! Runs after `authorize` (the app holds a grant) and before `upstream`.

use std::marker::PhantomData;

use menshen_protocol::ErrorCode;

use super::authenticate::Authenticated;
use super::authorize::Authorized;
use super::limits::Admitted;
use super::route::Routed;
use crate::authorizer::{Authorizer, Caller, ConsentGrant};
use crate::exchange::Exchange;
use crate::GatewayError;

/// Stage name.
pub const NAME: &str = "consent";

/// Proof that the consent check ran (or was not required): `upstream` needs
/// it, so no call reaches the bank without it.
pub struct Consented {
    /// The customer and consent, when the API needs consent.
    pub grant: Option<ConsentGrant>,
    _sealed: PhantomData<()>,
}

/// The bearer token of `ex`, if it sent one.
fn bearer(ex: &Exchange) -> Result<Option<&str>, GatewayError> {
    let mut it = ex.parts.headers.get_all(http::header::AUTHORIZATION).iter();
    let Some(v) = it.next() else {
        return Ok(None);
    };
    if it.next().is_some() {
        return Err(GatewayError::new(
            ErrorCode::BadRequest,
            "more than one Authorization header",
        ));
    }
    let v = v.to_str().unwrap_or("");
    match v.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(GatewayError::new(
            ErrorCode::TokenInvalid,
            "Authorization is not `Bearer <token>`",
        )),
    }
}

/// The account the call names (USR-4): the configured path parameter,
/// percent-decoded, or the string (or number) at the configured JSON Pointer
/// of the body.
fn account(ex: &Exchange, routed: &Routed) -> Result<Option<String>, GatewayError> {
    let rule = &routed.api.api.controls.consent;
    if let Some(name) = &rule.account_param {
        let path = ex.parts.uri.path();
        let v =
            routed.api.pattern.param(path, name).ok_or_else(|| {
                GatewayError::new(ErrorCode::BadRequest, "account parameter missing")
            })?;
        return Ok(Some(v));
    }
    if let Some(ptr) = &rule.account_pointer {
        // Read as the upstream will, or not at all (`strict_json`): a
        // member named twice, or a sibling a lenient binder would take for
        // the account (`ACCOUNT` beside `account`), is refused.
        let body = crate::strict_json::parse(&ex.body).map_err(|e| {
            GatewayError::new(
                ErrorCode::BadRequest,
                if e.classify() == serde_json::error::Category::Data {
                    format!("the body names the account ambiguously: {e}")
                } else {
                    "the body must be JSON naming the account".to_string()
                },
            )
        })?;
        if let Some(at) = crate::strict_json::ambiguous_at(&body, ptr) {
            return Err(GatewayError::new(
                ErrorCode::BadRequest,
                format!("the body names the account ambiguously: {at} beside {ptr}"),
            ));
        }
        return match body.pointer(ptr) {
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(serde_json::Value::Number(n)) => Ok(Some(n.to_string())),
            _ => Err(GatewayError::new(
                ErrorCode::BadRequest,
                format!("the body has no account at {ptr}"),
            )),
        };
    }
    Ok(None)
}

/// Check the call's token and consent when the API needs one.
pub async fn on_request(
    ex: &mut Exchange,
    routed: &Routed,
    auth: &Authenticated,
    _authorized: &Authorized,
    _admitted: &Admitted,
    authorizer: Option<&dyn Authorizer>,
) -> Result<Consented, GatewayError> {
    if !routed.api.api.controls.consent.required {
        return Ok(Consented {
            grant: None,
            _sealed: PhantomData,
        });
    }
    let Some(authorizer) = authorizer else {
        return Err(GatewayError::Internal(
            "API needs consent but no authorizer is configured".into(),
        ));
    };
    let token = bearer(ex)?;
    if token.is_some()
        && !ex
            .signature
            .as_ref()
            .is_some_and(|s| s.params.components.iter().any(|c| c == "authorization"))
    {
        return Err(GatewayError::new(
            ErrorCode::MalformedSignature,
            "the signature must cover `authorization` when a token is sent",
        ));
    }
    let account = account(ex, routed)?;
    let caller = Caller {
        app_id: auth.app.app.app_id.clone(),
        kind: auth.app.app.kind,
        client_cert: ex.client_cert.as_deref().map(str::to_string),
    };
    let now = ex.now_unix();
    match authorizer
        .check_call(
            token,
            &caller,
            &routed.api.api.api_id,
            account.as_deref(),
            now,
        )
        .await
    {
        Ok(g) => {
            ex.consent = Some(g.clone());
            Ok(Consented {
                grant: Some(g),
                _sealed: PhantomData,
            })
        }
        Err(r) => {
            ex.consent = r.user_id.map(|user_id| ConsentGrant {
                user_id,
                consent_id: r.consent_id.unwrap_or_default(),
            });
            Err(GatewayError::new(r.code, r.reason))
        }
    }
}
