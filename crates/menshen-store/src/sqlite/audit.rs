//! The audit index (AUD-2, AUD-6) and the latest checkpoint (AUD-3): each
//! record's key fields and its place in the log files. Plain synchronous
//! SQL; `super` runs it on the index's own connection.

use menshen_model::ValidationError;
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::{AuditQuery, AuditRow, StoreError};

/// The audit index's columns, declared once, in [`AuditRow`]'s field order:
/// the insert and every select name them through this list, [`bind`] and
/// [`audit_row`] follow its order, and a test checks it against the table.
macro_rules! columns {
    () => {
        "seq, seg, off, kind, txn_id, ts, app_id, api_id, user_id, result, status, code, duration_us, node"
    };
}

/// How many columns [`columns!`] names.
const COLUMN_COUNT: usize = 14;

/// The insert of one row (a record already indexed is left as it is).
const INSERT: &str = concat!(
    "INSERT OR IGNORE INTO audit_index (",
    columns!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
);

/// The start of every select of whole rows.
const SELECT: &str = concat!("SELECT ", columns!(), " FROM audit_index");

/// A row's values, in [`columns!`] order.
fn bind(r: &AuditRow) -> [&dyn rusqlite::ToSql; COLUMN_COUNT] {
    [
        &r.seq,
        &r.segment,
        &r.offset,
        &r.kind,
        &r.txn_id,
        &r.time_ms,
        &r.app_id,
        &r.api_id,
        &r.user_id,
        &r.result,
        &r.status,
        &r.code,
        &r.duration_us,
        &r.node,
    ]
}

/// A selected row, read by position in [`columns!`] order.
fn audit_row(r: &Row<'_>) -> rusqlite::Result<AuditRow> {
    Ok(AuditRow {
        seq: r.get::<_, i64>(0)? as u64,
        segment: r.get::<_, i64>(1)? as u64,
        offset: r.get::<_, i64>(2)? as u64,
        kind: r.get(3)?,
        txn_id: r.get(4)?,
        time_ms: r.get(5)?,
        app_id: r.get(6)?,
        api_id: r.get(7)?,
        user_id: r.get(8)?,
        result: r.get(9)?,
        status: r.get(10)?,
        code: r.get(11)?,
        duration_us: r.get(12)?,
        node: r.get(13)?,
    })
}

