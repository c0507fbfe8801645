//! Mask (CONF-3): card and account numbers, names, ID and phone numbers in
//! the upstream's JSON answer are masked before the app sees them, unless
//! the app's grant for the API is approved for clearing/reconciliation.
//! Runs on upstream answers only (the gateway's own errors carry no
//! personal data), before the response is encrypted and signed.
//!
//! Two layers, one set of detectors (the audit log's,
//! `menshen_audit::mask`):
//! 1. the API's `controls.response_mask.fields`: each JSON Pointer (`*`
//!    for every element or member) masked by its kind: `account` first 6 +
//!    last 4 digits, `name` the first character (`张**`), `id_number` and
//!    `phone` by the digit-run rule, `full` as `***`;
//! 2. the safety net (`controls.response_mask.detect`, on by default for
//!    A2/A3): every other value under a name, account, ID or phone key of
//!    the audit key list is masked by its class, and every other string or
//!    long number by the digit-run rule (12+ digits keep 6 + 4, ID numbers,
//!    mobile numbers 3 + 4).
//!
//! A body that is not JSON is masked as text by the safety net; one that
//! is not UTF-8 is passed as it is. A body that claims to be JSON
//! (labelled `application/json` or `+json`, or opening with `{` or `[`)
//! and does not parse is withheld, 502 `UPSTREAM_RESPONSE_INVALID`: its
//! fields cannot be found, and it is never passed on unmasked.

use bytes::Bytes;
use http::Response;
use menshen_audit::mask::{classify_key, mask_account, mask_name, mask_text, KeyClass};
use menshen_model::{Level, MaskKind, ResponseMask};
use serde_json::Value;

use super::authenticate::Authenticated;
use super::route::Routed;
use crate::GatewayError;

/// Stage name.
pub const NAME: &str = "mask";

/// One configured field: its pointer's segments (`None` = `*`).
#[derive(Debug, Clone)]
struct Field {
    path: Vec<Option<String>>,
    kind: MaskKind,
}

/// An API's masking, compiled once per snapshot.
#[derive(Debug, Clone, Default)]
pub struct MaskPlan {
    fields: Vec<Field>,
    detect: bool,
}

impl MaskPlan {
    /// The plan of an API's masking controls at its level.
    pub fn compile(m: &ResponseMask, level: Level) -> MaskPlan {
        let fields = m
            .fields
            .iter()
            .map(|f| Field {
                path: f
                    .pointer
                    .split('/')
                    .skip(1)
                    .map(|s| (s != "*").then(|| s.replace("~1", "/").replace("~0", "~")))
                    .collect(),
                kind: f.kind,
            })
            .collect();
        MaskPlan {
            fields,
            detect: m.detect.unwrap_or(level >= Level::A2),
        }
    }

    /// Whether this plan changes anything.
    pub fn is_active(&self) -> bool {
        self.detect || !self.fields.is_empty()
    }
}

/// A value masked by kind: strings and numbers; arrays element by element.
fn by_kind(v: &mut Value, kind: MaskKind) {
    let text = match v {
        Value::String(s) => std::mem::take(s),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => {
            a.iter_mut().for_each(|x| by_kind(x, kind));
            return;
        }
        Value::Null | Value::Bool(_) | Value::Object(_) => {
            if kind == MaskKind::Full && !v.is_null() {
                *v = Value::String("***".into());
            }
            return;
        }
    };
    let masked = match kind {
        MaskKind::Account => mask_account(&text),
        MaskKind::Name => mask_name(&text),
        MaskKind::IdNumber | MaskKind::Phone => match mask_text(&text) {
            std::borrow::Cow::Owned(m) => m,
            // Not one of the known shapes: keep at most the last 4 digits.
            std::borrow::Cow::Borrowed(_) => mask_account(&text),
        },
        MaskKind::Full => "***".into(),
    };
    *v = Value::String(masked);
}

