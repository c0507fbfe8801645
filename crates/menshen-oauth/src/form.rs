//! `application/x-www-form-urlencoded` bodies and queries (RFC 6749
//! section 3.2: parameters without a value are treated as omitted, and a
//! parameter must not be repeated).

use std::collections::HashMap;

/// A parsed form. Repeated names are kept (the consent page's `account`
/// checkboxes); [`Form::one`] refuses a repeated name.
#[derive(Debug, Default, Clone)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

/// Why a form parameter was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormError {
    /// Given more than once.
    Repeated(String),
}

impl Form {
    /// Parse a body or query string (invalid UTF-8 is replaced, never a panic).
    pub fn parse(input: &[u8]) -> Form {
        Form {
            pairs: form_urlencoded::parse(input)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        }
    }

    /// The single non-empty value of `name`; an empty value counts as
    /// absent; a repeated name is an error.
    pub fn one(&self, name: &str) -> Result<Option<&str>, FormError> {
        let mut found: Option<&str> = None;
        for (k, v) in &self.pairs {
            if k == name {
                if found.is_some() {
                    return Err(FormError::Repeated(name.to_string()));
                }
                found = Some(v.as_str());
            }
        }
        Ok(found.filter(|v| !v.is_empty()))
    }

    /// Every non-empty value of `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Whether `name` is present (even empty).
    pub fn has(&self, name: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == name)
    }

    /// As a map of first values (for templates re-filling a form).
    pub fn first_values(&self) -> HashMap<&str, &str> {
        let mut m = HashMap::new();
        for (k, v) in &self.pairs {
            m.entry(k.as_str()).or_insert(v.as_str());
        }
        m
    }
}

/// Build a query string.
pub fn encode(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_refused_empty_is_absent() {
        let f = Form::parse(b"a=1&b=&c=x%20y&a=2&account=1&account=2");
        assert_eq!(f.one("a"), Err(FormError::Repeated("a".into())));
        assert_eq!(f.one("b"), Ok(None));
        assert_eq!(f.one("c"), Ok(Some("x y")));
        assert_eq!(f.all("account"), vec!["1", "2"]);
        assert!(f.has("b"));
        let f = Form::parse(&[0xff, b'=', 0xfe]);
        assert!(f.one("\u{fffd}").is_ok());
    }
}
