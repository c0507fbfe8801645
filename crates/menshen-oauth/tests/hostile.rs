//! Hostile input never panics and never gets past the checks (issue 11:
//! no panics on input): random bytes as form bodies, queries, cookies and
//! tokens to every endpoint.

mod common;

use common::*;
use menshen_model::TokenProfile;
use menshen_oauth::SignedEndpoint;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = (self.next() as usize) % max;
        let alphabet = b"=&%+;:/?#abcAZ09_-. \x00\xff\xe4\xb8\xad\"'<>";
        (0..n)
            .map(|_| {
                if self.next().is_multiple_of(4) {
                    self.next() as u8
                } else {
                    alphabet[(self.next() as usize) % alphabet.len()]
                }
            })
            .collect()
    }
}

#[tokio::test]
async fn hostile_input_never_panics_nor_passes() {
    let e = env(TokenProfile::Cmbc).await;
    let t = now();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let paths = [
        "/oauth2/authorize",
        "/oauth2/login",
        "/oauth2/consent",
        "/me/login",
        "/me/consents",
        "/me/consents/CNX/revoke",
        "/me/logout",
        "/.well-known/oauth-authorization-server",
    ];
    let mut served = 0;
    for i in 0..400 {
        let body = rng.bytes(600);
        let path = paths[i % paths.len()];
        // Raw separators and percent-escapes of anything else.
        let q: String = rng
            .bytes(80)
            .iter()
            .map(|b| match b {
                b'=' | b'&' | b'a'..=b'z' | b'0'..=b'9' => (*b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        let uri = format!("{path}?{q}");
        let Ok(uri) = uri.parse::<http::Uri>() else {
            continue;
        };
        let cookie = format!("menshen_sess={}", String::from_utf8_lossy(&rng.bytes(60)));
        for method in ["GET", "POST"] {
            let mut b = http::Request::builder().method(method).uri(uri.clone());
            if let Ok(v) = http::HeaderValue::from_str(&cookie) {
                b = b.header("cookie", v);
            }
            let p = b.body(()).unwrap().into_parts().0;
            if let Some(r) = e.srv.handle_web(&p, &body, IP, t).await {
                served += 1;
                let s = r.status().as_u16();
                assert!(s != 302 || path == "/oauth2/consent", "{uri} {s}");
                assert!(s != 500, "{uri}");
            }
        }
        for ep in [
            SignedEndpoint::Par,
            SignedEndpoint::Token,
            SignedEndpoint::Revoke,
            SignedEndpoint::Introspect,
        ] {
            let p = http::Request::post("/x")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(())
                .unwrap()
                .into_parts()
                .0;
            let r = e.srv.handle_signed(ep.clone(), &e.app, &p, &body, t).await;
            let s = r.status().as_u16();
            assert!(s == 200 || s == 400 || s == 401, "{ep:?} {s}");
            if ep != SignedEndpoint::Revoke && ep != SignedEndpoint::Introspect {
                assert_ne!(s, 200, "{ep:?}");
            }
        }
        let tok = String::from_utf8_lossy(&body).into_owned();
        let acc = String::from_utf8_lossy(&rng.bytes(40)).into_owned();
        assert!(e
            .srv
            .check_call(Some(&tok), &e.app, "balance", Some(&acc), t)
            .await
            .is_err());
    }
    assert!(served > 300, "{served}");
    // Hostile consent ids on the signed DELETE.
    for id in ["", "../x", "CN\u{0}", &"C".repeat(10_000)] {
        let p = http::Request::delete("/x").body(()).unwrap().into_parts().0;
        let r = e
            .srv
            .handle_signed(SignedEndpoint::DeleteConsent(id.into()), &e.app, &p, b"", t)
            .await;
        assert_eq!(r.status(), 404);
    }
}
