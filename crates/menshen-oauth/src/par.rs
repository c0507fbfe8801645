//! Pushed authorization requests (RFC 9126): the app states what it asks
//! for, signed; the customer's browser later carries only the request_uri.

use std::collections::HashSet;

use bytes::Bytes;
use menshen_model::{AppKind, Consent, ConsentState, Level, Lifecycle};

use crate::error::{bad, OAuthError};
use crate::form::{Form, FormError};
use crate::secret::{self, ns, ParRecord};
use crate::{resp, AppCaller, AuthEvent, AuthEventKind, AuthServer};

/// Default consent validity: 90 days.
pub const DEFAULT_CONSENT_SECS: i64 = 90 * 86_400;
/// Longest consent validity: 365 days.
pub const MAX_CONSENT_SECS: i64 = 365 * 86_400;
/// Most scopes in one request.
pub const MAX_SCOPES: usize = 32;
/// Largest use or daily limit.
pub const MAX_LIMIT: u32 = 1_000_000;

pub(crate) fn one<'a>(f: &'a Form, name: &str) -> Result<Option<&'a str>, OAuthError> {
    f.one(name)
        .map_err(|FormError::Repeated(n)| bad(format!("`{n}` is given more than once")))
}

pub(crate) fn required<'a>(f: &'a Form, name: &str) -> Result<&'a str, OAuthError> {
    one(f, name)?.ok_or_else(|| bad(format!("`{name}` is required")))
}

fn limit(v: &str, field: &str, allow_once: bool) -> Result<Option<u32>, OAuthError> {
    match v {
        "unlimited" => Ok(None),
        "once" if allow_once => Ok(Some(1)),
        n => match n.parse::<u32>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(Some(n)),
            _ => Err(bad(format!(
                "`{field}` must be {}a number from 1 to {MAX_LIMIT}, or `unlimited`",
                if allow_once { "`once`, " } else { "" }
            ))),
        },
    }
}

