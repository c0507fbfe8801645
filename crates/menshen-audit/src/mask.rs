//! Masking of payment account and card numbers in free text (AUD-5): runs of
//! 12-19 digits keep their first 6 and last 4 digits (`622848******1234`).

/// Mask every run of 12 to 19 ASCII digits in `s`.
pub fn mask_text(s: &str) -> std::borrow::Cow<'_, str> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out: Option<String> = None;
    let mut copied = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let len = i - start;
            if (12..=19).contains(&len) {
                let o = out.get_or_insert_with(|| String::with_capacity(s.len()));
                o.push_str(&s[copied..start]);
                o.push_str(&s[start..start + 6]);
                o.extend(std::iter::repeat_n('*', len - 10));
                o.push_str(&s[i - 4..i]);
                copied = i;
            }
        } else {
            i += 1;
        }
    }
    match out {
        None => std::borrow::Cow::Borrowed(s),
        Some(mut o) => {
            o.push_str(&s[copied..]);
            std::borrow::Cow::Owned(o)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
