//! Everything edgesync stores, as types: what the writers write and what the readers demand.
//!
//! - Written records: [`account::AccountRecord`], [`raw::RawRecord`], [`cost::CostRecord`]
//!   (JSON strings), [`position::SpotHolding`] and [`position::PositionCost`] (the position
//!   hash), [`status::RunFields`] and [`status::TaskStatus`] (the status hash),
//!   [`price::PriceRecord`]. Each pins the exact JSON or fields it writes.
//! - Read checks: a [`Record`] is decoded on every read through the tiers; a value that is
//!   not its shape is *unreadable*, which for a permanent class means "answer an error naming
//!   the key, leave the value alone" and for a cache class "discard it" (see `store::tiered`).
//!   The documents below are served verbatim, so they keep the whole stored JSON and check
//!   only the fields edgesync's readers rely on.
//! - [`decimal`]: exact decimals as text in records.

pub mod account;
pub mod cost;
pub mod decimal;
pub mod position;
pub mod price;
pub mod raw;
pub mod status;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A stored JSON value with a shape a reader can state in one phrase.
pub trait Record: DeserializeOwned {
    /// What the value must be, for error messages: "a JSON object with …".
    const EXPECTED: &'static str;
}

/// Any JSON value (cached exchange responses, served as they came).
impl Record for Value {
    const EXPECTED: &'static str = "a JSON document";
}

/// A field a document must have, and the test its value must pass.
type RequiredField<'a> = (&'a str, fn(&Value) -> bool);

fn require_object(value: &Value, fields: &[RequiredField<'_>]) -> Result<(), String> {
    let object = value.as_object().ok_or("it is not a JSON object")?;
    for (name, valid) in fields {
        match object.get(*name) {
            None => return Err(format!("field `{name}` is missing")),
            Some(field) if !valid(field) => return Err(format!("field `{name}` has the wrong type")),
            Some(_) => {}
        }
    }
    Ok(())
}

fn require_array(value: &Value) -> Result<(), String> {
    value.is_array().then_some(()).ok_or_else(|| "it is not a JSON array".to_owned())
}

macro_rules! document {
    ($(#[$doc:meta])* $name:ident, $expected:literal, [$(($field:literal, $check:expr)),* $(,)?]) => {
        document!($(#[$doc])* $name, $expected, |value: &Value| require_object(value, &[$(($field, $check)),*]));
    };
    ($(#[$doc:meta])* $name:ident, $expected:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(try_from = "Value")]
        pub struct $name(pub Value);

        impl TryFrom<Value> for $name {
            type Error = String;
            fn try_from(value: Value) -> Result<Self, String> {
                let check: fn(&Value) -> Result<(), String> = $check;
                check(&value)?;
                Ok(Self(value))
            }
        }

        impl From<$name> for Value {
            fn from(document: $name) -> Value {
                document.0
            }
        }

        impl Record for $name {
            const EXPECTED: &'static str = $expected;
        }
    };
}

document!(
    /// `P:account:…`: `{fetched_at, account: {…MEXC's account…}, …}`.
    AccountDocument,
    "a JSON object with `fetched_at` (ms) and `account` (MEXC's account object)",
    [("fetched_at", Value::is_i64), ("account", Value::is_object)]
);

document!(
    /// `P:cost:…`: the cost record (`symbol`, `avg_cost`, P&L fields as decimal strings).
    CostDocument,
    "a JSON cost record with `symbol` and `computed_at` (ms)",
    [("symbol", Value::is_string), ("computed_at", Value::is_i64)]
);

document!(
    /// `P:raw:…:latest` and members of `…:history`: `{fetched_at, endpoint, response, …}`.
    RawDocument,
    "a JSON raw-response record with `fetched_at` (ms), `endpoint` and `response`",
    [("fetched_at", Value::is_i64), ("endpoint", Value::is_string), ("response", |_: &Value| true)]
);

document!(
    /// A cached 24 h ticker, as MEXC sent it.
    TickerDocument,
    "MEXC's 24 h ticker object (with `symbol`)",
    [("symbol", Value::is_string)]
);

document!(
    /// Cached klines or recent trades, as MEXC sent them.
    RowsDocument,
    "MEXC's JSON array of klines or trades",
    require_array
);

document!(
    /// A cached order book, as MEXC sent it.
    OrderBookDocument,
    "MEXC's order book object (with `bids` and `asks` arrays)",
    [("bids", Value::is_array), ("asks", Value::is_array)]
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_check_the_fields_readers_use() {
        let good: RawDocument =
            serde_json::from_str(r#"{"fetched_at":1,"endpoint":"account_info","response":{},"extra":1}"#).unwrap();
        assert_eq!(good.0["extra"], 1, "kept whole");
        let legacy = r#"{"response":{},"timestamp":1700000000000,"datetime":"2023-11-14T22:13:20"}"#;
        let error = serde_json::from_str::<RawDocument>(legacy).unwrap_err().to_string();
        assert!(error.contains("fetched_at"), "{error}");
        assert!(serde_json::from_str::<AccountDocument>(r#"{"fetched_at":"1","account":{}}"#).is_err());
        assert!(serde_json::from_str::<CostDocument>("[1]").is_err());
        assert!(serde_json::from_str::<RowsDocument>("[]").is_ok());
        assert!(serde_json::from_str::<RowsDocument>(r#""<script>""#).is_err());
        assert!(serde_json::from_str::<OrderBookDocument>(r#"{"bids":[],"asks":{}}"#).is_err());
    }
}
