//! Per-app IP blocklist and allowlist (AUTH-5). The global blocklist is the
//! client-IP stage's; this one needs the authenticated app.

use menshen_protocol::ErrorCode;

use super::authenticate::Authenticated;
use crate::exchange::Exchange;
use crate::snapshot::ip_in;
use crate::GatewayError;

/// Stage name.
pub const NAME: &str = "ip_lists";

/// Refuse addresses on the app's blocklist or, when it has an allowlist, off it.
pub fn on_request(ex: &Exchange, auth: &Authenticated) -> Result<(), GatewayError> {
    let app = &auth.app;
    if ip_in(&app.deny, ex.client_ip) {
        return Err(GatewayError::new(
            ErrorCode::IpForbidden,
            format!("client IP {} on the app's blocklist", ex.client_ip),
        ));
    }
    if !app.allow.is_empty() && !ip_in(&app.allow, ex.client_ip) {
        return Err(GatewayError::new(
            ErrorCode::IpForbidden,
            format!("client IP {} not on the app's allowlist", ex.client_ip),
        ));
    }
    Ok(())
}
