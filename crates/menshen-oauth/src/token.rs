//! The token endpoint (RFC 6749 section 4.1.3 and 6, RFC 7636, RFC 8705),
//! revocation (RFC 7009), introspection (RFC 7662) and the app deleting its
//! consent; voiding a consent's tokens (AUTH-6).

use bytes::Bytes;
use menshen_model::{AppKind, Consent, ConsentState, RevokedBy, TokenProfile};
use menshen_store::StoreError;

use crate::error::{bad, grant, OAuthError};
use crate::form::Form;
use crate::par::{one, required};
use crate::secret::{self, ns, CodeRecord, TokenRecord};
use crate::{resp, AppCaller, AuthEvent, AuthEventKind, AuthServer};

/// What a redeemed code leaves behind (`code_used`): its consent and the
/// tokens issued from it, voided if the code is presented again.
#[derive(serde::Serialize, serde::Deserialize)]
struct CodeUsed {
    consent_id: String,
    tokens: Vec<String>,
    /// The app the code was issued to: only it can trigger the reuse
    /// revocation (another app presenting a stolen code must not void the
    /// owner's tokens).
    #[serde(default)]
    app_id: String,
}

/// Most token hashes remembered per consent (refresh rotation appends two
/// per refresh; older ones have long expired).
const MAX_CTOK: usize = 256;

fn event(
    kind: AuthEventKind,
    app: &str,
    user: Option<&str>,
    consent: Option<&str>,
    now: i64,
) -> AuthEvent {
    AuthEvent {
        kind,
        app_id: Some(app.to_string()),
        user_id: user.map(str::to_string),
        consent_id: consent.map(str::to_string),
        client_ip: None,
        user_agent: None,
        time: now,
    }
}

/// A token hash in the consent's list: `at:<hash>` or `rt:<hash>`.
fn tagged(ns_: &str, h: &str) -> String {
    format!("{ns_}:{h}")
}

async fn delete_tagged(srv: &AuthServer, t: &str, now: i64) {
    if let Some((n, h)) = t.split_once(':') {
        if n == ns::AT || n == ns::RT {
            if let Err(e) = srv.hot.delete(n, h, now).await {
                tracing::warn!(error = %e, "could not void a token");
            }
        }
    }
}

/// Void every token issued under a consent.
pub(crate) async fn void_consent_tokens(srv: &AuthServer, consent_id: &str, now: i64) -> usize {
    let list: Vec<String> = match srv.hot.get(ns::CTOK, consent_id, now).await {
        Ok(Some(b)) => secret::decode(&b).unwrap_or_default(),
        _ => Vec::new(),
    };
    for t in &list {
        delete_tagged(srv, t, now).await;
    }
    list.len()
}

async fn remember_tokens(
    srv: &AuthServer,
    consent: &Consent,
    tags: &[String],
    now: i64,
) -> Result<(), OAuthError> {
    let mut list: Vec<String> = match srv.hot.get(ns::CTOK, &consent.consent_id, now).await? {
        Some(b) => secret::decode(&b).unwrap_or_default(),
        None => Vec::new(),
    };
    list.extend(tags.iter().cloned());
    if list.len() > MAX_CTOK {
        let cut = list.len() - MAX_CTOK;
        list.drain(..cut);
    }
    srv.hot
        .put(
            ns::CTOK,
            &consent.consent_id,
            secret::encode(&list),
            consent.expires_at.max(now + 1),
            now,
        )
        .await?;
    Ok(())
}

