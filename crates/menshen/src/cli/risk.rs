//! `menshen risk ...` (risk rules for fund movements, RSK-2) and `menshen
//! review ...` (calls held for review, RSK-1).

use clap::Subcommand;
use serde_json::json;

use super::render::{out, print_json};
use super::{AdminClient, AdminConn};

/// `menshen risk ...`
// Parsed once per process from the command line: the size of a variant
// does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum RiskCmd {
    /// Add a rule for an app's fund movements (on funds APIs: those whose
    /// controls name `risk.amount`).
    Set {
        /// App_ID.
        #[arg(long)]
        app: String,
        /// API_ID (omit: every funds API of the app).
        #[arg(long)]
        api: Option<String>,
        /// The app's assessed risk capacity (label or reference).
        #[arg(long)]
        capacity: Option<String>,
        /// Largest amount per transaction, in yuan (e.g. 50000.00).
        #[arg(long)]
        max_per_txn: Option<String>,
        /// Largest sum per Asia/Shanghai day, in yuan.
        #[arg(long)]
        max_per_day: Option<String>,
        /// Allowed counterparty (repeat for several).
        #[arg(long = "counterparty")]
        counterparties: Vec<String>,
        /// Allowed payee account type (repeat for several).
        #[arg(long = "account-type")]
        account_types: Vec<String>,
        /// Unusual amount: more than K times the app's rolling mean.
        #[arg(long)]
        unusual_multiple: Option<u32>,
        /// Calls the mean must rest on before the unusual rule applies.
        #[arg(long)]
        unusual_min_count: Option<u32>,
        /// alert (let through, recorded), reject (403 RISK_REJECTED) or
        /// hold (403 RISK_REVIEW_REQUIRED and a review item).
        #[arg(long, default_value = "reject", value_parser = ["alert", "reject", "hold"])]
        action: String,
        /// For hold: seconds an approval lets the same call be retried.
        #[arg(long)]
        review_window_secs: Option<u64>,
    },
    /// List rules.
    List,
    /// Remove a rule by id.
    Remove {
        /// Rule id.
        id: i64,
    },
}

/// `menshen review ...`
#[derive(Subcommand, Debug)]
pub enum ReviewCmd {
    /// List review items (newest first).
    List {
        /// pending, approved, rejected, used or all.
        #[arg(long, default_value = "pending")]
        state: String,
    },
    /// Approve: the same call (app, API, amount, counterparty) is accepted
    /// once within the rule's review window.
    Approve {
        /// Review id.
        id: i64,
    },
    /// Reject.
    Reject {
        /// Review id.
        id: i64,
    },
}

/// `menshen risk ...`
pub async fn risk(cmd: RiskCmd, conn: AdminConn) -> anyhow::Result<()> {
    let c = AdminClient::new(&conn)?;
    match cmd {
        RiskCmd::Set {
            app,
            api,
            capacity,
            max_per_txn,
            max_per_day,
            counterparties,
            account_types,
            unusual_multiple,
            unusual_min_count,
            action,
            review_window_secs,
        } => {
            let mut body = json!({"app_id": app, "action": action});
            let set = |b: &mut serde_json::Value, k: &str, v: serde_json::Value| {
                if !v.is_null() {
                    b[k] = v;
                }
            };
            set(&mut body, "api_id", json!(api));
            set(&mut body, "capacity", json!(capacity));
            set(&mut body, "max_per_txn", json!(max_per_txn));
            set(&mut body, "max_per_day", json!(max_per_day));
            if !counterparties.is_empty() {
                body["counterparties"] = json!(counterparties);
            }
            if !account_types.is_empty() {
                body["account_types"] = json!(account_types);
            }
            set(&mut body, "unusual_multiple", json!(unusual_multiple));
            set(&mut body, "unusual_min_count", json!(unusual_min_count));
            set(&mut body, "review_window_secs", json!(review_window_secs));
            print_json(&c.call("POST", "/v1/risk-rules", Some(body)).await?)
        }
        RiskCmd::List => out(
            &c,
            &c.call("GET", "/v1/risk-rules", None).await?,
            &[
                "id",
                "app_id",
                "api_id",
                "max_per_txn",
                "max_per_day",
                "unusual_multiple",
                "action",
                "capacity",
            ],
        ),
        RiskCmd::Remove { id } => {
            c.call("DELETE", &format!("/v1/risk-rules/{id}"), None)
                .await?;
            crate::out!("risk rule {id} removed");
        }
    }
    Ok(())
}

