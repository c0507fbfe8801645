//! The bank's public keys at a well-known URL, with key ids, so applications
//! can verify response signatures (AUTH-2) and find the encryption key.

use bytes::Bytes;
use http::{header, HeaderValue, Method, Response};

use crate::exchange::Exchange;

/// Stage name.
pub const NAME: &str = "well_known";

/// The path of the key set.
pub const PATH: &str = "/.well-known/menshen/keys";

/// Answer the key set, if this is its request.
pub fn on_request(ex: &Exchange) -> Option<Response<Bytes>> {
    if ex.parts.method != Method::GET || ex.parts.uri.path() != PATH {
        return None;
    }
    let mut r = Response::new(ex.snapshot.bank_keys_json.clone());
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=300"),
    );
    Some(r)
}
