//! `menshen customer ...`, `menshen consent ...` and `menshen totp FILE`:
//! the bank's side of customer authorization (issue 11). Passwords are read
//! from a file, TOTP secrets written to one (mode 0600); neither is printed
//! unless asked.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::render::{out, print_json};
use super::{AdminClient, AdminConn, ConsentCmd, CustomerCmd};

/// Read a password file: its content less one trailing line break.
fn read_password(path: &Path) -> anyhow::Result<Zeroizing<String>> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("--password-file {}", path.display()))?,
    );
    let pw = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    if pw.is_empty() {
        bail!("--password-file {}: the file is empty", path.display());
    }
    Ok(Zeroizing::new(pw.to_string()))
}

/// `menshen customer ...`
pub async fn customer(cmd: CustomerCmd, conn: AdminConn) -> anyhow::Result<()> {
    let c = AdminClient::new(&conn)?;
    match cmd {
        CustomerCmd::Add {
            username,
            name,
            password_file,
            accounts,
            totp,
            totp_file,
            show_totp,
        } => {
            let totp = totp || totp_file.is_some() || show_totp;
            if totp && totp_file.is_none() && !show_totp {
                bail!("--totp: the TOTP secret is shown once; give --totp-file FILE to keep it (mode 0600), or --show-totp to print it");
            }
            if let Some(f) = &totp_file {
                if f.exists() {
                    bail!(
                        "--totp-file {}: exists; refusing to overwrite a secret",
                        f.display()
                    );
                }
            }
            let password = read_password(&password_file)?;
            let mut v = c
                .call(
                    "POST",
                    "/v1/customers",
                    Some(json!({
                        "username": username,
                        "display_name": name,
                        "password": password.as_str(),
                        "accounts": accounts,
                        "totp": totp,
                    })),
                )
                .await?;
            let secret = Zeroizing::new(
                v.get("totp_secret")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            );
            if let Some(f) = &totp_file {
                if secret.is_empty() {
                    bail!("the admin API returned no TOTP secret");
                }
                crate::pki::write_private(f, format!("{}\n", secret.as_str()).as_bytes())?;
            }
            if !show_totp && v.get("totp_secret").is_some() {
                let note = match &totp_file {
                    Some(f) => format!("(written to {})", f.display()),
                    None => "(not shown)".to_string(),
                };
                v["totp_secret"] = json!(note);
                v["otpauth_uri"] = json!(note);
            }
            print_json(&v);
        }
        CustomerCmd::List => out(
            &c,
            &c.call("GET", "/v1/customers", None).await?,
            &[
                "user_id",
                "username",
                "display_name",
                "accounts",
                "has_totp",
                "locked_until",
            ],
        ),
    }
    Ok(())
}

/// A query string of the given pairs (values percent-encoded).
fn query(pairs: &[(&str, &Option<String>)]) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", enc(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// `menshen consent ...`
pub async fn consent(cmd: ConsentCmd, conn: AdminConn) -> anyhow::Result<()> {
    let c = AdminClient::new(&conn)?;
    match cmd {
        ConsentCmd::List { app, user } => {
            let q = query(&[("app_id", &app), ("user_id", &user)]);
            out(
                &c,
                &c.call("GET", &format!("/v1/consents{q}"), None).await?,
                &[
                    "consent_id",
                    "app_id",
                    "user_id",
                    "state",
                    "scopes",
                    "accounts",
                    "expires_at",
                    "uses",
                    "use_limit",
                    "revoked_by",
                ],
            );
        }
        ConsentCmd::Revoke { consent_id } => print_json(
            &c.call("POST", &format!("/v1/consents/{consent_id}/revoke"), None)
                .await?,
        ),
    }
    Ok(())
}

/// The TOTP secret in a file: base32 (as `customer add --totp-file` writes
/// it), or an `otpauth://` URI holding one.
fn read_totp_secret(path: &PathBuf) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("FILE {}", path.display()))?,
    );
    let t = text.trim();
    let b32 = if t.to_ascii_lowercase().starts_with("otpauth://") {
        t.split(['?', '&'])
            .find_map(|p| p.strip_prefix("secret="))
            .unwrap_or("")
    } else {
        t
    };
    match menshen_crypto::totp::base32_decode(b32) {
        Some(s) if !s.is_empty() => Ok(s),
        _ => bail!(
            "FILE {}: not a base32 TOTP secret (or an otpauth:// URI)",
            path.display()
        ),
    }
}

/// `menshen totp FILE`: the current 6-digit code (RFC 6238) of the secret
/// in FILE. Needs no admin connection.
pub fn totp(file: &PathBuf) -> anyhow::Result<()> {
    let secret = read_totp_secret(file)?;
    crate::out!(
        "{}",
        menshen_crypto::totp::totp_at(&secret, menshen_store::now_unix())
    );
    Ok(())
}
