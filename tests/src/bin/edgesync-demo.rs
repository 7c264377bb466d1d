//! `edgesync-demo` (`make demo`): the worker on its durable copy (no Redis, no keys, no
//! network) next to the MEXC stand-in, which serves a demo account with trades and prices
//! that move; the cron fires every few seconds, so the page at `/` fills within a minute.
//! Everything listens on 127.0.0.1. Ctrl-C stops it all.

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
    /// Where wrangler keeps the demo's durable copy (kept between runs).
    #[arg(long)]
    state: Option<PathBuf>,
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
    std::fs::create_dir_all(&state).map_err(|e| format!("cannot create {}: {e}", state.display()))?;
    let (_worker, url) = start_wrangler_dev_at(None, &vars, &log, Some(&state), args.port)?;
    println!(
        "edgesync demo: open {url}/ (read token: {READ_TOKEN}); a cron every {} s; Ctrl-C stops",
        args.interval_secs
    );
    println!("  worker log: {}", log.display());

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
