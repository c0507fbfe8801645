//! Consent screen spoofing (USR-4, USR-5): text an app sends in a pushed
//! request must not become the bank's words on the login and consent pages.

mod common;

use common::*;
use menshen_model::TokenProfile;

/// USR-5: `agent_username` names a bank customer, so it follows the
/// directory's username rules (3 to 64 characters, no spaces or control
/// characters). Before, any 64 printable characters with spaces were taken,
/// and the bank's own login page then said "Now the agent <text> must log
/// in" with the app's text (a phone number to call, an instruction), while
/// no customer could ever match it.
#[tokio::test]
async fn usr_5_agent_username_is_a_username_not_free_text_on_the_banks_page() {
    let e = env(TokenProfile::Cmbc).await;
    let t = now();
    for spoof in [
        "请立即致电 400-000-0000 领取补贴",
        "call 400 000 0000 now",
        "ab",
        "tab\there",
    ] {
        let r = par_with(&e.srv, &e.app, "balance", &[("agent_username", spoof)], t).await;
        let v = body_json(&r);
        assert_eq!(r.status(), 400, "{spoof}: {v}");
        assert_eq!(v["error"], "invalid_request", "{spoof}: {v}");
        assert!(
            v["error_description"]
                .as_str()
                .unwrap_or("")
                .contains("agent_username"),
            "{spoof}: {v}"
        );
    }
    // A username as the directory has them is still taken (agent mode
    // itself is covered in consent.rs).
    let r = par_with(&e.srv, &e.app, "balance", &[("agent_username", "carol")], t).await;
    assert_eq!(r.status(), 201, "{}", body_text(&r));
    let r = par_with(
        &e.srv,
        &e.app,
        "balance",
        &[("agent_username", "张伟.agent-01")],
        t,
    )
    .await;
    assert_eq!(r.status(), 201, "{}", body_text(&r));
}

/// AUTH-4, USR-2: an app suspended (or blacklisted, exited) while a
/// customer is on its consent page gets no consent and no code: approving
/// answers the invalid-link page, nothing is sent to the app's redirect
/// URI, and the consent is not authorised. Before, only the start of the
/// flow checked the app: the approval made the consent `authorised` and
/// sent the customer's browser to the suspended app with a code.
#[tokio::test]
async fn auth_4_no_consent_is_approved_for_an_app_suspended_mid_flow() {
    use menshen_model::{AppStatus, ConsentState};
    let e = env(TokenProfile::Cmbc).await;
    let t = now();
    let uri = par_uri(&e.srv, &e.app, "balance", &[], t).await;
    let mut b = Browser::default();
    let r = open_and_login(&mut b, &e.srv, &e.app, &uri, "bob", "", t).await;
    assert_eq!(r.status(), 303, "{}", body_text(&r));
    // The consent page is shown; then the bank suspends the app.
    let page = b.get(&e.srv, "/oauth2/authorize", t).await;
    assert_eq!(page.status(), 200, "{}", body_text(&page));
    let csrf = csrf_of(&body_text(&page));
    e.cp.store
        .set_app_status(&e.app.app_id, AppStatus::Suspended)
        .await
        .unwrap();
    let r = b
        .post(
            &e.srv,
            "/oauth2/consent",
            &[
                ("csrf", &csrf),
                ("approve", "1"),
                ("account", "6222020000000003"),
            ],
            t,
        )
        .await;
    assert_ne!(r.status(), 302, "redirected to the app: {:?}", r.headers());
    assert!(r.headers().get("location").is_none(), "{:?}", r.headers());
    assert_eq!(r.status(), 400, "{}", body_text(&r));
    let consents =
        e.cp.store
            .list_consents(Some(&e.app.app_id), None)
            .await
            .unwrap();
    assert_eq!(consents.len(), 1);
    assert_ne!(consents[0].state, ConsentState::Authorised, "{consents:?}");
}
