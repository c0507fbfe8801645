//! The `menshen` binary's library: configuration, node assembly (gateway +
//! admin API on one store), the demo, and the CLI commands.
#![forbid(unsafe_code)]

/// `println!` for a command's output: when the reader has gone
/// (`menshen audit search | head`), the command ends quietly with status 0
/// instead of panicking on the broken pipe; any other write error ends it
/// with status 1 and a message.
#[macro_export]
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($t)*) {
            // The CLI's reader went away (or the terminal broke): nothing
            // of the CLI is left to flush, so ending here is what a shell
            // tool does (clippy.toml bans `exit` elsewhere).
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                #[allow(clippy::disallowed_methods)]
                std::process::exit(0);
            }
            eprintln!("error: cannot write the output: {e}");
            #[allow(clippy::disallowed_methods)]
            std::process::exit(1);
        }
    }};
}

pub mod cli;
pub mod config;
pub mod demo;
pub mod demo_cluster;
pub mod localsvc;
pub mod node;
pub mod pki;
