//! Forward to the upstream and relay its answer (stage name `upstream`). The gateway sets the verified
//! App_ID, API_ID, U_API_ID and transaction serial number in headers of its own
//! (client copies stripped); signature headers stay at the gateway. Upstream
//! failures become the uniform error body: nothing about the upstream leaks
//! (CONF-5).

use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};

use crate::budget::{BodyBudget, Charge};
use hyper_util::client::legacy::connect::Connect;
use hyper_util::client::legacy::Client;

use super::authenticate::Authenticated;
use super::consent::Consented;
use super::route::Routed;
use crate::exchange::Exchange;
use crate::snapshot::ApiEntry;
use crate::upstream::breaker::Admission;
use crate::upstream::named::is_connection_cap;
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

/// Header names toward the upstream, parsed once at compile time (a
/// `&'static str` name is validated on every insert: ~0.4 us per A1 call).
mod names {
    use http::HeaderName;
    use menshen_protocol::headers;
    pub const TXN_ID: HeaderName = HeaderName::from_static(headers::TXN_ID);
    pub const APP_ID: HeaderName = HeaderName::from_static(headers::UPSTREAM_APP_ID);
    pub const API_ID: HeaderName = HeaderName::from_static(headers::UPSTREAM_API_ID);
    pub const U_API_ID: HeaderName = HeaderName::from_static(headers::UPSTREAM_U_API_ID);
    pub const CUSTOMER_ID: HeaderName = HeaderName::from_static(headers::UPSTREAM_CUSTOMER_ID);
    pub const CONSENT_ID: HeaderName = HeaderName::from_static(headers::UPSTREAM_CONSENT_ID);
    pub const CLIENT_IP: HeaderName = HeaderName::from_static("x-menshen-client-ip");
    pub const FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
    pub const FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
    pub const FORWARDED: HeaderName = HeaderName::from_static("forwarded");
}

