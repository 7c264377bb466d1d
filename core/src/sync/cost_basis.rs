//! Average-cost accounting over a stream of fills, in exact decimals. Pure: no I/O, so the
//! arithmetic is tested on its own and the cost task only feeds it trades.
//!
//! Rules, per fill of quantity `q` for quote amount `Q` with commission `c`:
//! - **buy**: fee in the base asset → `q - c` arrives, cost `Q`; fee in the quote asset →
//!   `q` arrives, cost `Q + c`; fee in a third asset → `q` at cost `Q`, fee kept aside (it has
//!   no price here and is never silently counted as zero-cost or zero-value).
//! - **sell**: fee in the base asset → `q + c` leaves, proceeds `Q`; fee in the quote asset →
//!   `q` leaves, proceeds `Q - c`. The quantity leaving is matched against known holdings at
//!   the average cost; realized P&L is proceeds minus matched cost. A sell larger than the
//!   known holdings sold older coins of unknown cost: valued at the operator's opening cost
//!   when configured, otherwise counted as `unmatched_sell_qty` and left out of P&L.
//!
//! **Exactness.** Sums of fills are exact. A quantity's share of an amount (the cost of the
//! coins a sell matches, a part of the proceeds) needs a division, which rarely terminates:
//! it is rounded once, to [`MONEY_DP`] decimals, and the rounded amount is *moved* — the same
//! value leaves the cost and enters the realized P&L — so every later sum stays exact and
//! realized + unrealized P&L equals proceeds + value − invested to the last digit (a division
//! at 28 digits followed by a subtraction used to round again: 2.705 came out as
//! 2.7049999999999999999999999998).

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::exchange::model::Trade;

/// Decimals of every amount that comes from a division (allocated costs, averages): finer
/// than any exchange's quote precision (MEXC's is at most 10 decimals), and fixed, so sums of
/// such amounts stay exact within a `Decimal`'s 28 digits.
pub const MONEY_DP: u32 = 12;

/// `amount × part / whole`, rounded once to [`MONEY_DP`] decimals (`whole` is non-zero).
pub fn share(amount: Decimal, part: Decimal, whole: Decimal) -> Decimal {
    (amount * part / whole).round_dp(MONEY_DP)
}

/// The running state of one symbol over the fills applied so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CostBasis {
    /// Base quantity bought (net of base fees) and not yet sold, with known cost.
    #[serde(with = "rust_decimal::serde::str")]
    pub qty: Decimal,
    /// Total cost of `qty`, in the quote asset.
    #[serde(with = "rust_decimal::serde::str")]
    pub cost: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub realized_pnl: Decimal,
    /// Everything ever spent buying (quote, incl. quote fees): the ROI denominator.
    #[serde(with = "rust_decimal::serde::str")]
    pub invested: Decimal,
    /// Sold quantity that exceeded known holdings and had no opening cost.
    #[serde(with = "rust_decimal::serde::str")]
    pub unmatched_sell_qty: Decimal,
    /// Commissions paid in assets that are neither base nor quote.
    #[serde(with = "crate::records::decimal::map")]
    pub other_fees: BTreeMap<String, Decimal>,
    /// The newest fill applied, and the ids of the fills applied at that millisecond.
    pub last_trade_ms: Option<i64>,
    pub last_trade_ids: Vec<String>,
    pub trades_applied: u64,
}

impl CostBasis {
    /// Average cost of the known holdings; `None` with nothing held.
    pub fn avg_cost(&self) -> Option<Decimal> {
        (!self.qty.is_zero()).then(|| (self.cost / self.qty).round_dp(MONEY_DP).normalize())
    }

