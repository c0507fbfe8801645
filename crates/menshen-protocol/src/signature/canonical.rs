//! The fast path of [`ParsedSignature::parse`] (issue 9): the one canonical
//! form every SDK sends, recognised by hand without the sfv parser, the
//! repeat scan (`sf::unique_members`) or re-serializing the inner list.
//!
//! On the A1 path (INT-1: App_ID + App_Secret MAC) this parse runs on every
//! request, on attacker-controlled headers, before any key is looked up. It
//! only ever answers "this is exactly what the general path would return"
//! ([`Some`]) or "not sure" ([`None`]): every refusal, and every input that
//! is not byte for byte in canonical form, goes to the general path
//! ([`ParsedSignature::parse_general`]), which therefore decides every error
//! and every non-canonical acceptance exactly as before. The differential
//! tests below hold the two paths to the same answer.
//!
//! The canonical form is what [`SignatureParams::serialize`] writes after
//! `<label>=` (docs/protocol.md sections 3.5 and 3.8), with no space
//! anywhere outside the single spaces between components:
//!
//! ```text
//! Signature-Input: <label>=("<c1>" "<c2>" ...);created=<int>[;expires=<int>];nonce="<s>";keyid="<s>";alg="<s>"
//! Signature:       <label>=:<base64>:
//! ```
//!
//! with:
//!
//! - `<label>` an RFC 8941 key, the same in both headers, one member each;
//! - each component a supported name ([`supported_component`]), quoted,
//!   without component parameters (`;req`, `;key=`), listed once;
//! - `<int>` an RFC 8941 integer as the serializer writes it: optional `-`,
//!   1 to 15 digits, no leading zero, not `-0`; `expires` > `created`;
//! - `<s>` printable ASCII without `"` or `\` (nothing escaped), `nonce` of
//!   [`NONCE_LEN`] and `keyid` of [`KEYID_LEN`] characters;
//! - exactly these parameters in exactly this order (so none is repeated);
//! - `<base64>` only `A-Z a-z 0-9 + / =`, decoded as sfv decodes it.
//!
//! For such input the inner list that sfv parses serializes back to exactly
//! the bytes after `<label>=` (strings unescaped, integers canonical, single
//! spaces), so `params_value` is that slice of the input, not a
//! re-serialization; the tests check this against the serializer.

use base64::engine::{self, GeneralPurpose};
use base64::Engine;

use super::{supported_component, ParsedSignature, SignatureParams, KEYID_LEN, NONCE_LEN};

/// The base64 decoder of sfv 0.10 (`sfv::utils::BASE64`): standard alphabet,
/// padding optional, trailing bits allowed. A byte sequence decodes to the
/// same bytes on both paths only because both use this configuration; the
/// differential tests feed both paths unpadded, over-padded and
/// trailing-bit inputs.
const SFV_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    engine::GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(engine::DecodePaddingMode::Indifferent)
        .with_encode_padding(true),
);

/// Largest number of digits of an RFC 8941 integer (section 3.3.1).
const MAX_INT_DIGITS: usize = 15;

/// A cursor over one header value; every method returns [`None`] rather
/// than panic when the input ends or differs.
struct Cursor<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }

    /// Consume `lit` if the input continues with it.
    fn eat(&mut self, lit: &str) -> bool {
        let hit = self
            .s
            .as_bytes()
            .get(self.i..)
            .is_some_and(|rest| rest.starts_with(lit.as_bytes()));
        if hit {
            self.i += lit.len();
        }
        hit
    }

    /// Consume bytes while `f` holds; the consumed text.
    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let start = self.i;
        while self.peek().is_some_and(&f) {
            self.i += 1;
        }
        // Only ASCII bytes are ever accepted by `f`, so these are char
        // boundaries; `get` keeps that an assumption that cannot panic.
        self.s.get(start..self.i).unwrap_or("")
    }

    /// `key = ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" )`
    /// (RFC 8941 section 3.1.2).
    fn key(&mut self) -> Option<&'a str> {
        if !self
            .peek()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'*')
        {
            return None;
        }
        Some(self.take_while(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.' | b'*')
        }))
    }

    /// A string whose serialization is its raw text: `"`, printable ASCII
    /// other than `"` and `\`, `"`.
    fn plain_string(&mut self) -> Option<&'a str> {
        if !self.eat("\"") {
            return None;
        }
        let v = self.take_while(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\');
        self.eat("\"").then_some(v)
    }

    /// An integer written as the serializer writes it: `-`?, 1 to 15 digits,
    /// no leading zero, not `-0`. What follows must not be a digit or `.`,
    /// which the caller ensures by requiring `;` or the end next.
    fn canonical_int(&mut self) -> Option<i64> {
        let negative = self.eat("-");
        let digits = self.take_while(|b| b.is_ascii_digit());
        if digits.is_empty()
            || digits.len() > MAX_INT_DIGITS
            || (digits.len() > 1 && digits.starts_with('0'))
            || (negative && digits == "0")
        {
            return None;
        }
        // At most 15 decimal digits: no overflow in i64.
        let mut v: i64 = 0;
        for b in digits.bytes() {
            v = v * 10 + i64::from(b - b'0');
        }
        Some(if negative { -v } else { v })
    }

    fn at_end(&self) -> bool {
        self.i == self.s.len()
    }
}

