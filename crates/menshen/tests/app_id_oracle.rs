//! CONF-5 (issue 10, item 4): no App_ID oracle. A request naming an unknown
//! App_ID gets the same answer as one naming a known App_ID with a bad
//! signature: the same status and code for every kind of bad request, and
//! the same work (an unknown App_ID is verified against a dummy key), so the
//! time to answer tells nothing either.

mod common;

use std::time::Instant;

use bytes::Bytes;
use common::Harness;
use menshen_crypto::{PrivateKey, SigAlg};
use menshen_sdk::Client;

const UNKNOWN: &str = "APPNOSUCHAPP0000000000000000";

/// An A1 and an A2 API, and one app with an App_Secret and an SM2 key,
/// granted both.
async fn setup(h: &Harness) -> (String, String) {
    h.api("acct-a2", "GET", "/v1/accounts/{id}", "A2").await;
    h.api("prod-a1", "GET", "/v1/products", "A1").await;
    let (app, secret) = h.app("oracle app", "server").await;
    let (key, _) = PrivateKey::generate(SigAlg::Sm2Sm3).unwrap();
    h.add_key(&app, &key, None, None).await;
    h.grant(&app, "acct-a2").await;
    h.grant(&app, "prod-a1").await;
    (app, secret)
}

fn signed(c: &Client, pq: &str, body: Option<&str>) -> http::Request<Bytes> {
    let method = if body.is_some() { "POST" } else { "GET" };
    let mut req = c
        .request(method, pq, body.map(|b| b.as_bytes().to_vec()))
        .unwrap();
    c.sign(&mut req, None).unwrap();
    req
}

/// (status, code) of the answer.
async fn answer(c: &Client, req: http::Request<Bytes>) -> (u16, String) {
    let r = c.send(req).await.unwrap();
    let code = r.error().map(|e| e.code).unwrap_or_default();
    (r.status, code)
}

fn set_header(req: &mut http::Request<Bytes>, name: &str, f: impl Fn(&str) -> String) {
    let v = req.headers()[name].to_str().unwrap().to_string();
    req.headers_mut().insert(
        http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
        f(&v).parse().unwrap(),
    );
}

#[tokio::test]
async fn conf_5_unknown_and_known_app_id_get_identical_answers() {
    let h = Harness::start().await;
    let (app, _secret) = setup(&h).await;
    // The attacker holds no credential of either App_ID.
    let stranger_key = PrivateKey::generate(SigAlg::Sm2Sm3).unwrap().1.to_string();
    let p256 = PrivateKey::generate(SigAlg::EcdsaP256Sha256)
        .unwrap()
        .1
        .to_string();
    type Case = (
        &'static str,
        Box<dyn Fn(&str) -> (Client, http::Request<Bytes>)>,
    );
    let mk = |h: &Harness| (h.gateway_url.clone(), h.ca_pem.clone());
    let (gw, ca) = mk(&h);
    let hmac = move |id: &str, secret: &str| {
        Client::builder(&gw)
            .unwrap()
            .ca_pem(&ca)
            .credentials(menshen_sdk::Credentials::hmac_sm3(
                id,
                secret.as_bytes().to_vec(),
            ))
            .build()
            .unwrap()
    };
    let (gw, ca) = mk(&h);
    let key_client = move |id: &str, pem: &str| {
        Client::builder(&gw)
            .unwrap()
            .ca_pem(&ca)
            .credentials(menshen_sdk::Credentials::key_pair(
                id,
                PrivateKey::from_pkcs8_pem(pem).unwrap(),
            ))
            .build()
            .unwrap()
    };
    let wrong = "not-the-secret-of-any-app-000000000000000000";
    let cases: Vec<Case> = vec![
        ("hmac, bad MAC, A1", {
            let hmac = hmac.clone();
            Box::new(move |id| {
                let c = hmac(id, wrong);
                let r = signed(&c, "/v1/products", None);
                (c, r)
            })
        }),
        ("alg=none", {
            let hmac = hmac.clone();
            Box::new(move |id| {
                let c = hmac(id, wrong);
                let mut r = signed(&c, "/v1/products", None);
                set_header(&mut r, "signature-input", |v| {
                    v.replace("alg=\"hmac-sm3\"", "alg=\"none\"")
                });
                (c, r)
            })
        }),
        ("hmac on an A2 API", {
            let hmac = hmac.clone();
            Box::new(move |id| {
                let c = hmac(id, wrong);
                let r = signed(&c, "/v1/accounts/1", None);
                (c, r)
            })
        }),
        ("sm2, wrong key, A2", {
            let k = stranger_key.clone();
            let kc = key_client.clone();
            Box::new(move |id| {
                let c = kc(id, &k);
                let r = signed(&c, "/v1/accounts/1", None);
                (c, r)
            })
        }),
        ("p256 against an SM2 app (alg confusion)", {
            let k = p256.clone();
            let kc = key_client.clone();
            Box::new(move |id| {
                let c = kc(id, &k);
                let r = signed(&c, "/v1/accounts/1", None);
                (c, r)
            })
        }),
        ("wrong content-digest, bad MAC", {
            let hmac = hmac.clone();
            Box::new(move |id| {
                let c = hmac(id, wrong);
                let mut r = signed(&c, "/v1/products", Some("{\"a\":1}"));
                *r.body_mut() = Bytes::from_static(b"{\"a\":2}");
                (c, r)
            })
        }),
    ];
    let before = h.upstream.count();
    for (name, make) in &cases {
        let (c, r) = make(&app);
        let known = answer(&c, r).await;
        let (c, r) = make(UNKNOWN);
        let unknown = answer(&c, r).await;
        assert!(known.0 >= 400, "{name}: {known:?}");
        assert_eq!(known, unknown, "{name}: known App_ID vs unknown App_ID");
    }
    assert_eq!(h.upstream.count(), before, "nothing reached the upstream");
}

