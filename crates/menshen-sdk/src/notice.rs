//! Checking the bank's notices to an app (docs/protocol.md section 13):
//! signed POSTs to the app's notification URL (应用方通知地址).

use menshen_crypto::PublicKey;
use menshen_protocol::signature::{combined_header, RequestView};
use menshen_protocol::{verify_content_digest, verify_with_key, ParsedSignature};

use crate::SdkError;

/// The header naming the notice (`notice-<n>`, the body's `id`).
pub const NOTICE_ID_HEADER: &str = "x-menshen-notice-id";

/// The components the bank's notice signature covers.
pub fn notice_components() -> Vec<String> {
    [
        "@method",
        "@authority",
        "@path",
        "content-digest",
        NOTICE_ID_HEADER,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Check a notice as the app's receiver gets it: the body against its
/// `Content-Digest`, the five covered components, and the signature with
/// one of `bank_keys` (the bank's `response-signing` keys from
/// `/.well-known/menshen/keys`). `authority` and `path` are those of the
/// notification URL the app registered (as the bank addressed it);
/// `headers` are the request's (lower- or mixed-case names). The caller
/// also refuses a `created` far from its clock and an `id` already handled.
pub fn verify_notice(
    bank_keys: &[PublicKey],
    authority: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<(), SdkError> {
    let bad = |m: String| SdkError::NoticeSignature(m);
    let h =
        |name: &str| combined_header(headers, name).ok_or_else(|| bad(format!("no {name} header")));
    verify_content_digest(&h("content-digest")?, body)
        .map_err(|_| bad("the body does not match its content-digest".into()))?;
    let parsed = ParsedSignature::parse_general(&h("signature-input")?, &h("signature")?)
        .map_err(|e| bad(e.to_string()))?;
    for c in notice_components() {
        if !parsed.params.components.contains(&c) {
            return Err(bad(format!("the signature does not cover {c}")));
        }
    }
    let view = RequestView {
        method: "POST".into(),
        authority: authority.into(),
        scheme: "https".into(),
        path: path.into(),
        query: None,
        headers: headers.to_vec(),
    };
    for pk in bank_keys {
        if verify_with_key(pk, &parsed, &view, None).map_err(|e| bad(e.to_string()))? {
            return Ok(());
        }
    }
    Err(bad(
        "the signature does not verify with the bank's keys".into()
    ))
}

/// [`verify_notice`] and step 5's clock check: the signature's `created`
/// within `max_skew_secs` of `now` (Unix seconds; 300 is a fair choice).
/// The bank signs every attempt afresh, so a genuine notice, first try or
/// retry, is always recent; one captured and sent again later (from a
/// proxy's or a receiver's log, say) is refused here even where the
/// receiver no longer holds the ids it handled. Keep refusing ids already
/// handled: within the window a replay is still possible.
pub fn verify_notice_at(
    bank_keys: &[PublicKey],
    authority: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
    now: i64,
    max_skew_secs: i64,
) -> Result<(), SdkError> {
    verify_notice(bank_keys, authority, path, headers, body)?;
    let bad = |m: String| SdkError::NoticeSignature(m);
    let h =
        |name: &str| combined_header(headers, name).ok_or_else(|| bad(format!("no {name} header")));
    let parsed = ParsedSignature::parse_general(&h("signature-input")?, &h("signature")?)
        .map_err(|e| bad(e.to_string()))?;
    let created = parsed.params.created;
    if now.abs_diff(created) > max_skew_secs.unsigned_abs() {
        return Err(bad(format!(
            "created {created} is more than {max_skew_secs} s away from now ({now}): a stale or replayed notice"
        )));
    }
    Ok(())
}
