//! Card, account, ID and mobile numbers in free text (AUD-5): the digit-run
//! rule of the module documentation.

use std::borrow::Cow;

use super::decode::unit_at;

/// A separator that may stand between two digits of one number.
fn is_sep(c: char) -> bool {
    matches!(
        c,
        ' ' | '-' | '\u{00A0}' | '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{FE63}'
    )
}

/// Most separators that may stand between two digit groups of one number
/// (`6228 - 4800`).
const MAX_SEPS: usize = 3;

/// Where the next digit starts when the text from `i` on is at most
/// `MAX_SEPS - 1` more separators and then a digit (one separator was read).
fn digit_after_seps(s: &str, mut i: usize) -> Option<usize> {
    for _ in 1..MAX_SEPS {
        if i >= s.len() {
            return None;
        }
        let (c, e) = unit_at(s, i);
        if c.is_ascii_digit() {
            return Some(i);
        }
        if !is_sep(c) {
            return None;
        }
        i = e;
    }
    (i < s.len() && unit_at(s, i).0.is_ascii_digit()).then_some(i)
}

/// Mask card, account, ID and mobile numbers in free text (AUD-5), reading
/// it decoded (see the module documentation for the rule). Runs on every
/// request's path: text with no digit, no `%` and no non-ASCII byte is
/// returned borrowed after one scan, and nothing is allocated unless a
/// number is masked.
pub fn mask_text(s: &str) -> Cow<'_, str> {
    if !s
        .bytes()
        .any(|b| b.is_ascii_digit() || b == b'%' || b >= 0x80)
    {
        return Cow::Borrowed(s);
    }
    let len = s.len();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < len {
        let (c, next) = unit_at(s, i);
        if !c.is_ascii_digit() {
            i = next;
            continue;
        }
        // One run: digits, single separators between digits.
        let start = i;
        let mut n = 0usize;
        let (mut d0, mut d1) = ('\0', '\0');
        let mut j = i;
        let mut run_end = i;
        while j < len {
            let (c, e) = unit_at(s, j);
            if c.is_ascii_digit() {
                match n {
                    0 => d0 = c,
                    1 => d1 = c,
                    _ => {}
                }
                n += 1;
                j = e;
                run_end = e;
            } else if let Some(d) = is_sep(c).then(|| digit_after_seps(s, e)).flatten() {
                j = d;
            } else {
                break;
            }
        }
        let id_check_letter =
            n == 17 && run_end < len && matches!(unit_at(s, run_end).0, 'X' | 'x');
        let keep = if id_check_letter {
            Some((6, 3))
        } else if n >= 12 {
            Some((6, 4))
        } else if n == 11 && d0 == '1' && ('3'..='9').contains(&d1) {
            Some((3, 4))
        } else {
            None
        };
        if let Some((first, last)) = keep {
            let o = out.get_or_insert_with(|| String::with_capacity(len));
            o.push_str(&s[copied..start]);
            push_masked(o, s, start, run_end, n, first, last);
            copied = run_end;
        }
        i = run_end;
    }
    match out {
        None => Cow::Borrowed(s),
        Some(mut o) => {
            o.push_str(&s[copied..]);
            Cow::Owned(o)
        }
    }
}

/// Write `s[start..end]` decoded, its digits but the first `first` and the
/// last `last` of `n` replaced by `*`.
fn push_masked(
    o: &mut String,
    s: &str,
    start: usize,
    end: usize,
    n: usize,
    first: usize,
    last: usize,
) {
    let mut k = 0;
    let mut i = start;
    while i < end {
        let (c, e) = unit_at(s, i);
        if c.is_ascii_digit() {
            o.push(if k < first || k + last >= n { c } else { '*' });
            k += 1;
        } else {
            o.push(c);
        }
        i = e;
    }
}

/// A person's name for an app's eyes (CONF-3): the first character kept,
/// every other non-space character `*` (`张三丰` -> `张**`, `李四` -> `李*`,
/// `John Smith` -> `J*** *****`); a one-character name becomes `*`.
pub fn mask_name(s: &str) -> String {
    let s = s.trim();
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return String::new();
    };
    let mut o = String::with_capacity(s.len());
    if chars.clone().next().is_none() {
        o.push('*');
        return o;
    }
    o.push(first);
    o.extend(chars.map(|c| if c.is_whitespace() { c } else { '*' }));
    o
}