/// Issue an access token (and a refresh token under `standard`) for
/// `consent`; returns the response body and the tagged hashes.
async fn issue(
    srv: &AuthServer,
    caller: &AppCaller,
    consent: &Consent,
    user_id: &str,
    code_hash: &str,
    now: i64,
) -> Result<(serde_json::Value, Vec<String>), OAuthError> {
    let profile = srv.cfg.token_profile;
    let exp = (now + profile.lifetime_secs()).min(consent.expires_at);
    let at = secret::new_secret();
    let at_hash = secret::hash(&at);
    let rec = TokenRecord {
        app_id: caller.app_id.clone(),
        consent_id: consent.consent_id.clone(),
        user_id: user_id.to_string(),
        scopes: consent.scopes.clone(),
        cnf: caller.client_cert.clone(),
        exp,
        code: code_hash.to_string(),
        one_time: profile.one_time(),
    };
    srv.hot
        .put(ns::AT, &at_hash, secret::encode(&rec), exp, now)
        .await?;
    let mut tags = vec![tagged(ns::AT, &at_hash)];
    if profile.one_live_token() {
        // TOK-4: the app's previous token for this customer is void.
        let live_key = secret::pair_key(&caller.app_id, user_id);
        if let Some(prev) = srv.hot.get(ns::LIVE, &live_key, now).await? {
            if let Ok(prev) = String::from_utf8(prev) {
                if prev != at_hash {
                    srv.hot.delete(ns::AT, &prev, now).await?;
                }
            }
        }
        srv.hot
            .put(ns::LIVE, &live_key, at_hash.clone().into_bytes(), exp, now)
            .await?;
    }
    let mut body = serde_json::json!({
        "access_token": at,
        "token_type": "Bearer",
        "expires_in": exp - now,
        "scope": consent.scopes.join(" "),
        "consent_id": consent.consent_id,
    });
    if profile.refreshes() {
        let rt = secret::new_secret();
        let rt_hash = secret::hash(&rt);
        let rrec = TokenRecord {
            exp: consent.expires_at,
            one_time: false,
            ..rec
        };
        srv.hot
            .put(
                ns::RT,
                &rt_hash,
                secret::encode(&rrec),
                consent.expires_at.max(now + 1),
                now,
            )
            .await?;
        tags.push(tagged(ns::RT, &rt_hash));
        body["refresh_token"] = serde_json::Value::String(rt);
    }
    remember_tokens(srv, consent, &tags, now).await?;
    Ok((body, tags))
}

async fn usable_consent(
    srv: &AuthServer,
    consent_id: &str,
    now: i64,
) -> Result<Consent, OAuthError> {
    let c = match srv.store.store.get_consent(consent_id).await {
        Ok(c) => c,
        Err(StoreError::NotFound(_)) => return Err(grant("the consent no longer exists")),
        Err(e) => return Err(e.into()),
    };
    if !c.usable_at(now) {
        return Err(grant(format!("the consent is {}", c.state)));
    }
    Ok(c)
}

/// `POST /oauth2/token`.
pub(crate) async fn token(
    srv: &AuthServer,
    caller: &AppCaller,
    body: &[u8],
    now: i64,
) -> Result<http::Response<Bytes>, OAuthError> {
    if caller.kind == AppKind::Mobile {
        return Err(OAuthError::UnauthorizedClient(
            "a mobile app cannot obtain tokens; ask from your server (TOK-2)".into(),
        ));
    }
    let f = Form::parse(body);
    if let Some(id) = one(&f, "client_id")? {
        if id != caller.app_id {
            return Err(OAuthError::InvalidClient(
                "`client_id` must be the App_ID that signed the request".into(),
            ));
        }
    }
    match required(&f, "grant_type")? {
        "authorization_code" => code_grant(srv, caller, &f, now).await,
        "refresh_token" if srv.cfg.token_profile == TokenProfile::Standard => {
            refresh_grant(srv, caller, &f, now).await
        }
        other => Err(OAuthError::UnsupportedGrantType(format!(
            "`{}` is not supported here",
            other.chars().take(64).collect::<String>()
        ))),
    }
}

