//! The authorization server's protocol, driven through `AuthServer` with a
//! real SQLite store: PAR (RFC 9126), PKCE (RFC 7636), codes (RFC 6749),
//! token profiles (TOK-1..4), revocation and introspection.

mod common;

use common::*;
use menshen_model::{AppKind, ConsentState, TokenProfile};
use menshen_oauth::{AppCaller, SignedEndpoint};

#[tokio::test]
async fn tok_3_par_single_use_bound_to_the_app_and_expiring() {
    let e = env(TokenProfile::Cmbc).await;
    let t = now();
    let r = par_with(&e.srv, &e.app, "balance", &[], t).await;
    assert_eq!(r.status(), 201);
    let j = body_json(&r);
    assert_eq!(j["expires_in"], 60);
    let uri = j["request_uri"].as_str().unwrap().to_string();
    assert!(uri.starts_with("urn:ietf:params:oauth:request_uri:"));

    // Another app's client_id with this request_uri: refused, not redirected,
    // and the request is not burned.
    let mut b = Browser::default();
    let q = |app: &str| {
        format!(
            "/oauth2/authorize?{}",
            String::from_utf8(form(&[("client_id", app), ("request_uri", &uri)])).unwrap()
        )
    };
    let r = b.get(&e.srv, &q(&e.app_b.app_id), t).await;
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
    // The right app: the login page.
    let r = b.get(&e.srv, &q(&e.app.app_id), t).await;
    assert_eq!(r.status(), 200);
    let html = body_text(&r);
    for name in [
        "name=\"username\"",
        "name=\"password\"",
        "name=\"otp\"",
        "name=\"csrf\"",
    ] {
        assert!(html.contains(name), "{name}");
    }
    assert!(!html.contains("<script"));
    for (h, v) in [
        ("x-frame-options", "DENY"),
        ("cache-control", "no-store"),
        ("referrer-policy", "no-referrer"),
    ] {
        assert_eq!(r.headers()[h], v);
    }
    assert!(r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    // Reuse: refused.
    let mut b2 = Browser::default();
    let r = b2.get(&e.srv, &q(&e.app.app_id), t).await;
    assert_eq!(r.status(), 400);
    // Expiry: a fresh request used after 60 s is refused.
    let uri2 = par_uri(&e.srv, &e.app, "balance", &[], t).await;
    let r = Browser::default()
        .get(
            &e.srv,
            &format!(
                "/oauth2/authorize?{}",
                String::from_utf8(form(&[
                    ("client_id", &e.app.app_id),
                    ("request_uri", &uri2)
                ]))
                .unwrap()
            ),
            t + 61,
        )
        .await;
    assert_eq!(r.status(), 400);
    // No PAR at all.
    let r = Browser::default()
        .get(
            &e.srv,
            "/oauth2/authorize?client_id=x&redirect_uri=https://evil.example/&response_type=code",
            t,
        )
        .await;
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
}

#[tokio::test]
async fn tok_3_par_validation() {
    let e = env(TokenProfile::Cmbc).await;
    let t = now();
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: &[Case] = &[
        (
            &[("code_challenge_method", "plain")],
            "invalid_request",
            "plain PKCE",
        ),
        (
            &[("code_challenge_method", "")],
            "invalid_request",
            "no method",
        ),
        (&[("code_challenge", "")], "invalid_request", "no challenge"),
        (
            &[("redirect_uri", "https://app.example/cb/")],
            "invalid_request",
            "unregistered redirect",
        ),
        (&[("response_type", "token")], "invalid_request", "implicit"),
        (
            &[("client_id", "app_other")],
            "invalid_client",
            "another client_id",
        ),
        (&[("use_limit", "0")], "invalid_request", "zero uses"),
        (
            &[("consent_expires_in", "99999999")],
            "invalid_request",
            "over a year",
        ),
    ];
    for (extra, code, what) in cases {
        let r = par_with(&e.srv, &e.app, "balance", extra, t).await;
        assert!(
            r.status() == 400 || r.status() == 401,
            "{what}: {}",
            r.status()
        );
        assert_eq!(body_json(&r)["error"], *code, "{what}");
    }
    let r = par_with(&e.srv, &e.app, "balance nosuchapi", &[], t).await;
    assert_eq!(body_json(&r)["error"], "invalid_scope");
    e.cp.store
        .remove_grant(&e.app.app_id, "history")
        .await
        .unwrap();
    let r = par_with(&e.srv, &e.app, "history", &[], t).await;
    assert_eq!(body_json(&r)["error"], "invalid_scope", "not granted");
    e.cp.store
        .set_api_lifecycle("transfer", menshen_model::Lifecycle::Terminated)
        .await
        .unwrap();
    let r = par_with(&e.srv, &e.app, "transfer", &[], t).await;
    assert_eq!(body_json(&r)["error"], "invalid_scope", "terminated API");
    // TOK-2: a mobile app gets nothing.
    let mobile = AppCaller {
        kind: AppKind::Mobile,
        ..e.app.clone()
    };
    let r = par_with(&e.srv, &mobile, "balance", &[], t).await;
    assert_eq!(body_json(&r)["error"], "unauthorized_client");
    // A repeated parameter.
    let r = signed(
        &e.srv,
        SignedEndpoint::Par,
        &e.app,
        &[
            ("scope", "balance"),
            ("scope", "history"),
            ("client_id", &e.app.app_id),
        ],
        t,
    )
    .await;
    assert_eq!(body_json(&r)["error"], "invalid_request");
}

#[tokio::test]
async fn tok_3_pkce_wrong_or_missing_verifier_refused() {
    let e = env(TokenProfile::Cmbc).await;
    let t = now();
    for verifier in [
        "",
        "x",
        "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXX",
        CHALLENGE,
    ] {
        let code = code_for(&e, &e.app, "bob", "balance", &["6222020000000003"], &[], t).await;
        let mut pairs = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
        ];
        if !verifier.is_empty() {
            pairs.push(("code_verifier", verifier));
        }
        let r = signed(&e.srv, SignedEndpoint::Token, &e.app, &pairs, t).await;
        assert_eq!(r.status(), 400, "verifier {verifier:?}");
        let err = body_json(&r)["error"].clone();
        assert!(err == "invalid_grant" || err == "invalid_request", "{err}");
        // The code is gone either way (or never taken when the verifier was missing).
    }
    // Right verifier but wrong redirect_uri.
    let code = code_for(&e, &e.app, "bob", "balance", &["6222020000000003"], &[], t).await;
    let r = signed(
        &e.srv,
        SignedEndpoint::Token,
        &e.app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "https://app.example/other"),
            ("code_verifier", VERIFIER),
        ],
        t,
    )
    .await;
    assert_eq!(body_json(&r)["error"], "invalid_grant");
}

