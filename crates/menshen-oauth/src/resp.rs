//! Building responses: JSON for the signed endpoints, HTML with the
//! browser security headers, redirects, the session cookie.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use crate::error::OAuthError;

/// The session cookie's name.
pub const COOKIE: &str = "menshen_sess";

/// Content-Security-Policy of every page: nothing but our own stylesheet;
/// forms post only to us; never framed.
pub const CSP: &str = "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A JSON answer with `Cache-Control: no-store` (RFC 6749 section 5.1).
pub fn json(code: u16, v: &serde_json::Value) -> Response<Bytes> {
    let mut r = Response::new(Bytes::from(serde_json::to_vec(v).unwrap_or_default()));
    *r.status_mut() = status(code);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

/// An RFC 6749 error answer.
pub fn oauth_error(e: &OAuthError) -> Response<Bytes> {
    if let OAuthError::ServerError(detail) = e {
        tracing::warn!(error = %detail, "authorization server: internal failure");
    }
    json(
        e.status(),
        &serde_json::json!({"error": e.code(), "error_description": e.description()}),
    )
}

/// An empty answer.
pub fn empty(code: u16) -> Response<Bytes> {
    let mut r = Response::new(Bytes::new());
    *r.status_mut() = status(code);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn page_headers(r: &mut Response<Bytes>) {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

/// The CSP of a page whose form may end in a redirect to `redirect_uri`
/// (the consent page: approve and deny answer 302 to the app, and browsers
/// apply `form-action` to the redirect of a form's submission too). Only a
/// plain `scheme://host[:port]` origin is added; anything else keeps the
/// default policy.
pub fn csp_allowing_redirect_to(redirect_uri: &str) -> String {
    let origin = redirect_uri.split_once("://").and_then(|(scheme, rest)| {
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let host = &rest[..end];
        let ok_scheme = scheme == "https" || scheme == "http";
        let ok_host = !host.is_empty()
            && !host.contains('@')
            && host.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
            });
        (ok_scheme && ok_host).then(|| format!("{scheme}://{host}"))
    });
    match origin {
        Some(o) => CSP.replace("form-action 'self'", &format!("form-action 'self' {o}")),
        None => CSP.to_string(),
    }
}

/// An HTML page with the security headers and a CSP of its own.
pub fn html_with_csp(code: u16, body: String, csp: &str) -> Response<Bytes> {
    let mut r = html(code, body);
    if let Ok(v) = HeaderValue::from_str(csp) {
        r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    r
}

/// An HTML page with the security headers.
pub fn html(code: u16, body: String) -> Response<Bytes> {
    let mut r = Response::new(Bytes::from(body));
    *r.status_mut() = status(code);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    page_headers(&mut r);
    r
}

/// A redirect (302 to the app, 303 after a form post) with the security
/// headers. `None` if `location` is not a valid header value (it always is:
/// callers build it from a registered URI and encoded parameters).
pub fn redirect(code: u16, location: &str) -> Response<Bytes> {
    let mut r = Response::new(Bytes::new());
    *r.status_mut() = status(code);
    match HeaderValue::from_str(location) {
        Ok(v) => {
            r.headers_mut().insert(header::LOCATION, v);
        }
        Err(_) => *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR,
    }
    page_headers(&mut r);
    r
}

/// Set the session cookie (`Secure; HttpOnly; SameSite=Strict; Path=/`).
pub fn set_cookie(r: &mut Response<Bytes>, sid: &str, max_age: i64) {
    let v = format!("{COOKIE}={sid}; Path=/; Max-Age={max_age}; Secure; HttpOnly; SameSite=Strict");
    if let Ok(v) = HeaderValue::from_str(&v) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// Clear the session cookie.
pub fn clear_cookie(r: &mut Response<Bytes>) {
    let v = format!("{COOKIE}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Strict");
    if let Ok(v) = HeaderValue::from_str(&v) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// The session id from the request's `Cookie` headers, if well formed.
pub fn session_cookie(headers: &http::HeaderMap) -> Option<String> {
    for v in headers.get_all(header::COOKIE) {
        let Ok(s) = v.to_str() else { continue };
        for part in s.split(';') {
            if let Some((k, val)) = part.trim().split_once('=') {
                if k == COOKIE
                    && (20..=64).contains(&val.len())
                    && val
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    return Some(val.to_string());
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_parsed_and_bounded() {
        let mut h = http::HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=b; menshen_sess=abcdefghijklmnopqrstuvwxyz012345"),
        );
        assert_eq!(
            session_cookie(&h).as_deref(),
            Some("abcdefghijklmnopqrstuvwxyz012345")
        );
        let mut h = http::HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("menshen_sess=<script>"),
        );
        assert_eq!(session_cookie(&h), None);
        let mut r = html(200, String::new());
        set_cookie(&mut r, "x", 300);
        let c = r.headers()[header::SET_COOKIE].to_str().unwrap();
        for want in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(c.contains(want));
        }
        assert_eq!(r.headers()[header::CONTENT_SECURITY_POLICY], CSP);
        assert_eq!(
            csp_allowing_redirect_to("https://app.example:8443/cb?x=1"),
            CSP.replace(
                "form-action 'self'",
                "form-action 'self' https://app.example:8443"
            )
        );
        assert_eq!(
            csp_allowing_redirect_to("https://a.example; script-src *"),
            CSP
        );
        assert_eq!(csp_allowing_redirect_to("javascript:alert(1)"), CSP);
        assert_eq!(csp_allowing_redirect_to("https://u@evil.example/"), CSP);
    }
}
