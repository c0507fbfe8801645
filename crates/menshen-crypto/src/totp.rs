//! Time-based one-time passwords (RFC 6238) for the customer's second factor
//! (USR-1, USR-7): HMAC-SHA1, 6 digits, 30-second steps, which is what every
//! authenticator app speaks; secrets are exchanged in base32 (RFC 4648, no
//! padding). Written on `hmac` + `sha1` rather than a TOTP crate so the key
//! never leaves zeroizing buffers and the code is compared in constant time.

use hmac::{Hmac, Mac as _};
use sha1::Sha1;
use zeroize::Zeroizing;

/// Step length, seconds.
pub const STEP_SECS: i64 = 30;
/// Digits in a code.
pub const DIGITS: usize = 6;

const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// The HOTP value (RFC 4226) of `secret` at `counter`, as `DIGITS` digits.
fn hotp(secret: &[u8], counter: u64) -> Zeroizing<String> {
    let mut mac =
        <Hmac<Sha1> as hmac::Mac>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(&counter.to_be_bytes());
    let digest = Zeroizing::new(<[u8; 20]>::from(mac.finalize().into_bytes()));
    // Dynamic truncation (RFC 4226 section 5.3).
    let off = usize::from(digest[19] & 0x0f);
    let bin = (u32::from(digest[off] & 0x7f) << 24)
        | (u32::from(digest[off + 1]) << 16)
        | (u32::from(digest[off + 2]) << 8)
        | u32::from(digest[off + 3]);
    Zeroizing::new(format!("{:06}", bin % 1_000_000))
}

/// The step number of `unix` (seconds); times before 1970 are step 0.
fn step_of(unix: i64) -> i64 {
    unix.max(0).div_euclid(STEP_SECS)
}

/// The 6-digit code of `secret` at `unix` seconds (RFC 6238, T0 = 0, X = 30).
pub fn totp_at(secret: &[u8], unix: i64) -> String {
    hotp(secret, step_of(unix) as u64).to_string()
}

/// Check `code` against the steps from `skew_steps` before to `skew_steps`
/// after the one of `unix`; returns the step that matched. The comparison is
/// constant time and every step in the window is computed, so the time taken
/// does not tell which one matched. The caller records the matched step so
/// the same code is not accepted twice (USR-7: an OTP works once).
pub fn totp_verify(secret: &[u8], code: &str, unix: i64, skew_steps: i64) -> Option<i64> {
    let code = code.trim();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step_of(unix);
    let skew = skew_steps.clamp(0, 10);
    let mut found = None;
    for step in (now - skew)..=(now + skew) {
        if step < 0 {
            continue;
        }
        let want = hotp(secret, step as u64);
        if crate::ct_eq(want.as_bytes(), code.as_bytes()) && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// Base32 (RFC 4648 alphabet, upper case, no padding).
pub fn base32_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    let mut buf: u64 = 0;
    let mut bits = 0u32;
    for &b in data {
        buf = (buf << 8) | u64::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(B32[((buf >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(B32[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Decode base32 (RFC 4648). Accepts lower case, spaces and trailing `=`
/// padding, as authenticator apps show and accept secrets; `None` on any
/// other character or on a length no encoder produces.
pub fn base32_decode(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(Vec::with_capacity(text.len() * 5 / 8));
    let mut buf: u64 = 0;
    let mut bits = 0u32;
    let mut n = 0usize;
    let body = text.trim().trim_end_matches('=');
    for c in body.bytes() {
        if c == b' ' || c == b'-' {
            continue;
        }
        let v = match c.to_ascii_uppercase() {
            u @ b'A'..=b'Z' => u - b'A',
            d @ b'2'..=b'7' => d - b'2' + 26,
            _ => return None,
        };
        buf = (buf << 5) | u64::from(v);
        bits += 5;
        n += 1;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    // Valid lengths mod 8: 0, 2, 4, 5, 7; leftover bits must be zero.
    if matches!(n % 8, 1 | 3 | 6) || (buf & ((1u64 << bits) - 1)) != 0 {
        return None;
    }
    Some(out)
}

/// An `otpauth://totp/` URI for enrolling `secret` in an authenticator app
/// (the Key Uri Format authenticator apps read): `issuer` and `account` are
/// percent-encoded.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> Zeroizing<String> {
    fn enc(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }
    let secret = Zeroizing::new(base32_encode(secret));
    Zeroizing::new(format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        enc(issuer),
        enc(account),
        secret.as_str(),
        enc(issuer)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, the SHA1 rows (8 digits there; the last 6 are
    /// the 6-digit code, since both are the same value modulo 10^n).
    #[test]
    fn usr_1_rfc6238_appendix_b_sha1_vectors() {
        let secret = b"12345678901234567890";
        for (t, eight) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(totp_at(secret, t), &eight[2..], "T = {t}");
        }
    }

    #[test]
    fn usr_7_verify_window_and_matched_step() {
        let s = b"12345678901234567890";
        assert_eq!(totp_verify(s, "287082", 59, 0), Some(1));
        // One step later, accepted with a skew of 1, reporting the old step.
        assert_eq!(totp_verify(s, "287082", 89, 1), Some(1));
        assert_eq!(totp_verify(s, "287082", 89, 0), None);
        assert_eq!(totp_verify(s, "287082", 120, 1), None);
        assert_eq!(totp_verify(s, "28708", 59, 1), None);
        assert_eq!(totp_verify(s, "28708a", 59, 1), None);
        assert_eq!(totp_verify(s, "", 59, 1), None);
    }

    #[test]
    fn base32_rfc4648_vectors_round_trip() {
        for (plain, enc) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32_encode(plain.as_bytes()), enc);
            assert_eq!(base32_decode(enc).unwrap().as_slice(), plain.as_bytes());
        }
        assert_eq!(
            base32_decode("mzxw 6ytb oi======").unwrap().as_slice(),
            b"foobar"
        );
        assert!(base32_decode("MZXW1").is_none(), "1 is not in the alphabet");
        assert!(base32_decode("M").is_none(), "impossible length");
        assert!(base32_decode("MZ").is_none(), "non-zero leftover bits");
        let key = crate::random_bytes(20);
        let enc = base32_encode(&key);
        assert_eq!(enc.len(), 32);
        assert_eq!(base32_decode(&enc).unwrap().as_slice(), key.as_slice());
    }

    #[test]
    fn otpauth_uri_names_issuer_account_and_parameters() {
        let u = otpauth_uri("Menshen Bank", "zhang.san", b"foobar");
        assert_eq!(
            u.as_str(),
            "otpauth://totp/Menshen%20Bank:zhang.san?secret=MZXW6YTBOI&issuer=Menshen%20Bank&algorithm=SHA1&digits=6&period=30"
        );
    }
}
