//! The field-envelope test vector of `docs/protocol.md` §12.6 (CONF-1,
//! CONF-2): computed here from the fixed inputs the doc lists, and every
//! value the doc prints must be what the code produces, so the doc cannot
//! drift. Run with `-- --nocapture` to print the values (to regenerate the
//! doc's block after a deliberate change).

use base64::Engine;
use menshen_crypto::{Sm2DecryptionKey, Sm4GcmKey};
use menshen_protocol::envelope::{self, FixedInputs};
use serde_json::json;

const D_HEX: &str = "3945208f7b2144b13f36e38ac6d39f95889393692860b51a42fb81ef4df7c5b8";
const K_HEX: &str = "59276e27d506861a16680f3ad9c02dccef3cc1fa3cdbe4ce6d54b80deac1bc21";
const SESSION_KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f";
const IV1_HEX: &str = "a0a1a2a3a4a5a6a7a8a9aaab";
const IV2_HEX: &str = "b0b1b2b3b4b5b6b7b8b9babb";

fn arr<const N: usize>(h: &str) -> [u8; N] {
    hex::decode(h).unwrap().try_into().unwrap()
}

#[test]
fn conf_1_protocol_doc_envelope_vector_matches_the_code() {
    let doc = include_str!("../../../docs/protocol.md");
    let receiver = Sm2DecryptionKey::from_scalar_bytes(&arr(D_HEX)).unwrap();
    let pointers = vec!["/payee/account".to_string(), "/payee/name".to_string()];
    let plain = json!({
        "amount": "100.00",
        "from_account": "6222020000000001",
        "payee": {"account": "6228480012345678", "name": "张三"}
    });
    let mut body = plain.clone();
    let ivs = [arr::<12>(IV1_HEX), arr::<12>(IV2_HEX)];
    let n = envelope::seal_with(
        &mut body,
        &pointers,
        "bank-enc-3945208f7b21",
        receiver.public_key(),
        &FixedInputs {
            session_key: arr(SESSION_KEY_HEX),
            ivs: &ivs,
            k: arr(K_HEX),
        },
    )
    .unwrap();
    assert_eq!(n, 2);

    let b64 = base64::engine::general_purpose::STANDARD;
    let public = hex::encode(receiver.public_key().to_sec1());
    let wrapped = b64
        .decode(body["menshen_envelope"]["key"].as_str().unwrap())
        .unwrap();
    let key = Sm4GcmKey::from_bytes(&arr(SESSION_KEY_HEX));
    let ct1 = key
        .seal(&ivs[0], b"/payee/account", b"\"6228480012345678\"")
        .unwrap();
    let ct2 = key
        .seal(&ivs[1], b"/payee/name", "\"张三\"".as_bytes())
        .unwrap();
    let wire = serde_json::to_string(&body).unwrap();
    let values = [
        ("receiver public key", public),
        ("wrapped key (C1C3C2, hex)", hex::encode(&wrapped)),
        ("account ciphertext||tag", hex::encode(&ct1)),
        ("name ciphertext||tag", hex::encode(&ct2)),
        ("body sent", wire.clone()),
    ];
    for (what, v) in &values {
        println!("{what}:\n{v}\n");
    }
    for (what, v) in &values {
        // Long hex values are wrapped in the doc at 64 characters.
        let found =
            doc.contains(v.as_str()) || doc.replace(['\n', ' '], "").contains(&v.replace(' ', ""));
        assert!(found, "docs/protocol.md §12.6: {what} is not `{v}`");
    }
    // Each input the doc names is the one used here.
    for input in [D_HEX, K_HEX, SESSION_KEY_HEX, IV1_HEX, IV2_HEX] {
        assert!(doc.contains(input), "docs/protocol.md §12.6 lacks {input}");
    }
    // And the receiver opens it back to the plaintext.
    let mut opened: serde_json::Value = serde_json::from_str(&wire).unwrap();
    let o = envelope::open(&mut opened, &pointers, |kid| {
        (kid == "bank-enc-3945208f7b21").then_some(&receiver)
    })
    .unwrap();
    assert_eq!(o.fields, 2);
    assert_eq!(opened, plain);
}
