//! Authorize: the app must hold a grant for the API (ONB-3, least privilege),
//! and a mobile app may call only A1 APIs offered for mobile integration (LVL-4).

use std::marker::PhantomData;

use menshen_model::{AppKind, Integration, Level};
use menshen_protocol::ErrorCode;

use super::authenticate::Authenticated;
use super::route::Routed;
use crate::GatewayError;

/// Stage name.
pub const NAME: &str = "authorize";

/// Proof that the app may call the API; the upstream stage needs it.
pub struct Authorized {
    /// Private: no other module can make this proof.
    _sealed: PhantomData<()>,
}

/// Check grant and client kind. Needs the route and the authenticated app;
/// runs before the nonce is recorded (`replay`, with `limits`), so a call
/// the app may not make spends neither its nonce nor any quota, and a
/// replay of it is refused here again.
pub fn on_request(routed: &Routed, auth: &Authenticated) -> Result<Authorized, GatewayError> {
    let (app, api) = (&auth.app, &routed.api);
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
    // The authorization server's own endpoints need no grant: every server
    // app may authorize its customers (a mobile app was refused above).
    if api.builtin.is_none() && !app.grants.contains(&api.api.api_id) {
        return Err(GatewayError::new(ErrorCode::NotGranted, "no grant"));
    }
    Ok(Authorized {
        _sealed: PhantomData,
    })
}
