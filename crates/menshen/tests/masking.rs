//! Masking that holds (AUD-5, CONF-3; issue 10 item 1): every shape of
//! personal financial information the README promises to mask is sent
//! through a real node, signed and unsigned, in paths and in retained
//! bodies; then every byte under the node's data directory (segments
//! decompressed, the SQLite files included) is searched for the clear values
//! in every form they were sent in.

mod common;

use common::{setup, Harness, Setup};
use serde_json::json;

/// A card number (16 digits).
const CARD: &str = "6228480012345678";
/// Another card, sent with spaces, dashes and `+`.
const CARD_SEP: &str = "6228480098761234";
/// A 20-digit account number.
const ACCOUNT_20: &str = "62220202001122334455";
/// A mainland mobile number.
const PHONE: &str = "13812345678";
/// A card number sent as full-width digits.
const CARD_FW: &str = "6217000011112222";
/// A mobile number sent as full-width digits inside a JSON string.
const PHONE_FW: &str = "13987654321";
/// Names under camelCase and other-style keys.
const NAMES: &[&str] = &[
    "张三丰",
    "李四光",
    "王五常",
    "赵六合",
    "钱七七",
    "孙八八",
    "周九九",
];
/// A password in a form body.
const PASSWORD: &str = "Secr3tPwd";
/// Account numbers in bodies.
const BODY_ACCOUNT: &str = "62220202001122334466";
const BODY_CARD: &str = "6228480055556666";

fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn pct(s: &str, upper: bool) -> String {
    s.bytes()
        .map(|b| {
            if upper {
                format!("%{b:02X}")
            } else {
                format!("%{b:02x}")
            }
        })
        .collect()
}

fn full_width(digits: &str) -> String {
    digits
        .chars()
        .map(|c| char::from_u32(c as u32 - '0' as u32 + 0xFF10).unwrap())
        .collect()
}

fn grouped(digits: &str, sep: &str) -> String {
    digits
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(sep)
}

/// Every form a clear value may take on disk.
fn forms(v: &str) -> Vec<String> {
    let mut out = vec![v.to_string(), pct(v, true), pct(v, false)];
    if v.bytes().all(|b| b.is_ascii_digit()) {
        let fw = full_width(v);
        out.extend([pct(&fw, true), pct(&fw, false), fw]);
        for sep in [" ", "-", "+", "%20"] {
            out.push(grouped(v, sep));
        }
        // The 11-digit mobile grouped 3-4-4.
        if v.len() == 11 {
            for sep in [" ", "-"] {
                out.push(format!("{}{sep}{}{sep}{}", &v[..3], &v[3..7], &v[7..]));
            }
        }
    }
    out
}

/// Every byte under the data directory, segments decompressed.
fn all_files(h: &Harness) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files = vec![];
    walk(&h.data_dir(), &mut files);
    files
        .into_iter()
        .map(|f| {
            let data = if f.extension().is_some_and(|e| e == "zst") {
                menshen_audit::writer::read_segment(&f)
                    .unwrap()
                    .into_bytes()
            } else {
                std::fs::read(&f).unwrap()
            };
            (f, data)
        })
        .collect()
}

