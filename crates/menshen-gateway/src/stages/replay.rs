//! Replay protection (INT-4): each nonce once per app within the window. The
//! `created` window itself is checked when the signature is verified.

use menshen_protocol::ErrorCode;
use menshen_store::HotState;

use crate::exchange::Exchange;
use crate::GatewayError;

/// Record the nonce; refuse a nonce seen before.
pub async fn on_request(
    ex: &mut Exchange,
    hot: &dyn HotState,
    window_secs: u32,
) -> Result<(), GatewayError> {
    let (Some(app), Some(sig)) = (&ex.app, &ex.signature) else {
        return Err(GatewayError::new(
            ErrorCode::Internal,
            "replay before authenticate",
        ));
    };
    let now = ex.now_unix();
    // Keep the nonce as long as a request with this `created` could still be
    // accepted.
    let until = sig.params.created.max(now) + i64::from(window_secs) + 1;
    if !hot
        .insert_nonce(&app.app.app_id, &sig.params.nonce, until, now)
        .await
    {
        return Err(GatewayError::new(ErrorCode::Replay, "nonce already used"));
    }
    ex.nonce_recorded = true;
    Ok(())
}
