//! The trader's page and `/metrics` end to end: the worker in workerd with real Redis and the
//! stand-in, the page driven in Debian's headless Chromium through playwright-core
//! (`tests/page/drive.mjs`, which reports what the page shows and every request it made).
//! The screenshot README.md shows (`docs/page.png`) is made here, by `make screenshot`.

use std::process::Command;

use edgesync_e2e::binaries;
use edgesync_e2e::harness::{repo_root, Stack, StackOptions};
use edgesync_e2e::suite::run_suite;
use serde_json::{json, Value};

const READ_TOKEN: &str = "page-read-token";
const ALL: &str = "*/3 * * * *";
const SYMBOLS: [&str; 2] = ["QRLUSDT", "BTCUSDT"];

fn main() {
    run_suite(
        || {
            for (tool, hint) in
                [("/usr/bin/chromium", "apt-get install chromium (`make test` does this)"), ("node", "install Node.js")]
            {
                let found = Command::new("sh").args(["-c", &format!("command -v {tool}")]).output();
                if !found.is_ok_and(|o| o.status.success()) {
                    return Err(format!("{tool} is missing: {hint}"));
                }
            }
            let stack = Stack::start(StackOptions {
                binaries: binaries!(),
                vars: [("REDIS_NAMESPACE", "page"), ("SYMBOLS", "QRLUSDT,BTCUSDT"), ("READ_TOKEN", READ_TOKEN)]
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            })?;
            for price in ["0.0150", "0.0152", "0.0149"] {
                stack.set_ticker(price, "182000");
                stack.fire_cron(ALL);
            }
            Ok(stack)
        },
        &[
            ("the_chart_has_a_point_per_history_entry", the_chart_has_a_point_per_history_entry),
            ("private_panels_ask_for_the_token", private_panels_ask_for_the_token),
            ("the_page_fits_a_phone_screen", the_page_fits_a_phone_screen),
            ("metrics_parse_and_move_with_reads", metrics_parse_and_move_with_reads),
            ("redis_down_shows_the_stale_state", redis_down_shows_the_stale_state),
            ("the_demo_fills_the_chart_within_a_minute", the_demo_fills_the_chart_within_a_minute),
            ("refresh_is_at_least_a_second", refresh_is_at_least_a_second),
        ],
    )
}

/// What the page shows, as `drive.mjs` reports it.
fn drive(stack: &Stack, options: Value) -> Value {
    drive_at(&stack.worker_url, options)
}

fn drive_at(worker_url: &str, options: Value) -> Value {
    let script = repo_root().join("tests/page/drive.mjs");
    let output = Command::new("node")
        .current_dir(repo_root())
        .arg(&script)
        .arg(format!("{worker_url}/"))
        .arg(options.to_string())
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "drive.mjs failed: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let seen: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(seen["errors"], json!([]), "no script errors on the page: {seen}");
    for url in seen["requests"].as_array().expect("requests") {
        let url = url.as_str().unwrap();
        assert!(url.starts_with(&format!("{worker_url}/")), "every request goes to the worker: {url}");
    }
    seen
}

fn history_count(stack: &Stack, symbol: &str) -> u64 {
    stack.get(&format!("/v1/price/{symbol}/history?limit=1000")).json()["count"].as_u64().expect("a count")
}

/// Where the screenshot goes: `target/e2e/page.png`, so a test run leaves the checkout as it
/// was, or the path in `EDGESYNC_SCREENSHOT` (`make screenshot` refreshes the README's
/// `docs/page.png` so).
fn screenshot_path() -> std::path::PathBuf {
    match std::env::var_os("EDGESYNC_SCREENSHOT") {
        Some(path) => path.into(),
        None => {
            let dir = repo_root().join("target/e2e");
            std::fs::create_dir_all(&dir).expect("target/e2e is writable");
            dir.join("page.png")
        }
    }
}

