//! Which headers an API may forward (CONF-5).

use crate::ValidationError;

/// Headers that no API may forward: credentials, cookies, routing and
/// method overrides that upstream frameworks act on, and the gateway's own
/// namespace (CONF-5).
pub const NEVER_FORWARDED_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "te",
    "trailer",
    "upgrade",
    "http2-settings",
    "signature",
    "signature-input",
];

/// Whether an API may let header `name` (lower case) through: never one of
/// [`NEVER_FORWARDED_HEADERS`] nor one of the gateway's own `x-menshen-*`.
pub fn forwardable_header(name: &str) -> bool {
    !NEVER_FORWARDED_HEADERS.contains(&name) && !name.starts_with("x-menshen-")
}

pub(crate) fn header_list(field: &str, v: &[String]) -> Result<Vec<String>, ValidationError> {
    let mut out = Vec::with_capacity(v.len());
    for h in v {
        let n = h.trim().to_ascii_lowercase();
        let token = !n.is_empty()
            && n.len() <= 64
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !token {
            return Err(ValidationError::new(
                field,
                format!("`{h}` is not a header name (letters, digits, `-`, `_`; 1-64 characters)"),
            ));
        }
        if !forwardable_header(&n) {
            return Err(ValidationError::new(
                field,
                format!("`{n}` is never forwarded: the gateway sets or strips it itself"),
            ));
        }
        out.push(n);
    }
    Ok(out)
}
