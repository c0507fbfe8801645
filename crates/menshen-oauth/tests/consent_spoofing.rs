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
