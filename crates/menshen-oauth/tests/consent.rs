//! Customer login, consent and the consent stage's checks (USR-1..7,
//! AUTH-6), through `AuthServer` with a real SQLite store.

mod common;

use common::*;
use menshen_model::{ConsentState, RevokedBy, TokenProfile};
use menshen_oauth::{AuthEventKind, SignedEndpoint};

const BOB_ACC: &str = "6222020000000003";
const ALICE_ACC1: &str = "6222020000000001";
const ALICE_ACC2: &str = "6222020000000002";

#[tokio::test]
async fn usr_4_consent_page_shows_app_apis_accounts_and_records_approval() {
    let e = env(TokenProfile::Zjrcb).await;
    let t = now();
    let uri = par_uri(&e.srv, &e.app, "balance history", &[], t).await;
    let mut b = Browser::default();
    let r = open_and_login(
        &mut b,
        &e.srv,
        &e.app,
        &uri,
        "alice",
        &otp(&e.alice_totp, t),
        t,
    )
    .await;
    assert_eq!(r.status(), 303);
    let r = b.get(&e.srv, "/oauth2/authorize", t).await;
    let html = body_text(&r);
    assert!(html.contains("Fintech A"));
    // Approve and deny redirect to the app: the consent page's form-action
    // allows exactly that origin (browsers apply it to the redirect).
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("form-action 'self' https://app.example;"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"));
    assert!(html.contains("balance 查询") && html.contains("history 查询"));
    assert!(html.contains("账户信息") && html.contains("account information"));
    assert!(html.contains(&format!("name=\"account\" value=\"{ALICE_ACC1}\"")));
    assert!(html.contains(&format!("name=\"account\" value=\"{ALICE_ACC2}\"")));
    // A forged CSRF token is refused and changes nothing.
    let r = b
        .post(
            &e.srv,
            "/oauth2/consent",
            &[
                ("csrf", "forged"),
                ("approve", "1"),
                ("account", ALICE_ACC1),
            ],
            t,
        )
        .await;
    assert_eq!(r.status(), 403);
    // Bob's account cannot be slipped in.
    let csrf = csrf_of(&html);
    let r = b
        .post(
            &e.srv,
            "/oauth2/consent",
            &[("csrf", &csrf), ("approve", "1"), ("account", BOB_ACC)],
            t,
        )
        .await;
    assert_eq!(r.status(), 400);
    let r = approve(&mut b, &e.srv, &[ALICE_ACC1], t).await;
    assert_eq!(r.status(), 302);
    let ev = r.extensions().get::<menshen_oauth::AuthEvent>().unwrap();
    assert_eq!(ev.kind, AuthEventKind::ConsentApproved);
    assert_eq!(ev.user_id.as_deref(), Some(e.alice.user_id.as_str()));
    assert_eq!(ev.client_ip, Some(IP));
    assert_eq!(ev.user_agent.as_deref(), Some("TestBrowser/1.0"));
    let code = query_param(&location(&r), "code").unwrap();
    let j = body_json(&redeem(&e.srv, &e.app, &code, t).await);
    let c =
        e.cp.store
            .get_consent(j["consent_id"].as_str().unwrap())
            .await
            .unwrap();
    assert_eq!(c.state, ConsentState::Authorised);
    assert_eq!(c.accounts, vec![ALICE_ACC1.to_string()]);
    assert_eq!(c.user_id.as_deref(), Some(e.alice.user_id.as_str()));
    assert_eq!(c.authorised_at, Some(t));
    assert!(c.two_factor);
}

#[tokio::test]
async fn usr_4_deny_rejects_and_redirects_with_access_denied() {
    let e = env(TokenProfile::Cmbc).await;
    let t = now();
    let uri = par_uri(&e.srv, &e.app, "balance", &[], t).await;
    let mut b = Browser::default();
    open_and_login(&mut b, &e.srv, &e.app, &uri, "bob", "", t).await;
    let html = body_text(&b.get(&e.srv, "/oauth2/authorize", t).await);
    let r = b
        .post(
            &e.srv,
            "/oauth2/consent",
            &[("csrf", &csrf_of(&html)), ("deny", "1")],
            t,
        )
        .await;
    assert_eq!(r.status(), 302);
    let loc = location(&r);
    assert!(loc.starts_with(REDIRECT));
    assert_eq!(query_param(&loc, "error").as_deref(), Some("access_denied"));
    assert_eq!(query_param(&loc, "iss").as_deref(), Some(ISSUER));
    assert!(query_param(&loc, "code").is_none());
    let list =
        e.cp.store
            .list_consents(Some(&e.app.app_id), None)
            .await
            .unwrap();
    assert_eq!(list[0].state, ConsentState::Rejected);
}

#[tokio::test]
async fn usr_4_another_customers_account_and_api_outside_consent_refused() {
    let e = env(TokenProfile::Zjrcb).await;
    let t = now();
    let j = token_for(&e, "bob", "balance", &[BOB_ACC], &[], t).await;
    let at = j["access_token"].as_str().unwrap();
    let err = e
        .srv
        .check_call(Some(at), &e.app, "balance", Some(ALICE_ACC1), t)
        .await
        .unwrap_err();
    assert_eq!((err.code(), err.status()), ("ACCOUNT_NOT_CONSENTED", 403));
    let err = e
        .srv
        .check_call(Some(at), &e.app, "history", Some(BOB_ACC), t)
        .await
        .unwrap_err();
    assert_eq!((err.code(), err.status()), ("CONSENT_SCOPE", 403));
    let err = e
        .srv
        .check_call(None, &e.app, "balance", Some(BOB_ACC), t)
        .await
        .unwrap_err();
    assert_eq!((err.code(), err.status()), ("TOKEN_MISSING", 401));
    let err = e
        .srv
        .check_call(Some("garbage"), &e.app, "balance", None, t)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "TOKEN_INVALID");
    let g = e
        .srv
        .check_call(Some(at), &e.app, "balance", Some(BOB_ACC), t)
        .await
        .unwrap();
    assert_eq!(g.user_id, e.bob.user_id);
    assert_eq!(g.consent_id, j["consent_id"].as_str().unwrap());
}