    /// Applies one fill. `opening_cost` values sold coins of unknown cost.
    pub fn apply(
        &mut self,
        trade: &Trade,
        base: &str,
        quote: &str,
        opening_cost: Option<Decimal>,
    ) -> Result<(), String> {
        let field =
            |value: Option<Decimal>, name: &str| value.ok_or_else(|| format!("trade {} has no {name}", trade.id));
        let q = field(trade.qty, "qty")?;
        let big_q = match trade.quote_qty {
            Some(quote_qty) => quote_qty,
            None => field(trade.price, "price")? * q,
        };
        let c = trade.commission.unwrap_or_default();
        let fee_asset = trade.commission_asset.as_deref().unwrap_or(quote);
        if !c.is_zero() && fee_asset != base && fee_asset != quote {
            *self.other_fees.entry(fee_asset.to_owned()).or_insert(Decimal::ZERO) += c;
        }
        if trade.is_buyer {
            let (arrives, cost) = match fee_asset {
                f if f == base => (q - c, big_q),
                f if f == quote => (q, big_q + c),
                _ => (q, big_q),
            };
            self.qty += arrives;
            self.cost += cost;
            self.invested += cost;
        } else {
            let (leaves, proceeds) = match fee_asset {
                f if f == base => (q + c, big_q),
                f if f == quote => (q, big_q - c),
                _ => (q, big_q),
            };
            let matched = leaves.min(self.qty);
            let excess = leaves - matched;
            if !matched.is_zero() {
                let matched_cost = if matched == self.qty { self.cost } else { share(self.cost, matched, self.qty) };
                let matched_proceeds = if matched == leaves { proceeds } else { share(proceeds, matched, leaves) };
                self.realized_pnl += matched_proceeds - matched_cost;
                self.cost -= matched_cost;
                self.qty -= matched;
            }
            if !excess.is_zero() {
                match opening_cost {
                    Some(opening) => self.realized_pnl += share(proceeds, excess, leaves) - opening * excess,
                    None => self.unmatched_sell_qty += excess,
                }
            }
        }
        if self.last_trade_ms == Some(trade.time) {
            self.last_trade_ids.push(trade.id.clone());
        } else {
            self.last_trade_ms = Some(trade.time);
            self.last_trade_ids = vec![trade.id.clone()];
        }
        self.trades_applied += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trade(id: &str, time: i64, buy: bool, qty: &str, quote_qty: &str, fee: &str, fee_asset: &str) -> Trade {
        Trade {
            id: id.into(),
            price: None,
            qty: Some(qty.parse().unwrap()),
            quote_qty: Some(quote_qty.parse().unwrap()),
            commission: Some(fee.parse().unwrap()),
            commission_asset: Some(fee_asset.into()),
            time,
            is_buyer: buy,
        }
    }

    fn d(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    #[test]
    fn average_cost_with_fees_in_both_assets() {
        let mut basis = CostBasis::default();
        // Buy 100 QRL for 10 USDT, fee 0.1 QRL: 99.9 QRL at 10 USDT.
        basis.apply(&trade("a", 1, true, "100", "10", "0.1", "QRL"), "QRL", "USDT", None).unwrap();
        // Buy 100.1 QRL for 12 USDT, fee 0.012 USDT: 100.1 QRL at 12.012 USDT.
        basis.apply(&trade("b", 2, true, "100.1", "12", "0.012", "USDT"), "QRL", "USDT", None).unwrap();
        assert_eq!((basis.qty, basis.cost), (d("200.0"), d("22.012")));
        assert_eq!(basis.avg_cost(), Some(d("0.11006")));
        // Sell 50 QRL for 7 USDT, fee 0.007 USDT: proceeds 6.993, cost 50 * 0.11006 = 5.503.
        basis.apply(&trade("c", 3, false, "50", "7", "0.007", "USDT"), "QRL", "USDT", None).unwrap();
        assert_eq!(basis.realized_pnl, d("1.490"));
        assert_eq!((basis.qty, basis.cost), (d("150.0"), d("16.509")));
        assert_eq!(basis.invested, d("22.012"));
        assert_eq!(basis.avg_cost(), Some(d("0.11006")));
    }

    #[test]
    fn sells_beyond_known_holdings_are_never_priced_at_zero() {
        let mut basis = CostBasis::default();
        basis.apply(&trade("a", 1, true, "10", "1", "0", "USDT"), "QRL", "USDT", None).unwrap();
        basis.apply(&trade("b", 2, false, "30", "6", "0", "USDT"), "QRL", "USDT", None).unwrap();
        assert_eq!(basis.unmatched_sell_qty, d("20"));
        assert_eq!(basis.realized_pnl, d("1"), "only the matched 10 QRL: 2 - 1");

        let mut with_opening = CostBasis::default();
        with_opening.apply(&trade("b", 2, false, "30", "6", "0", "USDT"), "QRL", "USDT", Some(d("0.1"))).unwrap();
        assert_eq!(with_opening.realized_pnl, d("3"), "6 - 30 * 0.1");
    }

    #[test]
    fn third_asset_fees_are_kept_aside_and_the_last_millisecond_is_remembered() {
        let mut basis = CostBasis::default();
        basis.apply(&trade("x", 5, true, "1", "2", "0.5", "MX"), "QRL", "USDT", None).unwrap();
        basis.apply(&trade("y", 5, true, "1", "2", "0.25", "MX"), "QRL", "USDT", None).unwrap();
        assert_eq!(basis.other_fees["MX"].normalize().to_string(), "0.75");
        assert_eq!(basis.last_trade_ids, vec!["x".to_owned(), "y".to_owned()]);
    }
}
