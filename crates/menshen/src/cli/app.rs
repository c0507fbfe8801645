//! `menshen app ...`: apps, their credentials, keys and certificates.

use std::path::PathBuf;

use anyhow::{bail, Context};
use serde_json::{json, Value};

use super::render::{out, print_json};
use super::{AdminClient, AdminConn, AppCmd};

fn emit_secret(v: &mut Value, secret_out: &Option<PathBuf>) -> anyhow::Result<()> {
    if let Some(path) = secret_out {
        let s = v
            .get("app_secret")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        crate::pki::write_private(path, s.as_bytes())?;
        v["app_secret"] = json!(format!("(written to {})", path.display()));
    }
    Ok(())
}

/// `menshen app ...`
pub async fn app(cmd: AppCmd, conn: AdminConn) -> anyhow::Result<()> {
    let c = AdminClient::new(&conn)?;
    match cmd {
        AppCmd::Create {
            name,
            kind,
            contact,
            notify_url,
            secret_out,
        } => {
            let mut v = c
                .call(
                    "POST",
                    "/v1/apps",
                    Some(json!({"name": name, "kind": kind, "contact": contact, "notify_url": notify_url})),
                )
                .await?;
            emit_secret(&mut v, &secret_out)?;
            print_json(&v);
        }
        AppCmd::List => out(
            &c,
            &c.call("GET", "/v1/apps", None).await?,
            &[
                "app_id",
                "name",
                "kind",
                "status",
                "notify_url",
                "created_at",
            ],
        ),
        AppCmd::Show { app_id } => {
            let mut v = c.call("GET", &format!("/v1/apps/{app_id}"), None).await?;
            v["credentials"] = c
                .call("GET", &format!("/v1/apps/{app_id}/credentials"), None)
                .await?;
            print_json(&v)
        }
        AppCmd::KeyAdd {
            app_id,
            public_key,
            not_before,
            not_after,
        } => {
            let pem = std::fs::read_to_string(&public_key)
                .with_context(|| format!("--public-key {}", public_key.display()))?;
            print_json(
                &c.call("POST", &format!("/v1/apps/{app_id}/keys"), Some(json!({"public_key_pem": pem, "not_before": not_before, "not_after": not_after})))
                    .await?,
            )
        }
        AppCmd::EncKeyAdd {
            app_id,
            public_key,
            not_after,
        } => {
            let pem = std::fs::read_to_string(&public_key)
                .with_context(|| format!("--public-key {}", public_key.display()))?;
            print_json(
                &c.call(
                    "POST",
                    &format!("/v1/apps/{app_id}/encryption-keys"),
                    Some(json!({"public_key_pem": pem, "not_after": not_after})),
                )
                .await?,
            )
        }
        AppCmd::CertAdd { app_id, cert } => {
            let pem = std::fs::read_to_string(&cert)
                .with_context(|| format!("--cert {}", cert.display()))?;
            print_json(
                &c.call(
                    "POST",
                    &format!("/v1/apps/{app_id}/certificates"),
                    Some(json!({"certificate_pem": pem})),
                )
                .await?,
            )
        }
        AppCmd::CredentialRevoke { app_id, id } => {
            c.call(
                "DELETE",
                &format!("/v1/apps/{app_id}/credentials/{id}"),
                None,
            )
            .await?;
            crate::out!("credential {id} of {app_id} revoked");
        }
        AppCmd::RequireCert { app_id, state } => {
            let on = match state.as_str() {
                "on" => true,
                "off" => false,
                _ => bail!("STATE: must be `on` or `off`"),
            };
            print_json(
                &c.call(
                    "POST",
                    &format!("/v1/apps/{app_id}/require-client-cert"),
                    Some(json!({"required": on})),
                )
                .await?,
            )
        }
        AppCmd::NotifyUrl { app_id, url, clear } => {
            if url.is_none() && !clear {
                bail!("give the URL (https://...) or --clear");
            }
            print_json(
                &c.call(
                    "PUT",
                    &format!("/v1/apps/{app_id}/notify-url"),
                    Some(json!({ "notify_url": url })),
                )
                .await?,
            )
        }
        AppCmd::Notices { app_id, state } => {
            let q = state.map(|s| format!("?state={s}")).unwrap_or_default();
            out(
                &c,
                &c.call("GET", &format!("/v1/apps/{app_id}/notices{q}"), None)
                    .await?,
                &[
                    "id",
                    "kind",
                    "key",
                    "state",
                    "attempts",
                    "last_error",
                    "created_at",
                    "updated_at",
                ],
            )
        }
        AppCmd::Suspend { app_id } => print_json(
            &c.call("POST", &format!("/v1/apps/{app_id}/suspend"), None)
                .await?,
        ),
        AppCmd::Resume { app_id } => print_json(
            &c.call("POST", &format!("/v1/apps/{app_id}/resume"), None)
                .await?,
        ),
        AppCmd::Blacklist { app_id, reason } => print_json(
            &c.call(
                "POST",
                &format!("/v1/apps/{app_id}/blacklist"),
                Some(json!({ "reason": reason })),
            )
            .await?,
        ),
        AppCmd::Unblacklist { app_id, reason } => print_json(
            &c.call(
                "POST",
                &format!("/v1/apps/{app_id}/unblacklist"),
                Some(json!({ "reason": reason })),
            )
            .await?,
        ),
        AppCmd::BlacklistImport { file } => {
            let body =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let json = file
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("json"));
            let ct = if json { "application/json" } else { "text/csv" };
            print_json(
                &c.call_raw("POST", "/v1/blacklist/import", Some((ct, body.into())))
                    .await?,
            )
        }
        AppCmd::BlacklistHistory { app_id } => {
            let path = match app_id {
                Some(a) => format!("/v1/apps/{a}/blacklist"),
                None => "/v1/blacklist".to_string(),
            };
            print_json(&c.call("GET", &path, None).await?)
        }
        AppCmd::RedirectUris {
            app_id,
            uris,
            clear,
        } => {
            let path = format!("/v1/apps/{app_id}/redirect-uris");
            let v = if uris.is_empty() && !clear {
                c.call("GET", &path, None).await?
            } else {
                c.call("PUT", &path, Some(json!(uris))).await?
            };
            print_json(&v)
        }
        AppCmd::SecretRotate {
            app_id,
            grace_seconds,
            secret_out,
        } => {
            let mut v = c
                .call(
                    "POST",
                    &format!("/v1/apps/{app_id}/secret-rotate"),
                    Some(json!({"grace_seconds": grace_seconds})),
                )
                .await?;
            emit_secret(&mut v, &secret_out)?;
            print_json(&v);
        }
    }
    Ok(())
}
