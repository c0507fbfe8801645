//! CLI output to a reader that has gone (`menshen ... | head`): the command
//! ends quietly with status 0, no panic, no backtrace.

use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_menshen");

#[test]
fn output_to_a_closed_pipe_ends_quietly() {
    let (reader, writer) = std::io::pipe().unwrap();
    // The read end is closed before the command writes anything: its first
    // write fails with EPIPE, every time.
    drop(reader);
    let o = Command::new(BIN)
        .args(["uapi", "decode", "0PC103050103000100000200"])
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "status {:?}: {err}", o.status);
    assert!(!err.contains("panicked"), "{err}");
}
