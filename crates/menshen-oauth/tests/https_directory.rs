//! `HttpsDirectory` against a small identity service on 127.0.0.1 over TLS
//! (USR-1: the bank's own identity service, the JSON contract of the crate
//! docs), and a whole authorization with it.

mod common;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use menshen_model::TokenProfile;
use menshen_oauth::{
    AuthServer, CustomerAuthenticator, HttpsDirectory, HttpsDirectoryConfig, LoginError,
    OAuthConfig,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

const SERVICE_TOKEN: &str = "svc-token-1";

async fn service(
    req: hyper::Request<hyper::body::Incoming>,
    hits: Arc<AtomicUsize>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    hits.fetch_add(1, Ordering::SeqCst);
    let reply = |status: u16, body: &str| {
        let mut r = hyper::Response::new(Full::new(Bytes::from(body.to_string())));
        *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
        r.headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        Ok(r)
    };
    let authed = req
        .headers()
        .get("authorization")
        .is_some_and(|v| v == &format!("Bearer {SERVICE_TOKEN}")[..]);
    if !authed {
        return reply(403, "{}");
    }
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let j: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let dana = r#"{"user_id":"U-dana","display_name":"Dana 赵","accounts":["6222021111111111"],"has_totp":true}"#;
    match (method.as_str(), path.as_str()) {
        ("POST", "/v1/authenticate") => match (j["username"].as_str(), j["password"].as_str()) {
            (Some("dana"), Some("pw-ok")) => reply(200, dana),
            (Some("locked"), _) => reply(423, r#"{"locked_until": 2000000000}"#),
            _ => reply(401, "{}"),
        },
        ("POST", "/v1/otp") => match (j["user_id"].as_str(), j["otp"].as_str()) {
            (Some("U-dana"), Some("123456")) => reply(204, ""),
            _ => reply(401, "{}"),
        },
        ("GET", "/v1/customers/U-dana") => reply(200, dana),
        ("GET", _) => reply(404, "{}"),
        _ => reply(500, "{}"),
    }
}

/// Start the identity service; returns its base URL, CA PEM and hit count.
async fn start() -> (String, String, Arc<AtomicUsize>) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let ca_pem = ck.cert.pem();
    let cert = CertificateDer::from(ck.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()));
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let h = h.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = service_fn(move |req| service(req, h.clone()));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (format!("https://127.0.0.1:{port}"), ca_pem, hits)
}

fn directory(base: &str, ca: &str) -> Arc<HttpsDirectory> {
    HttpsDirectory::new(HttpsDirectoryConfig {
        base_url: base.into(),
        ca_pem: ca.into(),
        service_token: Some(zeroize::Zeroizing::new(SERVICE_TOKEN.into())),
        timeout: Duration::from_secs(5),
    })
    .unwrap()
}

#[tokio::test]
async fn usr_1_https_directory_speaks_the_contract() {
    let (base, ca, hits) = start().await;
    let d = directory(&base, &ca);
    let c = d.password("dana", "pw-ok", 0).await.unwrap();
    assert_eq!(c.user_id, "U-dana");
    assert_eq!(c.username, "dana");
    assert_eq!(c.accounts, vec!["6222021111111111".to_string()]);
    assert!(c.has_totp);
    assert!(matches!(
        d.password("dana", "bad", 0).await,
        Err(LoginError::Invalid { .. })
    ));
    assert!(matches!(
        d.password("locked", "x", 0).await,
        Err(LoginError::Locked {
            until: 2_000_000_000,
            ..
        })
    ));
    d.second_factor("U-dana", "123456", 0).await.unwrap();
    assert!(matches!(
        d.second_factor("U-dana", "654321", 0).await,
        Err(LoginError::Invalid { .. })
    ));
    assert_eq!(
        d.customer("U-dana").await.unwrap().unwrap().display_name,
        "Dana 赵"
    );
    assert_eq!(d.customer("U-nobody").await.unwrap(), None);
    assert_eq!(d.customer("../admin").await.unwrap(), None, "never sent");
    assert!(hits.load(Ordering::SeqCst) >= 7);

    // Plain http and a wrong CA are refused.
    assert!(HttpsDirectory::new(HttpsDirectoryConfig {
        base_url: base.replace("https", "http"),
        ca_pem: ca.clone(),
        service_token: None,
        timeout: Duration::from_secs(1),
    })
    .is_err());
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let d2 = directory(&base, &other.cert.pem());
    assert!(matches!(
        d2.password("dana", "pw-ok", 0).await,
        Err(LoginError::Unavailable(_))
    ));
    // A dead service fails closed.
    let d3 = directory("https://127.0.0.1:9", &ca);
    assert!(matches!(
        d3.password("dana", "pw-ok", 0).await,
        Err(LoginError::Unavailable(_))
    ));
}

#[tokio::test]
async fn usr_1_whole_authorization_with_the_banks_identity_service() {
    let (base, ca, _) = start().await;
    let e = common::env(TokenProfile::Zjrcb).await;
    let srv = Arc::new(AuthServer::new(
        OAuthConfig {
            issuer: common::ISSUER.into(),
            token_profile: TokenProfile::Zjrcb,
            ..OAuthConfig::default()
        },
        e.cp.clone(),
        e.hot.clone(),
        directory(&base, &ca),
    ));
    let t = common::now();
    let uri = common::par_uri(&srv, &e.app, "balance", &[], t).await;
    let mut b = common::Browser::default();
    let r = common::open_and_login(&mut b, &srv, &e.app, &uri, "dana", "", t).await;
    assert_eq!(r.status(), 401, "dana has a TOTP: the OTP is asked");
    let html = common::body_text(&r);
    let r = b
        .post(
            &srv,
            "/oauth2/login",
            &[
                ("csrf", &common::csrf_of(&html)),
                ("username", "dana"),
                ("password", "pw-ok"),
                ("otp", "123456"),
            ],
            t,
        )
        .await;
    assert_eq!(r.status(), 303, "{}", common::body_text(&r));
    let r = common::approve(&mut b, &srv, &["6222021111111111"], t).await;
    let code = common::query_param(&common::location(&r), "code").unwrap();
    let j = common::body_json(&common::redeem(&srv, &e.app, &code, t).await);
    let g = srv
        .check_call(
            j["access_token"].as_str(),
            &e.app,
            "balance",
            Some("6222021111111111"),
            t,
        )
        .await
        .unwrap();
    assert_eq!(g.user_id, "U-dana");
}
