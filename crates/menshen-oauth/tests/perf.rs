//! The consent check's cost beside an SM2 verification (issue 11,
//! "Performance"): `cargo test --release -p menshen-oauth --test perf --
//! --ignored --nocapture`. Prints microseconds per check; not a pass/fail
//! gate (the gateway's bench is).

mod common;

use std::time::Instant;

use common::*;
use menshen_crypto::{PrivateKey, SigAlg};
use menshen_model::TokenProfile;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn perf_check_call_beside_sm2_verify() {
    let n = 5_000;
    let (key, _) = PrivateKey::generate(SigAlg::Sm2Sm3).unwrap();
    let pk = key.public_key();
    let msg = vec![7u8; 300];
    let sig = key.sign(&msg).unwrap();
    let start = Instant::now();
    for _ in 0..n {
        assert!(pk.verify(&msg, &sig));
    }
    let sm2 = start.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    println!("SM2 verify: {sm2:.1} us");
    for cache in [false, true] {
        let e = env_with(TokenProfile::Zjrcb, cache).await;
        let t = now();
        let j = token_for(&e, "bob", "balance", &["6222020000000003"], &[], t).await;
        let at = j["access_token"].as_str().unwrap();
        let start = Instant::now();
        for _ in 0..n {
            e.srv
                .check_call(Some(at), &e.app, "balance", Some("6222020000000003"), t)
                .await
                .unwrap();
        }
        let us = start.elapsed().as_secs_f64() * 1e6 / f64::from(n);
        println!("check_call (zjrcb, consent cache {cache}): {us:.1} us");
    }
}