async fn bodies_api(s: &Setup, api_id: &str, method: &str, path: &str) {
    let (st, v) = s
        .h
        .admin(
            "POST",
            "/v1/apis",
            Some(json!({"api_id": api_id, "method": method, "path": path, "upstream": s.h.upstream_url,
                "level": "A1", "category": 1, "subcategory": 2, "controls": {"audit_messages": "bodies"}})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    s.h.grant(&s.app_id, api_id).await;
}

/// Send `path` signed and unsigned; returns the two transaction ids.
async fn get_both(s: &Setup, path: &str) -> Vec<String> {
    let signed = s.client.call("GET", path, None).await.unwrap();
    let raw = menshen_sdk::http_client(Some(&s.h.ca_pem)).unwrap();
    let req = s.client.request("GET", path, None).unwrap();
    let unsigned = menshen_sdk::send(&raw, req).await.unwrap();
    assert!(
        unsigned.status == 401 || unsigned.status == 404,
        "{path}: {}",
        unsigned.status
    );
    vec![
        signed.txn_id().unwrap().to_string(),
        unsigned.txn_id().unwrap().to_string(),
    ]
}

/// Send a signed POST with `body` as `content_type`, with extra headers.
async fn post(
    s: &Setup,
    path: &str,
    body: &[u8],
    content_type: &str,
    headers: &[(&'static str, String)],
) -> String {
    let mut req = s.client.request("POST", path, Some(body.to_vec())).unwrap();
    req.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_str(content_type).unwrap(),
    );
    for (k, v) in headers {
        req.headers_mut()
            .insert(*k, http::HeaderValue::from_str(v).unwrap());
    }
    s.client.sign(&mut req, None).unwrap();
    let r = s.client.send_unverified(req).await.unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.txn_id().unwrap().to_string()
}

#[tokio::test]
async fn aud_5_conf_3_no_clear_personal_data_anywhere_in_the_data_directory() {
    let s = setup().await;
    bodies_api(&s, "balance", "GET", "/v1/accounts/{account_id}/balance").await;
    bodies_api(&s, "transfer", "POST", "/v1/transfers").await;

    // Paths: every form, signed and unsigned.
    let fw_pct = pct(&full_width(CARD_FW), true);
    let paths = [
        format!("/v1/accounts/{}/balance", pct(CARD, true)),
        format!("/v1/accounts/{}/balance", pct(CARD, false)),
        format!("/v1/accounts/{PHONE}/balance"),
        format!("/v1/accounts/{}/balance", grouped(CARD_SEP, "%20")),
        format!("/v1/accounts/{}/balance", grouped(CARD_SEP, "-")),
        format!("/v1/accounts/{}/balance", grouped(CARD_SEP, "+")),
        format!("/v1/accounts/{ACCOUNT_20}/balance"),
        format!("/v1/accounts/{fw_pct}/balance"),
    ];
    let mut txns = vec![];
    for p in &paths {
        txns.extend(get_both(&s, p).await);
    }

    // Bodies: JSON with camelCase and other-style name keys, a form, plain text.
    let json_body = json!({
        "accountName": NAMES[0],
        "payerName": NAMES[1],
        "payer_name": NAMES[2],
        "PAYER-NAME": NAMES[3],
        "toAccount": BODY_ACCOUNT,
        "memo": format!("call {}", full_width(PHONE_FW)),
        "amount": "10.00",
    });
    txns.push(
        post(
            &s,
            "/v1/transfers",
            json_body.to_string().as_bytes(),
            "application/json",
            // Headers named like sensitive keys (the name percent-encoded:
            // header values are ASCII).
            &[
                ("x-payer-name", pct(NAMES[6], true)),
                ("x-pin", "97531".to_string()),
                ("x-card-no", grouped(CARD_SEP, " ")),
            ],
        )
        .await,
    );
    let form = format!(
        "pin=135790&pwd={PASSWORD}&card={}&payer_name={}&amount=10.00",
        grouped(BODY_CARD, "+"),
        pct(NAMES[4], true)
    );
    txns.push(
        post(
            &s,
            "/v1/transfers",
            form.as_bytes(),
            "application/x-www-form-urlencoded",
            &[],
        )
        .await,
    );
    let text = format!(
        "accountName: {}\npin: 246802\ncard {}\n",
        NAMES[5],
        grouped(CARD_SEP, "-")
    );
    txns.push(post(&s, "/v1/transfers", text.as_bytes(), "text/plain", &[]).await);

    // Every case reached the log, masked.
    let recs = s.h.records().await;
    for t in &txns {
        assert!(recs.iter().any(|r| &r.txn_id == t), "no record of {t}");
    }
    let paths_logged: Vec<&str> = recs.iter().map(|r| r.path.as_str()).collect();
    for want in [
        "/v1/accounts/622848******5678/balance",
        "/v1/accounts/138****5678/balance",
        "/v1/accounts/622202**********4455/balance",
        "/v1/accounts/621700******2222/balance",
    ] {
        assert!(
            paths_logged.contains(&want),
            "{want} not in {paths_logged:?}"
        );
    }

    let mut h = s.h;
    h.stop().await;
    let files = all_files(&h);
    assert!(files.len() > 3, "{files:?}");
    let mut needles: Vec<String> = vec![];
    for v in [
        CARD,
        CARD_SEP,
        ACCOUNT_20,
        PHONE,
        CARD_FW,
        PHONE_FW,
        BODY_ACCOUNT,
        BODY_CARD,
    ] {
        needles.extend(forms(v));
    }
    for n in NAMES {
        needles.extend(forms(n));
    }
    needles.extend(forms(PASSWORD));
    needles.extend([
        "=135790".to_string(),
        "135790&".to_string(),
        ": 246802".to_string(),
        "246802\n".to_string(),
        "246802\\n".to_string(),
        "\"97531\"".to_string(),
    ]);
    for (f, data) in &files {
        for needle in &needles {
            assert!(
                !data.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle:?} found in {}",
                f.display()
            );
        }
    }
}
