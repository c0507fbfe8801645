//! The wire protocol between application parties and the Menshen gateway:
//! the RFC 9421 HTTP Message Signatures profile, RFC 9530 `Content-Digest`,
//! and the uniform error body. Pure functions: no I/O, no tokio, no hyper, so
//! the gateway and the SDK share exactly this code. See `docs/protocol.md`.
#![forbid(unsafe_code)]
// The ban list (clippy.toml): no `unwrap` outside tests (an `expect` names
// its invariant), no printing from a library (tracing instead).
#![deny(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::dbg_macro
)]
#![warn(missing_docs)]

pub mod asym;
pub mod digest;
pub mod envelope;
pub mod error;
mod sf;
pub mod signature;

pub use asym::{response_components, sign_with_key, verify_with_key, ResponseView};
pub use digest::{content_digest, verify_content_digest};
pub use error::{ErrorBody, ErrorCode};
pub use signature::{
    sign_mac, signature_base, Components, ParsedSignature, SignatureParams, SIGNATURE_LABEL,
};

/// Header names of the protocol (lower case, as HTTP/2 sends them).
pub mod headers {
    /// RFC 9421 signature input.
    pub const SIGNATURE_INPUT: &str = "signature-input";
    /// RFC 9421 signature.
    pub const SIGNATURE: &str = "signature";
    /// RFC 9530 content digest.
    pub const CONTENT_DIGEST: &str = "content-digest";
    /// The App_ID the client claims (optional; must equal `keyid` when sent).
    pub const APP_ID: &str = "x-app-id";
    /// The transaction serial number (交易流水号) the gateway assigns; on every
    /// response, and passed to the upstream.
    pub const TXN_ID: &str = "x-menshen-txn-id";
    /// Verified App_ID, set by the gateway for the upstream only.
    pub const UPSTREAM_APP_ID: &str = "x-menshen-app-id";
    /// API_ID, set by the gateway for the upstream only.
    pub const UPSTREAM_API_ID: &str = "x-menshen-api-id";
    /// U_API_ID, set by the gateway for the upstream only.
    pub const UPSTREAM_U_API_ID: &str = "x-menshen-u-api-id";
    /// To the upstream: the customer the call's consent belongs to (USR-2),
    /// set only by the gateway after the consent check.
    pub const UPSTREAM_CUSTOMER_ID: &str = "x-menshen-customer-id";
    /// To the upstream: the consent the call was made under.
    pub const UPSTREAM_CONSENT_ID: &str = "x-menshen-consent-id";
    /// Prefix of every header the gateway reserves; client copies are stripped.
    pub const RESERVED_PREFIX: &str = "x-menshen-";
    /// On a `RATE_LIMITED` answer (TRF-1): the limit's policy,
    /// draft-ietf-httpapi-ratelimit-headers: `"rule-ID";q=MAX;w=WINDOW_SECS`.
    pub const RATELIMIT_POLICY: &str = "ratelimit-policy";
    /// On a `RATE_LIMITED` answer (TRF-1): the state of the limit,
    /// `"rule-ID";r=REMAINING;t=SECS_TO_RESET`.
    pub const RATELIMIT: &str = "ratelimit";
}

/// Errors in signature or digest headers, as the verifier sees them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A header could not be parsed; says which and why.
    #[error("malformed {header}: {reason}")]
    Malformed {
        /// Header name.
        header: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A required component or parameter is missing from the signature.
    #[error("signature must cover {0}")]
    MissingComponent(String),
    /// Unknown algorithm.
    #[error("unsupported algorithm `{0}`")]
    UnsupportedAlgorithm(String),
    /// A covered component is not present in the message.
    #[error("covered component `{0}` is not in the request")]
    ComponentAbsent(String),
    /// The body does not match its digest.
    #[error("content-digest does not match the body")]
    DigestMismatch,
    /// A dictionary member (a `Content-Digest` algorithm, a signature label)
    /// or a parameter (such as `created`) appears twice in one header. RFC
    /// 8941 would keep the last one and silently drop the first; the profile
    /// refuses the header instead, even when both values are equal.
    #[error("{what} `{key}` appears more than once in {header}")]
    Duplicate {
        /// Header name.
        header: &'static str,
        /// `member` or `parameter`.
        what: &'static str,
        /// The repeated key.
        key: String,
    },
    /// The signature's `expires` is not later than its `created`.
    #[error("`expires` ({expires}) must be later than `created` ({created})")]
    ExpiresNotAfterCreated {
        /// The `created` parameter.
        created: i64,
        /// The `expires` parameter.
        expires: i64,
    },
}

pub(crate) fn malformed(header: &'static str, reason: impl Into<String>) -> ProtocolError {
    ProtocolError::Malformed {
        header,
        reason: reason.into(),
    }
}
