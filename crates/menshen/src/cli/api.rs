//! `menshen api ...`: the API catalog.

use serde_json::json;

use super::render::{out, print_json};
use super::{AdminClient, AdminConn, ApiCmd};

/// `menshen api ...`
pub async fn api(cmd: ApiCmd, conn: AdminConn) -> anyhow::Result<()> {
    let c = AdminClient::new(&conn)?;
    match cmd {
        ApiCmd::Create {
            api_id,
            method,
            path,
            upstream,
            level,
            category,
            subcategory,
            version,
            name,
            owner,
            integrations,
        } => {
            let body = json!({
                "api_id": api_id, "method": method.to_ascii_uppercase(), "path": path, "upstream": upstream,
                "level": level.to_ascii_uppercase(), "category": category, "subcategory": subcategory,
                "version": version, "name": name, "owner": owner, "integrations": integrations,
            });
            print_json(&c.call("POST", "/v1/apis", Some(body)).await?);
        }
        ApiCmd::List => out(
            &c,
            &c.call("GET", "/v1/apis", None).await?,
            &[
                "api_id",
                "u_api_id",
                "level",
                "method",
                "path",
                "lifecycle",
                "upstream",
            ],
        ),
        ApiCmd::Show { api_id } => {
            print_json(&c.call("GET", &format!("/v1/apis/{api_id}"), None).await?)
        }
        ApiCmd::Lifecycle { api_id, state } => print_json(
            &c.call(
                "POST",
                &format!("/v1/apis/{api_id}/lifecycle"),
                Some(json!({"state": state})),
            )
            .await?,
        ),
    }
    Ok(())
}
