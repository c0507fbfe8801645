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

    /// Whether a request path (no query) matches. Parameter values must be
    /// non-empty and contain only unreserved characters or `%XX` escapes that do
    /// not decode to `/`, `.` sequences or control characters, so a parameter
    /// can never smuggle a traversal to the upstream.
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
}

fn param_value_ok(v: &str) -> bool {
    if v.is_empty() || v == "." || v == ".." || v.len() > 128 {
        return false;
    }
    let b = v.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            // Only %XX of a harmless byte (not '/', '\\', '.', '%', controls).
            let Some(h) = b.get(i + 1..i + 3) else {
                return false;
            };
            let Ok(hs) = std::str::from_utf8(h) else {
                return false;
            };
            let Ok(byte) = u8::from_str_radix(hs, 16) else {
                return false;
            };
            if byte < 0x20 || matches!(byte, b'/' | b'\\' | b'.' | b'%' | 0x7f) {
                return false;
            }
            i += 3;
        } else if unreserved(b[i]) {
            i += 1;
        } else {
            return false;
        }
    }
    true
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
