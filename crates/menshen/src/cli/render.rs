//! Output: pretty JSON, or a plain table of chosen columns.

use serde_json::Value;

use super::AdminClient;

pub(super) fn print_json(v: &Value) {
    crate::out!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

pub(super) fn table(rows: &Value, cols: &[&str]) {
    let empty = vec![];
    let rows = rows.as_array().unwrap_or(&empty);
    let cell = |r: &Value, c: &str| -> String {
        match r.get(c) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => "-".into(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| x.to_string())
                })
                .collect::<Vec<_>>()
                .join(","),
            Some(v) => v.to_string(),
        }
    };
    let widths: Vec<usize> = cols
        .iter()
        .map(|c| {
            rows.iter()
                .map(|r| cell(r, c).chars().count())
                .max()
                .unwrap_or(0)
                .max(c.len())
        })
        .collect();
    let line = |vals: Vec<String>| {
        vals.iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    crate::out!("{}", line(cols.iter().map(|c| c.to_uppercase()).collect()));
    for r in rows {
        crate::out!("{}", line(cols.iter().map(|c| cell(r, c)).collect()));
    }
}

pub(super) fn out(c: &AdminClient, v: &Value, cols: &[&str]) {
    if c.json || !v.is_array() {
        print_json(v)
    } else {
        table(v, cols)
    }
}
