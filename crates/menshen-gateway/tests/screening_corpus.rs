//! ATK-1: the screening detector against the benign and attack corpora in
//! `testdata/screening/`. Prints the detection and false-positive rates
//! (`cargo test -p menshen-gateway --test screening_corpus -- --nocapture`);
//! asserts that every benign line passes and that the attack corpus is
//! detected at or above [`DETECTION_FLOOR`].

use menshen_gateway::screen::{scan, AttackClass};

/// The least share of the attack corpus that must be detected.
const DETECTION_FLOOR: f64 = 0.95;

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.replace("\\n", "\n").replace("\\t", "\t"))
        .collect()
}

#[test]
fn atk_1_benign_corpus_passes_and_attack_corpus_is_detected_above_the_floor() {
    let benign = lines(include_str!("../testdata/screening/benign.txt"));
    let attack = lines(include_str!("../testdata/screening/attack.txt"));
    let false_positives: Vec<(&String, AttackClass)> = benign
        .iter()
        .filter_map(|s| scan(s).map(|c| (s, c)))
        .collect();
    let missed: Vec<&String> = attack.iter().filter(|s| scan(s).is_none()).collect();
    let detected = attack.len() - missed.len();
    let rate = detected as f64 / attack.len() as f64;
    let fp_rate = false_positives.len() as f64 / benign.len() as f64;
    println!(
        "ATK-1 screening corpus: attacks detected {detected}/{} ({:.1}%), false positives {}/{} ({:.1}%)",
        attack.len(),
        rate * 100.0,
        false_positives.len(),
        benign.len(),
        fp_rate * 100.0
    );
    for m in &missed {
        println!("  missed: {m:?}");
    }
    assert!(
        false_positives.is_empty(),
        "benign text flagged: {false_positives:?}"
    );
    assert!(
        rate >= DETECTION_FLOOR,
        "detection {:.1}% below the floor {:.0}%; missed: {missed:?}",
        rate * 100.0,
        DETECTION_FLOOR * 100.0
    );
}
