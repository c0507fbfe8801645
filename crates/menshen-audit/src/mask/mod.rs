//! Masking of personal financial information before anything is written
//! (AUD-5, CONF-3), and the ONE list of sensitive keys that both the audit
//! masker and the admin scrubber use.
//!
//! # Numbers in free text ([`mask_text`])
//!
//! Text is read *decoded*: `%XX` escapes (also double-escaped `%25XX`, and
//! multi-byte UTF-8 escapes), `+` as a space, and full-width forms
//! (`６２２８`, `－`, U+3000) count as what they stand for. A *digit run* is a
//! sequence of digits in which up to three separators (space, `-`, `+`,
//! no-break or ideographic space, full-width or Unicode dashes) may stand
//! between two digits, so `6228 4800 1234 5678`, `6228-4800-1234-5678` and
//! `6228 - 4800 - 1234 - 5678` are each one run of 16 digits. By the number of digits `n` in a run:
//!
//! | run | kept | example |
//! |---|---|---|
//! | `n >= 12` (card and account numbers of any length, 20-digit accounts included) | first 6 and last 4 digits | `622848******5678` |
//! | 17 digits followed by `X` (resident ID number with check letter) | first 6, last 3 digits and the `X` | `110105********002X` |
//! | `n == 11` starting `13`..`19` (mainland mobile number) | first 3 and last 4 | `138****5678` |
//! | anything shorter | all | `12345` |
//!
//! A masked run is written in its decoded form (ASCII digits, separators
//! kept), the rest of the text as it was. The rule errs on the side of the
//! log: two dates written next to each other (`2026-11-30 2026-12-31`) make
//! one run of 16 digits and are masked too.
//!
//! # Keys ([`classify_key`])
//!
//! Keys are compared after normalising: lower case, full-width letters as
//! ASCII, `_`, `-`, `.`, `+` and spaces dropped, so `accountName`,
//! `account_name`, `ACCOUNT-NAME` and `account name` are the same key. A key is
//! a [`KeyClass::Secret`] (credentials: passwords, PINs, CVV, OTPs, tokens,
//! private keys), [`KeyClass::Remove`] (other personal information: names,
//! ID numbers, phone numbers, e-mail, expiry dates), [`KeyClass::Mask`]
//! (account and card numbers: first 6 and last 4 digits kept, whatever their
//! length) or [`KeyClass::Keep`].
//!
//! # Shapes
//!
//! JSON ([`mask_json`]), `key=value` text such as form bodies
//! (`pin=1234&pwd=x`), `key: value` lines, quoted pairs of broken JSON and
//! `<key>value</key>` XML ([`mask_pii_text`]), whole bodies by content
//! ([`mask_body`]), header values ([`mask_header_value`]) and admin records
//! ([`scrub_admin_json`]).

mod decode;
mod keys;
mod pairs;
mod text;

use std::borrow::Cow;

use serde_json::Value;

pub use keys::{classify_key, normalize_key, KeyClass};
use keys::{classify_normalized, classify_with};
use pairs::mask_pairs;
pub use text::{mask_account, mask_name, mask_text};

/// Free text that may carry personal data (header values, text and form
/// bodies, JSON string values): the values of sensitive keys in
/// `key=value`, `key: value`, `"key":"value"` and `<key>value</key>` pairs
/// are removed (`***`) or, for account keys, masked; then [`mask_text`].
pub fn mask_pii_text(s: &str) -> String {
    mask_pii_text_with(s, &[])
}

fn mask_pii_text_with(s: &str, extra: &[String]) -> String {
    let p = mask_pairs(s, extra);
    mask_text(&p).into_owned()
}

/// Mask a JSON value for the audit log (AUD-4, AUD-5): values under
/// [`KeyClass::Secret`] and [`KeyClass::Remove`] keys (and the API's own
/// `extra_remove` fields) become `"***"`, values under [`KeyClass::Mask`]
/// keys keep only the first 6 and last 4 digits, and every other string or
/// number goes through [`mask_pii_text`].
pub fn mask_json(v: &Value, extra_remove: &[String]) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let masked = match (classify_with(k, extra_remove), v) {
                        (_, Value::Null) => Value::Null,
                        (KeyClass::Secret | KeyClass::Remove, _) => Value::String("***".into()),
                        (KeyClass::Mask, v) if !v.is_object() => account_value(v),
                        _ => mask_json(v, extra_remove),
                    };
                    (k.clone(), masked)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|x| mask_json(x, extra_remove)).collect()),
        Value::String(s) => Value::String(mask_pii_text_with(s, extra_remove)),
        Value::Number(n) => {
            let s = n.to_string();
            match mask_text(&s) {
                Cow::Borrowed(_) => v.clone(),
                Cow::Owned(m) => Value::String(m),
            }
        }
        other => other.clone(),
    }
}

/// Largest non-JSON body kept (masked) in a record; a longer one is
/// recorded by its length only.
pub const MAX_TEXT_BODY: usize = 64 * 1024;

