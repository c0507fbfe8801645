//! The newcomer's path, as a real process: `menshen demo`, then `menshen call`
//! and the admin CLI against it, then Ctrl-C (SIGINT) for a clean stop.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod browser_sim;

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

    // The A2 app with its SM2 key: the customer authorizes it first (USR-2),
    // exactly as the demo prints: `menshen authorize` waits on the app's
    // loopback redirect URI while alice logs in (password and TOTP code)
    // and approves in a "browser"; then `menshen call --token-file` makes
    // the signed call, whose response signature the CLI verifies.
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
    let alice = &i["customers"][0];
    let token_file = dir.join("token");
    let redirect = partner["redirect_uri"].as_str().unwrap();
    let mut auth = Command::new(BIN)
        .args([
            "authorize",
            "--app-id",
            partner["app_id"].as_str().unwrap(),
            "--key",
            partner["private_key"].as_str().unwrap(),
            "--bank-key",
            i["bank_signing_public_key"].as_str().unwrap(),
            "--ca",
            ca,
            "--redirect-uri",
            redirect,
            "--scope",
            "account-balance",
            "--wait-secs",
            "60",
            "--token-out",
            token_file.to_str().unwrap(),
            i["gateway_url"].as_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Its stderr is read to the end on a thread (closing the pipe early
    // would kill its later messages), handing the URL over when it appears.
    let (url_tx, url_rx) = std::sync::mpsc::channel();
    let stderr = auth.stderr.take().unwrap();
    let err_text = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut all = String::new();
        for l in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(u) = l
                .split_whitespace()
                .find(|w| w.contains("/oauth2/authorize?"))
            {
                let _ = url_tx.send(u.to_string());
            }
            all.push_str(&l);
            all.push('\n');
        }
        all
    });
    let url = url_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("menshen authorize printed no URL");
    let otp = menshen_crypto::totp::totp_at(
        &menshen_crypto::totp::base32_decode(
            std::fs::read_to_string(alice["totp_secret_file"].as_str().unwrap())
                .unwrap()
                .trim(),
        )
        .unwrap(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64,
    );
    let account = alice["accounts"][0].as_str().unwrap().to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let location = rt.block_on(async {
        let mut b = browser_sim::Browser::new(
            i["gateway_url"].as_str().unwrap(),
            &std::fs::read(ca).unwrap(),
        );
        let p = b.send("GET", &url, None).await;
        let p = b.follow(p, redirect).await;
        assert_eq!(p.status, 200, "{}", p.html);
        let csrf = browser_sim::input(&p.html, "csrf").unwrap();
        let p = b
            .send(
                "POST",
                &browser_sim::action(&p.html),
                Some(vec![
                    ("csrf".into(), csrf),
                    (
                        "username".into(),
                        alice["username"].as_str().unwrap().into(),
                    ),
                    (
                        "password".into(),
                        alice["password"].as_str().unwrap().into(),
                    ),
                    ("otp".into(), otp),
                ]),
            )
            .await;
        let p = b.follow(p, redirect).await;
        assert!(p.html.contains("name=\"approve\""), "{}", p.html);
        let csrf = browser_sim::input(&p.html, "csrf").unwrap();
        let p = b
            .send(
                "POST",
                &browser_sim::action(&p.html),
                Some(vec![
                    ("csrf".into(), csrf),
                    ("account".into(), account.clone()),
                    ("approve".into(), "1".into()),
                ]),
            )
            .await;
        p.location.expect("redirect to the app")
    });
    assert!(location.starts_with(redirect), "{location}");
    // The browser follows the redirect to the CLI's loopback listener.
    {
        use std::io::{Read, Write};
        let target = location.strip_prefix("http://").unwrap();
        let (hostport, pq) = target.split_at(target.find('/').unwrap());
        let mut s = std::net::TcpStream::connect(hostport).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "GET {pq} HTTP/1.1\r\nhost: {hostport}\r\nconnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    }
    let st = auth.wait().unwrap();
    let err_text = err_text.join().unwrap();
    assert!(st.success(), "menshen authorize failed: {err_text}");
    let call_a2 = |demo: &Demo| {
        menshen(
            demo,
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
                "--token-file",
                token_file.to_str().unwrap(),
                "GET",
                &a2url,
            ],
        )
    };
    let o = call_a2(&demo);
    assert!(
        o.status.success()
            && text(&o).contains("HTTP 200")
            && text(&o).contains("verified")
            && text(&o).contains(alice["user_id"].as_str().unwrap()),
        "{}",
        text(&o)
    );
    // cmbc profile: the token worked once.
    let o = call_a2(&demo);
    assert!(text(&o).contains("TOKEN_INVALID"), "{}", text(&o));
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
