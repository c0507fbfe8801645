//! Forward to the upstream and relay its answer. The gateway sets the verified
//! App_ID, API_ID, U_API_ID and transaction serial number in headers of its own
//! (client copies stripped); signature headers stay at the gateway. Upstream
//! failures become the uniform error body: nothing about the upstream leaks
//! (CONF-5).

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use menshen_protocol::{headers, ErrorCode};

use crate::exchange::Exchange;
use crate::upstream::UpstreamClient;
use crate::GatewayError;

/// Hop-by-hop and identifying headers never passed through.
const HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The headers of `h` that may pass: not hop-by-hop (also those named in
/// `Connection`), not in `extra`, not in Menshen's reserved namespace. One
/// pass into a new map (a clone and a removal per name cost ~1 us a call).
fn passable(h: &HeaderMap, extra: &[&str]) -> HeaderMap {
    // Headers named in `Connection` are hop-by-hop too.
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    let mut out = HeaderMap::with_capacity(h.len() + 6);
    for (k, v) in h {
        let n = k.as_str();
        if HOP.contains(&n)
            || extra.contains(&n)
            || n.starts_with(headers::RESERVED_PREFIX)
            || named.contains(k)
        {
            continue;
        }
        out.append(k.clone(), v.clone());
    }
    out
}

fn set(h: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

/// Send the request upstream and build the client's response.
pub async fn forward(
    ex: &mut Exchange,
    up: &UpstreamClient,
) -> Result<Response<Bytes>, GatewayError> {
    let (Some(api), Some(app)) = (&ex.api, &ex.app) else {
        return Err(GatewayError::new(
            ErrorCode::Internal,
            "forward before route/authenticate",
        ));
    };
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
        .map_err(|e| GatewayError::new(ErrorCode::Internal, format!("upstream URI {uri}: {e}")))?;
    let h = req.headers_mut();
    *h = passable(
        &ex.parts.headers,
        &[
            "host",
            headers::SIGNATURE,
            headers::SIGNATURE_INPUT,
            "x-forwarded-for",
        ],
    );
    set(h, headers::UPSTREAM_APP_ID, &app.app.app_id);
    set(h, headers::UPSTREAM_API_ID, &api.api.api_id);
    set(h, headers::UPSTREAM_U_API_ID, &api.api.u_api_id);
    set(h, headers::TXN_ID, &ex.txn_id);
    set(h, "x-menshen-client-ip", &ex.client_ip.to_string());

    let max = up.max_response;
    let exchange = async {
        let resp = up.client.request(req).await.map_err(|e| {
            GatewayError::new(
                ErrorCode::UpstreamUnavailable,
                format!("upstream request failed: {e:?}"),
            )
        })?;
        let (parts, body) = resp.into_parts();
        let body = Limited::new(body, max).collect().await.map_err(|e| {
            GatewayError::new(
                ErrorCode::UpstreamUnavailable,
                format!("upstream body: {e}"),
            )
        })?;
        Ok::<_, GatewayError>((parts, body.to_bytes()))
    };
    let (parts, body) = match tokio::time::timeout(up.timeout, exchange).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(GatewayError::new(
                ErrorCode::UpstreamTimeout,
                format!("no complete answer within {} ms", up.timeout.as_millis()),
            ))
        }
    };
    ex.upstream_status = Some(parts.status.as_u16());
    if parts.status.is_server_error() {
        return Err(GatewayError::new(
            ErrorCode::UpstreamUnavailable,
            format!("upstream answered {}", parts.status.as_u16()),
        ));
    }
    let mut resp = Response::new(body);
    *resp.status_mut() = parts.status;
    let h = resp.headers_mut();
    *h = passable(
        &parts.headers,
        &[
            "server",
            "x-powered-by",
            "via",
            "x-aspnet-version",
            "x-runtime",
            "content-length",
        ],
    );
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
    fn hop_by_hop_connection_named_reserved_and_extra_headers_do_not_pass() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, x-secret-hop"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("x-menshen-app-id", "app_forged"),
            ("x-menshen-anything", "x"),
            ("signature", "sig1=:AA==:"),
            ("accept", "application/json"),
            ("x-custom", "a"),
            ("x-custom", "b"),
        ] {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        let out = passable(&h, &["signature"]);
        let names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["accept", "x-custom"]);
        // Multi-valued headers pass whole, in order.
        let vals: Vec<&str> = out
            .get_all("x-custom")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(vals, ["a", "b"]);
    }
}