async fn code_grant(
    srv: &AuthServer,
    caller: &AppCaller,
    f: &Form,
    now: i64,
) -> Result<http::Response<Bytes>, OAuthError> {
    let code = required(f, "code")?;
    let redirect_uri = required(f, "redirect_uri")?;
    let verifier =
        one(f, "code_verifier")?.ok_or_else(|| bad("`code_verifier` is required (PKCE)"))?;
    let code_hash = secret::hash(code);
    // The code's record of the tokens it gave (`code_used`) lives as long as
    // any of them can; the reuse mark only has to outlive a redemption in
    // flight, so any caller's unknown codes cannot pile up in hot state.
    let mark_until = now + srv.cfg.token_profile.lifetime_secs().max(7200) + 86_400;
    let reuse_mark_until = now + srv.cfg.code_ttl_secs + 60;
    // Another app's code is refused before it is consumed: a code leaked to
    // app B (logs, referrer) cannot be burnt by B, nor trip the owner's
    // reuse revocation.
    if let Some(raw) = srv.hot.get(ns::CODE, &code_hash, now).await? {
        if let Some(rec) = secret::decode::<CodeRecord>(&raw) {
            if rec.app_id != caller.app_id {
                return Err(grant("the code was issued to another app"));
            }
        }
    }
    let Some(raw) = srv.hot.take(ns::CODE, &code_hash, now).await? else {
        // Unknown, expired or used. A second redemption revokes every token
        // issued from the code (RFC 6749 section 4.1.2, TOK-3); the mark
        // also reaches a winner still issuing (it checks after).
        srv.hot
            .put(
                ns::CODE_REUSE,
                &code_hash,
                b"1".to_vec(),
                reuse_mark_until,
                now,
            )
            .await?;
        let mut revoked = 0;
        if let Some(b) = srv.hot.get(ns::CODE_USED, &code_hash, now).await? {
            if let Some(used) = secret::decode::<CodeUsed>(&b)
                .filter(|u| u.app_id.is_empty() || u.app_id == caller.app_id)
            {
                // Every token of the grant: those issued from the code and
                // any refreshed since.
                for t in &used.tokens {
                    delete_tagged(srv, t, now).await;
                }
                revoked = used.tokens.len() + void_consent_tokens(srv, &used.consent_id, now).await;
            }
        }
        let mut r = resp::oauth_error(&grant("the code is invalid, expired or already used"));
        if revoked > 0 {
            tracing::warn!(app_id = %caller.app_id, revoked, "authorization code redeemed twice: its tokens are revoked");
            r.extensions_mut().insert(event(
                AuthEventKind::CodeReused,
                &caller.app_id,
                None,
                None,
                now,
            ));
        }
        return Ok(r);
    };
    let rec: CodeRecord = secret::decode(&raw).ok_or_else(|| grant("the code is invalid"))?;
    if rec.app_id != caller.app_id {
        return Err(grant("the code was issued to another app"));
    }
    if !menshen_crypto::ct_eq(rec.redirect_uri.as_bytes(), redirect_uri.as_bytes()) {
        return Err(grant(
            "`redirect_uri` differs from the authorization request's",
        ));
    }
    if !crate::pkce::verify(verifier, &rec.code_challenge) {
        return Err(grant("`code_verifier` does not match the code challenge"));
    }
    let consent = usable_consent(srv, &rec.consent_id, now).await?;
    let (body, tags) = issue(srv, caller, &consent, &rec.user_id, &code_hash, now).await?;
    let used = CodeUsed {
        consent_id: consent.consent_id.clone(),
        tokens: tags.clone(),
        app_id: caller.app_id.clone(),
    };
    srv.hot
        .put(
            ns::CODE_USED,
            &code_hash,
            secret::encode(&used),
            mark_until,
            now,
        )
        .await?;
    if srv
        .hot
        .get(ns::CODE_REUSE, &code_hash, now)
        .await?
        .is_some()
    {
        // Someone presented this code while we were issuing: void ours too.
        for t in &tags {
            delete_tagged(srv, t, now).await;
        }
        void_consent_tokens(srv, &consent.consent_id, now).await;
        tracing::warn!(app_id = %caller.app_id, "authorization code redeemed concurrently: its tokens are revoked");
    }
    let mut r = resp::json(200, &body);
    r.extensions_mut().insert(event(
        AuthEventKind::TokenIssued,
        &caller.app_id,
        Some(&rec.user_id),
        Some(&consent.consent_id),
        now,
    ));
    Ok(r)
}

