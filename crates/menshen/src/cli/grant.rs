//! `menshen grant ...`: which app may call which API.

use serde_json::json;

use super::render::{out, print_json};
use super::{AdminClient, AdminConn, GrantCmd};

/// `menshen grant ...`
pub async fn grant(cmd: GrantCmd, conn: AdminConn) -> anyhow::Result<()> {
    let c = AdminClient::new(&conn)?;
    match cmd {
        GrantCmd::Add { app_id, api_id } => print_json(
            &c.call(
                "POST",
                "/v1/grants",
                Some(json!({"app_id": app_id, "api_id": api_id})),
            )
            .await?,
        ),
        GrantCmd::Clearing {
            app_id,
            api_id,
            state,
        } => {
            let clearing = match state.as_str() {
                "on" => true,
                "off" => false,
                other => anyhow::bail!("clearing state must be on or off, not `{other}`"),
            };
            print_json(
                &c.call(
                    "POST",
                    &format!("/v1/grants/{app_id}/{api_id}/clearing"),
                    Some(json!({ "clearing": clearing })),
                )
                .await?,
            )
        }
        GrantCmd::Remove { app_id, api_id } => {
            c.call("DELETE", &format!("/v1/grants/{app_id}/{api_id}"), None)
                .await?;
            crate::out!("grant of {api_id} to {app_id} removed");
        }
        GrantCmd::List { app_id } => {
            let q = app_id.map(|a| format!("?app_id={a}")).unwrap_or_default();
            out(
                &c,
                &c.call("GET", &format!("/v1/grants{q}"), None).await?,
                &["app_id", "api_id", "created_at", "clearing"],
            );
        }
    }
    Ok(())
}
