//! Attack screening of request text (ATK-1): SQL injection, cross-site
//! scripting, path traversal and command injection, on each string *as the
//! bank's systems may read it*.
//!
//! # What one string goes through ([`scan`])
//! 1. Decoding: `%XX` escapes decoded up to three times (so `%2527` and
//!    `%252e%252e%252f` are seen as `'` and `../`), then Unicode NFKC
//!    normalization (`unicode-normalization`), so full-width and
//!    compatibility forms (`＜ｓｃｒｉｐｔ＞`, `．．／`, `％２７`) count as
//!    the ASCII they stand for; after NFKC the escapes are decoded again.
//!    The decoded form is screened, and the raw form as well when it differs.
//! 2. Detectors, cheapest first: a NUL or other control character (a
//!    classic truncation trick) and `../`-style traversal or well-known
//!    system paths ([`shell::traversal`]); shell metacharacters followed by a
//!    command ([`shell::command`]); then libinjection's SQL and HTML5
//!    tokenizers (`libinjectionrs`).
//! 3. Prefilters keep libinjection off text that cannot carry what it
//!    looks for: a string of letters, digits, CJK and `.`, `_`, `:`, `@`
//!    only is done after step 2's traversal check; the SQL tokenizer runs
//!    only on a string with SQL punctuation (quotes, comment and statement
//!    characters, operators, parentheses) or an SQL keyword as a word
//!    (`union`, `select`, `or`, `sleep`, ...); the HTML tokenizer only on one
//!    with `<`, `>`, `=` or a quote. Identifiers, amounts, dates, names and
//!    most free text skip both: this is what keeps screening within the A1
//!    hot path's budget (`tests/screening_cost.rs`).
//!
//! # Why `libinjectionrs`
//! libinjection (the detector inside ModSecurity and many WAFs) classifies
//! a string by the *fingerprint* of its SQL tokens and by an HTML5
//! tokenizer, not by regular expressions, so it has few false positives on
//! free text such as `O'Brien`, `Xi'an` or remarks with quotes and dashes,
//! which the benign corpus checks. `libinjectionrs` is a pure-Rust port
//! (BSD-3-Clause, no `unsafe`, no C build): the alternatives were the C
//! library through FFI (a C build and `unsafe` in the gateway, against the
//! workspace's `forbid(unsafe_code)` spirit) or hand-written regular
//! expressions (the OWASP CRS way: many rules, many false positives on
//! Chinese free text, and a maintenance burden we would own). Its risks,
//! and what we do about them: it is young (0.1, one maintainer, machine
//! translated from C, checked against the C library's own test files and by
//! differential fuzzing, as its README says), so (a) every call runs under
//! `catch_unwind`, and a panic counts as a finding (fail closed, never a
//! crash), (b) the corpora under `testdata/screening/` pin its behaviour,
//! and (c) it sits behind [`scan`], so it can be replaced without touching
//! the stage.

pub mod shell;

use std::borrow::Cow;

use percent_encoding::percent_decode_str;
use unicode_normalization::{is_nfkc_quick, IsNormalized, UnicodeNormalization};

/// What kind of attack a string looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttackClass {
    /// SQL injection (libinjection's SQL fingerprints).
    Sqli,
    /// Cross-site scripting (libinjection's HTML5 tokenizer).
    Xss,
    /// `../`, system paths, NUL or control characters.
    PathTraversal,
    /// Shell metacharacters followed by a command.
    CommandInjection,
}

impl AttackClass {
    /// A short name for records and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            AttackClass::Sqli => "sql injection",
            AttackClass::Xss => "cross-site scripting",
            AttackClass::PathTraversal => "path traversal",
            AttackClass::CommandInjection => "command injection",
        }
    }
}

/// Most percent-decoding rounds (double and triple encoding).
const DECODE_ROUNDS: usize = 3;

/// `s` decoded as the module documentation says: escapes (up to three
/// rounds), NFKC, escapes again.
pub fn decode(s: &str) -> Cow<'_, str> {
    let mut cur = percent_rounds(Cow::Borrowed(s));
    if !cur.is_ascii() && is_nfkc_quick(cur.chars()) != IsNormalized::Yes {
        let n: String = cur.nfkc().collect();
        if n != *cur {
            cur = percent_rounds(Cow::Owned(n));
        }
    }
    cur
}

fn percent_rounds(mut cur: Cow<'_, str>) -> Cow<'_, str> {
    for _ in 0..DECODE_ROUNDS {
        if !cur.contains('%') {
            break;
        }
        let d = percent_decode_str(&cur).decode_utf8_lossy();
        if d == *cur {
            break;
        }
        let d = d.into_owned();
        cur = Cow::Owned(d);
    }
    cur
}

/// Whether `s` has none of the characters the libinjection step needs
/// (see the module documentation, step 3).
fn plain(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | ':' | '@'))
}

