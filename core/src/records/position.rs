//! The position hash `P:position:{account}:{exchange}:{symbol}:spot`: the balance task's
//! holding ([`SpotHolding`]) and the cost task's average cost ([`PositionCost`]) — two
//! writers, disjoint fields, one hash (`HSET` merges them).

use std::collections::BTreeMap;
use std::str::FromStr;

use rust_decimal::Decimal;

/// The balance task's fields: the base and quote assets' free and locked amounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpotHolding {
    pub symbol: String,
    pub base_asset: String,
    pub quote_asset: String,
    pub base_free: Decimal,
    pub base_locked: Decimal,
    pub quote_free: Decimal,
    pub quote_locked: Decimal,
    /// When the account was fetched, ms since the epoch.
    pub updated_at: i64,
}

/// The cost task's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PositionCost {
    /// `""` when nothing is held at a known cost.
    pub avg_cost: Option<Decimal>,
    pub cost_updated_at: i64,
}

fn field<'a>(fields: &'a BTreeMap<String, String>, name: &str) -> Result<&'a str, String> {
    fields.get(name).map(String::as_str).ok_or_else(|| format!("field `{name}` is missing"))
}

fn decimal(fields: &BTreeMap<String, String>, name: &str) -> Result<Decimal, String> {
    let text = field(fields, name)?;
    Decimal::from_str(text).map_err(|_| format!("field `{name}` is `{text}`, not a decimal"))
}

fn millis(fields: &BTreeMap<String, String>, name: &str) -> Result<i64, String> {
    let text = field(fields, name)?;
    text.parse().map_err(|_| format!("field `{name}` is `{text}`, not milliseconds"))
}

impl SpotHolding {
    /// The hash fields, as written (amounts as MEXC spelled them).
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("symbol", self.symbol.clone()),
            ("base_asset", self.base_asset.clone()),
            ("quote_asset", self.quote_asset.clone()),
            ("base_free", self.base_free.to_string()),
            ("base_locked", self.base_locked.to_string()),
            ("quote_free", self.quote_free.to_string()),
            ("quote_locked", self.quote_locked.to_string()),
            ("updated_at", self.updated_at.to_string()),
        ]
    }

    pub fn from_fields(fields: &BTreeMap<String, String>) -> Result<Self, String> {
        Ok(Self {
            symbol: field(fields, "symbol")?.to_owned(),
            base_asset: field(fields, "base_asset")?.to_owned(),
            quote_asset: field(fields, "quote_asset")?.to_owned(),
            base_free: decimal(fields, "base_free")?,
            base_locked: decimal(fields, "base_locked")?,
            quote_free: decimal(fields, "quote_free")?,
            quote_locked: decimal(fields, "quote_locked")?,
            updated_at: millis(fields, "updated_at")?,
        })
    }
}

impl PositionCost {
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("avg_cost", self.avg_cost.map(|d| d.normalize().to_string()).unwrap_or_default()),
            ("cost_updated_at", self.cost_updated_at.to_string()),
        ]
    }

    pub fn from_fields(fields: &BTreeMap<String, String>) -> Result<Self, String> {
        let avg_cost = match field(fields, "avg_cost")? {
            "" => None,
            _ => Some(decimal(fields, "avg_cost")?),
        };
        Ok(Self { avg_cost, cost_updated_at: millis(fields, "cost_updated_at")? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(fields: Vec<(&'static str, String)>) -> BTreeMap<String, String> {
        fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    #[test]
    fn round_trip_and_write_these_fields() {
        let holding = SpotHolding {
            symbol: "QRLUSDT".into(),
            base_asset: "QRL".into(),
            quote_asset: "USDT".into(),
            base_free: Decimal::from_str("140.50").unwrap(),
            base_locked: Decimal::ZERO,
            quote_free: Decimal::from_str("5").unwrap(),
            quote_locked: Decimal::ZERO,
            updated_at: 1_700_000_000_000,
        };
        let fields = map(holding.fields());
        assert_eq!((fields["base_free"].as_str(), fields["base_locked"].as_str()), ("140.50", "0"));
        assert_eq!(SpotHolding::from_fields(&fields).unwrap(), holding);
        let cost = PositionCost { avg_cost: None, cost_updated_at: 5 };
        let fields = map(cost.fields());
        assert_eq!(fields["avg_cost"], "");
        assert_eq!(PositionCost::from_fields(&fields).unwrap(), cost);
        assert!(SpotHolding::from_fields(&BTreeMap::new()).unwrap_err().contains("symbol"));
    }
}
