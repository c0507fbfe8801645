//! API path patterns such as `/v1/accounts/{account_id}/balance`.

/// Why a path pattern is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathPatternError {
    /// Must start with `/`.
    #[error("must start with `/`, e.g. /v1/products")]
    NoLeadingSlash,
    /// Too long.
    #[error("must be at most 256 characters")]
    TooLong,
    /// A segment has characters outside the allowed set.
    #[error(
        "segment `{0}` may use only A-Z a-z 0-9 - . _ ~ or a whole-segment parameter {{name}}"
    )]
    BadSegment(String),
    /// Empty segment (`//`).
    #[error("must not contain empty segments (`//`)")]
    EmptySegment,
}

/// One segment of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Must equal this text.
    Literal(String),
    /// Matches any one non-empty segment.
    Param(String),
}

/// A parsed path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    segments: Vec<Segment>,
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

impl PathPattern {
    /// Parse a pattern. `/` alone is the root.
    pub fn parse(p: &str) -> Result<Self, PathPatternError> {
        if !p.starts_with('/') {
            return Err(PathPatternError::NoLeadingSlash);
        }
        if p.len() > 256 {
            return Err(PathPatternError::TooLong);
        }
        let mut segments = Vec::new();
        if p == "/" {
            return Ok(PathPattern { segments });
        }
        for seg in p[1..].split('/') {
            if seg.is_empty() {
                return Err(PathPatternError::EmptySegment);
            }
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    return Err(PathPatternError::BadSegment(seg.to_string()));
                }
                segments.push(Segment::Param(name.to_string()));
            } else if seg.bytes().all(unreserved) && seg != "." && seg != ".." {
                segments.push(Segment::Literal(seg.to_string()));
            } else {
                return Err(PathPatternError::BadSegment(seg.to_string()));
            }
        }
        Ok(PathPattern { segments })
    }

    /// The segments.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Number of literal segments (more literals = more specific).
    pub fn specificity(&self) -> usize {
        self.segments
            .iter()
            .filter(|s| matches!(s, Segment::Literal(_)))
            .count()
    }

    /// Whether a request path (no query) matches. Every parameter value must
    /// pass [`param_value_ok`] (decoded, it is valid UTF-8 with no separator,
    /// `..`, control or full-width separator), so a parameter can never
    /// smuggle a traversal to the upstream; a path that fails it matches no
    /// API and is answered `NOT_FOUND` before anything is forwarded.
    pub fn matches(&self, path: &str) -> bool {
        let Some(rest) = path.strip_prefix('/') else {
            return false;
        };
        if self.segments.is_empty() {
            return rest.is_empty();
        }
        let mut parts = rest.split('/');
        for seg in &self.segments {
            let Some(part) = parts.next() else {
                return false;
            };
            match seg {
                Segment::Literal(l) => {
                    if l != part {
                        return false;
                    }
                }
                Segment::Param(_) => {
                    if !param_value_ok(part) {
                        return false;
                    }
                }
            }
        }
        parts.next().is_none()
    }

    /// The value of parameter `name` in `path` (which must match),
    /// percent-decoded; `None` when the path does not match or has no such
    /// parameter.
    pub fn param(&self, path: &str, name: &str) -> Option<String> {
        if !self.matches(path) {
            return None;
        }
        let rest = path.strip_prefix('/')?;
        let (_, raw) = self
            .segments
            .iter()
            .zip(rest.split('/'))
            .find(|(s, _)| matches!(s, Segment::Param(n) if n == name))?;
        let b = raw.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                out.push(hex(*b.get(i + 1)?)? << 4 | hex(*b.get(i + 2)?)?);
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8(out).ok()
    }
}

/// Characters refused in a decoded parameter value besides `/`, `\`, `%`
/// and controls: full-width, small and look-alike forms of `/`, `\` and
/// `.` that a decoder, a normaliser (NFKC) or a best-fit code page downstream
/// could turn into a separator or a traversal.
pub const LOOKALIKE_SEPARATORS: &[char] = &[
    '\u{FF0F}', // FULLWIDTH SOLIDUS
    '\u{FF3C}', // FULLWIDTH REVERSE SOLIDUS
    '\u{FF0E}', // FULLWIDTH FULL STOP
    '\u{FE68}', // SMALL REVERSE SOLIDUS
    '\u{FE52}', // SMALL FULL STOP
    '\u{2215}', // DIVISION SLASH
    '\u{2044}', // FRACTION SLASH
    '\u{29F8}', // BIG SOLIDUS
    '\u{29F5}', // REVERSE SOLIDUS OPERATOR
    '\u{29F9}', // BIG REVERSE SOLIDUS
    '\u{2024}', // ONE DOT LEADER
    '\u{2025}', // TWO DOT LEADER
    '\u{2026}', // HORIZONTAL ELLIPSIS
    '\u{3002}', // IDEOGRAPHIC FULL STOP
    '\u{FF61}', // HALFWIDTH IDEOGRAPHIC FULL STOP
];

