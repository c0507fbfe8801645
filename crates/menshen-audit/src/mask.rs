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
//! kept), the rest of the text as it was.
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

use std::borrow::Cow;

use serde_json::Value;

/// What to do with the value under a key (one list for the audit log and the
/// admin records, AUD-5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyClass {
    /// Other personal information (names, ID and phone numbers, e-mail,
    /// expiry dates): removed from the audit log (`"***"`).
    Remove,
    /// An account or card number: first 6 and last 4 digits kept.
    Mask,
    /// A credential (password, PIN, CVV, OTP, token, secret, private key):
    /// removed everywhere, the admin records included.
    Secret,
    /// Anything else: free-text masking only.
    Keep,
}

/// Credentials, normalised (see [`normalize_key`]): exact names.
const SECRET_EXACT: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "pass",
    "passcode",
    "passphrase",
    "pin",
    "pincode",
    "secret",
    "token",
    "otp",
    "cvv",
    "cvv2",
    "cvc",
    "cvc2",
    "cvn",
    "cvn2",
    "smscode",
    "verifycode",
    "verificationcode",
    "apikey",
    "masterkey",
    "authorization",
    "cookie",
    "密码",
    "验证码",
];

/// Credentials, normalised: suffixes (`paypin`, `appsecret`, `accesstoken`,
/// `privatekeypem`, ...).
const SECRET_SUFFIX: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "pin",
    "secret",
    "token",
    "otp",
    "cvv",
    "cvv2",
    "cvn",
    "smscode",
    "privatekey",
    "privatekeypem",
    "密码",
    "验证码",
];

/// Who a `...name` key names when it names a person (`payername`,
/// `accountname`, `cardholdername`, ...). A bare `name` is a person too.
const PERSON_NAME_PREFIX: &[&str] = &[
    "full",
    "real",
    "first",
    "last",
    "middle",
    "given",
    "family",
    "sur",
    "nick",
    "legal",
    "account",
    "acct",
    "acc",
    "payer",
    "payee",
    "customer",
    "cust",
    "holder",
    "cardholder",
    "accountholder",
    "beneficiary",
    "recipient",
    "receiver",
    "sender",
    "remitter",
    "debtor",
    "creditor",
    "client",
    "person",
    "contact",
    "user",
    "member",
    "applicant",
    "borrower",
    "spouse",
    "cn",
    "en",
    "chinese",
    "english",
    "legalperson",
];

/// Other personal information, normalised: parts that make a key personal.
const REMOVE_CONTAINS: &[&str] = &[
    "phone",
    "mobile",
    "email",
    "idcard",
    "idno",
    "idnumber",
    "idnum",
    "identity",
    "certno",
    "certnum",
    "certificateno",
    "certificatenumber",
    "passport",
    "nationalid",
    "residentid",
    "expir",
    "expdate",
    "validthru",
    "姓名",
    "户名",
    "手机",
    "电话",
    "身份证",
    "证件号",
    "有效期",
];

/// Other personal information, normalised: exact names.
const REMOVE_EXACT: &[&str] = &[
    "name",
    "tel",
    "telno",
    "msisdn",
    "ssn",
    "address",
    "homeaddress",
    "addr",
    "birthday",
    "birthdate",
    "dateofbirth",
    "dob",
    "收款人",
    "付款人",
    "地址",
];

/// Account and card numbers, normalised: suffixes (`fromaccount`,
/// `payeracctno`, `cardnumber`, `accountid`, ...).
const MASK_SUFFIX: &[&str] = &[
    "account",
    "accountno",
    "accountnumber",
    "accountnum",
    "accountid",
    "acct",
    "acctno",
    "acctnum",
    "accno",
    "accnum",
    "cardno",
    "cardnumber",
    "cardnum",
    "cardpan",
    "bankcard",
    "iban",
    "账号",
    "卡号",
    "账户",
];

/// Account and card numbers, normalised: exact names.
const MASK_EXACT: &[&str] = &["card", "pan", "acc"];

