//! The SDK's errors.

/// Errors of the SDK.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SdkError {
    /// Bad URL.
    #[error("invalid URL: {0}")]
    Url(String),
    /// CA file problem.
    #[error("CA certificate: {0}")]
    Ca(String),
    /// TLS setup failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// Signing failed.
    #[error("signing: {0}")]
    Sign(String),
    /// Network or HTTP error.
    #[error("HTTP: {0}")]
    Http(String),
    /// No credentials configured.
    #[error("no credentials configured")]
    NoCredentials,
    /// A key could not be read.
    #[error("key: {0}")]
    Key(String),
    /// A field envelope could not be made or opened (docs/protocol.md §12).
    #[error("field envelope: {0}")]
    Envelope(String),
    /// The bank's response signature is missing or does not verify.
    #[error("response signature: {0}")]
    ResponseSignature(String),
    /// A notice's signature (docs/protocol.md section 13) is missing or
    /// does not verify.
    #[error("notice signature: {0}")]
    NoticeSignature(String),
}
