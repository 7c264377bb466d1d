//! The key schema: the one place that spells every key edgesync writes (see `docs/design.md`,
//! "Key schema"). Every key starts with `{namespace}:{version}:`, so environments can share a
//! Redis and a shape change can be rolled out under a new version. Keys are readable, never
//! hashed, and each variable segment is validated so that no value can smuggle a `:` (and
//! with it a different key) or a glob character (and with it a wider invalidation) into a key.
//!
//! This module builds, validates and classifies keys; it does not know lifetimes (that is
//! `ttl`) or value shapes (that is each writer's business).
//!
//! - [`pattern`]: key templates with named placeholders (match and render).

pub mod pattern;

use crate::ttl::DataClass;

/// The schema version; bump it when a stored shape changes incompatibly.
pub const SCHEMA_VERSION: &str = "v1";

/// The namespace used when `REDIS_NAMESPACE` is not set.
pub const DEFAULT_NAMESPACE: &str = "qrl";

pub use crate::domain::{validate_segment, Exchange, KeyError, Segment, MAX_SEGMENT_BYTES};

/// Builds keys under `{namespace}:{version}:`. Cheap to clone; build one from config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpace {
    prefix: String,
}

impl KeySpace {
    /// A key space for `namespace` (validated like any segment) at [`SCHEMA_VERSION`].
    pub fn new(namespace: &str) -> Result<Self, KeyError> {
        validate_segment("namespace", namespace)?;
        Ok(Self { prefix: format!("{namespace}:{SCHEMA_VERSION}") })
    }

