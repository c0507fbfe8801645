//! `menshen stats`: per app or per API, calls, success rate, TPS and p50/p99
//! latency over the last minute, hour and day (MON-1), from the node's
//! admin API (`GET /v1/stats/apps`, `/v1/stats/apis`); `--watch` redraws.
//! In a cluster the figures are summed across nodes; the table is headed by
//! the node count and how long ago the stalest node published.

use std::time::Duration;

use serde_json::{json, Value};

use super::render::{print_json, table};
use super::{AdminClient, AdminConn};

/// `menshen stats`.
#[derive(clap::Args, Debug)]
pub struct StatsArgs {
    /// Per API instead of per app.
    #[arg(long)]
    pub apis: bool,
    /// Only this App_ID (or API_ID with --apis).
    #[arg(long)]
    pub id: Option<String>,
    /// Redraw every N seconds (default 2) until interrupted.
    #[arg(long, num_args = 0..=1, default_missing_value = "2")]
    pub watch: Option<u64>,
    /// Admin API connection.
    #[command(flatten)]
    pub conn: AdminConn,
}

/// Columns of the table: the minute's figures, then the hour's and day's.
const COLS: &[&str] = &[
    "id",
    "1m_calls",
    "1m_tps",
    "1m_ok%",
    "1m_p50_ms",
    "1m_p99_ms",
    "1h_calls",
    "1h_ok%",
    "1h_p99_ms",
    "1d_calls",
    "1d_ok%",
    "1d_p99_ms",
];

fn pct(v: &Value) -> Value {
    match v.as_f64() {
        Some(r) => json!(format!("{:.2}", r * 100.0)),
        None => Value::Null,
    }
}

fn num(v: &Value, digits: usize) -> Value {
    match v.as_f64() {
        Some(x) => json!(format!("{x:.digits$}")),
        None => Value::Null,
    }
}

/// One table row of a subject's figures.
fn row(s: &Value) -> Value {
    let (m, h, d) = (&s["minute"], &s["hour"], &s["day"]);
    json!({
        "id": s["id"],
        "1m_calls": m["calls"], "1m_tps": num(&m["tps"], 2), "1m_ok%": pct(&m["success_rate"]),
        "1m_p50_ms": num(&m["p50_ms"], 1), "1m_p99_ms": num(&m["p99_ms"], 1),
        "1h_calls": h["calls"], "1h_ok%": pct(&h["success_rate"]), "1h_p99_ms": num(&h["p99_ms"], 1),
        "1d_calls": d["calls"], "1d_ok%": pct(&d["success_rate"]), "1d_p99_ms": num(&d["p99_ms"], 1),
    })
}

async fn once(c: &AdminClient, a: &StatsArgs) -> anyhow::Result<()> {
    let kind = if a.apis { "apis" } else { "apps" };
    let v = match &a.id {
        Some(id) => {
            let s = c
                .call("GET", &format!("/v1/stats/{kind}/{id}"), None)
                .await?;
            json!({ kind: [&s], "scope": s["scope"], "nodes": s["nodes"] })
        }
        None => c.call("GET", &format!("/v1/stats/{kind}"), None).await?,
    };
    if c.json {
        print_json(&v);
        return Ok(());
    }
    if v["scope"] == "cluster" {
        crate::out!("{}", cluster_line(&v, now_unix()));
    }
    let rows: Vec<Value> = v[kind]
        .as_array()
        .map(|a| a.iter().map(row).collect())
        .unwrap_or_default();
    table(&Value::Array(rows), COLS);
    Ok(())
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// "cluster: 3 nodes summed; stalest published 2 s ago (node 0a1b2c3d)".
fn cluster_line(v: &Value, now: u64) -> String {
    let nodes = v["nodes"].as_array().cloned().unwrap_or_default();
    let stalest = nodes
        .iter()
        .filter_map(|n| Some((n["published_at"].as_u64()?, n["node_id"].as_str()?)))
        .min();
    match stalest {
        Some((at, id)) => format!(
            "cluster: {} nodes summed; stalest published {} s ago (node {id})",
            nodes.len(),
            now.saturating_sub(at)
        ),
        None => "cluster: no node has published yet".to_string(),
    }
}

/// `menshen stats [--apis] [--id ID] [--watch [SECS]]`.
pub async fn stats(a: StatsArgs) -> anyhow::Result<()> {
    let c = AdminClient::new(&a.conn)?;
    let Some(every) = a.watch else {
        return once(&c, &a).await;
    };
    let every = Duration::from_secs(every.clamp(1, 3600));
    loop {
        // Clear the screen and go home, then draw.
        crate::out!(
            "\x1b[2J\x1b[H{} (every {} s, Ctrl-C to stop)",
            if a.apis { "APIs" } else { "apps" },
            every.as_secs()
        );
        once(&c, &a).await?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mon_1_cluster_line_names_the_stalest_node() {
        let v = json!({"scope": "cluster", "nodes": [
            {"node_id": "0000000a", "started_at": 1, "published_at": 100},
            {"node_id": "0000000b", "started_at": 1, "published_at": 97},
        ]});
        assert_eq!(
            cluster_line(&v, 101),
            "cluster: 2 nodes summed; stalest published 4 s ago (node 0000000b)"
        );
    }
}
