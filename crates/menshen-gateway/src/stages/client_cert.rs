//! Client certificate binding (AUTH-1 "App_ID + certificate", AUTH-2): a
//! mutual-TLS certificate bound to one app can never be used by another, and
//! an app that requires its certificate is refused without it.

use menshen_protocol::ErrorCode;

use super::authenticate::Authenticated;
use crate::exchange::Exchange;
use crate::GatewayError;

/// Stage name.
pub const NAME: &str = "client_cert";

/// Check the connection's client certificate against the authenticated app.
pub fn on_request(ex: &Exchange, auth: &Authenticated) -> Result<(), GatewayError> {
    let app = &auth.app;
    if let Some(fp) = &ex.client_cert {
        if let Some(owner) = ex.snapshot.cert_owner.get(&**fp) {
            if owner != &app.app.app_id {
                return Err(GatewayError::new(
                    ErrorCode::CertificateMismatch,
                    format!(
                        "client certificate bound to `{owner}` used by `{}`",
                        app.app.app_id
                    ),
                ));
            }
        }
    }
    if app.app.require_client_cert
        && !ex
            .client_cert
            .as_ref()
            .is_some_and(|fp| app.certs.contains(&**fp))
    {
        return Err(GatewayError::new(
            ErrorCode::CertificateMismatch,
            "app requires its own client certificate",
        ));
    }
    Ok(())
}