/// Index `rows` and keep the checkpoint and the `indexed_through` mark, in
/// one transaction.
pub(super) fn insert(
    c: &mut Connection,
    rows: &[AuditRow],
    checkpoint: Option<(u64, String)>,
    indexed_through: Option<u64>,
) -> Result<(), StoreError> {
    // IMMEDIATE: take the write lock up front, so a concurrent writer on
    // the other connection makes us wait (busy_timeout) instead of
    // failing a read-to-write upgrade with SQLITE_BUSY.
    let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        let mut st = tx.prepare_cached(INSERT)?;
        for r in rows {
            st.execute(bind(r))?;
        }
    }
    if let Some((last, cp)) = checkpoint {
        tx.execute(
            "INSERT INTO audit_checkpoint (id, last_seq, checkpoint) VALUES (1, ?1, ?2)
             ON CONFLICT(id) DO UPDATE SET last_seq = excluded.last_seq, checkpoint = excluded.checkpoint WHERE excluded.last_seq >= audit_checkpoint.last_seq",
            params![last as i64, cp],
        )?;
    }
    if let Some(n) = indexed_through {
        tx.execute(
            "INSERT INTO meta (k, v) VALUES ('audit_indexed_through', ?1)
             ON CONFLICT(k) DO UPDATE SET v = max(v, excluded.v)",
            params![n as i64],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// The search's time range as Unix milliseconds; a bad time names its field.
pub(super) fn time_range(q: &AuditQuery) -> Result<(Option<i64>, Option<i64>), StoreError> {
    let from = q.from.as_deref().map(|t| time_ms("from", t)).transpose()?;
    let to = q.to.as_deref().map(|t| time_ms("to", t)).transpose()?;
    Ok((from, to))
}

/// Search, newest first; `from`/`to` from [`time_range`].
pub(super) fn search(
    c: &Connection,
    q: &AuditQuery,
    from: Option<i64>,
    to: Option<i64>,
) -> Result<Vec<AuditRow>, StoreError> {
    // Only the filters given, so SQLite can use the index of the
    // most selective one (`txn_id`, `app_id`, `api_id`); a
    // `(? IS NULL OR col = ?)` form would scan the whole table.
    let mut sql = format!("{SELECT} WHERE 1");
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    let mut add = |cond: &str, v: rusqlite::types::Value| {
        args.push(v);
        sql.push_str(&format!(" AND {cond} ?{}", args.len()));
    };
    use rusqlite::types::Value as V;
    if let Some(v) = &q.txn_id {
        add("txn_id =", V::Text(v.clone()));
    }
    if let Some(v) = &q.app_id {
        add("app_id =", V::Text(v.clone()));
    }
    if let Some(v) = &q.api_id {
        add("api_id =", V::Text(v.clone()));
    }
    if let Some(v) = &q.user_id {
        add("user_id =", V::Text(v.clone()));
    }
    if let Some(v) = &q.result {
        add("result =", V::Text(v.clone()));
    }
    if let Some(v) = from {
        add("ts >=", V::Integer(v));
    }
    if let Some(v) = to {
        add("ts <", V::Integer(v));
    }
    if let Some(v) = &q.kind {
        add("kind =", V::Text(v.clone()));
    }
    if let Some(v) = &q.node {
        add("node =", V::Text(v.clone()));
    }
    args.push(V::Integer(q.limit.clamp(1, 1000) as i64));
    sql.push_str(&format!(" ORDER BY seq DESC LIMIT ?{}", args.len()));
    let mut st = c.prepare(&sql)?;
    let rows = st
        .query_map(rusqlite::params_from_iter(args), audit_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// The row of the last `indexed_through` mark.
pub(super) fn watermark(c: &Connection) -> Result<Option<AuditRow>, StoreError> {
    Ok(c.query_row(
        &format!("{SELECT} WHERE seq = (SELECT v FROM meta WHERE k = 'audit_indexed_through')"),
        [],
        audit_row,
    )
    .optional()?)
}

/// The latest checkpoint (last seq, checkpoint JSON).
pub(super) fn latest_checkpoint(c: &Connection) -> Result<Option<(u64, String)>, StoreError> {
    Ok(c.query_row(
        "SELECT last_seq, checkpoint FROM audit_checkpoint WHERE id = 1",
        [],
        |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?)),
    )
    .optional()?)
}

/// An RFC 3339 time of a search, as Unix milliseconds; a bad one names `field`.
fn time_ms(field: &str, t: &str) -> Result<i64, StoreError> {
    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
        .map(|d| (d.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|e| {
            StoreError::Invalid(ValidationError::new(
                field,
                format!("`{t}` is not an RFC 3339 time ({e}); use e.g. 2026-11-30T08:00:00Z"),
            ))
        })
}

/// Record where a node's admin API is reached (issue 12 item 8).
pub(super) fn register_node(c: &Connection, node: &str, url: &str) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO cluster_nodes (node, admin_url, seen_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT(node) DO UPDATE SET admin_url = excluded.admin_url, seen_ms = excluded.seen_ms",
        params![node, url, crate::now_unix() * 1000],
    )?;
    Ok(())
}

/// The admin API URL a node registered.
pub(super) fn node_admin_url(c: &Connection, node: &str) -> Result<Option<String>, StoreError> {
    Ok(c.query_row(
        "SELECT admin_url FROM cluster_nodes WHERE node = ?1",
        params![node],
        |r| r.get(0),
    )
    .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one column list matches the table the migrations built (AUD-6).
    #[test]
    fn aud_6_column_list_matches_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::super::SqliteStore::open(&dir.path().join("m.db")).unwrap();
        drop(store);
        let c = Connection::open(dir.path().join("m.db")).unwrap();
        let mut st = c
            .prepare("SELECT name FROM pragma_table_info('audit_index') ORDER BY cid")
            .unwrap();
        let names: Vec<String> = st
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let declared: Vec<&str> = columns!().split(", ").collect();
        assert_eq!(names, declared);
        assert_eq!(declared.len(), COLUMN_COUNT);
    }

    /// Every field goes in and comes back in its own column (AUD-6): a row
    /// with a distinct value in each field round-trips whole.
    #[test]
    fn aud_6_bind_and_read_follow_the_column_order() {
        let dir = tempfile::tempdir().unwrap();
        drop(super::super::SqliteStore::open(&dir.path().join("m.db")).unwrap());
        let mut c = Connection::open(dir.path().join("m.db")).unwrap();
        let row = AuditRow {
            seq: 7,
            segment: 3,
            offset: 1234,
            kind: "access".into(),
            txn_id: Some("T1".into()),
            time_ms: 1_700_000_000_123,
            app_id: Some("APP".into()),
            api_id: Some("API".into()),
            user_id: Some("U".into()),
            result: Some("failure".into()),
            status: Some(403),
            code: Some("FORBIDDEN".into()),
            duration_us: Some(99),
            node: Some("0a1b2c3d".into()),
        };
        insert(&mut c, std::slice::from_ref(&row), None, Some(7)).unwrap();
        assert_eq!(watermark(&c).unwrap(), Some(row));
    }
}
