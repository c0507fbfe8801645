//! Replay protection (INT-4): each nonce once per app within the window. The
//! `created` window itself is checked when the signature head is read.

use std::marker::PhantomData;

use menshen_protocol::ErrorCode;
use menshen_store::HotState;

use super::authenticate::Authenticated;
use crate::exchange::Exchange;
use crate::GatewayError;

/// Stage name.
pub const NAME: &str = "replay";

/// Proof that this request's nonce was spent here.
pub struct NonceSpent {
    /// Private: no other module can make this proof.
    _sealed: PhantomData<()>,
}

/// Record the nonce; refuse a nonce seen before. Needs the proof of
/// authentication, so forged requests cannot burn an app's nonces.
pub async fn on_request(
    ex: &mut Exchange,
    auth: &Authenticated,
    hot: &dyn HotState,
    window_secs: u32,
) -> Result<NonceSpent, GatewayError> {
    let now = ex.now_unix();
    // Keep the nonce as long as a request with this `created` could still be
    // accepted.
    let until = auth.created.max(now) + i64::from(window_secs) + 1;
    if !hot
        .insert_nonce(&auth.app.app.app_id, &auth.nonce, until, now)
        .await
    {
        return Err(GatewayError::new(ErrorCode::Replay, "nonce already used"));
    }
    ex.nonce_recorded = true;
    Ok(NonceSpent {
        _sealed: PhantomData,
    })
}
