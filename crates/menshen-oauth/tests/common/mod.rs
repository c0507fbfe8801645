//! Test harness: a real SQLite store in a temp dir, the in-process hot
//! state, the built-in directory, and a cookie-keeping "browser" that
//! drives `AuthServer::handle_web` like the gateway would.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use bytes::Bytes;
use menshen_crypto::MasterKey;
use menshen_model::{AppKind, Customer, Level, Method, NewApi, NewApp, TokenProfile};
use menshen_oauth::{AppCaller, AuthServer, BuiltinDirectory, OAuthConfig, SignedEndpoint};
use menshen_store::{ControlPlane, MemoryHotState, SqliteStore, UApiConfig};

pub const REDIRECT: &str = "https://app.example/cb";
pub const ISSUER: &str = "https://bank.example";
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
pub const PASSWORD: &str = "correct horse 1";

pub struct Env {
    pub _dir: tempfile::TempDir,
    pub cp: ControlPlane,
    pub hot: Arc<MemoryHotState>,
    pub srv: Arc<AuthServer>,
    pub app: AppCaller,
    pub app_b: AppCaller,
    /// alice: accounts 6222020000000001/2, TOTP enrolled.
    pub alice: Customer,
    pub alice_totp: Vec<u8>,
    /// bob: account 6222020000000003, password only.
    pub bob: Customer,
    /// carol: account 6222020000000004, TOTP (an agent).
    pub carol: Customer,
    pub carol_totp: Vec<u8>,
}

pub fn now() -> i64 {
    menshen_store::now_unix()
}

fn api(id: &str, path: &str, level: Level) -> NewApi {
    NewApi {
        api_id: id.into(),
        version: "v1".into(),
        name: Some(format!("{id} 查询")),
        method: Method::Get,
        path: path.into(),
        upstream: "http://127.0.0.1:9".into(),
        level,
        integrations: vec![],
        owner: None,
        category: 1,
        subcategory: 1,
        lifecycle: None,
        controls: None,
    }
}

pub async fn env(profile: TokenProfile) -> Env {
    env_with(profile, false).await
}

/// With the opt-in consent cache on or off.
pub async fn env_with(profile: TokenProfile, consent_cache: bool) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("menshen.db")).unwrap());
    let master = Arc::new(MasterKey::from_text(&MasterKey::generate()).unwrap());
    let cp = ControlPlane::new(
        store,
        master,
        UApiConfig {
            prefix: "0P".into(),
            institution: "C10305".into(),
        },
    );
    cp.create_api(&api(
        "balance",
        "/v1/accounts/{account_id}/balance",
        Level::A2,
    ))
    .await
    .unwrap();
    cp.create_api(&api(
        "history",
        "/v1/accounts/{account_id}/history",
        Level::A2,
    ))
    .await
    .unwrap();
    cp.create_api(&api("transfer", "/v1/transfers", Level::A3))
        .await
        .unwrap();
    let mut callers = Vec::new();
    for name in ["Fintech A", "Fintech B"] {
        let a = cp
            .create_app(&NewApp {
                name: name.into(),
                kind: AppKind::Server,
                contact: None,
                notify_url: None,
            })
            .await
            .unwrap();
        for api in ["balance", "history", "transfer"] {
            cp.store.add_grant(&a.app.app_id, api).await.unwrap();
        }
        cp.store
            .set_redirect_uris(&a.app.app_id, &[REDIRECT.to_string()])
            .await
            .unwrap();
        callers.push(AppCaller {
            app_id: a.app.app_id,
            kind: AppKind::Server,
            client_cert: None,
        });
    }
    let (alice, t) = cp
        .create_customer(
            "alice",
            "Alice 张",
            PASSWORD,
            vec!["6222020000000001".into(), "6222020000000002".into()],
            true,
        )
        .await
        .unwrap();
    let alice_totp = menshen_crypto::totp::base32_decode(&t.unwrap())
        .unwrap()
        .to_vec();
    let (bob, _) = cp
        .create_customer(
            "bob",
            "Bob 李",
            PASSWORD,
            vec!["6222020000000003".into()],
            false,
        )
        .await
        .unwrap();
    let (carol, t) = cp
        .create_customer(
            "carol",
            "Carol 王",
            PASSWORD,
            vec!["6222020000000004".into()],
            true,
        )
        .await
        .unwrap();
    let carol_totp = menshen_crypto::totp::base32_decode(&t.unwrap())
        .unwrap()
        .to_vec();
    let hot = Arc::new(MemoryHotState::default());
    let cfg = OAuthConfig {
        issuer: ISSUER.into(),
        token_profile: profile,
        ..OAuthConfig::default()
    };
    let dirc = BuiltinDirectory::new(cp.clone(), cfg.lock_after, cfg.lock_secs);
    let srv = Arc::new(
        AuthServer::new(cfg, cp.clone(), hot.clone(), dirc).with_consent_cache(consent_cache),
    );
    let app_b = callers.pop().unwrap();
    let app = callers.pop().unwrap();
    Env {
        _dir: dir,
        cp,
        hot,
        srv,
        app,
        app_b,
        alice,
        alice_totp,
        bob,
        carol,
        carol_totp,
    }
}

