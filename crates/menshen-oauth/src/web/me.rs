//! The customer's own pages (USR-6): `/me/login`, `/me/consents` (every
//! consent they gave or approved as an agent, with app, APIs, accounts,
//! state and validity) and revoking any of them (`POST
//! /me/consents/{id}/revoke`, CSRF-checked): revoked by `customer`, the
//! tokens void at once.

use bytes::Bytes;
use http::Response;
use menshen_model::{ConsentState, RevokedBy};

use super::pages::{self, ConsentRow, ConsentsPage, Login};
use super::session::{self, Flow, Session};
use super::{do_login, Req};
use crate::{resp, AuthEventKind, AuthServer};

/// The consent id of a revoke path.
pub(crate) fn revoke_target(path: &str) -> Option<&str> {
    let id = path
        .strip_prefix("/me/consents/")?
        .strip_suffix("/revoke")?;
    (!id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then_some(id)
}

fn login_body(csrf: &str, error: &str, username: &str) -> String {
    pages::render(&Login {
        title: "我的授权 / My consents",
        heading: "登录查看授权 / Log in to see your consents",
        app_name: "",
        intro: "",
        error,
        action: "/me/login",
        csrf,
        username,
        need_otp: false,
        otp_hint:
            "如您已开通动态口令，请一并输入。 / If you have an authenticator, enter its code too.",
    })
}

/// `GET /me/login`: a new session and the form.
pub(crate) async fn login_page(srv: &AuthServer, req: &Req<'_>) -> Response<Bytes> {
    let s = Session::new(Flow::Me { who: None }, req.now);
    let csrf = s.csrf.clone();
    let (sid, _) = match session::create(srv, s, None, req.now).await {
        Ok(x) => x,
        Err(e) => return super::server_error(e),
    };
    let mut r = resp::html(200, login_body(&csrf, "", ""));
    resp::set_cookie(&mut r, &sid, session::cookie_age(srv));
    r
}

/// `POST /me/login`.
pub(crate) async fn login(srv: &AuthServer, req: &Req<'_>) -> Response<Bytes> {
    let Some(mut l) = session::load(srv, &req.parts.headers, req.now).await else {
        return resp::redirect(303, "/me/login");
    };
    if !l.s.csrf_ok(req.form.one("csrf").ok().flatten()) || !matches!(l.s.flow, Flow::Me { .. }) {
        return resp::redirect(303, "/me/login");
    }
    let username = req
        .form
        .one("username")
        .ok()
        .flatten()
        .unwrap_or("")
        .to_string();
    match do_login(srv, req, false, None).await {
        Ok(p) => {
            let user_id = p.user_id.clone();
            l.s.flow = Flow::Me {
                who: Some(Box::new(p)),
            };
            l.s.csrf = crate::secret::new_secret();
            let (sid, _) = match session::create(srv, l.s, Some(&l.key), req.now).await {
                Ok(x) => x,
                Err(e) => return super::server_error(e),
            };
            let mut r = resp::redirect(303, "/me/consents");
            resp::set_cookie(&mut r, &sid, session::cookie_age(srv));
            r.extensions_mut().insert(req.event(
                AuthEventKind::LoginSucceeded,
                None,
                Some(&user_id),
                None,
            ));
            r
        }
        Err(f) => {
            let mut r = resp::html(f.status, login_body(&l.s.csrf, &f.message, &username));
            r.extensions_mut()
                .insert(req.event(f.kind, None, f.user_id.as_deref(), None));
            r
        }
    }
}

/// `GET /me/consents`.
pub(crate) async fn consents(srv: &AuthServer, req: &Req<'_>) -> Response<Bytes> {
    let Some(l) = session::load(srv, &req.parts.headers, req.now).await else {
        return resp::redirect(303, "/me/login");
    };
    let Flow::Me { who: Some(p) } = &l.s.flow else {
        return resp::redirect(303, "/me/login");
    };
    let list = match srv.store.store.list_consents(None, Some(&p.user_id)).await {
        Ok(v) => v,
        Err(e) => return super::server_error(e),
    };
    let mut rows = Vec::new();
    for c in list.iter().rev() {
        // A consent still awaiting with no customer yet is nobody's.
        if c.user_id.is_none() {
            continue;
        }
        let app = srv
            .store
            .store
            .get_app(&c.app_id)
            .await
            .map(|a| a.name)
            .unwrap_or_else(|_| c.app_id.clone());
        let mut apis = Vec::new();
        for s in &c.scopes {
            match srv.store.store.get_api(s).await {
                Ok(a) => apis.push(format!("{} ({})", a.name, pages::level_words(a.level))),
                Err(_) => apis.push(s.clone()),
            }
        }
        let state = match (c.state, c.revoked_by) {
            (ConsentState::Authorised, _) if c.expires_at <= req.now => {
                "expired 已过期".to_string()
            }
            (ConsentState::Authorised, _) => "authorised 有效".into(),
            (ConsentState::AwaitingAuthorisation, _) => "awaiting_authorisation 待确认".into(),
            (ConsentState::Rejected, _) => "rejected 已拒绝".into(),
            (ConsentState::Revoked, Some(by)) => format!("revoked 已撤销 ({by})"),
            (ConsentState::Revoked, None) => "revoked 已撤销".into(),
            (ConsentState::Expired, _) => "expired 已过期".into(),
            (ConsentState::Consumed, _) => "consumed 已用完".into(),
        };
        let role = if c.agent_user_id.as_deref() == Some(p.user_id.as_str()) {
            "代理人 / agent".to_string()
        } else if c.agent_user_id.is_some() {
            "本人（代理模式）/ customer, agent mode".to_string()
        } else {
            String::new()
        };
        let mut uses = pages::use_words(c.use_limit);
        let daily = pages::daily_words(c.daily_limit);
        if !daily.is_empty() {
            uses = format!("{uses}; {daily}");
        }
        rows.push(ConsentRow {
            consent_id: c.consent_id.clone(),
            app,
            state,
            apis: apis.join("; "),
            accounts: c
                .accounts
                .iter()
                .map(|a| pages::mask_account(a))
                .collect::<Vec<_>>()
                .join(", "),
            validity: format!(
                "{} — {} (UTC+8)",
                crate::clock::shanghai_text(c.created_at),
                crate::clock::shanghai_text(c.expires_at)
            ),
            uses,
            role,
            revocable: matches!(
                c.state,
                ConsentState::Authorised | ConsentState::AwaitingAuthorisation
            ),
        });
    }
    resp::html(
        200,
        pages::render(&ConsentsPage {
            title: "我的授权 / My consents",
            customer: &p.display_name,
            csrf: &l.s.csrf,
            rows,
        }),
    )
}

/// `POST /me/consents/{id}/revoke`.
pub(crate) async fn revoke(srv: &AuthServer, req: &Req<'_>, consent_id: &str) -> Response<Bytes> {
    let Some(l) = session::load(srv, &req.parts.headers, req.now).await else {
        return resp::redirect(303, "/me/login");
    };
    let Flow::Me { who: Some(p) } = &l.s.flow else {
        return resp::redirect(303, "/me/login");
    };
    if !l.s.csrf_ok(req.form.one("csrf").ok().flatten()) {
        return super::error_page(
            403,
            "会话已过期或无效。 / Your session has expired or is not valid.",
            "请重新登录。 / Please log in again.",
        );
    }
    let c = match srv.store.store.get_consent(consent_id).await {
        Ok(c) => c,
        Err(menshen_store::StoreError::NotFound(_)) => return resp::redirect(303, "/me/consents"),
        Err(e) => return super::server_error(e),
    };
    let mine = c.user_id.as_deref() == Some(p.user_id.as_str())
        || c.agent_user_id.as_deref() == Some(p.user_id.as_str());
    if !mine {
        // Not theirs: as if it did not exist.
        return resp::redirect(303, "/me/consents");
    }
    if let Err(e) =
        crate::token::revoke_consent(srv, consent_id, RevokedBy::Customer, req.now).await
    {
        return super::server_error(e);
    }
    let mut r = resp::redirect(303, "/me/consents");
    r.extensions_mut().insert(req.event(
        AuthEventKind::RevokedByCustomer,
        Some(&c.app_id),
        Some(&p.user_id),
        Some(consent_id),
    ));
    r
}

/// `POST /me/logout`.
pub(crate) async fn logout(srv: &AuthServer, req: &Req<'_>) -> Response<Bytes> {
    if let Some(l) = session::load(srv, &req.parts.headers, req.now).await {
        if l.s.csrf_ok(req.form.one("csrf").ok().flatten()) {
            session::destroy(srv, &l.key, req.now).await;
        }
    }
    let mut r = resp::redirect(303, "/me/login");
    resp::clear_cookie(&mut r);
    r
}
