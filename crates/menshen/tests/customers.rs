//! The bank's side of customer authorization through the admin API and the
//! CLI, against a real node (issue 11): enrolling customers (USR-1),
//! duplicates refused, redirect URIs validated, the bank revoking a consent
//! (USR-6, AUTH-6), and no password or TOTP secret in any admin record.

mod common;

use common::{admin_records, Harness};
use menshen_crypto::totp;
use menshen_model::{Consent, ConsentState};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_menshen");

/// The whole log as text, for "this never appears" checks.
async fn log_text(h: &Harness) -> String {
    h.node().audit.flush().await.unwrap();
    menshen_audit::writer::read_all_records(h.node().audit.dir())
        .unwrap()
        .join("\n")
}

fn consent(id: &str, app: &str, user: &str) -> Consent {
    Consent {
        consent_id: id.into(),
        app_id: app.into(),
        user_id: Some(user.into()),
        scopes: vec!["balance".into()],
        accounts: vec!["6222020000000001".into()],
        state: ConsentState::Authorised,
        expires_at: menshen_store::now_unix() + 3600,
        use_limit: None,
        daily_limit: None,
        uses: 0,
        agent_user_id: None,
        agent_approved: false,
        two_factor: false,
        created_at: menshen_store::now_unix(),
        authorised_at: Some(menshen_store::now_unix()),
        revoked_by: None,
        ended_at: None,
    }
}

/// Whether `code` is the TOTP code of `secret` now (or one step either side,
/// in case the clock crossed a step boundary in between).
fn is_current_code(secret: &[u8], code: &str) -> bool {
    totp::totp_verify(secret, code, menshen_store::now_unix(), 1).is_some()
}

