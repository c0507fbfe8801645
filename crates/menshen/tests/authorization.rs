//! Customer authorization end to end (issue 11; USR-1..7, TOK-1..4,
//! AUTH-6): a real node, an app signing with SM2 through the SDK, and the
//! customer's browser simulated over HTTPS (cookies, forms, CSRF tokens,
//! redirects). From PAR to a 200 balance call, and every refusal the issue
//! names, each checked at the app, the upstream and the audit record.

mod browser_sim;
mod common;

use browser_sim::{action, enc, input, query_param, Browser, Page};
use common::Harness;
use menshen_crypto::{PrivateKey, SigAlg};
use menshen_sdk::{AuthorizationRequest, Client, Pkce, TokenResponse};

const REDIRECT: &str = "https://app.example/cb";

struct World {
    h: Harness,
    app: String,
    client: Client,
    /// (username, password, accounts)
    alice: (String, String, Vec<String>),
    bob: (String, String, Vec<String>),
}

/// A node with an A2 balance API (accounts category: consent required,
/// account in the path), an app with an SM2 key, a redirect URI and a
/// grant, and two customers.
async fn world() -> World {
    let h = Harness::start().await;
    let (app, client) = h.consent_api_and_app("consent app", REDIRECT).await;
    let mut people = Vec::new();
    for (u, accts) in [
        ("alice", vec!["6222020000000001", "6222020000000002"]),
        ("bob", vec!["6222020000000009"]),
    ] {
        let pw = format!("{u}-password-1");
        h.customer(u, &pw, &accts).await;
        people.push((
            u.to_string(),
            pw,
            accts.iter().map(|a| a.to_string()).collect(),
        ));
    }
    let bob = people.pop().unwrap();
    let alice = people.pop().unwrap();
    World {
        h,
        app,
        client,
        alice,
        bob,
    }
}

/// PAR, then the browser: login, consent to `accounts`; returns the code.
async fn consent(
    w: &World,
    who: &(String, String, Vec<String>),
    accounts: &[&str],
    approve: bool,
    pkce: &Pkce,
    extra: impl FnOnce(&mut AuthorizationRequest),
) -> Result<String, Page> {
    let mut req = AuthorizationRequest {
        redirect_uri: REDIRECT.into(),
        scope: vec!["balance".into()],
        state: "st-123".into(),
        ..Default::default()
    };
    extra(&mut req);
    let par = w
        .client
        .par(&req, pkce)
        .await
        .unwrap()
        .expect("PAR accepted");
    assert!(par.expires_in <= 60);
    let mut b = Browser::new(&w.h.gateway_url, &w.h.ca_pem);
    let p = b
        .send("GET", &w.client.authorize_url(&par.request_uri), None)
        .await;
    let p = b.follow(p, REDIRECT).await;
    assert_eq!(p.status, 200, "{}", p.html);
    let csp = p.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    let csrf = input(&p.html, "csrf").expect("CSRF token on the login form");
    let p = b
        .send(
            "POST",
            &action(&p.html),
            Some(vec![
                ("csrf".into(), csrf),
                ("username".into(), who.0.clone()),
                ("password".into(), who.1.clone()),
                ("otp".into(), String::new()),
            ]),
        )
        .await;
    let p = b.follow(p, REDIRECT).await;
    if p.status != 200 || !p.html.contains("name=\"approve\"") {
        return Err(p);
    }
    // The consent page names the app's API and the customer's own accounts,
    // masked, never another customer's.
    assert!(
        p.html.contains("balance") || p.html.contains("Balance"),
        "{}",
        p.html
    );
    let csrf = input(&p.html, "csrf").expect("CSRF token on the consent form");
    let mut form = vec![("csrf".to_string(), csrf)];
    for a in accounts {
        form.push(("account".into(), a.to_string()));
    }
    form.push((if approve { "approve" } else { "deny" }.into(), "1".into()));
    let p = b.send("POST", &action(&p.html), Some(form)).await;
    let loc = p.location.clone().unwrap_or_default();
    if !loc.starts_with(REDIRECT) {
        return Err(p);
    }
    assert_eq!(query_param(&loc, "state").as_deref(), Some("st-123"));
    assert!(query_param(&loc, "iss").is_some(), "RFC 9207 iss: {loc}");
    match query_param(&loc, "code") {
        Some(c) => Ok(c),
        None => Err(p),
    }
}

async fn token(w: &World, who: &(String, String, Vec<String>), accounts: &[&str]) -> TokenResponse {
    let pkce = Pkce::new();
    let code = consent(w, who, accounts, true, &pkce, |_| {})
        .await
        .unwrap_or_else(|p| panic!("consent failed: {} {:?} {}", p.status, p.location, p.html));
    w.client
        .exchange_code(&code, REDIRECT, &pkce)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("token: {e:?}"))
}

