//! `GET|POST /oauth2/authorize`, `POST /oauth2/login`, `POST
//! /oauth2/consent`: from a pushed request to a code (RFC 6749 section
//! 4.1, RFC 9126, RFC 9207).
//!
//! Agent mode (USR-5): the request names `agent_username`. In the same
//! browser session the customer logs in and approves first, choosing the
//! accounts (the consent stays `awaiting_authorisation`); then the page
//! asks the agent to log in with their own credentials (a different
//! customer, exactly the named one) and shows them what the customer
//! approved; only the agent's approval makes the consent `authorised` and
//! gives the app its code. Either one declining rejects it.

use bytes::Bytes;
use http::Response;
use menshen_model::{AppStatus, ConsentState};
use menshen_store::StoreError;

use super::pages::{self, AccountView, ConsentPage, Login};
use super::session::{self, Flow, Loaded, Session, Stage};
use super::{do_login, error_page, server_error, Req};
use crate::form;
use crate::secret::{self, ns, CodeRecord, ParRecord};
use crate::{resp, AuthEventKind, AuthServer};

fn invalid_link() -> Response<Bytes> {
    error_page(
        400,
        "授权链接无效、已过期或已使用。 / This authorization link is invalid, expired or already used.",
        "请返回应用重新发起。 / Return to the app and start again.",
    )
}

fn bad_session() -> Response<Bytes> {
    error_page(
        403,
        "会话已过期或无效。 / Your session has expired or is not valid.",
        "请返回应用重新发起。 / Return to the app and start again.",
    )
}

/// `redirect_uri` with the parameters added (RFC 9207's `iss` included).
fn back_to_app(srv: &AuthServer, par: &ParRecord, params: &[(&str, &str)]) -> String {
    let mut all: Vec<(&str, &str)> = params.to_vec();
    if !par.state.is_empty() {
        all.push(("state", &par.state));
    }
    all.push(("iss", &srv.cfg.issuer));
    let sep = if par.redirect_uri.contains('?') {
        '&'
    } else {
        '?'
    };
    format!("{}{sep}{}", par.redirect_uri, form::encode(&all))
}

pub(crate) async fn authorize(srv: &AuthServer, req: &Req<'_>) -> Response<Bytes> {
    let f = &req.form;
    let request_uri = f.one("request_uri").ok().flatten();
    let Some(request_uri) = request_uri else {
        // No request: continue a session's flow, if any.
        return match session::load(srv, &req.parts.headers, req.now).await {
            Some(l) if matches!(l.s.flow, Flow::Authorize { .. }) => {
                render_stage(srv, &l, "", "").await
            }
            _ => invalid_link(),
        };
    };
    let Some(client_id) = f.one("client_id").ok().flatten() else {
        return invalid_link();
    };
    if !request_uri.starts_with(secret::REQUEST_URI_PREFIX) || request_uri.len() > 128 {
        return invalid_link();
    }
    let key = secret::hash(request_uri);
    // Bound to the app that pushed it: look before taking, so another
    // app's client_id cannot burn it.
    let par: ParRecord = match srv.hot.get(ns::PAR, &key, req.now).await {
        Ok(Some(b)) => match secret::decode(&b) {
            Some(p) => p,
            None => return invalid_link(),
        },
        Ok(None) => return invalid_link(),
        Err(e) => return server_error(e),
    };
    if par.app_id != client_id {
        return invalid_link();
    }
    match srv.hot.take(ns::PAR, &key, req.now).await {
        Ok(Some(_)) => {}
        Ok(None) => return invalid_link(),
        Err(e) => return server_error(e),
    }
    match srv.store.store.get_app(&par.app_id).await {
        Ok(app) if app.status == AppStatus::Active => {}
        Ok(_) | Err(StoreError::NotFound(_)) => return invalid_link(),
        Err(e) => return server_error(e),
    }
    let s = Session::new(
        Flow::Authorize {
            par: Box::new(par),
            stage: Stage::Login,
            principal: None,
            selected: Vec::new(),
            agent: None,
        },
        req.now,
    );
    let (sid, l) = match session::create(srv, s, None, req.now).await {
        Ok(x) => x,
        Err(e) => return server_error(e),
    };
    let mut r = render_stage(srv, &l, "", "").await;
    resp::set_cookie(&mut r, &sid, session::cookie_age(srv));
    r
}

