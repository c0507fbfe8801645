//! Route: find the API for the method and path; a terminated API answers the
//! "service terminated" tombstone (挡板, CHG-2) here, before anything reaches
//! the upstream.

use menshen_model::{Lifecycle, Method};
use menshen_protocol::ErrorCode;

use crate::exchange::Exchange;
use crate::GatewayError;

/// Resolve `ex.api`.
pub fn on_request(ex: &mut Exchange) -> Result<(), GatewayError> {
    let path = ex.parts.uri.path();
    let entry = Method::parse(ex.parts.method.as_str())
        .and_then(|m| ex.snapshot.route(m, path))
        .cloned()
        .ok_or_else(|| GatewayError::new(ErrorCode::NotFound, "no route"))?;
    let terminated = entry.api.lifecycle == Lifecycle::Terminated;
    ex.api = Some(entry);
    if terminated {
        return Err(GatewayError::new(
            ErrorCode::ServiceTerminated,
            "API terminated (tombstone)",
        ));
    }
    Ok(())
}
