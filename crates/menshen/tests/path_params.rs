//! Path parameters (ATK-1 directory traversal; issue 10 item 7): a value that
//! percent-decodes to anything outside the default parameter pattern
//! (invalid or overlong UTF-8, `/`, `\`, `%`, `..`, control characters,
//! full-width or look-alike separators) matches no API: it is answered
//! `404 NOT_FOUND`, signed or not, and the upstream sees no call at all.

mod common;

use common::setup;

/// Values for `{account_id}` that must never reach the upstream.
const REFUSED: &[&str] = &[
    "%C0%AE",             // overlong '.'
    "%C0%AE%C0%AE",       // overlong '..'
    "%C0%AF",             // overlong '/'
    "%E0%80%AE",          // three-byte overlong '.'
    "..%EF%BC%8Fpriv",    // '..' then FULLWIDTH SOLIDUS
    "%EF%BC%8Fetc",       // FULLWIDTH SOLIDUS
    "a%EF%BC%BCb",        // FULLWIDTH REVERSE SOLIDUS
    "%EF%BC%8E%EF%BC%8E", // FULLWIDTH FULL STOP twice
    "%E2%88%95etc",       // DIVISION SLASH
    "%EF%B9%92%EF%B9%92", // SMALL FULL STOP twice
    "a..b",               // '..' inside a segment
    "..",
    "%2E%2E",
    "%2e.",
    "a%2Fb",
    "a%5Cb",
    "a%00b",
    "a%0Ab",
    "a%C2%85b",  // NEL, a C1 control
    "a%252Fb",   // double-encoded '/'
    "%FF",       // not UTF-8
    "%ED%A0%80", // a surrogate
];

#[tokio::test]
async fn atk_1_path_parameters_outside_the_pattern_are_refused_before_the_upstream() {
    let s = setup().await;
    s.h.api("balance", "GET", "/v1/accounts/{account_id}/balance", "A1")
        .await;
    s.h.grant(&s.app_id, "balance").await;
    let raw = menshen_sdk::http_client(Some(&s.h.ca_pem)).unwrap();
    for v in REFUSED {
        let path = format!("/v1/accounts/{v}/balance");
        // Signed.
        let r = s.client.call("GET", &path, None).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            (r.status, body["code"].as_str()),
            (404, Some("NOT_FOUND")),
            "{path}"
        );
        // Unsigned.
        let req = s.client.request("GET", &path, None).unwrap();
        let r = menshen_sdk::send(&raw, req).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            (r.status, body["code"].as_str()),
            (404, Some("NOT_FOUND")),
            "{path}"
        );
    }
    assert_eq!(
        s.h.upstream.count(),
        0,
        "the upstream saw: {:?}",
        s.h.upstream.seen.lock().unwrap()
    );
    // The refusals are recorded (AUD-1) with their code.
    let recs = s.h.records().await;
    let refused = recs
        .iter()
        .filter(|r| r.path.starts_with("/v1/accounts/") && r.code.as_deref() == Some("NOT_FOUND"))
        .count();
    assert_eq!(refused, REFUSED.len() * 2);
    // ... with a reason that tells probing from a mistyped path (ATK-1).
    assert!(
        recs.iter()
            .filter(|r| r.code.as_deref() == Some("NOT_FOUND"))
            .all(|r| r
                .reason
                .as_deref()
                .is_some_and(|x| x.contains("outside the parameter pattern"))),
        "{recs:?}"
    );
    // A harmless value still goes through: the harness forwards at all.
    for ok in ["6228480012345678", "a.b", "%E5%BC%A0"] {
        let r = s
            .client
            .call("GET", &format!("/v1/accounts/{ok}/balance"), None)
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{ok}");
    }
    assert_eq!(s.h.upstream.count(), 3);
}
