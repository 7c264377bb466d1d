//! `edgesync-demo` (`make demo`): the worker on its durable copy (no Redis, no keys, no
//! network) next to the MEXC stand-in, which serves a demo account with trades and prices
//! that move; the cron fires every few seconds, so the page at `/` fills within a minute.
//! Its market routes agree with its prices: candles, recent trades and an order book are
//! drawn around each symbol's current price every cron. It starts fresh (a new durable copy)
//! unless `--resume` keeps the last run's data. Everything listens on 127.0.0.1. Ctrl-C stops
//! it all.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use edgesync_e2e::harness::{
    repo_root, start_wrangler_dev_at, Binaries, ExchangeStandin, MEXC_API_KEY, MEXC_API_SECRET,
};
use serde_json::{json, Value};

#[derive(Parser)]
#[command(about = "Runs the worker with a moving demo market on 127.0.0.1")]
struct Args {
    /// Port of the worker (the page is at http://127.0.0.1:PORT/).
    #[arg(long, default_value_t = 8787)]
    port: u16,
    /// Seconds between cron runs.
    #[arg(long, default_value_t = 3)]
    interval_secs: u64,
    /// Where wrangler keeps the demo's durable copy (default `target/demo-state`).
    #[arg(long)]
    state: Option<PathBuf>,
    /// Keep the durable copy of the last run (its history, its sync runs) instead of starting
    /// fresh.
    #[arg(long)]
    resume: bool,
    /// Stop after this many crons (default: run until interrupted).
    #[arg(long)]
    crons: Option<u64>,
}

/// The read token the demo's page asks for.
const READ_TOKEN: &str = "demo";
const SYMBOLS: [(&str, f64); 2] = [("QRLUSDT", 0.0150), ("BTCUSDT", 46_250.0)];

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// A price that wanders (a slow wave and a faster wobble), as an exact decimal string.
fn price(base: f64, step: u64, decimals: usize) -> String {
    let t = step as f64;
    let value = base * (1.0 + 0.03 * (t / 9.0).sin() + 0.008 * (t * 1.7).sin());
    format!("{value:.decimals$}")
}

fn ticker(symbol: &str, last: &str, base: f64, decimals: usize) -> Value {
    json!({
        "symbol": symbol, "priceChange": format!("{:.decimals$}", last.parse::<f64>().unwrap_or(base) - base),
        "priceChangePercent": format!("{:.2}", (last.parse::<f64>().unwrap_or(base) / base - 1.0) * 100.0),
        "prevClosePrice": format!("{base:.decimals$}"), "lastPrice": last,
        "bidPrice": last, "bidQty": "", "askPrice": last, "askQty": "",
        "openPrice": format!("{base:.decimals$}"), "highPrice": format!("{:.decimals$}", base * 1.04),
        "lowPrice": format!("{:.decimals$}", base * 0.96), "volume": "182000", "quoteVolume": null,
        "openTime": now_ms() - 86_400_000, "closeTime": now_ms(), "count": null
    })
}

/// Hourly candles ending now, the last closing at `last`, wandering back from it.
fn klines(last: &str, base: f64, step: u64, decimals: usize) -> Value {
    const CANDLES: u64 = 200;
    const HOUR_MS: i64 = 3_600_000;
    let now = now_ms();
    let last_value = last.parse::<f64>().unwrap_or(base);
    let open_of_last = now - now % HOUR_MS;
    let rows: Vec<Value> = (0..CANDLES)
        .map(|back| {
            let close =
                if back == 0 { last_value } else { price(base, step + CANDLES - back, 12).parse().unwrap_or(base) };
            let open = price(base, step + CANDLES - back - 1, 12).parse::<f64>().unwrap_or(base);
            let (high, low) = (open.max(close) * 1.002, open.min(close) * 0.998);
            let open_time = open_of_last - back as i64 * HOUR_MS;
            json!([
                open_time,
                format!("{open:.decimals$}"),
                format!("{high:.decimals$}"),
                format!("{low:.decimals$}"),
                format!("{close:.decimals$}"),
                "1250.5",
                open_time + HOUR_MS,
                format!("{:.2}", 1250.5 * close),
            ])
        })
        .rev()
        .collect();
    Value::Array(rows)
}

/// Recent trades at and around `last`, newest first.
fn recent_trades(last: &str, base: f64, decimals: usize) -> Value {
    let last_value = last.parse::<f64>().unwrap_or(base);
    let now = now_ms();
    let rows: Vec<Value> = (0..30)
        .map(|i| {
            let price = last_value * (1.0 + 0.0004 * ((i % 5) as f64 - 2.0));
            let qty = 10.0 + i as f64;
            json!({
                "id": null, "price": format!("{price:.decimals$}"), "qty": format!("{qty:.4}"),
                "quoteQty": format!("{:.6}", price * qty), "time": now - i * 7_000,
                "isBuyerMaker": i % 2 == 0, "isBestMatch": true
            })
        })
        .collect();
    Value::Array(rows)
}

/// An order book around `last`: bids below it, asks above, the best of each nearest.
fn order_book(last: &str, base: f64, decimals: usize) -> Value {
    let last_value = last.parse::<f64>().unwrap_or(base);
    let level = |side: f64, i: usize| {
        let price = last_value * (1.0 + side * 0.0005 * (i + 1) as f64);
        json!([format!("{price:.decimals$}"), format!("{:.4}", 100.0 + 25.0 * i as f64)])
    };
    json!({
        "lastUpdateId": now_ms(),
        "bids": (0..20).map(|i| level(-1.0, i)).collect::<Vec<_>>(),
        "asks": (0..20).map(|i| level(1.0, i)).collect::<Vec<_>>(),
    })
}