#[tokio::test]
async fn usr_1_customers_enrolled_duplicates_refused_no_secret_recorded() {
    let h = Harness::start().await;
    let password = "Correct-Horse-9";
    let (s, v) = h
        .admin(
            "POST",
            "/v1/customers",
            Some(json!({
                "username": "zhang.san",
                "display_name": "张三",
                "password": password,
                "accounts": ["6222020000000001", "6222020000000002"],
                "totp": true,
            })),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let c = &v["customer"];
    let user_id = c["user_id"].as_str().unwrap().to_string();
    assert!(user_id.starts_with('C') && user_id.len() == 27, "{v}");
    assert_eq!(c["username"], "zhang.san");
    assert_eq!(c["has_totp"], true);
    assert_eq!(
        c["accounts"],
        json!(["6222020000000001", "6222020000000002"])
    );
    assert!(
        c.get("password").is_none() && c.get("password_hash").is_none(),
        "{v}"
    );
    // The TOTP secret once, in base32 and as an otpauth:// URI, and it is
    // the secret the store keeps sealed.
    let b32 = v["totp_secret"].as_str().unwrap().to_string();
    let secret = totp::base32_decode(&b32).unwrap();
    assert_eq!(secret.len(), 20);
    let uri = v["otpauth_uri"].as_str().unwrap().to_string();
    assert!(
        uri.starts_with("otpauth://totp/") && uri.contains(&format!("secret={b32}")),
        "{uri}"
    );
    let stored = h
        .node()
        .cp
        .open_totp_secret(&user_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.as_slice(), secret.as_slice());

    // Duplicates: the username, and an account that already has an owner.
    let dup = |username: &str, account: &str| json!({"username": username, "display_name": "X", "password": "password-1", "accounts": [account]});
    let (s, v) = h
        .admin(
            "POST",
            "/v1/customers",
            Some(dup("zhang.san", "6222020000000009")),
        )
        .await;
    assert_eq!((s, v["field"].as_str()), (409, Some("username")), "{v}");
    let (s, v) = h
        .admin(
            "POST",
            "/v1/customers",
            Some(dup("li.si", "6222020000000002")),
        )
        .await;
    assert_eq!((s, v["field"].as_str()), (409, Some("accounts")), "{v}");
    // Bad input names the field.
    for (field, body) in [
        (
            "password",
            json!({"username": "li.si", "display_name": "李四", "password": "short", "accounts": ["6222020000000003"]}),
        ),
        (
            "accounts",
            json!({"username": "li.si", "display_name": "李四", "password": "password-1", "accounts": ["12ab"]}),
        ),
        (
            "username",
            json!({"username": "x", "display_name": "李四", "password": "password-1", "accounts": ["6222020000000003"]}),
        ),
        (
            "surprise",
            json!({"username": "li.si", "display_name": "李四", "password": "password-1", "accounts": ["6222020000000003"], "surprise": 1}),
        ),
    ] {
        let (s, v) = h.admin("POST", "/v1/customers", Some(body)).await;
        assert_eq!((s, v["field"].as_str()), (400, Some(field)), "{v}");
    }
    let (s, v) = h
        .admin(
            "POST",
            "/v1/customers",
            Some(json!({"username": "li.si", "display_name": "李四", "password": "password-1", "accounts": ["6222020000000003"]})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert!(v.get("totp_secret").is_none(), "{v}");
    assert_eq!(v["customer"]["has_totp"], false);

    let (s, list) = h.admin("GET", "/v1/customers", None).await;
    assert_eq!(s, 200);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["zhang.san", "li.si"], "refused ones wrote nothing");

    // ADM-1 and USR-1: the change is recorded, without the password or the
    // TOTP secret (in base32 or inside the otpauth:// URI).
    let recs = admin_records(&h).await;
    let create = recs
        .iter()
        .find(|r| r["action"] == "POST /v1/customers" && r["status"] == 201)
        .expect("the enrolment is recorded");
    assert_eq!(create["request"]["password"], "***", "{create}");
    assert_eq!(create["after"]["totp_secret"], "***", "{create}");
    let text = log_text(&h).await;
    for leak in [password, b32.as_str(), "otpauth://", "password-1"] {
        assert!(!text.contains(leak), "`{leak}` is in the audit log");
    }
}

#[tokio::test]
async fn redirect_uris_validated_and_replaced() {
    let h = Harness::start().await;
    let (app, _) = h.app("Fintech", "server").await;
    let path = format!("/v1/apps/{app}/redirect-uris");
    let (s, v) = h.admin("GET", &path, None).await;
    assert_eq!((s, v["redirect_uris"].clone()), (200, json!([])), "{v}");
    let uris = json!(["https://fintech.example/cb", "http://127.0.0.1:8080/cb"]);
    let (s, v) = h.admin("PUT", &path, Some(uris.clone())).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["redirect_uris"], uris);
    assert_eq!(
        h.node().cp.store.redirect_uris(&app).await.unwrap(),
        ["https://fintech.example/cb", "http://127.0.0.1:8080/cb"]
    );
    for bad in [
        json!(["https://fintech.example/cb#x"]),
        json!(["http://fintech.example/cb"]),
        json!(["/cb"]),
        json!(["https://user@fintech.example/cb"]),
        json!(["https://fintech.example/cb", "https://fintech.example/cb"]),
        json!({"redirect_uris": ["https://fintech.example/cb"]}),
        json!("https://fintech.example/cb"),
    ] {
        let (s, v) = h.admin("PUT", &path, Some(bad.clone())).await;
        assert_eq!(
            (s, v["field"].as_str()),
            (400, Some("redirect_uris")),
            "{bad}: {v}"
        );
    }
    // Nothing half-written by the refused ones.
    let (_, v) = h.admin("GET", &path, None).await;
    assert_eq!(v["redirect_uris"], uris);
    let (s, _) = h
        .admin(
            "PUT",
            "/v1/apps/app_nosuch/redirect-uris",
            Some(json!(["https://a.example/cb"])),
        )
        .await;
    assert_eq!(s, 404);
    // An empty list clears them.
    let (s, v) = h.admin("PUT", &path, Some(json!([]))).await;
    assert_eq!((s, v["redirect_uris"].clone()), (200, json!([])));
}

#[tokio::test]
async fn usr_6_auth_6_bank_revokes_a_consent_once() {
    let h = Harness::start().await;
    let (app, _) = h.app("Fintech", "server").await;
    let id = menshen_store::new_consent_id();
    let other = menshen_store::new_consent_id();
    h.node()
        .cp
        .store
        .insert_consent(&consent(&id, &app, "C1"))
        .await
        .unwrap();
    h.node()
        .cp
        .store
        .insert_consent(&consent(&other, &app, "C2"))
        .await
        .unwrap();

    let (s, v) = h
        .admin("GET", &format!("/v1/consents?app_id={app}"), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(v.as_array().unwrap().len(), 2, "{v}");
    let (_, v) = h.admin("GET", "/v1/consents?user_id=C2", None).await;
    assert_eq!(v[0]["consent_id"], other.as_str(), "{v}");
    assert_eq!(v.as_array().unwrap().len(), 1);
    let (_, v) = h.admin("GET", "/v1/consents?app_id=app_nosuch", None).await;
    assert_eq!(v, json!([]));

    let (s, v) = h
        .admin("POST", &format!("/v1/consents/{id}/revoke"), None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"], "revoked");
    assert_eq!(v["revoked_by"], "bank");
    assert!(v["ended_at"].as_i64().is_some(), "{v}");
    let stored = h.node().cp.store.get_consent(&id).await.unwrap();
    assert_eq!(stored.state, ConsentState::Revoked);
    // Revoking it again is a conflict: the state machine does not go back.
    let (s, v) = h
        .admin("POST", &format!("/v1/consents/{id}/revoke"), None)
        .await;
    assert_eq!((s, v["field"].as_str()), (409, Some("state")), "{v}");
    let (s, _) = h.admin("POST", "/v1/consents/CNnosuch/revoke", None).await;
    assert_eq!(s, 404);
    // The other consent is untouched.
    assert_eq!(
        h.node().cp.store.get_consent(&other).await.unwrap().state,
        ConsentState::Authorised
    );
    // The revocation is recorded with the state before it.
    let recs = admin_records(&h).await;
    let r = recs
        .iter()
        .find(|r| r["action"] == format!("POST /v1/consents/{id}/revoke") && r["status"] == 200)
        .expect("the revocation is recorded");
    assert_eq!(r["before"]["state"], "authorised", "{r}");
    assert_eq!(r["after"]["state"], "revoked", "{r}");
}

/// Run the CLI against the harness's admin API (off the async threads).
async fn cli(h: &Harness, args: Vec<String>) -> std::process::Output {
    let (url, token) = (h.admin_url.clone(), h.admin_token.clone());
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(BIN)
            .args(&args)
            .env("MENSHEN_ADMIN_URL", url)
            .env("MENSHEN_ADMIN_TOKEN", token)
            .env_remove("MENSHEN_ADMIN_TOKEN_FILE")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usr_1_cli_customer_add_writes_totp_secret_0600_and_never_prints_it() {
    let h = Harness::start().await;
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "Wang-Wu-Password\n").unwrap();
    let totp_file = dir.path().join("wangwu.totp");
    let o = cli(
        &h,
        args(&[
            "customer",
            "add",
            "--username",
            "wang.wu",
            "--name",
            "王五",
            "--password-file",
            pw.to_str().unwrap(),
            "--account",
            "6222020000000005",
            "--account",
            "6222020000000006",
            "--totp-file",
            totp_file.to_str().unwrap(),
        ]),
    )
    .await;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{stdout}\n{stderr}");
    let written = std::fs::read_to_string(&totp_file).unwrap();
    let b32 = written.trim();
    let secret = totp::base32_decode(b32).unwrap();
    assert_eq!(secret.len(), 20);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&totp_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    for leak in [b32, "otpauth://", "Wang-Wu-Password"] {
        assert!(
            !stdout.contains(leak) && !stderr.contains(leak),
            "`{leak}` printed"
        );
    }
    let v: Value = serde_json::from_str(&stdout).unwrap();
    let user_id = v["customer"]["user_id"].as_str().unwrap().to_string();
    assert_eq!(
        h.node()
            .cp
            .open_totp_secret(&user_id)
            .await
            .unwrap()
            .unwrap()
            .as_slice(),
        secret.as_slice()
    );
    // The password is what the file held, less its line break.
    let (_, hash, _) = h
        .node()
        .cp
        .store
        .find_customer_login("wang.wu")
        .await
        .unwrap()
        .unwrap();
    assert!(menshen_store::verify_password(&hash, "Wang-Wu-Password"));

    // `menshen totp FILE` prints the current code, without an admin API.
    let out = tokio::task::spawn_blocking({
        let f = totp_file.clone();
        move || {
            std::process::Command::new(BIN)
                .arg("totp")
                .arg(f)
                .env("MENSHEN_ADMIN_URL", "http://127.0.0.1:9")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(out.status.success());
    let code = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(code.len(), 6, "{code}");
    assert!(is_current_code(&secret, &code), "{code}");

    // A second add to the same file is refused before anything is created.
    let o = cli(
        &h,
        args(&[
            "customer",
            "add",
            "--username",
            "zhao.liu",
            "--name",
            "赵六",
            "--password-file",
            pw.to_str().unwrap(),
            "--account",
            "6222020000000007",
            "--totp-file",
            totp_file.to_str().unwrap(),
        ]),
    )
    .await;
    assert!(!o.status.success());
    // --totp alone would lose the secret: refused.
    let o = cli(
        &h,
        args(&[
            "customer",
            "add",
            "--username",
            "zhao.liu",
            "--name",
            "赵六",
            "--password-file",
            pw.to_str().unwrap(),
            "--account",
            "6222020000000007",
            "--totp",
        ]),
    )
    .await;
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--totp-file"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = cli(&h, args(&["customer", "list", "--json"])).await;
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");

    // Redirect URIs and consents through the CLI.
    let (app, _) = h.app("Fintech", "server").await;
    let o = cli(
        &h,
        args(&["app", "redirect-uris", &app, "https://fintech.example/cb"]),
    )
    .await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = cli(
        &h,
        args(&["app", "redirect-uris", &app, "http://fintech.example/cb"]),
    )
    .await;
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("redirect_uris"));
    assert_eq!(
        h.node().cp.store.redirect_uris(&app).await.unwrap(),
        ["https://fintech.example/cb"]
    );
    let id = menshen_store::new_consent_id();
    h.node()
        .cp
        .store
        .insert_consent(&consent(&id, &app, &user_id))
        .await
        .unwrap();
    let o = cli(&h, args(&["consent", "list", "--user", &user_id])).await;
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.starts_with("CONSENT_ID") && table.contains(&id),
        "{table}"
    );
    let o = cli(&h, args(&["consent", "revoke", &id])).await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        h.node().cp.store.get_consent(&id).await.unwrap().state,
        ConsentState::Revoked
    );
}
