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
        ApiCmd::Import {
            file,
            upstream,
            level,
            category,
            subcategory,
            version,
        } => {
            use super::openapi_import::{parse_document, plan, Defaults};
            let text = std::fs::read_to_string(&file)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let doc =
                parse_document(&text).map_err(|e| anyhow::anyhow!("{}: {e:#}", file.display()))?;
            let d = Defaults {
                upstream,
                level,
                category,
                subcategory,
                version,
            };
            let apis = plan(&doc, &d).map_err(|e| anyhow::anyhow!("{}: {e:#}", file.display()))?;
            let existing = c.call("GET", "/v1/apis", None).await?;
            let known: Vec<&str> = existing
                .as_array()
                .map(|a| a.iter().filter_map(|x| x["api_id"].as_str()).collect())
                .unwrap_or_default();
            let mut done = vec![];
            for a in apis {
                let id = a.new_api["api_id"].as_str().unwrap_or_default().to_string();
                let api = if known.contains(&id.as_str()) {
                    c.call("PATCH", &format!("/v1/apis/{id}/controls"), Some(a.patch))
                        .await
                        .map_err(|e| anyhow::anyhow!("{id}: {e}"))?
                } else {
                    c.call("POST", "/v1/apis", Some(a.new_api))
                        .await
                        .map_err(|e| anyhow::anyhow!("{id}: {e}"))?
                };
                done.push(json!({
                    "api_id": id,
                    "action": if known.contains(&id.as_str()) { "schema updated" } else { "created" },
                    "u_api_id": api["u_api_id"],
                    "method": api["method"],
                    "path": api["path"],
                }));
            }
            out(
                &c,
                &serde_json::Value::Array(done),
                &["api_id", "action", "u_api_id", "method", "path"],
            );
        }
        ApiCmd::Screening { api_id, mode } => print_json(
            &c.call(
                "PATCH",
                &format!("/v1/apis/{api_id}/controls"),
                Some(json!({"screening": {"mode": mode}})),
            )
            .await?,
        ),
        ApiCmd::Controls { api_id, file } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let body: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            print_json(
                &c.call("PATCH", &format!("/v1/apis/{api_id}/controls"), Some(body))
                    .await?,
            )
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