#[tokio::test]
async fn usr_3_expired_consent_refused_and_marked() {
    let e = env(TokenProfile::Zjrcb).await;
    let t = now();
    let j = token_for(
        &e,
        "bob",
        "balance",
        &[BOB_ACC],
        &[("consent_expires_in", "120")],
        t,
    )
    .await;
    let at = j["access_token"].as_str().unwrap();
    assert_eq!(j["expires_in"], 120, "a token never outlives its consent");
    assert!(e
        .srv
        .check_call(Some(at), &e.app, "balance", None, t + 60)
        .await
        .is_ok());
    // The token is gone with the consent's end; a fresh check on the consent:
    let c_id = j["consent_id"].as_str().unwrap();
    let err = e
        .srv
        .check_call(Some(at), &e.app, "balance", None, t + 121)
        .await
        .unwrap_err();
    assert!(err.code() == "TOKEN_INVALID" || err.code() == "CONSENT_NOT_ACTIVE");
    // Through the store: a consent past its end is refused even with a live token.
    let j = token_for(&e, "bob", "balance", &[BOB_ACC], &[], t).await;
    let at = j["access_token"].as_str().unwrap();
    let mut c =
        e.cp.store
            .get_consent(j["consent_id"].as_str().unwrap())
            .await
            .unwrap();
    c.expires_at = t + 30;
    e.cp.store
        .update_consent(&c, &[ConsentState::Authorised])
        .await
        .unwrap();
    let err = e
        .srv
        .check_call(Some(at), &e.app, "balance", None, t + 31)
        .await
        .unwrap_err();
    assert_eq!((err.code(), err.status()), ("CONSENT_NOT_ACTIVE", 403));
    let c = e.cp.store.get_consent(&c.consent_id).await.unwrap();
    assert_eq!(c.state, ConsentState::Expired);
    let _ = c_id;
}

