//! The cron sync, end to end: the worker in workerd calls the MEXC stand-in (signed calls
//! checked exactly as MEXC does) and writes through the Upstash-REST gateway into
//! redis-server. Everything is read back from redis-server directly. Also run by
//! `sync_cluster.rs`: `sync` on one redis-server, `sync_cluster` — the same assertions — on a
//! Redis Cluster behind the gateway.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use edgesync_e2e::binaries;
use edgesync_e2e::harness::{Backing, Stack, StackOptions};
use edgesync_e2e::suite::run_suite;
use redis::Commands;
use rust_decimal::Decimal;
use serde_json::{json, Value};

const ALL: &str = "*/3 * * * *";
const BALANCE: &str = "1 * * * *";
const PRICE: &str = "2 * * * *";
const COST: &str = "3 * * * *";

pub fn main() {
    let vars = [
        ("REDIS_NAMESPACE", "sync"),
        ("SYMBOLS", "QRLUSDT,BTCUSDT"),
        ("ACCOUNT_ID", "main"),
        ("HISTORY_LIMIT", "5"),
        ("CRON_TASKS", "*/3 * * * *=balance,price,cost;1 * * * *=balance;2 * * * *=price;3 * * * *=cost"),
        ("HTTP_TIMEOUT_MS", "1500"),
        ("MEXC_RETRIES", "1"),
        ("SYNC_BUDGET_MS", "20000"),
    ];
    run_suite(
        || {
            let options = StackOptions {
                binaries: binaries!(),
                vars: vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            };
            Stack::start_on(options, Backing::of_suite(env!("CARGO_CRATE_NAME")))
        },
        &[
            ("one_cron_stores_the_complete_account_and_prices", one_cron_stores_the_complete_account_and_prices),
            ("history_keeps_exactly_the_newest_entries", history_keeps_exactly_the_newest_entries),
            ("cost_matches_the_hand_computation", cost_matches_the_hand_computation),
            ("rate_limit_is_waited_out", rate_limit_is_waited_out),
            ("a_timeout_is_retried", a_timeout_is_retried),
            ("server_errors_leave_previous_data_byte_identical", server_errors_leave_previous_data_byte_identical),
            ("signature_rejection_records_mexc_code", signature_rejection_records_mexc_code),
            ("malformed_json_is_recorded_not_a_panic", malformed_json_is_recorded_not_a_panic),
            ("one_redis_request_per_invocation", one_redis_request_per_invocation),
        ],
    )
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap_or_else(|_| panic!("{text:?} is not a decimal"))
}

fn ticker(symbol: &str, last: &str, volume: &str) -> Value {
    json!({
        "symbol": symbol, "priceChange": "0.0001", "priceChangePercent": "0.01", "prevClosePrice": "0.0122",
        "lastPrice": last, "bidPrice": "0.0123", "bidQty": "", "askPrice": "0.0124", "askQty": "",
        "openPrice": "0.0122", "highPrice": "0.0130", "lowPrice": "0.0119", "volume": volume,
        "quoteVolume": null, "openTime": 1_700_000_000_000_i64, "closeTime": 1_700_000_060_000_i64, "count": null
    })
}

fn account(qrl_free: &str, qrl_locked: &str) -> Value {
    json!({
        "makerCommission": 10, "takerCommission": 20, "buyerCommission": 0, "sellerCommission": 0,
        "canTrade": true, "canWithdraw": false, "canDeposit": true, "updateTime": 1_700_000_123_456_i64,
        "accountType": "SPOT",
        "balances": [
            {"asset": "QRL", "free": qrl_free, "locked": qrl_locked},
            {"asset": "USDT", "free": "1234.56789012", "locked": "10.5"},
            {"asset": "BTC", "free": "0.00000001", "locked": "0"},
            {"asset": "MX", "free": "3", "locked": "0"}
        ],
        "permissions": ["SPOT"],
        "aFieldMexcAddsLater": {"nested": [1, "two"]}
    })
}

fn hgetall(stack: &Stack, key: &str) -> BTreeMap<String, String> {
    stack.backend.redis().hgetall(key).unwrap()
}

fn get(stack: &Stack, key: &str) -> Option<String> {
    stack.backend.redis().get(key).unwrap()
}