async fn render_stage(
    srv: &AuthServer,
    l: &Loaded,
    error: &str,
    username: &str,
) -> Response<Bytes> {
    let Flow::Authorize {
        par,
        stage,
        principal,
        selected,
        ..
    } = &l.s.flow
    else {
        return bad_session();
    };
    let status = if error.is_empty() { 200 } else { 401 };
    match stage {
        Stage::Login | Stage::AgentLogin => {
            let agent = *stage == Stage::AgentLogin;
            let intro = if agent {
                format!(
                    "{} 已同意。现在须由代理人 {} 登录并同意。 / {} approved. Now the agent {} must log in and approve.",
                    principal.as_ref().map(|p| p.display_name.as_str()).unwrap_or(""),
                    par.agent_username.as_deref().unwrap_or(""),
                    principal.as_ref().map(|p| p.display_name.as_str()).unwrap_or(""),
                    par.agent_username.as_deref().unwrap_or(""),
                )
            } else if par.agent_username.is_some() {
                "此授权还需代理人另行同意。 / This consent also needs the agent's separate approval.".to_string()
            } else {
                String::new()
            };
            let otp_hint = if par.needs_two_factor {
                "此授权涉及资金交易，需要密码和动态口令两种因素。 / This request moves funds: it needs your password and a one-time password."
            } else {
                "如您已开通动态口令，请一并输入。 / If you have an authenticator, enter its code too."
            };
            let body = pages::render(&Login {
                title: "银行登录 / Bank login",
                heading: if agent {
                    "代理人登录 / Agent login"
                } else {
                    "银行登录 / Log in to your bank"
                },
                app_name: &par.app_name,
                intro: &intro,
                error,
                action: "/oauth2/login",
                csrf: &l.s.csrf,
                username: if agent {
                    par.agent_username.as_deref().unwrap_or("")
                } else {
                    username
                },
                need_otp: par.needs_two_factor,
                otp_hint,
            });
            resp::html(status, body)
        }
        Stage::Consent | Stage::AgentConsent => {
            let agent = *stage == Stage::AgentConsent;
            let Some(p) = principal else {
                return bad_session();
            };
            let consent = match srv.store.store.get_consent(&par.consent_id).await {
                Ok(c) => c,
                Err(e) => return server_error(e),
            };
            let mut apis = Vec::new();
            for s in &par.scopes {
                let api = srv.store.store.get_api(s).await.ok();
                apis.push(pages::api_view(s, api.as_ref()));
            }
            let accounts = if agent { selected } else { &p.accounts };
            let accounts = accounts
                .iter()
                .map(|a| AccountView {
                    number: a.clone(),
                    shown: pages::mask_account(a),
                })
                .collect();
            let note = if agent {
                format!(
                    "您作为代理人，确认 {} 的授权。 / As the agent, you confirm the consent of {}.",
                    p.display_name, p.display_name
                )
            } else {
                String::new()
            };
            let body = pages::render(&ConsentPage {
                title: "授权确认 / Consent",
                heading: "授权确认 / Your consent",
                customer: &p.display_name,
                app_name: &par.app_name,
                note: &note,
                error,
                csrf: &l.s.csrf,
                apis,
                selectable: !agent,
                accounts,
                valid_until: crate::clock::shanghai_text(consent.expires_at),
                use_limit: pages::use_words(consent.use_limit),
                daily_limit: pages::daily_words(consent.daily_limit),
            });
            resp::html_with_csp(
                if error.is_empty() { 200 } else { 400 },
                body,
                &resp::csp_allowing_redirect_to(&par.redirect_uri),
            )
        }
    }
}