/// Apply one configured field at `path` below `v`.
fn apply(v: &mut Value, path: &[Option<String>], kind: MaskKind) {
    let Some((head, rest)) = path.split_first() else {
        by_kind(v, kind);
        return;
    };
    match (head, v) {
        (None, Value::Array(a)) => a.iter_mut().for_each(|x| apply(x, rest, kind)),
        (None, Value::Object(m)) => m.values_mut().for_each(|x| apply(x, rest, kind)),
        (Some(k), Value::Object(m)) => {
            if let Some(x) = m.get_mut(k) {
                apply(x, rest, kind);
            }
        }
        (Some(k), Value::Array(a)) => {
            if let Some(x) = k.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                apply(x, rest, kind);
            }
        }
        _ => {}
    }
}

/// The safety net over `v` (see the module documentation).
fn detect(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                let kind = match classify_key(k) {
                    KeyClass::Mask => Some(MaskKind::Account),
                    KeyClass::Remove => personal_kind(k),
                    KeyClass::Secret | KeyClass::Keep => None,
                };
                match kind {
                    Some(kind) => under_key(x, kind),
                    None => detect(x),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(detect),
        Value::String(s) => {
            if let std::borrow::Cow::Owned(m) = mask_text(s) {
                *s = m;
            }
        }
        Value::Number(n) => {
            if let std::borrow::Cow::Owned(m) = mask_text(&n.to_string()) {
                *v = Value::String(m);
            }
        }
        _ => {}
    }
}

/// The value under a key of `kind`: strings and numbers masked by it
/// (arrays element by element), objects searched like any other.
fn under_key(v: &mut Value, kind: MaskKind) {
    match v {
        Value::Object(_) => detect(v),
        Value::Array(a) => a.iter_mut().for_each(|x| under_key(x, kind)),
        _ => by_kind(v, kind),
    }
}

/// How the value under a personal-information key of the audit list is
/// masked: a person's name (`name`, `payeeName`, `户名`, `收款人`), a phone
/// or an ID number; other personal keys (e-mail, address, dates) get the
/// digit-run rule only.
fn personal_kind(k: &str) -> Option<MaskKind> {
    let n = menshen_audit::mask::normalize_key(k);
    let has = |l: &[&str]| l.iter().any(|p| n.contains(p));
    if n.ends_with("name") || has(&["姓名", "户名", "收款人", "付款人"]) {
        Some(MaskKind::Name)
    } else if has(&["phone", "mobile", "tel", "msisdn", "手机", "电话"]) {
        Some(MaskKind::Phone)
    } else if has(&[
        "idcard",
        "idno",
        "idnum",
        "identity",
        "cert",
        "passport",
        "nationalid",
        "residentid",
        "ssn",
        "身份证",
        "证件号",
    ]) {
        Some(MaskKind::IdNumber)
    } else {
        None
    }
}

/// Mask the upstream's answer for this app, unless its grant is approved
/// for clearing. Needs the route and the authenticated app: the grant is
/// the app's, for this API.
pub fn on_response(
    routed: &Routed,
    auth: &Authenticated,
    resp: &mut Response<Bytes>,
) -> Result<(), GatewayError> {
    let plan = &routed.api.mask;
    if !plan.is_active() || resp.body().is_empty() {
        return Ok(());
    }
    if auth.app.clearing.contains(&routed.api.api.api_id) {
        return Ok(());
    }
    let unreadable = || {
        GatewayError::UpstreamResponseInvalid(
            "the upstream's answer is not readable JSON; the API masks its answers".into(),
        )
    };
    let body = resp.body();
    let masked = match serde_json::from_slice::<Value>(body) {
        Ok(mut v) => {
            for f in &plan.fields {
                apply(&mut v, &f.path, f.kind);
            }
            if plan.detect {
                detect(&mut v);
            }
            serde_json::to_vec(&v).map_err(|_| unreadable())?
        }
        // Claims to be JSON and does not parse (a lone surrogate escape,
        // nesting beyond the parser's limit): the fields cannot be found,
        // so the answer is withheld rather than passed on unmasked.
        Err(_) if super::validate::claims_json(resp) => return Err(unreadable()),
        Err(_) if plan.detect => match std::str::from_utf8(body) {
            Ok(t) => match mask_text(t) {
                std::borrow::Cow::Owned(m) => m.into_bytes(),
                std::borrow::Cow::Borrowed(_) => return Ok(()),
            },
            Err(_) => return Ok(()),
        },
        Err(_) => return Ok(()),
    };
    *resp.body_mut() = Bytes::from(masked);
    body_replaced(resp);
    Ok(())
}

