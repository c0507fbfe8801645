//! The ONE list of sensitive keys (AUD-5), for the audit masker and the
//! admin scrubber alike, matched case- and style-insensitively.

use super::decode::{decode, fold};

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
    "display",
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
    "expiry",
    "expiration",
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
    "accounts",
    "cards",
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

pub(super) fn classify_normalized(n: &str) -> KeyClass {
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
pub(super) fn classify_with(k: &str, extra: &[String]) -> KeyClass {
    let n = normalize_key(&decode(k));
    match classify_normalized(&n) {
        KeyClass::Keep | KeyClass::Mask if extra.iter().any(|e| normalize_key(e) == n) => {
            KeyClass::Remove
        }
        c => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
