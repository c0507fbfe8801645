//! Replay protection (INT-4): each nonce once per app within the window. The
//! `created` window itself is checked when the signature head is read.
//!
//! The nonce is recorded in the same hot-state step as the flow-control
//! counters (`limits`, [`menshen_store::HotState::admit`]: on Redis one
//! script, one round trip per call): this module says what to record and
//! reads the verdict.

use std::marker::PhantomData;

use menshen_protocol::ErrorCode;
use menshen_store::{NonceCheck, Verdict};

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

/// The nonce to record: kept as long as a request with this `created` could
/// still be accepted. Needs the proof of authentication, so forged requests
/// cannot burn an app's nonces.
pub fn nonce_check(ex: &Exchange, auth: &Authenticated, window_secs: u32) -> NonceCheck {
    let now = ex.now_unix();
    NonceCheck {
        app_id: auth.app.app.app_id.clone(),
        nonce: auth.nonce.clone(),
        expires_at: auth.created.max(now) + i64::from(window_secs) + 1,
        now,
    }
}

/// Refuse a nonce seen before; otherwise the proof that it is spent.
pub fn spent(ex: &mut Exchange, verdict: &Verdict) -> Result<NonceSpent, GatewayError> {
    if verdict.replay {
        return Err(GatewayError::new(ErrorCode::Replay, "nonce already used"));
    }
    ex.nonce_recorded = true;
    Ok(NonceSpent {
        _sealed: PhantomData,
    })
}