#[tokio::test]
async fn tok_3_code_reuse_refused_and_its_tokens_revoked() {
    let e = env(TokenProfile::Standard).await;
    let t = now();
    let code = code_for(&e, &e.app, "bob", "balance", &["6222020000000003"], &[], t).await;
    let r = redeem(&e.srv, &e.app, &code, t).await;
    assert_eq!(r.status(), 200);
    let j = body_json(&r);
    assert_eq!(j["token_type"], "Bearer");
    assert_eq!(j["scope"], "balance");
    assert!(j["consent_id"].as_str().unwrap().starts_with("CN"));
    let at = j["access_token"].as_str().unwrap().to_string();
    let rt = j["refresh_token"].as_str().unwrap().to_string();
    assert!(at.len() >= 43);
    let ok = e
        .srv
        .check_call(Some(&at), &e.app, "balance", Some("6222020000000003"), t)
        .await;
    assert!(ok.is_ok());
    // Second redemption: refused, and the tokens from the first are dead.
    let r = redeem(&e.srv, &e.app, &code, t + 1).await;
    assert_eq!(r.status(), 400);
    assert_eq!(body_json(&r)["error"], "invalid_grant");
    let err = e
        .srv
        .check_call(
            Some(&at),
            &e.app,
            "balance",
            Some("6222020000000003"),
            t + 1,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "TOKEN_INVALID");
    let r = signed(
        &e.srv,
        SignedEndpoint::Token,
        &e.app,
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
        t + 1,
    )
    .await;
    assert_eq!(body_json(&r)["error"], "invalid_grant");
    // Expired code.
    let code = code_for(&e, &e.app, "bob", "balance", &["6222020000000003"], &[], t).await;
    let r = redeem(&e.srv, &e.app, &code, t + 61).await;
    assert_eq!(body_json(&r)["error"], "invalid_grant");
    // Another app's code.
    let code = code_for(&e, &e.app, "bob", "balance", &["6222020000000003"], &[], t).await;
    let r = redeem(&e.srv, &e.app_b, &code, t).await;
    assert_eq!(body_json(&r)["error"], "invalid_grant");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tok_3_fifty_concurrent_redemptions_give_one_token() {
    let e = env(TokenProfile::Cmbc).await;
    let t = now();
    let code = code_for(&e, &e.app, "bob", "balance", &["6222020000000003"], &[], t).await;
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let srv = e.srv.clone();
            let app = e.app.clone();
            let code = code.clone();
            tokio::spawn(async move { redeem(&srv, &app, &code, t).await.status().as_u16() })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        if task.await.unwrap() == 200 {
            ok += 1;
        }
    }
    assert_eq!(ok, 1);
}