fn parts(method: &str, uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
    let mut b = http::Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap().into_parts().0
}

pub fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish().into_bytes()
}

pub fn body_json(r: &http::Response<Bytes>) -> serde_json::Value {
    serde_json::from_slice(r.body()).unwrap_or(serde_json::Value::Null)
}

pub fn body_text(r: &http::Response<Bytes>) -> String {
    String::from_utf8_lossy(r.body()).into_owned()
}

/// A signed endpoint call (the gateway verified the signature).
pub async fn signed(
    srv: &AuthServer,
    ep: SignedEndpoint,
    caller: &AppCaller,
    pairs: &[(&str, &str)],
    now: i64,
) -> http::Response<Bytes> {
    let path = match &ep {
        SignedEndpoint::Par => "/oauth2/par".to_string(),
        SignedEndpoint::Token => "/oauth2/token".to_string(),
        SignedEndpoint::Revoke => "/oauth2/revoke".to_string(),
        SignedEndpoint::Introspect => "/oauth2/introspect".to_string(),
        SignedEndpoint::DeleteConsent(id) => format!("/oauth2/consents/{id}"),
    };
    let p = parts(
        "POST",
        &path,
        &[("content-type", "application/x-www-form-urlencoded")],
    );
    srv.handle_signed(ep, caller, &p, &form(pairs), now).await
}

/// A standard PAR: returns the response.
pub async fn par_with(
    srv: &AuthServer,
    caller: &AppCaller,
    scope: &str,
    extra: &[(&str, &str)],
    now: i64,
) -> http::Response<Bytes> {
    let mut pairs = vec![
        ("response_type", "code"),
        ("client_id", caller.app_id.as_str()),
        ("redirect_uri", REDIRECT),
        ("scope", scope),
        ("state", "st-123"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    for (k, v) in extra {
        pairs.retain(|(n, _)| n != k);
        pairs.push((k, v));
    }
    pairs.retain(|(_, v)| !v.is_empty());
    signed(srv, SignedEndpoint::Par, caller, &pairs, now).await
}

pub async fn par_uri(
    srv: &AuthServer,
    caller: &AppCaller,
    scope: &str,
    extra: &[(&str, &str)],
    now: i64,
) -> String {
    let r = par_with(srv, caller, scope, extra, now).await;
    assert_eq!(r.status(), 201, "{}", body_text(&r));
    body_json(&r)["request_uri"].as_str().unwrap().to_string()
}

/// A browser: keeps the session cookie.
#[derive(Default)]
pub struct Browser {
    pub cookie: Option<String>,
}

pub const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));

impl Browser {
    fn keep_cookie(&mut self, r: &http::Response<Bytes>) {
        for v in r.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let first = v.split(';').next().unwrap();
            let (k, val) = first.split_once('=').unwrap();
            assert_eq!(k, "menshen_sess");
            assert!(
                v.contains("Secure") && v.contains("HttpOnly") && v.contains("SameSite=Strict")
            );
            self.cookie = if val.is_empty() {
                None
            } else {
                Some(val.to_string())
            };
        }
    }

    fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![("user-agent", "TestBrowser/1.0".to_string())];
        if let Some(c) = &self.cookie {
            h.push(("cookie", format!("menshen_sess={c}")));
        }
        h
    }

    pub async fn get(&mut self, srv: &AuthServer, uri: &str, now: i64) -> http::Response<Bytes> {
        let h = self.headers();
        let hr: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = srv
            .handle_web(&parts("GET", uri, &hr), b"", IP, now)
            .await
            .expect("an AS path");
        self.keep_cookie(&r);
        r
    }

    pub async fn post(
        &mut self,
        srv: &AuthServer,
        uri: &str,
        pairs: &[(&str, &str)],
        now: i64,
    ) -> http::Response<Bytes> {
        let mut h = self.headers();
        h.push(("content-type", "application/x-www-form-urlencoded".into()));
        let hr: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = srv
            .handle_web(&parts("POST", uri, &hr), &form(pairs), IP, now)
            .await
            .expect("an AS path");
        self.keep_cookie(&r);
        r
    }
}