#[tokio::test]
async fn usr_3_use_and_daily_limits() {
    let e = env(TokenProfile::Zjrcb).await;
    let t = now();
    let j = token_for(&e, "bob", "balance", &[BOB_ACC], &[("use_limit", "3")], t).await;
    let at = j["access_token"].as_str().unwrap();
    for _ in 0..3 {
        assert!(e
            .srv
            .check_call(Some(at), &e.app, "balance", None, t)
            .await
            .is_ok());
    }
    let err = e
        .srv
        .check_call(Some(at), &e.app, "balance", None, t)
        .await
        .unwrap_err();
    assert!(matches!(
        err.code(),
        "CONSENT_LIMIT_REACHED" | "TOKEN_INVALID" | "CONSENT_NOT_ACTIVE"
    ));
    let c =
        e.cp.store
            .get_consent(j["consent_id"].as_str().unwrap())
            .await
            .unwrap();
    assert_eq!(c.state, ConsentState::Consumed);
    assert_eq!(c.uses, 3);

    let j = token_for(&e, "bob", "balance", &[BOB_ACC], &[("daily_limit", "2")], t).await;
    let at = j["access_token"].as_str().unwrap();
    assert!(e
        .srv
        .check_call(Some(at), &e.app, "balance", None, t)
        .await
        .is_ok());
    assert!(e
        .srv
        .check_call(Some(at), &e.app, "balance", None, t)
        .await
        .is_ok());
    let err = e
        .srv
        .check_call(Some(at), &e.app, "balance", None, t)
        .await
        .unwrap_err();
    assert_eq!((err.code(), err.status()), ("CONSENT_LIMIT_REACHED", 429));
    // The next Shanghai day allows two more (the token lives 2 h; jump to
    // the next midnight if it is within the token's life, else skip).
    let midnight = menshen_oauth::clock::next_shanghai_midnight(t);
    if midnight - t < 7000 {
        assert!(e
            .srv
            .check_call(Some(at), &e.app, "balance", None, midnight)
            .await
            .is_ok());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn usr_3_once_consent_under_concurrency() {
    let e = env(TokenProfile::Zjrcb).await;
    let t = now();
    let j = token_for(
        &e,
        "bob",
        "balance",
        &[BOB_ACC],
        &[("use_limit", "once")],
        t,
    )
    .await;
    let at = j["access_token"].as_str().unwrap().to_string();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let srv = e.srv.clone();
            let app = e.app.clone();
            let at = at.clone();
            tokio::spawn(async move {
                srv.check_call(Some(&at), &app, "balance", None, t)
                    .await
                    .is_ok()
            })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        ok += usize::from(task.await.unwrap());
    }
    assert_eq!(ok, 1);
}

async fn revoked_on_next_call(by: RevokedBy, cache: bool) {
    let e = env_with(TokenProfile::Zjrcb, cache).await;
    let t = now();
    let j = token_for(&e, "bob", "balance", &[BOB_ACC], &[], t).await;
    let at = j["access_token"].as_str().unwrap();
    let cid = j["consent_id"].as_str().unwrap();
    assert!(e
        .srv
        .check_call(Some(at), &e.app, "balance", None, t)
        .await
        .is_ok());
    match by {
        RevokedBy::App => {
            // Another app cannot delete it.
            let r = signed(
                &e.srv,
                SignedEndpoint::DeleteConsent(cid.into()),
                &e.app_b,
                &[],
                t,
            )
            .await;
            assert_eq!(r.status(), 404);
            let r = signed(
                &e.srv,
                SignedEndpoint::DeleteConsent(cid.into()),
                &e.app,
                &[],
                t,
            )
            .await;
            assert_eq!(r.status(), 204);
        }
        RevokedBy::Bank => {
            let c = e
                .srv
                .revoke_consent(cid, RevokedBy::Bank, t)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(c.state, ConsentState::Revoked);
        }
        RevokedBy::Customer => {
            let mut b = Browser::default();
            let r = b.get(&e.srv, "/me/consents", t).await;
            assert_eq!(r.status(), 303, "login first");
            let r = b.get(&e.srv, "/me/login", t).await;
            let csrf = csrf_of(&body_text(&r));
            let r = b
                .post(
                    &e.srv,
                    "/me/login",
                    &[("csrf", &csrf), ("username", "bob"), ("password", PASSWORD)],
                    t,
                )
                .await;
            assert_eq!(r.status(), 303, "{}", body_text(&r));
            let r = b.get(&e.srv, "/me/consents", t).await;
            assert_eq!(r.status(), 200);
            let html = body_text(&r);
            assert!(
                html.contains(cid) && html.contains("Fintech A") && html.contains("6222 **** 0003")
            );
            let path = format!("/me/consents/{cid}/revoke");
            // Without the CSRF token: refused.
            let r = b.post(&e.srv, &path, &[("csrf", "x")], t).await;
            assert_eq!(r.status(), 403);
            assert!(e
                .srv
                .check_call(Some(at), &e.app, "balance", None, t)
                .await
                .is_ok());
            let r = b.post(&e.srv, &path, &[("csrf", &csrf_of(&html))], t).await;
            assert_eq!(r.status(), 303);
            assert!(body_text(&b.get(&e.srv, "/me/consents", t).await).contains("revoked"));
        }
    }
    let err = e
        .srv
        .check_call(Some(at), &e.app, "balance", None, t + 1)
        .await
        .unwrap_err();
    assert_eq!(err.status(), 401, "{}", err.code());
    let c = e.cp.store.get_consent(cid).await.unwrap();
    assert_eq!((c.state, c.revoked_by), (ConsentState::Revoked, Some(by)));
}

#[tokio::test]
async fn usr_6_revoked_by_customer_refused_on_next_call() {
    revoked_on_next_call(RevokedBy::Customer, false).await;
    revoked_on_next_call(RevokedBy::Customer, true).await;
}

#[tokio::test]
async fn usr_6_revoked_by_app_refused_on_next_call() {
    revoked_on_next_call(RevokedBy::App, false).await;
    revoked_on_next_call(RevokedBy::App, true).await;
}

#[tokio::test]
async fn auth_6_revoked_by_bank_refused_on_next_call() {
    revoked_on_next_call(RevokedBy::Bank, false).await;
    revoked_on_next_call(RevokedBy::Bank, true).await;
}

#[tokio::test]
async fn auth_6_bank_revocation_in_the_store_alone_is_seen_at_once() {
    // The admin API may change the store directly (ControlPlane::revoke_consent).
    let e = env(TokenProfile::Zjrcb).await;
    let t = now();
    let j = token_for(&e, "bob", "balance", &[BOB_ACC], &[], t).await;
    let at = j["access_token"].as_str().unwrap();
    e.cp.revoke_consent(j["consent_id"].as_str().unwrap(), RevokedBy::Bank)
        .await
        .unwrap();
    let err = e
        .srv
        .check_call(Some(at), &e.app, "balance", None, t)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "CONSENT_NOT_ACTIVE");
    // Suspending the app voids its tokens.
    let j = token_for(&e, "bob", "balance", &[BOB_ACC], &[], t).await;
    let at = j["access_token"].as_str().unwrap();
    assert!(e.srv.void_app_tokens(&e.app.app_id, t).await.unwrap() >= 1);
    let err = e
        .srv
        .check_call(Some(at), &e.app, "balance", None, t)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "TOKEN_INVALID");
}

