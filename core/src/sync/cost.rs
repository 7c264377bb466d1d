//! The cost task (average cost and P&L): per configured symbol, every fill in MEXC's
//! one-month `/api/v3/myTrades` window is read — by time, because MEXC's trade ids are
//! strings and cannot page: from the window's start, pages of at most 100, each next page
//! starting at the last fill's millisecond (fills seen twice at that boundary are dropped by
//! id) — and folded into an average-cost basis. With the account's holdings and the ticker's
//! last price it reports: quantity, average cost, value, unrealized P&L (absolute and %),
//! realized P&L, total P&L and ROI %.
//!
//! The record is recomputed from the window on every run rather than carried forward, so the
//! task reads nothing from Redis: its one Redis request is its write, it never builds on a
//! record a failed or concurrent run left behind, and re-running it is idempotent. What the
//! window cannot explain — holdings bought before it — has no known cost: it is reported as
//! `unknown_cost_qty`, never priced at zero, unless the operator sets an opening average cost
//! (`OPENING_COSTS`), which then values it. P&L is therefore over the window (`window` in the
//! record says which). Percentages are rounded to 8 decimals, averages and allocated costs to
//! `MONEY_DP` (12) once; sums — P&L, value — are exact (see `cost_basis`).
//!
//! The account and tickers come from the invocation's [`Snapshot`], shared with the balance
//! and price tasks, so they cost no extra subrequest when those tasks run in the same cron.

use std::collections::HashSet;

use futures_util::future::{try_join, try_join_all};
use rust_decimal::Decimal;
use serde_json::json;

use super::balance::SPOT_SIDE;
use super::cost_basis::{share, CostBasis, MONEY_DP};
use super::settings::split_symbol;
use super::snapshot::Snapshot;
use super::{raw, SyncError};
use crate::codec::{encode_json, iso8601_ms};
use crate::exchange::model::Trade;
use crate::keys::{Exchange, Segment};
use crate::records::cost::{CostRecord, CostWindow, LastTrade};
use crate::records::position::PositionCost;
use crate::store::Command;
use crate::App;

/// MEXC keeps one month of fills; start a minute inside it.
pub const TRADE_WINDOW_MS: i64 = 30 * 24 * 3600 * 1000 - 60_000;
/// MEXC's largest `myTrades` page.
pub const PAGE_SIZE: u32 = 100;

fn percent(numerator: Decimal, denominator: Decimal) -> Option<Decimal> {
    (denominator > Decimal::ZERO).then(|| (numerator / denominator * Decimal::ONE_HUNDRED).round_dp(8).normalize())
}

/// One symbol's inputs: its fills in the window (oldest first), last price, and the writes
/// that store the raw responses read for it.
struct SymbolInputs {
    fills: Vec<Trade>,
    price: Option<Decimal>,
    raw_writes: Vec<Command>,
}

pub async fn run(app: &App<'_>, snapshot: &Snapshot<'_>) -> Result<Vec<Command>, SyncError> {
    let keys = &app.config.keys;
    let account_id = &app.config.account_id;
    let now = app.clock.now_ms();
    let window_start = now - TRADE_WINDOW_MS;

    let (account, inputs) = try_join(
        async { snapshot.account().await.map_err(SyncError::from) },
        try_join_all(app.config.symbols.iter().map(|symbol| symbol_inputs(app, snapshot, symbol, window_start))),
    )
    .await?;

    let mut commands = Vec::new();
    if account.owner {
        commands.extend(raw::writes(app, &account.fetched, None, json!({ "task": "cost" }))?);
    }
    for (symbol, inputs) in app.config.symbols.iter().zip(inputs) {
        let (base, quote) = split_symbol(symbol.as_str(), &app.config.sync.quote_assets)
            .ok_or_else(|| SyncError::Incomplete(format!("cannot split {symbol} into base and quote")))?;
        let opening_cost = app.config.sync.opening_costs.get(symbol.as_str()).copied();
        let mut basis = CostBasis::default();
        for fill in &inputs.fills {
            basis.apply(fill, base, quote, opening_cost).map_err(SyncError::Incomplete)?;
        }
        let (free, locked) = account.fetched.value.holding(base);
        let record = report(
            Window { symbol, base, quote, start_ms: window_start, now },
            &basis,
            free + locked,
            inputs.price,
            opening_cost,
        );
        commands.extend(inputs.raw_writes);
        commands.push(Command::set(&keys.cost(Exchange::Mexc, account_id, symbol), &encode_json(&record), None));
        let side = Segment::new("side", SPOT_SIDE).expect("a valid constant");
        let position_cost = PositionCost { avg_cost: record.avg_cost, cost_updated_at: now };
        commands
            .push(Command::hset(&keys.position(account_id, Exchange::Mexc, symbol, &side), &position_cost.fields()));
    }
    Ok(commands)
}

