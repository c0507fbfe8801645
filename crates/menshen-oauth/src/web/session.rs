//! Browser sessions (USR-7): a random id in the `menshen_sess` cookie, the
//! session in hot state under the id's SM3, ended after `session_idle_secs`
//! without a request and 30 minutes after it began; a CSRF token per
//! session, checked in constant time on every POST.

use serde::{Deserialize, Serialize};

use crate::resp;
use crate::secret::{self, ns, ParRecord};
use crate::AuthServer;

/// Longest life of any session, whatever its activity.
pub const MAX_SESSION_SECS: i64 = 1800;

/// Who logged in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Principal {
    pub user_id: String,
    pub display_name: String,
    pub accounts: Vec<String>,
    pub two_factor: bool,
}

/// Where an authorization is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    Login,
    Consent,
    AgentLogin,
    AgentConsent,
}

/// What the session is for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Flow {
    /// An authorization request being answered.
    Authorize {
        par: Box<ParRecord>,
        stage: Stage,
        principal: Option<Principal>,
        /// Agent mode: the accounts the customer chose.
        selected: Vec<String>,
        agent: Option<Principal>,
    },
    /// The customer's own consent page.
    Me { who: Option<Box<Principal>> },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub csrf: String,
    pub created: i64,
    pub flow: Flow,
}

/// A session loaded from the request's cookie.
pub struct Loaded {
    pub key: String,
    pub s: Session,
}

impl Session {
    pub fn new(flow: Flow, now: i64) -> Session {
        Session {
            csrf: secret::new_secret(),
            created: now,
            flow,
        }
    }

    /// Whether `given` is this session's CSRF token.
    pub fn csrf_ok(&self, given: Option<&str>) -> bool {
        given.is_some_and(|g| menshen_crypto::ct_eq(g.as_bytes(), self.csrf.as_bytes()))
    }
}

fn expiry(srv: &AuthServer, s: &Session, now: i64) -> i64 {
    (now + srv.cfg.session_idle_secs.max(1)).min(s.created + MAX_SESSION_SECS)
}

/// Load the session of the request and extend its idle deadline.
pub async fn load(srv: &AuthServer, headers: &http::HeaderMap, now: i64) -> Option<Loaded> {
    let sid = resp::session_cookie(headers)?;
    let key = secret::hash(&sid);
    let raw = srv.hot.get(ns::SESS, &key, now).await.ok()??;
    let s: Session = secret::decode(&raw)?;
    if now >= s.created + MAX_SESSION_SECS {
        let _ = srv.hot.delete(ns::SESS, &key, now).await;
        return None;
    }
    let l = Loaded { key, s };
    save(srv, &l, now).await.ok()?;
    Some(l)
}

/// Write the session back.
pub async fn save(
    srv: &AuthServer,
    l: &Loaded,
    now: i64,
) -> Result<(), menshen_store::hot::HotError> {
    srv.hot
        .put(
            ns::SESS,
            &l.key,
            secret::encode(&l.s),
            expiry(srv, &l.s, now),
            now,
        )
        .await
}

/// Store `s` under a new id (a new session, or after a login so an id
/// known before it is worth nothing after); returns the id for the cookie.
pub async fn create(
    srv: &AuthServer,
    s: Session,
    old_key: Option<&str>,
    now: i64,
) -> Result<(String, Loaded), menshen_store::hot::HotError> {
    if let Some(k) = old_key {
        srv.hot.delete(ns::SESS, k, now).await?;
    }
    let sid = secret::new_secret();
    let l = Loaded {
        key: secret::hash(&sid),
        s,
    };
    save(srv, &l, now).await?;
    Ok((sid, l))
}

/// End a session.
pub async fn destroy(srv: &AuthServer, key: &str, now: i64) {
    let _ = srv.hot.delete(ns::SESS, key, now).await;
}

/// Seconds the cookie should live.
pub fn cookie_age(srv: &AuthServer) -> i64 {
    MAX_SESSION_SECS.min(srv.cfg.session_idle_secs.max(1) * 6)
}