fn trade(symbol: &str, price: &str, qty: &str, buyer: bool, days_ago: i64, id: u32) -> Value {
    let quote = price.parse::<f64>().unwrap_or(0.0) * qty.parse::<f64>().unwrap_or(0.0);
    json!({
        "symbol": symbol, "id": format!("demo{id}"), "orderId": format!("order{id}"), "orderListId": -1,
        "price": price, "qty": qty, "quoteQty": format!("{quote:.6}"), "commission": "0", "commissionAsset": "USDT",
        "time": now_ms() - days_ago * 86_400_000, "isBuyer": buyer, "isMaker": false, "isBestMatch": true,
        "isSelfTrade": false, "clientOrderId": null
    })
}

fn main() -> Result<(), String> {
    let args = Args::parse();
    // The stand-in is built next to this binary (`make demo` builds both).
    let dir = std::env::current_exe().map_err(|e| e.to_string())?.parent().map(PathBuf::from).unwrap_or_default();
    let leak =
        |name: &str| -> &'static str { Box::leak(dir.join(name).to_string_lossy().into_owned().into_boxed_str()) };
    let binaries = Binaries { gateway: leak("edgesync-gateway"), standin: leak("mexc-standin") };
    let exchange = ExchangeStandin::start(&binaries)?;

    exchange.set_response(
        "/api/v3/account",
        None,
        &json!({
            "canTrade": true, "canWithdraw": true, "canDeposit": true, "updateTime": null, "accountType": "SPOT",
            "balances": [
                {"asset": "QRL", "free": "1500", "locked": "0"},
                {"asset": "BTC", "free": "0.02", "locked": "0"},
                {"asset": "USDT", "free": "250.50", "locked": "0"}
            ],
            "permissions": ["SPOT"]
        }),
    );
    exchange.set_response(
        "/api/v3/myTrades",
        Some("QRLUSDT"),
        &json!([
            trade("QRLUSDT", "0.0140", "1000", true, 20, 1),
            trade("QRLUSDT", "0.0135", "700", true, 12, 2),
            trade("QRLUSDT", "0.0158", "200", false, 5, 3)
        ]),
    );
    exchange.set_response(
        "/api/v3/myTrades",
        Some("BTCUSDT"),
        &json!([trade("BTCUSDT", "44100", "0.02", true, 15, 4)]),
    );

    let state = args.state.unwrap_or_else(|| repo_root().join("target/demo-state"));
    let vars: Vec<(String, String)> = [
        ("REDIS_NAMESPACE", "demo"),
        ("SYMBOLS", "QRLUSDT,BTCUSDT"),
        ("READ_TOKEN", READ_TOKEN),
        ("MEXC_BASE_URL", exchange.url.as_str()),
        ("MEXC_API_KEY", MEXC_API_KEY),
        ("MEXC_API_SECRET", MEXC_API_SECRET),
        // No Redis: the durable copy is the store.
        ("UPSTASH_REDIS_REST_URL", ""),
        ("UPSTASH_REDIS_REST_TOKEN", ""),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let log = state.with_extension("log");
    if !args.resume && state.exists() {
        std::fs::remove_dir_all(&state).map_err(|e| format!("cannot start fresh in {}: {e}", state.display()))?;
    }
    std::fs::create_dir_all(&state).map_err(|e| format!("cannot create {}: {e}", state.display()))?;
    let (_worker, url) = start_wrangler_dev_at(None, &vars, &log, Some(&state), args.port)?;
    println!(
        "edgesync demo: open {url}/ (read token: {READ_TOKEN}); a cron every {} s; Ctrl-C stops",
        args.interval_secs
    );
    println!("  worker log: {}", log.display());
    println!(
        "  durable copy: {} ({})",
        state.display(),
        if args.resume { "resumed: the last run's data is kept" } else { "fresh; --resume keeps it next time" }
    );

    let http = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    let started = Instant::now();
    for step in 0.. {
        if args.crons.is_some_and(|crons| step >= crons) {
            break;
        }
        let mut line = format!("cron {step}:");
        for (symbol, base) in SYMBOLS {
            let decimals = if base < 1.0 { 5 } else { 2 };
            let last = price(base, step, decimals);
            exchange.set_response("/api/v3/ticker/24hr", Some(symbol), &ticker(symbol, &last, base, decimals));
            exchange.set_response("/api/v3/klines", Some(symbol), &klines(&last, base, step, decimals));
            exchange.set_response("/api/v3/trades", Some(symbol), &recent_trades(&last, base, decimals));
            exchange.set_response("/api/v3/depth", Some(symbol), &order_book(&last, base, decimals));
            line.push_str(&format!(" {symbol} {last}"));
        }
        let fired = http.get(&format!("{url}/cdn-cgi/handler/scheduled?cron=*/3+*+*+*+*")).call();
        match fired {
            Ok(response) if response.status() == 200 => println!("{line}"),
            Ok(response) => println!("{line} (the cron answered {})", response.status()),
            Err(error) => println!("{line} (the cron failed: {error})"),
        }
        let next = started + Duration::from_secs(args.interval_secs * (step + 1));
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    Ok(())
}
