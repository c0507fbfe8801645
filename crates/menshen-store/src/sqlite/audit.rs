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

/// Searches by App_ID or API_ID go through runs (issue 9, AUD-6): each
/// index write adds, per (App_ID, API_ID) in it, one row naming the first
/// and last sequence number of that pair's records in the write, and their
/// time span. A search then scans only those sequence ranges of the table
/// (by its key) instead of the table keeping two more B-tree indexes that
/// every record had to be inserted into: a few rows per write instead of
/// two index entries per record. The records themselves stay one row each
/// (AUD-2: logs kept in the database too). An absent App_ID or API_ID is
/// stored as `''`, which no search matches (both are validated non-empty).
/// Existing rows get one run per pair and segment.
pub(super) const RUNS_MIGRATION: &str = r#"
    DROP INDEX audit_app_ts;
    DROP INDEX audit_api_ts;
    CREATE TABLE audit_runs (
        app_id TEXT NOT NULL,
        api_id TEXT NOT NULL,
        first_seq INTEGER NOT NULL,
        last_seq INTEGER NOT NULL,
        min_ts INTEGER NOT NULL,
        max_ts INTEGER NOT NULL,
        PRIMARY KEY (app_id, api_id, last_seq)
    ) WITHOUT ROWID;
    CREATE INDEX audit_runs_app ON audit_runs(app_id, last_seq);
    CREATE INDEX audit_runs_api ON audit_runs(api_id, last_seq);
    INSERT INTO audit_runs (app_id, api_id, first_seq, last_seq, min_ts, max_ts)
        SELECT coalesce(app_id, ''), coalesce(api_id, ''), min(seq), max(seq), min(ts), max(ts)
          FROM audit_index
         WHERE app_id IS NOT NULL OR api_id IS NOT NULL
         GROUP BY coalesce(app_id, ''), coalesce(api_id, ''), seg;
"#;

/// Add one run. A run that ends on the same record as one already kept (a
/// batch indexed again by a catch-up) widens it: coverage only grows.
const RUN_UPSERT: &str =
    "INSERT INTO audit_runs (app_id, api_id, first_seq, last_seq, min_ts, max_ts)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
     ON CONFLICT(app_id, api_id, last_seq) DO UPDATE SET
        first_seq = min(first_seq, excluded.first_seq),
        min_ts = min(min_ts, excluded.min_ts),
        max_ts = max(max_ts, excluded.max_ts)";

/// One (App_ID, API_ID) pair's span in an index write.
struct Run {
    first: u64,
    last: u64,
    min_ts: i64,
    max_ts: i64,
}