/// The time to refuse a bad SM2 signature is the same for a known and an
/// unknown App_ID: without the dummy verification, the unknown one skips one
/// SM2 verification (measured here, in this process, as the yardstick).
/// The fastest of 151 interleaved answers of each kind are compared.
#[tokio::test]
async fn conf_5_unknown_app_id_costs_one_verification_like_a_known_one() {
    let h = Harness::start().await;
    let (app, _) = setup(&h).await;
    let (stranger, pem) = PrivateKey::generate(SigAlg::Sm2Sm3).unwrap();
    let client = |id: &str| {
        Client::builder(&h.gateway_url)
            .unwrap()
            .ca_pem(&h.ca_pem)
            .credentials(menshen_sdk::Credentials::key_pair(
                id,
                PrivateKey::from_pkcs8_pem(&pem).unwrap(),
            ))
            .build()
            .unwrap()
    };
    let (known, unknown) = (client(&app), client(UNKNOWN));
    // Yardstick: one SM2 verification on this machine, now.
    let msg = b"yardstick";
    let sig = stranger.sign(msg).unwrap();
    let pk = stranger.public_key().clone();
    let mut v = Vec::new();
    for _ in 0..41 {
        let t = Instant::now();
        assert!(pk.verify(msg, &sig));
        v.push(t.elapsed());
    }
    v.sort();
    let verify = v[0];
    // Warm both paths (connections, lazily built tables).
    for c in [&known, &unknown] {
        for _ in 0..5 {
            assert_eq!(
                answer(c, signed(c, "/v1/accounts/1", None)).await.1,
                "INVALID_SIGNATURE"
            );
        }
    }
    let (mut tk, mut tu) = (Vec::new(), Vec::new());
    for _ in 0..151 {
        for (c, out) in [(&known, &mut tk), (&unknown, &mut tu)] {
            let r = signed(c, "/v1/accounts/1", None);
            let t = Instant::now();
            let a = answer(c, r).await;
            out.push(t.elapsed());
            assert_eq!(a.1, "INVALID_SIGNATURE");
        }
    }
    // The fastest answer of each kind is its intrinsic cost: load on a
    // shared machine only ever adds time, so minimums compare the work done
    // where medians would compare the noise.
    let (mk, mu) = (*tk.iter().min().unwrap(), *tu.iter().min().unwrap());
    let diff = mk.abs_diff(mu);
    eprintln!("fastest answer: known {mk:?}, unknown {mu:?}, one verification {verify:?}");
    assert!(
        diff < verify * 3 / 4,
        "fastest answer: known App_ID {mk:?}, unknown {mu:?}; one SM2 verification here takes {verify:?}"
    );
}