#[tokio::test]
async fn usr_1_a3_consent_needs_the_second_factor() {
    let e = env(TokenProfile::Cmbc).await;
    let t = now();
    // Bob has no OTP enrolled: he cannot consent to an A3 scope at all.
    let uri = par_uri(&e.srv, &e.app, "transfer", &[], t).await;
    let mut b = Browser::default();
    let r = open_and_login(&mut b, &e.srv, &e.app, &uri, "bob", "", t).await;
    assert_eq!(r.status(), 403, "{}", body_text(&r));
    let r = b.get(&e.srv, "/oauth2/authorize", t).await;
    assert!(
        !body_text(&r).contains("name=\"approve\""),
        "still at the login"
    );
    // Alice without her OTP: refused; with a wrong one: refused.
    let uri = par_uri(&e.srv, &e.app, "transfer balance", &[], t).await;
    let mut b = Browser::default();
    let r = open_and_login(&mut b, &e.srv, &e.app, &uri, "alice", "", t).await;
    assert_eq!(r.status(), 401);
    let html = body_text(&r);
    let r = b
        .post(
            &e.srv,
            "/oauth2/login",
            &[
                ("csrf", &csrf_of(&html)),
                ("username", "alice"),
                ("password", PASSWORD),
                ("otp", "000000"),
            ],
            t,
        )
        .await;
    assert_eq!(r.status(), 401);
    // The consent page cannot be reached, so no consent is authorised.
    let r = b
        .post(
            &e.srv,
            "/oauth2/consent",
            &[
                ("csrf", &csrf_of(&html)),
                ("approve", "1"),
                ("account", ALICE_ACC1),
            ],
            t,
        )
        .await;
    assert_ne!(r.status(), 302);
    // With the right OTP: the A3 consent, marked two-factor.
    let code = code_for(&e, &e.app, "alice", "transfer", &[ALICE_ACC1], &[], t).await;
    let j = body_json(&redeem(&e.srv, &e.app, &code, t).await);
    let c =
        e.cp.store
            .get_consent(j["consent_id"].as_str().unwrap())
            .await
            .unwrap();
    assert!(c.two_factor);
    assert_eq!(c.state, ConsentState::Authorised);
    for c in
        e.cp.store
            .list_consents(Some(&e.app.app_id), None)
            .await
            .unwrap()
    {
        if c.scopes.contains(&"transfer".to_string()) && c.state == ConsentState::Authorised {
            assert!(c.two_factor);
        }
    }
}