/// `POST /oauth2/par`.
pub(crate) async fn par(
    srv: &AuthServer,
    caller: &AppCaller,
    body: &[u8],
    now: i64,
) -> Result<http::Response<Bytes>, OAuthError> {
    if caller.kind == AppKind::Mobile {
        return Err(OAuthError::UnauthorizedClient(
            "a mobile app cannot obtain customer tokens; ask from your server (TOK-2)".into(),
        ));
    }
    let f = Form::parse(body);
    let client_id = required(&f, "client_id")?;
    if client_id != caller.app_id {
        return Err(OAuthError::InvalidClient(
            "`client_id` must be the App_ID that signed the request".into(),
        ));
    }
    if f.has("request_uri") || f.has("request") {
        return Err(bad("`request_uri` and `request` are not accepted in a pushed request (RFC 9126 section 2.1)"));
    }
    if required(&f, "response_type")? != "code" {
        return Err(bad("`response_type` must be `code`"));
    }
    let redirect_uri = required(&f, "redirect_uri")?;
    let registered = srv.store.store.redirect_uris(&caller.app_id).await?;
    if !registered.iter().any(|u| u == redirect_uri) {
        return Err(bad(
            "`redirect_uri` is not registered for this app (exact match; the bank registers them)",
        ));
    }
    let state = one(&f, "state")?.unwrap_or("");
    if state.len() > 512 {
        return Err(bad("`state` is longer than 512 characters"));
    }
    let challenge = one(&f, "code_challenge")?
        .ok_or_else(|| bad("`code_challenge` is required (PKCE, S256)"))?;
    match one(&f, "code_challenge_method")? {
        Some("S256") => {}
        Some(_) | None => {
            return Err(bad(
                "`code_challenge_method` must be `S256` (`plain` is not accepted)",
            ))
        }
    }
    if challenge.len() != 43 || !crate::pkce::well_formed(challenge) {
        return Err(bad(
            "`code_challenge` must be the base64url SHA-256 of the verifier (43 characters)",
        ));
    }

    // Scopes: API_IDs that exist and are granted to the app (USR-2).
    let scope = required(&f, "scope")?;
    let mut scopes: Vec<String> = Vec::new();
    let mut seen = HashSet::new();
    for s in scope.split(' ').filter(|s| !s.is_empty()) {
        if seen.insert(s) {
            scopes.push(s.to_string());
        }
    }
    if scopes.is_empty() || scopes.len() > MAX_SCOPES {
        return Err(OAuthError::InvalidScope(format!(
            "`scope` must list 1 to {MAX_SCOPES} API_IDs separated by spaces"
        )));
    }
    let grants = srv.store.store.list_grants(Some(&caller.app_id)).await?;
    let mut needs_two_factor = false;
    for s in &scopes {
        if !grants.iter().any(|g| &g.api_id == s) {
            return Err(OAuthError::InvalidScope(format!(
                "`{s}` is not an API this app is granted"
            )));
        }
        match srv.store.store.get_api(s).await {
            Ok(api) if matches!(api.lifecycle, Lifecycle::Published | Lifecycle::Deprecated) => {
                needs_two_factor |= api.level >= Level::A3
            }
            Ok(_) => return Err(OAuthError::InvalidScope(format!("`{s}` is not a live API"))),
            Err(menshen_store::StoreError::NotFound(_)) => {
                return Err(OAuthError::InvalidScope(format!("`{s}` is not an API")))
            }
            Err(e) => return Err(e.into()),
        }
    }

    let validity = match one(&f, "consent_expires_in")? {
        None => DEFAULT_CONSENT_SECS,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (60..=MAX_CONSENT_SECS).contains(&n) => n,
            _ => {
                return Err(bad(format!(
                    "`consent_expires_in` must be seconds from 60 to {MAX_CONSENT_SECS}"
                )))
            }
        },
    };
    let use_limit = match one(&f, "use_limit")? {
        None => None,
        Some(v) => limit(v, "use_limit", true)?,
    };
    let daily_limit = match one(&f, "daily_limit")? {
        None => None,
        Some(v) => limit(v, "daily_limit", false)?,
    };
    // USR-5: a customer's username as the directory has them (3 to 64
    // characters, no spaces or control characters): it is shown on the
    // bank's login page, so it must not carry an app's free text.
    let agent_username = match one(&f, "agent_username")? {
        None => None,
        Some(u)
            if (3..=64).contains(&u.chars().count())
                && !u.chars().any(|c| c.is_control() || c.is_whitespace()) =>
        {
            Some(u.to_string())
        }
        Some(_) => {
            return Err(bad(
                "`agent_username` must be the agent's username: 3 to 64 characters, no spaces or control characters",
            ))
        }
    };

    let app_name = srv
        .store
        .store
        .get_app(&caller.app_id)
        .await
        .map(|a| a.name)
        .unwrap_or_else(|_| caller.app_id.clone());
    let consent = Consent {
        consent_id: menshen_store::new_consent_id(),
        app_id: caller.app_id.clone(),
        user_id: None,
        scopes: scopes.clone(),
        accounts: Vec::new(),
        state: ConsentState::AwaitingAuthorisation,
        expires_at: now + validity,
        use_limit,
        daily_limit,
        uses: 0,
        agent_user_id: None,
        agent_approved: false,
        two_factor: false,
        created_at: now,
        authorised_at: None,
        revoked_by: None,
        ended_at: None,
    };
    srv.store.store.insert_consent(&consent).await?;
    let request_uri = format!("{}{}", secret::REQUEST_URI_PREFIX, secret::new_secret());
    let rec = ParRecord {
        app_id: caller.app_id.clone(),
        app_name,
        consent_id: consent.consent_id.clone(),
        redirect_uri: redirect_uri.to_string(),
        state: state.to_string(),
        code_challenge: challenge.to_string(),
        scopes,
        needs_two_factor,
        agent_username,
    };
    let ttl = srv.cfg.par_ttl_secs.clamp(1, 60);
    srv.hot
        .put(
            ns::PAR,
            &secret::hash(&request_uri),
            secret::encode(&rec),
            now + ttl,
            now,
        )
        .await?;
    let mut r = resp::json(
        201,
        &serde_json::json!({"request_uri": request_uri, "expires_in": ttl}),
    );
    r.extensions_mut().insert(AuthEvent {
        kind: AuthEventKind::ParCreated,
        app_id: Some(caller.app_id.clone()),
        user_id: None,
        consent_id: Some(consent.consent_id),
        client_ip: None,
        user_agent: None,
        time: now,
    });
    Ok(r)
}
