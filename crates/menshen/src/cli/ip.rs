//! `menshen ip ...`: IP allow and deny rules.

use serde_json::json;

use super::render::{out, print_json};
use super::{AdminClient, AdminConn, IpCmd};

/// `menshen ip ...`
pub async fn ip(cmd: IpCmd, conn: AdminConn) -> anyhow::Result<()> {
    let c = AdminClient::new(&conn)?;
    match cmd {
        IpCmd::Allow { cidr, app_id, note } => print_json(
            &c.call(
                "POST",
                "/v1/ip-rules",
                Some(json!({"app_id": app_id, "action": "allow", "cidr": cidr, "note": note})),
            )
            .await?,
        ),
        IpCmd::Deny { cidr, app_id, note } => print_json(
            &c.call(
                "POST",
                "/v1/ip-rules",
                Some(json!({"app_id": app_id, "action": "deny", "cidr": cidr, "note": note})),
            )
            .await?,
        ),
        IpCmd::List => out(
            &c,
            &c.call("GET", "/v1/ip-rules", None).await?,
            &["id", "app_id", "action", "cidr", "note"],
        ),
        IpCmd::Remove { id } => {
            c.call("DELETE", &format!("/v1/ip-rules/{id}"), None)
                .await?;
            crate::out!("IP rule {id} removed");
        }
    }
    Ok(())
}