#[tokio::test]
async fn usr_7_otp_works_once() {
    let e = env(TokenProfile::Cmbc).await;
    let t = now();
    let code = otp(&e.alice_totp, t);
    let uri = par_uri(&e.srv, &e.app, "balance", &[], t).await;
    let mut b = Browser::default();
    let r = open_and_login(&mut b, &e.srv, &e.app, &uri, "alice", &code, t).await;
    assert_eq!(r.status(), 303);
    let uri = par_uri(&e.srv, &e.app, "balance", &[], t).await;
    let mut b = Browser::default();
    let r = open_and_login(&mut b, &e.srv, &e.app, &uri, "alice", &code, t + 1).await;
    assert_eq!(r.status(), 401, "the same OTP a second time");
}

#[tokio::test]
async fn usr_7_lockout_after_repeated_failures() {
    let e = env(TokenProfile::Cmbc).await;
    let t = now();
    let uri = par_uri(&e.srv, &e.app, "balance", &[], t).await;
    let mut b = Browser::default();
    let q =
        String::from_utf8(form(&[("client_id", &e.app.app_id), ("request_uri", &uri)])).unwrap();
    let r = b.get(&e.srv, &format!("/oauth2/authorize?{q}"), t).await;
    let mut csrf = csrf_of(&body_text(&r));
    let mut last = None;
    for i in 0..5 {
        let r = b
            .post(
                &e.srv,
                "/oauth2/login",
                &[
                    ("csrf", &csrf),
                    ("username", "bob"),
                    ("password", "wrong password"),
                ],
                t + i,
            )
            .await;
        csrf = csrf_of(&body_text(&r));
        last = Some(r);
    }
    let r = last.unwrap();
    assert_eq!(r.status(), 423);
    let ev = r.extensions().get::<menshen_oauth::AuthEvent>().unwrap();
    assert_eq!(ev.kind, AuthEventKind::LoginLocked);
    assert_eq!(ev.user_id.as_deref(), Some(e.bob.user_id.as_str()));
    // Even the right password is refused while locked.
    let r = b
        .post(
            &e.srv,
            "/oauth2/login",
            &[("csrf", &csrf), ("username", "bob"), ("password", PASSWORD)],
            t + 10,
        )
        .await;
    assert_eq!(r.status(), 423);
    // After the lock (900 s from the 5th failure) it works again (a new session: the old one idled out).
    let uri = par_uri(&e.srv, &e.app, "balance", &[], t + 905).await;
    let mut b = Browser::default();
    let r = open_and_login(&mut b, &e.srv, &e.app, &uri, "bob", "", t + 905).await;
    assert_eq!(r.status(), 303);
}

#[tokio::test]
async fn usr_7_session_ends_after_five_idle_minutes() {
    let e = env(TokenProfile::Cmbc).await;
    let t = now();
    let uri = par_uri(&e.srv, &e.app, "balance", &[], t).await;
    let mut b = Browser::default();
    assert_eq!(
        open_and_login(&mut b, &e.srv, &e.app, &uri, "bob", "", t)
            .await
            .status(),
        303
    );
    assert_eq!(
        b.get(&e.srv, "/oauth2/authorize", t + 290).await.status(),
        200,
        "activity extends it"
    );
    assert_eq!(
        b.get(&e.srv, "/oauth2/authorize", t + 580).await.status(),
        200
    );
    assert_eq!(
        b.get(&e.srv, "/oauth2/authorize", t + 881).await.status(),
        400,
        "idle 301 s"
    );
}

