//! App status, checked on every call (AUTH-4): only `active` apps pass.

use menshen_model::AppStatus;
use menshen_protocol::ErrorCode;

use crate::exchange::Exchange;
use crate::GatewayError;

/// Refuse apps that are suspended, blacklisted or exited.
pub fn on_request(ex: &mut Exchange) -> Result<(), GatewayError> {
    let Some(app) = &ex.app else {
        return Err(GatewayError::new(
            ErrorCode::Internal,
            "app_status before authenticate",
        ));
    };
    if app.app.status != AppStatus::Active {
        return Err(GatewayError::new(
            ErrorCode::AppNotActive,
            format!("app status {}", app.app.status),
        ));
    }
    Ok(())
}
