//! Repeated keys in RFC 8941 dictionaries, which the parser hides.
//!
//! RFC 8941 (sections 4.2.2 and 4.2.3.2) resolves a repeated dictionary key or
//! a repeated parameter key by keeping the last value, and sfv does exactly
//! that: `sm3=:A:, sm3=:B:` parses as `sm3=:B:` and `created=1;created=2` as
//! `created=2`. A proxy, an upstream or a log reader that reads the header
//! another way may act on the value the gateway never looked at, so the
//! profile refuses any repeat. The parsed value cannot show one, hence this
//! scan of the raw text.

use crate::{malformed, ProtocolError};

/// The member keys of the dictionary `value`, in order, after checking that
/// no member key repeats and that no parameter key repeats within one set of
/// parameters (a member's, an inner list's, or an item's inside an inner
/// list). `value` must already have parsed with
/// `sfv::Parser::parse_dictionary`; anything else is refused as malformed.
pub(crate) fn unique_members<'a>(
    header: &'static str,
    value: &'a str,
) -> Result<Vec<&'a str>, ProtocolError> {
    let mut sc = Scan {
        s: value.as_bytes(),
        i: 0,
        header,
    };
    let mut members: Vec<&'a str> = Vec::new();
    sc.skip(|b| b == b' ');
    while sc.peek().is_some() {
        let key = sc.key()?;
        if members.contains(&key) {
            return Err(ProtocolError::Duplicate {
                header,
                what: "member",
                key: key.to_string(),
            });
        }
        members.push(key);
        if sc.eat(b'=') {
            if sc.eat(b'(') {
                sc.inner_list()?;
            } else {
                sc.item()?;
            }
        } else {
            sc.params()?;
        }
        sc.skip(|b| b == b' ' || b == b'\t');
        if sc.peek().is_none() {
            break;
        }
        if !sc.eat(b',') {
            return Err(sc.bad());
        }
        sc.skip(|b| b == b' ' || b == b'\t');
        if sc.peek().is_none() {
            return Err(sc.bad());
        }
    }
    Ok(members)
}

