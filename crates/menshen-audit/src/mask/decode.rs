//! Reading text decoded (AUD-5): `%XX` escapes (double-escaped and
//! multi-byte UTF-8 ones too), `+` as a space, full-width forms as ASCII.

use std::borrow::Cow;

/// Full-width ASCII forms (U+FF01..U+FF5E) and the ideographic space as
/// their ASCII counterparts.
pub(super) fn fold(c: char) -> char {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        '\u{3000}' => ' ',
        _ => c,
    }
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn hex2(b: &[u8], k: usize) -> Option<u8> {
    Some(hex(*b.get(k)?)? << 4 | hex(*b.get(k + 1)?)?)
}

/// The byte escaped at `b[i..]` (`b[i] == b'%'`), following `%25XX`
/// (double escaping) to the byte it finally stands for; and where it ends.
fn pct_byte(b: &[u8], i: usize) -> Option<(u8, usize)> {
    let mut v = hex2(b, i + 1)?;
    let mut end = i + 3;
    while v == b'%' {
        match hex2(b, end) {
            Some(x) => {
                v = x;
                end += 2;
            }
            None => break,
        }
    }
    Some((v, end))
}

/// The character escaped at `b[i..]`, possibly over several `%XX` (UTF-8).
fn pct_char(b: &[u8], i: usize) -> Option<(char, usize)> {
    let (first, mut end) = pct_byte(b, i)?;
    let len = match first {
        0x00..=0x7f => return Some((char::from(first), end)),
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return None,
    };
    let mut buf = [first, 0, 0, 0];
    for slot in buf.iter_mut().take(len).skip(1) {
        if b.get(end) != Some(&b'%') {
            return None;
        }
        let (x, e) = pct_byte(b, end)?;
        *slot = x;
        end = e;
    }
    let c = std::str::from_utf8(&buf[..len]).ok()?.chars().next()?;
    Some((c, end))
}

/// The decoded character at byte `i` of `s` (a char boundary) and the byte
/// where the next one starts: `%XX` decoded, `+` as a space, full-width
/// forms as ASCII.
pub(super) fn unit_at(s: &str, i: usize) -> (char, usize) {
    let b = s.as_bytes();
    match b[i] {
        b'%' => match pct_char(b, i) {
            Some((c, end)) => (fold(c), end),
            None => ('%', i + 1),
        },
        b'+' => (' ', i + 1),
        x if x < 0x80 => (char::from(x), i + 1),
        _ => match s[i..].chars().next() {
            Some(c) => (fold(c), i + c.len_utf8()),
            None => ('\u{FFFD}', s.len()),
        },
    }
}

/// `s` decoded as [`unit_at`] reads it.
pub(super) fn decode(s: &str) -> Cow<'_, str> {
    if !s.bytes().any(|b| b == b'%' || b == b'+' || b >= 0x80) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let (c, end) = unit_at(s, i);
        out.push(c);
        i = end;
    }
    Cow::Owned(out)
}