async fn balance(w: &World, token: &str, account: &str) -> (u16, String) {
    let r = w
        .client
        .call_with_token(
            "GET",
            &format!("/v1/accounts/{account}/balance"),
            None,
            token,
        )
        .await
        .unwrap();
    (r.status, r.error().map(|e| e.code).unwrap_or_default())
}

#[tokio::test]
async fn usr_2_usr_4_the_whole_flow_from_par_to_a_balance_call() {
    let w = world().await;
    let t = token(&w, &w.alice, &["6222020000000001"]).await;
    assert_eq!(t.token_type, "Bearer");
    assert!(t.expires_in <= 300, "cmbc profile: {}", t.expires_in);
    let before = w.h.upstream.count();
    assert_eq!(
        balance(&w, &t.access_token, "6222020000000001").await,
        (200, String::new())
    );
    assert_eq!(w.h.upstream.count(), before + 1);
    // The upstream learned the verified customer and consent.
    let seen = w.h.upstream.last();
    let hdr = |n: &str| seen.headers.get(n).map(|v| v.to_str().unwrap().to_string());
    let user = hdr("x-menshen-customer-id").expect("customer id header");
    assert!(user.starts_with('C'));
    assert_eq!(
        hdr("x-menshen-consent-id").as_deref(),
        Some(t.consent_id.as_str())
    );
    // And the record names them.
    let recs = w.h.records().await;
    let rec = recs
        .iter()
        .rev()
        .find(|r| r.api_id.as_deref() == Some("balance"))
        .unwrap();
    assert_eq!(rec.user_id.as_deref(), Some(user.as_str()));
    assert_eq!(rec.consent_id.as_deref(), Some(t.consent_id.as_str()));
}

#[tokio::test]
async fn usr_4_tok_1_refusals_each_with_its_code_and_nothing_forwarded() {
    let w = world().await;
    let before = w.h.upstream.count();
    // No token.
    let r = w
        .client
        .call("GET", "/v1/accounts/6222020000000001/balance", None)
        .await
        .unwrap();
    assert_eq!(r.error().unwrap().code, "TOKEN_MISSING");
    // A made-up token.
    assert_eq!(
        balance(&w, "not-a-token", "6222020000000001").await.1,
        "TOKEN_INVALID"
    );
    // Another customer's account (horizontal escalation).
    let t = token(&w, &w.alice, &["6222020000000001"]).await;
    assert_eq!(
        balance(&w, &t.access_token, "6222020000000009").await.1,
        "ACCOUNT_NOT_CONSENTED"
    );
    // The refusal's record names whose consent it was (USR-4).
    let rec =
        w.h.records()
            .await
            .into_iter()
            .rev()
            .find(|r| r.code.as_deref() == Some("ACCOUNT_NOT_CONSENTED"))
            .unwrap();
    assert_eq!(rec.consent_id.as_deref(), Some(t.consent_id.as_str()));
    assert!(
        rec.user_id.as_deref().is_some_and(|u| u.starts_with('C')),
        "{rec:?}"
    );
    // The customer's own account she did not select.
    let t = token(&w, &w.alice, &["6222020000000001"]).await;
    assert_eq!(
        balance(&w, &t.access_token, "6222020000000002").await.1,
        "ACCOUNT_NOT_CONSENTED"
    );
    // cmbc: one call per token, even with both calls at once.
    let t = token(&w, &w.alice, &["6222020000000001"]).await;
    let (a, b) = tokio::join!(
        balance(&w, &t.access_token, "6222020000000001"),
        balance(&w, &t.access_token, "6222020000000001")
    );
    let mut codes = [a.1, b.1];
    codes.sort();
    assert_eq!(
        codes,
        [String::new(), "TOKEN_INVALID".to_string()],
        "one success, one refusal"
    );
    assert_eq!(
        w.h.upstream.count(),
        before + 1,
        "only the one allowed call was forwarded"
    );
}

#[tokio::test]
async fn tok_2_a_token_is_bound_to_its_app() {
    let w = world().await;
    let t = token(&w, &w.alice, &["6222020000000001"]).await;
    // Another app, granted the same API, presents alice's token.
    let (other, _) = w.h.app("other app", "server").await;
    let (key, pem) = PrivateKey::generate(SigAlg::Sm2Sm3).unwrap();
    w.h.add_key(&other, &key, None, None).await;
    w.h.grant(&other, "balance").await;
    let c =
        w.h.key_client(&other, PrivateKey::from_pkcs8_pem(&pem).unwrap(), None)
            .await;
    let r = c
        .call_with_token(
            "GET",
            "/v1/accounts/6222020000000001/balance",
            None,
            &t.access_token,
        )
        .await
        .unwrap();
    assert_eq!(r.error().unwrap().code, "TOKEN_INVALID");
}

