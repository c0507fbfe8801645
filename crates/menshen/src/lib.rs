//! The `menshen` binary's library: configuration, node assembly (gateway +
//! admin API on one store), the demo, and the CLI commands.
#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod demo;
pub mod node;
pub mod pki;