/// The [`ParsedSignature`] the general path would return, when both headers
/// are in the canonical form described in the module documentation and pass
/// every rule of the profile; [`None`] for anything else (the caller then
/// runs the general path, which decides).
pub(super) fn parse(signature_input: &str, signature: &str) -> Option<ParsedSignature> {
    let mut c = Cursor {
        s: signature_input,
        i: 0,
    };
    let label = c.key()?;
    if !c.eat("=") {
        return None;
    }
    let list_start = c.i;
    if !c.eat("(") {
        return None;
    }
    let mut components: Vec<String> = Vec::with_capacity(8);
    if !c.eat(")") {
        loop {
            if !c.eat("\"") {
                return None;
            }
            // Anything else a component name could hold (upper case, `_`,
            // escapes) is not supported, so the general path refuses it.
            let name = c.take_while(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'@'
            });
            if !c.eat("\"")
                || !supported_component(name)
                || components.iter().any(|known| known == name)
            {
                return None;
            }
            components.push(name.to_string());
            if c.eat(")") {
                break;
            }
            if !c.eat(" ") {
                return None;
            }
        }
    }
    if !c.eat(";created=") {
        return None;
    }
    let created = c.canonical_int()?;
    let expires = if c.eat(";expires=") {
        let expires = c.canonical_int()?;
        if expires <= created {
            return None;
        }
        Some(expires)
    } else {
        None
    };
    if !c.eat(";nonce=") {
        return None;
    }
    let nonce = c.plain_string()?;
    if !c.eat(";keyid=") {
        return None;
    }
    let keyid = c.plain_string()?;
    if !c.eat(";alg=") {
        return None;
    }
    let alg = c.plain_string()?;
    if !c.at_end() || !NONCE_LEN.contains(&nonce.len()) || !KEYID_LEN.contains(&keyid.len()) {
        return None;
    }
    let params_value = signature_input.get(list_start..)?;

    let sig = signature
        .strip_prefix(label)?
        .strip_prefix("=:")?
        .strip_suffix(':')?;
    // sfv's own check of the characters (the decoder would refuse the
    // others too).
    if !sig
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
    {
        return None;
    }
    let signature = SFV_BASE64.decode(sig).ok()?;

    Some(ParsedSignature {
        label: label.to_string(),
        params: SignatureParams {
            components,
            created,
            expires,
            nonce: nonce.to_string(),
            keyid: keyid.to_string(),
            alg: alg.to_string(),
        },
        params_value: params_value.to_string(),
        signature,
    })
}

#[cfg(test)]
mod tests {
    //! Differential tests: on every input, [`ParsedSignature::parse`] (fast
    //! path first) must answer exactly what
    //! [`ParsedSignature::parse_general`] answers: the same label,
    //! parameters, `params_value` and signature bytes, or the same error
    //! (variant and text). Inputs: canonical headers generated over the
    //! whole parameter space, every single-byte mutation of them (changed,
    //! removed, duplicated, inserted), structured mutations (reordered,
    //! repeated and unknown parameters, whitespace, labels, case, tokens for
    //! strings, odd integers, bad base64), and random bytes.

