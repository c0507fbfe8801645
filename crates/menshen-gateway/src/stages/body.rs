//! Read the request body: after the headers were authenticated as far as
//! they can be, within the size limit, within the body read timeout, and
//! charged to the gateway's one memory budget for bodies (issue 9: bounded
//! under attack). Only a request whose signature verified gets here.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use menshen_protocol::ErrorCode;

use crate::budget::{BodyBudget, Charge};
use crate::exchange::Exchange;
use crate::GatewayError;

/// Stage name.
pub const NAME: &str = "body";

/// Limits for one body.
pub struct BodyLimits<'a> {
    /// Largest body, bytes.
    pub max: usize,
    /// Time for the whole body to arrive.
    pub timeout: Duration,
    /// The shared budget.
    pub budget: &'a BodyBudget,
}

fn declared_len(ex: &Exchange) -> Result<Option<u64>, GatewayError> {
    // One Content-Length at most: the edge stage refused more.
    let Some(v) = ex.parts.headers.get(http::header::CONTENT_LENGTH) else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| GatewayError::new(ErrorCode::BadRequest, "content-length is not a number"))
}

/// Read the whole body into `ex.body` (and keep it charged in `charge` until
/// the request ends).
pub async fn read<B>(
    ex: &mut Exchange,
    mut body: B,
    limits: &BodyLimits<'_>,
    charge: &mut Charge,
) -> Result<(), GatewayError>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let declared = declared_len(ex)?;
    if let Some(len) = declared {
        if len > limits.max as u64 {
            return Err(GatewayError::new(
                ErrorCode::PayloadTooLarge,
                format!("content-length {len}"),
            ));
        }
        // Charge the declared size up front: a request that cannot fit is
        // answered before a byte of it is held.
        if len > 0 && !limits.budget.charge(charge, len as usize) {
            return Err(GatewayError::Overloaded(format!(
                "body memory budget ({} bytes) exhausted",
                limits.budget.total_bytes()
            )));
        }
    }
    // No body at all (a GET, or Content-Length: 0): no timer, no buffer.
    if body.is_end_stream() {
        return match declared {
            Some(n) if n > 0 => Err(GatewayError::new(
                ErrorCode::BadRequest,
                format!("body of 0 bytes, content-length {n}"),
            )),
            _ => Ok(()),
        };
    }
    let prepaid = declared.unwrap_or(0) as usize;
    let mut buf = BytesMut::with_capacity(prepaid);
    let mut seen = 0usize;
    let read = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                GatewayError::new(ErrorCode::BadRequest, format!("body read failed: {e}"))
            })?;
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            seen += data.len();
            if seen > limits.max {
                return Err(GatewayError::new(
                    ErrorCode::PayloadTooLarge,
                    "body over limit",
                ));
            }
            // Bytes beyond the declared length (chunked bodies: all of
            // them) are charged as they arrive.
            if seen > prepaid
                && !limits
                    .budget
                    .charge(charge, seen - prepaid.max(seen - data.len()))
            {
                return Err(GatewayError::Overloaded(format!(
                    "body memory budget ({} bytes) exhausted",
                    limits.budget.total_bytes()
                )));
            }
            buf.extend_from_slice(&data);
        }
        Ok(())
    };
    match tokio::time::timeout(limits.timeout, read).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(GatewayError::RequestTimeout(format!(
                "body not complete within {} ms ({seen} bytes received)",
                limits.timeout.as_millis()
            )))
        }
    }
    if let Some(len) = declared {
        if seen as u64 != len {
            return Err(GatewayError::new(
                ErrorCode::BadRequest,
                format!("body of {seen} bytes, content-length {len}"),
            ));
        }
    }
    ex.body = buf.freeze();
    Ok(())
}