/// After crons, each symbol's chart has one point per history entry, the sync states read
/// `ok`, the store is healthy, and with the token the private panels are filled. The
/// screenshot is saved (see [`screenshot_path`]).
fn the_chart_has_a_point_per_history_entry(stack: &Stack) {
    let screenshot = screenshot_path();
    let seen = drive(stack, json!({ "token": READ_TOKEN, "screenshot": screenshot }));
    for symbol in SYMBOLS {
        let entries = history_count(stack, symbol);
        assert!(entries >= 3, "{symbol} was synced by every cron: {entries}");
        assert_eq!(seen["charts"][symbol].as_u64(), Some(entries), "{symbol}: {seen}");
    }
    assert_eq!(seen["canvases"], 2, "one drawn chart per symbol");
    assert_eq!(seen["prices"]["QRLUSDT"], "0.0149", "the latest price, as the exact string");
    for task in ["price", "balance", "cost"] {
        assert_eq!(seen["tasks"][task], "ok", "{task}: {seen}");
    }
    assert_eq!((seen["store"].as_str(), seen["banner"]["state"].as_str()), (Some("ok"), Some("none")), "{seen}");
    assert_eq!(seen["private"], "ok", "{seen}");
    assert_eq!(seen["costs"], 2, "a cost row per symbol: {seen}");
    assert!(seen["positions"].as_u64().unwrap() > 0, "positions from the synced account: {seen}");
    let png = std::fs::read(&screenshot).expect("the screenshot was written");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
}

/// No token: the private panels ask for one. A wrong token: they say unauthorized. The right
/// token typed once: the panels fill, and the token is kept in `sessionStorage`.
fn private_panels_ask_for_the_token(stack: &Stack) {
    let none = drive(stack, json!({}));
    assert_eq!(none["private"], "need-token", "{none}");
    assert_eq!((none["positions"].as_u64(), none["costs"].as_u64()), (Some(0), Some(0)));
    let wrong = drive(stack, json!({ "token": "not-the-token" }));
    assert_eq!(wrong["private"], "unauthorized", "{wrong}");
    assert!(wrong["privateMessage"].as_str().unwrap().contains("Unauthorized"), "{wrong}");
    let typed = drive(stack, json!({ "typeToken": READ_TOKEN }));
    assert_eq!((typed["private"].as_str(), typed["token"].as_str()), (Some("ok"), Some(READ_TOKEN)), "{typed}");
}

/// On a phone-sized screen nothing needs scrolling sideways.
fn the_page_fits_a_phone_screen(stack: &Stack) {
    let seen = drive(stack, json!({ "token": READ_TOKEN, "viewport": { "width": 390, "height": 844 } }));
    assert!(seen["scrollWidth"].as_u64().unwrap() <= 390, "no horizontal overflow: {seen}");
    assert_eq!(seen["charts"]["QRLUSDT"].as_u64(), Some(history_count(stack, "QRLUSDT")));
}

fn parse_metrics(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|line| Ok(line.to_owned())))
        .unwrap_or_else(|e| panic!("/metrics parses as the Prometheus text format ({e}):\n{text}"))
}

