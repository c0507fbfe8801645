//! Label values, interned once (MON-1: bounded cardinality). App and API
//! ids are turned into a [`LabelId`] when the gateway compiles its snapshot
//! from the catalog, so a call is counted under small integers and never
//! formats a string; the names are looked up again only when the metrics
//! are scraped or the statistics read.
//!
//! The table is process-wide (ids mean the same for every node in a test
//! process) and only grows with the catalog: names come from the catalog
//! alone, anything else is [`LabelId::UNKNOWN`]. Past [`MAX_NAMES`] names
//! every new one is `unknown` too.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;

/// Most distinct names the table holds.
pub const MAX_NAMES: usize = 100_000;

/// The label value of anything not in the catalog (or not known: a call
/// refused before its API or app was found).
pub const UNKNOWN_NAME: &str = "unknown";

/// An interned label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct LabelId(u32);

impl LabelId {
    /// `unknown`.
    pub const UNKNOWN: LabelId = LabelId(0);

    /// Whether this is [`LabelId::UNKNOWN`].
    pub fn is_unknown(self) -> bool {
        self.0 == 0
    }
}

struct Table {
    ids: HashMap<Arc<str>, u32>,
    names: Vec<Arc<str>>,
}

fn table() -> &'static RwLock<Table> {
    static T: OnceLock<RwLock<Table>> = OnceLock::new();
    T.get_or_init(|| {
        let unknown: Arc<str> = Arc::from(UNKNOWN_NAME);
        RwLock::new(Table {
            ids: HashMap::from([(unknown.clone(), 0)]),
            names: vec![unknown],
        })
    })
}

/// A name as a label may carry it: ASCII letters, digits and `._:-` only,
/// at most 64 bytes (catalog ids already are; anything else is replaced,
/// so no value can break the exposition format).
fn clean(name: &str) -> String {
    name.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The id of a catalog name (an App_ID or API_ID), interning it if new.
/// Called when a snapshot is compiled, never per call.
pub fn intern(name: &str) -> LabelId {
    if let Some(&id) = table().read().ids.get(name) {
        return LabelId(id);
    }
    let name = clean(name);
    let mut t = table().write();
    if let Some(&id) = t.ids.get(name.as_str()) {
        return LabelId(id);
    }
    if t.names.len() >= MAX_NAMES {
        return LabelId::UNKNOWN;
    }
    let id = t.names.len() as u32;
    let name: Arc<str> = Arc::from(name);
    t.names.push(name.clone());
    t.ids.insert(name, id);
    LabelId(id)
}

/// The id of `name` if it was interned.
pub fn lookup(name: &str) -> Option<LabelId> {
    table().read().ids.get(name).map(|&i| LabelId(i))
}

/// The name of `id` (`unknown` for an id this table never gave).
pub fn name(id: LabelId) -> Arc<str> {
    let t = table().read();
    t.names
        .get(id.0 as usize)
        .cloned()
        .unwrap_or_else(|| t.names[0].clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mon_1_names_interned_once_and_cleaned() {
        let a = intern("app_metrics_test_1");
        assert_eq!(intern("app_metrics_test_1"), a);
        assert_eq!(&*name(a), "app_metrics_test_1");
        assert_eq!(lookup("app_metrics_test_1"), Some(a));
        let odd = intern("a\"b{c}\n");
        assert_eq!(&*name(odd), "a_b_c__");
        assert_eq!(&*name(LabelId::UNKNOWN), "unknown");
        assert_eq!(intern("unknown"), LabelId::UNKNOWN);
    }
}