    /// `{namespace}:{version}`, without a trailing colon.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, parts: &[&str]) -> String {
        let mut key = self.prefix.clone();
        for part in parts {
            key.push(':');
            key.push_str(part);
        }
        key
    }

    /// `P:account:{exchange}:{account}`: the complete account JSON (permanent).
    pub fn account(&self, exchange: Exchange, account: &Segment) -> String {
        self.key(&["account", exchange.as_str(), account.as_str()])
    }

    /// `P:position:{account}:{exchange}:{symbol}:{side}`: a position hash (permanent).
    pub fn position(&self, account: &Segment, exchange: Exchange, symbol: &Segment, side: &Segment) -> String {
        self.key(&["position", account.as_str(), exchange.as_str(), symbol.as_str(), side.as_str()])
    }

    /// `P:position-index:{account}:{exchange}`: the set of `{symbol}:{side}` (permanent).
    pub fn position_index(&self, account: &Segment, exchange: Exchange) -> String {
        self.key(&["position-index", account.as_str(), exchange.as_str()])
    }

    /// `P:price:{exchange}:{symbol}:latest`: the last synced price (permanent).
    pub fn price_latest(&self, exchange: Exchange, symbol: &Segment) -> String {
        self.key(&["price", exchange.as_str(), symbol.as_str(), "latest"])
    }

    /// `P:price:{exchange}:{symbol}:cached`: the same price with the `price` TTL.
    pub fn price_cached(&self, exchange: Exchange, symbol: &Segment) -> String {
        self.key(&["price", exchange.as_str(), symbol.as_str(), "cached"])
    }

    /// `P:price:{exchange}:{symbol}:history`: zset scored by ms (permanent, capped).
    pub fn price_history(&self, exchange: Exchange, symbol: &Segment) -> String {
        self.key(&["price", exchange.as_str(), symbol.as_str(), "history"])
    }

    /// `P:cost:{exchange}:{account}:{symbol}`: cost basis and P&L (permanent).
    pub fn cost(&self, exchange: Exchange, account: &Segment, symbol: &Segment) -> String {
        self.key(&["cost", exchange.as_str(), account.as_str(), symbol.as_str()])
    }

    /// `P:raw:{exchange}:{endpoint}:latest`: the last raw response (permanent).
    pub fn raw_latest(&self, exchange: Exchange, endpoint: &Segment) -> String {
        self.key(&["raw", exchange.as_str(), endpoint.as_str(), "latest"])
    }

    /// `P:raw:{exchange}:{endpoint}:history`: raw responses scored by ms (permanent, capped).
    pub fn raw_history(&self, exchange: Exchange, endpoint: &Segment) -> String {
        self.key(&["raw", exchange.as_str(), endpoint.as_str(), "history"])
    }

    /// `P:ticker:{exchange}:{symbol}`: the 24h ticker (`ticker` TTL).
    pub fn ticker(&self, exchange: Exchange, symbol: &Segment) -> String {
        self.key(&["ticker", exchange.as_str(), symbol.as_str()])
    }

    /// `P:ohlcv:{exchange}:{symbol}:{interval}:{limit}` (`ohlcv` TTL, capped by candle close).
    pub fn ohlcv(&self, exchange: Exchange, symbol: &Segment, interval: &Segment, limit: u32) -> String {
        self.key(&["ohlcv", exchange.as_str(), symbol.as_str(), interval.as_str(), &limit.to_string()])
    }

    /// `P:deals:{exchange}:{symbol}:{limit}` (`deals` TTL).
    pub fn deals(&self, exchange: Exchange, symbol: &Segment, limit: u32) -> String {
        self.key(&["deals", exchange.as_str(), symbol.as_str(), &limit.to_string()])
    }

    /// `P:orderbook:{exchange}:{symbol}:{limit}` (`orderbook` TTL).
    pub fn orderbook(&self, exchange: Exchange, symbol: &Segment, limit: u32) -> String {
        self.key(&["orderbook", exchange.as_str(), symbol.as_str(), &limit.to_string()])
    }

    /// `P:sync:{task}:status`: a hash describing a sync task's runs (permanent).
    pub fn sync_status(&self, task: &str) -> String {
        self.key(&["sync", task, "status"])
    }

    /// `{namespace}:nonce:{signature}`: an admin signature already used, for as long as its
    /// timestamp is acceptable. Outside the versioned key space on purpose: invalidation
    /// works inside it and must never re-enable a replay.
    pub fn nonce(&self, signature: &Segment) -> String {
        format!("{}:nonce:{signature}", self.namespace())
    }

    /// The namespace segment (the prefix without its version).
    pub fn namespace(&self) -> &str {
        self.prefix.rsplit_once(':').map_or(self.prefix.as_str(), |(namespace, _)| namespace)
    }

    /// `P:` followed by `rest`: for a pattern or key already validated by the caller.
    pub fn under(&self, rest: &str) -> String {
        format!("{}:{rest}", self.prefix)
    }

    /// True when `key` lies inside this key space.
    pub fn contains(&self, key: &str) -> bool {
        key.strip_prefix(&self.prefix).is_some_and(|rest| rest.starts_with(':'))
    }

    /// True for keys that coordinate writers rather than hold data (the migrator's lock):
    /// nothing but their owner may remove them.
    pub fn is_guard(&self, key: &str) -> bool {
        key.strip_prefix(&self.prefix)
            .and_then(|rest| rest.strip_prefix(':'))
            .is_some_and(|rest| rest.starts_with("migrator:"))
    }

    /// The data class of a key in this space, read from its shape; `None` for keys outside
    /// the space or of no known shape.
    pub fn classify(&self, key: &str) -> Option<DataClass> {
        let rest = key.strip_prefix(&self.prefix)?.strip_prefix(':')?;
        let segments: Vec<&str> = rest.split(':').collect();
        Some(match segments.as_slice() {
            ["account", _, _] => DataClass::Account,
            ["position", _, _, _, _] | ["position-index", _, _] => DataClass::Position,
            ["price", _, _, "latest"] => DataClass::PriceLatest,
            ["price", _, _, "cached"] => DataClass::Price,
            ["price", _, _, "history"] => DataClass::PriceHistory,
            ["cost", _, _, _] => DataClass::Cost,
            ["raw", _, _, "latest" | "history"] => DataClass::Raw,
            ["ticker", _, _] => DataClass::Ticker,
            ["ohlcv", _, _, _, _] => DataClass::Ohlcv,
            ["deals", _, _, _] => DataClass::Deals,
            ["orderbook", _, _, _] => DataClass::Orderbook,
            ["sync", _, "status"] => DataClass::SyncStatus,
            ["orders", ..] => DataClass::Orders,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(v: &str) -> Segment {
        Segment::new("test", v).unwrap()
    }

    #[test]
    fn keys_follow_the_schema() {
        let ks = KeySpace::new("qrl").unwrap();
        assert_eq!(ks.price_latest(Exchange::Mexc, &seg("QRLUSDT")), "qrl:v1:price:mexc:QRLUSDT:latest");
        assert_eq!(
            ks.position(&seg("main"), Exchange::Mexc, &seg("QRLUSDT"), &seg("long")),
            "qrl:v1:position:main:mexc:QRLUSDT:long"
        );
        assert_eq!(ks.ohlcv(Exchange::Mexc, &seg("QRLUSDT"), &seg("1m"), 100), "qrl:v1:ohlcv:mexc:QRLUSDT:1m:100");
        assert_eq!(ks.sync_status("price"), "qrl:v1:sync:price:status");
    }

    #[test]
    fn classifies_every_schema_key() {
        let ks = KeySpace::new("qrl").unwrap();
        let (s, a) = (seg("QRLUSDT"), seg("main"));
        let cases = [
            (ks.account(Exchange::Mexc, &a), DataClass::Account),
            (ks.position(&a, Exchange::Mexc, &s, &seg("long")), DataClass::Position),
            (ks.position_index(&a, Exchange::Mexc), DataClass::Position),
            (ks.price_latest(Exchange::Mexc, &s), DataClass::PriceLatest),
            (ks.price_cached(Exchange::Mexc, &s), DataClass::Price),
            (ks.price_history(Exchange::Mexc, &s), DataClass::PriceHistory),
            (ks.cost(Exchange::Mexc, &a, &s), DataClass::Cost),
            (ks.raw_latest(Exchange::Mexc, &seg("ticker_24hr")), DataClass::Raw),
            (ks.ticker(Exchange::Mexc, &s), DataClass::Ticker),
            (ks.ohlcv(Exchange::Mexc, &s, &seg("1m"), 100), DataClass::Ohlcv),
            (ks.deals(Exchange::Mexc, &s, 20), DataClass::Deals),
            (ks.orderbook(Exchange::Mexc, &s, 20), DataClass::Orderbook),
            (ks.sync_status("price"), DataClass::SyncStatus),
        ];
        for (key, class) in cases {
            assert_eq!(ks.classify(&key), Some(class), "{key}");
        }
        assert_eq!(ks.classify("qrl:v2:account:mexc:main"), None);
        assert_eq!(ks.classify("other:v1:account:mexc:main"), None);
        assert!(ks.contains("qrl:v1:x") && !ks.contains("qrl:v10:x") && !ks.contains("qrl:v1"));
    }

    #[test]
    fn segments_reject_what_could_escape_a_key() {
        for bad in ["", "a:b", "a*", "a?", "[a]", "a b", "a\tb", "a\nb", "a\\b"] {
            assert!(validate_segment("symbol", bad).is_err(), "{bad:?} accepted");
        }
        assert!(matches!(validate_segment("symbol", &"x".repeat(129)), Err(KeyError::TooLong { len: 129, .. })));
        assert!(validate_segment("symbol", &"x".repeat(128)).is_ok());
        assert!(KeySpace::new("qrl:evil").is_err());
    }
}