/// Reads one symbol's ticker and every fill in the window.
async fn symbol_inputs(
    app: &App<'_>,
    snapshot: &Snapshot<'_>,
    symbol: &Segment,
    window_start: i64,
) -> Result<SymbolInputs, SyncError> {
    let (ticker, (fills, mut raw_writes)) = try_join(
        async { snapshot.ticker_24hr(symbol).await.map_err(SyncError::from) },
        window_fills(app, snapshot, symbol, window_start),
    )
    .await?;
    if ticker.owner {
        let metadata = json!({ "task": "cost", "symbol": symbol.as_str() });
        raw_writes.extend(raw::writes(app, &ticker.fetched, Some(symbol), metadata)?);
    }
    Ok(SymbolInputs { fills, price: ticker.fetched.value.last_price, raw_writes })
}

/// Pages through the window oldest first. A window holding more fills than
/// `MAX_TRADE_PAGES` pages is an error: a basis missing the newest fills would be wrong.
async fn window_fills(
    app: &App<'_>,
    snapshot: &Snapshot<'_>,
    symbol: &Segment,
    window_start: i64,
) -> Result<(Vec<Trade>, Vec<Command>), SyncError> {
    let mut fills: Vec<Trade> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut raw_writes = Vec::new();
    let mut start = window_start;
    for _ in 0..app.config.sync.max_trade_pages {
        let page = snapshot.exchange.my_trades(symbol, start, PAGE_SIZE).await?;
        let metadata = json!({ "task": "cost", "symbol": symbol.as_str(), "startTime": start });
        raw_writes.extend(raw::writes(app, &page, Some(symbol), metadata)?);
        let mut rows = page.value;
        rows.sort_by_key(|t| t.time);
        let full = rows.len() >= PAGE_SIZE as usize;
        let next_start = rows.last().map(|t| t.time);
        fills.extend(rows.into_iter().filter(|t| seen.insert(t.id.clone())));
        match next_start {
            Some(next) if full && next > start => start = next,
            Some(_) if full => {
                return Err(SyncError::Incomplete(format!(
                    "{symbol} has more than {PAGE_SIZE} fills in the millisecond {start}; they cannot be paged by time"
                )))
            }
            _ => return Ok((fills, raw_writes)),
        }
    }
    Err(SyncError::Incomplete(format!(
        "{symbol} has more than {} fills in MEXC's one-month window; raise MAX_TRADE_PAGES (one subrequest per page)",
        app.config.sync.max_trade_pages * PAGE_SIZE
    )))
}

/// What the record is about.
struct Window<'s> {
    symbol: &'s Segment,
    base: &'s str,
    quote: &'s str,
    start_ms: i64,
    now: i64,
}