struct Scan<'a> {
    s: &'a [u8],
    i: usize,
    header: &'static str,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        if hit {
            self.i += 1;
        }
        hit
    }

    fn skip(&mut self, f: impl Fn(u8) -> bool) {
        while self.peek().is_some_and(&f) {
            self.i += 1;
        }
    }

    fn bad(&self) -> ProtocolError {
        malformed(self.header, "not a structured-field dictionary")
    }

    /// `key = ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" )`
    fn key(&mut self) -> Result<&'a str, ProtocolError> {
        let start = self.i;
        if !self
            .peek()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'*')
        {
            return Err(self.bad());
        }
        self.skip(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.' | b'*')
        });
        std::str::from_utf8(&self.s[start..self.i]).map_err(|_| self.bad())
    }

    /// After the `(`: items separated by spaces, `)`, then parameters.
    fn inner_list(&mut self) -> Result<(), ProtocolError> {
        loop {
            self.skip(|b| b == b' ');
            if self.eat(b')') {
                return self.params();
            }
            if self.peek().is_none() {
                return Err(self.bad());
            }
            self.item()?;
        }
    }

    fn item(&mut self) -> Result<(), ProtocolError> {
        self.bare_item()?;
        self.params()
    }

    /// `*( ";" *SP key [ "=" bare-item ] )`, each key at most once.
    fn params(&mut self) -> Result<(), ProtocolError> {
        let mut seen: Vec<&'a str> = Vec::new();
        while self.eat(b';') {
            self.skip(|b| b == b' ');
            let key = self.key()?;
            if seen.contains(&key) {
                return Err(ProtocolError::Duplicate {
                    header: self.header,
                    what: "parameter",
                    key: key.to_string(),
                });
            }
            seen.push(key);
            if self.eat(b'=') {
                self.bare_item()?;
            }
        }
        Ok(())
    }

    /// Skip an integer, decimal, string, token, byte sequence or boolean.
    fn bare_item(&mut self) -> Result<(), ProtocolError> {
        match self.peek().ok_or_else(|| self.bad())? {
            b'"' => {
                self.i += 1;
                loop {
                    match self.peek().ok_or_else(|| self.bad())? {
                        b'\\' => self.i += 2,
                        b'"' => {
                            self.i += 1;
                            return Ok(());
                        }
                        _ => self.i += 1,
                    }
                }
            }
            b':' => {
                self.i += 1;
                self.skip(|b| b != b':');
                if self.eat(b':') {
                    Ok(())
                } else {
                    Err(self.bad())
                }
            }
            b'?' => {
                self.i += 1;
                if self.eat(b'0') || self.eat(b'1') {
                    Ok(())
                } else {
                    Err(self.bad())
                }
            }
            b'-' | b'0'..=b'9' => {
                self.i += 1;
                self.skip(|b| b.is_ascii_digit() || b == b'.');
                Ok(())
            }
            b if b.is_ascii_alphabetic() || b == b'*' => {
                self.skip(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&b));
                Ok(())
            }
            _ => Err(self.bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sfv::Parser;

    /// What the scan relies on, and why it exists: sfv keeps only the last
    /// of repeated keys, at the first one's position.
    #[test]
    fn sfv_keeps_only_the_last_repeat() {
        let d = Parser::parse_dictionary(b"a=1, b=2, a=3").unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d.keys().collect::<Vec<_>>(), ["a", "b"]);
        let sfv::ListEntry::Item(a) = &d["a"] else {
            panic!()
        };
        assert_eq!(a.bare_item, sfv::BareItem::Integer(3));
        let d = Parser::parse_dictionary(b"s=();x=1;y=2;x=3").unwrap();
        let sfv::ListEntry::InnerList(il) = &d["s"] else {
            panic!()
        };
        assert_eq!(il.params.len(), 2);
        assert_eq!(il.params["x"], sfv::BareItem::Integer(3));
    }

    /// On dictionaries without repeats, the scan finds exactly the members
    /// sfv finds, whatever their values hide (commas and semicolons in
    /// strings, colons in tokens, `=` in byte sequences).
    #[test]
    fn scan_agrees_with_sfv() {
        for input in [
            "",
            "  sm3=:+6UOjzDYerpZPDf0+/GbVSmvUiLQNGF+CZzlE6nGU8Y=:  ",
            "sm3=:AA==:, sha-256=:AA==:;p=1",
            "a=\"x, a=1; b=\\\"(\", b=:YWI=:, c=tok:/x;p=\"; ;\";q, d=?1, e=(1 -2.5 \"s;t\" :AA==:;k=?0 tok);q=*t, f;g=1, *h=-3",
            "a=1\t,\tb=2 ,c=3",
            r#"sig1=("@status" "content-digest";req "@method";req "x";key="a-b");tag=tok;f=?0;t;b=:AAE=:;d=1.5;s="q\"\\""#,
            "sig1=(   \"@method\"   \"content-digest\" );created=1796006374;expires=1796006400",
            "x=(), y=( ), z=();a",
        ] {
            let ours = unique_members("h", input).unwrap_or_else(|e| panic!("{input}: {e}"));
            let dict = Parser::parse_dictionary(input.as_bytes()).unwrap();
            let theirs: Vec<&str> = dict.keys().map(|k| k.as_str()).collect();
            assert_eq!(ours, theirs, "{input}");
        }
    }

    #[test]
    fn scan_finds_every_repeat() {
        for (input, what, key) in [
            ("sm3=:AA==:, sm3=:AA==:", "member", "sm3"),
            ("sm3, sm3=:AA==:", "member", "sm3"),
            ("a=\"a=1\", b=2, a=3", "member", "a"),
            ("a=1;p;p=2", "parameter", "p"),
            ("a;p=\";p\";p", "parameter", "p"),
            ("s=(\"x\";k=1;k=2);k=3", "parameter", "k"),
            (
                "s=(1 2);created=1;nonce=\"n\";created=1",
                "parameter",
                "created",
            ),
        ] {
            assert_eq!(
                unique_members("h", input),
                Err(ProtocolError::Duplicate {
                    header: "h",
                    what,
                    key: key.into()
                }),
                "{input}"
            );
        }
        // The same key at different levels is not a repeat.
        assert!(unique_members("h", "k=(\"x\";k=1 \"y\";k=2);k=3").is_ok());
    }

    /// Text sfv would refuse is refused here too, never a panic.
    #[test]
    fn scan_survives_garbage() {
        for input in [
            "((", "a=\"open", "a=:AA", "a=?", "a=1,", "A=1", "a=(1", "a=\"\\",
        ] {
            assert!(unique_members("h", input).is_err(), "{input}");
        }
    }
}