/// The first attack class `s` looks like, after decoding; `None` if clean.
pub fn scan(s: &str) -> Option<AttackClass> {
    if s.is_empty() {
        return None;
    }
    let d = decode(s);
    let found = scan_decoded(&d);
    if found.is_some() || matches!(d, Cow::Borrowed(_)) {
        return found;
    }
    scan_decoded(s)
}

fn scan_decoded(s: &str) -> Option<AttackClass> {
    if shell::traversal(s) {
        return Some(AttackClass::PathTraversal);
    }
    if plain(s) {
        return None;
    }
    if shell::command(s) {
        return Some(AttackClass::CommandInjection);
    }
    if script_url(s) {
        return Some(AttackClass::Xss);
    }
    let b = s.as_bytes();
    // A panic in the detector is a finding: fail closed, never crash.
    if b.iter().any(|c| SQL_META.contains(c)) || has_sql_keyword(b) {
        let sqli = std::panic::catch_unwind(|| libinjectionrs::detect_sqli(b).is_injection())
            .unwrap_or(true);
        if sqli {
            return Some(AttackClass::Sqli);
        }
    }
    if b.iter().any(|c| HTML_META.contains(c)) {
        let xss = std::panic::catch_unwind(|| libinjectionrs::detect_xss(b).is_injection())
            .unwrap_or(true);
        if xss {
            return Some(AttackClass::Xss);
        }
    }
    None
}

/// Characters an SQL injection needs one of unless it is made of keywords
/// alone (quotes, comments, statement and expression punctuation).
const SQL_META: &[u8] = b"'\"`;#()=<>|&*/\\-+!~^%,";

/// Characters an HTML or attribute injection needs one of (a tag, an
/// attribute value, a quote to leave one).
const HTML_META: &[u8] = b"<>='\"`";

/// SQL words that can make an injection without punctuation
/// (`1 union select 1`, `1 or 1`), compared in ASCII lower case.
const SQL_KEYWORDS: &[&[u8]] = &[
    b"and",
    b"benchmark",
    b"case",
    b"cast",
    b"char",
    b"concat",
    b"convert",
    b"declare",
    b"delete",
    b"drop",
    b"exec",
    b"execute",
    b"from",
    b"group",
    b"having",
    b"insert",
    b"into",
    b"like",
    b"limit",
    b"not",
    b"null",
    b"or",
    b"order",
    b"select",
    b"sleep",
    b"union",
    b"update",
    b"waitfor",
    b"when",
    b"where",
    b"xor",
];

/// Whether an ASCII word of `b` is one of [`SQL_KEYWORDS`].
fn has_sql_keyword(b: &[u8]) -> bool {
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_alphabetic() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
            i += 1;
        }
        let w = &b[start..i];
        if w.len() <= 9 && SQL_KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(w)) {
            return true;
        }
    }
    false
}

/// A `javascript:`, `vbscript:` or `data:text/html` URL (spaces and case
/// ignored): harmless as text, script when a page puts it in a link, and
/// outside libinjection's HTML contexts.
fn script_url(s: &str) -> bool {
    let mut it = s.bytes().filter(|b| !b.is_ascii_whitespace());
    let mut head = [0u8; 14];
    let mut n = 0;
    for b in it.by_ref().take(14) {
        head[n] = b.to_ascii_lowercase();
        n += 1;
    }
    let head = &head[..n];
    head.starts_with(b"javascript:")
        || head.starts_with(b"vbscript:")
        || head.starts_with(b"data:text/html")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atk_1_decoding_sees_through_double_encoding_and_full_width_forms() {
        assert_eq!(decode("%2527"), "'");
        assert_eq!(decode("%252e%252e%252f"), "../");
        assert_eq!(decode("．．／"), "../");
        assert_eq!(decode("％２７"), "'");
        assert_eq!(decode("＜ｓｃｒｉｐｔ＞"), "<script>");
        assert!(matches!(decode("plain-text 123"), Cow::Borrowed(_)));
        assert_eq!(decode("100%"), "100%");
    }

    #[test]
    fn atk_1_each_class_is_found() {
        assert_eq!(scan("1' OR '1'='1"), Some(AttackClass::Sqli));
        assert_eq!(scan("1%27%20OR%20%271%27%3D%271"), Some(AttackClass::Sqli));
        assert_eq!(scan("<script>alert(1)</script>"), Some(AttackClass::Xss));
        assert_eq!(
            scan("..%252f..%252fetc%252fpasswd"),
            Some(AttackClass::PathTraversal)
        );
        assert_eq!(scan("a && whoami"), Some(AttackClass::CommandInjection));
        assert_eq!(scan("张三"), None);
        assert_eq!(scan("Xi'an"), None);
    }
}
