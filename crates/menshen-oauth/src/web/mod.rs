//! The browser endpoints: authorize, login, consent (USR-1, USR-4, USR-5),
//! the customer's own consent page (USR-6), metadata and the stylesheet.
//! Plain HTML forms, no JavaScript; every page carries the CSP and
//! anti-framing headers; every POST carries the session's CSRF token.

mod authorize;
mod me;
pub(crate) mod pages;
pub(crate) mod session;

use std::net::IpAddr;

use bytes::Bytes;
use http::{Method, Response};

use crate::form::Form;
use crate::{resp, AuthEvent, AuthEventKind, AuthServer, LoginError};
use session::Principal;

/// Largest form body read (the gateway bounds it too).
pub const MAX_FORM: usize = 16 * 1024;

/// Facts about the browser request, for events and the login.
pub(crate) struct Req<'a> {
    pub parts: &'a http::request::Parts,
    pub form: Form,
    pub ip: IpAddr,
    pub now: i64,
}

impl Req<'_> {
    pub fn user_agent(&self) -> Option<String> {
        let ua = self
            .parts
            .headers
            .get(http::header::USER_AGENT)?
            .to_str()
            .ok()?;
        let mut end = ua.len().min(256);
        while !ua.is_char_boundary(end) {
            end -= 1;
        }
        Some(ua[..end].to_string())
    }

    pub fn event(
        &self,
        kind: AuthEventKind,
        app_id: Option<&str>,
        user_id: Option<&str>,
        consent_id: Option<&str>,
    ) -> AuthEvent {
        AuthEvent {
            kind,
            app_id: app_id.map(str::to_string),
            user_id: user_id.map(str::to_string),
            consent_id: consent_id.map(str::to_string),
            client_ip: Some(self.ip),
            user_agent: self.user_agent(),
            time: self.now,
        }
    }
}

pub(crate) async fn handle(
    srv: &AuthServer,
    parts: &http::request::Parts,
    body: &[u8],
    ip: IpAddr,
    now: i64,
) -> Option<Response<Bytes>> {
    let path = parts.uri.path();
    let ours = matches!(
        path,
        "/.well-known/oauth-authorization-server"
            | "/oauth2/menshen.css"
            | "/oauth2/authorize"
            | "/oauth2/login"
            | "/oauth2/consent"
            | "/me/login"
            | "/me/consents"
            | "/me/logout"
    ) || me::revoke_target(path).is_some();
    if !ours {
        return None;
    }
    if body.len() > MAX_FORM {
        return Some(error_page(
            413,
            "请求过大。 / The form is too large.",
            "请返回重试。 / Go back and try again.",
        ));
    }
    let form = match parts.method {
        Method::POST => Form::parse(body),
        _ => Form::parse(parts.uri.query().unwrap_or("").as_bytes()),
    };
    let req = Req {
        parts,
        form,
        ip,
        now,
    };
    let m = &parts.method;
    let r = match path {
        "/.well-known/oauth-authorization-server" if m == Method::GET => {
            let mut r = resp::json(200, &srv.metadata_json());
            r.headers_mut().insert(
                http::header::CACHE_CONTROL,
                http::HeaderValue::from_static("max-age=300"),
            );
            r
        }
        "/oauth2/menshen.css" if m == Method::GET => {
            let mut r = Response::new(Bytes::from_static(pages::CSS.as_bytes()));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/css; charset=utf-8"),
            );
            r.headers_mut().insert(
                http::header::CACHE_CONTROL,
                http::HeaderValue::from_static("max-age=3600"),
            );
            r
        }
        "/oauth2/authorize" if m == Method::GET || m == Method::POST => {
            authorize::authorize(srv, &req).await
        }
        "/oauth2/login" if m == Method::POST => authorize::login(srv, &req).await,
        "/oauth2/consent" if m == Method::POST => authorize::consent(srv, &req).await,
        "/me/login" if m == Method::GET => me::login_page(srv, &req).await,
        "/me/login" if m == Method::POST => me::login(srv, &req).await,
        "/me/consents" if m == Method::GET => me::consents(srv, &req).await,
        "/me/logout" if m == Method::POST => me::logout(srv, &req).await,
        p if m == Method::POST && me::revoke_target(p).is_some() => {
            me::revoke(srv, &req, me::revoke_target(p).unwrap_or_default()).await
        }
        _ => {
            let mut r = error_page(
                405,
                "不支持的请求 / Method not allowed",
                "This page does not accept that kind of request.",
            );
            r.headers_mut().insert(
                http::header::ALLOW,
                http::HeaderValue::from_static("GET, POST"),
            );
            r
        }
    };
    Some(r)
}

/// An error page. It never redirects anywhere.
pub(crate) fn error_page(code: u16, message: &str, advice: &str) -> Response<Bytes> {
    resp::html(
        code,
        pages::render(&pages::ErrorPage {
            title: "银行授权 / Bank authorization",
            message,
            advice,
        }),
    )
}

