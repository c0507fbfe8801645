//! `menshen audit ...`: verify the log offline, search the index, archive segments.

use std::path::PathBuf;

use anyhow::Context;
use serde_json::{json, Value};

use super::render::{print_json, table};
use super::{AdminClient, AdminConn};

/// `menshen audit verify DIR [DIR...]`: each directory is one node's log
/// (issue 12 item 8), verified on its own; one line per directory. Exit 1 if
/// any chain is broken or two directories claim the same node id.
pub fn audit_verify(dirs: &[PathBuf], keys: &[PathBuf]) -> anyhow::Result<i32> {
    let mut pks = Vec::new();
    for k in keys {
        let pem =
            std::fs::read_to_string(k).with_context(|| format!("--public-key {}", k.display()))?;
        pks.push(
            menshen_crypto::PublicKey::from_spki_pem(&pem)
                .map_err(|e| anyhow::anyhow!("--public-key {}: {e}", k.display()))?,
        );
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("verifying {msg} {bar:40} {pos}/{len} segments")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let reports = menshen_audit::verify::verify_dirs(dirs, &pks, |i, done, total| {
        bar.set_message(dirs[i].display().to_string());
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    });
    bar.finish_and_clear();
    let mut failed = 0;
    let many = dirs.len() > 1;
    for r in &reports {
        match &r.result {
            Ok(rep) => {
                let node = rep.node.as_deref().unwrap_or("(no node id)");
                if many {
                    crate::out!(
                        "OK: node {node} ({}): {} records in {} segments, {} signed checkpoints; chain head {}",
                        r.dir.display(),
                        rep.records,
                        rep.segments,
                        rep.checkpoints,
                        rep.head
                    );
                } else {
                    crate::out!(
                        "OK: {} records in {} segments, {} signed checkpoints; chain head {} (node {node})",
                        rep.records,
                        rep.segments,
                        rep.checkpoints,
                        rep.head
                    );
                }
            }
            Err(e) => {
                failed += 1;
                let node = menshen_audit::verify::log_node(&r.dir)
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| "(no node id)".into());
                if many {
                    crate::out!(
                        "FAILED: node {node} ({}) at {}: {}",
                        r.dir.display(),
                        e.place,
                        e.problem
                    );
                } else {
                    crate::out!("FAILED at {}: {}", e.place, e.problem);
                }
            }
        }
    }
    if many {
        crate::out!(
            "{} of {} node logs verified{}",
            reports.len() - failed,
            reports.len(),
            if failed > 0 { "; FAILED" } else { "" }
        );
    }
    Ok(if failed > 0 { 1 } else { 0 })
}

/// `menshen audit search`.
#[allow(clippy::too_many_arguments)]
pub async fn audit_search(
    q: Vec<(&str, Option<String>)>,
    limit: u32,
    conn: AdminConn,
) -> anyhow::Result<()> {
    let c = AdminClient::new(&conn)?;
    let mut qs: Vec<String> = q
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={}", urlencode(&v))))
        .collect();
    qs.push(format!("limit={limit}"));
    let v = c
        .call("GET", &format!("/v1/audit?{}", qs.join("&")), None)
        .await?;
    if c.json {
        print_json(&v);
        return Ok(());
    }
    let flat: Vec<Value> = v
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    // The record from its node's log (fetched from that
                    // node by the one asked); its indexed key fields if the
                    // log could not be read (the row says why).
                    let rec = if r["record"].is_object() {
                        &r["record"]
                    } else {
                        &r["indexed"]
                    };
                    json!({
                        "node": r["node"], "seq": r["seq"], "time": rec["timestamp"], "kind": rec["kind"],
                        "txn_id": rec["txn_id"], "app_id": rec.get("app_id").cloned().unwrap_or(rec["actor"].clone()),
                        "api_id": rec["api_id"], "result": rec.get("result").cloned().unwrap_or(rec["action"].clone()),
                        "status": rec["status"], "code": rec["code"],
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    table(
        &json!(flat),
        &[
            "node", "seq", "time", "kind", "txn_id", "app_id", "api_id", "result", "status", "code",
        ],
    );
    Ok(())
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `menshen audit archive`.
pub fn audit_archive(cfg: &crate::config::Config, dry_run: bool) -> anyhow::Result<()> {
    let dir = cfg.data_dir.join("audit");
    let seg_dir = dir.join("segments");
    let archive = dir.join("archive");
    std::fs::create_dir_all(&archive)?;
    let cutoff = std::time::SystemTime::now()
        - std::time::Duration::from_secs(u64::from(cfg.audit.archive_after_days) * 86_400);
    let mut moved = 0;
    for e in std::fs::read_dir(&seg_dir).with_context(|| format!("{}", seg_dir.display()))? {
        let p = e?.path();
        // Only closed segments: compressed ones (the active one is plain).
        if !p.to_string_lossy().ends_with(".jsonl.zst") {
            continue;
        }
        let modified = std::fs::metadata(&p)?.modified()?;
        if modified > cutoff {
            continue;
        }
        let to = archive.join(p.file_name().unwrap_or_default());
        if dry_run {
            crate::out!("would archive {} -> {}", p.display(), to.display());
        } else {
            std::fs::rename(&p, &to)?;
            crate::out!("archived {}", to.display());
        }
        moved += 1;
    }
    crate::out!(
        "{moved} segment(s) {}; nothing is ever deleted by Menshen before retention ({} days)",
        if dry_run { "to archive" } else { "archived" },
        cfg.audit.retention_days
    );
    Ok(())
}
