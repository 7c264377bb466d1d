//! Typed dumps of a whole database — every key with its type, value and absolute expiry — to
//! prove that a step changed exactly what it should (`plan` nothing, `rollback` everything
//! back). Expiries compare with a tolerance, since time passes between two dumps.

use std::collections::BTreeMap;

use edgesync_core::store::{Store, StoreError, StoreExt};

use crate::value::{read_many, Stored};

pub type Dump = BTreeMap<String, Stored>;

/// Every key (SCAN, never KEYS) with its typed value and absolute expiry (read per page, so
/// expiries stay exact however long the dump takes).
pub async fn dump(store: &dyn Store) -> Result<Dump, StoreError> {
    let mut dump = Dump::new();
    let mut cursor = 0;
    loop {
        let page = store.scan(cursor, "*", 1000).await?;
        let fresh: Vec<String> = page.keys.into_iter().filter(|k| !dump.contains_key(k)).collect();
        for (key, stored) in fresh.iter().zip(read_many(store, &fresh).await?) {
            if let Some(stored) = stored {
                dump.insert(key.clone(), stored);
            }
        }
        if page.cursor == 0 {
            return Ok(dump);
        }
        cursor = page.cursor;
    }
}

/// The differences between two dumps, ignoring `ignore(key)` keys and expiry drift up to
/// `tolerance_ms`; empty when they are equal.
pub fn differences(before: &Dump, after: &Dump, tolerance_ms: i64, ignore: impl Fn(&str) -> bool) -> Vec<String> {
    let mut differences = Vec::new();
    for (key, old) in before.iter().filter(|(k, _)| !ignore(k)) {
        match after.get(key) {
            None => differences.push(format!("{key}: gone")),
            Some(new) if new.value != old.value => differences.push(format!("{key}: value changed")),
            Some(new) => {
                let same_expiry = match (old.expire_at_ms, new.expire_at_ms) {
                    (None, None) => true,
                    (Some(a), Some(b)) => (a - b).abs() <= tolerance_ms,
                    _ => false,
                };
                if !same_expiry {
                    differences.push(format!("{key}: expiry {:?} → {:?}", old.expire_at_ms, new.expire_at_ms));
                }
            }
        }
    }
    for key in after.keys().filter(|k| !ignore(k) && !before.contains_key(*k)) {
        differences.push(format!("{key}: new"));
    }
    differences
}