async fn refresh_grant(
    srv: &AuthServer,
    caller: &AppCaller,
    f: &Form,
    now: i64,
) -> Result<http::Response<Bytes>, OAuthError> {
    let rt = required(f, "refresh_token")?;
    let h = secret::hash(rt);
    let Some(raw) = srv.hot.get(ns::RT, &h, now).await? else {
        return Err(grant(
            "the refresh token is invalid, expired or already used",
        ));
    };
    let rec: TokenRecord =
        secret::decode(&raw).ok_or_else(|| grant("the refresh token is invalid"))?;
    if rec.app_id != caller.app_id
        || !cert_matches(rec.cnf.as_deref(), caller.client_cert.as_deref())
    {
        return Err(grant("the refresh token was issued to another client"));
    }
    // Rotation: the old refresh token is dead once taken (one winner).
    if srv.hot.take(ns::RT, &h, now).await?.is_none() {
        return Err(grant(
            "the refresh token is invalid, expired or already used",
        ));
    }
    let consent = usable_consent(srv, &rec.consent_id, now).await?;
    let (body, _) = issue(srv, caller, &consent, &rec.user_id, &rec.code, now).await?;
    let mut r = resp::json(200, &body);
    r.extensions_mut().insert(event(
        AuthEventKind::TokenIssued,
        &caller.app_id,
        Some(&rec.user_id),
        Some(&consent.consent_id),
        now,
    ));
    Ok(r)
}

/// RFC 8705: a token bound to a certificate needs that certificate; an
/// unbound token needs none.
pub(crate) fn cert_matches(bound: Option<&str>, presented: Option<&str>) -> bool {
    match bound {
        None => true,
        Some(b) => presented.is_some_and(|p| menshen_crypto::ct_eq(b.as_bytes(), p.as_bytes())),
    }
}

/// Find a token of the caller: (namespace, hash, record).
async fn find_own(
    srv: &AuthServer,
    caller: &AppCaller,
    token: &str,
    hint: Option<&str>,
    now: i64,
) -> Result<Option<(&'static str, String, TokenRecord)>, OAuthError> {
    let h = secret::hash(token);
    let order: [&'static str; 2] = if hint == Some("refresh_token") {
        [ns::RT, ns::AT]
    } else {
        [ns::AT, ns::RT]
    };
    for n in order {
        if let Some(b) = srv.hot.get(n, &h, now).await? {
            if let Some(rec) = secret::decode::<TokenRecord>(&b) {
                if rec.app_id == caller.app_id {
                    return Ok(Some((n, h, rec)));
                }
            }
            return Ok(None);
        }
    }
    Ok(None)
}

/// `POST /oauth2/revoke` (RFC 7009): always 200 for a well-formed request.
/// An access token is voided; a refresh token ends its grant: the consent
/// is revoked by the app and all its tokens voided.
pub(crate) async fn revoke(
    srv: &AuthServer,
    caller: &AppCaller,
    body: &[u8],
    now: i64,
) -> Result<http::Response<Bytes>, OAuthError> {
    let f = Form::parse(body);
    let token = required(&f, "token")?;
    let hint = one(&f, "token_type_hint")?;
    let mut r = resp::empty(200);
    if let Some((n, h, rec)) = find_own(srv, caller, token, hint, now).await? {
        srv.hot.delete(n, &h, now).await?;
        if n == ns::RT {
            revoke_consent(srv, &rec.consent_id, RevokedBy::App, now).await?;
        }
        r.extensions_mut().insert(event(
            AuthEventKind::RevokedByApp,
            &caller.app_id,
            Some(&rec.user_id),
            Some(&rec.consent_id),
            now,
        ));
    }
    Ok(r)
}