/// Whether one path segment is an acceptable value for a parameter (ATK-1: the
/// default parameter pattern): 1-128 bytes of unreserved characters or `%XX`
/// escapes, which percent-decode to valid UTF-8 (no overlong forms such as
/// `%C0%AE`, no surrogates) that contains no `/`, `\`, `%`, control
/// character, full-width or look-alike separator ([`LOOKALIKE_SEPARATORS`])
/// and no `..`, and is not `.`. The value is forwarded as sent, so it must be
/// harmless however the upstream decodes it.
pub fn param_value_ok(v: &str) -> bool {
    if v.is_empty() || v.len() > 128 {
        return false;
    }
    let b = v.as_bytes();
    // Fast path, the common case: no escapes, nothing to decode.
    if !b.contains(&b'%') {
        return b.iter().all(|&c| unreserved(c)) && v != "." && !v.contains("..");
    }
    let mut decoded = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|c| hex(*c)),
                b.get(i + 2).and_then(|c| hex(*c)),
            ) else {
                return false;
            };
            decoded.push(h << 4 | l);
            i += 3;
        } else if unreserved(b[i]) {
            decoded.push(b[i]);
            i += 1;
        } else {
            return false;
        }
    }
    // `from_utf8` refuses overlong encodings, surrogates and stray bytes.
    let Ok(d) = std::str::from_utf8(&decoded) else {
        return false;
    };
    d != "."
        && !d.contains("..")
        && !d.chars().any(|c| {
            c.is_control() || matches!(c, '/' | '\\' | '%') || LOOKALIKE_SEPARATORS.contains(&c)
        })
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_params_and_literals() {
        let p = PathPattern::parse("/v1/accounts/{account_id}/balance").unwrap();
        assert!(p.matches("/v1/accounts/6228480012345678/balance"));
        assert!(!p.matches("/v1/accounts//balance"));
        assert!(!p.matches("/v1/accounts/../balance"));
        assert!(!p.matches("/v1/accounts/a%2Fb/balance"));
        assert!(!p.matches("/v1/accounts/x/balance/extra"));
        assert!(!p.matches("/v1/accounts/x"));
        assert!(p.matches("/v1/accounts/%E5%BC%A0/balance"));
        assert_eq!(p.specificity(), 3);
    }

    #[test]
    fn usr_4_param_values_are_taken_decoded() {
        let p = PathPattern::parse("/v1/accounts/{account_id}/balance").unwrap();
        assert_eq!(
            p.param("/v1/accounts/6222%30001/balance", "account_id")
                .as_deref(),
            Some("62220001")
        );
        assert_eq!(p.param("/v1/accounts/1/balance", "other"), None);
        assert_eq!(p.param("/v1/accounts/1/x", "account_id"), None);
    }

    #[test]
    fn atk_1_path_parameters_that_decode_outside_the_default_pattern_are_refused() {
        let p = PathPattern::parse("/v1/accounts/{account_id}/balance").unwrap();
        for bad in [
            "%C0%AE",             // overlong '.'
            "%C0%AE%C0%AE",       // overlong '..'
            "%C0%AF",             // overlong '/'
            "%E0%80%AE",          // 3-byte overlong '.'
            "..%EF%BC%8Fpriv",    // '..' + FULLWIDTH SOLIDUS
            "%EF%BC%8Fetc",       // FULLWIDTH SOLIDUS
            "a%EF%BC%BCb",        // FULLWIDTH REVERSE SOLIDUS
            "%EF%BC%8E%EF%BC%8E", // FULLWIDTH FULL STOP x2
            "%E2%88%95x",         // DIVISION SLASH
            "a..b",               // '..' inside a segment
            "..",
            ".",
            "%2E",
            "%2e%2E",
            "a%2E.b",
            "a%2Fb",
            "a%5Cb",
            "a%00b",
            "a%0Ab",
            "a%C2%85b",  // NEL (C1 control)
            "a%25b",     // double encoding
            "a%2",       // truncated escape
            "a%G1",      // not hex
            "%FF",       // not UTF-8
            "%ED%A0%80", // surrogate
            "a b",
        ] {
            assert!(!param_value_ok(bad), "{bad} accepted");
            let path = format!("/v1/accounts/{bad}/balance");
            assert!(!p.matches(&path), "{path} matched");
        }
        for good in [
            "6228480012345678",
            "a.b",
            "a-b_c~d",
            "%E5%BC%A0",
            "a%2Eb",
            "%20x",
        ] {
            assert!(param_value_ok(good), "{good} refused");
        }
        assert!(!param_value_ok(&"a".repeat(129)));
    }

    #[test]
    fn root_and_errors() {
        assert!(PathPattern::parse("/").unwrap().matches("/"));
        assert_eq!(
            PathPattern::parse("v1"),
            Err(PathPatternError::NoLeadingSlash)
        );
        assert_eq!(
            PathPattern::parse("/a//b"),
            Err(PathPatternError::EmptySegment)
        );
        assert!(matches!(
            PathPattern::parse("/a/{}"),
            Err(PathPatternError::BadSegment(_))
        ));
        assert!(matches!(
            PathPattern::parse("/a/.."),
            Err(PathPatternError::BadSegment(_))
        ));
        assert!(matches!(
            PathPattern::parse("/a b"),
            Err(PathPatternError::BadSegment(_))
        ));
    }
}
