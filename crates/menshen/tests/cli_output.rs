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

/// `menshen totp FILE` (issue 11) to a closed pipe: the same quiet end; and
/// its output is the 6-digit code alone.
#[test]
fn usr_1_totp_prints_six_digits_and_ends_quietly_on_a_closed_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("secret");
    // RFC 6238 Appendix B's SHA1 key, base32.
    std::fs::write(&f, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n").unwrap();
    let o = Command::new(BIN).arg("totp").arg(&f).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let code = String::from_utf8_lossy(&o.stdout);
    let code = code.trim_end_matches('\n');
    assert!(
        code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()),
        "{code:?}"
    );
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let o = Command::new(BIN)
        .arg("totp")
        .arg(&f)
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "status {:?}: {err}", o.status);
    assert!(!err.contains("panicked"), "{err}");
}