/// The value under a [`KeyClass::Mask`](super::KeyClass::Mask) key: decoded, its digits masked
/// whatever their number: 12 or more keep the first 6 and last 4, 5 to 11
/// keep the last 4, 4 or fewer are all masked.
pub fn mask_account(s: &str) -> String {
    let mut n = 0;
    let mut i = 0;
    while i < s.len() {
        let (c, e) = unit_at(s, i);
        n += usize::from(c.is_ascii_digit());
        i = e;
    }
    let (first, last) = match n {
        12.. => (6, 4),
        5..=11 => (0, 4),
        _ => (0, 0),
    };
    let mut o = String::with_capacity(s.len());
    push_masked(&mut o, s, 0, s.len(), n, first, last);
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conf_3_names_keep_their_first_character() {
        assert_eq!(mask_name("张三丰"), "张**");
        assert_eq!(mask_name("李四"), "李*");
        assert_eq!(mask_name("王"), "*");
        assert_eq!(mask_name("John Smith"), "J*** *****");
        assert_eq!(mask_name(""), "");
    }

    #[test]
    fn aud_5_masks_card_numbers_keeps_short_numbers() {
        assert_eq!(
            mask_text("/v1/accounts/6228480012345678/balance"),
            "/v1/accounts/622848******5678/balance"
        );
        assert_eq!(mask_text("/v1/items/12345"), "/v1/items/12345");
        assert_eq!(mask_text("a6222021234567890123b"), "a622202*********0123b");
        assert_eq!(mask_text("中文4111111111111111"), "中文411111******1111");
    }

    #[test]
    fn aud_5_fast_path_borrows() {
        for s in ["/v1/products/list", "/v1/accounts/12345/balance", "/a+b"] {
            assert!(matches!(mask_text(s), Cow::Borrowed(_)), "{s}");
        }
    }

    #[test]
    fn aud_5_percent_encoded_card_in_path_is_masked() {
        let p = "/v1/accounts/%36%32%32%38%34%38%30%30%31%32%33%34%35%36%37%38/balance";
        assert_eq!(mask_text(p), "/v1/accounts/622848******5678/balance");
        // Lower-case hex, mixed with raw digits, and double-escaped.
        assert_eq!(
            mask_text("/a/62%32848%30%30%3123456%37%38"),
            "/a/622848******5678"
        );
        assert_eq!(
            mask_text("/a/%2536%2532%2532%2538480012345678"),
            "/a/622848******5678"
        );
    }

    #[test]
    fn aud_5_phone_numbers_are_masked() {
        assert_eq!(
            mask_text("/v1/users/13812345678/x"),
            "/v1/users/138****5678/x"
        );
        assert_eq!(mask_text("tel 138-1234-5678"), "tel 138-****-5678");
        assert_eq!(mask_text("tel 138 1234 5678"), "tel 138 **** 5678");
        // Not a mobile number: 11 digits starting 12, and 10 digits.
        assert_eq!(mask_text("12812345678"), "12812345678");
        assert_eq!(mask_text("1381234567"), "1381234567");
    }

    #[test]
    fn aud_5_cards_with_spaces_dashes_and_plus_are_masked() {
        assert_eq!(mask_text("6228 4800 1234 5678"), "6228 48** **** 5678");
        assert_eq!(mask_text("6228-4800-1234-5678"), "6228-48**-****-5678");
        assert_eq!(
            mask_text("card=6228+4800+1234+5678"),
            "card=6228 48** **** 5678"
        );
        assert_eq!(
            mask_text("/a/6228%204800%201234%205678"),
            "/a/6228 48** **** 5678"
        );
        // Dates and short groups stay.
        assert_eq!(mask_text("2026-11-30 10:22"), "2026-11-30 10:22");
    }

    #[test]
    fn aud_5_long_account_numbers_are_masked() {
        let a20 = "62220202001122334455";
        assert_eq!(mask_text(a20), "622202**********4455");
        let a32 = "12345678901234567890123456789012";
        assert_eq!(mask_text(a32), format!("123456{}9012", "*".repeat(22)));
        let a40 = "1".repeat(40);
        assert!(mask_text(&a40).contains(&"*".repeat(30)));
    }

    #[test]
    fn aud_5_full_width_digits_are_masked() {
        assert_eq!(
            mask_text("６２２８４８００１２３４５６７８"),
            "622848******5678"
        );
        assert_eq!(mask_text("１３８１２３４５６７８"), "138****5678");
        // Full-width, percent-encoded.
        let enc: String = "６２２８４８００１２３４５６７８"
            .bytes()
            .map(|b| format!("%{b:02X}"))
            .collect();
        assert_eq!(mask_text(&enc), "622848******5678");
    }

    #[test]
    fn aud_5_id_numbers_are_masked() {
        assert_eq!(mask_text("11010519491231002X"), "110105********002X");
        assert_eq!(mask_text("110105194912310021"), "110105********0021");
    }
}
