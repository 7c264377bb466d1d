//! Parsers for the legacy key shapes found in the wild (seeds 001 and 003), for the migrator
//! and for anyone inspecting an old Redis. Each [`LegacyShape`] names one shape and its
//! [`KeyPattern`]; [`parse`] says which shape a key has, trying the more specific shapes first
//! so that, e.g., `okx:positions:7` is not read as a three-segment position key.

use std::sync::OnceLock;

use super::pattern::{Captures, KeyPattern};

/// The legacy (and already-standard, un-namespaced) shapes edgesync knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LegacyShape {
    /// seed 003: `position:{user}:{symbol}` — no exchange, no side.
    Position,
    /// seed 003: `user:{user}:position:{symbol}:{side}`.
    UserPosition,
    /// seed 003's standard: `position:{user}:{exchange}:{symbol}:{side}`.
    StandardPosition,
    /// seed 003: `{exchange}:user:{user}:symbol:{symbol}:order_placed` (hash).
    OrderPlaced,
    /// seed 003: `…:orders` (sorted set of prices).
    Orders,
    /// seed 003: `…:order_placed_index` (set of order ids).
    OrderPlacedIndex,
    /// seed 003's standard: `orders:{exchange}:user:{user}:symbol:{symbol}:{kind}`.
    StandardOrders,
    /// seed 003: `{exchange}:positions:{user}` — a JSON array of positions.
    PositionsArray,
    /// seed 001: `bot:{symbol}:price:latest`.
    BotPriceLatest,
    /// seed 001: `bot:{symbol}:price:cached`.
    BotPriceCached,
    /// seed 001: `mexc:raw:{endpoint}:latest`.
    MexcRawLatest,
    /// seed 001: `mexc:raw:{endpoint}:history`.
    MexcRawHistory,
}

impl LegacyShape {
    /// Most specific first: [`parse`] returns the first match.
    pub const ALL: [LegacyShape; 12] = [
        LegacyShape::StandardOrders,
        LegacyShape::OrderPlaced,
        LegacyShape::Orders,
        LegacyShape::OrderPlacedIndex,
        LegacyShape::MexcRawLatest,
        LegacyShape::MexcRawHistory,
        LegacyShape::BotPriceLatest,
        LegacyShape::BotPriceCached,
        LegacyShape::UserPosition,
        LegacyShape::StandardPosition,
        LegacyShape::PositionsArray,
        LegacyShape::Position,
    ];

    pub fn template(self) -> &'static str {
        match self {
            LegacyShape::Position => "position:{user}:{symbol}",
            LegacyShape::UserPosition => "user:{user}:position:{symbol}:{side}",
            LegacyShape::StandardPosition => "position:{user}:{exchange}:{symbol}:{side}",
            LegacyShape::OrderPlaced => "{exchange}:user:{user}:symbol:{symbol}:order_placed",
            LegacyShape::Orders => "{exchange}:user:{user}:symbol:{symbol}:orders",
            LegacyShape::OrderPlacedIndex => "{exchange}:user:{user}:symbol:{symbol}:order_placed_index",
            LegacyShape::StandardOrders => "orders:{exchange}:user:{user}:symbol:{symbol}:{kind}",
            LegacyShape::PositionsArray => "{exchange}:positions:{user}",
            LegacyShape::BotPriceLatest => "bot:{symbol}:price:latest",
            LegacyShape::BotPriceCached => "bot:{symbol}:price:cached",
            LegacyShape::MexcRawLatest => "mexc:raw:{endpoint}:latest",
            LegacyShape::MexcRawHistory => "mexc:raw:{endpoint}:history",
        }
    }

    pub fn pattern(self) -> &'static KeyPattern {
        static PATTERNS: OnceLock<Vec<(LegacyShape, KeyPattern)>> = OnceLock::new();
        let all = PATTERNS.get_or_init(|| {
            LegacyShape::ALL
                .iter()
                .map(|&s| (s, KeyPattern::parse(s.template()).expect("built-in templates are valid")))
                .collect()
        });
        &all.iter().find(|(s, _)| *s == self).expect("every shape has a pattern").1
    }
}

/// Exchange names are lowercase letters and digits (`okx`, `mexc`, `binance`).
fn plausible_exchange(captures: &Captures) -> bool {
    captures
        .get("exchange")
        .is_none_or(|e| !e.is_empty() && e.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
}

/// The shape of `key` and its captured segments, or `None` for keys of no known shape.
pub fn parse(key: &str) -> Option<(LegacyShape, Captures)> {
    LegacyShape::ALL.iter().find_map(|&shape| {
        let captures = shape.pattern().capture(key)?;
        let valid = plausible_exchange(&captures)
            && captures.values().all(|v| super::validate_segment("segment", v).is_ok())
            && !(shape == LegacyShape::PositionsArray && captures.get("exchange").is_some_and(|e| e == "position"));
        valid.then_some((shape, captures))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_every_seed_shape() {
        let cases = [
            ("position:7:BTC-USDT-SWAP", LegacyShape::Position),
            ("user:7:position:BTC-USDT-SWAP:long", LegacyShape::UserPosition),
            ("position:7:okx:BTC-USDT-SWAP:short", LegacyShape::StandardPosition),
            ("okx:user:7:symbol:BTC-USDT:order_placed", LegacyShape::OrderPlaced),
            ("okx:user:7:symbol:BTC-USDT:orders", LegacyShape::Orders),
            ("okx:user:7:symbol:BTC-USDT:order_placed_index", LegacyShape::OrderPlacedIndex),
            ("orders:okx:user:7:symbol:BTC-USDT:order_placed", LegacyShape::StandardOrders),
            ("okx:positions:7", LegacyShape::PositionsArray),
            ("bot:QRLUSDT:price:latest", LegacyShape::BotPriceLatest),
            ("bot:QRLUSDT:price:cached", LegacyShape::BotPriceCached),
            ("mexc:raw:account_info:latest", LegacyShape::MexcRawLatest),
            ("mexc:raw:ticker_24hr:history", LegacyShape::MexcRawHistory),
        ];
        for (key, shape) in cases {
            assert_eq!(parse(key).map(|(s, _)| s), Some(shape), "{key}");
        }
        assert_eq!(parse("user:7:position:BTC:long").unwrap().1["side"], "long");
        assert!(parse("qrl:v1:price:mexc:QRLUSDT:latest").is_none());
        assert!(parse("session:abc").is_none());
        assert!(parse("OKX:positions:7").is_none(), "exchanges are lowercase");
    }
}