    use super::*;
    use crate::signature::{sign_mac, RequestView};
    use crate::ProtocolError;
    use menshen_crypto::MacAlg;

    type Outcome = Result<(String, SignatureParams, String, Vec<u8>), ProtocolError>;

    fn outcome(r: Result<ParsedSignature, ProtocolError>) -> Outcome {
        r.map(|p| (p.label, p.params, p.params_value, p.signature))
    }

    /// The check every test funnels through. Returns whether the fast path
    /// answered (rather than handing over to the general path).
    fn agree(si: &str, sig: &str) -> bool {
        let general = outcome(ParsedSignature::parse_general(si, sig));
        let parsed = outcome(ParsedSignature::parse(si, sig));
        assert_eq!(parsed, general, "parse vs general on\n  {si:?}\n  {sig:?}");
        let fast = parse(si, sig);
        if let Some(fast) = &fast {
            // The fast path only answers with what the general path returns,
            // and its `params_value` slice is byte for byte what the
            // serializer writes for those parameters.
            let Ok((label, params, value, bytes)) = &general else {
                panic!("fast path accepted what the general path refuses:\n  {si:?}\n  {sig:?}");
            };
            assert_eq!(&fast.label, label);
            assert_eq!(&fast.params, params);
            assert_eq!(&fast.params_value, value);
            assert_eq!(&fast.signature, bytes);
            assert_eq!(fast.params.serialize().as_ref(), Ok(value));
        }
        fast.is_some()
    }