/// A retained message body as it goes into the record (AUD-4, AUD-5),
/// whatever its shape: empty → `null`; JSON (by parse, whatever the
/// `content_type` says) → [`mask_json`]; `multipart/*` → not retained (its
/// parts cannot be masked reliably); form-encoded, plain or other UTF-8
/// text up to [`MAX_TEXT_BODY`] → a masked string ([`mask_pii_text`], with
/// `extra_remove` keys removed too); anything else → `"<N bytes not
/// retained>"`. Masking never trusts `content_type` to skip a shape: a form
/// sent as `text/plain` is masked as a form.
pub fn mask_body(body: &[u8], content_type: Option<&str>, extra_remove: &[String]) -> Value {
    if body.is_empty() {
        return Value::Null;
    }
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return mask_json(&v, extra_remove);
    }
    let multipart = content_type.is_some_and(|c| {
        c.trim_start()
            .get(..10)
            .is_some_and(|p| p.eq_ignore_ascii_case("multipart/"))
    });
    match std::str::from_utf8(body) {
        Ok(t) if !multipart && t.len() <= MAX_TEXT_BODY => {
            Value::String(mask_pii_text_with(t, extra_remove))
        }
        _ => Value::String(format!("<{} bytes not retained>", body.len())),
    }
}

/// A header value as it goes into the record: removed (`***`) when the
/// header's name (without an `x-` prefix) is a sensitive key, masked as an
/// account number under an account key, else [`mask_pii_text`].
pub fn mask_header_value(name: &str, value: &str) -> String {
    let n = name
        .strip_prefix("x-")
        .or_else(|| name.strip_prefix("X-"))
        .unwrap_or(name);
    match classify_key(n) {
        KeyClass::Secret | KeyClass::Remove => "***".into(),
        KeyClass::Mask => mask_account(value),
        KeyClass::Keep => mask_pii_text(value),
    }
}

/// The value under a [`KeyClass::Mask`] key: strings and numbers through
/// [`mask_account`], arrays element by element; anything else unchanged.
fn account_value(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(mask_account(s)),
        Value::Number(n) => Value::String(mask_account(&n.to_string())),
        Value::Array(a) => Value::Array(a.iter().map(account_value).collect()),
        other => other.clone(),
    }
}