/// The runs of `rows`, one per (App_ID, API_ID) present.
fn runs(rows: &[AuditRow]) -> Vec<((&str, &str), Run)> {
    let mut out: Vec<((&str, &str), Run)> = Vec::new();
    for r in rows {
        if r.app_id.is_none() && r.api_id.is_none() {
            continue;
        }
        let key = (
            r.app_id.as_deref().unwrap_or(""),
            r.api_id.as_deref().unwrap_or(""),
        );
        // A write holds few pairs (apps x APIs called in ~100 ms): a
        // linear look-up beats hashing here.
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, run)) => {
                run.first = run.first.min(r.seq);
                run.last = run.last.max(r.seq);
                run.min_ts = run.min_ts.min(r.time_ms);
                run.max_ts = run.max_ts.max(r.time_ms);
            }
            None => out.push((
                key,
                Run {
                    first: r.seq,
                    last: r.seq,
                    min_ts: r.time_ms,
                    max_ts: r.time_ms,
                },
            )),
        }
    }
    out
}

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
        let mut st = tx.prepare_cached(RUN_UPSERT)?;
        for ((app, api), run) in runs(rows) {
            st.execute(params![
                app,
                api,
                run.first as i64,
                run.last as i64,
                run.min_ts,
                run.max_ts
            ])?;
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
    let limit = q.limit.clamp(1, 1000) as usize;
    // A serial number is the most selective filter and has its own index;
    // App_ID and API_ID go through their runs; anything else walks the
    // table back from its newest row.
    if q.txn_id.is_none() {
        if let Some(runs) = run_query(q) {
            return search_runs(c, q, from, to, limit, runs);
        }
    }
    let (filters, mut args) = filters(q, from, to);
    args.push(V::Integer(limit as i64));
    let sql = format!(
        "{SELECT} WHERE 1{filters} ORDER BY seq DESC LIMIT ?{}",
        args.len()
    );
    let mut st = c.prepare(&sql)?;
    let rows = st
        .query_map(rusqlite::params_from_iter(args), audit_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

use rusqlite::types::Value as V;

/// The search's row conditions (` AND col = ?N`, only the filters given, so
/// that no `(? IS NULL OR col = ?)` form hides an index) and their values.
fn filters(q: &AuditQuery, from: Option<i64>, to: Option<i64>) -> (String, Vec<V>) {
    let mut sql = String::new();
    let mut args: Vec<V> = Vec::new();
    let mut add = |cond: &str, v: V| {
        args.push(v);
        sql.push_str(&format!(" AND {cond} ?{}", args.len()));
    };
    let text = |v: &String| V::Text(v.clone());
    for (cond, v) in [
        ("txn_id =", q.txn_id.as_ref().map(text)),
        ("app_id =", q.app_id.as_ref().map(text)),
        ("api_id =", q.api_id.as_ref().map(text)),
        ("user_id =", q.user_id.as_ref().map(text)),
        ("result =", q.result.as_ref().map(text)),
        ("ts >=", from.map(V::Integer)),
        ("ts <", to.map(V::Integer)),
        ("kind =", q.kind.as_ref().map(text)),
        ("node =", q.node.as_ref().map(text)),
    ] {
        if let Some(v) = v {
            add(cond, v);
        }
    }
    (sql, args)
}

/// The query of the runs a search by App_ID and/or API_ID reads, with its
/// key values; `None` when the search names neither.
fn run_query(q: &AuditQuery) -> Option<(&'static str, Vec<V>)> {
    Some(match (&q.app_id, &q.api_id) {
        (Some(app), Some(api)) => (
            "SELECT first_seq, last_seq, min_ts, max_ts FROM audit_runs
              WHERE app_id = ?1 AND api_id = ?2 AND last_seq < ?3
              ORDER BY last_seq DESC LIMIT ?4",
            vec![V::Text(app.clone()), V::Text(api.clone())],
        ),
        (Some(app), None) => (
            "SELECT first_seq, last_seq, min_ts, max_ts FROM audit_runs
              WHERE app_id = ?1 AND last_seq < ?2
              ORDER BY last_seq DESC LIMIT ?3",
            vec![V::Text(app.clone())],
        ),
        (None, Some(api)) => (
            "SELECT first_seq, last_seq, min_ts, max_ts FROM audit_runs
              WHERE api_id = ?1 AND last_seq < ?2
              ORDER BY last_seq DESC LIMIT ?3",
            vec![V::Text(api.clone())],
        ),
        (None, None) => return None,
    })
}

/// Runs read per query of `audit_runs`.
const RUN_PAGE: i64 = 256;

/// [`search`] by App_ID and/or API_ID through their runs, newest first.
///
/// Runs are taken in descending order of their last record; each is scanned
/// (by the table's key, with every filter) from its last record, or from
/// below the part already scanned, down to its first. Every matching record
/// lies in a run of its pair, so it is scanned once: either its run's part
/// was still below the scanned part, or an earlier run (ending later) began
/// below it and covered it. The scanned parts are disjoint and descending,
/// so the results come out newest first with no duplicate, and the search
/// stops as soon as it has `limit`. A run wholly outside the time range is
/// skipped without lowering the scanned mark (its own records cannot match,
/// but other pairs' records in its range may).
fn search_runs(
    c: &Connection,
    q: &AuditQuery,
    from: Option<i64>,
    to: Option<i64>,
    limit: usize,
    runs: (&'static str, Vec<V>),
) -> Result<Vec<AuditRow>, StoreError> {
    let (filters, base) = filters(q, from, to);
    let n = base.len();
    let scan_sql = format!(
        "{SELECT} WHERE seq BETWEEN ?{} AND ?{}{filters} ORDER BY seq DESC LIMIT ?{}",
        n + 1,
        n + 2,
        n + 3
    );
    let (run_sql, keys) = runs;
    let mut run_st = c.prepare(run_sql)?;
    let mut scan_st = c.prepare(&scan_sql)?;
    let mut out: Vec<AuditRow> = Vec::new();
    // Runs ending before this are still to be read.
    let mut before = i64::MAX;
    // Records above this are scanned already.
    let mut cursor = i64::MAX;
    loop {
        let mut args = keys.clone();
        args.push(V::Integer(before));
        args.push(V::Integer(RUN_PAGE));
        let page = run_st
            .query_map(rusqlite::params_from_iter(args), |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let Some(&(_, last_of_page, _, _)) = page.last() else {
            return Ok(out);
        };
        for (first, last, min_ts, max_ts) in page {
            let outside = from.is_some_and(|f| max_ts < f) || to.is_some_and(|t| min_ts >= t);
            let hi = last.min(cursor);
            if outside || first > hi {
                continue;
            }
            let mut args = base.clone();
            args.push(V::Integer(first));
            args.push(V::Integer(hi));
            args.push(V::Integer((limit - out.len()) as i64));
            let rows = scan_st
                .query_map(rusqlite::params_from_iter(args), audit_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            out.extend(rows);
            if out.len() >= limit {
                return Ok(out);
            }
            cursor = first - 1;
        }
        before = last_of_page;
    }
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