pub(crate) fn server_error(e: impl std::fmt::Display) -> Response<Bytes> {
    tracing::warn!(error = %e, "authorization pages: internal failure");
    error_page(
        503,
        "服务暂不可用 / The service is temporarily unavailable.",
        "请稍后重试。 / Please try again later.",
    )
}

/// How a login attempt ended, as the page says it and the audit record
/// names it.
pub(crate) struct LoginFailure {
    pub message: String,
    pub kind: AuthEventKind,
    pub user_id: Option<String>,
    pub status: u16,
}

fn failure_of(e: LoginError) -> LoginFailure {
    match e {
        LoginError::Invalid { user_id } => LoginFailure {
            message: "用户名、密码或动态口令错误。 / Wrong username, password or one-time password.".into(),
            kind: AuthEventKind::LoginFailed,
            user_id,
            status: 401,
        },
        LoginError::Locked { user_id, until, locked_now } => LoginFailure {
            message: format!(
                "多次失败，账户已锁定至 {} (UTC+8)。 / Too many failed attempts: locked until {} (UTC+8).",
                crate::clock::shanghai_text(until),
                crate::clock::shanghai_text(until)
            ),
            kind: if locked_now { AuthEventKind::LoginLocked } else { AuthEventKind::LoginFailed },
            user_id,
            status: 423,
        },
        LoginError::NoSecondFactor => LoginFailure {
            message: "此授权需要动态口令，但您尚未开通。请联系银行。 / This request needs a one-time password, and you have none enrolled. Please contact the bank.".into(),
            kind: AuthEventKind::LoginFailed,
            user_id: None,
            status: 403,
        },
        LoginError::Unavailable(e) => {
            tracing::warn!(error = %e, "customer directory unavailable");
            LoginFailure {
                message: "服务暂不可用，请稍后重试。 / The service is temporarily unavailable; please try again later.".into(),
                kind: AuthEventKind::LoginFailed,
                user_id: None,
                status: 503,
            }
        }
    }
}

/// Check the login form: password, then the one-time password when the
/// request needs two factors (A3, USR-1) or the customer has one enrolled
/// (then it is always asked: a customer's failure count clears only with
/// both factors). Each OTP works once (USR-7).
pub(crate) async fn do_login(
    srv: &AuthServer,
    req: &Req<'_>,
    needs_two_factor: bool,
    only_username: Option<&str>,
) -> Result<Principal, LoginFailure> {
    let username = req.form.one("username").ok().flatten().unwrap_or("");
    let password = req.form.one("password").ok().flatten().unwrap_or("");
    let otp = req.form.one("otp").ok().flatten().map(str::trim);
    if username.is_empty() || password.is_empty() {
        return Err(failure_of(LoginError::Invalid { user_id: None }));
    }
    if let Some(want) = only_username {
        if username != want {
            return Err(LoginFailure {
                message: format!(
                    "此步骤须由代理人 {want} 登录。 / This step is for the agent {want} to log in."
                ),
                kind: AuthEventKind::LoginFailed,
                user_id: None,
                status: 401,
            });
        }
    }
    let c = srv
        .customers
        .password(username, password, req.now)
        .await
        .map_err(failure_of)?;
    let need_otp = needs_two_factor || c.has_totp;
    let mut two_factor = false;
    if need_otp {
        if !c.has_totp {
            return Err(LoginFailure {
                user_id: Some(c.user_id),
                ..failure_of(LoginError::NoSecondFactor)
            });
        }
        let Some(otp) = otp.filter(|o| !o.is_empty()) else {
            return Err(LoginFailure {
                message: "请输入动态口令。 / Enter your one-time password.".into(),
                kind: AuthEventKind::LoginFailed,
                user_id: Some(c.user_id),
                status: 401,
            });
        };
        // Single use, whichever directory checks the code.
        let key = crate::secret::pair_key(&c.user_id, otp);
        match srv
            .hot
            .incr(
                crate::secret::ns::OTP,
                &key,
                Some(1),
                req.now + 180,
                req.now,
            )
            .await
        {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => {
                return Err(failure_of(LoginError::Invalid {
                    user_id: Some(c.user_id),
                }))
            }
            Err(e) => return Err(failure_of(LoginError::Unavailable(e.to_string()))),
        }
        srv.customers
            .second_factor(&c.user_id, otp, req.now)
            .await
            .map_err(|e| match e {
                LoginError::Invalid { .. } => failure_of(LoginError::Invalid {
                    user_id: Some(c.user_id.clone()),
                }),
                other => failure_of(other),
            })?;
        two_factor = true;
    }
    Ok(Principal {
        user_id: c.user_id,
        display_name: c.display_name,
        accounts: c.accounts,
        two_factor,
    })
}
