//! The authorization server's customer-facing pages and its metadata
//! document (issue 11; `docs/authorization.md`): unsigned requests from the
//! customer's browser. Only these paths are handed over; their form bodies
//! are read here, bounded ([`MAX_FORM_BYTES`], the body read timeout, the
//! shared memory budget). Every one still gets its access record.

use std::time::Duration;

use bytes::Bytes;
use http::Response;
use menshen_protocol::ErrorCode;

use super::body;
use crate::authorizer::is_web_path;
use crate::budget::Charge;
use crate::exchange::Exchange;
use crate::server::State;
use crate::GatewayError;

/// Stage name.
pub const NAME: &str = "oauth_web";

/// Largest form body of a page (login, consent, revocation).
pub const MAX_FORM_BYTES: usize = 16 * 1024;

/// What the stage did.
pub enum Web<B> {
    /// A page answered the request.
    Answered(Response<Bytes>),
    /// Not a page: the request goes on, with its body unread.
    Pass(B),
}

/// Whether the request is a form post to one of the pages (a login, an
/// approval, a revocation): its record is durable.
pub fn changes_state(ex: &Exchange) -> bool {
    ex.parts.method == http::Method::POST && is_web_path(ex.parts.uri.path())
}

/// Answer the request when it is one of the pages.
pub async fn on_request<B>(
    ex: &mut Exchange,
    incoming: B,
    state: &State,
    charge: &mut Charge,
) -> Result<Web<B>, GatewayError>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let Some(authorizer) = state.authorizer.as_deref() else {
        return Ok(Web::Pass(incoming));
    };
    if !is_web_path(ex.parts.uri.path()) {
        return Ok(Web::Pass(incoming));
    }
    let limits = body::BodyLimits {
        max: MAX_FORM_BYTES,
        timeout: Duration::from_millis(state.config.body_read_timeout_ms),
        budget: &state.budget,
    };
    body::read(ex, incoming, &limits, charge).await?;
    // A form that changes state (a login, a customer's approval or
    // revocation) is not acted on while the audit log is failing: its record
    // (the approval's time, browser IP and user agent, USR-4) is durable
    // before the answer, like an A2/A3 call's.
    if changes_state(ex) {
        crate::record::ready(ex, true)?;
    }
    let now = ex.now_unix();
    match authorizer
        .handle_web(&ex.parts, &ex.body, ex.client_ip, now)
        .await
    {
        Some(mut r) => {
            crate::authorizer::take_note(ex, &mut r);
            Ok(Web::Answered(r))
        }
        None => Err(GatewayError::new(ErrorCode::NotFound, "no such page")),
    }
}
