//! Menshen SDK for application parties (应用方): sign requests per the Menshen
//! protocol (RFC 9421 signatures, RFC 9530 `Content-Digest`), send them over
//! TLS to the bank's gateway, and read the uniform error body.
//!
//! ```no_run
//! # async fn demo() -> Result<(), menshen_sdk::SdkError> {
//! use menshen_sdk::{Client, Credentials};
//! let creds = Credentials::hmac_sm3("app_0123", b"the App_Secret".to_vec());
//! let client = Client::builder("https://127.0.0.1:8443")?
//!     .ca_pem_file("ca.pem")?
//!     .credentials(creds)
//!     .build()?;
//! let resp = client.call("GET", "/v1/products", None).await?;
//! println!("{} {}", resp.status, String::from_utf8_lossy(&resp.body));
//! # Ok(()) }
//! ```
//!
//! The source is split by role (credentials, signing, verification of the
//! bank's responses, transport, the client); everything is re-exported here.
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

mod client;
mod credentials;
mod envelope;
mod error;
pub mod loopback;
pub mod notice;
mod oauth;
mod sign;
mod transport;
mod verify;

pub use menshen_protocol;

pub use client::{Client, ClientBuilder};
pub use credentials::Credentials;
pub use envelope::{open_response_fields, seal_request_fields, BankEncryptionKey};
pub use error::SdkError;
pub use oauth::{AuthorizationRequest, OAuthError, OAuthResult, ParResponse, Pkce, TokenResponse};
pub use sign::{sign_request, SignOptions};
pub use transport::{http_client, http_client_with_identity, send, HttpClient, Response};
pub use verify::verify_response;
