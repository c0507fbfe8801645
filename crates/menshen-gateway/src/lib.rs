//! The Menshen data plane: a TLS 1.2+/1.3 listener (IPv4 and IPv6), an ordered
//! pipeline of stages (declared once, in [`pipeline`]), a pooled upstream
//! client, and an immutable [`snapshot::Snapshot`] of the catalog swapped
//! atomically when the control plane changes.
#![forbid(unsafe_code)]
// The ban list (clippy.toml): no `unwrap` outside tests (an `expect` names
// its invariant), no printing from a library (tracing instead).
#![deny(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::dbg_macro
)]

pub mod authorizer;
pub mod budget;
pub mod config;
pub mod conn;
pub mod error;
pub mod exchange;
pub mod flow;
pub mod h1scan;
pub mod metrics;
pub mod pipeline;
pub mod record;
pub mod screen;
pub mod server;
pub mod snapshot;
pub mod stages;
pub mod strict_json;
pub mod trace;
pub mod txn;
pub mod upstream;

pub use config::GatewayConfig;
pub use error::{Fault, GatewayError};
pub use server::{Gateway, GatewayHandle};
pub use snapshot::{Snapshot, SnapshotHandle};
