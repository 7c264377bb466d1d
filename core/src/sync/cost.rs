//! The cost task (seed 001's cost / P&L): per configured symbol, the account's fills from
//! `/api/v3/myTrades` are read incrementally — by time, because MEXC's trade ids are strings
//! and cannot page — from the newest fill already applied (or the start of MEXC's one-month
//! window), in pages of at most 100, and folded into the average-cost state kept in the cost
//! record. With the latest synced price and the synced account balance it reports:
//! quantity, average cost, value, unrealized P&L (absolute and %), realized P&L, total P&L
//! and ROI %.
//!
//! Holdings older than the trade window have no known cost: they are reported as
//! `unknown_cost_qty`, never priced at zero — unless the operator sets an opening average
//! cost (`OPENING_COSTS`), which then values them. Percentages are rounded to 8 decimals;
//! everything else is exact.
//!
//! Unlike the other tasks this one must read before it writes (its previous state, the
//! synced account and price): one read pipeline, then the usual single write pipeline.

use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{json, Value};

use super::balance::SPOT_SIDE;
use super::cost_basis::CostBasis;
use super::price::PriceRecord;
use super::{raw, SyncError};
use crate::codec::{decode_json, iso8601_ms};
use crate::config::split_symbol;
use crate::exchange::MexcClient;
use crate::keys::{Exchange, Segment};
use crate::store::{Command, Reply};
use crate::App;

/// MEXC keeps one month of fills; start a minute inside it.
const TRADE_WINDOW_MS: i64 = 30 * 24 * 3600 * 1000 - 60_000;
const PAGE_SIZE: u32 = 100;

/// The part of a stored cost record the next run needs.
#[derive(Deserialize)]
struct StoredState {
    basis: CostBasis,
}

#[derive(Deserialize)]
struct StoredAccount {
    account: crate::exchange::model::Account,
}

fn percent(numerator: Decimal, denominator: Decimal) -> Option<Decimal> {
    (denominator > Decimal::ZERO).then(|| (numerator / denominator * Decimal::ONE_HUNDRED).round_dp(8).normalize())
}

fn text(value: Option<Decimal>) -> Value {
    value.map_or(Value::Null, |v| Value::String(v.normalize().to_string()))
}

pub async fn run(app: &App<'_>, exchange: &MexcClient<'_>) -> Result<Vec<Command>, SyncError> {
    let keys = &app.config.keys;
    let account_id = &app.config.account_id;
    let symbols = &app.config.symbols;

    // One read: every symbol's previous state and latest price, and the synced account.
    let mut reads: Vec<Command> = symbols
        .iter()
        .flat_map(|s| {
            [
                Command::new("GET").arg(keys.cost(Exchange::Mexc, account_id, s)),
                Command::new("GET").arg(keys.price_latest(Exchange::Mexc, s)),
            ]
        })
        .collect();
    let account_key = keys.account(Exchange::Mexc, account_id);
    reads.push(Command::new("GET").arg(&account_key));
    let replies = app.store.backing_store().pipeline(&reads).await?;
    let text_of = |reply: &Result<Reply, _>| match reply {
        Ok(Reply::Bulk(bytes)) => Some(bytes.clone()),
        _ => None,
    };
    let account = replies
        .last()
        .and_then(text_of)
        .and_then(|bytes| decode_json::<StoredAccount>(&account_key, &bytes).ok())
        .map(|stored| stored.account);

    let now = app.clock.now_ms();
    let mut commands = Vec::new();
    for (index, symbol) in symbols.iter().enumerate() {
        let cost_key = keys.cost(Exchange::Mexc, account_id, symbol);
        let mut basis = text_of(&replies[index * 2])
            .and_then(|bytes| decode_json::<StoredState>(&cost_key, &bytes).ok())
            .map(|stored| stored.basis)
            .unwrap_or_default();
        let price = text_of(&replies[index * 2 + 1])
            .and_then(|bytes| decode_json::<PriceRecord>("price", &bytes).ok())
            .map(|record| record.price);
        let (base, quote) = split_symbol(symbol.as_str(), &app.config.sync.quote_assets)
            .ok_or_else(|| SyncError::Incomplete(format!("cannot split {symbol} into base and quote")))?;
        let opening_cost = app.config.sync.opening_costs.get(symbol.as_str()).copied();

        let window_start = now - TRADE_WINDOW_MS;
        let mut start = basis.last_trade_ms.unwrap_or(window_start).max(window_start);
        for _ in 0..app.config.sync.max_trade_pages {
            let page = exchange.my_trades(symbol, start, PAGE_SIZE).await?;
            commands.extend(raw::writes(
                app,
                &page,
                Some(symbol),
                json!({ "task": "cost", "symbol": symbol.as_str(), "startTime": start }),
            )?);
            let mut fills = page.value.clone();
            fills.sort_by_key(|t| t.time);
            for fill in &fills {
                if !basis.has_seen(fill) {
                    basis.apply(fill, base, quote, opening_cost).map_err(SyncError::Incomplete)?;
                }
            }
            match fills.last() {
                Some(last) if fills.len() as u32 >= PAGE_SIZE => start = last.time,
                _ => break,
            }
        }

        let record = report(symbol, base, quote, &basis, account.as_ref(), price, opening_cost, now);
        commands.push(Command::set(&cost_key, record.to_string().as_bytes(), None));
        let side = Segment::new("side", SPOT_SIDE).expect("a valid constant");
        commands.push(Command::hset(
            &keys.position(account_id, Exchange::Mexc, symbol, &side),
            &[
                ("avg_cost", record["avg_cost"].as_str().unwrap_or_default().to_owned()),
                ("cost_updated_at", now.to_string()),
            ],
        ));
    }
    Ok(commands)
}

