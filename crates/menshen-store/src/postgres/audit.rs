//! The audit index (AUD-2, AUD-6) and the latest checkpoint (AUD-3) on
//! PostgreSQL, shared by every node: rows are keyed by (node, seq), and the
//! checkpoint and the indexed-through mark are per node, so each node
//! resumes its own chain while a search sees every node's records.

use tokio_postgres::{Client, GenericClient};

use super::rows::{self, AUDIT_COLUMNS, AUDIT_SELECT};
use crate::{AuditQuery, AuditRow, StoreError};

/// Index `rows` of node `node` (one statement for the whole batch), keep
/// the checkpoint and the `indexed_through` mark, in one transaction.
pub(super) async fn insert(
    c: &mut Client,
    node: &str,
    batch: &[AuditRow],
    checkpoint: Option<(u64, String)>,
    indexed_through: Option<u64>,
) -> Result<(), StoreError> {
    let tx = c.transaction().await?;
    if !batch.is_empty() {
        let col = |f: &dyn Fn(&AuditRow) -> i64| batch.iter().map(f).collect::<Vec<i64>>();
        let seq = col(&|r| r.seq as i64);
        let seg = col(&|r| r.segment as i64);
        let off = col(&|r| r.offset as i64);
        let ts = col(&|r| r.time_ms);
        let kind: Vec<&str> = batch.iter().map(|r| r.kind.as_str()).collect();
        let opt = |f: &dyn Fn(&AuditRow) -> Option<&str>| {
            batch.iter().map(f).collect::<Vec<Option<&str>>>()
        };
        let txn = opt(&|r| r.txn_id.as_deref());
        let app = opt(&|r| r.app_id.as_deref());
        let api = opt(&|r| r.api_id.as_deref());
        let user = opt(&|r| r.user_id.as_deref());
        let result = opt(&|r| r.result.as_deref());
        let code = opt(&|r| r.code.as_deref());
        let status: Vec<Option<i64>> = batch.iter().map(|r| r.status).collect();
        let dur: Vec<Option<i64>> = batch.iter().map(|r| r.duration_us).collect();
        tx.execute(
            &format!(
                "INSERT INTO audit_index (node, {AUDIT_COLUMNS})
                 SELECT $1, * FROM UNNEST($2::BIGINT[], $3::BIGINT[], $4::BIGINT[], $5::TEXT[], $6::TEXT[],
                     $7::BIGINT[], $8::TEXT[], $9::TEXT[], $10::TEXT[], $11::TEXT[], $12::BIGINT[],
                     $13::TEXT[], $14::BIGINT[])
                 ON CONFLICT (node, seq) DO NOTHING"
            ),
            &[
                &node, &seq, &seg, &off, &kind, &txn, &ts, &app, &api, &user, &result, &status,
                &code, &dur,
            ],
        )
        .await?;
    }
    if let Some((last, cp)) = checkpoint {
        tx.execute(
            "INSERT INTO audit_checkpoint (node, last_seq, checkpoint) VALUES ($1, $2, $3)
             ON CONFLICT (node) DO UPDATE SET last_seq = excluded.last_seq, checkpoint = excluded.checkpoint
             WHERE excluded.last_seq >= audit_checkpoint.last_seq",
            &[&node, &(last as i64), &cp],
        )
        .await?;
    }
    if let Some(n) = indexed_through {
        tx.execute(
            "INSERT INTO audit_watermark (node, indexed_through) VALUES ($1, $2)
             ON CONFLICT (node) DO UPDATE SET indexed_through = GREATEST(audit_watermark.indexed_through, excluded.indexed_through)",
            &[&node, &(n as i64)],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Search every node's records, newest first; `from`/`to` as Unix ms.
pub(super) async fn search<C: GenericClient>(
    c: &C,
    q: &AuditQuery,
    from: Option<i64>,
    to: Option<i64>,
) -> Result<Vec<AuditRow>, StoreError> {
    // Only the filters given, so the planner can use the index of the most
    // selective one.
    let mut sql = format!("SELECT {AUDIT_SELECT} FROM audit_index WHERE TRUE");
    let mut text: Vec<&str> = Vec::new();
    let mut ints: Vec<i64> = Vec::new();
    let mut conds: Vec<(String, bool)> = Vec::new();
    for (col, v) in [
        ("txn_id", &q.txn_id),
        ("app_id", &q.app_id),
        ("api_id", &q.api_id),
        ("user_id", &q.user_id),
        ("result", &q.result),
        ("kind", &q.kind),
        ("node", &q.node),
    ] {
        if let Some(v) = v {
            text.push(v);
            conds.push((format!("{col} ="), true));
        }
    }
    if let Some(v) = from {
        ints.push(v);
        conds.push(("ts >=".into(), false));
    }
    if let Some(v) = to {
        ints.push(v);
        conds.push(("ts <".into(), false));
    }
    ints.push(i64::from(q.limit.clamp(1, 1000)));
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = Vec::new();
    let (mut ti, mut ii) = (0, 0);
    for (cond, is_text) in &conds {
        if *is_text {
            params.push(&text[ti]);
            ti += 1;
        } else {
            params.push(&ints[ii]);
            ii += 1;
        }
        sql.push_str(&format!(" AND {cond} ${}", params.len()));
    }
    params.push(&ints[ii]);
    sql.push_str(&format!(
        " ORDER BY ts DESC, node, seq DESC LIMIT ${}",
        params.len()
    ));
    rows::all(c.query(&sql, &params).await?, rows::audit)
}

/// The row of this node's last `indexed_through` mark.
pub(super) async fn watermark<C: GenericClient>(
    c: &C,
    node: &str,
) -> Result<Option<AuditRow>, StoreError> {
    c.query_opt(
        &format!(
            "SELECT {AUDIT_SELECT} FROM audit_index WHERE node = $1
               AND seq = (SELECT indexed_through FROM audit_watermark WHERE node = $1)"
        ),
        &[&node],
    )
    .await?
    .map(|r| rows::audit(&r))
    .transpose()
}

/// This node's latest checkpoint (last seq, checkpoint JSON).
pub(super) async fn latest_checkpoint<C: GenericClient>(
    c: &C,
    node: &str,
) -> Result<Option<(u64, String)>, StoreError> {
    Ok(c.query_opt(
        "SELECT last_seq, checkpoint FROM audit_checkpoint WHERE node = $1",
        &[&node],
    )
    .await?
    .map(|r| (r.get::<_, i64>(0) as u64, r.get(1))))
}

/// Record where node `node`'s admin API is reached (issue 12 item 8).
pub(super) async fn register_node<C: GenericClient>(
    c: &C,
    node: &str,
    url: &str,
) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO cluster_nodes (node, admin_url, seen_ms) VALUES ($1, $2, $3)
         ON CONFLICT (node) DO UPDATE SET admin_url = excluded.admin_url, seen_ms = excluded.seen_ms",
        &[&node, &url, &(crate::now_unix() * 1000)],
    )
    .await?;
    Ok(())
}

/// The admin API URL node `node` registered.
pub(super) async fn node_admin_url<C: GenericClient>(
    c: &C,
    node: &str,
) -> Result<Option<String>, StoreError> {
    Ok(c.query_opt(
        "SELECT admin_url FROM cluster_nodes WHERE node = $1",
        &[&node],
    )
    .await?
    .map(|r| r.get(0)))
}

/// The search's time range as Unix milliseconds; a bad time names its field
/// (as SQLite's).
pub(super) fn time_range(q: &AuditQuery) -> Result<(Option<i64>, Option<i64>), StoreError> {
    let ms = |field: &str, t: &str| {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .map(|d| (d.unix_timestamp_nanos() / 1_000_000) as i64)
            .map_err(|e| {
                StoreError::Invalid(menshen_model::ValidationError::new(
                    field,
                    format!("`{t}` is not an RFC 3339 time ({e}); use e.g. 2026-11-30T08:00:00Z"),
                ))
            })
    };
    let from = q.from.as_deref().map(|t| ms("from", t)).transpose()?;
    let to = q.to.as_deref().map(|t| ms("to", t)).transpose()?;
    Ok((from, to))
}
