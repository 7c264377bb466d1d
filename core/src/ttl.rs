//! The TTL table: the one place that says how long each class of data lives, so no writer
//! can pick its own (the variable names are the ones bots already use). Cache classes have a default
//! and an environment override; permanent classes — what the cron syncs — have no TTL and
//! cannot be given one: an override for them is a configuration error, because expiring
//! synced data is exactly the bug edgesync exists to prevent.

use std::time::Duration;

pub use crate::domain::DataClass;
use crate::env::ConfigError;

/// How long a class lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    Permanent,
    Expires(Duration),
}

impl Lifetime {
    /// The TTL to write with, `None` for permanent.
    pub fn ttl(self) -> Option<Duration> {
        match self {
            Lifetime::Permanent => None,
            Lifetime::Expires(ttl) => Some(ttl),
        }
    }
}

/// The cache classes: variable name and default seconds.
const CACHE_CLASSES: [(DataClass, &str, u64); 6] = [
    (DataClass::Default, "REDIS_CACHE_TTL", 60),
    (DataClass::Ticker, "REDIS_CACHE_TTL_TICKER", 5),
    (DataClass::Ohlcv, "REDIS_CACHE_TTL_OHLCV", 86_400),
    (DataClass::Deals, "REDIS_CACHE_TTL_DEALS", 10),
    (DataClass::Orderbook, "REDIS_CACHE_TTL_ORDERBOOK", 5),
    (DataClass::Price, "REDIS_CACHE_TTL_PRICE", 30),
];

/// Variables someone might set hoping to expire permanent data; each is refused.
const PERMANENT_VARIABLES: [(&str, DataClass); 8] = [
    ("REDIS_CACHE_TTL_ACCOUNT", DataClass::Account),
    ("REDIS_CACHE_TTL_POSITION", DataClass::Position),
    ("REDIS_CACHE_TTL_LATEST", DataClass::PriceLatest),
    ("REDIS_CACHE_TTL_HISTORY", DataClass::PriceHistory),
    ("REDIS_CACHE_TTL_COST", DataClass::Cost),
    ("REDIS_CACHE_TTL_RAW", DataClass::Raw),
    ("REDIS_CACHE_TTL_SYNC", DataClass::SyncStatus),
    ("REDIS_CACHE_TTL_ORDERS", DataClass::Orders),
];

/// The configured TTL of every cache class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TtlTable {
    cache: [(DataClass, Duration); 6],
}

impl Default for TtlTable {
    fn default() -> Self {
        Self { cache: CACHE_CLASSES.map(|(class, _, secs)| (class, Duration::from_secs(secs))) }
    }
}

impl TtlTable {
    /// Reads the overrides. A value that is not a whole number of seconds, or is zero, is an
    /// error naming the variable; so is any attempt to give a permanent class a TTL.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        for (variable, class) in PERMANENT_VARIABLES {
            if lookup(variable).is_some_and(|v| !v.trim().is_empty()) {
                return Err(ConfigError::new(
                    variable,
                    format!("{} data is permanent and cannot be given a TTL", class.name()),
                ));
            }
        }
        let mut table = Self::default();
        for ((_, ttl), (_, variable, _)) in table.cache.iter_mut().zip(CACHE_CLASSES) {
            if let Some(text) = lookup(variable).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
                let seconds = text
                    .parse::<u64>()
                    .map_err(|_| ConfigError::new(variable, format!("`{text}` is not a whole number of seconds")))?;
                if seconds == 0 {
                    return Err(ConfigError::new(variable, "must be at least 1 second (0 would never cache)"));
                }
                *ttl = Duration::from_secs(seconds);
            }
        }
        Ok(table)
    }

    /// How long `class` lives.
    pub fn lifetime(&self, class: DataClass) -> Lifetime {
        self.cache.iter().find(|(c, _)| *c == class).map_or(Lifetime::Permanent, |(_, ttl)| Lifetime::Expires(*ttl))
    }

    /// The TTL to write `class` with; `None` for permanent classes.
    pub fn ttl(&self, class: DataClass) -> Option<Duration> {
        self.lifetime(class).ttl()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(vars: &[(&str, &str)]) -> Result<TtlTable, ConfigError> {
        TtlTable::from_lookup(|name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string()))
    }

    #[test]
    fn defaults_and_permanence_agree() {
        let t = table(&[]).unwrap();
        let secs = |c| t.ttl(c).unwrap().as_secs();
        assert_eq!([secs(DataClass::Default), secs(DataClass::Ticker), secs(DataClass::Ohlcv)], [60, 5, 86_400]);
        assert_eq!([secs(DataClass::Deals), secs(DataClass::Orderbook), secs(DataClass::Price)], [10, 5, 30]);
        for class in DataClass::ALL {
            assert_eq!(t.lifetime(class) == Lifetime::Permanent, class.is_permanent(), "{class:?}");
        }
    }

    #[test]
    fn overrides_and_errors_name_the_variable() {
        assert_eq!(
            table(&[("REDIS_CACHE_TTL_TICKER", "7")]).unwrap().ttl(DataClass::Ticker),
            Some(Duration::from_secs(7))
        );
        assert_eq!(table(&[("REDIS_CACHE_TTL_OHLCV", "0")]).unwrap_err().variable, "REDIS_CACHE_TTL_OHLCV");
        assert_eq!(table(&[("REDIS_CACHE_TTL_PRICE", "-3")]).unwrap_err().variable, "REDIS_CACHE_TTL_PRICE");
        assert_eq!(table(&[("REDIS_CACHE_TTL", "1.5")]).unwrap_err().variable, "REDIS_CACHE_TTL");
        assert_eq!(table(&[("REDIS_CACHE_TTL_ACCOUNT", "120")]).unwrap_err().variable, "REDIS_CACHE_TTL_ACCOUNT");
    }
}