/// The stored cost record.
fn report(
    window: Window<'_>,
    basis: &CostBasis,
    holdings: Decimal,
    price: Option<Decimal>,
    opening_cost: Option<Decimal>,
) -> CostRecord {
    // Coins held beyond what the window's fills explain were bought before it; coins the
    // fills explain but the account no longer holds left without a trade (a withdrawal or
    // transfer) and leave at the average cost, realizing nothing.
    let before_window = (holdings - basis.qty).max(Decimal::ZERO);
    let left_without_trade = (basis.qty - holdings).max(Decimal::ZERO);
    let (known_qty, known_cost) = if left_without_trade.is_zero() {
        (basis.qty, basis.cost)
    } else {
        (holdings, share(basis.cost, holdings, basis.qty))
    };
    let (priced_qty, cost_basis, invested, unknown_cost_qty) = match opening_cost {
        Some(opening) => {
            let opening_value = before_window * opening;
            (known_qty + before_window, known_cost + opening_value, basis.invested + opening_value, Decimal::ZERO)
        }
        None => (known_qty, known_cost, basis.invested, before_window),
    };
    let avg_cost = (!priced_qty.is_zero()).then(|| (cost_basis / priced_qty).round_dp(MONEY_DP).normalize());
    // Exact sums, shown without trailing zeros.
    let value = price.map(|p| (holdings * p).normalize());
    let unrealized = price.map(|p| (priced_qty * p - cost_basis).normalize());
    let total = unrealized.map(|u| (u + basis.realized_pnl).normalize());
    let (cost_basis, invested) = (cost_basis.normalize(), invested.normalize());
    CostRecord {
        avg_cost,
        base_asset: window.base.to_owned(),
        computed_at: window.now,
        computed_at_iso: iso8601_ms(window.now),
        cost_basis,
        holdings,
        invested,
        last_trade: basis.last_trade_ms.map(|ms| LastTrade {
            ids: basis.last_trade_ids.clone(),
            time: ms,
            time_iso: iso8601_ms(ms),
        }),
        left_without_trade_qty: left_without_trade,
        opening_avg_cost: opening_cost,
        other_fees: basis.other_fees.clone(),
        price,
        qty: priced_qty,
        quote_asset: window.quote.to_owned(),
        realized_pnl: basis.realized_pnl.normalize(),
        roi_pct: total.and_then(|t| percent(t, invested)),
        symbol: window.symbol.to_string(),
        total_pnl: total,
        unknown_cost_qty,
        unmatched_sell_qty: basis.unmatched_sell_qty,
        unrealized_pnl: unrealized,
        unrealized_pnl_pct: unrealized.and_then(|u| percent(u, cost_basis)),
        value,
        window: CostWindow {
            fills: basis.trades_applied,
            start: window.start_ms,
            start_iso: iso8601_ms(window.start_ms),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    use futures_executor::block_on;

    use super::*;
    use crate::exchange::MexcClient;
    use crate::http::{HttpClient, HttpRequest, HttpResponse, TransportError};
    use crate::store::Reply;
    use crate::sync::{run_cron, Task};
    use crate::test_app::{with_app, NOW_MS as NOW};
    use serde_json::Value;

    /// A unit-test double of MEXC's read side: canned account and ticker, and fills filtered
    /// by `startTime` and `limit`, oldest first, as MEXC pages them. Counts calls per path.
    /// (The end-to-end suite runs against the signature-checking stand-in.)
    struct Exchange {
        fills: Vec<Value>,
        calls: RefCell<BTreeMap<String, u32>>,
    }

    #[async_trait::async_trait(?Send)]
    impl HttpClient for Exchange {
        async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
            let (address, query) = request.url.split_once('?').unwrap_or((&request.url, ""));
            let path = &address[address.find("/api/").unwrap()..];
            *self.calls.borrow_mut().entry(path.to_owned()).or_default() += 1;
            let param = |name: &str| {
                form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
            };
            let body = match path {
                "/api/v3/time" => json!({ "serverTime": NOW }),
                "/api/v3/account" => json!({
                    "canTrade": true,
                    "balances": [{ "asset": "QRL", "free": "140", "locked": "10" }, { "asset": "USDT", "free": "5", "locked": "0" }],
                }),
                "/api/v3/ticker/24hr" => json!({ "symbol": param("symbol"), "lastPrice": "0.12", "volume": "1" }),
                "/api/v3/myTrades" => {
                    let start: i64 = param("startTime").unwrap().parse().unwrap();
                    let limit: usize = param("limit").unwrap().parse().unwrap();
                    let mut rows: Vec<&Value> =
                        self.fills.iter().filter(|f| f["time"].as_i64().unwrap() >= start).collect();
                    rows.sort_by_key(|f| f["time"].as_i64());
                    Value::Array(rows.into_iter().take(limit).cloned().collect())
                }
                other => panic!("unexpected call to {other}"),
            };
            Ok(HttpResponse { status: 200, headers: Vec::new(), body: body.to_string().into_bytes() })
        }
    }

    fn fill(id: &str, time: i64, buy: bool, qty: &str, quote_qty: &str) -> Value {
        json!({ "symbol": "QRLUSDT", "id": id, "qty": qty, "quoteQty": quote_qty, "price": "0",
                "commission": "0", "commissionAsset": "USDT", "time": time, "isBuyer": buy })
    }

    /// Runs `cron` (or the cost task alone) against `exchange`; returns the stored cost record
    /// or the task's error, and a reply from the store to `probe`.
    fn run(
        vars: &[(&str, &str)],
        exchange: &Exchange,
        cron: Option<&str>,
        probe: Command,
    ) -> (Result<Value, String>, Reply) {
        let mut all = vec![("MEXC_API_KEY", "key"), ("MEXC_API_SECRET", "secret"), ("QUOTE_ASSETS", "USDT")];
        all.extend_from_slice(vars);
        with_app(&all, exchange, |app| {
            let client = MexcClient::new(app.http, app.clock, &app.config.exchange);
            let snapshot = Snapshot::new(&client);
            block_on(async {
                let reports = match cron {
                    Some(cron) => run_cron(app, cron).await.unwrap(),
                    None => vec![crate::sync::run_task(app, &snapshot, Task::Cost).await],
                };
                let cost = reports.iter().find(|r| r.task == Task::Cost).unwrap();
                let store = app.store.backing_store();
                let record = match &cost.error {
                    Some(error) => Err(error.clone()),
                    None => {
                        let config = app.config;
                        let key = config.keys.cost(crate::keys::Exchange::Mexc, &config.account_id, &config.symbols[0]);
                        let bytes = store.get(&key).await.unwrap().unwrap();
                        Ok(serde_json::from_slice(&bytes).unwrap())
                    }
                };
                (record, store.execute(&probe).await.unwrap())
            })
        })
    }

    fn d(value: &Value) -> Decimal {
        value.as_str().unwrap_or_else(|| panic!("{value} is not a decimal string")).parse().unwrap()
    }

    #[test]
    fn pages_through_the_window_counting_each_fill_once() {
        // 250 buys of 1 QRL for 0.1 USDT, ten per millisecond (so pages end mid-millisecond),
        // and one fill older than the window that MEXC no longer serves.
        let start = NOW - 3_600_000;
        let mut fills: Vec<Value> =
            (0..250).map(|i| fill(&format!("f{i}"), start + i / 10, true, "1", "0.1")).collect();
        fills.push(fill("ancient", NOW - TRADE_WINDOW_MS - 1, true, "1000", "1"));
        let exchange = Exchange { fills, calls: RefCell::default() };
        let record = run(&[], &exchange, None, Command::new("PING")).0.unwrap();
        assert_eq!(record["window"]["fills"], 250);
        // 250 bought, but the account holds 150: 100 left without a trade, at the average cost.
        assert_eq!(d(&record["qty"]), Decimal::from(150));
        assert_eq!(d(&record["left_without_trade_qty"]), Decimal::from(100));
        assert_eq!(d(&record["cost_basis"]), Decimal::from(15));
        assert_eq!(d(&record["avg_cost"]), "0.1".parse().unwrap());
        assert_eq!(d(&record["unknown_cost_qty"]), Decimal::ZERO);
        assert_eq!(d(&record["realized_pnl"]), Decimal::ZERO);
        assert_eq!(exchange.calls.borrow()["/api/v3/myTrades"], 3, "pages start at 0, at f99's ms, at f199's ms");
    }

    #[test]
    fn a_window_beyond_the_page_limit_fails_instead_of_missing_the_newest_fills() {
        let fills = (0..250).map(|i| fill(&format!("f{i}"), NOW - 3_600_000 + i, true, "1", "0.1")).collect();
        let exchange = Exchange { fills, calls: RefCell::default() };
        let exists = Command::new("EXISTS").arg("qrl:v1:cost:mexc:main:QRLUSDT");
        let (record, exists) = run(&[("MAX_TRADE_PAGES", "2")], &exchange, None, exists);
        let error = record.unwrap_err();
        assert!(error.contains("more than 200 fills") && error.contains("MAX_TRADE_PAGES"), "{error}");
        assert_eq!(exists, Reply::Int(0), "a failed run writes no cost record");
    }

    #[test]
    fn holdings_older_than_the_window_have_unknown_cost_unless_an_opening_cost_is_set() {
        // The window explains 100 of the 150 QRL held: bought for 10 USDT.
        let fills = vec![fill("a", NOW - 1000, true, "100", "10")];
        let exchange = Exchange { fills: fills.clone(), calls: RefCell::default() };
        let record = run(&[], &exchange, None, Command::new("PING")).0.unwrap();
        assert_eq!(d(&record["unknown_cost_qty"]), Decimal::from(50));
        assert_eq!(d(&record["qty"]), Decimal::from(100));
        assert_eq!(d(&record["avg_cost"]), "0.1".parse().unwrap(), "unknown coins are not priced at zero");
        assert_eq!(d(&record["value"]), "18".parse().unwrap(), "value covers every coin held: 150 * 0.12");

        // With an opening cost of 0.2: 100 at 10 plus 50 at 0.2 = 20 for 150, avg 0.1333…
        let exchange = Exchange { fills, calls: RefCell::default() };
        let record = run(&[("OPENING_COSTS", "QRLUSDT=0.2")], &exchange, None, Command::new("PING")).0.unwrap();
        assert_eq!(d(&record["unknown_cost_qty"]), Decimal::ZERO);
        assert_eq!(d(&record["qty"]), Decimal::from(150));
        assert_eq!(d(&record["cost_basis"]), Decimal::from(20));
        assert_eq!(d(&record["unrealized_pnl"]), "-2".parse().unwrap(), "150 * 0.12 - 20");
    }

    /// The demo's fills (`tests/src/bin/edgesync-demo.rs`): two buys and a partial sell whose
    /// matched cost does not divide evenly. P&L is exact, and every amount that came from a
    /// division has at most `MONEY_DP` decimals.
    #[test]
    fn profit_and_loss_are_exact_and_divisions_rounded_once() {
        let demo = |id: &str, time: i64, buy: bool, price: &str, qty: &str| {
            let quote = price.parse::<Decimal>().unwrap() * qty.parse::<Decimal>().unwrap();
            serde_json::from_value::<Trade>(json!({
                "symbol": "QRLUSDT", "id": id, "price": price, "qty": qty, "quoteQty": quote.to_string(),
                "commission": "0", "commissionAsset": "USDT", "time": time, "isBuyer": buy,
            }))
            .unwrap()
        };
        let mut basis = CostBasis::default();
        for fill in [
            demo("demo1", 1, true, "0.0140", "1000"),
            demo("demo2", 2, true, "0.0135", "700"),
            demo("demo3", 3, false, "0.0158", "200"),
        ] {
            basis.apply(&fill, "QRL", "USDT", None).unwrap();
        }
        let symbol = Segment::new("symbol", "QRLUSDT").unwrap();
        let window = Window { symbol: &symbol, base: "QRL", quote: "USDT", start_ms: 0, now: NOW };
        let holdings = Decimal::from(1500);
        let record = report(window, &basis, holdings, Some("0.01533".parse().unwrap()), None);
        let record = serde_json::to_value(&record).unwrap();
        // 3.16 of proceeds + 1500 × 0.01533 of value − 23.45 invested.
        assert_eq!(record["total_pnl"], "2.705", "{record}");
        assert_eq!(d(&record["realized_pnl"]) + d(&record["unrealized_pnl"]), d(&record["total_pnl"]));
        assert_eq!(record["avg_cost"], "0.013794117647", "{record}");
        for (field, value) in record.as_object().unwrap() {
            if let Some(decimals) = value.as_str().and_then(|v| v.parse::<Decimal>().ok()).map(|v| v.scale()) {
                let most = if field.ends_with("_pct") { 8 } else { MONEY_DP };
                assert!(decimals <= most, "{field} = {value} has {decimals} decimals");
            }
        }
    }

    #[test]
    fn tasks_of_one_cron_share_the_account_and_ticker_calls() {
        let exchange_with_one_fill =
            || Exchange { fills: vec![fill("a", NOW - 1000, true, "150", "15")], calls: RefCell::default() };
        // Each response is stored raw once, by the task that asked first.
        for endpoint in ["account_info", "ticker_24hr.QRLUSDT"] {
            let history = format!("qrl:v1:raw:mexc:{endpoint}:history");
            let (record, entries) =
                run(&[], &exchange_with_one_fill(), Some("*/3 * * * *"), Command::new("ZCARD").arg(&history));
            assert_eq!(d(&record.unwrap()["avg_cost"]), "0.1".parse().unwrap());
            assert_eq!(entries, Reply::Int(1), "{history}");
        }
        let exchange = exchange_with_one_fill();
        run(&[], &exchange, Some("*/3 * * * *"), Command::new("PING")).0.unwrap();
        let calls = exchange.calls.borrow();
        assert_eq!((calls["/api/v3/account"], calls["/api/v3/ticker/24hr"]), (1, 1), "{calls:?}");
    }
}