/// A key as it is compared: lower case, full-width letters as ASCII, and no
/// `_`, `-`, `.`, `+` or spaces (`PAYER-NAME`, `payer_name` and `payerName`
/// all become `payername`).
pub fn normalize_key(k: &str) -> String {
    k.chars()
        .map(fold)
        .filter(|c| !matches!(c, '_' | '-' | '.' | '+' | ' ' | '\t'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The class of a key (AUD-5): matched case- and style-insensitively (see
/// [`normalize_key`]); percent-escapes in the key are decoded first.
pub fn classify_key(k: &str) -> KeyClass {
    classify_normalized(&normalize_key(&decode(k)))
}

fn classify_normalized(n: &str) -> KeyClass {
    if n.is_empty() {
        return KeyClass::Keep;
    }
    if SECRET_EXACT.contains(&n) || SECRET_SUFFIX.iter().any(|s| n.ends_with(s)) {
        return KeyClass::Secret;
    }
    let person_name = n
        .strip_suffix("name")
        .is_some_and(|p| p.is_empty() || PERSON_NAME_PREFIX.contains(&p));
    if person_name || REMOVE_EXACT.contains(&n) || REMOVE_CONTAINS.iter().any(|s| n.contains(s)) {
        return KeyClass::Remove;
    }
    if MASK_EXACT.contains(&n) || MASK_SUFFIX.iter().any(|s| n.ends_with(s)) {
        return KeyClass::Mask;
    }
    KeyClass::Keep
}

/// The class of `k` for the audit log, with the API's own `mask_fields`
/// (`extra`, normalised the same way) removed as well.
fn classify_with(k: &str, extra: &[String]) -> KeyClass {
    let n = normalize_key(&decode(k));
    match classify_normalized(&n) {
        KeyClass::Keep | KeyClass::Mask if extra.iter().any(|e| normalize_key(e) == n) => {
            KeyClass::Remove
        }
        c => c,
    }
}

/// Full-width ASCII forms (U+FF01..U+FF5E) and the ideographic space as
/// their ASCII counterparts.
fn fold(c: char) -> char {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        '\u{3000}' => ' ',
        _ => c,
    }
}

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
fn unit_at(s: &str, i: usize) -> (char, usize) {
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
fn decode(s: &str) -> Cow<'_, str> {
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

/// The value under a [`KeyClass::Mask`] key: decoded, its digits masked
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
fn mask_pairs<'a>(s: &'a str, extra: &[String]) -> Cow<'a, str> {
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
                        (KeyClass::Mask, Value::String(s)) => Value::String(mask_account(s)),
                        (KeyClass::Mask, Value::Number(n)) => {
                            Value::String(mask_account(&n.to_string()))
                        }
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
/// `content_type`) → [`mask_json`]; form-encoded, plain or other UTF-8 text
/// up to [`MAX_TEXT_BODY`] → a masked string ([`mask_pii_text`], with
/// `extra_remove` keys removed too); anything else → `"<N bytes not
/// retained>"`. `content_type` is accepted for the record's sake only:
/// masking never trusts it (a form sent as `text/plain` is masked as a form).
pub fn mask_body(body: &[u8], content_type: Option<&str>, extra_remove: &[String]) -> Value {
    let _ = content_type;
    if body.is_empty() {
        return Value::Null;
    }
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return mask_json(&v, extra_remove);
    }
    match std::str::from_utf8(body) {
        Ok(t) if t.len() <= MAX_TEXT_BODY => Value::String(mask_pii_text_with(t, extra_remove)),
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

/// An admin request, state or response as it goes into an admin record
/// (ADM-1, AUD-5): values under [`KeyClass::Secret`] keys (`app_secret`,
/// `appSecret`, `private_key_pem`, `token`, ...) become `"***"`; strings are
/// masked with [`mask_pii_text`], except the platform's own identifiers
/// (other keys ending in `id`: `app_id`, `u_api_id`, `key_id`), which are
/// kept whole. Names of apps and APIs stay: in the admin plane they name
/// bank-side objects, not people.
pub fn scrub_admin_json(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let n = normalize_key(&k);
                    let v = match (classify_normalized(&n), v) {
                        (_, Value::Null) => Value::Null,
                        (KeyClass::Secret, _) => Value::String("***".into()),
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

    #[test]
    fn aud_5_keys_match_case_and_style_insensitively() {
        for k in [
            "name",
            "accountName",
            "account_name",
            "ACCOUNT-NAME",
            "payerName",
            "payer_name",
            "PAYER-NAME",
            "payee name",
            "cardHolderName",
            "idNumber",
            "id_card_no",
            "mobilePhone",
            "phone",
            "email",
            "expiryDate",
            "姓名",
        ] {
            assert_eq!(classify_key(k), KeyClass::Remove, "{k}");
        }
        for k in [
            "pin",
            "PIN",
            "pwd",
            "password",
            "loginPassword",
            "appSecret",
            "app_secret",
            "App-Secret",
            "accessToken",
            "private_key_pem",
            "cvv2",
            "smsCode",
            "otp",
        ] {
            assert_eq!(classify_key(k), KeyClass::Secret, "{k}");
        }
        for k in [
            "account",
            "fromAccount",
            "to_account",
            "cardNo",
            "card_number",
            "account_id",
            "pan",
        ] {
            assert_eq!(classify_key(k), KeyClass::Mask, "{k}");
        }
        for k in [
            "amount",
            "currency",
            "apiName",
            "productName",
            "api_id",
            "nonce",
            "company",
        ] {
            assert_eq!(classify_key(k), KeyClass::Keep, "{k}");
        }
    }

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
    }
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