#[tokio::test]
async fn usr_5_agent_mode_needs_both_approvals() {
    let e = env(TokenProfile::Zjrcb).await;
    let t = now();
    let uri = par_uri(&e.srv, &e.app, "balance", &[("agent_username", "carol")], t).await;
    let mut b = Browser::default();
    // The customer (alice) logs in and approves her account.
    let r = open_and_login(
        &mut b,
        &e.srv,
        &e.app,
        &uri,
        "alice",
        &otp(&e.alice_totp, t),
        t,
    )
    .await;
    assert_eq!(r.status(), 303);
    let r = approve(&mut b, &e.srv, &[ALICE_ACC2], t).await;
    assert_eq!(r.status(), 303, "to the agent's login, no code yet");
    assert_eq!(location(&r), "/oauth2/authorize");
    let consents =
        e.cp.store
            .list_consents(Some(&e.app.app_id), None)
            .await
            .unwrap();
    let c = consents.last().unwrap();
    assert_eq!(c.state, ConsentState::AwaitingAuthorisation);
    assert_eq!(c.user_id.as_deref(), Some(e.alice.user_id.as_str()));
    // The agent's login page; the customer's own credentials are refused here.
    let r = b.get(&e.srv, "/oauth2/authorize", t).await;
    let html = body_text(&r);
    assert!(html.contains("Agent login"));
    let r = b
        .post(
            &e.srv,
            "/oauth2/login",
            &[
                ("csrf", &csrf_of(&html)),
                ("username", "alice"),
                ("password", PASSWORD),
                ("otp", &otp(&e.alice_totp, t + 30)),
            ],
            t,
        )
        .await;
    assert_eq!(r.status(), 401);
    let r = b
        .post(
            &e.srv,
            "/oauth2/login",
            &[
                ("csrf", &csrf_of(&body_text(&r))),
                ("username", "carol"),
                ("password", PASSWORD),
                ("otp", &otp(&e.carol_totp, t)),
            ],
            t,
        )
        .await;
    assert_eq!(r.status(), 303, "{}", body_text(&r));
    // Still not usable before the agent approves.
    let c = e.cp.store.get_consent(&c.consent_id).await.unwrap();
    assert_eq!(c.state, ConsentState::AwaitingAuthorisation);
    let r = b.get(&e.srv, "/oauth2/authorize", t).await;
    let html = body_text(&r);
    assert!(html.contains("6222 **** 0002") && !html.contains("name=\"account\""));
    let r = b
        .post(
            &e.srv,
            "/oauth2/consent",
            &[("csrf", &csrf_of(&html)), ("approve", "1")],
            t,
        )
        .await;
    assert_eq!(r.status(), 302);
    let code = query_param(&location(&r), "code").unwrap();
    let c = e.cp.store.get_consent(&c.consent_id).await.unwrap();
    assert_eq!(c.state, ConsentState::Authorised);
    assert_eq!(c.agent_user_id.as_deref(), Some(e.carol.user_id.as_str()));
    assert!(c.agent_approved);
    let j = body_json(&redeem(&e.srv, &e.app, &code, t).await);
    let at = j["access_token"].as_str().unwrap();
    let g = e
        .srv
        .check_call(Some(at), &e.app, "balance", Some(ALICE_ACC2), t)
        .await
        .unwrap();
    assert_eq!(g.user_id, e.alice.user_id, "the customer, not the agent");
    // The agent sees it on their page.
    let mut b = Browser::default();
    let r = b.get(&e.srv, "/me/login", t).await;
    let r = b
        .post(
            &e.srv,
            "/me/login",
            &[
                ("csrf", &csrf_of(&body_text(&r))),
                ("username", "carol"),
                ("password", PASSWORD),
                ("otp", &otp(&e.carol_totp, t + 30)),
            ],
            t,
        )
        .await;
    assert_eq!(r.status(), 303, "{}", body_text(&r));
    assert!(body_text(&b.get(&e.srv, "/me/consents", t).await).contains(&c.consent_id));
}

#[tokio::test]
async fn usr_5_agent_mode_agent_denies() {
    let e = env(TokenProfile::Zjrcb).await;
    let t = now();
    let uri = par_uri(&e.srv, &e.app, "balance", &[("agent_username", "carol")], t).await;
    let mut b = Browser::default();
    open_and_login(&mut b, &e.srv, &e.app, &uri, "bob", "", t).await;
    approve(&mut b, &e.srv, &[BOB_ACC], t).await;
    let html = body_text(&b.get(&e.srv, "/oauth2/authorize", t).await);
    b.post(
        &e.srv,
        "/oauth2/login",
        &[
            ("csrf", &csrf_of(&html)),
            ("username", "carol"),
            ("password", PASSWORD),
            ("otp", &otp(&e.carol_totp, t)),
        ],
        t,
    )
    .await;
    let html = body_text(&b.get(&e.srv, "/oauth2/authorize", t).await);
    let r = b
        .post(
            &e.srv,
            "/oauth2/consent",
            &[("csrf", &csrf_of(&html)), ("deny", "1")],
            t,
        )
        .await;
    assert_eq!(
        query_param(&location(&r), "error").as_deref(),
        Some("access_denied")
    );
    let c =
        e.cp.store
            .list_consents(Some(&e.app.app_id), None)
            .await
            .unwrap()
            .pop()
            .unwrap();
    assert_eq!(c.state, ConsentState::Rejected);
}