/// Upstream response headers that describe the body's bytes: a length, or
/// a hash of them (`ETag` is one in many frameworks: an MD5 of the body).
pub(crate) const BODY_BOUND_HEADERS: &[&str] = &[
    "content-length",
    "etag",
    "content-digest",
    "repr-digest",
    "digest",
    "content-md5",
];

/// The upstream's body was replaced (masked, or fields sealed): its
/// length and hashes no longer fit, and a hash of the clear body would let
/// anyone holding the answer confirm guesses of what was masked or sealed
/// offline (a card number masked to 6 + 4 digits has 10^6 candidates):
/// removed (CONF-1, CONF-3).
pub(crate) fn body_replaced(resp: &mut Response<Bytes>) {
    let h = resp.headers_mut();
    for name in BODY_BOUND_HEADERS {
        h.remove(*name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use menshen_model::MaskField;
    use serde_json::json;

    fn plan(fields: &[(&str, MaskKind)], detect: bool) -> MaskPlan {
        MaskPlan::compile(
            &ResponseMask {
                fields: fields
                    .iter()
                    .map(|(p, k)| MaskField {
                        pointer: p.to_string(),
                        kind: *k,
                    })
                    .collect(),
                detect: Some(detect),
            },
            Level::A2,
        )
    }

    fn run(p: &MaskPlan, mut v: Value) -> Value {
        for f in &p.fields {
            apply(&mut v, &f.path, f.kind);
        }
        if p.detect {
            detect(&mut v);
        }
        v
    }

    #[test]
    fn conf_3_configured_pointers_mask_by_kind() {
        let p = plan(
            &[
                ("/holder", MaskKind::Name),
                ("/accounts/*/no", MaskKind::Account),
                ("/contact/mobile", MaskKind::Phone),
                ("/contact/idcard", MaskKind::IdNumber),
                ("/memo", MaskKind::Full),
            ],
            false,
        );
        let out = run(
            &p,
            json!({
                "holder": "张三丰",
                "accounts": [{"no": "6228480012345678"}, {"no": 6222020200112233445u64}],
                "contact": {"mobile": "13812345678", "idcard": "11010519491231002X"},
                "memo": "secret remark",
                "balance": "1234.56"
            }),
        );
        assert_eq!(
            out,
            json!({
                "holder": "张**",
                "accounts": [{"no": "622848******5678"}, {"no": "622202*********3445"}],
                "contact": {"mobile": "138****5678", "idcard": "110105********002X"},
                "memo": "***",
                "balance": "1234.56"
            })
        );
    }

    #[test]
    fn conf_3_detection_is_the_safety_net() {
        let p = plan(&[], true);
        let out = run(
            &p,
            json!({
                "payeeName": "李四",
                "card_no": "6222 0202 0011 2233",
                "note": "call 13912345678 re 110105194912310021",
                "items": [{"acct": 6228480012345678u64}],
                "amount": "100.00",
                "date": "2026-11-30"
            }),
        );
        assert_eq!(out["payeeName"], "李*");
        assert_eq!(out["card_no"], "6222 02** **** 2233");
        assert_eq!(out["note"], "call 139****5678 re 110105********0021");
        assert_eq!(out["items"][0]["acct"], "622848******5678");
        assert_eq!(out["amount"], "100.00");
        assert_eq!(out["date"], "2026-11-30");
    }
}
