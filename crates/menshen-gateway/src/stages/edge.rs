//! Checks of the request head at the edge (RFC 9112/9113, CONF-5), before
//! anything else reads it: no bare LF line ending (seen by
//! [`crate::h1scan`] on the raw bytes), one `Host`, and on HTTP/2 an `:authority` that
//! agrees with any `Host` header. Ambiguous framing or routing information
//! is refused rather than guessed at, since a front proxy or an upstream
//! framework may read it differently.

use menshen_protocol::ErrorCode;

use crate::exchange::Exchange;
use crate::GatewayError;

/// Stage name.
pub const NAME: &str = "edge";

/// Refuse ambiguous heads.
pub fn on_request(ex: &Exchange) -> Result<(), GatewayError> {
    if ex.conn.as_ref().is_some_and(|c| c.bare_lf_seen()) {
        return Err(GatewayError::new(
            ErrorCode::BadRequest,
            "bare LF line ending in an HTTP/1.1 head (RFC 9112 2.2); connection closed",
        ));
    }
    let h = &ex.parts.headers;
    let mut hosts = h.get_all(http::header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(GatewayError::new(
            ErrorCode::BadRequest,
            "more than one Host header",
        ));
    }
    if let (Some(auth), Some(host)) = (ex.parts.uri.authority(), host) {
        if !host
            .to_str()
            .is_ok_and(|v| v.eq_ignore_ascii_case(auth.as_str()))
        {
            return Err(GatewayError::new(
                ErrorCode::BadRequest,
                "Host header differs from the request's authority",
            ));
        }
    }
    if h.get_all(http::header::CONTENT_LENGTH).iter().count() > 1 {
        return Err(GatewayError::new(
            ErrorCode::BadRequest,
            "more than one Content-Length header",
        ));
    }
    Ok(())
}