/// `POST /oauth2/login`.
pub(crate) async fn login(srv: &AuthServer, req: &Req<'_>) -> Response<Bytes> {
    let Some(mut l) = session::load(srv, &req.parts.headers, req.now).await else {
        return bad_session();
    };
    if !l.s.csrf_ok(req.form.one("csrf").ok().flatten()) {
        return bad_session();
    }
    let Flow::Authorize {
        par,
        stage,
        principal,
        agent,
        ..
    } = &mut l.s.flow
    else {
        return bad_session();
    };
    let agent_step = match stage {
        Stage::Login => false,
        Stage::AgentLogin => true,
        _ => return render_stage(srv, &l, "", "").await,
    };
    let only = if agent_step {
        par.agent_username.clone()
    } else {
        None
    };
    let (app_id, consent_id) = (par.app_id.clone(), par.consent_id.clone());
    let username = req
        .form
        .one("username")
        .ok()
        .flatten()
        .unwrap_or("")
        .to_string();
    let result = do_login(srv, req, par.needs_two_factor, only.as_deref()).await;
    let who = match result {
        Ok(p) => p,
        Err(f) => {
            let mut r = render_stage(srv, &l, &f.message, &username).await;
            *r.status_mut() =
                http::StatusCode::from_u16(f.status).unwrap_or(http::StatusCode::UNAUTHORIZED);
            r.extensions_mut().insert(req.event(
                f.kind,
                Some(&app_id),
                f.user_id.as_deref(),
                Some(&consent_id),
            ));
            return r;
        }
    };
    if agent_step {
        if principal.as_ref().is_some_and(|p| p.user_id == who.user_id) {
            let msg = "代理人须是另一位客户。 / The agent must be another customer.";
            return render_stage(srv, &l, msg, "").await;
        }
        *agent = Some(who.clone());
        *stage = Stage::AgentConsent;
    } else {
        if par.agent_username.as_deref() == Some(username.as_str()) {
            let msg = "客户本人与代理人须分别登录。 / The customer and the agent log in separately; the customer first.";
            return render_stage(srv, &l, msg, "").await;
        }
        *principal = Some(who.clone());
        *stage = Stage::Consent;
    }
    // A new session id and CSRF token after login.
    l.s.csrf = secret::new_secret();
    let (sid, _) = match session::create(srv, l.s.clone(), Some(&l.key), req.now).await {
        Ok(x) => x,
        Err(e) => return server_error(e),
    };
    let mut r = resp::redirect(303, "/oauth2/authorize");
    resp::set_cookie(&mut r, &sid, session::cookie_age(srv));
    r.extensions_mut().insert(req.event(
        AuthEventKind::LoginSucceeded,
        Some(&app_id),
        Some(&who.user_id),
        Some(&consent_id),
    ));
    r
}

