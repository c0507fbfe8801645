//! Authorize: the app must hold a grant for the API (ONB-3, least privilege),
//! and a mobile app may call only A1 APIs offered for mobile integration (LVL-4).

use menshen_model::{AppKind, Integration, Level};
use menshen_protocol::ErrorCode;

use crate::exchange::Exchange;
use crate::GatewayError;

/// Check grant and client kind.
pub fn on_request(ex: &mut Exchange) -> Result<(), GatewayError> {
    let (Some(app), Some(api)) = (&ex.app, &ex.api) else {
        return Err(GatewayError::new(
            ErrorCode::Internal,
            "authorize before authenticate/route",
        ));
    };
    if app.app.kind == AppKind::Mobile
        && (api.api.level != Level::A1
            || !api.api.integrations.contains(&Integration::MobileToServer))
    {
        return Err(GatewayError::new(
            ErrorCode::ClientKindNotAllowed,
            format!(
                "mobile app on {} API without mobile_to_server",
                api.api.level.as_str()
            ),
        ));
    }
    if !app.grants.contains(&api.api.api_id) {
        return Err(GatewayError::new(ErrorCode::NotGranted, "no grant"));
    }
    Ok(())
}