    /// A small deterministic PRNG (xorshift64*), so failures reproduce.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
            &xs[self.below(xs.len())]
        }
        fn chance(&mut self, percent: usize) -> bool {
            self.below(100) < percent
        }
    }

    const COMPONENTS: &[&str] = &[
        "@method",
        "@authority",
        "@path",
        "@query",
        "@scheme",
        "@status",
        "content-digest",
        "x-app-id",
        "content-type",
        "x-1-b",
        "@request-target",
        "@target-uri",
        "@",
        "",
        "Host",
        "x_app",
        "signature",
    ];
    const LABELS: &[&str] = &["sig1", "sig2", "a", "*", "s.1-_*", "sig10"];
    const ALGS: &[&str] = &[
        "hmac-sm3",
        "hmac-sha256",
        "sm2-sm3",
        "ed25519",
        "",
        "HMAC SM3 (x)!",
    ];
    /// Printable ASCII other than `"` and `\`, weighted to the nonce alphabet.
    const PLAIN: &[u8] =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_ !#$%&'()*+,./:;<=>?@[]^`{|}~";

    fn plain_string(rng: &mut Rng, len: usize) -> String {
        (0..len).map(|_| *rng.pick(PLAIN) as char).collect()
    }

    fn int(rng: &mut Rng) -> i64 {
        match rng.below(6) {
            0 => 1_767_225_600 + rng.below(1000) as i64,
            1 => 0,
            2 => -(rng.below(1_000_000) as i64),
            3 => 999_999_999_999_999,
            4 => -999_999_999_999_999,
            _ => (rng.next() % 1_000_000_000_000_000) as i64,
        }
    }

    fn base64_of(rng: &mut Rng) -> String {
        let n = *rng.pick(&[0, 1, 2, 3, 32, 32, 32, 64, 65, 256]);
        let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        let mut b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        if rng.chance(10) {
            b64 = b64.trim_end_matches('=').to_string();
        }
        b64
    }

    /// A `(Signature-Input, Signature)` pair in canonical form: mostly
    /// valid, sometimes breaking one rule (unsupported or repeated
    /// component, nonce/keyid length, `expires` not after `created`), which
    /// the general path must then refuse.
    fn canonical(rng: &mut Rng) -> (String, String) {
        let label = if rng.chance(80) {
            "sig1"
        } else {
            rng.pick(LABELS)
        };
        let mut comps: Vec<&str> = Vec::new();
        if rng.chance(70) {
            comps.extend(["@method", "@authority", "@path"]);
            if rng.chance(50) {
                comps.push("@query");
            }
            if rng.chance(50) {
                comps.push("content-digest");
            }
            comps.push("x-app-id");
        } else {
            for _ in 0..rng.below(8) {
                let c = if rng.chance(85) {
                    *rng.pick(&COMPONENTS[..10])
                } else {
                    *rng.pick(COMPONENTS)
                };
                if rng.chance(90) && comps.contains(&c) {
                    continue;
                }
                comps.push(c);
            }
        }
        let created = int(rng);
        let expires = match rng.below(10) {
            0..=6 => None,
            7 => Some(created.saturating_add(60)),
            8 => Some(created),
            _ => Some(int(rng)),
        };
        let nonce_len = if rng.chance(85) {
            *rng.pick(&[16, 22, 22, 22, 64, 128])
        } else {
            *rng.pick(&[0, 1, 15, 129, 200])
        };
        let keyid_len = if rng.chance(90) {
            *rng.pick(&[1, 24, 24, 128])
        } else {
            *rng.pick(&[0, 129])
        };
        let keyid = if keyid_len == 24 {
            "app_0123456789abcdef0123".to_string()
        } else {
            plain_string(rng, keyid_len)
        };
        let params = SignatureParams {
            components: comps.iter().map(|c| c.to_string()).collect(),
            created,
            expires,
            nonce: plain_string(rng, nonce_len),
            keyid,
            alg: rng.pick(ALGS).to_string(),
        };
        let Ok(value) = params.serialize() else {
            // `expires` past the largest integer: draw again.
            return canonical(rng);
        };
        let sig_label = if rng.chance(95) {
            label
        } else {
            rng.pick(LABELS)
        };
        (
            format!("{label}={value}"),
            format!("{sig_label}=:{}:", base64_of(rng)),
        )
    }

    /// What the SDK sends takes the fast path, for every algorithm and
    /// component set it uses.
    #[test]
    fn sdk_output_takes_the_fast_path() {
        let view = RequestView {
            method: "POST".into(),
            authority: "gateway.bank.example:8443".into(),
            scheme: "https".into(),
            path: "/v1/transfers".into(),
            query: Some("channel=web".into()),
            headers: vec![
                ("content-digest".into(), "sm3=:AAAA:".into()),
                ("x-app-id".into(), "app_0123456789abcdef0123".into()),
                ("content-type".into(), "application/json".into()),
            ],
        };
        for alg in [MacAlg::HmacSm3, MacAlg::HmacSha256] {
            for (query, body) in [(false, false), (true, false), (false, true), (true, true)] {
                for expires in [None, Some(1_767_225_660)] {
                    let mut components = SignatureParams::required_components(query, body);
                    components.push("x-app-id".into());
                    let params = SignatureParams {
                        components,
                        created: 1_767_225_600,
                        expires,
                        nonce: "Xq3d9LmR2tVb7YwK1pZs0A".into(),
                        keyid: "app_0123456789abcdef0123".into(),
                        alg: alg.name().into(),
                    };
                    let (si, sig, _) = sign_mac(alg, b"secret", &params, &view).unwrap();
                    assert!(agree(&si, &sig), "{si}");
                    let p = ParsedSignature::parse(&si, &sig).unwrap();
                    assert_eq!(p.params, params);
                    assert_eq!(si, format!("sig1={}", p.params_value));
                }
            }
        }
    }

    /// Every `Signature-Input` of the test vectors (docs/protocol.md section
    /// 4) takes the fast path and agrees with the general path.
    #[test]
    fn test_vectors_take_the_fast_path() {
        let v: serde_json::Value =
            serde_json::from_str(include_str!("../../testdata/hmac-vectors.json")).unwrap();
        let cases = v.as_array().unwrap();
        assert!(cases.len() >= 6);
        for case in cases {
            let e = &case["expected"];
            let si = e["signature_input"].as_str().unwrap();
            let sig = e["signature"].as_str().unwrap();
            assert!(agree(si, sig), "{si}");
            // The slice is what ends the vector's signature base.
            let p = ParsedSignature::parse(si, sig).unwrap();
            let base = e["signature_base"].as_str().unwrap();
            assert!(base.ends_with(&format!("\n\"@signature-params\": {}", p.params_value)));
        }
    }

    /// Generated canonical input, valid and invalid: same answers, and the
    /// fast path answers every valid one.
    #[test]
    fn generated_canonical_inputs_agree() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut fast, mut ok) = (0, 0);
        for _ in 0..3000 {
            let (si, sig) = canonical(&mut rng);
            let took_fast = agree(&si, &sig);
            let general_ok = ParsedSignature::parse_general(&si, &sig).is_ok();
            // Canonical and valid: the fast path must not hand over.
            assert_eq!(took_fast, general_ok, "{si}\n{sig}");
            fast += usize::from(took_fast);
            ok += usize::from(general_ok);
        }
        assert_eq!(fast, ok);
        assert!(fast > 1500, "too few valid inputs generated: {fast}");
    }

    /// Bytes a mutation writes: delimiters, digits, letters of both cases,
    /// controls, DEL, a tab, and a multi-byte character.
    const MUTANTS: &[&str] = &[
        " ", "\t", "\"", "\\", ";", "=", "(", ")", ",", ":", "-", ".", "*", "_", "@", "+", "/",
        "?", "0", "1", "9", "a", "z", "A", "Z", "\u{0}", "\u{1f}", "\u{7f}", "é",
    ];

    /// Every single-byte mutation of `s`: each byte changed to each of
    /// [`MUTANTS`], removed, duplicated, and each mutant inserted before it.
    fn byte_mutations(s: &str) -> Vec<String> {
        let mut out = Vec::new();
        let chars: Vec<(usize, char)> = s.char_indices().collect();
        for (k, &(i, ch)) in chars.iter().enumerate() {
            let end = chars.get(k + 1).map_or(s.len(), |&(j, _)| j);
            let (before, after) = (&s[..i], &s[end..]);
            out.push(format!("{before}{after}"));
            out.push(format!("{before}{ch}{ch}{after}"));
            for m in MUTANTS {
                out.push(format!("{before}{m}{after}"));
                out.push(format!("{before}{m}{ch}{after}"));
            }
        }
        for m in MUTANTS {
            out.push(format!("{s}{m}"));
        }
        out
    }

    /// One random mutation of `s`, of the kinds [`byte_mutations`] makes,
    /// or a run of bytes swapped with another run.
    fn random_mutation(rng: &mut Rng, s: &str) -> String {
        let chars: Vec<char> = s.chars().collect();
        let mut out = chars.clone();
        let at = rng.below(chars.len() + 1);
        let mutant: Vec<char> = rng.pick(MUTANTS).chars().collect();
        match rng.below(5) {
            0 if at < chars.len() => {
                out.remove(at);
            }
            1 if at < chars.len() => out.insert(at, chars[at]),
            2 if at < chars.len() => {
                out.splice(at..=at, mutant);
            }
            3 => {
                out.splice(at..at, mutant);
            }
            _ => {
                let (a, b) = (rng.below(chars.len() + 1), rng.below(chars.len() + 1));
                let (a, b) = (a.min(b), a.max(b));
                let run: Vec<char> = chars[a..b].to_vec();
                let to = rng.below(out.len() + 1);
                out.splice(to..to, run);
            }
        }
        out.into_iter().collect()
    }

    /// Each byte of canonical headers changed, removed, duplicated and
    /// inserted, in either header.
    #[test]
    fn every_byte_mutation_agrees() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let mut seeds = vec![
            (
                r#"sig1=("@method" "@authority" "@path" "content-digest" "x-app-id");created=1767225600;nonce="Xq3d9LmR2tVb7YwK1pZs0A";keyid="app_0123456789abcdef0123";alg="hmac-sm3""#.to_string(),
                "sig1=:fCu7YgFuYrMgqyL+CB3R8Kpmo9W2J59w+T6hQt87gLE=:".to_string(),
            ),
            (
                r#"sig1=("@method" "@path");created=1;expires=2;nonce="0123456789abcdef";keyid="a";alg="""#.to_string(),
                "sig1=:AA==:".to_string(),
            ),
            (
                r#"a=();created=-5;nonce="0123456789abcdef";keyid="k";alg="x""#.to_string(),
                "a=::".to_string(),
            ),
        ];
        while seeds.len() < 8 {
            let (si, sig) = canonical(&mut rng);
            if ParsedSignature::parse_general(&si, &sig).is_ok() {
                seeds.push((si, sig));
            }
        }
        let mut handed_over = 0;
        for (si, sig) in &seeds {
            assert!(agree(si, sig), "seed must take the fast path: {si}");
            for m in byte_mutations(si) {
                handed_over += usize::from(!agree(&m, sig));
            }
            for m in byte_mutations(sig) {
                handed_over += usize::from(!agree(si, &m));
            }
            // The label changed the same way in both headers.
            let (label, si_rest) = si.split_once('=').unwrap();
            let sig_rest = sig.strip_prefix(label).unwrap();
            for m in byte_mutations(label) {
                handed_over +=
                    usize::from(!agree(&format!("{m}={si_rest}"), &format!("{m}{sig_rest}")));
            }
        }
        assert!(handed_over > 1000);
    }

    /// Mutations a hand-written parser is most likely to get wrong, each
    /// applied to a canonical pair.
    #[test]
    fn structured_mutations_agree() {
        const SI: &str = r#"sig1=("@method" "@authority" "@path" "content-digest" "x-app-id");created=1767225600;nonce="Xq3d9LmR2tVb7YwK1pZs0A";keyid="app_0123456789abcdef0123";alg="hmac-sm3""#;
        const SIG: &str = "sig1=:fCu7YgFuYrMgqyL+CB3R8Kpmo9W2J59w+T6hQt87gLE=:";
        const LIST: &str = r#"("@method" "@authority" "@path" "content-digest" "x-app-id")"#;
        const N: &str = r#"nonce="Xq3d9LmR2tVb7YwK1pZs0A""#;
        const K: &str = r#"keyid="app_0123456789abcdef0123""#;
        const A: &str = r#"alg="hmac-sm3""#;
        const C: &str = "created=1767225600";
        let with_params = |ps: &[&str]| format!("sig1={LIST};{}", ps.join(";"));
        // Pairs with both headers changed; `si` collects changed inputs
        // checked against the canonical `Signature`.
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut sis: Vec<String> = Vec::new();
        let mut si = |s: String| sis.push(s);

        // Parameter order, repeats, unknown parameters.
        si(with_params(&[N, C, K, A]));
        si(with_params(&[C, K, N, A]));
        si(with_params(&[C, N, A, K]));
        si(with_params(&[C, "expires=1767225660", N, K, A]));
        si(with_params(&[C, N, K, A, "expires=1767225660"]));
        si(with_params(&["expires=1767225660", C, N, K, A]));
        for p in [C, N, K, A, "expires=1767225660", "tag=\"t\""] {
            si(format!("{SI};{p}"));
            si(with_params(&[C, p, N, K, A]));
        }
        si(with_params(&[
            C,
            "expires=1767225660",
            "expires=1767225660",
            N,
            K,
            A,
        ]));
        si(with_params(&[C, N, K]));
        si(with_params(&[C, N, A]));
        si(with_params(&[C, K, A]));
        si(with_params(&[N, K, A]));
        si(with_params(&[C, N, K, A, "tag=\"x\""]));
        si(with_params(&[C, N, K, A, "tag=tok", "f=?0", "t", "d=1.5"]));
        si(with_params(&["tag=\"x\"", C, N, K, A]));
        si(with_params(&[C, N, K, A, "key=\"k\""]));
        // Unknown parameters with the values of known ones, everywhere.
        for name in [
            "tag", "e", "exp", "expire", "expiresx", "created2", "nonc", "alg2",
        ] {
            for value in ["1767225660", "\"Xq3d9LmR2tVb7YwK1pZs0A\"", "\"hmac-sm3\""] {
                let p = format!("{name}={value}");
                for at in 0..=4 {
                    let mut ps = vec![C, N, K, A];
                    ps.insert(at, &p);
                    si(with_params(&ps));
                }
            }
        }
        // Whitespace.
        si(format!(" {SI}"));
        si(format!("{SI} "));
        si(format!("{SI}\t"));
        si(format!("\t{SI}"));
        si(SI.replace(";", "; "));
        si(SI.replace(";", " ;"));
        si(SI.replace("=", " ="));
        si(SI.replace("(", "( "));
        si(SI.replace(")", " )"));
        si(SI.replace("\" \"", "\"  \""));
        si(SI.replace("\" \"", "\"\t\""));
        si(SI.replace("\" \"", "\"\""));
        si(SI.replace("sig1=", "sig1 ="));
        // Labels and members.
        for l in [
            "sig2", "SIG1", "Sig1", "sIg1", "sig1A", "A", "Z9", "*A", "1sig", "*", "sig-1.*_",
            "s ig1", "s\tig1", "",
        ] {
            si(SI.replacen("sig1", l, 1));
            pairs.push((SI.replacen("sig1", l, 1), SIG.replacen("sig1", l, 1)));
        }
        si(format!("{SI}, {SI}"));
        si(format!("{SI},{SI}"));
        si(format!("sig2=(), {SI}"));
        si(format!("{SI}, sig2=()"));
        si(format!("{SI}, sig2"));
        si(format!("{SI},"));
        // Case.
        si(SI.to_uppercase());
        si(SI.replace("@method", "@METHOD"));
        si(SI.replace("x-app-id", "X-App-Id"));
        si(SI.replace("created", "Created"));
        si(SI.replace("hmac-sm3", "HMAC-SM3"));
        // Components.
        for c in [
            "@status",
            "@scheme",
            "@query",
            "@request-target",
            "@",
            "",
            "x_app",
            "x app",
            "x\\\"y",
            "content-digest;req",
            "@method",
        ] {
            si(SI.replacen("\"@path\"", &format!("\"{c}\""), 1));
        }
        si(SI.replacen("\"@path\"", "\"@path\";req", 1));
        si(SI.replacen("\"@path\"", "\"@path\";key=\"a\"", 1));
        si(SI.replacen("\"@path\"", "\"@path\";req;req", 1));
        si(SI.replacen("\"@path\"", "@path", 1));
        si(SI.replacen("\"@path\"", "1", 1));
        si(SI.replacen("\"@path\"", ":AAAA:", 1));
        si(SI.replacen("\"@path\"", "(\"@path\")", 1));
        si(SI.replacen("\"@p", "\"@\\p", 1));
        si(format!("sig1=();{C};{N};{K};{A}"));
        si(format!("sig1=( );{C};{N};{K};{A}"));
        si(format!("sig1=\"@method\";{C};{N};{K};{A}"));
        si(format!("sig1;{C};{N};{K};{A}"));
        // Tokens, strings, escapes and other types for the parameters.
        si(SI.replace(
            r#"nonce="Xq3d9LmR2tVb7YwK1pZs0A""#,
            "nonce=Xq3d9LmR2tVb7YwK1pZs0A",
        ));
        si(SI.replace(r#"alg="hmac-sm3""#, "alg=hmac-sm3"));
        si(SI.replace(r#"keyid="app_"#, r#"keyid="app\"_"#));
        si(SI.replace(r#"keyid="app_"#, r#"keyid="app\\_"#));
        si(SI.replace(r#"keyid="app_"#, r#"keyid="app\_"#));
        si(SI.replace(r#"nonce="Xq3d"#, r#"nonce="\X\q3d"#));
        si(SI.replace("Xq3d9LmR2tVb7YwK1pZs0A", "Xq3d9LmR2tVb7YwK1pZs0\\\""));
        si(SI.replace("created=1767225600", "created=\"1767225600\""));
        si(SI.replace("created=1767225600", "created=?1"));
        si(SI.replace("created=1767225600", "created"));
        si(SI.replace("created=1767225600", "created=:AAAA:"));
        si(SI.replace(r#"alg="hmac-sm3""#, "alg=?1"));
        si(SI.replace(r#"alg="hmac-sm3""#, "alg"));
        si(SI.replace(r#"alg="hmac-sm3""#, "alg=1"));
        // Integers.
        for n in [
            "0",
            "-0",
            "00",
            "01767225600",
            "-1",
            "-01",
            "1767225600.5",
            "1767225600.",
            "1.0",
            "999999999999999",
            "1000000000000000",
            "-999999999999999",
            "-1000000000000000",
            "9223372036854775807",
            "99999999999999999999",
            "",
            "-",
            "+1",
            "1e3",
            "0x10",
        ] {
            si(SI.replace("created=1767225600", &format!("created={n}")));
            si(SI.replace(
                "created=1767225600",
                &format!("created=1767225600;expires={n}"),
            ));
            si(SI.replace(
                "created=1767225600",
                &format!("created={n};expires=1767225660"),
            ));
        }
        // Nonce and keyid lengths at and around the bounds.
        for len in [0, 1, 15, 16, 17, 127, 128, 129] {
            let s = "n".repeat(len);
            si(SI.replace("Xq3d9LmR2tVb7YwK1pZs0A", &s));
            si(SI.replace("app_0123456789abcdef0123", &s));
        }
        // Signature header.
        for sig in [
            "sig1=:fCu7YgFuYrMgqyL+CB3R8Kpmo9W2J59w+T6hQt87gLE:",
            "sig1=:fCu7YgFuYrMgqyL+CB3R8Kpmo9W2J59w+T6hQt87gLE==:",
            "sig1=:fCu7YgFuYrMgqyL+CB3R8Kpmo9W2J59w+T6hQt87gLF=:",
            "sig1=:fCu7YgFuYrMgqyL+CB3R8Kpmo9W2J59w+T6hQt87gL=:",
            "sig1=:fCu7YgFuYrMgqyL-CB3R8Kpmo9W2J59w_T6hQt87gLE=:",
            "sig1=:fCu7Yg=FuYrMgqyL+CB3R8Kpmo9W2J59w+T6hQt87gLE=:",
            "sig1=:fCu7YgFuYrMgqyL+CB3R8Kpmo9W2J59w+T6hQt87gLE=",
            "sig1=fCu7YgFuYrMgqyL+CB3R8Kpmo9W2J59w+T6hQt87gLE=:",
            "sig1=:fCu7YgFu YrMgqyL+CB3R8Kpmo9W2J59w+T6hQt87gLE=:",
            "sig1=:A:",
            "sig1=:AB:",
            "sig1=:ABC:",
            "sig1=:AB==:",
            "sig1=:AB=:",
            "sig1=:=:",
            "sig1=:====:",
            "sig1=::",
            "sig1=:AAAA::",
            "sig1=:AAAA:;p=1",
            "sig1=:AAAA:;p",
            "sig1=:AAAA:, sig2=:AAAA:",
            "sig2=:AAAA:, sig1=:AAAA:",
            "sig1=:AAAA:, sig1=:AAAA:",
            " sig1=:AAAA:",
            "sig1=:AAAA: ",
            "sig1=:AAAA:\t",
            "sig2=:AAAA:",
            "sig1=\"AAAA\"",
            "sig1=AAAA",
            "sig1",
            "sig1=",
            "sig10=:AAAA:",
            "sig=:AAAA:",
            "",
        ] {
            pairs.push((SI.to_string(), sig.to_string()));
        }
        for s in &sis {
            agree(s, SIG);
        }
        for (si, sig) in &pairs {
            agree(si, sig);
        }
        assert!(agree(SI, SIG));
    }

    /// Random bytes, and random stacked mutations of canonical input: no
    /// panic, and the same answer as the general path.
    #[test]
    fn fuzz_random_and_mutated_inputs_agree() {
        let mut rng = Rng(0xdead_beef_cafe_f00d);
        const ALPHABET: &[u8] = b"sig1=(\"@method\" \"x-app-id\");created=17;nonce=\"\";keyid=\"\";alg=\"\":AB+/=,\t\\-_.*?0\xc3\xa9\x7f\x01\xff";
        for _ in 0..20_000 {
            let len = rng.below(80);
            let bytes: Vec<u8> = (0..len).map(|_| *rng.pick(ALPHABET)).collect();
            let s = String::from_utf8_lossy(&bytes).into_owned();
            let (si, sig) = canonical(&mut rng);
            agree(&s, &sig);
            agree(&si, &s);
        }
        for _ in 0..20_000 {
            let (mut si, mut sig) = canonical(&mut rng);
            for _ in 0..1 + rng.below(4) {
                let target = if rng.chance(75) { &mut si } else { &mut sig };
                *target = random_mutation(&mut rng, target);
            }
            agree(&si, &sig);
        }
    }
}
