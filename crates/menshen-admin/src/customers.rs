//! Admin handlers for customer authorization (issue 11): the bank enrols
//! customers in the built-in directory (USR-1), sees and revokes consents
//! (USR-6), and registers each app's redirect URIs (exact match at the
//! authorization server).
//!
//! The password and the TOTP secret never reach an admin record: the
//! request's `password` and the answer's `totp_secret` are credentials to the
//! audit scrubber, and `otpauth://` URIs are removed by [`crate::scrub`].

use crate::extract::{Path, Query};
use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use bytes::Bytes;
use menshen_model::{RevokedBy, ValidationError};
use serde::Deserialize;
use serde_json::json;
use zeroize::Zeroizing;

use crate::handlers::parse;
use crate::{AdminError, AdminState};

type R = Result<axum::response::Response, AdminError>;

/// Issuer shown by authenticator apps for an enrolled TOTP secret.
pub const TOTP_ISSUER: &str = "Menshen";

/// Most redirect URIs one app may register.
pub const MAX_REDIRECT_URIS: usize = 10;
/// Longest redirect URI accepted.
pub const MAX_REDIRECT_URI_LEN: usize = 512;

/// `POST /v1/customers`. The password is zeroized once hashed.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCustomer {
    username: String,
    display_name: String,
    password: Zeroizing<String>,
    accounts: Vec<String>,
    #[serde(default)]
    totp: bool,
}

pub async fn create_customer(State(st): State<AdminState>, body: Bytes) -> R {
    let b: NewCustomer = parse(&body)?;
    let (customer, totp) = st
        .cp
        .create_customer(
            &b.username,
            &b.display_name,
            &b.password,
            b.accounts,
            b.totp,
        )
        .await?;
    tracing::info!(user_id = %customer.user_id, totp = customer.has_totp, "customer enrolled");
    let mut v = json!({ "customer": customer });
    if let Some(secret) = totp {
        let raw = menshen_crypto::totp::base32_decode(&secret).ok_or_else(|| {
            AdminError::Internal("a new TOTP secret did not decode from base32".into())
        })?;
        let uri = menshen_crypto::totp::otpauth_uri(TOTP_ISSUER, &b.username, &raw);
        v["totp_secret"] = json!(secret.as_str());
        v["otpauth_uri"] = json!(uri.as_str());
        v["notice"] = json!(
            "the TOTP secret is shown once: enrol it in the customer's authenticator app now (scan otpauth_uri as a QR code); the bank keeps it only sealed"
        );
    }
    Ok((http::StatusCode::CREATED, Json(v)).into_response())
}

pub async fn list_customers(State(st): State<AdminState>) -> R {
    Ok(Json(st.cp.store.list_customers().await?).into_response())
}

#[derive(Deserialize)]
pub struct ConsentQuery {
    app_id: Option<String>,
    user_id: Option<String>,
}

pub async fn list_consents(State(st): State<AdminState>, Query(q): Query<ConsentQuery>) -> R {
    let app = q.app_id.as_deref().filter(|s| !s.is_empty());
    let user = q.user_id.as_deref().filter(|s| !s.is_empty());
    Ok(Json(st.cp.store.list_consents(app, user).await?).into_response())
}

/// USR-6, AUTH-6: the bank revokes a consent. The authorization server
/// refuses its tokens from the next call on (it reads the state).
pub async fn revoke_consent(State(st): State<AdminState>, Path(id): Path<String>) -> R {
    let c = match &st.revoke_consent {
        Some(hook) => {
            // The store's own check answers the states a revocation cannot
            // leave (409) and an unknown id (404) the same way either path.
            let current = st.cp.store.get_consent(&id).await?;
            if !matches!(
                current.state,
                menshen_model::ConsentState::Authorised
                    | menshen_model::ConsentState::AwaitingAuthorisation
            ) {
                return Err(menshen_store::StoreError::Conflict(ValidationError::new(
                    "state",
                    format!(
                        "the consent is {}: only an authorised or awaiting consent can be revoked",
                        current.state
                    ),
                ))
                .into());
            }
            hook(id.clone())
                .await?
                .ok_or_else(|| menshen_store::StoreError::NotFound(format!("consent {id}")))?
        }
        None => st.cp.revoke_consent(&id, RevokedBy::Bank).await?,
    };
    tracing::info!(consent_id = %c.consent_id, app_id = %c.app_id, "consent revoked by the bank");
    Ok(Json(c).into_response())
}

