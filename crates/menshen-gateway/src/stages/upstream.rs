//! Forward to the upstream and relay its answer (stage name `upstream`). The gateway sets the verified
//! App_ID, API_ID, U_API_ID and transaction serial number in headers of its own
//! (client copies stripped); signature headers stay at the gateway. Upstream
//! failures become the uniform error body: nothing about the upstream leaks
//! (CONF-5).

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use menshen_protocol::headers;

use super::authenticate::Authenticated;
use super::consent::Consented;
use super::route::Routed;
use crate::exchange::Exchange;
use crate::upstream::UpstreamClient;
use crate::GatewayError;

/// Stage name.
pub const NAME: &str = "upstream";

/// Request headers passed to every upstream unless the API adds more
/// (`controls.forward_request_headers`). Everything else stays at the
/// gateway (CONF-5): credentials, cookies, client-sent forwarding and
/// routing headers (`Forwarded`, `X-Real-IP`, `X-Original-URL`, method
/// overrides, ...), framing (`Content-Length` is regenerated from the body
/// read), signatures.
pub const DEFAULT_REQUEST_HEADERS: &[&str] = &[
    "accept",
    "accept-language",
    "cache-control",
    "content-digest",
    "content-encoding",
    "content-type",
    "date",
    "idempotency-key",
    "if-match",
    "if-none-match",
    "user-agent",
    "x-app-id",
    "x-request-id",
];

/// Upstream response headers passed to the app unless the API adds more
/// (`controls.forward_response_headers`). Everything else (`Set-Cookie`,
/// `Server`, back-end host names, framework versions, `Location` pointing
/// inside the bank) is stripped.
pub const DEFAULT_RESPONSE_HEADERS: &[&str] = &[
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "content-type",
    "etag",
    "expires",
    "last-modified",
    "pragma",
    "retry-after",
    "vary",
    "x-request-id",
];

/// An API's compiled header allowlist.
#[derive(Debug, Clone)]
pub struct HeaderAllow(Vec<HeaderName>);