pub fn csrf_of(html: &str) -> String {
    let i = html.find("name=\"csrf\" value=\"").expect("csrf input") + 19;
    html[i..].split('"').next().unwrap().to_string()
}

pub fn location(r: &http::Response<Bytes>) -> String {
    r.headers()["location"].to_str().unwrap().to_string()
}

pub fn query_param(url: &str, name: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

pub fn otp(secret: &[u8], now: i64) -> String {
    menshen_crypto::totp::totp_at(secret, now)
}

/// Open the authorize URL of `request_uri` and log in; returns the
/// response of the login POST.
pub async fn open_and_login(
    b: &mut Browser,
    srv: &AuthServer,
    caller: &AppCaller,
    request_uri: &str,
    username: &str,
    otp: &str,
    now: i64,
) -> http::Response<Bytes> {
    let q = form(&[("client_id", &caller.app_id), ("request_uri", request_uri)]);
    let r = b
        .get(
            srv,
            &format!("/oauth2/authorize?{}", String::from_utf8(q).unwrap()),
            now,
        )
        .await;
    assert_eq!(r.status(), 200, "{}", body_text(&r));
    let csrf = csrf_of(&body_text(&r));
    b.post(
        srv,
        "/oauth2/login",
        &[
            ("csrf", &csrf),
            ("username", username),
            ("password", PASSWORD),
            ("otp", otp),
        ],
        now,
    )
    .await
}

/// Approve on the consent page the browser is at, choosing `accounts`;
/// returns the response of the consent POST.
pub async fn approve(
    b: &mut Browser,
    srv: &AuthServer,
    accounts: &[&str],
    now: i64,
) -> http::Response<Bytes> {
    let r = b.get(srv, "/oauth2/authorize", now).await;
    assert_eq!(r.status(), 200, "{}", body_text(&r));
    let html = body_text(&r);
    assert!(html.contains("name=\"approve\"") && html.contains("name=\"deny\""));
    let csrf = csrf_of(&html);
    let mut pairs = vec![("csrf", csrf.as_str()), ("approve", "1")];
    for a in accounts {
        pairs.push(("account", a));
    }
    b.post(srv, "/oauth2/consent", &pairs, now).await
}

/// The whole flow for `who` (alice needs her OTP, bob has none): PAR,
/// login, approve `accounts`; returns the code.
pub async fn code_for(
    e: &Env,
    caller: &AppCaller,
    who: &str,
    scope: &str,
    accounts: &[&str],
    extra: &[(&str, &str)],
    now: i64,
) -> String {
    let uri = par_uri(&e.srv, caller, scope, extra, now).await;
    let mut b = Browser::default();
    let code = match who {
        "alice" => otp(&e.alice_totp, now),
        "carol" => otp(&e.carol_totp, now),
        _ => String::new(),
    };
    let r = open_and_login(&mut b, &e.srv, caller, &uri, who, &code, now).await;
    assert_eq!(r.status(), 303, "{}", body_text(&r));
    let r = approve(&mut b, &e.srv, accounts, now).await;
    assert_eq!(r.status(), 302, "{}", body_text(&r));
    let loc = location(&r);
    assert!(loc.starts_with(REDIRECT), "{loc}");
    assert_eq!(query_param(&loc, "iss").as_deref(), Some(ISSUER));
    assert_eq!(query_param(&loc, "state").as_deref(), Some("st-123"));
    query_param(&loc, "code").expect("code")
}

pub async fn redeem(
    srv: &AuthServer,
    caller: &AppCaller,
    code: &str,
    now: i64,
) -> http::Response<Bytes> {
    signed(
        srv,
        SignedEndpoint::Token,
        caller,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", &caller.app_id),
        ],
        now,
    )
    .await
}

/// A token for `who` through the whole flow.
pub async fn token_for(
    e: &Env,
    who: &str,
    scope: &str,
    accounts: &[&str],
    extra: &[(&str, &str)],
    now: i64,
) -> serde_json::Value {
    let code = code_for(e, &e.app, who, scope, accounts, extra, now).await;
    let r = redeem(&e.srv, &e.app, &code, now).await;
    assert_eq!(r.status(), 200, "{}", body_text(&r));
    assert_eq!(r.headers()["cache-control"], "no-store");
    body_json(&r)
}
