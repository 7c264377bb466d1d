//! Namespace-safe invalidation (seed 002): delete by pattern, by symbol, or everything — but
//! only ever inside `{namespace}:{version}:`. Keys are found with `SCAN` and removed with
//! `UNLINK` one page at a time; never `KEYS` (blocks Redis) and never `FLUSHDB` (takes other
//! tenants' data with it).
//!
//! Confinement: the caller's pattern is appended to the literal key-space prefix (whose
//! segments cannot hold glob characters), so the glob cannot match outside it; every key
//! returned is checked against the prefix again before it is unlinked.

use serde::Serialize;

use super::{Command, Store, StoreError, StoreExt};
use crate::keys::{KeySpace, Segment};

/// Keys requested per `SCAN` step (and so at most per `UNLINK`).
const SCAN_COUNT: usize = 500;

/// Longest pattern accepted, in bytes.
pub const MAX_PATTERN_BYTES: usize = 256;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Invalidated {
    /// Keys removed.
    pub deleted: u64,
    /// `SCAN` round trips made.
    pub scans: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidateError {
    #[error("invalid pattern: {0}")]
    Pattern(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks a caller's pattern (relative to the key space, e.g. `ticker:*`).
pub fn validate_pattern(pattern: &str) -> Result<(), InvalidateError> {
    let reason = if pattern.is_empty() {
        "it is empty"
    } else if pattern.len() > MAX_PATTERN_BYTES {
        "it is longer than 256 bytes"
    } else if pattern.chars().any(|c| c.is_whitespace() || c.is_control()) {
        "it contains whitespace or control characters"
    } else {
        return Ok(());
    };
    Err(InvalidateError::Pattern(format!("`{pattern}` is not usable: {reason}")))
}

/// Deletes every key under the key space matching `pattern` (a Redis glob relative to the
/// prefix: `ticker:*` means `qrl:v1:ticker:*`).
pub async fn delete_pattern(store: &dyn Store, keys: &KeySpace, pattern: &str) -> Result<Invalidated, InvalidateError> {
    validate_pattern(pattern)?;
    delete_matching(store, keys, &[keys.under(pattern)]).await
}

/// Deletes every key of `symbol` in the key space (any key with `symbol` as a whole segment).
pub async fn clear_symbol(
    store: &dyn Store,
    keys: &KeySpace,
    symbol: &Segment,
) -> Result<Invalidated, InvalidateError> {
    let symbol = super::glob::escape(symbol.as_str());
    delete_matching(store, keys, &[keys.under(&format!("*:{symbol}:*")), keys.under(&format!("*:{symbol}"))]).await
}

/// Deletes every key of the key space, and nothing else.
pub async fn clear_all(store: &dyn Store, keys: &KeySpace) -> Result<Invalidated, InvalidateError> {
    delete_matching(store, keys, &[keys.under("*")]).await
}

async fn delete_matching(store: &dyn Store, keys: &KeySpace, globs: &[String]) -> Result<Invalidated, InvalidateError> {
    let mut outcome = Invalidated::default();
    for glob in globs {
        let mut cursor = 0;
        loop {
            let page = store.scan(cursor, glob, SCAN_COUNT).await?;
            outcome.scans += 1;
            let doomed: Vec<String> = page.keys.into_iter().filter(|key| keys.contains(key)).collect();
            if !doomed.is_empty() {
                let removed = store.execute(&Command::unlink(&doomed)).await?.into_int().unwrap_or(0);
                outcome.deleted += removed.max(0) as u64;
            }
            if page.cursor == 0 {
                break;
            }
            cursor = page.cursor;
        }
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures_executor::block_on;

    use super::*;
    use crate::clock::FixedClock;
    use crate::store::memory::MemoryStore;

    #[test]
    fn invalidation_never_leaves_the_namespace() {
        let store = MemoryStore::new(Arc::new(FixedClock::at(0)), 1000);
        let keys = KeySpace::new("qrl").unwrap();
        let outside =
            ["other:v1:ticker:mexc:QRLUSDT", "qrl:v2:ticker:mexc:QRLUSDT", "qrl:v1", "ticker:QRLUSDT", "qrl:v10:x"];
        let inside = ["qrl:v1:ticker:mexc:QRLUSDT", "qrl:v1:ticker:mexc:BTCUSDT", "qrl:v1:price:mexc:QRLUSDT:latest"];
        for key in outside.iter().chain(&inside) {
            block_on(store.set(key, b"1", None)).unwrap();
        }
        let symbol = Segment::new("symbol", "QRLUSDT").unwrap();
        assert_eq!(block_on(clear_symbol(&store, &keys, &symbol)).unwrap().deleted, 2);
        assert_eq!(block_on(delete_pattern(&store, &keys, "*")).unwrap().deleted, 1);
        for crafted in ["../*", "*:*", "\\*", "[a-z]*", "*]"] {
            block_on(delete_pattern(&store, &keys, crafted)).unwrap();
        }
        block_on(clear_all(&store, &keys)).unwrap();
        for key in outside {
            assert!(block_on(store.get(key)).unwrap().is_some(), "{key} was deleted");
        }
        assert!(delete_pattern_rejects(""));
        assert!(delete_pattern_rejects("a b"));
    }

    fn delete_pattern_rejects(pattern: &str) -> bool {
        matches!(validate_pattern(pattern), Err(InvalidateError::Pattern(_)))
    }
}
