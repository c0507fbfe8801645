//! The consent stage's check of one call (USR-2, USR-3, USR-4, TOK-1,
//! TOK-4, AUTH-6). Order: the token (known, unexpired, this app's, this
//! certificate's, the live one under zjrcb); its consent read from the
//! store on every call (so a revocation by anyone is seen on the very next
//! call) and still authorised and unexpired; the API among its scopes; the
//! account among its accounts; then the counters: a one-time token taken
//! (one winner), the daily limit, the use limit (reaching it makes the
//! consent `consumed`).

use menshen_model::{Consent, ConsentState};
use menshen_store::StoreError;

use crate::clock;
use crate::secret::{self, ns, TokenRecord};
use crate::token::{cert_matches, void_consent_tokens};
use crate::{AppCaller, AuthServer, CallCheck, CallGrant, ConsentError};

/// How long a consent stays in the opt-in cache
/// ([`AuthServer::with_consent_cache`]).
pub const CONSENT_CACHE_SECS: i64 = 60;

/// The consent, from the hot-state cache when it is on, else the store.
async fn load_consent(srv: &AuthServer, id: &str, now: i64) -> Result<Consent, StoreError> {
    if srv.consent_cache {
        if let Ok(Some(b)) = srv.hot.get(ns::CONSENT, id, now).await {
            if let Some(c) = secret::decode::<Consent>(&b) {
                return Ok(c);
            }
        }
    }
    let c = srv.store.store.get_consent(id).await?;
    if srv.consent_cache {
        let until = (now + CONSENT_CACHE_SECS).min(c.expires_at.max(now + 1));
        if let Err(e) = srv
            .hot
            .put(ns::CONSENT, id, secret::encode(&c), until, now)
            .await
        {
            tracing::warn!(error = %e, "consent cache: could not store");
        }
    }
    Ok(c)
}

/// Drop a consent from the cache after any change to it.
pub(crate) async fn forget_consent(srv: &AuthServer, id: &str, now: i64) {
    if srv.consent_cache {
        if let Err(e) = srv.hot.delete(ns::CONSENT, id, now).await {
            tracing::warn!(error = %e, "consent cache: could not drop an entry");
        }
    }
}

/// End an authorised consent (expired or consumed) in the store; a lost
/// race (someone else changed it first) is fine.
async fn end_consent(
    srv: &AuthServer,
    c: &Consent,
    state: ConsentState,
    uses: Option<u32>,
    now: i64,
) {
    let mut n = c.clone();
    n.state = state;
    n.ended_at = Some(now);
    if let Some(u) = uses {
        n.uses = u;
    }
    match srv
        .store
        .store
        .update_consent(&n, &[ConsentState::Authorised])
        .await
    {
        Ok(_) | Err(StoreError::Conflict(_)) => {}
        Err(e) => tracing::warn!(error = %e, consent_id = %c.consent_id, "could not end a consent"),
    }
    forget_consent(srv, &c.consent_id, now).await;
    void_consent_tokens(srv, &c.consent_id, now).await;
}

pub(crate) async fn check_call(
    srv: &AuthServer,
    bearer: Option<&str>,
    caller: &AppCaller,
    api_id: &str,
    account: Option<&str>,
    now: i64,
) -> CallCheck {
    let mut subject = None;
    let result = check(srv, bearer, caller, api_id, account, now, &mut subject).await;
    let (user_id, consent_id) = match subject {
        Some((u, c)) => (Some(u), Some(c)),
        None => (None, None),
    };
    CallCheck {
        result,
        user_id,
        consent_id,
    }
}

async fn check(
    srv: &AuthServer,
    bearer: Option<&str>,
    caller: &AppCaller,
    api_id: &str,
    account: Option<&str>,
    now: i64,
    subject: &mut Option<(String, String)>,
) -> Result<CallGrant, ConsentError> {
    let token = bearer
        .filter(|t| !t.is_empty())
        .ok_or(ConsentError::TokenMissing)?;
    if token.len() > 256 {
        return Err(ConsentError::TokenInvalid);
    }
    let h = secret::hash(token);
    let rec: TokenRecord = srv
        .hot
        .get(ns::AT, &h, now)
        .await?
        .and_then(|b| secret::decode(&b))
        .ok_or(ConsentError::TokenInvalid)?;
    if rec.exp <= now
        || rec.app_id != caller.app_id
        || !cert_matches(rec.cnf.as_deref(), caller.client_cert.as_deref())
    {
        return Err(ConsentError::TokenInvalid);
    }
    if srv.cfg.token_profile.one_live_token() {
        let live = srv
            .hot
            .get(ns::LIVE, &secret::pair_key(&rec.app_id, &rec.user_id), now)
            .await?;
        if !live.is_some_and(|l| menshen_crypto::ct_eq(&l, h.as_bytes())) {
            return Err(ConsentError::TokenInvalid);
        }
    }
    let consent = match load_consent(srv, &rec.consent_id, now).await {
        Ok(c) => c,
        Err(StoreError::NotFound(_)) => return Err(ConsentError::TokenInvalid),
        Err(e) => return Err(e.into()),
    };
    if consent.app_id != caller.app_id || consent.user_id.as_deref() != Some(rec.user_id.as_str()) {
        return Err(ConsentError::TokenInvalid);
    }
    *subject = Some((rec.user_id.clone(), consent.consent_id.clone()));
    if consent.state != ConsentState::Authorised {
        return Err(ConsentError::ConsentNotActive);
    }
    if now >= consent.expires_at {
        end_consent(srv, &consent, ConsentState::Expired, None, now).await;
        return Err(ConsentError::ConsentNotActive);
    }
    if consent.use_limit.is_some_and(|l| consent.uses >= l) {
        return Err(ConsentError::ConsentLimitReached);
    }
    if !consent.scopes.iter().any(|s| s == api_id) {
        return Err(ConsentError::ConsentScope);
    }
    if let Some(acc) = account {
        if !consent.accounts.iter().any(|a| a == acc) {
            return Err(ConsentError::AccountNotConsented);
        }
    }
    if rec.one_time && srv.hot.take(ns::AT, &h, now).await?.is_none() {
        // Another call took it first (TOK-1: usable once).
        return Err(ConsentError::TokenInvalid);
    }
    if let Some(daily) = consent.daily_limit {
        let key = format!("{}:{}", consent.consent_id, clock::shanghai_day(now));
        let until = clock::next_shanghai_midnight(now) + 60;
        if srv
            .hot
            .incr(ns::DAILY, &key, Some(u64::from(daily)), until, now)
            .await?
            .is_err()
        {
            return Err(ConsentError::ConsentLimitReached);
        }
    }
    if let Some(limit) = consent.use_limit {
        match srv
            .hot
            .incr(
                ns::USES,
                &consent.consent_id,
                Some(u64::from(limit)),
                consent.expires_at,
                now,
            )
            .await?
        {
            Ok(n) if n >= u64::from(limit) => {
                // This call is the last one the consent allows.
                end_consent(srv, &consent, ConsentState::Consumed, Some(limit), now).await;
            }
            Ok(_) => {}
            Err(_) => {
                end_consent(srv, &consent, ConsentState::Consumed, Some(limit), now).await;
                return Err(ConsentError::ConsentLimitReached);
            }
        }
    }
    Ok(CallGrant {
        user_id: rec.user_id,
        consent_id: consent.consent_id,
    })
}