/// Check one redirect URI: absolute `https://`, or `http://` to the loopback
/// host (`127.0.0.1`, `localhost`, `[::1]`) for development; no fragment
/// (RFC 6749 section 3.1.2), no user information, no spaces or control
/// characters. Matching is exact later, so the URI is kept as given.
pub fn check_redirect_uri(uri: &str) -> Result<(), String> {
    if uri.is_empty() || uri.len() > MAX_REDIRECT_URI_LEN {
        return Err(format!("1 to {MAX_REDIRECT_URI_LEN} characters"));
    }
    if uri.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("no spaces or control characters".into());
    }
    if uri.contains('#') {
        return Err("no fragment (`#...`) in a redirect URI (RFC 6749 3.1.2)".into());
    }
    let parsed: http::Uri = uri.parse().map_err(|_| "not an absolute URL".to_string())?;
    let scheme = parsed.scheme_str().unwrap_or("");
    let Some(auth) = parsed.authority() else {
        return Err("not an absolute URL: give scheme and host".into());
    };
    if auth.as_str().contains('@') {
        return Err("no user information (`user@`) in a redirect URI".into());
    }
    let host = auth.host();
    if host.is_empty() {
        return Err("no host".into());
    }
    match scheme {
        "https" => Ok(()),
        "http" if matches!(host, "127.0.0.1" | "localhost" | "[::1]") => Ok(()),
        "http" => {
            Err("http:// only to 127.0.0.1, localhost or [::1] (development); use https://".into())
        }
        _ => Err(
            "must start with https:// (or http://127.0.0.1 / http://localhost for development)"
                .into(),
        ),
    }
}

pub async fn set_redirect_uris(
    State(st): State<AdminState>,
    Path(app_id): Path<String>,
    body: Bytes,
) -> R {
    let uris: Vec<String> = parse(&body).map_err(|_| {
        AdminError::Invalid(ValidationError::new(
            "redirect_uris",
            "send a JSON array of URIs, e.g. [\"https://app.example/cb\"]",
        ))
    })?;
    if uris.len() > MAX_REDIRECT_URIS {
        return Err(AdminError::Invalid(ValidationError::new(
            "redirect_uris",
            format!("at most {MAX_REDIRECT_URIS} per app"),
        )));
    }
    for (i, u) in uris.iter().enumerate() {
        check_redirect_uri(u).map_err(|m| {
            AdminError::Invalid(ValidationError::new(
                "redirect_uris",
                format!("#{} `{u}`: {m}", i + 1),
            ))
        })?;
        if uris[..i].contains(u) {
            return Err(AdminError::Invalid(ValidationError::new(
                "redirect_uris",
                format!("#{} `{u}` is listed twice", i + 1),
            )));
        }
    }
    st.cp.store.get_app(&app_id).await?;
    st.cp.store.set_redirect_uris(&app_id, &uris).await?;
    tracing::info!(app_id, count = uris.len(), "redirect URIs registered");
    Ok(Json(json!({"app_id": app_id, "redirect_uris": uris})).into_response())
}

pub async fn get_redirect_uris(State(st): State<AdminState>, Path(app_id): Path<String>) -> R {
    st.cp.store.get_app(&app_id).await?;
    let uris = st.cp.store.redirect_uris(&app_id).await?;
    Ok(Json(json!({"app_id": app_id, "redirect_uris": uris})).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_https_or_loopback_http_without_fragment() {
        for ok in [
            "https://fintech.example/cb",
            "https://fintech.example:8443/oauth/cb?x=1",
            "http://127.0.0.1:8080/cb",
            "http://localhost/cb",
            "http://[::1]:9000/cb",
        ] {
            assert_eq!(check_redirect_uri(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "/cb",
            "fintech.example/cb",
            "http://fintech.example/cb",
            "http://127.0.0.2/cb",
            "https://fintech.example/cb#frag",
            "https://user@fintech.example/cb",
            "https://fintech.example/c b",
            "ftp://fintech.example/cb",
            "javascript:alert(1)",
        ] {
            assert!(check_redirect_uri(bad).is_err(), "{bad}");
        }
    }
}
