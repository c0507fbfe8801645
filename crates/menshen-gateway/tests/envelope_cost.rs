//! Issue 13 performance: what field envelopes cost the gateway on an A3
//! call, measured in process, in one run: the same A3 transfer with two
//! encrypted request fields and one encrypted response field (`xfer-env`)
//! beside the same call without envelopes (`xfer-plain`). Target: envelopes
//! add <= 15% CPU per call.
//!
//! One gateway `State`; rounds alternate between the two APIs; each round
//! sends `CALLS` A3 calls (SM2-signed, and for `xfer-env` sealed, before the
//! clock starts: the app's work is not the gateway's) through
//! `pipeline::handle` to a mock upstream on a thread of its own. The gateway's
//! CPU is the process's CPU time (`/proc/self/task/*/schedstat`) minus the
//! upstream thread's; it includes the SM2 verification and response
//! signature, the durable audit record and, on the envelope side, the SM2
//! unwrap, SM4-GCM, the session-key check and the response sealing. Medians
//! of the rounds.
//!
//! Run: `cargo test --release -p menshen-gateway --test envelope_cost -- --ignored --nocapture`
//! (ignored by default: it wants a quiet machine).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use http::Request;
use menshen_audit::{AuditConfig, AuditLog};
use menshen_gateway::server::{StartOptions, State};
use menshen_gateway::GatewayConfig;
use menshen_model::{NewApi, NewApp};
use menshen_sdk::{sign_request, BankEncryptionKey, Credentials, SignOptions};
use menshen_store::MemoryHotState;
use serde_json::json;

mod cost;

const CALLS: usize = 2_000;
const ROUNDS: usize = 7;
const BODY: &str = r#"{"from_account":"6222020200112233445","payee":{"account":"6217000010001234567","name":"王芳"},"amount":"100.00","currency":"CNY"}"#;

async fn round(
    state: &Arc<State>,
    creds: &Credentials,
    path: &str,
    bank: Option<&BankEncryptionKey>,
) -> (f64, f64) {
    let pointers = vec!["/payee/account".to_string(), "/payee/name".to_string()];
    let reqs: Vec<Request<Bytes>> = (0..CALLS)
        .map(|_| {
            let body = match bank {
                Some(b) => menshen_sdk::seal_request_fields(BODY.as_bytes(), &pointers, b).unwrap(),
                None => BODY.as_bytes().to_vec(),
            };
            let mut r = Request::builder()
                .method("POST")
                .uri(format!("https://gw.test{path}"))
                .header("content-type", "application/json")
                .body(Bytes::from(body))
                .unwrap();
            sign_request(&mut r, creds, &SignOptions::default()).unwrap();
            r
        })
        .collect();
    cost::run_calls(state, reqs).await
}

#[test]
#[ignore]
fn conf_1_envelope_cost_per_a3_call() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let cp = cost::control_plane(dir.path());
        let keys = cp.ensure_bank_keys().await.unwrap();
        let upstream = cost::mock_upstream(
            br#"{"status":"accepted","amount":"100.00","payee":{"account":"6217000010001234567"}}"#,
        );
        for (id, path, envelope) in [
            ("xfer-plain", "/v1/xfer-plain", json!(null)),
            (
                "xfer-env",
                "/v1/xfer-env",
                json!({"request": ["/payee/account", "/payee/name"], "response": ["/payee/account"]}),
            ),
        ] {
            let mut controls = json!({});
            if !envelope.is_null() {
                controls["envelope"] = envelope;
            }
            let api: NewApi = serde_json::from_value(json!({"api_id": id, "method": "POST",
                "path": path, "upstream": upstream, "level": "A3", "category": 3,
                "subcategory": 1, "integrations": ["server_to_server"], "controls": controls}))
            .unwrap();
            cp.create_api(&api).await.unwrap();
        }
        let app: NewApp =
            serde_json::from_value(json!({"name": "Bench", "kind": "server"})).unwrap();
        let created = cp.create_app(&app).await.unwrap();
        let app_id = created.app.app_id.clone();
        let (signing, pem) =
            menshen_crypto::PrivateKey::generate(menshen_crypto::SigAlg::Sm2Sm3).unwrap();
        cp.add_public_key(&app_id, &signing.public_key().to_pem(), None, None)
            .await
            .unwrap();
        let (enc, _) = menshen_crypto::Sm2DecryptionKey::generate().unwrap();
        let enc_pub = menshen_crypto::PublicKey::from_spki_der(&enc.public_key().spki_der())
            .unwrap()
            .to_pem();
        cp.add_encryption_key(&app_id, &enc_pub, None).await.unwrap();
        cp.add_grant(&app_id, "xfer-plain").await.unwrap();
        cp.add_grant(&app_id, "xfer-env").await.unwrap();
        let bank_rec = keys.iter().find(|k| k.purpose == "encryption").unwrap();
        let bank = BankEncryptionKey::from_pem(&bank_rec.key_id, &bank_rec.public_pem).unwrap();
        let creds = Credentials::key_pair(
            &app_id,
            menshen_crypto::PrivateKey::from_pkcs8_pem(&pem).unwrap(),
        );
        let audit = AuditLog::open(AuditConfig::new(dir.path().join("audit")), None, None).unwrap();
        let cfg = GatewayConfig::new(
            vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0))],
            "unused.pem".into(),
            "unused.key".into(),
        );
        let state = State::build(
            cfg,
            &cp,
            Arc::new(MemoryHotState::default()),
            audit,
            StartOptions::default(),
        )
        .await
        .unwrap();
        // Warm-up.
        round(&state, &creds, "/v1/xfer-plain", None).await;
        round(&state, &creds, "/v1/xfer-env", Some(&bank)).await;
        let (mut cp_, mut ce, mut wp, mut we) = (vec![], vec![], vec![], vec![]);
        for _ in 0..ROUNDS {
            let (c, w) = round(&state, &creds, "/v1/xfer-plain", None).await;
            cp_.push(c);
            wp.push(w);
            let (c, w) = round(&state, &creds, "/v1/xfer-env", Some(&bank)).await;
            ce.push(c);
            we.push(w);
        }
        let (p, e) = (cost::median(cp_.clone()), cost::median(ce.clone()));
        println!("gateway CPU per A3 call, us (rounds of {CALLS}): plain {cp_:.1?}  envelopes {ce:.1?}");
        println!(
            "median: plain {p:.1} us, with envelopes {e:.1} us: envelopes cost {:+.1} us = {:+.1}% per call (target <= +15%)",
            e - p,
            (e / p - 1.0) * 100.0
        );
        println!(
            "wall per call (median), us: plain {:.1}, envelopes {:.1}",
            cost::median(wp),
            cost::median(we)
        );
    });
}
