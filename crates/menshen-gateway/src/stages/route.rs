//! Route: find the API for the method and path; a terminated API answers the
//! "service terminated" tombstone (挡板, CHG-2) here, before anything reaches
//! the upstream.

use std::marker::PhantomData;

use std::sync::Arc;

use menshen_model::{Lifecycle, Method};
use menshen_protocol::ErrorCode;

use crate::exchange::Exchange;
use crate::snapshot::ApiEntry;
use crate::GatewayError;

/// Stage name (the pipeline's order table and docs/pipeline.md use it).
pub const NAME: &str = "route";

/// Proof that the request was routed to a live API; only this stage makes one.
pub struct Routed {
    /// The API.
    pub api: Arc<ApiEntry>,
    /// Private: no other module can make this proof.
    _sealed: PhantomData<()>,
}

/// Why nothing matched, for the record: a path with a segment that would be
/// refused as a parameter value (it decodes to a traversal, a separator, a
/// control or full-width separator, or invalid UTF-8) is named as such, so
/// auditors can tell probing (ATK-1) from a mistyped path. The client sees
/// `NOT_FOUND` either way.
fn no_route_reason(path: &str) -> &'static str {
    let suspicious = path
        .split('/')
        .skip(1)
        .any(|seg| !seg.is_empty() && !menshen_model::path::param_value_ok(seg));
    if suspicious {
        "no route: a path segment decodes outside the parameter pattern (traversal, separator, control or invalid UTF-8)"
    } else {
        "no route"
    }
}

/// Resolve the API (also kept in `ex.api` for the record).
pub fn on_request(ex: &mut Exchange) -> Result<Routed, GatewayError> {
    let path = ex.parts.uri.path();
    let entry = Method::parse(ex.parts.method.as_str())
        .and_then(|m| ex.snapshot.route(m, path))
        .cloned()
        .ok_or_else(|| GatewayError::new(ErrorCode::NotFound, no_route_reason(path)))?;
    let terminated = entry.api.lifecycle == Lifecycle::Terminated;
    ex.api = Some(entry.clone());
    if terminated {
        return Err(GatewayError::new(
            ErrorCode::ServiceTerminated,
            "API terminated (tombstone)",
        ));
    }
    Ok(Routed {
        api: entry,
        _sealed: PhantomData,
    })
}