#[tokio::test]
async fn tok_2_mobile_app_gets_no_token() {
    let e = env(TokenProfile::Cmbc).await;
    let t = now();
    let code = code_for(&e, &e.app, "bob", "balance", &["6222020000000003"], &[], t).await;
    let mobile = AppCaller {
        kind: AppKind::Mobile,
        ..e.app.clone()
    };
    let r = redeem(&e.srv, &mobile, &code, t).await;
    assert_eq!(body_json(&r)["error"], "unauthorized_client");
    let r = signed(
        &e.srv,
        SignedEndpoint::Token,
        &e.app,
        &[("grant_type", "password")],
        t,
    )
    .await;
    assert_eq!(body_json(&r)["error"], "unsupported_grant_type");
}

#[tokio::test]
async fn tok_1_token_of_app_a_refused_for_app_b() {
    let e = env(TokenProfile::Zjrcb).await;
    let t = now();
    let j = token_for(&e, "bob", "balance", &["6222020000000003"], &[], t).await;
    let at = j["access_token"].as_str().unwrap();
    let err = e
        .srv
        .check_call(Some(at), &e.app_b, "balance", None, t)
        .await
        .unwrap_err();
    assert_eq!((err.code(), err.status()), ("TOKEN_INVALID", 401));
    // And introspection by B says inactive; by A active.
    let r = signed(
        &e.srv,
        SignedEndpoint::Introspect,
        &e.app_b,
        &[("token", at)],
        t,
    )
    .await;
    assert_eq!(body_json(&r)["active"], false);
    let r = signed(
        &e.srv,
        SignedEndpoint::Introspect,
        &e.app,
        &[("token", at)],
        t,
    )
    .await;
    let j = body_json(&r);
    assert_eq!(j["active"], true);
    assert_eq!(j["client_id"], e.app.app_id.as_str());
    assert_eq!(j["scope"], "balance");
    // A still can use it.
    assert!(e
        .srv
        .check_call(Some(at), &e.app, "balance", None, t)
        .await
        .is_ok());
}

#[tokio::test]
async fn tok_1_certificate_bound_token() {
    let e = env(TokenProfile::Zjrcb).await;
    let t = now();
    let code = code_for(&e, &e.app, "bob", "balance", &["6222020000000003"], &[], t).await;
    let with_cert = AppCaller {
        client_cert: Some("ab".repeat(32)),
        ..e.app.clone()
    };
    let r = redeem(&e.srv, &with_cert, &code, t).await;
    let at = body_json(&r)["access_token"].as_str().unwrap().to_string();
    let other_cert = AppCaller {
        client_cert: Some("cd".repeat(32)),
        ..e.app.clone()
    };
    for caller in [&e.app, &other_cert] {
        let err = e
            .srv
            .check_call(Some(&at), caller, "balance", None, t)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "TOKEN_INVALID");
    }
    assert!(e
        .srv
        .check_call(Some(&at), &with_cert, "balance", None, t)
        .await
        .is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tok_1_cmbc_token_works_once_also_concurrently() {
    let e = env(TokenProfile::Cmbc).await;
    let t = now();
    let j = token_for(&e, "bob", "balance", &["6222020000000003"], &[], t).await;
    assert!(j["expires_in"].as_i64().unwrap() <= 300);
    assert!(j.get("refresh_token").is_none());
    let at = j["access_token"].as_str().unwrap();
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
    assert_eq!(err.code(), "TOKEN_INVALID");
    // Concurrently: 20 calls with one fresh token, one succeeds.
    let j = token_for(&e, "bob", "balance", &["6222020000000003"], &[], t).await;
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
        if task.await.unwrap() {
            ok += 1;
        }
    }
    assert_eq!(ok, 1);
    // Expired: a token is refused after 300 s.
    let j = token_for(&e, "bob", "balance", &["6222020000000003"], &[], t).await;
    let at = j["access_token"].as_str().unwrap();
    let err = e
        .srv
        .check_call(Some(at), &e.app, "balance", None, t + 301)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "TOKEN_INVALID");
}

