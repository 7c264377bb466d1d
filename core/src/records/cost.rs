//! [`CostRecord`]: `P:cost:{exchange}:{account}:{symbol}` — average cost and P&L over MEXC's
//! trade window, every amount an exact decimal written as text (`null` when it cannot be
//! known, e.g. a value without a price). Fields are in key order, so the stored JSON is the
//! same whichever way it was built.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::decimal;

/// The window of fills the record covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CostWindow {
    pub fills: u64,
    pub start: i64,
    pub start_iso: String,
}

/// The newest fill applied, and the ids of the fills at that millisecond.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastTrade {
    pub ids: Vec<String>,
    pub time: i64,
    pub time_iso: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CostRecord {
    #[serde(with = "decimal::optional")]
    pub avg_cost: Option<Decimal>,
    pub base_asset: String,
    pub computed_at: i64,
    pub computed_at_iso: String,
    #[serde(with = "decimal::required")]
    pub cost_basis: Decimal,
    #[serde(with = "decimal::required")]
    pub holdings: Decimal,
    #[serde(with = "decimal::required")]
    pub invested: Decimal,
    pub last_trade: Option<LastTrade>,
    #[serde(with = "decimal::required")]
    pub left_without_trade_qty: Decimal,
    #[serde(with = "decimal::optional")]
    pub opening_avg_cost: Option<Decimal>,
    #[serde(with = "decimal::map")]
    pub other_fees: BTreeMap<String, Decimal>,
    #[serde(with = "decimal::optional")]
    pub price: Option<Decimal>,
    #[serde(with = "decimal::required")]
    pub qty: Decimal,
    pub quote_asset: String,
    #[serde(with = "decimal::required")]
    pub realized_pnl: Decimal,
    #[serde(with = "decimal::optional")]
    pub roi_pct: Option<Decimal>,
    pub symbol: String,
    #[serde(with = "decimal::optional")]
    pub total_pnl: Option<Decimal>,
    #[serde(with = "decimal::required")]
    pub unknown_cost_qty: Decimal,
    #[serde(with = "decimal::required")]
    pub unmatched_sell_qty: Decimal,
    #[serde(with = "decimal::optional")]
    pub unrealized_pnl: Option<Decimal>,
    #[serde(with = "decimal::optional")]
    pub unrealized_pnl_pct: Option<Decimal>,
    #[serde(with = "decimal::optional")]
    pub value: Option<Decimal>,
    pub window: CostWindow,
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[test]
    fn round_trips_and_writes_this_json() {
        let d = |s: &str| Decimal::from_str(s).unwrap();
        let record = CostRecord {
            avg_cost: Some(d("0.1250")),
            base_asset: "QRL".into(),
            computed_at: 1_700_000_000_000,
            computed_at_iso: "2023-11-14T22:13:20.000Z".into(),
            cost_basis: d("12.5"),
            holdings: d("100"),
            invested: d("12.5"),
            last_trade: Some(LastTrade { ids: vec!["7".into()], time: 1_699_999_000_000, time_iso: "x".into() }),
            left_without_trade_qty: d("0"),
            opening_avg_cost: None,
            other_fees: BTreeMap::from([("MX".to_owned(), d("0.750"))]),
            price: None,
            qty: d("100"),
            quote_asset: "USDT".into(),
            realized_pnl: d("0"),
            roi_pct: None,
            symbol: "QRLUSDT".into(),
            total_pnl: None,
            unknown_cost_qty: d("0"),
            unmatched_sell_qty: d("0"),
            unrealized_pnl: None,
            unrealized_pnl_pct: None,
            value: None,
            window: CostWindow { fills: 1, start: 1, start_iso: "y".into() },
        };
        let text = serde_json::to_string(&record).unwrap();
        assert_eq!(
            text,
            concat!(
                r#"{"avg_cost":"0.125","base_asset":"QRL","computed_at":1700000000000,"computed_at_iso":"2023-11-14T22:13:20.000Z","#,
                r#""cost_basis":"12.5","holdings":"100","invested":"12.5","last_trade":{"ids":["7"],"time":1699999000000,"time_iso":"x"},"#,
                r#""left_without_trade_qty":"0","opening_avg_cost":null,"other_fees":{"MX":"0.75"},"price":null,"qty":"100","#,
                r#""quote_asset":"USDT","realized_pnl":"0","roi_pct":null,"symbol":"QRLUSDT","total_pnl":null,"#,
                r#""unknown_cost_qty":"0","unmatched_sell_qty":"0","unrealized_pnl":null,"unrealized_pnl_pct":null,"#,
                r#""value":null,"window":{"fills":1,"start":1,"start_iso":"y"}}"#
            )
        );
        let back: CostRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(back.avg_cost.map(|d| d.normalize()), Some(d("0.125")));
        assert_eq!(serde_json::to_string(&back).unwrap(), text, "reads back to the same JSON");
    }
}
