//! A2/A3 end to end: key-pair signatures with every algorithm, the bank's
//! signed responses verified by the SDK, mutation of every covered component,
//! key validity and rotation, level policy, mutual TLS binding, and replay
//! protection across a restart.

mod common;

use bytes::Bytes;
use common::{Harness, HarnessOptions};
use menshen_crypto::{PrivateKey, SigAlg};
use menshen_sdk::{Client, SdkError};
use serde_json::json;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An A2 API (GET + POST + PUT on /v1/accounts/{id}) and one server app
/// holding `alg` keys, granted all three.
async fn a2_setup(h: &Harness, alg: SigAlg) -> (String, PrivateKey) {
    let (app, key, _) = a2_setup_pem(h, alg).await;
    (app, key)
}

/// Like [`a2_setup`], also returning the key's PKCS#8 PEM.
async fn a2_setup_pem(h: &Harness, alg: SigAlg) -> (String, PrivateKey, String) {
    for (id, m) in [
        ("acct-get", "GET"),
        ("acct-post", "POST"),
        ("acct-put", "PUT"),
    ] {
        if h.admin("GET", &format!("/v1/apis/{id}"), None).await.0 == 404 {
            h.api(id, m, "/v1/accounts/{id}", "A2").await;
        }
    }
    let (app, _) = h.app(&format!("key app {}", alg.name()), "server").await;
    let (key, pem) = PrivateKey::generate(alg).unwrap();
    h.add_key(&app, &key, None, None).await;
    for id in ["acct-get", "acct-post", "acct-put"] {
        h.grant(&app, id).await;
    }
    (app, key, pem.to_string())
}

/// Expect a refusal with `code` that reached no upstream and was recorded.
async fn refused(h: &Harness, c: &Client, req: http::Request<Bytes>, code: &str) {
    let before = h.upstream.count();
    let r = c.send(req).await.unwrap_or_else(|e| panic!("{code}: {e}"));
    let body = r
        .error()
        .unwrap_or_else(|| panic!("{code}: no error body, status {}", r.status));
    assert_eq!(body.code, code, "{body:?}");
    assert_eq!(
        h.upstream.count(),
        before,
        "{code}: upstream must not be called"
    );
    assert_eq!(h.record(&body.txn_id).await.code.as_deref(), Some(code));
}

fn signed(c: &Client, method: &str, pq: &str, body: Option<&str>) -> http::Request<Bytes> {
    let mut req = c
        .request(method, pq, body.map(|b| b.as_bytes().to_vec()))
        .unwrap();
    c.sign(&mut req, None).unwrap();
    req
}