#[tokio::test]
async fn usr_1_pkce_and_codes_single_use_and_bound() {
    let w = world().await;
    // Wrong verifier.
    let pkce = Pkce::new();
    let code = consent(&w, &w.alice, &["6222020000000001"], true, &pkce, |_| {})
        .await
        .ok()
        .unwrap();
    let wrong = Pkce::new();
    let e = w
        .client
        .exchange_code(&code, REDIRECT, &wrong)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.error, "invalid_grant");
    // A code is single use: a second redemption fails and revokes the
    // token of the first.
    let pkce = Pkce::new();
    let code = consent(&w, &w.alice, &["6222020000000001"], true, &pkce, |_| {})
        .await
        .ok()
        .unwrap();
    let t = w
        .client
        .exchange_code(&code, REDIRECT, &pkce)
        .await
        .unwrap()
        .unwrap();
    let e = w
        .client
        .exchange_code(&code, REDIRECT, &pkce)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.error, "invalid_grant");
    assert_eq!(
        balance(&w, &t.access_token, "6222020000000001").await.1,
        "TOKEN_INVALID"
    );
    // 50 concurrent redemptions of one code give exactly one token.
    let pkce = Pkce::new();
    let code = consent(&w, &w.alice, &["6222020000000001"], true, &pkce, |_| {})
        .await
        .ok()
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (c, code, v) = (w.client.clone(), code.clone(), pkce.verifier.to_string());
        tasks.push(tokio::spawn(async move {
            let p = Pkce {
                verifier: zeroize::Zeroizing::new(v),
                challenge: String::new(),
            };
            c.exchange_code(&code, REDIRECT, &p).await.unwrap().is_ok()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += usize::from(t.await.unwrap());
    }
    assert_eq!(ok, 1);
}

#[tokio::test]
async fn usr_6_auth_6_revocation_by_the_bank_and_the_app_is_refused_on_the_next_call() {
    let w = world().await;
    // Bank (admin API).
    let t = token(&w, &w.alice, &["6222020000000001"]).await;
    let (s, v) =
        w.h.admin(
            "POST",
            &format!("/v1/consents/{}/revoke", t.consent_id),
            None,
        )
        .await;
    assert!(s < 300, "{v}");
    let code = balance(&w, &t.access_token, "6222020000000001").await.1;
    assert!(
        code == "TOKEN_INVALID" || code == "CONSENT_NOT_ACTIVE",
        "{code}"
    );
    // App (DELETE on its consent).
    let t = token(&w, &w.alice, &["6222020000000001"]).await;
    assert!(w.client.revoke_consent(&t.consent_id).await.unwrap() < 300);
    let code = balance(&w, &t.access_token, "6222020000000001").await.1;
    assert!(
        code == "TOKEN_INVALID" || code == "CONSENT_NOT_ACTIVE",
        "{code}"
    );
    // The consent list shows both revoked, by whom.
    let (_, list) =
        w.h.admin("GET", &format!("/v1/consents?app_id={}", w.app), None)
            .await;
    let revoked: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["state"] == "revoked")
        .map(|c| c["revoked_by"].as_str().unwrap())
        .collect();
    assert!(
        revoked.contains(&"bank") && revoked.contains(&"app"),
        "{list}"
    );
}