fn ttl(stack: &Stack, key: &str) -> i64 {
    stack.backend.redis().ttl(key).unwrap()
}

fn json_at(stack: &Stack, key: &str) -> Value {
    let text = get(stack, key).unwrap_or_else(|| panic!("{key} missing; worker log:\n{}", stack.worker_log()));
    serde_json::from_str(&text).unwrap()
}

fn prepare(stack: &Stack) {
    stack.exchange.reset();
    stack.exchange.set_response("/api/v3/ticker/24hr", Some("QRLUSDT"), &ticker("QRLUSDT", "0.12", "98765.4321"));
    stack.exchange.set_response("/api/v3/ticker/24hr", Some("BTCUSDT"), &ticker("BTCUSDT", "97000.12345678", "1.5"));
    stack.exchange.set_response("/api/v3/account", None, &account("140", "10"));
    stack.exchange.set_response("/api/v3/myTrades", None, &json!([]));
}

fn one_cron_stores_the_complete_account_and_prices(stack: &Stack) {
    prepare(stack);
    stack.fire_cron(ALL);

    let stored = json_at(stack, "sync:v1:account:mexc:main");
    assert_eq!(stored["account"], account("140", "10"), "every field and every asset, verbatim");
    for field in [
        "makerCommission",
        "takerCommission",
        "canTrade",
        "canWithdraw",
        "canDeposit",
        "updateTime",
        "accountType",
        "permissions",
    ] {
        assert!(stored["account"].get(field).is_some(), "{field} missing");
    }
    let position = hgetall(stack, "sync:v1:position:main:mexc:QRLUSDT:spot");
    assert_eq!(dec(&position["base_free"]), dec("140"));
    assert_eq!(dec(&position["base_locked"]), dec("10"));
    assert_eq!(dec(&position["quote_free"]), dec("1234.56789012"));
    assert_eq!(dec(&position["quote_locked"]), dec("10.5"));
    assert_eq!((position["base_asset"].as_str(), position["quote_asset"].as_str()), ("QRL", "USDT"));
    let index: Vec<String> = stack.backend.redis().smembers("sync:v1:position-index:main:mexc").unwrap();
    assert_eq!(index.len(), 2);

    let latest = json_at(stack, "sync:v1:price:mexc:BTCUSDT:latest");
    assert_eq!(dec(latest["price"].as_str().unwrap()), dec("97000.12345678"));
    assert_eq!(latest["price"], "97000.12345678", "the exact decimal text, not a float's");
    assert_eq!(dec(latest["volume_24h"].as_str().unwrap()), dec("1.5"));
    let cached = json_at(stack, "sync:v1:price:mexc:BTCUSDT:cached");
    assert_eq!(cached, latest);
    let raw = json_at(stack, "sync:v1:raw:mexc:account_info:latest");
    assert_eq!(raw["response"], account("140", "10"));
    let raw_ticker = json_at(stack, "sync:v1:raw:mexc:ticker_24hr.QRLUSDT:latest");
    assert_eq!(raw_ticker["response"]["lastPrice"], "0.12");

    for key in [
        "sync:v1:account:mexc:main",
        "sync:v1:position:main:mexc:QRLUSDT:spot",
        "sync:v1:position-index:main:mexc",
        "sync:v1:price:mexc:QRLUSDT:latest",
        "sync:v1:price:mexc:QRLUSDT:history",
        "sync:v1:raw:mexc:account_info:latest",
        "sync:v1:raw:mexc:account_info:history",
        "sync:v1:raw:mexc:ticker_24hr.QRLUSDT:history",
        "sync:v1:cost:mexc:main:QRLUSDT",
        "sync:v1:sync:balance:status",
    ] {
        assert_eq!(ttl(stack, key), -1, "{key} must be permanent");
    }
    let cached_ttl = ttl(stack, "sync:v1:price:mexc:QRLUSDT:cached");
    assert!((1..=30).contains(&cached_ttl), "cached TTL {cached_ttl}");
    let ticker_ttl = ttl(stack, "sync:v1:ticker:mexc:QRLUSDT");
    assert!((1..=5).contains(&ticker_ttl), "ticker TTL {ticker_ttl}");
    for task in ["balance", "price", "cost"] {
        let status = hgetall(stack, &format!("sync:v1:sync:{task}:status"));
        assert!(status.contains_key("last_ok"), "{task}: {status:?}");
        assert_eq!(status["consecutive_failures"], "0");
    }
    stack.wait_for_log(r#""task":"price","ok":true"#).expect("one JSON line per task in the log");
}

fn history_keeps_exactly_the_newest_entries(stack: &Stack) {
    prepare(stack);
    let _: () = stack.backend.redis().del("sync:v1:price:mexc:QRLUSDT:history").unwrap();
    for i in 1..=7 {
        stack.exchange.set_response("/api/v3/ticker/24hr", Some("QRLUSDT"), &ticker("QRLUSDT", &format!("0.{i}"), "1"));
        stack.fire_cron(PRICE);
    }
    let history: Vec<(String, i64)> =
        stack.backend.redis().zrange_withscores("sync:v1:price:mexc:QRLUSDT:history", 0, -1).unwrap();
    let prices: Vec<String> = history
        .iter()
        .map(|(member, _)| serde_json::from_str::<Value>(member).unwrap()["price"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(prices, ["0.3", "0.4", "0.5", "0.6", "0.7"]);
    assert!(history.windows(2).all(|w| w[0].1 < w[1].1), "scored by ms, ascending");
    let raw: i64 = stack.backend.redis().zcard("sync:v1:raw:mexc:ticker_24hr.QRLUSDT:history").unwrap();
    assert_eq!(raw, 5);
}

fn cost_matches_the_hand_computation(stack: &Stack) {
    prepare(stack);
    let _: () = stack.backend.redis().del("sync:v1:cost:mexc:main:QRLUSDT").unwrap();
    let t = now_ms() - 3_600_000;
    let fill = |id: &str, time: i64, buy: bool, qty: &str, quote: &str, fee: &str, asset: &str| {
        json!({"symbol": "QRLUSDT", "id": id, "orderId": format!("o-{id}"), "orderListId": -1, "price": "0",
               "qty": qty, "quoteQty": quote, "commission": fee, "commissionAsset": asset, "time": time,
               "isBuyer": buy, "isMaker": false, "isBestMatch": true, "isSelfTrade": false, "clientOrderId": null})
    };
    stack.exchange.set_response(
        "/api/v3/myTrades",
        Some("QRLUSDT"),
        &json!([
            // Older than MEXC's one-month window: never part of the basis.
            fill("z0", now_ms() - 40 * 86_400_000, true, "50", "1", "0", "USDT"),
            fill("a1", t, true, "100", "10", "0.1", "QRL"),
            fill("b2", t + 1000, true, "100.1", "12", "0.012", "USDT"),
            fill("c3", t + 2000, false, "50", "7", "0.007", "USDT"),
        ]),
    );
    stack.fire_cron(ALL);

    // By hand:
    //   buy 100 QRL for 10 USDT, fee 0.1 QRL     -> holds 99.9 QRL, cost 10
    //   buy 100.1 QRL for 12 USDT, fee 0.012 USDT -> holds 200.0 QRL, cost 22.012, avg 0.11006
    //   sell 50 QRL for 7 USDT, fee 0.007 USDT    -> proceeds 6.993, cost out 50 * 0.11006 = 5.503
    //                                                realized 6.993 - 5.503 = 1.490
    //   left: 150.0 QRL at cost 16.509 (avg 0.11006); the account holds 140 + 10 = 150
    //   price 0.12: value 150 * 0.12 = 18.00; unrealized 18.00 - 16.509 = 1.491
    //   unrealized % = 1.491 / 16.509 * 100 = 9.03143740 (8 dp)
    //   total = 1.490 + 1.491 = 2.981; invested 10 + 12.012 = 22.012
    //   ROI % = 2.981 / 22.012 * 100 = 13.54261312 (8 dp)
    let cost = json_at(stack, "sync:v1:cost:mexc:main:QRLUSDT");
    let field = |name: &str| dec(cost[name].as_str().unwrap_or_else(|| panic!("{name} missing: {cost}")));
    assert_eq!(field("qty"), dec("150"));
    assert_eq!(field("avg_cost"), dec("0.11006"));
    assert_eq!(field("cost_basis"), dec("16.509"));
    assert_eq!(field("price"), dec("0.12"));
    assert_eq!(field("value"), dec("18"));
    assert_eq!(field("unrealized_pnl"), dec("1.491"));
    assert_eq!(field("unrealized_pnl_pct"), dec("9.0314374"));
    assert_eq!(field("realized_pnl"), dec("1.490"));
    assert_eq!(field("total_pnl"), dec("2.981"));
    assert_eq!(field("invested"), dec("22.012"));
    assert_eq!(field("roi_pct"), dec("13.54261312"));
    assert_eq!(field("unknown_cost_qty"), dec("0"));
    assert_eq!(cost["last_trade"]["ids"], json!(["c3"]));
    let position = hgetall(stack, "sync:v1:position:main:mexc:QRLUSDT:spot");
    assert_eq!(dec(&position["avg_cost"]), dec("0.11006"));

    assert_eq!(cost["window"]["fills"], 3, "the fill older than the window is not counted");

    // Recomputed from the window each run: running alone, again, gives the same numbers.
    stack.fire_cron(COST);
    let again = json_at(stack, "sync:v1:cost:mexc:main:QRLUSDT");
    for name in ["qty", "avg_cost", "realized_pnl", "unrealized_pnl", "roi_pct"] {
        assert_eq!(again[name], cost[name], "{name}");
    }
    assert_eq!(again["window"]["fills"], 3);

    // Coins older than the trade window: reported as quantity of unknown cost, not priced at 0.
    stack.exchange.set_response("/api/v3/account", None, &account("170", "30"));
    stack.fire_cron(BALANCE);
    stack.fire_cron(COST);
    let older = json_at(stack, "sync:v1:cost:mexc:main:QRLUSDT");
    assert_eq!(dec(older["holdings"].as_str().unwrap()), dec("200"));
    assert_eq!(dec(older["unknown_cost_qty"].as_str().unwrap()), dec("50"));
    assert_eq!(dec(older["avg_cost"].as_str().unwrap()), dec("0.11006"), "unknown coins do not dilute the average");
    assert_eq!(dec(older["value"].as_str().unwrap()), dec("24"));
    stack.exchange.set_response("/api/v3/account", None, &account("140", "10"));
}

fn rate_limit_is_waited_out(stack: &Stack) {
    prepare(stack);
    stack.exchange.set_response("/api/v3/ticker/24hr", Some("QRLUSDT"), &ticker("QRLUSDT", "0.4242", "1"));
    stack
        .exchange
        .inject_fault(&json!({"kind": "rate_limit", "path": "/api/v3/ticker/24hr", "retry_after": 1, "times": 1}));
    stack.fire_cron(PRICE);
    assert_eq!(json_at(stack, "sync:v1:price:mexc:QRLUSDT:latest")["price"], "0.4242");
    let status = hgetall(stack, "sync:v1:sync:price:status");
    assert_eq!(status["consecutive_failures"], "0");
    assert!(status["duration_ms"].parse::<i64>().unwrap() >= 1000, "Retry-After: 1 was honoured: {status:?}");
    assert!(stack.exchange.requests()["counts"]["/api/v3/ticker/24hr"].as_i64().unwrap() >= 3);
}

fn a_timeout_is_retried(stack: &Stack) {
    prepare(stack);
    stack.exchange.set_response("/api/v3/ticker/24hr", Some("QRLUSDT"), &ticker("QRLUSDT", "0.5151", "1"));
    stack
        .exchange
        .inject_fault(&json!({"kind": "timeout", "path": "/api/v3/ticker/24hr", "delay_ms": 4000, "times": 1}));
    stack.fire_cron(PRICE);
    assert_eq!(json_at(stack, "sync:v1:price:mexc:QRLUSDT:latest")["price"], "0.5151");
}

fn server_errors_leave_previous_data_byte_identical(stack: &Stack) {
    prepare(stack);
    stack.fire_cron(PRICE);
    let keys = ["sync:v1:price:mexc:QRLUSDT:latest", "sync:v1:raw:mexc:ticker_24hr.QRLUSDT:latest"];
    let before: Vec<Option<Vec<u8>>> = keys.iter().map(|k| stack.backend.redis().get(*k).unwrap()).collect();
    let history_before: Vec<String> =
        stack.backend.redis().zrange("sync:v1:price:mexc:QRLUSDT:history", 0, -1).unwrap();
    let status_before = hgetall(stack, "sync:v1:sync:price:status");

    stack
        .exchange
        .inject_fault(&json!({"kind": "server_error", "path": "/api/v3/ticker/24hr", "status": 503, "times": 10}));
    stack.fire_cron(PRICE);

    let after: Vec<Option<Vec<u8>>> = keys.iter().map(|k| stack.backend.redis().get(*k).unwrap()).collect();
    assert_eq!(before, after, "a failed run must not touch the data");
    let history_after: Vec<String> = stack.backend.redis().zrange("sync:v1:price:mexc:QRLUSDT:history", 0, -1).unwrap();
    assert_eq!(history_before, history_after);
    let status = hgetall(stack, "sync:v1:sync:price:status");
    assert!(status["last_error"].contains("503"), "{status:?}");
    assert_eq!(status["last_ok"], status_before["last_ok"]);
    let failures = |s: &BTreeMap<String, String>| s.get("failures").map_or(0, |f| f.parse::<i64>().unwrap());
    assert_eq!(failures(&status), failures(&status_before) + 1);
    assert_eq!(status["consecutive_failures"], "1");
    stack.wait_for_log(r#""task":"price","ok":false"#).unwrap();
    stack.exchange.reset();
}

fn signature_rejection_records_mexc_code(stack: &Stack) {
    prepare(stack);
    stack.fire_cron(BALANCE);
    let before = get(stack, "sync:v1:account:mexc:main");
    stack.exchange.inject_fault(&json!({"kind": "signature", "path": "/api/v3/account", "times": 1}));
    stack.fire_cron(BALANCE);
    let status = hgetall(stack, "sync:v1:sync:balance:status");
    assert_eq!(status["last_error_code"], "700002", "{status:?}");
    assert_eq!(get(stack, "sync:v1:account:mexc:main"), before);
}

fn malformed_json_is_recorded_not_a_panic(stack: &Stack) {
    prepare(stack);
    stack.exchange.inject_fault(&json!({"kind": "malformed", "path": "/api/v3/ticker/24hr", "times": 2}));
    stack.fire_cron(PRICE);
    let status = hgetall(stack, "sync:v1:sync:price:status");
    assert!(status["last_error"].contains("malformed"), "{status:?}");
    assert_eq!(stack.get("/health").status, 200, "the worker is alive");
    stack.exchange.reset();
}

fn one_redis_request_per_invocation(stack: &Stack) {
    prepare(stack);
    // Each task alone, then all three in one firing: an invocation writes one pipeline.
    for cron in [BALANCE, PRICE, COST, ALL] {
        stack.backend.reset_gateway_stats();
        stack.fire_cron(cron);
        let requests = stack.backend.gateway_stats()["requests"].as_i64().unwrap();
        assert_eq!(requests, 1, "cron {cron}");
    }
    // The exchange side of the documented subrequest count, 2 + S + S·P with S = 2 symbols and
    // P = 1 page of fills: one account and one ticker per symbol shared by the three tasks, one
    // myTrades page per symbol — and no clock measurement, which the firings above made once
    // for the isolate (kept 15 minutes).
    let before = stack.exchange.requests()["counts"].clone();
    stack.fire_cron(ALL);
    let after = stack.exchange.requests()["counts"].clone();
    let made = |path: &str| after[path].as_i64().unwrap_or(0) - before[path].as_i64().unwrap_or(0);
    assert_eq!(made("/api/v3/time"), 0, "the isolate's clock measurement is reused");
    assert_eq!(made("/api/v3/account"), 1);
    assert_eq!(made("/api/v3/ticker/24hr"), 2);
    assert_eq!(made("/api/v3/myTrades"), 2);
    let total = |counts: &Value| counts.as_object().unwrap().values().map(|n| n.as_i64().unwrap()).sum::<i64>();
    assert_eq!(total(&after) - total(&before), 5, "exchange subrequests of one firing");
}