fn value_of(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

/// `/metrics` needs the token, parses as the text format, and its counters move as reads
/// happen.
fn metrics_parse_and_move_with_reads(stack: &Stack) {
    assert_eq!(stack.get("/metrics").status, 401);
    let get = || stack.request("GET", "/metrics", &[("authorization", &format!("Bearer {READ_TOKEN}"))], b"");
    let first = get();
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(first.header("content-type").unwrap_or_default().starts_with("text/plain; version=0.0.4"));
    let before = parse_metrics(&first.body);
    assert!(value_of(&before, "edgesync_sync_runs_total", &[("task", "price")]) >= 3.0, "{}", first.body);
    assert!(value_of(&before, "edgesync_sync_last_success_timestamp_seconds", &[("task", "price")]) > 1.7e9);
    // A price read is of `cached` (class `price`) while it is fresh, else of `latest`.
    let reads = |scrape: &prometheus_parse::Scrape| value_of(scrape, "edgesync_tier_reads_total", &[]);
    for _ in 0..3 {
        assert_eq!(stack.get("/v1/price/QRLUSDT").status, 200);
    }
    let after = parse_metrics(&get().body);
    assert!(reads(&after) >= reads(&before) + 3.0, "price reads counted: {} → {}", reads(&before), reads(&after));
}

/// With Redis stopped the page says so: the stale banner and store state, data still shown.
fn redis_down_shows_the_stale_state(stack: &Stack) {
    stack.backend.stop_redis();
    let seen = drive(stack, json!({ "token": READ_TOKEN }));
    stack.backend.restart_redis().expect("redis restarts");
    assert_eq!((seen["banner"]["state"].as_str(), seen["store"].as_str()), (Some("stale"), Some("stale")), "{seen}");
    assert!(seen["banner"]["text"].as_str().unwrap().contains("Redis is down"), "{seen}");
    assert!(seen["charts"]["QRLUSDT"].as_u64().unwrap() >= 3, "the synced history is still charted: {seen}");
}

/// `make demo` as a newcomer runs it (its defaults; only the port and state are the test's):
/// within a minute of starting, the page's charts hold at least ten points, and with the
/// demo's token the positions and P&L are there. (This suite runs in a loopback-only network
/// namespace under `make test`: the demo talks to nothing else.)
fn the_demo_fills_the_chart_within_a_minute(_: &Stack) {
    let started = std::time::Instant::now();
    let state = tempfile::tempdir().unwrap();
    let port = edgesync_e2e::process::free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_edgesync-demo"));
    command.args(["--port", &port.to_string()]).arg("--state").arg(state.path().join("durable"));
    let _demo = edgesync_e2e::process::Service::spawn("edgesync-demo", command, &state.path().join("demo.log"))
        .expect("the demo starts");
    let url = format!("http://127.0.0.1:{port}");
    let points = edgesync_e2e::process::wait_until("ten synced prices", std::time::Duration::from_secs(60), || {
        let answer = ureq::get(&format!("{url}/v1/price/QRLUSDT/history?limit=1000")).call().ok()?;
        let body: Value = serde_json::from_str(&answer.into_body().read_to_string().ok()?).ok()?;
        body["count"].as_u64().filter(|n| *n >= 10)
    })
    .unwrap_or_else(|e| panic!("{e}: {}", std::fs::read_to_string(state.path().join("demo.log")).unwrap_or_default()));
    let seen = drive_at(&url, json!({ "token": "demo" }));
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "filled in {:?}", started.elapsed());
    assert!(seen["charts"]["QRLUSDT"].as_u64().unwrap() >= points, "{seen}");
    assert!(seen["charts"]["BTCUSDT"].as_u64().unwrap() >= 10, "{seen}");
    assert_eq!((seen["private"].as_str(), seen["costs"].as_u64()), (Some("ok"), Some(2)), "{seen}");
    assert_eq!(seen["store"], "ok", "the demo runs on the durable copy: {seen}");
    // Numbers are for people: grouped, rounded, and the ROI column inside a 1200 px window.
    assert_eq!(seen["roiVisible"], true, "{seen}");
    for (symbol, cells) in seen["costCells"].as_object().unwrap() {
        let cells: Vec<&str> = cells.as_array().unwrap().iter().filter_map(Value::as_str).collect();
        assert!(cells.iter().all(|c| c.len() <= 16), "{symbol}: {cells:?}");
        assert!(cells.last().is_some_and(|roi| roi.ends_with('%') || *roi == "—"), "{symbol}: {cells:?}");
    }

    // Its market agrees with its prices: candles around the price and as many as asked,
    // recent trades near it, and an order book whose best bid is below its best ask.
    let get = |path: &str| -> Value {
        let answer = ureq::get(&format!("{url}{path}")).call().unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&answer.into_body().read_to_string().unwrap()).unwrap()
    };
    let number = |v: &Value| v.as_str().and_then(|s| s.parse::<f64>().ok()).unwrap_or(f64::NAN);
    let last = number(&get("/v1/price/QRLUSDT")["price"]);
    let near = |price: f64| (price / last - 1.0).abs() < 0.1;
    let candles = get("/v1/ohlcv/QRLUSDT?limit=2");
    let candles = candles.as_array().unwrap();
    assert_eq!(candles.len(), 2, "{candles:?}");
    assert!(candles.iter().all(|c| near(number(&c[4]))), "candles around {last}: {candles:?}");
    let deals = get("/v1/deals/QRLUSDT?limit=5");
    assert!(deals.as_array().unwrap().iter().all(|d| near(number(&d["price"]))), "deals around {last}: {deals}");
    let book = get("/v1/orderbook/QRLUSDT?limit=5");
    let (bid, ask) = (number(&book["bids"][0][0]), number(&book["asks"][0][0]));
    assert!(bid < ask && near(bid) && near(ask), "bid {bid} < ask {ask} around {last}");

    // Started again on the same state, it starts fresh: only the new run's points.
    drop(_demo);
    let restarted = now_ms();
    let port = edgesync_e2e::process::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut command = Command::new(env!("CARGO_BIN_EXE_edgesync-demo"));
    command.args(["--port", &port.to_string()]).arg("--state").arg(state.path().join("durable"));
    let _again = edgesync_e2e::process::Service::spawn("edgesync-demo", command, &state.path().join("demo2.log"))
        .expect("the demo starts again");
    let history = edgesync_e2e::process::wait_until("a synced price", std::time::Duration::from_secs(60), || {
        let answer = ureq::get(&format!("{url}/v1/price/QRLUSDT/history?limit=1000")).call().ok()?;
        let body: Value = serde_json::from_str(&answer.into_body().read_to_string().ok()?).ok()?;
        (body["count"].as_u64()? >= 1).then_some(body)
    })
    .unwrap_or_else(|e| panic!("{e}: {}", std::fs::read_to_string(state.path().join("demo2.log")).unwrap_or_default()));
    let entries = history["entries"].as_array().unwrap();
    assert!(entries.len() < points as usize, "{} points after the restart, {points} before", entries.len());
    assert!(entries.iter().all(|e| e["ts"].as_i64().unwrap() >= restarted - 1000), "old points: {history}");
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// `?refresh=0` (or a negative, or not a number) would poll the worker in a loop: the page
/// refreshes at most once a second, and says so.
fn refresh_is_at_least_a_second(stack: &Stack) {
    // Not a number falls back to the default (15 s): no refresh within the window.
    for (query, fewest) in [("?refresh=0", 2), ("?refresh=-5", 2), ("?refresh=", 2), ("?refresh=soon", 0)] {
        let seen = drive(stack, json!({"query": query, "watchMs": 3000}));
        let watched = &seen["watched"];
        let health = watched["health"].as_u64().unwrap();
        // One /health per refresh: at most one a second, plus one refresh in flight.
        assert!((fewest..=4).contains(&health), "{query}: {watched}");
        let per_second = watched["requests"].as_u64().unwrap() / 3;
        assert!(per_second <= 12, "{query}: {per_second} requests a second: {watched}");
        assert_eq!(seen["refreshEvery"]["clamped"], "true", "{query}: {seen}");
        let text = seen["refreshEvery"]["text"].as_str().unwrap();
        assert!(text.contains("at least 1 s"), "{query}: {text}");
    }
    let seen = drive(stack, json!({"query": "?refresh=2"}));
    assert_eq!(seen["refreshEvery"], json!({"text": "refreshes every 2 s", "clamped": "false"}));
}
