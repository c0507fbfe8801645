//! Read the request body, up to the configured limit.

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use menshen_protocol::ErrorCode;

use crate::exchange::Exchange;
use crate::GatewayError;

/// Read the whole body into `ex.body`.
pub async fn read(ex: &mut Exchange, body: Incoming, limit: usize) -> Result<(), GatewayError> {
    if let Some(len) = ex
        .parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > limit as u64 {
            return Err(GatewayError::new(
                ErrorCode::PayloadTooLarge,
                format!("content-length {len}"),
            ));
        }
    }
    match Limited::new(body, limit).collect().await {
        Ok(c) => {
            ex.body = c.to_bytes();
            Ok(())
        }
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(GatewayError::new(
                ErrorCode::PayloadTooLarge,
                "body over limit",
            ))
        }
        Err(e) => Err(GatewayError::new(
            ErrorCode::BadRequest,
            format!("body read failed: {e}"),
        )),
    }
}
