//! `menshen limit ...`: flow-control rules (TRF-1).

use anyhow::Context;
use serde_json::json;

use super::render::{out, print_json};
use super::{AdminClient, AdminConn, LimitCmd};

/// `menshen limit ...`
pub async fn limit(cmd: LimitCmd, conn: AdminConn) -> anyhow::Result<()> {
    let c = AdminClient::new(&conn)?;
    match cmd {
        LimitCmd::Set {
            app,
            api,
            window,
            max,
            concurrent,
            per,
            action,
            pause_secs,
        } => {
            let (window, max) = match concurrent {
                Some(n) => ("concurrent".to_string(), n),
                None => (
                    window.context("--window is required (or --concurrent N)")?,
                    max.context("--max is required (or --concurrent N)")?,
                ),
            };
            print_json(
                &c.call(
                    "POST",
                    "/v1/limits",
                    Some(json!({
                        "app_id": app, "api_id": api, "window": window, "max": max,
                        "per": per, "action": action, "pause_secs": pause_secs,
                    })),
                )
                .await?,
            )
        }
        LimitCmd::List => out(
            &c,
            &c.call("GET", "/v1/limits", None).await?,
            &[
                "id",
                "app_id",
                "api_id",
                "window",
                "max",
                "per",
                "action",
                "pause_secs",
            ],
        ),
        LimitCmd::Remove { id } => {
            c.call("DELETE", &format!("/v1/limits/{id}"), None).await?;
            crate::out!("limit rule {id} removed");
        }
    }
    Ok(())
}