#[tokio::test]
async fn tok_4_zjrcb_new_token_voids_the_old_one() {
    let e = env(TokenProfile::Zjrcb).await;
    let t = now();
    let j1 = token_for(&e, "bob", "balance", &["6222020000000003"], &[], t).await;
    assert_eq!(j1["expires_in"], 7200);
    let old = j1["access_token"].as_str().unwrap();
    assert!(e
        .srv
        .check_call(Some(old), &e.app, "balance", None, t)
        .await
        .is_ok());
    assert!(
        e.srv
            .check_call(Some(old), &e.app, "balance", None, t)
            .await
            .is_ok(),
        "reusable"
    );
    let j2 = token_for(&e, "bob", "balance", &["6222020000000003"], &[], t + 5).await;
    let new = j2["access_token"].as_str().unwrap();
    let err = e
        .srv
        .check_call(Some(old), &e.app, "balance", None, t + 6)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "TOKEN_INVALID");
    assert!(e
        .srv
        .check_call(Some(new), &e.app, "balance", None, t + 6)
        .await
        .is_ok());
}

#[tokio::test]
async fn tok_1_standard_refresh_rotates() {
    let e = env(TokenProfile::Standard).await;
    let t = now();
    let j = token_for(&e, "bob", "balance", &["6222020000000003"], &[], t).await;
    assert_eq!(j["expires_in"], 600);
    let rt1 = j["refresh_token"].as_str().unwrap().to_string();
    let refresh = |rt: String, caller: AppCaller, at: i64| {
        let srv = e.srv.clone();
        async move {
            signed(
                &srv,
                SignedEndpoint::Token,
                &caller,
                &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
                at,
            )
            .await
        }
    };
    // Another app cannot use it.
    let r = refresh(rt1.clone(), e.app_b.clone(), t + 10).await;
    assert_eq!(body_json(&r)["error"], "invalid_grant");
    let r = refresh(rt1.clone(), e.app.clone(), t + 700).await;
    assert_eq!(r.status(), 200, "{}", body_text(&r));
    let j2 = body_json(&r);
    let rt2 = j2["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rt1, rt2);
    let at2 = j2["access_token"].as_str().unwrap();
    assert!(e
        .srv
        .check_call(Some(at2), &e.app, "balance", None, t + 701)
        .await
        .is_ok());
    // The old refresh token is dead.
    let r = refresh(rt1, e.app.clone(), t + 702).await;
    assert_eq!(body_json(&r)["error"], "invalid_grant");
    // RFC 7009: revoking the refresh token ends the grant.
    let r = signed(
        &e.srv,
        SignedEndpoint::Revoke,
        &e.app,
        &[("token", &rt2), ("token_type_hint", "refresh_token")],
        t + 703,
    )
    .await;
    assert_eq!(r.status(), 200);
    let err = e
        .srv
        .check_call(Some(at2), &e.app, "balance", None, t + 704)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "TOKEN_INVALID");
    let c =
        e.cp.store
            .get_consent(j["consent_id"].as_str().unwrap())
            .await
            .unwrap();
    assert_eq!(c.state, ConsentState::Revoked);
    // Revoking an unknown token is still 200.
    let r = signed(
        &e.srv,
        SignedEndpoint::Revoke,
        &e.app,
        &[("token", "nope")],
        t,
    )
    .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn metadata_rfc8414() {
    let e = env(TokenProfile::Cmbc).await;
    let m = e.srv.metadata_json();
    assert_eq!(m["issuer"], ISSUER);
    assert_eq!(
        m["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(m["require_pushed_authorization_requests"], true);
    assert_eq!(m["authorization_response_iss_parameter_supported"], true);
    assert_eq!(
        m["token_endpoint_auth_methods_supported"],
        serde_json::json!(["menshen-http-signature"])
    );
    assert_eq!(
        m["pushed_authorization_request_endpoint"],
        format!("{ISSUER}/oauth2/par")
    );
    let r = Browser::default()
        .get(&e.srv, "/.well-known/oauth-authorization-server", now())
        .await;
    assert_eq!(body_json(&r), m);
    // Not an AS path: None.
    let p = http::Request::get("/v1/accounts/1/balance")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    assert!(e.srv.handle_web(&p, b"", IP, now()).await.is_none());
}

#[tokio::test]
async fn tok_3_code_reuse_after_a_refresh_voids_the_rotated_tokens_too() {
    let e = env(TokenProfile::Standard).await;
    let t = now();
    let code = code_for(&e, &e.app, "bob", "balance", &["6222020000000003"], &[], t).await;
    let j = body_json(&redeem(&e.srv, &e.app, &code, t).await);
    let r = signed(
        &e.srv,
        SignedEndpoint::Token,
        &e.app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", j["refresh_token"].as_str().unwrap()),
        ],
        t + 1,
    )
    .await;
    let j2 = body_json(&r);
    let at2 = j2["access_token"].as_str().unwrap();
    assert!(e
        .srv
        .check_call(Some(at2), &e.app, "balance", None, t + 2)
        .await
        .is_ok());
    assert_eq!(redeem(&e.srv, &e.app, &code, t + 3).await.status(), 400);
    let err = e
        .srv
        .check_call(Some(at2), &e.app, "balance", None, t + 4)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "TOKEN_INVALID");
    let r = signed(
        &e.srv,
        SignedEndpoint::Token,
        &e.app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", j2["refresh_token"].as_str().unwrap()),
        ],
        t + 5,
    )
    .await;
    assert_eq!(body_json(&r)["error"], "invalid_grant");
}