#[tokio::test]
async fn int_2_auth_2_every_algorithm_succeeds_and_response_signature_verifies() {
    let h = Harness::start().await;
    for alg in SigAlg::ALL {
        let (app, key) = a2_setup(&h, *alg).await;
        let c = h.key_client(&app, key, None).await;
        // `send` verifies the bank's signature; an Ok here means it verified.
        let r = c
            .call(
                "POST",
                "/v1/accounts/6222020200112233445?currency=CNY",
                Some(br#"{"amount":"1.00"}"#.to_vec()),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{alg:?}: {:?}", r.body);
        assert!(
            r.headers.contains_key("signature"),
            "{alg:?}: A2 responses are signed"
        );
        assert_eq!(h.upstream.last().headers["x-menshen-app-id"], app.as_str());
        let rec = h.record(r.txn_id().unwrap()).await;
        assert_eq!(rec.alg.as_deref(), Some(alg.name()));
        assert_eq!(rec.level.as_deref(), Some("A2"));
    }
    // The published key set carries the same key.
    let r = menshen_sdk::send(
        &menshen_sdk::http_client(Some(&h.ca_pem)).unwrap(),
        http::Request::get(format!("{}/.well-known/menshen/keys", h.gateway_url))
            .body(Bytes::new())
            .unwrap(),
    )
    .await
    .unwrap();
    assert!(
        r.headers.contains_key("x-menshen-txn-id"),
        "every response carries its txn_id"
    );
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let bank = h.bank_key_pem().await;
    assert!(v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k["public_key_pem"] == bank.as_str()));
    assert!(
        v["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["purpose"] == "encryption" && k["public_key_pem"] != bank.as_str()),
        "KEY-1: separate keys"
    );
}

#[tokio::test]
async fn int_2_every_covered_component_mutated_is_refused() {
    let h = Harness::start().await;
    let (app, key) = a2_setup(&h, SigAlg::Sm2Sm3).await;
    let c = h.key_client(&app, key, None).await;
    let base = || {
        signed(
            &c,
            "POST",
            "/v1/accounts/1?x=1",
            Some(r#"{"amount":"1.00"}"#),
        )
    };
    // Method.
    let mut r = base();
    *r.method_mut() = http::Method::PUT;
    refused(&h, &c, r, "INVALID_SIGNATURE").await;
    // Authority.
    let mut r = base();
    let port = h.node().gateway.addrs[0].port();
    r.headers_mut()
        .insert("host", format!("localhost:{port}").parse().unwrap());
    refused(&h, &c, r, "INVALID_SIGNATURE").await;
    // Path.
    let mut r = base();
    *r.uri_mut() = format!("{}/v1/accounts/2?x=1", h.gateway_url)
        .parse()
        .unwrap();
    refused(&h, &c, r, "INVALID_SIGNATURE").await;
    // Query.
    let mut r = base();
    *r.uri_mut() = format!("{}/v1/accounts/1?x=2", h.gateway_url)
        .parse()
        .unwrap();
    refused(&h, &c, r, "INVALID_SIGNATURE").await;
    // Body.
    let mut r = base();
    *r.body_mut() = Bytes::from_static(br#"{"amount":"9.00"}"#);
    refused(&h, &c, r, "DIGEST_MISMATCH").await;
    // Digest (with a matching body).
    let mut r = base();
    let evil = br#"{"amount":"9.00"}"#;
    *r.body_mut() = Bytes::from_static(evil);
    r.headers_mut().insert(
        "content-digest",
        menshen_protocol::content_digest(menshen_crypto::DigestAlg::Sha256, evil)
            .parse()
            .unwrap(),
    );
    refused(&h, &c, r, "INVALID_SIGNATURE").await;
    // Each parameter.
    let (other_app, _) = h.app("other", "server").await;
    type Mutation = Box<dyn Fn(&str) -> String>;
    let mutations: Vec<(Mutation, &str)> = vec![
        (
            Box::new(|si: &str| {
                let created: i64 = si
                    .split("created=")
                    .nth(1)
                    .unwrap()
                    .split(';')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                si.replace(
                    &format!("created={created}"),
                    &format!("created={}", created - 1),
                )
            }),
            "INVALID_SIGNATURE",
        ),
        (
            Box::new(|si: &str| si.replacen("nonce=\"", "nonce=\"X", 1)),
            "INVALID_SIGNATURE",
        ),
        (
            Box::new(move |si: &str| {
                let keyid = si
                    .split("keyid=\"")
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap();
                si.replace(keyid, &other_app)
            }),
            "INVALID_SIGNATURE",
        ),
        (
            // An alg the app has no key of answers like a bad signature
            // (CONF-5: no App_ID oracle).
            Box::new(|si: &str| si.replace("alg=\"sm2-sm3\"", "alg=\"ed25519\"")),
            "INVALID_SIGNATURE",
        ),
        (
            Box::new(|si: &str| si.replace("\"content-digest\" ", "")),
            "MALFORMED_SIGNATURE",
        ),
    ];
    for (m, code) in mutations {
        let mut r = base();
        let si = r.headers()["signature-input"].to_str().unwrap().to_string();
        let mutated = m(&si);
        assert_ne!(mutated, si);
        r.headers_mut()
            .insert("signature-input", mutated.parse().unwrap());
        // Keep X-App-Id consistent with keyid so the keyid check is the one that fires.
        if let Some(k) = mutated
            .split("keyid=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
        {
            r.headers_mut().insert("x-app-id", k.parse().unwrap());
        }
        refused(&h, &c, r, code).await;
    }
    // The signature value itself.
    let mut r = base();
    r.headers_mut()
        .insert("signature", "sig1=:AAAA:".parse().unwrap());
    refused(&h, &c, r, "INVALID_SIGNATURE").await;
    // And the unmodified request still goes through (the mutations were the cause).
    let r = c.send(base()).await.unwrap();
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn auth_1_another_apps_key_and_alg_confusion_refused() {
    let h = Harness::start().await;
    let (app_a, _key_a) = a2_setup(&h, SigAlg::Sm2Sm3).await;
    let (_app_b, key_b) = a2_setup(&h, SigAlg::Sm2Sm3).await;
    // B's key, claiming to be A.
    let forged = h.key_client(&app_a, key_b, None).await;
    refused(
        &h,
        &forged,
        signed(&forged, "GET", "/v1/accounts/1", None),
        "INVALID_SIGNATURE",
    )
    .await;
    // A's keys are SM2: a P-256 signature claiming its own alg is refused as
    // algorithm confusion, whatever key made it, with the answer of a bad
    // signature (CONF-5: the code tells nothing about A's keys).
    let (p256, _) = PrivateKey::generate(SigAlg::EcdsaP256Sha256).unwrap();
    let confused = h.key_client(&app_a, p256, None).await;
    refused(
        &h,
        &confused,
        signed(&confused, "GET", "/v1/accounts/1", None),
        "INVALID_SIGNATURE",
    )
    .await;
}

#[tokio::test]
async fn key_2_expired_and_not_yet_valid_keys_refused_rotation_overlap_works() {
    let h = Harness::start().await;
    let (app, key1) = a2_setup(&h, SigAlg::Ed25519).await;
    let (_, k1_pem) = (0, key1.public_key().to_pem());
    let c1 = h.key_client(&app, key1, None).await;
    assert_eq!(
        c1.call("GET", "/v1/accounts/1", None).await.unwrap().status,
        200
    );
    // Rotation: a second key; both work during the overlap.
    let (key2, _) = PrivateKey::generate(SigAlg::Ed25519).unwrap();
    let id2 = h.add_key(&app, &key2, None, None).await;
    let c2 = h.key_client(&app, key2, None).await;
    assert_eq!(
        c1.call("GET", "/v1/accounts/1", None).await.unwrap().status,
        200
    );
    assert_eq!(
        c2.call("GET", "/v1/accounts/1", None).await.unwrap().status,
        200
    );
    // A third active key is refused.
    let (key3, _) = PrivateKey::generate(SigAlg::Ed25519).unwrap();
    let (s, v) = h
        .admin(
            "POST",
            &format!("/v1/apps/{app}/keys"),
            Some(json!({"public_key_pem": key3.public_key().to_pem()})),
        )
        .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (409, Some("public_key_pem")),
        "{v}"
    );
    // Retire key 1: only key 2 works.
    let (_, creds) = h
        .admin("GET", &format!("/v1/apps/{app}/credentials"), None)
        .await;
    let id1 = creds
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["public_pem"] == k1_pem.as_str())
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    assert_ne!(id1, id2);
    assert_eq!(
        h.admin("DELETE", &format!("/v1/apps/{app}/credentials/{id1}"), None)
            .await
            .0,
        204
    );
    refused(
        &h,
        &c1,
        signed(&c1, "GET", "/v1/accounts/1", None),
        "INVALID_SIGNATURE",
    )
    .await;
    assert_eq!(
        c2.call("GET", "/v1/accounts/1", None).await.unwrap().status,
        200
    );
    // Expired and not-yet-valid keys.
    assert_eq!(
        h.admin("DELETE", &format!("/v1/apps/{app}/credentials/{id2}"), None)
            .await
            .0,
        204
    );
    let (old, _) = PrivateKey::generate(SigAlg::Ed25519).unwrap();
    h.add_key(&app, &old, Some(now() - 3600), Some(now() - 60))
        .await;
    let c_old = h.key_client(&app, old, None).await;
    refused(
        &h,
        &c_old,
        signed(&c_old, "GET", "/v1/accounts/1", None),
        "INVALID_SIGNATURE",
    )
    .await;
    let (future, _) = PrivateKey::generate(SigAlg::Ed25519).unwrap();
    h.add_key(&app, &future, Some(now() + 3600), None).await;
    let c_future = h.key_client(&app, future, None).await;
    refused(
        &h,
        &c_future,
        signed(&c_future, "GET", "/v1/accounts/1", None),
        "INVALID_SIGNATURE",
    )
    .await;
}

#[tokio::test]
async fn lvl_3_lvl_4_level_minimums_enforced_in_config_and_at_the_gateway() {
    let h = Harness::start().await;
    let up = h.upstream_url.clone();
    // An API cannot be configured below its level's minimum.
    for (controls, field) in [
        (json!({"auth": ["secret"]}), "controls.auth"),
        (json!({"auth": ["key_pair", "secret"]}), "controls.auth"),
        (json!({"sign_responses": false}), "controls.sign_responses"),
        (json!({"auth": []}), "controls.auth"),
    ] {
        let (s, v) = h
            .admin("POST", "/v1/apis", Some(json!({"api_id": "weak", "method": "GET", "path": "/v1/weak", "upstream": up, "level": "A2", "category": 1, "subcategory": 1, "controls": controls})))
            .await;
        assert_eq!((s, v["field"].as_str()), (400, Some(field)), "{v}");
        assert!(
            v["message"].as_str().unwrap().contains("missing control") || field == "controls.auth",
            "{v}"
        );
    }
    // An A1 API may add controls (signed responses).
    let (s, v) = h
        .admin("POST", "/v1/apis", Some(json!({"api_id": "a1signed", "method": "GET", "path": "/v1/a1signed", "upstream": up, "level": "A1", "category": 3, "subcategory": 1, "controls": {"sign_responses": true}})))
        .await;
    assert_eq!(s, 201, "{v}");
    // A secret-only app cannot be granted an A2 API.
    h.api("acct-get", "GET", "/v1/accounts/{id}", "A2").await;
    let (secret_app, secret) = h.app("secret only", "server").await;
    let (s, v) = h
        .admin(
            "POST",
            "/v1/grants",
            Some(json!({"app_id": secret_app, "api_id": "acct-get"})),
        )
        .await;
    assert_eq!((s, v["field"].as_str()), (400, Some("api_id")), "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("missing control"),
        "{v}"
    );
    // ... and if granted anyway (an older grant), the gateway refuses the MAC-only call.
    h.node()
        .cp
        .store
        .add_grant(&secret_app, "acct-get")
        .await
        .unwrap();
    h.node()
        .gateway
        .snapshot
        .refresh(&h.node().cp)
        .await
        .unwrap();
    let sc = h.client(&secret_app, &secret);
    refused(
        &h,
        &sc,
        signed(&sc, "GET", "/v1/accounts/1", None),
        "INSUFFICIENT_AUTHENTICATION",
    )
    .await;
    // A mobile app with a key: the grant is refused, and the gateway refuses it too.
    let (mobile, _) = h.app("mobile", "mobile").await;
    let (mk, _) = PrivateKey::generate(SigAlg::Sm2Sm3).unwrap();
    h.add_key(&mobile, &mk, None, None).await;
    let (s, v) = h
        .admin(
            "POST",
            "/v1/grants",
            Some(json!({"app_id": mobile, "api_id": "acct-get"})),
        )
        .await;
    assert_eq!((s, v["field"].as_str()), (400, Some("app_id")), "{v}");
    h.node()
        .cp
        .store
        .add_grant(&mobile, "acct-get")
        .await
        .unwrap();
    h.node()
        .gateway
        .snapshot
        .refresh(&h.node().cp)
        .await
        .unwrap();
    let mc = h.key_client(&mobile, mk, None).await;
    refused(
        &h,
        &mc,
        signed(&mc, "GET", "/v1/accounts/1", None),
        "CLIENT_KIND_NOT_ALLOWED",
    )
    .await;
}

#[tokio::test]
async fn auth_2_error_responses_are_signed_and_sdk_refuses_bad_or_missing_signatures() {
    let h = Harness::start().await;
    let (app, key) = a2_setup(&h, SigAlg::Sm2Sm3).await;
    let c = h.key_client(&app, key, None).await;
    // An error on an A2 API is signed too (the SDK verified it inside send).
    h.admin("DELETE", &format!("/v1/grants/{app}/acct-get"), None)
        .await;
    let r = c.call("GET", "/v1/accounts/1", None).await.unwrap();
    assert_eq!(r.error().unwrap().code, "NOT_GRANTED");
    assert!(r.headers.contains_key("signature"));
    // A client that trusts another bank key refuses the response.
    let (wrong, _) = PrivateKey::generate(SigAlg::Sm2Sm3).unwrap();
    let (k2, _) = PrivateKey::generate(SigAlg::Sm2Sm3).unwrap();
    h.add_key(&app, &k2, None, None).await;
    let bad = Client::builder(&h.gateway_url)
        .unwrap()
        .ca_pem(&h.ca_pem)
        .credentials(menshen_sdk::Credentials::key_pair(&app, k2))
        .bank_public_key_pem(&wrong.public_key().to_pem())
        .unwrap()
        .build()
        .unwrap();
    match bad
        .call("POST", "/v1/accounts/1", Some(b"{}".to_vec()))
        .await
    {
        Err(SdkError::ResponseSignature(_)) => {}
        other => panic!("expected a response-signature error, got {other:?}"),
    }
    // An unsigned response (A1 API) is refused by a client requiring signatures.
    h.api("pub", "GET", "/v1/pub", "A1").await;
    h.grant(&app, "pub").await;
    match c.call("GET", "/v1/pub", None).await {
        Err(SdkError::ResponseSignature(m)) => assert!(m.contains("not signed"), "{m}"),
        other => panic!("expected refusal of an unsigned response, got {other:?}"),
    }
}

#[tokio::test]
async fn auth_2_client_certificate_binding() {
    let h = Harness::start_with(HarnessOptions {
        client_certs: 2,
        ..Default::default()
    })
    .await;
    let (app_a, _key_a, pem_a) = a2_setup_pem(&h, SigAlg::Sm2Sm3).await;
    let (app_b, _key_b) = a2_setup(&h, SigAlg::Sm2Sm3).await;
    let key_a = || PrivateKey::from_pkcs8_pem(&pem_a).unwrap();
    let pki = h.client_pki.as_ref().unwrap();
    for (app, i) in [(&app_a, 0), (&app_b, 1)] {
        let (s, v) = h
            .admin(
                "POST",
                &format!("/v1/apps/{app}/certificates"),
                Some(json!({"certificate_pem": pki.clients[i].0})),
            )
            .await;
        assert_eq!(s, 201, "{v}");
    }
    // A presents B's certificate: refused.
    let a_with_b = h.key_client(&app_a, key_a(), Some(1)).await;
    refused(
        &h,
        &a_with_b,
        signed(&a_with_b, "GET", "/v1/accounts/1", None),
        "CLIENT_CERTIFICATE_MISMATCH",
    )
    .await;
    // A with its own certificate: fine.
    let a_with_a = h.key_client(&app_a, key_a(), Some(0)).await;
    let r = a_with_a.call("GET", "/v1/accounts/1", None).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(h.record(r.txn_id().unwrap()).await.client_cert.is_some());
    // A requires its certificate: without one it is refused.
    let (s, _) = h
        .admin(
            "POST",
            &format!("/v1/apps/{app_a}/require-client-cert"),
            Some(json!({"required": true})),
        )
        .await;
    assert_eq!(s, 200);
    let a_bare = h.key_client(&app_a, key_a(), None).await;
    refused(
        &h,
        &a_bare,
        signed(&a_bare, "GET", "/v1/accounts/1", None),
        "CLIENT_CERTIFICATE_MISMATCH",
    )
    .await;
    assert_eq!(
        a_with_a
            .call("GET", "/v1/accounts/1", None)
            .await
            .unwrap()
            .status,
        200
    );
    // Certificate-bound identity: an App_Secret MAC over A's own certificate is
    // accepted on an A2 API that allows certificate authentication.
    let (s, v) = h
        .admin("POST", &format!("/v1/apps/{app_a}/secret-rotate"), None)
        .await;
    assert_eq!(s, 200);
    let secret = v["app_secret"].as_str().unwrap();
    let mac_cert = Client::builder(&h.gateway_url)
        .unwrap()
        .ca_pem(&h.ca_pem)
        .credentials(menshen_sdk::Credentials::hmac_sm3(
            &app_a,
            secret.as_bytes().to_vec(),
        ))
        .client_cert_pem(pki.clients[0].0.as_bytes(), pki.clients[0].1.as_bytes())
        .bank_public_key_pem(&h.bank_key_pem().await)
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(
        mac_cert
            .call("GET", "/v1/accounts/1", None)
            .await
            .unwrap()
            .status,
        200
    );
}

#[tokio::test]
async fn int_4_replay_of_an_a2_request_after_restart_is_refused() {
    let h = Harness::start().await;
    let (app, key) = a2_setup(&h, SigAlg::Sm2Sm3).await;
    let c = h.key_client(&app, key, None).await;
    let req = signed(&c, "POST", "/v1/accounts/1", Some(r#"{"amount":"5.00"}"#));
    let again = req.clone();
    assert_eq!(c.send(req).await.unwrap().status, 200);
    // Restart the node on the same store, log and address.
    let h = h.restart().await;
    let r = c.send(again).await.unwrap();
    let body = r.error().expect("the replay is refused");
    assert_eq!(body.code, "REPLAYED_REQUEST");
    assert_eq!(
        h.record(&body.txn_id).await.code.as_deref(),
        Some("REPLAYED_REQUEST")
    );
}
