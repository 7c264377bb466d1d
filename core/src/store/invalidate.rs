//! Namespace-safe invalidation: delete by pattern, by symbol, or everything — but
//! only ever inside `{namespace}:{version}:`, and only *cache*. Keys are found with `SCAN`
//! and removed with `UNLINK` one page at a time; never `KEYS` (blocks Redis) and never
//! `FLUSHDB` (takes other tenants' data with it).
//!
//! Confinement: the caller's pattern is appended to the literal key-space prefix (whose
//! segments cannot hold glob characters), so the glob cannot match outside it; every key
//! returned is checked against the prefix again before it is unlinked.
//!
//! What may go: a key is classified by its shape (`KeySpace::classify`). Cache classes go;
//! permanent classes (account, positions, latest prices, histories, cost, raw responses, sync
//! status, orders) and keys of no known shape stay unless the caller sets
//! [`Scope::IncludePermanent`] — they cannot be fetched again. Replay nonces live outside the
//! key space and the migrator's lock is never matched, whatever the scope.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Command, Store, StoreError, StoreExt};
use crate::keys::{KeySpace, Segment};

/// Keys requested per `SCAN` step (and so at most per `UNLINK`).
const SCAN_COUNT: usize = 500;

/// Longest pattern accepted, in bytes.
pub const MAX_PATTERN_BYTES: usize = 256;

/// Which keys an invalidation may remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Cache classes only (the default).
    CacheOnly,
    /// Cache and permanent data: the caller asked for it by name (`include_permanent`).
    IncludePermanent,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Invalidated {
    /// Keys removed.
    pub deleted: u64,
    /// Keys removed, per data class (`unknown` for keys of no known shape).
    pub deleted_by_class: BTreeMap<&'static str, u64>,
    /// Keys that matched but were kept because they are permanent (or of no known shape).
    pub kept_permanent: u64,
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
pub async fn delete_pattern(
    store: &dyn Store,
    keys: &KeySpace,
    pattern: &str,
    scope: Scope,
) -> Result<Invalidated, InvalidateError> {
    validate_pattern(pattern)?;
    delete_matching(store, keys, &[keys.under(pattern)], scope).await
}

/// Deletes every key of `symbol` in the key space (any key with `symbol` as a whole segment).
pub async fn clear_symbol(
    store: &dyn Store,
    keys: &KeySpace,
    symbol: &Segment,
    scope: Scope,
) -> Result<Invalidated, InvalidateError> {
    let symbol = crate::glob::escape(symbol.as_str());
    let globs = [keys.under(&format!("*:{symbol}:*")), keys.under(&format!("*:{symbol}"))];
    delete_matching(store, keys, &globs, scope).await
}

/// Deletes every key of the key space (within `scope`), and nothing else.
pub async fn clear_all(store: &dyn Store, keys: &KeySpace, scope: Scope) -> Result<Invalidated, InvalidateError> {
    delete_matching(store, keys, &[keys.under("*")], scope).await
}

/// The class name `key` is counted under if it may be deleted in `scope`; `None` to keep it.
fn deletable(keys: &KeySpace, key: &str, scope: Scope) -> Option<&'static str> {
    if !keys.contains(key) || keys.is_guard(key) {
        return None;
    }
    match (keys.classify(key), scope) {
        (Some(class), _) if !class.is_permanent() => Some(class.name()),
        (Some(class), Scope::IncludePermanent) => Some(class.name()),
        (None, Scope::IncludePermanent) => Some("unknown"),
        _ => None,
    }
}

async fn delete_matching(
    store: &dyn Store,
    keys: &KeySpace,
    globs: &[String],
    scope: Scope,
) -> Result<Invalidated, InvalidateError> {
    let mut outcome = Invalidated::default();
    for glob in globs {
        let mut cursor = 0;
        loop {
            let page = store.scan(cursor, glob, SCAN_COUNT).await?;
            outcome.scans += 1;
            let mut doomed = Vec::new();
            for key in page.keys {
                match deletable(keys, &key, scope) {
                    Some(class) => doomed.push((key, class)),
                    None if keys.contains(&key) => outcome.kept_permanent += 1,
                    None => {}
                }
            }
            if !doomed.is_empty() {
                // One UNLINK per key in one pipeline, so each class is counted by what existed.
                let commands: Vec<Command> = doomed.iter().map(|(key, _)| Command::unlink(&[key])).collect();
                let replies = store.pipeline(&commands).await?;
                for ((_, class), reply) in doomed.iter().zip(replies) {
                    if let Ok(super::Reply::Int(1)) = reply {
                        outcome.deleted += 1;
                        *outcome.deleted_by_class.entry(class).or_default() += 1;
                    }
                }
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
        let inside = ["qrl:v1:ticker:mexc:QRLUSDT", "qrl:v1:ticker:mexc:BTCUSDT", "qrl:v1:price:mexc:QRLUSDT:cached"];
        for key in outside.iter().chain(&inside) {
            block_on(store.set(key, b"1", None)).unwrap();
        }
        let symbol = Segment::new("symbol", "QRLUSDT").unwrap();
        assert_eq!(block_on(clear_symbol(&store, &keys, &symbol, Scope::CacheOnly)).unwrap().deleted, 2);
        assert_eq!(block_on(delete_pattern(&store, &keys, "*", Scope::CacheOnly)).unwrap().deleted, 1);
        for crafted in ["../*", "*:*", "\\*", "[a-z]*", "*]"] {
            block_on(delete_pattern(&store, &keys, crafted, Scope::IncludePermanent)).unwrap();
        }
        block_on(clear_all(&store, &keys, Scope::IncludePermanent)).unwrap();
        for key in outside {
            assert!(block_on(store.get(key)).unwrap().is_some(), "{key} was deleted");
        }
        assert!(delete_pattern_rejects(""));
        assert!(delete_pattern_rejects("a b"));
    }

    #[test]
    fn permanent_data_goes_only_when_asked_for_and_guards_never() {
        let store = MemoryStore::new(Arc::new(FixedClock::at(0)), 1000);
        let keys = KeySpace::new("qrl").unwrap();
        let permanent = ["qrl:v1:price:mexc:QRLUSDT:latest", "qrl:v1:account:mexc:main", "qrl:v1:sync:price:status"];
        let guards = ["qrl:nonce:abc", "qrl:v1:migrator:lock"];
        for key in permanent.iter().chain(&guards).chain(&["qrl:v1:ticker:mexc:QRLUSDT", "qrl:v1:odd"]) {
            block_on(store.set(key, b"1", None)).unwrap();
        }
        let cache_only = block_on(clear_all(&store, &keys, Scope::CacheOnly)).unwrap();
        assert_eq!((cache_only.deleted, cache_only.kept_permanent), (1, 5), "{cache_only:?}");
        assert_eq!(cache_only.deleted_by_class["ticker"], 1);
        let everything = block_on(clear_all(&store, &keys, Scope::IncludePermanent)).unwrap();
        assert_eq!(everything.deleted, 4, "{everything:?}");
        assert_eq!((everything.deleted_by_class["price_latest"], everything.deleted_by_class["unknown"]), (1, 1));
        for key in guards {
            assert!(block_on(store.get(key)).unwrap().is_some(), "{key} was deleted");
        }
    }

    fn delete_pattern_rejects(pattern: &str) -> bool {
        matches!(validate_pattern(pattern), Err(InvalidateError::Pattern(_)))
    }
}