/// `POST /oauth2/introspect` (RFC 7662): active only for the caller's own,
/// live token of a usable consent.
pub(crate) async fn introspect(
    srv: &AuthServer,
    caller: &AppCaller,
    body: &[u8],
    now: i64,
) -> Result<http::Response<Bytes>, OAuthError> {
    let f = Form::parse(body);
    let token = required(&f, "token")?;
    let hint = one(&f, "token_type_hint")?;
    let inactive = || resp::json(200, &serde_json::json!({"active": false}));
    let Some((n, h, rec)) = find_own(srv, caller, token, hint, now).await? else {
        return Ok(inactive());
    };
    if rec.exp <= now {
        return Ok(inactive());
    }
    if n == ns::AT && srv.cfg.token_profile.one_live_token() {
        let live = srv
            .hot
            .get(ns::LIVE, &secret::pair_key(&rec.app_id, &rec.user_id), now)
            .await?;
        if !live.is_some_and(|l| menshen_crypto::ct_eq(&l, h.as_bytes())) {
            return Ok(inactive());
        }
    }
    match srv.store.store.get_consent(&rec.consent_id).await {
        Ok(c) if c.usable_at(now) => {}
        Ok(_) | Err(StoreError::NotFound(_)) => return Ok(inactive()),
        Err(e) => return Err(e.into()),
    }
    let mut v = serde_json::json!({
        "active": true,
        "client_id": rec.app_id,
        "consent_id": rec.consent_id,
        "scope": rec.scopes.join(" "),
        "exp": rec.exp,
        "token_type": if n == ns::AT { "Bearer" } else { "refresh_token" },
    });
    if let Some(c) = &rec.cnf {
        v["cnf"] = serde_json::json!({"x5t#S256": c});
    }
    Ok(resp::json(200, &v))
}

/// `DELETE /oauth2/consents/{id}`: the app revokes its consent (USR-6).
/// 204; 404 if it is not this app's consent.
pub(crate) async fn delete_consent(
    srv: &AuthServer,
    caller: &AppCaller,
    consent_id: &str,
    now: i64,
) -> Result<http::Response<Bytes>, OAuthError> {
    let not_found = || {
        resp::json(
            404,
            &serde_json::json!({"error": "invalid_request", "error_description": "no such consent"}),
        )
    };
    match srv.store.store.get_consent(consent_id).await {
        Ok(c) if c.app_id == caller.app_id => {}
        Ok(_) | Err(StoreError::NotFound(_)) => return Ok(not_found()),
        Err(e) => return Err(e.into()),
    }
    let c = revoke_consent(srv, consent_id, RevokedBy::App, now).await?;
    let mut r = resp::empty(204);
    r.extensions_mut().insert(event(
        AuthEventKind::RevokedByApp,
        &caller.app_id,
        c.as_ref().and_then(|c| c.user_id.as_deref()),
        Some(consent_id),
        now,
    ));
    Ok(r)
}

/// Revoke a consent (if still awaiting or authorised) and void its tokens.
pub(crate) async fn revoke_consent(
    srv: &AuthServer,
    consent_id: &str,
    by: RevokedBy,
    now: i64,
) -> Result<Option<Consent>, StoreError> {
    let mut out = None;
    for _ in 0..3 {
        let mut c = match srv.store.store.get_consent(consent_id).await {
            Ok(c) => c,
            Err(StoreError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        if !matches!(
            c.state,
            ConsentState::Authorised | ConsentState::AwaitingAuthorisation
        ) {
            out = Some(c);
            break;
        }
        c.state = ConsentState::Revoked;
        c.revoked_by = Some(by);
        c.ended_at = Some(now);
        match srv
            .store
            .store
            .update_consent(
                &c,
                &[
                    ConsentState::Authorised,
                    ConsentState::AwaitingAuthorisation,
                ],
            )
            .await
        {
            Ok(c) => {
                out = Some(c);
                break;
            }
            // Changed under us (approved, used up): read again.
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    crate::check::forget_consent(srv, consent_id, now).await;
    void_consent_tokens(srv, consent_id, now).await;
    Ok(out)
}

/// Void every token of an app's consents.
pub(crate) async fn void_app_tokens(
    srv: &AuthServer,
    app_id: &str,
    now: i64,
) -> Result<usize, StoreError> {
    let mut n = 0;
    for c in srv.store.store.list_consents(Some(app_id), None).await? {
        n += void_consent_tokens(srv, &c.consent_id, now).await;
    }
    Ok(n)
}