fn set(h: &mut HeaderMap, name: HeaderName, value: &str) {
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

/// Send the request upstream and build the client's response. Needs the
/// route and the proof of authorization: nothing unauthorized is sent.
/// Once the request is handed over, `ex.forwarded` is set: from then on the
/// upstream may have acted, and the record says so. An API on a named
/// upstream goes through [`call_named`].
pub async fn forward(
    ex: &mut Exchange,
    routed: &Routed,
    auth: &Authenticated,
    consented: &Consented,
    up: &UpstreamClient,
    hold: &mut Hold<'_>,
) -> Result<Response<Bytes>, GatewayError> {
    let api = &routed.api;
    let headers = request_headers(ex, api, auth, consented);
    let sent = std::time::Instant::now();
    let (parts, body) = match menshen_model::upstream_name(&api.api.upstream) {
        // A base URL: the one shared pool, as before TRF-2.
        None => {
            let req = request(ex, &api.upstream_base, headers)?;
            ex.forwarded = true;
            exchange(&up.client, req, up.timeout, up.max_response, hold)
                .await
                .map_err(Failure::into_error)?
        }
        Some(name) => match call_named(ex, api, name, headers, up, hold).await? {
            Named::Answered(parts, body) => (parts, body),
            Named::Fallback(r) => return Ok(r),
        },
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
    set(h, names::TXN_ID, &ex.txn_id);
    if api.api.lifecycle == menshen_model::Lifecycle::Deprecated {
        h.insert("deprecation", HeaderValue::from_static("true"));
    }
    Ok(resp)
}

/// The headers sent upstream: the API's allowed ones and the gateway's own.
fn request_headers(
    ex: &Exchange,
    api: &ApiEntry,
    auth: &Authenticated,
    consented: &Consented,
) -> HeaderMap {
    let app = &auth.app;
    // CONF-5: only the API's allowed headers pass; Content-Length is set by
    // the client library from the body actually read.
    let mut h = api.request_headers.filter(&ex.parts.headers);
    // Built once in the snapshot: no allocation per call.
    if let Some(v) = &app.app_id_header {
        h.insert(names::APP_ID, v.clone());
    }
    if let Some(v) = &api.id_headers.0 {
        h.insert(names::API_ID, v.clone());
    }
    if let Some(v) = &api.id_headers.1 {
        h.insert(names::U_API_ID, v.clone());
    }
    set(&mut h, names::TXN_ID, &ex.txn_id);
    // The call's trace, with the gateway as a hop (never a malformed
    // client value).
    ex.trace.set_upstream_headers(&mut h);
    if let Ok(ip) = HeaderValue::from_str(&ex.client_ip.to_string()) {
        h.insert(names::CLIENT_IP, ip.clone());
        h.insert(names::FORWARDED_FOR, ip);
    }
    h.insert(names::FORWARDED_PROTO, HeaderValue::from_static("https"));
    set(&mut h, names::FORWARDED, &forwarded_for(ex.client_ip));
    // The customer and consent the gateway verified (USR-2); client copies
    // never pass (NEVER_FORWARDED_HEADERS).
    if let Some(g) = &consented.grant {
        set(&mut h, names::CUSTOMER_ID, &g.user_id);
        set(&mut h, names::CONSENT_ID, &g.consent_id);
    }
    h
}

/// The request to `base` + the call's path and query.
fn request(
    ex: &Exchange,
    base: &str,
    headers: HeaderMap,
) -> Result<Request<Full<Bytes>>, GatewayError> {
    let mut uri = String::with_capacity(base.len() + 64);
    uri.push_str(base);
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
    *req.headers_mut() = headers;
    Ok(req)
}

/// How one exchange with an upstream failed.
enum Failure {
    /// The connection could not be made: no byte of the request left.
    Connect(String),
    /// The upstream's connection cap refused a new connection (nothing sent).
    Cap,
    /// The exchange broke or timed out after the request was handed over.
    Broken(String),
    /// The answer was longer than `gateway.max_response_bytes`: the
    /// upstream answered (and may have acted), but the gateway withholds it.
    TooLarge(usize),
    /// The answer did not fit in what is left of the answers' memory budget
    /// (issue 9 item 1): the upstream answered (and may have acted), the
    /// gateway could not hold the answer.
    OverBudget(usize),
}

impl Failure {
    fn into_error(self) -> GatewayError {
        match self {
            Failure::Connect(r) => GatewayError::UpstreamUnreachable(r),
            Failure::Cap => {
                GatewayError::UpstreamBusy("the upstream's connection cap is reached".into())
            }
            Failure::Broken(r) => GatewayError::UpstreamTimeout(r),
            Failure::TooLarge(max) => GatewayError::UpstreamResponseInvalid(format!(
                "the upstream's answer is over gateway.max_response_bytes ({max} bytes)"
            )),
            Failure::OverBudget(total) => GatewayError::OutcomeUnknown(format!(
                "the answers' memory budget ({total} bytes, gateway.answer_memory_budget_bytes) could not hold the upstream's answer"
            )),
        }
    }
}

/// Where an answer's bytes are charged as they arrive: the answers' memory
/// budget (issue 9 item 1), under the request's own charge (released when
/// the request ends).
pub struct Hold<'a> {
    /// The shared budget.
    pub budget: &'a BodyBudget,
    /// This request's charge.
    pub charge: &'a mut Charge,
}

/// Send `req` and read the whole answer (at most `max` bytes, each frame
/// charged to `hold` as it arrives) within `timeout`.
async fn exchange<C>(
    client: &Client<C, Full<Bytes>>,
    req: Request<Full<Bytes>>,
    timeout: Duration,
    max: usize,
    hold: &mut Hold<'_>,
) -> Result<(http::response::Parts, Bytes), Failure>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    let exchange = async {
        let resp = client.request(req).await.map_err(|e| {
            if is_connection_cap(&e) {
                Failure::Cap
            } else if e.is_connect() {
                Failure::Connect(format!("upstream connect failed: {e:?}"))
            } else {
                Failure::Broken(format!(
                    "upstream exchange broke after the request was sent: {e:?}"
                ))
            }
        })?;
        let (parts, mut body) = resp.into_parts();
        // A one-frame answer (most) is kept as it came, without a copy.
        let mut first: Option<Bytes> = None;
        let mut more = bytes::BytesMut::new();
        let mut len = 0usize;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                Failure::Broken(format!("upstream answer broke off after its head: {e}"))
            })?;
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            if len + data.len() > max {
                return Err(Failure::TooLarge(max));
            }
            if !hold.budget.charge(hold.charge, data.len()) {
                return Err(Failure::OverBudget(hold.budget.total_bytes()));
            }
            len += data.len();
            match first.take() {
                None if more.is_empty() => first = Some(data),
                None => more.extend_from_slice(&data),
                Some(f) => {
                    more.reserve(f.len() + data.len());
                    more.extend_from_slice(&f);
                    more.extend_from_slice(&data);
                }
            }
        }
        let body = first.unwrap_or_else(|| more.freeze());
        Ok::<_, Failure>((parts, body))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(r) => r,
        Err(_) => Err(Failure::Broken(format!(
            "no complete answer within {} ms",
            timeout.as_millis()
        ))),
    }
}

/// What a named upstream gave.
enum Named {
    /// The upstream's answer.
    Answered(http::response::Parts, Bytes),
    /// The API's fallback answer (degraded).
    Fallback(Response<Bytes>),
}

