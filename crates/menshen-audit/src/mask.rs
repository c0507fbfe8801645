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

/// Keys whose values are personal financial information removed outright
/// (AUD-5: "other personal financial information not at all").
const REMOVE_KEYS: &[&str] = &[
    "password",
    "passwd",
    "pin",
    "cvv",
    "cvv2",
    "cvn",
    "expiry",
    "expiry_date",
    "exp_date",
    "valid_thru",
    "id_number",
    "id_no",
    "idcard",
    "id_card",
    "certificate_no",
    "name",
    "full_name",
    "customer_name",
    "account_name",
    "payer_name",
    "payee_name",
    "phone",
    "mobile",
    "phone_number",
    "mobile_no",
    "otp",
    "sms_code",
    "secret",
    "app_secret",
    "token",
    "access_token",
];

/// Mask a JSON value for the audit log (AUD-4, AUD-5): values under
/// personal-information keys (names, ID numbers, phone numbers, passwords,
/// CVV, expiry dates, secrets, plus `extra_remove`) are replaced by `"***"`;
/// in every other string, card/account numbers keep only their first 6 and
/// last 4 digits, and 18-character ID numbers and 11-digit mobile numbers are
/// masked by [`mask_pii_text`].
pub fn mask_json(v: &serde_json::Value, extra_remove: &[String]) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let lk = k.to_ascii_lowercase();
                    let remove = REMOVE_KEYS.contains(&lk.as_str())
                        || extra_remove.iter().any(|e| e.eq_ignore_ascii_case(k));
                    (
                        k.clone(),
                        if remove && !v.is_null() {
                            Value::String("***".into())
                        } else {
                            mask_json(v, extra_remove)
                        },
                    )
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|x| mask_json(x, extra_remove)).collect()),
        Value::String(s) => Value::String(mask_pii_text(s)),
        Value::Number(n) => {
            let s = n.to_string();
            let m = mask_pii_text(&s);
            if m == s {
                v.clone()
            } else {
                Value::String(m)
            }
        }
        other => other.clone(),
    }
}

/// [`mask_text`] plus 18-character resident ID numbers (17 digits and a digit
/// or X: first 6 and last 4 kept) and 11-digit mainland mobile numbers
/// (first 3 and last 4 kept).
pub fn mask_pii_text(s: &str) -> String {
    let s = mask_text(s).into_owned();
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() && (i == 0 || !b[i - 1].is_ascii_alphanumeric()) {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let mut end = i;
            // 17 digits + X (ID number with check letter).
            if end - start == 17 && end < b.len() && (b[end] == b'X' || b[end] == b'x') {
                end += 1;
                i = end;
            }
            let run = &s[start..end];
            let len = end - start;
            if len == 11 && run.starts_with('1') {
                out.push_str(&run[..3]);
                out.push_str("****");
                out.push_str(&run[7..]);
            } else if len == 18 && !run.contains('*') {
                out.push_str(&run[..6]);
                out.push_str("********");
                out.push_str(&run[14..]);
            } else {
                out.push_str(run);
            }
        } else {
            let ch = s[i..].chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

#[cfg(test)]
mod pii_tests {
    use super::*;

    #[test]
    fn aud_4_aud_5_json_masking() {
        let v = serde_json::json!({
            "from_account": "6222020200112233445",
            "card": 4111111111111111u64,
            "name": "张三",
            "id_number": "11010519491231002X",
            "note": "call 13812345678 re ID 11010519491231002X",
            "amount": "100.00",
            "cvv": "123",
            "nested": [{"phone": "13812345678"}],
        });
        let m = mask_json(&v, &[]);
        let s = m.to_string();
        for leak in [
            "6222020200112233445",
            "4111111111111111",
            "张三",
            "11010519491231002X",
            "13812345678",
            "\"123\"",
        ] {
            assert!(!s.contains(leak), "{leak} in {s}");
        }
        assert_eq!(m["from_account"], "622202*********3445");
        assert_eq!(m["amount"], "100.00");
        assert!(s.contains("138****5678"), "{s}");
        assert!(s.contains("110105") && s.contains("002X"), "{s}");
    }
}