#[tokio::test]
async fn usr_1_wrong_password_denied_consent_and_par_misuse() {
    let w = world().await;
    let pkce = Pkce::new();
    // Wrong password: no consent page.
    let bad = (w.alice.0.clone(), "wrong-password".to_string(), vec![]);
    let p = consent(&w, &bad, &[], true, &pkce, |_| {})
        .await
        .unwrap_err();
    assert!(!p.html.contains("name=\"approve\""));
    // Deny: redirect with error=access_denied, no code.
    let p = consent(&w, &w.alice, &["6222020000000001"], false, &pkce, |_| {})
        .await
        .unwrap_err();
    let loc = p.location.unwrap();
    assert!(
        loc.starts_with(REDIRECT) && loc.contains("error=access_denied"),
        "{loc}"
    );
    // An unregistered redirect URI is refused at PAR.
    let e = w
        .client
        .par(
            &AuthorizationRequest {
                redirect_uri: "https://evil.example/cb".into(),
                scope: vec!["balance".into()],
                state: "s".into(),
                ..Default::default()
            },
            &pkce,
        )
        .await
        .unwrap()
        .unwrap_err();
    assert!(e.status >= 400, "{e:?}");
    // /oauth2/authorize without PAR is refused, and never redirects.
    let mut b = Browser::new(&w.h.gateway_url, &w.h.ca_pem);
    let p = b
        .send(
            "GET",
            &format!(
                "/oauth2/authorize?client_id={}&response_type=code&redirect_uri={}",
                w.app,
                enc(REDIRECT)
            ),
            None,
        )
        .await;
    assert_eq!(p.status, 400);
    assert!(p.location.is_none());
    // A request_uri is single use.
    let par = w
        .client
        .par(
            &AuthorizationRequest {
                redirect_uri: REDIRECT.into(),
                scope: vec!["balance".into()],
                state: "s".into(),
                ..Default::default()
            },
            &pkce,
        )
        .await
        .unwrap()
        .unwrap();
    let mut b = Browser::new(&w.h.gateway_url, &w.h.ca_pem);
    let url = w.client.authorize_url(&par.request_uri);
    let first = b.send("GET", &url, None).await;
    assert_eq!(b.follow(first, REDIRECT).await.status, 200);
    let mut b2 = Browser::new(&w.h.gateway_url, &w.h.ca_pem);
    assert_eq!(b2.send("GET", &url, None).await.status, 400);
    let _ = &w.bob;
}

#[tokio::test]
async fn auth_6_suspending_an_app_voids_its_customers_tokens() {
    let w = world().await;
    let t = token(&w, &w.alice, &["6222020000000001"]).await;
    for action in ["suspend", "resume"] {
        let (s, v) =
            w.h.admin("POST", &format!("/v1/apps/{}/{action}", w.app), None)
                .await;
        assert!(s < 300, "{action}: {v}");
    }
    // Active again, but the token issued before the suspension stays dead.
    assert_eq!(
        balance(&w, &t.access_token, "6222020000000001").await.1,
        "TOKEN_INVALID"
    );
    // A fresh authorization works.
    let t = token(&w, &w.alice, &["6222020000000001"]).await;
    assert_eq!(
        balance(&w, &t.access_token, "6222020000000001").await,
        (200, String::new())
    );
}

#[tokio::test]
async fn usr_4_the_approval_is_recorded_with_the_browsers_ip_and_user_agent() {
    let w = world().await;
    let t = token(&w, &w.alice, &["6222020000000001"]).await;
    let recs = w.h.records().await;
    let approval = recs
        .iter()
        .find(|r| {
            r.path == "/oauth2/consent" && r.consent_id.as_deref() == Some(t.consent_id.as_str())
        })
        .expect("a record of the consent page's POST naming the consent");
    let reason = approval.reason.as_deref().unwrap_or_default();
    assert!(reason.contains("ConsentApproved"), "{reason}");
    assert!(reason.contains("browser 127.0.0.1"), "{reason}");
    assert!(approval.user_id.is_some());
}

/// TRF-1 `per = customer`: one counter per customer (the consent token's
/// user), checked after the consent check (`customer_limits`): alice's
/// second call of the day is refused (429 RATE_LIMITED, recorded with the
/// rule, not forwarded) while bob, another customer of the same app, still
/// gets his.
#[tokio::test]
async fn trf_1_a_customer_limit_counts_each_customer_apart() {
    let w = world().await;
    let (st, v) =
        w.h.admin(
            "POST",
            "/v1/limits",
            Some(serde_json::json!({"window": "day", "max": 1, "per": "customer"})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let id = v["id"].as_i64().unwrap();
    let a1 = w.alice.2[0].clone();
    let t = token(&w, &w.alice, &[&a1]).await;
    assert_eq!(
        balance(&w, &t.access_token, &a1).await,
        (200, String::new())
    );
    let t = token(&w, &w.alice, &[&a1]).await;
    let before = w.h.upstream.count();
    let r = w
        .client
        .call_with_token(
            "GET",
            &format!("/v1/accounts/{a1}/balance"),
            None,
            &t.access_token,
        )
        .await
        .unwrap();
    let body = r.error().expect("an error body");
    assert_eq!((r.status, body.code.as_str()), (429, "RATE_LIMITED"));
    assert_eq!(w.h.upstream.count(), before, "nothing forwarded");
    let rec = w.h.record(&body.txn_id).await;
    assert!(
        rec.reason
            .as_deref()
            .is_some_and(|x| x.contains(&format!("limit rule {id} reached"))),
        "{:?}",
        rec.reason
    );
    let b1 = w.bob.2[0].clone();
    let t = token(&w, &w.bob, &[&b1]).await;
    assert_eq!(
        balance(&w, &t.access_token, &b1).await,
        (200, String::new())
    );
}