/// Call a named upstream (TRF-2, `docs/upstreams.md`): the circuit breaker
/// first (open: degraded), then the bulkhead (full: 503 `UPSTREAM_BUSY` at
/// once), then a healthy target by the balancing rule (none: degraded). A
/// connect failure (nothing sent) of an idempotent call is tried again on
/// another target, up to `retries` times; nothing else is ever retried.
async fn call_named(
    ex: &mut Exchange,
    api: &ApiEntry,
    name: &str,
    mut headers: HeaderMap,
    up: &UpstreamClient,
    hold: &mut Hold<'_>,
) -> Result<Named, GatewayError> {
    let Some(u) = up.named.get(name) else {
        // A configuration error of this node: loud, whatever the client did.
        tracing::error!(api_id = %api.api.api_id, upstream = name, "the API names an upstream this node's [gateway.upstreams] does not define");
        return Err(GatewayError::UpstreamUnreachable(format!(
            "the API names upstream://{name}, which this node's [gateway.upstreams] does not define"
        )));
    };
    let ticket = match &u.breaker {
        None => None,
        Some(b) => match b.admit() {
            Admission::Pass(t) => Some(t),
            Admission::Reject(ms) => {
                return degrade(
                    ex,
                    api,
                    format!("circuit breaker of upstream {name} open"),
                    ms.max(1),
                )
            }
        },
    };
    let Some(_in_flight) = u.enter() else {
        return Err(GatewayError::UpstreamBusy(format!(
            "upstream {name}: {} calls in flight (max_in_flight)",
            u.max_in_flight
        )));
    };
    let idempotent = matches!(
        ex.parts.method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
    );
    let mut retries_left = if idempotent { u.retries } else { 0 };
    let mut tried = 0u64;
    let mut last_failure: Option<String> = None;
    loop {
        let Some((i, _on_target)) = u.pick(tried) else {
            if let Some(why) = last_failure {
                if let Some(t) = ticket {
                    t.record(false);
                }
                return Err(GatewayError::UpstreamUnreachable(why));
            }
            return degrade(
                ex,
                api,
                format!("no healthy target of upstream {name}"),
                u.health_interval_ms(),
            );
        };
        tried |= 1 << i;
        if let Some(prev) = &last_failure {
            ex.upstream_note = Some(format!(
                "{prev}; retried (idempotent, nothing sent) on target {i} of upstream {name}"
            ));
        }
        let h = if retries_left > 0 {
            headers.clone()
        } else {
            std::mem::take(&mut headers)
        };
        let req = request(ex, &u.targets[i].base, h)?;
        ex.forwarded = true;
        match exchange(&u.client, req, u.timeout, up.max_response, hold).await {
            Ok((parts, body)) => {
                if let Some(t) = ticket {
                    t.record(!parts.status.is_server_error());
                }
                return Ok(Named::Answered(parts, body));
            }
            Err(Failure::Cap) => {
                return Err(GatewayError::UpstreamBusy(format!(
                    "upstream {name}: {} connections open (max_connections)",
                    u.max_connections
                )))
            }
            // The upstream answered; the gateway could not hold it.
            Err(f @ Failure::OverBudget(_)) => {
                if let Some(t) = ticket {
                    t.record(true);
                }
                return Err(f.into_error());
            }
            Err(Failure::Connect(why)) if retries_left > 0 => {
                retries_left -= 1;
                last_failure = Some(format!("target {i} of upstream {name}: {why}"));
            }
            Err(f) => {
                if let Some(t) = ticket {
                    t.record(false);
                }
                return Err(f.into_error());
            }
        }
    }
}

/// The upstream cannot be called now: the API's fallback answer, or 503
/// `SERVICE_DEGRADED` with `Retry-After`. Either way the record says why.
fn degrade(
    ex: &mut Exchange,
    api: &ApiEntry,
    why: String,
    retry_ms: u64,
) -> Result<Named, GatewayError> {
    let Some(f) = &api.api.controls.fallback else {
        return Err(GatewayError::Degraded {
            reason: why,
            retry_after_secs: retry_ms.div_ceil(1000).max(1),
        });
    };
    ex.upstream_note = Some(format!("degraded ({why}): fallback answer {}", f.status));
    let mut r = Response::new(Bytes::from(f.body.clone()));
    *r.status_mut() = StatusCode::from_u16(f.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_str(&f.content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    h.insert(DEGRADED_HEADER, HeaderValue::from_static("fallback"));
    set(h, names::TXN_ID, &ex.txn_id);
    Ok(Named::Fallback(r))
}

/// Marks a fallback answer (TRF-2): the upstream was not called.
pub const DEGRADED_HEADER: &str = "x-menshen-degraded";

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