/// `POST /oauth2/consent`: approve or deny.
pub(crate) async fn consent(srv: &AuthServer, req: &Req<'_>) -> Response<Bytes> {
    let Some(mut l) = session::load(srv, &req.parts.headers, req.now).await else {
        return bad_session();
    };
    if !l.s.csrf_ok(req.form.one("csrf").ok().flatten()) {
        return bad_session();
    }
    let Flow::Authorize {
        par,
        stage,
        principal,
        selected,
        agent,
    } = &mut l.s.flow
    else {
        return bad_session();
    };
    let agent_step = match stage {
        Stage::Consent => false,
        Stage::AgentConsent => true,
        _ => return render_stage(srv, &l, "", "").await,
    };
    let Some(p) = principal.clone() else {
        return bad_session();
    };
    let par = (**par).clone();
    let approve = req.form.has("approve");
    let deny = req.form.has("deny");
    if approve == deny {
        return render_stage(srv, &l, "请选择同意或拒绝。 / Choose approve or deny.", "").await;
    }
    let mut c = match srv.store.store.get_consent(&par.consent_id).await {
        Ok(c) => c,
        Err(e) => return server_error(e),
    };
    crate::check::forget_consent(srv, &c.consent_id, req.now).await;
    if c.state != ConsentState::AwaitingAuthorisation || c.app_id != par.app_id {
        session::destroy(srv, &l.key, req.now).await;
        return invalid_link();
    }
    // AUTH-4: the app is checked again at the decision, not only when the
    // flow began: one suspended, blacklisted or exited meanwhile gets no
    // consent, no code and no redirect.
    match srv.store.store.get_app(&par.app_id).await {
        Ok(app) if app.status == AppStatus::Active => {}
        Ok(_) | Err(StoreError::NotFound(_)) => {
            session::destroy(srv, &l.key, req.now).await;
            return invalid_link();
        }
        Err(e) => return server_error(e),
    }
    let acting = if agent_step {
        agent.clone()
    } else {
        Some(p.clone())
    };
    let Some(acting) = acting else {
        return bad_session();
    };
    if deny {
        c.state = ConsentState::Rejected;
        c.ended_at = Some(req.now);
        if c.user_id.is_none() {
            c.user_id = Some(p.user_id.clone());
        }
        if let Err(e) = srv
            .store
            .store
            .update_consent(&c, &[ConsentState::AwaitingAuthorisation])
            .await
        {
            return update_failed(e);
        }
        session::destroy(srv, &l.key, req.now).await;
        let mut r = resp::redirect(
            302,
            &back_to_app(
                srv,
                &par,
                &[
                    ("error", "access_denied"),
                    ("error_description", "the customer declined"),
                ],
            ),
        );
        resp::clear_cookie(&mut r);
        r.extensions_mut().insert(req.event(
            AuthEventKind::ConsentRejected,
            Some(&par.app_id),
            Some(&acting.user_id),
            Some(&par.consent_id),
        ));
        return r;
    }

    if !agent_step {
        // The accounts: among those the customer owns (USR-4).
        let mut chosen: Vec<String> = Vec::new();
        for a in req.form.all("account") {
            if !p.accounts.iter().any(|o| o == a) {
                return render_stage(
                    srv,
                    &l,
                    "所选账户无效。 / An account chosen is not yours.",
                    "",
                )
                .await;
            }
            if !chosen.iter().any(|x| x == a) {
                chosen.push(a.to_string());
            }
        }
        if chosen.is_empty() && !p.accounts.is_empty() {
            return render_stage(
                srv,
                &l,
                "请至少选择一个账户。 / Choose at least one account.",
                "",
            )
            .await;
        }
        c.user_id = Some(p.user_id.clone());
        c.accounts = chosen.clone();
        c.two_factor = p.two_factor;
        if par.needs_two_factor && !p.two_factor {
            return bad_session();
        }
        if par.agent_username.is_some() {
            // USR-5: still awaiting; the agent approves next.
            if let Err(e) = srv
                .store
                .store
                .update_consent(&c, &[ConsentState::AwaitingAuthorisation])
                .await
            {
                return update_failed(e);
            }
            *selected = chosen;
            *stage = Stage::AgentLogin;
            if let Err(e) = session::save(srv, &l, req.now).await {
                return server_error(e);
            }
            let mut r = resp::redirect(303, "/oauth2/authorize");
            r.extensions_mut().insert(req.event(
                AuthEventKind::ConsentApprovedAwaitingAgent,
                Some(&par.app_id),
                Some(&p.user_id),
                Some(&par.consent_id),
            ));
            return r;
        }
    } else {
        if par.needs_two_factor && !acting.two_factor {
            return bad_session();
        }
        c.agent_user_id = Some(acting.user_id.clone());
        c.agent_approved = true;
        c.two_factor = c.two_factor && acting.two_factor;
    }
    c.state = ConsentState::Authorised;
    c.authorised_at = Some(req.now);
    if let Err(e) = srv
        .store
        .store
        .update_consent(&c, &[ConsentState::AwaitingAuthorisation])
        .await
    {
        return update_failed(e);
    }
    let code = secret::new_secret();
    let rec = CodeRecord {
        app_id: par.app_id.clone(),
        redirect_uri: par.redirect_uri.clone(),
        code_challenge: par.code_challenge.clone(),
        consent_id: par.consent_id.clone(),
        user_id: p.user_id.clone(),
        scopes: par.scopes.clone(),
    };
    let ttl = srv.cfg.code_ttl_secs.clamp(1, 60);
    if let Err(e) = srv
        .hot
        .put(
            ns::CODE,
            &secret::hash(&code),
            secret::encode(&rec),
            req.now + ttl,
            req.now,
        )
        .await
    {
        return server_error(e);
    }
    session::destroy(srv, &l.key, req.now).await;
    let mut r = resp::redirect(302, &back_to_app(srv, &par, &[("code", &code)]));
    resp::clear_cookie(&mut r);
    r.extensions_mut().insert(req.event(
        AuthEventKind::ConsentApproved,
        Some(&par.app_id),
        Some(&acting.user_id),
        Some(&par.consent_id),
    ));
    r
}

fn update_failed(e: StoreError) -> Response<Bytes> {
    match e {
        StoreError::Conflict(_) | StoreError::NotFound(_) => invalid_link(),
        e => server_error(e),
    }
}