/// An admin request, state or response as it goes into an admin record
/// (ADM-1, AUD-5), by the same key list as the audit masker: values under
/// [`KeyClass::Secret`] keys (`app_secret`, `appSecret`, `private_key_pem`,
/// `token`, `password`, `totp_secret`, ...) and under [`KeyClass::Remove`]
/// keys (a customer's `username`, `display_name`, phone, ID number, ...)
/// become `"***"`; values under [`KeyClass::Mask`] keys (`accounts`) keep
/// the first 6 and last 4 digits; other strings are masked with
/// [`mask_pii_text`], except the platform's own identifiers (other keys
/// ending in `id`: `app_id`, `u_api_id`, `key_id`, `user_id`), which are
/// kept whole. The bare key `name` stays: in the admin plane it names apps
/// and APIs, bank-side objects, not people.
pub fn scrub_admin_json(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let n = normalize_key(&k);
                    let v = match (classify_normalized(&n), v) {
                        (_, Value::Null) => Value::Null,
                        (KeyClass::Secret, _) => Value::String("***".into()),
                        (KeyClass::Remove, _) if n != "name" => Value::String("***".into()),
                        (KeyClass::Mask, v) if !v.is_object() => account_value(&v),
                        (KeyClass::Keep, Value::String(s)) if n.ends_with("id") => Value::String(s),
                        (_, v) => scrub_admin_json(v),
                    };
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(scrub_admin_json).collect()),
        Value::String(s) => Value::String(mask_pii_text(&s)),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aud_5_form_and_text_bodies_are_masked() {
        let form = "pin=1234&pwd=s3cret%21&card=6228+4800+1234+5678&payer_name=%E5%BC%A0%E4%B8%89&amount=10.00";
        let m = mask_pii_text(form);
        for leak in [
            "1234&",
            "s3cret",
            "%E5%BC%A0",
            "4800+1234",
            "6228480012345678",
        ] {
            assert!(!m.contains(leak), "{leak} in {m}");
        }
        assert!(m.contains("pin=***&pwd=***"), "{m}");
        assert!(m.contains("card=6228 48** **** 5678"), "{m}");
        assert!(m.contains("amount=10.00"), "{m}");
        let text = "pin: 1234\naccountName: Zhang San\nPWD=abc pin=9876 note ok";
        let m = mask_pii_text(text);
        for leak in ["1234", "Zhang", "San", "abc", "9876"] {
            assert!(!m.contains(leak), "{leak} in {m}");
        }
        assert!(m.contains("note ok"), "{m}");
        let xml = "<req><payerName>张三</payerName><pin>1234</pin><cardNo>6228480012345678</cardNo></req>";
        let m = mask_pii_text(xml);
        for leak in ["张三", ">1234<", "6228480012345678"] {
            assert!(!m.contains(leak), "{leak} in {m}");
        }
        let broken_json = r#"{"payerName": "张三", "pin":"1234", "#;
        let m = mask_pii_text(broken_json);
        assert!(!m.contains("张三") && !m.contains("1234"), "{m}");
        // Percent-encoded key.
        assert_eq!(mask_pii_text("p%69n=1234"), "p%69n=***");
    }

    #[test]
    fn aud_5_arbitrary_input_never_panics_and_leaves_no_long_digit_run() {
        let alphabet: Vec<char> = "0123456789%+-= :<>\"'&pinaAmeX６２\u{3000}张\\/;,\n%2"
            .chars()
            .collect();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..3000 {
            let len = (x % 80) as usize;
            let mut s = String::new();
            for _ in 0..len {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                s.push(alphabet[(x >> 33) as usize % alphabet.len()]);
            }
            let m = mask_pii_text(&s);
            let _ = mask_account(&s);
            let _ = classify_key(&s);
            // No 12 ASCII digits in a row survive.
            let longest = m
                .split(|c: char| !c.is_ascii_digit())
                .map(str::len)
                .max()
                .unwrap_or(0);
            assert!(longest < 12, "{s:?} -> {m:?}");
        }
        // Hostile shapes stay linear (no timing assert: they just finish).
        let _ = mask_pii_text(&"<a".repeat(30_000));
        let _ = mask_pii_text(&"pin=\"".repeat(20_000));
        let _ = mask_text(&"%25".repeat(20_000));
    }

    #[test]
    fn aud_5_mask_body_by_shape() {
        assert_eq!(mask_body(b"", None, &[]), Value::Null);
        let j = mask_body(
            br#"{"accountName":"x","pin":"1"}"#,
            Some("application/json"),
            &[],
        );
        assert_eq!(j["accountName"], "***");
        let f = mask_body(
            b"pin=1234&nickname=bob",
            Some("text/plain"),
            &["nick_name".into()],
        );
        assert_eq!(f, Value::String("pin=***&nickname=***".into()));
        let mp_body: &[u8] =
            b"--x\r\nContent-Disposition: form-data; name=\"pin\"\r\n\r\n1234\r\n--x--";
        let mp = mask_body(mp_body, Some("Multipart/form-data; boundary=x"), &[]);
        assert_eq!(
            mp,
            Value::String(format!("<{} bytes not retained>", mp_body.len()))
        );
        let big = vec![b'a'; MAX_TEXT_BODY + 1];
        assert_eq!(
            mask_body(&big, None, &[]),
            Value::String(format!("<{} bytes not retained>", big.len()))
        );
    }

    #[test]
    fn aud_5_header_values() {
        assert_eq!(mask_header_value("x-pin", "1234"), "***");
        assert_eq!(mask_header_value("x-account-name", "张三"), "***");
        assert_eq!(
            mask_header_value("x-account", "6228480012345678"),
            "622848******5678"
        );
        assert_eq!(mask_header_value("accept", "text/plain"), "text/plain");
    }

    #[test]
    fn adm_1_aud_5_admin_scrub_uses_the_same_list() {
        let v = serde_json::json!({
            "app_id": "app_12345678901234567890",
            "u_api_id": "0PC103050103000100000200",
            "name": "Demo app",
            "appSecret": "abc",
            "App-Secret": "abc",
            "private_key_pem": "-----BEGIN",
            "token": null,
            "note": "card 6228480012345678",
            "nested": [{"secret": "x"}],
            "username": "zhang.san",
            "display_name": "张三",
            "accounts": ["6228480012345678", "62220202001122334455"],
            "expires_at": 1767225600,
            "totp_secret": "JBSWY3DP",
        });
        let s = scrub_admin_json(v);
        assert_eq!(s["app_id"], "app_12345678901234567890");
        assert_eq!(s["u_api_id"], "0PC103050103000100000200");
        assert_eq!(s["name"], "Demo app");
        assert_eq!(s["appSecret"], "***");
        assert_eq!(s["App-Secret"], "***");
        assert_eq!(s["private_key_pem"], "***");
        assert_eq!(s["token"], Value::Null);
        assert_eq!(s["note"], "card 622848******5678");
        assert_eq!(s["nested"][0]["secret"], "***");
        assert_eq!(s["username"], "***");
        assert_eq!(s["display_name"], "***");
        assert_eq!(
            s["accounts"],
            serde_json::json!(["622848******5678", "622202**********4455"])
        );
        assert_eq!(s["expires_at"], 1767225600);
        assert_eq!(s["totp_secret"], "***");
    }

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

    #[test]
    fn aud_5_camel_case_and_styled_name_keys_in_json() {
        let v = serde_json::json!({
            "accountName": "张三",
            "payerName": "李四",
            "payer_name": "王五",
            "PAYER-NAME": "赵六",
            "toAccount": "62220202001122334455",
            "memo": "pin=4321",
            "tel": "１３８１２３４５６７８",
            "nickname": "bob",
        });
        let s = mask_json(&v, &["nick_name".into()]).to_string();
        for leak in [
            "张三",
            "李四",
            "王五",
            "赵六",
            "62220202001122334455",
            "4321",
            "bob",
        ] {
            assert!(!s.contains(leak), "{leak} in {s}");
        }
        assert!(s.contains("622202**********4455"), "{s}");
    }
}