/// The stored cost record.
#[allow(clippy::too_many_arguments)]
fn report(
    symbol: &Segment,
    base: &str,
    quote: &str,
    basis: &CostBasis,
    account: Option<&crate::exchange::model::Account>,
    price: Option<Decimal>,
    opening_cost: Option<Decimal>,
    now: i64,
) -> Value {
    let holdings = account.map(|a| {
        let (free, locked) = a.holding(base);
        free + locked
    });
    let beyond_history = holdings.map_or(Decimal::ZERO, |h| (h - basis.qty).max(Decimal::ZERO));
    let (priced_qty, cost_basis, invested, unknown_cost_qty) = match opening_cost {
        Some(opening) => {
            let opening_value = beyond_history * opening;
            (basis.qty + beyond_history, basis.cost + opening_value, basis.invested + opening_value, Decimal::ZERO)
        }
        None => (basis.qty, basis.cost, basis.invested, beyond_history),
    };
    let avg_cost = (!priced_qty.is_zero()).then(|| (cost_basis / priced_qty).normalize());
    let value = price.map(|p| holdings.unwrap_or(priced_qty) * p);
    let unrealized = price.map(|p| priced_qty * p - cost_basis);
    let total = unrealized.map(|u| u + basis.realized_pnl);
    json!({
        "symbol": symbol.as_str(),
        "base_asset": base,
        "quote_asset": quote,
        "holdings": text(holdings),
        "qty": text(Some(priced_qty)),
        "unknown_cost_qty": text(Some(unknown_cost_qty)),
        "opening_avg_cost": text(opening_cost),
        "avg_cost": text(avg_cost),
        "cost_basis": text(Some(cost_basis)),
        "price": text(price),
        "value": text(value),
        "unrealized_pnl": text(unrealized),
        "unrealized_pnl_pct": text(unrealized.and_then(|u| percent(u, cost_basis))),
        "realized_pnl": text(Some(basis.realized_pnl)),
        "total_pnl": text(total),
        "roi_pct": text(total.and_then(|t| percent(t, invested))),
        "invested": text(Some(invested)),
        "unmatched_sell_qty": text(Some(basis.unmatched_sell_qty)),
        "other_fees": basis.other_fees,
        "last_trade": basis.last_trade_ms.map(|ms| json!({ "time": ms, "time_iso": iso8601_ms(ms), "ids": basis.last_trade_ids })),
        "computed_at": now,
        "computed_at_iso": iso8601_ms(now),
        "basis": basis,
    })
}
