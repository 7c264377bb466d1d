//! The vocabulary every part of edgesync shares, with no dependencies of its own: validated
//! key [`Segment`]s (and why a value cannot be one), the [`Exchange`]s, and the
//! [`DataClass`]es data is stored under. A leaf, so the key schema, the TTL table, the exchange
//! client and the stores can all use these words without using each other.

use std::fmt;

/// Longest accepted segment, in bytes.
pub const MAX_SEGMENT_BYTES: usize = 128;

/// Why a value cannot be a key segment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("{what} is empty")]
    Empty { what: &'static str },
    #[error("{what} is {len} bytes long; at most {MAX_SEGMENT_BYTES} are allowed")]
    TooLong { what: &'static str, len: usize },
    #[error("{what} contains {found:?}, which is not allowed in a key segment")]
    ForbiddenChar { what: &'static str, found: char },
}

/// Checks one variable key segment: non-empty, at most [`MAX_SEGMENT_BYTES`], and free of
/// `:`, glob characters (`* ? [ ] \`), whitespace and control characters.
pub fn validate_segment(what: &'static str, value: &str) -> Result<(), KeyError> {
    if value.is_empty() {
        return Err(KeyError::Empty { what });
    }
    if value.len() > MAX_SEGMENT_BYTES {
        return Err(KeyError::TooLong { what, len: value.len() });
    }
    match value.chars().find(|c| matches!(c, ':' | '*' | '?' | '[' | ']' | '\\') || c.is_whitespace() || c.is_control())
    {
        Some(found) => Err(KeyError::ForbiddenChar { what, found }),
        None => Ok(()),
    }
}

/// A validated segment, so builders cannot be handed an unchecked string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Segment(String);

impl Segment {
    pub fn new(what: &'static str, value: &str) -> Result<Self, KeyError> {
        validate_segment(what, value)?;
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The exchanges edgesync knows; their key segment is always lowercase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exchange {
    Mexc,
}

impl Exchange {
    pub fn as_str(self) -> &'static str {
        match self {
            Exchange::Mexc => "mexc",
        }
    }
}

/// Every class of data edgesync stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DataClass {
    // Cache classes (expire).
    Default,
    Ticker,
    Ohlcv,
    Deals,
    Orderbook,
    Price,
    // Permanent classes (never expire).
    Account,
    Position,
    PriceLatest,
    PriceHistory,
    Cost,
    Raw,
    SyncStatus,
    Orders,
}

impl DataClass {
    pub const ALL: [DataClass; 14] = [
        DataClass::Default,
        DataClass::Ticker,
        DataClass::Ohlcv,
        DataClass::Deals,
        DataClass::Orderbook,
        DataClass::Price,
        DataClass::Account,
        DataClass::Position,
        DataClass::PriceLatest,
        DataClass::PriceHistory,
        DataClass::Cost,
        DataClass::Raw,
        DataClass::SyncStatus,
        DataClass::Orders,
    ];

    /// Cache classes expire and may be discarded; everything else is permanent data.
    pub fn is_permanent(self) -> bool {
        !matches!(
            self,
            DataClass::Default
                | DataClass::Ticker
                | DataClass::Ohlcv
                | DataClass::Deals
                | DataClass::Orderbook
                | DataClass::Price
        )
    }

    /// The class's name in stats and logs.
    pub fn name(self) -> &'static str {
        match self {
            DataClass::Default => "default",
            DataClass::Ticker => "ticker",
            DataClass::Ohlcv => "ohlcv",
            DataClass::Deals => "deals",
            DataClass::Orderbook => "orderbook",
            DataClass::Price => "price",
            DataClass::Account => "account",
            DataClass::Position => "position",
            DataClass::PriceLatest => "price_latest",
            DataClass::PriceHistory => "price_history",
            DataClass::Cost => "cost",
            DataClass::Raw => "raw",
            DataClass::SyncStatus => "sync_status",
            DataClass::Orders => "orders",
        }
    }
}
