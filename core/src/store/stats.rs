//! Store statistics, including the eviction risk that silently loses permanent data: key counts
//! overall and in the key space (by data class), memory use, the eviction policy and evicted
//! keys from `INFO`, and the memory tier's hit/miss and corruption counters. On a store without
//! `INFO` (the durable copy) the memory figures are absent (`null`) and the keys are counted.
//!
//! The risk flag: an `allkeys-*` policy lets Redis evict *any* key under memory pressure,
//! including the permanent synced data edgesync promises never to lose. Permanent data needs
//! `noeviction` or a `volatile-*` policy (which only evicts keys with a TTL).

use std::collections::BTreeMap;

use serde::Serialize;

use super::tiered::{IsolateCache, TierStats};
use super::{Command, Reply, Store, StoreError, StoreExt};
use crate::keys::KeySpace;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StoreStats {
    pub total_keys: u64,
    pub namespace_keys: u64,
    pub namespace_keys_by_class: BTreeMap<&'static str, u64>,
    pub permanent_keys: u64,
    pub used_memory_bytes: Option<u64>,
    pub used_memory_peak_bytes: Option<u64>,
    pub maxmemory_policy: Option<String>,
    pub evicted_keys: Option<u64>,
    /// Set when permanent data could be evicted; says why and what to do.
    pub eviction_risk: Option<String>,
    /// The isolate's memory tier, when there is one.
    pub memory_tier: Option<TierStats>,
}

/// The `field:value` lines of `INFO` output.
fn info_fields(info: &str) -> BTreeMap<&str, &str> {
    info.lines().filter_map(|line| line.trim_end_matches('\r').split_once(':')).collect()
}

/// Total keys from the `# Keyspace` lines (`db0:keys=12,expires=3,avg_ttl=0`).
fn total_keys(fields: &BTreeMap<&str, &str>) -> u64 {
    fields
        .iter()
        .filter(|(name, _)| name.starts_with("db"))
        .filter_map(|(_, value)| value.split(',').find_map(|part| part.strip_prefix("keys=")))
        .filter_map(|n| n.parse::<u64>().ok())
        .sum()
}

/// Gathers the stats: one `INFO` and a `SCAN` of the key space.
pub async fn collect(
    store: &dyn Store,
    keys: &KeySpace,
    memory_tier: Option<&IsolateCache>,
) -> Result<StoreStats, StoreError> {
    // A store that answers but does not serve INFO (the durable copy, when the worker runs on
    // it) is counted without Redis's memory figures, its keys by DBSIZE.
    let (info, counted) = match store.info(None).await {
        Ok(info) => (info, None),
        Err(StoreError::Command { .. }) => (String::new(), Some(store.execute(&Command::new("DBSIZE")).await?)),
        Err(error) => return Err(error),
    };
    let fields = info_fields(&info);
    let number = |name: &str| fields.get(name).and_then(|v| v.trim().parse::<u64>().ok());
    let total = match counted {
        Some(Reply::Int(n)) => u64::try_from(n).unwrap_or(0),
        _ => total_keys(&fields),
    };
    let mut stats = StoreStats {
        total_keys: total,
        used_memory_bytes: number("used_memory"),
        used_memory_peak_bytes: number("used_memory_peak"),
        maxmemory_policy: fields.get("maxmemory_policy").map(|v| v.trim().to_owned()),
        evicted_keys: number("evicted_keys"),
        memory_tier: memory_tier.map(IsolateCache::stats),
        ..StoreStats::default()
    };
    let glob = keys.under("*");
    let mut cursor = 0;
    loop {
        let page = store.scan(cursor, &glob, 1000).await?;
        for key in page.keys.iter().filter(|k| keys.contains(k)) {
            stats.namespace_keys += 1;
            let class = keys.classify(key);
            *stats.namespace_keys_by_class.entry(class.map_or("unknown", |c| c.name())).or_default() += 1;
            if class.is_some_and(|c| c.is_permanent()) {
                stats.permanent_keys += 1;
            }
        }
        if page.cursor == 0 {
            break;
        }
        cursor = page.cursor;
    }
    if let Some(policy) = stats.maxmemory_policy.as_deref().filter(|p| p.starts_with("allkeys-")) {
        if stats.permanent_keys > 0 {
            stats.eviction_risk = Some(format!(
                "maxmemory-policy is {policy}: Redis may evict any of the {} permanent keys under memory pressure; \
                 use noeviction or a volatile-* policy",
                stats.permanent_keys
            ));
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures_executor::block_on;

    use super::*;
    use crate::clock::FixedClock;
    use crate::store::memory::MemoryStore;

    /// The memory store refusing `INFO`, as the durable copy does.
    struct WithoutInfo(MemoryStore);

    #[async_trait::async_trait(?Send)]
    impl Store for WithoutInfo {
        async fn pipeline(&self, commands: &[Command]) -> Result<crate::store::Replies, StoreError> {
            if commands.iter().any(|c| c.name() == "INFO") {
                return Ok(vec![Err(crate::store::CommandError(
                    "ERR `INFO` is not served by the durable copy".into(),
                ))]);
            }
            self.0.pipeline(commands).await
        }
        async fn transaction(&self, commands: &[Command]) -> Result<crate::store::Replies, StoreError> {
            self.pipeline(commands).await
        }
    }

    #[test]
    fn a_store_without_info_is_counted_without_memory_figures() {
        let store = WithoutInfo(MemoryStore::new(Arc::new(FixedClock::at(0)), 1000));
        let keys = KeySpace::new("qrl").unwrap();
        block_on(store.set("qrl:v1:price:mexc:QRLUSDT:latest", b"{}", None)).unwrap();
        block_on(store.set("elsewhere", b"1", None)).unwrap();
        let stats = block_on(collect(&store, &keys, None)).unwrap();
        assert_eq!((stats.total_keys, stats.namespace_keys, stats.permanent_keys), (2, 1, 1));
        assert_eq!((stats.used_memory_bytes, stats.maxmemory_policy), (None, None));
        assert!(stats.eviction_risk.is_none());
    }

    #[test]
    fn counts_classes_and_flags_evictable_permanent_data() {
        let store = MemoryStore::new(Arc::new(FixedClock::at(0)), 1000); // allkeys-lru, by nature
        let keys = KeySpace::new("qrl").unwrap();
        block_on(store.set("qrl:v1:ticker:mexc:QRLUSDT", b"{}", Some(std::time::Duration::from_secs(5)))).unwrap();
        block_on(store.set("elsewhere", b"1", None)).unwrap();
        let stats = block_on(collect(&store, &keys, None)).unwrap();
        assert_eq!((stats.total_keys, stats.namespace_keys, stats.permanent_keys), (2, 1, 0));
        assert_eq!(stats.maxmemory_policy.as_deref(), Some("allkeys-lru"));
        assert!(stats.eviction_risk.is_none(), "no permanent data yet");

        block_on(store.set("qrl:v1:price:mexc:QRLUSDT:latest", b"{}", None)).unwrap();
        let stats = block_on(collect(&store, &keys, None)).unwrap();
        assert_eq!(stats.namespace_keys_by_class["price_latest"], 1);
        assert!(stats.eviction_risk.unwrap().contains("allkeys-lru"));
    }
}
