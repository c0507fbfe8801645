//! App status, checked on every call (AUTH-4): only `active` apps pass.

use menshen_model::AppStatus;
use menshen_protocol::ErrorCode;

use super::authenticate::Authenticated;
use crate::GatewayError;

/// Stage name.
pub const NAME: &str = "app_status";

/// Refuse apps that are suspended, blacklisted or exited. Needs the proof of
/// authentication, so only the app itself learns its status.
pub fn on_request(auth: &Authenticated) -> Result<(), GatewayError> {
    if auth.app.app.status != AppStatus::Active {
        return Err(GatewayError::new(
            ErrorCode::AppNotActive,
            format!("app status {}", auth.app.app.status),
        ));
    }
    Ok(())
}