#[tokio::test]
async fn usr_1_no_credential_reaches_the_app_and_none_is_stored_in_hot_state() {
    let e = env(TokenProfile::Standard).await;
    let t = now();
    let code = code_for(&e, &e.app, "bob", "balance", &[BOB_ACC], &[], t).await;
    let r = redeem(&e.srv, &e.app, &code, t).await;
    let text = body_text(&r);
    assert!(!text.contains(PASSWORD));
    let j = body_json(&r);
    // Hot state keys are hashes: the token text is not a key.
    for (ns, v) in [("at", &j["access_token"]), ("rt", &j["refresh_token"])] {
        let v = v.as_str().unwrap();
        assert!(menshen_store::HotState::get(&*e.hot, ns, v, t)
            .await
            .unwrap()
            .is_none());
    }
}

#[tokio::test]
async fn usr_3_limits_and_expiry_hold_with_the_consent_cache() {
    let e = env_with(TokenProfile::Zjrcb, true).await;
    let t = now();
    let j = token_for(&e, "bob", "balance", &[BOB_ACC], &[("use_limit", "2")], t).await;
    let at = j["access_token"].as_str().unwrap();
    assert!(e
        .srv
        .check_call(Some(at), &e.app, "balance", None, t)
        .await
        .is_ok());
    assert!(e
        .srv
        .check_call(Some(at), &e.app, "balance", None, t)
        .await
        .is_ok());
    assert!(e
        .srv
        .check_call(Some(at), &e.app, "balance", None, t)
        .await
        .is_err());
    let j = token_for(
        &e,
        "bob",
        "balance",
        &[BOB_ACC],
        &[("consent_expires_in", "100")],
        t,
    )
    .await;
    let at = j["access_token"].as_str().unwrap();
    assert!(e
        .srv
        .check_call(Some(at), &e.app, "balance", None, t)
        .await
        .is_ok());
    assert!(e
        .srv
        .check_call(Some(at), &e.app, "balance", None, t + 100)
        .await
        .is_err());
}

#[tokio::test]
async fn usr_7_login_renews_the_session_id_and_the_old_one_is_dead() {
    let e = env(TokenProfile::Cmbc).await;
    let t = now();
    let uri = par_uri(&e.srv, &e.app, "balance", &[], t).await;
    let mut b = Browser::default();
    let q =
        String::from_utf8(form(&[("client_id", &e.app.app_id), ("request_uri", &uri)])).unwrap();
    let r = b.get(&e.srv, &format!("/oauth2/authorize?{q}"), t).await;
    let before = b.cookie.clone().unwrap();
    let csrf = csrf_of(&body_text(&r));
    let r = b
        .post(
            &e.srv,
            "/oauth2/login",
            &[("csrf", &csrf), ("username", "bob"), ("password", PASSWORD)],
            t,
        )
        .await;
    assert_eq!(r.status(), 303);
    let after = b.cookie.clone().unwrap();
    assert_ne!(before, after);
    // Someone holding the pre-login id gets nothing.
    let mut fixated = Browser {
        cookie: Some(before),
    };
    assert_eq!(
        fixated.get(&e.srv, "/oauth2/authorize", t).await.status(),
        400
    );
    let r = b.get(&e.srv, "/oauth2/authorize", t).await;
    assert_eq!(r.status(), 200);
    assert_ne!(csrf_of(&body_text(&r)), csrf, "CSRF token renewed too");
    // A session of the /me pages cannot approve a consent.
    let mut me = Browser::default();
    let r = me.get(&e.srv, "/me/login", t).await;
    let r = me
        .post(
            &e.srv,
            "/oauth2/consent",
            &[
                ("csrf", &csrf_of(&body_text(&r))),
                ("approve", "1"),
                ("account", BOB_ACC),
            ],
            t,
        )
        .await;
    assert_eq!(r.status(), 403);
}
