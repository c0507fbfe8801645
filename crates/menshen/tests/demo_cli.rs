//! The newcomer's path, as a real process: `menshen demo`, then `menshen call`
//! and the admin CLI against it, then Ctrl-C (SIGINT) for a clean stop.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_menshen");

struct Demo {
    child: Child,
    info: Value,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_demo(dir: &Path) -> Demo {
    let child = Command::new(BIN)
        .args([
            "demo",
            "--dir",
            dir.to_str().unwrap(),
            "--gateway-port",
            "0",
            "--admin-port",
            "0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut demo = Demo {
        child,
        info: Value::Null,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let file = dir.join("demo.json");
    while !file.exists() {
        assert!(Instant::now() < deadline, "demo.json did not appear");
        if let Some(st) = demo.child.try_wait().unwrap() {
            panic!("demo exited early: {st}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    demo.info = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    demo
}

fn menshen(demo: &Demo, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env(
            "MENSHEN_ADMIN_URL",
            demo.info["admin_url"].as_str().unwrap(),
        )
        .env(
            "MENSHEN_ADMIN_TOKEN_FILE",
            demo.info["admin_token_file"].as_str().unwrap(),
        )
        .env_remove("MENSHEN_ADMIN_TOKEN")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn demo_then_call_then_admin_cli_then_clean_stop() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let mut demo = start_demo(&dir);
    let i = demo.info.clone();
    // demo.json holds what the issue promises, with absolute paths.
    for k in ["gateway_url", "admin_url", "admin_token_file", "ca_cert"] {
        assert!(i[k].is_string(), "{k} missing");
    }
    for p in ["admin_token_file", "ca_cert"] {
        assert!(Path::new(i[p].as_str().unwrap()).is_absolute());
    }
    let app = &i["apps"][0];
    let app_id = app["app_id"].as_str().unwrap();
    let secret = app["secret_file"].as_str().unwrap();
    assert!(Path::new(secret).is_absolute());
    let products = i["apis"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["level"] == "A1")
        .unwrap();
    for k in [
        "api_id",
        "u_api_id",
        "level",
        "method",
        "path",
        "example_path",
    ] {
        assert!(products[k].is_string(), "apis[].{k} missing");
    }
    let url = format!(
        "{}{}",
        i["gateway_url"].as_str().unwrap(),
        products["example_path"].as_str().unwrap()
    );
    let ca = i["ca_cert"].as_str().unwrap();

    // A signed A1 call with the CLI.
    let o = menshen(
        &demo,
        &[
            "call",
            "--app-id",
            app_id,
            "--secret-file",
            secret,
            "--ca",
            ca,
            "GET",
            &url,
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("HTTP 200") && text(&o).contains(app_id),
        "{}",
        text(&o)
    );

    // The admin CLI: list, suspend, and the call is refused.
    let o = menshen(&demo, &["app", "list"]);
    assert!(
        o.status.success() && text(&o).contains(app_id),
        "{}",
        text(&o)
    );
    let o = menshen(&demo, &["app", "suspend", app_id]);
    assert!(o.status.success(), "{}", text(&o));
    let o = menshen(
        &demo,
        &[
            "call",
            "--app-id",
            app_id,
            "--secret-file",
            secret,
            "--ca",
            ca,
            "GET",
            &url,
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("APP_NOT_ACTIVE"), "{}", text(&o));
    let o = menshen(&demo, &["app", "resume", app_id]);
    assert!(o.status.success());

    // Bad input: the error names the field.
    let o = menshen(
        &demo,
        &[
            "api",
            "create",
            "--api-id",
            "x",
            "--method",
            "GET",
            "--path",
            "/v1/x",
            "--upstream",
            "ftp://h",
            "--level",
            "A1",
            "--category",
            "1",
        ],
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("upstream"), "{}", text(&o));

    // U_API_ID decode explains each field; a bad one names the failing field.
    let code = products["u_api_id"].as_str().unwrap();
    let o = menshen(&demo, &["uapi", "decode", code]);
    assert!(
        o.status.success() && text(&o).contains("institution") && text(&o).contains("C10305"),
        "{}",
        text(&o)
    );
    let o = menshen(&demo, &["uapi", "decode", "0PC10305030100010000010"]);
    assert!(
        !o.status.success() && text(&o).contains("length"),
        "{}",
        text(&o)
    );
    let o = menshen(&demo, &["uapi", "decode", "0PC103050301000100000100"]);
    assert!(
        !o.status.success() && text(&o).contains("type"),
        "{}",
        text(&o)
    );

    // The A2 app with its SM2 key: a signed call whose response signature the
    // CLI verifies with the bank's published key; the secret-only app is refused.
    let partner = &i["apps"][1];
    let a2 = i["apis"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["level"] == "A2")
        .unwrap();
    let a2url = format!(
        "{}{}",
        i["gateway_url"].as_str().unwrap(),
        a2["example_path"].as_str().unwrap()
    );
    let o = menshen(
        &demo,
        &[
            "call",
            "--app-id",
            partner["app_id"].as_str().unwrap(),
            "--key",
            partner["private_key"].as_str().unwrap(),
            "--bank-key",
            i["bank_signing_public_key"].as_str().unwrap(),
            "--ca",
            ca,
            "GET",
            &a2url,
        ],
    );
    assert!(
        o.status.success() && text(&o).contains("HTTP 200") && text(&o).contains("verified"),
        "{}",
        text(&o)
    );
    let o = menshen(
        &demo,
        &[
            "call",
            "--app-id",
            app_id,
            "--secret-file",
            secret,
            "--ca",
            ca,
            "GET",
            &a2url,
        ],
    );
    assert!(
        text(&o).contains("INSUFFICIENT_AUTHENTICATION"),
        "{}",
        text(&o)
    );

    // Ctrl-C: a clean, prompt stop with exit code 0.
    let pid = demo.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(st) = demo.child.try_wait().unwrap() {
            assert!(st.success(), "demo exit status {st}");
            break;
        }
        assert!(Instant::now() < deadline, "demo did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The access log has both calls.
    // The log has both calls and the admin changes, and verifies offline
    // with only the audit public key (AUD-3).
    let audit_dir = i["audit_dir"].as_str().unwrap();
    let recs = menshen_audit::writer::read_all_records(Path::new(audit_dir))
        .unwrap()
        .join("\n");
    assert!(recs.contains("APP_NOT_ACTIVE"), "{recs}");
    assert!(
        recs.contains("\"kind\":\"admin\"") && recs.contains("/suspend"),
        "ADM-1: admin change recorded"
    );
    let o = Command::new(BIN)
        .args([
            "audit",
            "verify",
            audit_dir,
            "--public-key",
            i["audit_public_key"].as_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        o.status.success() && text(&o).contains("OK:"),
        "{}",
        text(&o)
    );
}