#[tokio::test]
async fn signed_endpoints_take_forms_only_and_config_is_checked() {
    let e = env(TokenProfile::Cmbc).await;
    let p = http::Request::post("/oauth2/token")
        .header("content-type", "application/json")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    let r = e
        .srv
        .handle_signed(SignedEndpoint::Token, &e.app, &p, b"{}", now())
        .await;
    assert_eq!(body_json(&r)["error"], "invalid_request");
    assert!(menshen_oauth::OAuthConfig::default().validate().is_ok());
    for bad in [
        menshen_oauth::OAuthConfig {
            issuer: "http://bank.example".into(),
            ..Default::default()
        },
        menshen_oauth::OAuthConfig {
            par_ttl_secs: 600,
            ..Default::default()
        },
        menshen_oauth::OAuthConfig {
            session_idle_secs: 3600,
            ..Default::default()
        },
    ] {
        assert!(bad.validate().is_err());
    }
    assert_eq!(
        SignedEndpoint::from_request(&http::Method::DELETE, "/oauth2/consents/CN1"),
        Some(SignedEndpoint::DeleteConsent("CN1".into()))
    );
    assert_eq!(
        SignedEndpoint::from_request(&http::Method::GET, "/oauth2/token"),
        None
    );
}

#[tokio::test]
async fn usr_4_refusal_names_customer_and_consent() {
    let e = env(TokenProfile::Zjrcb).await;
    let t = now();
    let j = token_for(&e, "bob", "balance", &["6222020000000003"], &[], t).await;
    let at = j["access_token"].as_str().unwrap();
    let c = e
        .srv
        .check_call_detailed(Some(at), &e.app, "balance", Some("6222020000000001"), t)
        .await;
    assert_eq!(c.result.unwrap_err().code(), "ACCOUNT_NOT_CONSENTED");
    assert_eq!(c.user_id.as_deref(), Some(e.bob.user_id.as_str()));
    assert_eq!(c.consent_id.as_deref(), j["consent_id"].as_str());
    let c = e
        .srv
        .check_call_detailed(Some(at), &e.app_b, "balance", None, t)
        .await;
    assert_eq!(c.user_id, None, "not named to another app's record");
}

/// TOK-3: a code leaked to another app is refused for it without being
/// consumed, and that app cannot trip the owner's reuse revocation.
#[tokio::test]
async fn tok_3_another_apps_code_is_refused_without_burning_it() {
    let e = env(TokenProfile::Standard).await;
    let t = now();
    let code = code_for(&e, &e.app, "bob", "balance", &["6222020000000003"], &[], t).await;
    let r = redeem(&e.srv, &e.app_b, &code, t).await;
    assert_eq!(r.status(), 400);
    assert_eq!(body_json(&r)["error"], "invalid_grant");
    // The owner still redeems it.
    let r = redeem(&e.srv, &e.app, &code, t + 1).await;
    assert_eq!(r.status(), 200);
    let at = body_json(&r)["access_token"].as_str().unwrap().to_string();
    // App B presenting the used code again does not void the owner's token.
    let r = redeem(&e.srv, &e.app_b, &code, t + 2).await;
    assert_eq!(r.status(), 400);
    assert!(e
        .srv
        .check_call(
            Some(&at),
            &e.app,
            "balance",
            Some("6222020000000003"),
            t + 2
        )
        .await
        .is_ok());
}
