//! `menshen limit ...`: flow-control rules (TRF-1).

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
            action,
        } => print_json(
            &c.call(
                "POST",
                "/v1/limits",
                Some(json!({"app_id": app, "api_id": api, "window": window, "max": max, "action": action})),
            )
            .await?,
        ),
        LimitCmd::List => out(
            &c,
            &c.call("GET", "/v1/limits", None).await?,
            &["id", "app_id", "api_id", "window", "max", "action"],
        ),
        LimitCmd::Remove { id } => {
            c.call("DELETE", &format!("/v1/limits/{id}"), None).await?;
            crate::out!("limit rule {id} removed");
        }
    }
    Ok(())
}