impl HeaderAllow {
    /// The default list plus the API's extras (already validated by the
    /// model: never a credential, cookie, forwarding or framing header).
    pub fn new(defaults: &[&'static str], extra: &[String]) -> Self {
        let mut v: Vec<HeaderName> = defaults
            .iter()
            .map(|n| HeaderName::from_static(n))
            .collect();
        for n in extra {
            let lower = n.to_ascii_lowercase();
            if !menshen_model::forwardable_header(&lower) {
                continue;
            }
            if let Ok(h) = HeaderName::from_bytes(lower.as_bytes()) {
                if !v.contains(&h) {
                    v.push(h);
                }
            }
        }
        HeaderAllow(v)
    }

    /// Whether `name` may pass.
    pub fn allows(&self, name: &HeaderName) -> bool {
        self.0.iter().any(|a| a == name)
    }

    /// The allowed headers of `h`, multi-valued ones whole and in order.
    pub fn filter(&self, h: &HeaderMap) -> HeaderMap {
        let mut out = HeaderMap::with_capacity(self.0.len() + 8);
        for (k, v) in h {
            if self.allows(k) {
                out.append(k.clone(), v.clone());
            }
        }
        out
    }
}

fn set(h: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

/// `Forwarded` (RFC 7239) for the client IP: IPv6 quoted in brackets.
fn forwarded_for(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => format!("for={v4};proto=https"),
        std::net::IpAddr::V6(v6) => format!("for=\"[{v6}]\";proto=https"),
    }
}

/// Send the request upstream and build the client's response. Needs the
/// route and the proof of authorization: nothing unauthorized is sent.
/// Once the request is handed over, `ex.forwarded` is set: from then on the
/// upstream may have acted, and the record says so.
/// Answer a built-in endpoint of the authorization server (after every
/// check an API call gets): the authorizer acts; nothing is forwarded.
pub async fn builtin(
    ex: &mut Exchange,
    name: &'static str,
    auth: &Authenticated,
    authorizer: Option<&dyn crate::authorizer::Authorizer>,
) -> Result<Response<Bytes>, GatewayError> {
    let Some(a) = authorizer else {
        return Err(GatewayError::new(
            menshen_protocol::ErrorCode::NotFound,
            "no authorization server configured",
        ));
    };
    let caller = crate::authorizer::Caller {
        app_id: auth.app.app.app_id.clone(),
        kind: auth.app.app.kind,
        client_cert: ex.client_cert.as_deref().map(str::to_string),
    };
    let now = ex.now_unix();
    // The authorizer changes state (tokens, consents): like a forwarded
    // call, its outcome is the record's to tell, whatever the client does.
    ex.forwarded = true;
    let mut r = a
        .handle_signed(name, &caller, &ex.parts, &ex.body, now)
        .await;
    crate::authorizer::take_note(ex, &mut r);
    Ok(r)
}

pub async fn forward(
    ex: &mut Exchange,
    routed: &Routed,
    auth: &Authenticated,
    consented: &Consented,
    up: &UpstreamClient,
) -> Result<Response<Bytes>, GatewayError> {
    let (api, app) = (&routed.api, &auth.app);
    let mut uri = String::with_capacity(api.upstream_base.len() + 64);
    uri.push_str(&api.upstream_base);
    uri.push_str(ex.parts.uri.path());
    if let Some(q) = ex.parts.uri.query() {
        uri.push('?');
        uri.push_str(q);
    }
    let mut req = Request::builder()
        .method(ex.parts.method.clone())
        .uri(&uri)
        .body(Full::new(ex.body.clone()))
        .map_err(|e| GatewayError::Internal(format!("upstream URI {uri}: {e}")))?;
    let h = req.headers_mut();
    // CONF-5: only the API's allowed headers pass; Content-Length is set by
    // the client library from the body actually read.
    *h = api.request_headers.filter(&ex.parts.headers);
    // Built once in the snapshot: no allocation per call.
    if let Some(v) = &app.app_id_header {
        h.insert(headers::UPSTREAM_APP_ID, v.clone());
    }
    if let Some(v) = &api.id_headers.0 {
        h.insert(headers::UPSTREAM_API_ID, v.clone());
    }
    if let Some(v) = &api.id_headers.1 {
        h.insert(headers::UPSTREAM_U_API_ID, v.clone());
    }
    set(h, headers::TXN_ID, &ex.txn_id);
    // The call's trace, with the gateway as a hop (never a malformed
    // client value).
    ex.trace.set_upstream_headers(h);
    if let Ok(ip) = HeaderValue::from_str(&ex.client_ip.to_string()) {
        h.insert("x-menshen-client-ip", ip.clone());
        h.insert("x-forwarded-for", ip);
    }
    h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
    set(h, "forwarded", &forwarded_for(ex.client_ip));
    // The customer and consent the gateway verified (USR-2); client copies
    // never pass (NEVER_FORWARDED_HEADERS).
    if let Some(g) = &consented.grant {
        set(h, headers::UPSTREAM_CUSTOMER_ID, &g.user_id);
        set(h, headers::UPSTREAM_CONSENT_ID, &g.consent_id);
    }

    let max = up.max_response;
    ex.forwarded = true;
    let sent = std::time::Instant::now();
    let exchange = async {
        let resp = up.client.request(req).await.map_err(|e| {
            if e.is_connect() {
                GatewayError::UpstreamUnreachable(format!("upstream connect failed: {e:?}"))
            } else {
                GatewayError::UpstreamTimeout(format!(
                    "upstream exchange broke after the request was sent: {e:?}"
                ))
            }
        })?;
        let (parts, body) = resp.into_parts();
        let body = Limited::new(body, max).collect().await.map_err(|e| {
            GatewayError::UpstreamTimeout(format!(
                "upstream answer broke off or was over the limit after its head: {e}"
            ))
        })?;
        Ok::<_, GatewayError>((parts, body.to_bytes()))
    };
    let (parts, body) = match tokio::time::timeout(up.timeout, exchange).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(GatewayError::UpstreamTimeout(format!(
                "no complete answer within {} ms",
                up.timeout.as_millis()
            )))
        }
    };
    ex.upstream_us = Some(sent.elapsed().as_micros().try_into().unwrap_or(u64::MAX));
    if parts.status.is_server_error() {
        return Err(GatewayError::UpstreamFailed(format!(
            "upstream answered {}",
            parts.status.as_u16()
        )));
    }
    let mut resp = Response::new(body);
    *resp.status_mut() = parts.status;
    let h = resp.headers_mut();
    *h = api.response_headers.filter(&parts.headers);
    set(h, headers::TXN_ID, &ex.txn_id);
    if api.api.lifecycle == menshen_model::Lifecycle::Deprecated {
        h.insert("deprecation", HeaderValue::from_static("true"));
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conf_5_only_allowed_headers_pass_and_never_forwarded_ones_cannot_be_allowed() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, x-secret-hop"),
            ("forwarded", "for=10.0.0.1"),
            ("x-real-ip", "10.0.0.1"),
            ("x-original-url", "/admin"),
            ("x-http-method-override", "DELETE"),
            ("authorization", "Bearer x"),
            ("cookie", "a=b"),
            ("content-length", "011"),
            ("x-menshen-app-id", "app_forged"),
            ("signature", "sig1=:AA==:"),
            ("accept", "application/json"),
            ("x-custom", "a"),
            ("x-custom", "b"),
            ("x-trace", "t"),
        ] {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        let allow = HeaderAllow::new(
            DEFAULT_REQUEST_HEADERS,
            &[
                "x-custom".into(),
                "cookie".into(),
                "x-menshen-app-id".into(),
            ],
        );
        let out = allow.filter(&h);
        let names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["accept", "x-custom"]);
        let vals: Vec<&str> = out
            .get_all("x-custom")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(vals, ["a", "b"]);
    }

    #[test]
    fn forwarded_quotes_ipv6() {
        assert_eq!(
            forwarded_for("192.0.2.1".parse().unwrap()),
            "for=192.0.2.1;proto=https"
        );
        assert_eq!(
            forwarded_for("2001:db8::1".parse().unwrap()),
            "for=\"[2001:db8::1]\";proto=https"
        );
    }
}
