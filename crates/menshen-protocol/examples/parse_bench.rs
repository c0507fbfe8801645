//! Times the A1 request path's signature parsing and signature base (issue 9).
//!
//! ```text
//! cargo run -p menshen-protocol --release --example parse_bench [-- ROUNDS BATCH]
//! ```
//!
//! Method: a canonical `Signature-Input`/`Signature` pair as the SDK sends it
//! (`sig1=("@method" "@authority" "@path" "content-digest" "x-app-id");created=..;
//! nonce="<22 chars>";keyid="app_...";alg="hmac-sm3"`, a 32-byte MAC) is parsed
//! BATCH times in a row, ROUNDS times (defaults 201 and 2000), after a warm-up
//! round; each round's wall time (`std::time::Instant`) divided by BATCH is one
//! sample, and the median, 10th and 90th percentile of the samples are printed
//! in nanoseconds per call. Inputs and results go through
//! `std::hint::black_box`. The paths are timed interleaved (round by round),
//! so that load from other processes falls on all of them alike.
//!
//! - `parse`: [`ParsedSignature::parse`] (the fast path for canonical input);
//! - `parse_general`: the general sfv-based path it falls back to;
//! - `signature_base`: the base of the same request (`RequestView` with the
//!   `content-digest` and `x-app-id` headers), from the parsed components.
//!
//! The code before issue 9 (commit df00ba9) measured 2190 ns for `parse` and
//! 457 ns for `signature_base` in this example.

use std::hint::black_box;
use std::time::Instant;

use menshen_protocol::signature::RequestView;
use menshen_protocol::{signature_base, ParsedSignature};

const SIGNATURE_INPUT: &str = r#"sig1=("@method" "@authority" "@path" "content-digest" "x-app-id");created=1767225600;nonce="Xq3d9LmR2tVb7YwK1pZs0A";keyid="app_0123456789abcdef0123";alg="hmac-sm3""#;
const SIGNATURE: &str = "sig1=:fCu7YgFuYrMgqyL+CB3R8Kpmo9W2J59w+T6hQt87gLE=:";

fn parse_general(si: &str, sig: &str) -> ParsedSignature {
    ParsedSignature::parse_general(si, sig).expect("canonical input parses")
}

fn percentiles(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.1), at(0.9))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().map_or(201, |a| a.parse().expect("ROUNDS"));
    let batch: usize = args.next().map_or(2000, |a| a.parse().expect("BATCH"));

    let view = RequestView {
        method: "POST".into(),
        authority: "gateway.bank.example:8443".into(),
        scheme: "https".into(),
        path: "/v1/payments".into(),
        query: None,
        headers: vec![
            (
                "content-digest".into(),
                "sm3=:+6UOjzDYerpZPDf0+/GbVSmvUiLQNGF+CZzlE6nGU8Y=:".into(),
            ),
            ("x-app-id".into(), "app_0123456789abcdef0123".into()),
        ],
    };
    let parsed = ParsedSignature::parse(SIGNATURE_INPUT, SIGNATURE).expect("parses");
    let general = parse_general(SIGNATURE_INPUT, SIGNATURE);
    assert_eq!(parsed.params, general.params);
    assert_eq!(parsed.params_value, general.params_value);
    assert_eq!(parsed.signature, general.signature);

    type Bench<'a> = (&'a str, Box<dyn Fn() + 'a>);
    let benches: Vec<Bench> = vec![
        (
            "parse",
            Box::new(|| {
                black_box(ParsedSignature::parse(
                    black_box(SIGNATURE_INPUT),
                    black_box(SIGNATURE),
                ))
                .expect("parses");
            }),
        ),
        (
            "parse_general",
            Box::new(|| {
                black_box(parse_general(
                    black_box(SIGNATURE_INPUT),
                    black_box(SIGNATURE),
                ));
            }),
        ),
        (
            "signature_base",
            Box::new(|| {
                black_box(signature_base(
                    black_box(&parsed.params.components),
                    black_box(&parsed.params_value),
                    black_box(&view),
                ))
                .expect("base");
            }),
        ),
    ];

    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); benches.len()];
    for round in 0..=rounds {
        for (i, (_, f)) in benches.iter().enumerate() {
            let t = Instant::now();
            for _ in 0..batch {
                f();
            }
            let ns = t.elapsed().as_nanos() as f64 / batch as f64;
            if round > 0 {
                samples[i].push(ns); // round 0 is the warm-up
            }
        }
    }
    println!("{rounds} rounds of {batch} calls each; ns per call");
    println!("{:<22} {:>9} {:>9} {:>9}", "path", "median", "p10", "p90");
    for ((name, _), s) in benches.iter().zip(samples) {
        let (med, p10, p90) = percentiles(s);
        println!("{name:<22} {med:>9.1} {p10:>9.1} {p90:>9.1}");
    }
}
