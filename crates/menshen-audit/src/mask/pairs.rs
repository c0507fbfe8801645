//! Values of sensitive keys in `key=value`, `key: value`, `"key":"value"`
//! and `<key>value</key>` text (AUD-5).

use std::borrow::Cow;

use super::keys::{classify_with, KeyClass};
use super::text::mask_account;

/// Where an unquoted value after `=` (or, with `line`, after `:`) ends.
fn value_end(s: &str, from: usize, line: bool) -> usize {
    s[from..]
        .char_indices()
        .find(|&(_, c)| match c {
            '&' | ';' | ',' | '\n' | '\r' | '}' | ']' | '<' | '"' => true,
            ' ' | '\t' => !line,
            _ => false,
        })
        .map_or(s.len(), |(k, _)| from + k)
}

fn is_key_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '%' | '+')
}

/// Mask the values of sensitive keys in `key=value` text (form bodies,
/// query strings, `pin=1234 pwd=x`), `key: value` lines, quoted pairs
/// (`"pin":"1234"` of JSON that did not parse) and `<key>value</key>`.
pub(super) fn mask_pairs<'a>(s: &'a str, extra: &[String]) -> Cow<'a, str> {
    if !s
        .bytes()
        .any(|b| matches!(b, b'=' | b':' | b'>') || b >= 0x80)
    {
        return Cow::Borrowed(s);
    }
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < s.len() {
        let Some(c) = s[i..].chars().next() else {
            break;
        };
        if !is_key_char(c) {
            i += c.len_utf8();
            continue;
        }
        let key_start = i;
        let key_end = s[i..]
            .char_indices()
            .find(|&(_, c)| !is_key_char(c))
            .map_or(s.len(), |(k, _)| i + k);
        i = key_end;
        let rest = &s[key_end..];
        let xml = key_start > 0 && s.as_bytes()[key_start - 1] == b'<';
        // Where the value starts, and whether it runs to the end of the line.
        // `<key>` only (no attributes): looking further for the `>` would
        // make hostile text quadratic.
        let (vstart, line) = if xml {
            if !rest.starts_with('>') {
                continue;
            }
            (key_end + 1, true)
        } else {
            let t = rest.trim_start_matches(['"', '\'']);
            let t2 = t.trim_start_matches([' ', '\t']);
            let Some(op) = t2
                .chars()
                .next()
                .filter(|c| matches!(c, '=' | ':' | '：' | '＝'))
            else {
                continue;
            };
            let after = &t2[op.len_utf8()..];
            let after_ws = after.trim_start_matches([' ', '\t']);
            (s.len() - after_ws.len(), op != '=' && op != '＝')
        };
        let class = classify_with(&s[key_start..key_end], extra);
        if class == KeyClass::Keep {
            continue;
        }
        let (vs, ve) = if xml {
            (
                vstart,
                s[vstart..].find('<').map_or(s.len(), |k| vstart + k),
            )
        } else {
            match s[vstart..].chars().next() {
                Some(q @ ('"' | '\'')) => {
                    let from = vstart + 1;
                    let mut end = s.len();
                    let mut esc = false;
                    for (k, c) in s[from..].char_indices() {
                        if esc {
                            esc = false;
                        } else if c == '\\' {
                            esc = true;
                        } else if c == q {
                            end = from + k;
                            break;
                        }
                    }
                    (from, end)
                }
                _ => (vstart, value_end(s, vstart, line)),
            }
        };
        if ve <= vs {
            continue;
        }
        let masked = match class {
            KeyClass::Mask => mask_account(&s[vs..ve]),
            _ => "***".to_string(),
        };
        let o = out.get_or_insert_with(|| String::with_capacity(s.len()));
        o.push_str(&s[copied..vs]);
        o.push_str(&masked);
        copied = ve;
        i = ve;
    }
    match out {
        None => Cow::Borrowed(s),
        Some(mut o) => {
            o.push_str(&s[copied..]);
            Cow::Owned(o)
        }
    }
}