/// `menshen review ...`
pub async fn review(cmd: ReviewCmd, conn: AdminConn) -> anyhow::Result<()> {
    let c = AdminClient::new(&conn)?;
    match cmd {
        ReviewCmd::List { state } => out(
            &c,
            &c.call("GET", &format!("/v1/risk-reviews?state={state}"), None)
                .await?,
            &[
                "id",
                "state",
                "app_id",
                "api_id",
                "amount",
                "counterparty",
                "txn_id",
                "reason",
            ],
        ),
        ReviewCmd::Approve { id } => print_json(
            &c.call("POST", &format!("/v1/risk-reviews/{id}/approve"), None)
                .await?,
        ),
        ReviewCmd::Reject { id } => print_json(
            &c.call("POST", &format!("/v1/risk-reviews/{id}/reject"), None)
                .await?,
        ),
    }
    Ok(())
}

/// `menshen alert ...` (MON-2).
#[derive(Subcommand, Debug)]
pub enum AlertCmd {
    /// List alerts (newest first).
    List {
        /// open, acknowledged, resolved or all.
        #[arg(long, default_value = "open")]
        state: String,
    },
    /// Acknowledge an open alert (you take it).
    Ack {
        /// Alert id.
        id: i64,
    },
    /// Resolve an alert (a repeat then raises a new one).
    Resolve {
        /// Alert id.
        id: i64,
    },
}

/// `menshen alert ...`
pub async fn alert(cmd: AlertCmd, conn: AdminConn) -> anyhow::Result<()> {
    let c = AdminClient::new(&conn)?;
    match cmd {
        AlertCmd::List { state } => out(
            &c,
            &c.call("GET", &format!("/v1/alerts?state={state}"), None)
                .await?,
            &[
                "id", "severity", "state", "rule", "count", "last_at", "summary",
            ],
        ),
        AlertCmd::Ack { id } => print_json(
            &c.call("POST", &format!("/v1/alerts/{id}/ack"), None)
                .await?,
        ),
        AlertCmd::Resolve { id } => print_json(
            &c.call("POST", &format!("/v1/alerts/{id}/resolve"), None)
                .await?,
        ),
    }
    Ok(())
}

/// `menshen baseline ...` (MON-3).
#[derive(Subcommand, Debug)]
pub enum BaselineCmd {
    /// An app's learned baselines as last saved: its client networks, and
    /// per API and hour-of-week slot the calls per window (mean, sd),
    /// failure rate and latency.
    Show {
        /// App_ID.
        app_id: String,
    },
}

/// `menshen baseline ...`
pub async fn baseline(cmd: BaselineCmd, conn: AdminConn) -> anyhow::Result<()> {
    let c = AdminClient::new(&conn)?;
    match cmd {
        BaselineCmd::Show { app_id } => {
            let v = c
                .call("GET", &format!("/v1/baselines/{app_id}"), None)
                .await?;
            if c.json {
                print_json(&v);
                return Ok(());
            }
            let nets: Vec<&str> = v["networks"]["networks"]
                .as_array()
                .map(|a| a.iter().filter_map(|n| n["network"].as_str()).collect())
                .unwrap_or_default();
            println!(
                "app {app_id}: {} client network(s): {}",
                nets.len(),
                nets.join(", ")
            );
            out(
                &c,
                &v["slots"],
                &[
                    "api_id",
                    "level",
                    "when",
                    "windows",
                    "calls_mean",
                    "calls_sd",
                    "failure_mean",
                    "latency_ms_mean",
                    "latency_ms_sd",
                ],
            );
        }
    }
    Ok(())
}
