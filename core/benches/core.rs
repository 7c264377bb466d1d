//! Benchmarks of the hot, pure paths: building and classifying keys, and the codec round
//! trip of what the price task stores and the API reads. Each group has a baseline measured
//! in the same run (a bare `format!`, a bare `serde_json` of plain strings), so the numbers
//! read as a ratio: what validation and exact decimals cost. The glob group pins the matcher's
//! linear time: a hostile pattern within 2× of `*` on the same key. The cron group runs one
//! whole cron invocation natively (the task code the worker runs, peers answered from memory)
//! for 1, 5 and 20 symbols: the cross-check of `make bench`'s CPU per invocation.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use edgesync_core::exchange::model::Ticker24h;
use edgesync_core::keys::{Exchange, KeySpace, Segment};
use edgesync_core::records::price::PriceRecord;
use rust_decimal::Decimal;

fn keys(c: &mut Criterion) {
    let keys = KeySpace::new("qrl").unwrap();
    let symbol = Segment::new("symbol", "QRLUSDT").unwrap();
    let account = Segment::new("account", "main").unwrap();
    let side = Segment::new("side", "long").unwrap();
    let mut group = c.benchmark_group("keys");
    group.bench_function("baseline_format", |b| {
        b.iter(|| format!("{}:{}:price:mexc:{}:latest", black_box("qrl"), black_box("v1"), black_box("QRLUSDT")))
    });
    group.bench_function("price_latest", |b| b.iter(|| keys.price_latest(Exchange::Mexc, black_box(&symbol))));
    group.bench_function("position", |b| {
        b.iter(|| keys.position(black_box(&account), Exchange::Mexc, black_box(&symbol), black_box(&side)))
    });
    group.bench_function("validate_segment", |b| b.iter(|| Segment::new("symbol", black_box("QRLUSDT")).unwrap()));
    let key = keys.price_latest(Exchange::Mexc, &symbol);
    group.bench_function("classify", |b| b.iter(|| keys.classify(black_box(&key))));
    group.finish();
}

fn codec(c: &mut Criterion) {
    let record = PriceRecord {
        symbol: "QRLUSDT".into(),
        price: "0.012345678901".parse::<Decimal>().unwrap(),
        volume_24h: Some("98765.4321".parse::<Decimal>().unwrap()),
        ts: 1_700_000_000_000,
    };
    let mut group = c.benchmark_group("codec");
    group.bench_function("baseline_strings_round_trip", |b| {
        let plain = serde_json::json!({"symbol": "QRLUSDT", "price": "0.012345678901", "volume_24h": "98765.4321", "ts": 1_700_000_000_000_i64});
        b.iter(|| {
            let bytes = serde_json::to_vec(black_box(&plain)).unwrap();
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
        })
    });
    group.bench_function("price_record_round_trip", |b| {
        b.iter(|| {
            let bytes = serde_json::to_vec(black_box(&record)).unwrap();
            serde_json::from_slice::<PriceRecord>(&bytes).unwrap()
        })
    });
    let ticker = include_str!("../../fixtures/mexc/ticker_24hr.json");
    group.bench_function("ticker_24hr_decode", |b| {
        b.iter(|| serde_json::from_str::<Ticker24h>(black_box(ticker)).unwrap())
    });
    group.finish();
}

/// The glob matcher on a 256-byte key: `*` (the baseline) against the pattern that takes a
/// backtracking matcher exponential time (CVE-2022-36021). Both compile and match.
fn glob(c: &mut Criterion) {
    let key = "a".repeat(256);
    let mut group = c.benchmark_group("glob");
    group.bench_function("baseline_star", |b| b.iter(|| edgesync_core::glob::matches(black_box("*"), black_box(&key))));
    group.bench_function("hostile_stars", |b| {
        b.iter(|| edgesync_core::glob::matches(black_box("*a*a*a*a*a*a*a*a*a*a*b"), black_box(&key)))
    });
    group.finish();
}

/// Stands in for the network in the handler bench: nothing here may call out.
struct NoNetwork;

#[async_trait::async_trait(?Send)]
impl edgesync_core::http::HttpClient for NoNetwork {
    async fn send(
        &self,
        _: edgesync_core::http::HttpRequest,
    ) -> Result<edgesync_core::http::HttpResponse, edgesync_core::http::TransportError> {
        Err(edgesync_core::http::TransportError::Failed("no network in benches".into()))
    }
}

/// The handler's own cost per request (routing, validation, the tiers' bookkeeping, decoding
/// and encoding the record, headers), with the value in the isolate cache — what the edge
/// adds to a read besides Redis. Baseline: serializing a JSON body of the same size.
fn handler(c: &mut Criterion) {
    use edgesync_core::api::{flight::Flights, handle, ApiRequest};
    use edgesync_core::clock::{FixedClock, ThreadSleep};
    use edgesync_core::config::Config;
    use edgesync_core::store::memory::MemoryStore;
    use edgesync_core::store::tiered::{Backing, IsolateCache, Tiered};
    use edgesync_core::store::Store;
    use edgesync_core::App;

    let config = Config::from_lookup(|_| None).unwrap();
    let clock = std::sync::Arc::new(FixedClock::at(1_700_000_000_000));
    let store = MemoryStore::new(clock.clone(), 1000);
    let record = PriceRecord { symbol: "QRLUSDT".into(), price: Decimal::new(12345, 6), volume_24h: None, ts: 1 };
    let key = config.keys.price_latest(Exchange::Mexc, &Segment::new("s", "QRLUSDT").unwrap());
    futures_executor::block_on(store.set(&key, &serde_json::to_vec(&record).unwrap(), None)).unwrap();
    let memory = IsolateCache::new(config.tiers);
    let tiers = Tiered::new(&memory, Backing::Memory(&store), &*clock);
    let flights = Flights::default();
    let app = App {
        config: &config,
        store: &tiers,
        http: &NoNetwork,
        clock: &*clock,
        sleep: &ThreadSleep,
        flights: &flights,
        mexc_clock: &Default::default(),
        waiter: &edgesync_core::single_flight::Unbounded,
        page: &edgesync_core::api::page::PageAssets::NONE,
        health_report: &Default::default(),
    };
    let request = ApiRequest::get("/v1/price/QRLUSDT");
    let mut group = c.benchmark_group("handler");
    group.bench_function("baseline_json_body", |b| {
        b.iter(|| {
            serde_json::to_vec(black_box(&serde_json::json!({"symbol": "QRLUSDT", "price": "0.012345"}))).unwrap()
        })
    });
    group.bench_function("price", |b| b.iter(|| futures_executor::block_on(handle(&app, black_box(&request)))));
    group.finish();
}

/// The cron's exchange and Redis, answered from memory: the dataset of `make bench`'s CPU
/// part (tests/bench/cpu.rs: 31 balances, each symbol's ticker, 50 fills per symbol), and an
/// Upstash REST endpoint that acknowledges every command of a pipeline.
struct CronPeers {
    account: Vec<u8>,
    ticker: serde_json::Value,
    fills: Vec<u8>,
}

const CRON_SYMBOLS: [&str; 20] = [
    "QRLUSDT", "BTCUSDT", "ETHUSDT", "MXUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "ADAUSDT", "TRXUSDT", "LINKUSDT",
    "DOTUSDT", "LTCUSDT", "BCHUSDT", "AVAXUSDT", "ATOMUSDT", "XLMUSDT", "NEARUSDT", "UNIUSDT", "FILUSDT", "APTUSDT",
];

impl CronPeers {
    fn new(now: i64) -> Self {
        use serde_json::json;
        let mut balances: Vec<serde_json::Value> = CRON_SYMBOLS
            .iter()
            .enumerate()
            .map(|(i, s)| json!({ "asset": s.trim_end_matches("USDT"), "free": format!("{}.{:08}", 100 + i, 12345678), "locked": "0" }))
            .collect();
        for (i, asset) in
            ["USDT", "USDC", "BNB", "PEPE", "SHIB", "TON", "ARB", "OP", "SUI", "WLD", "ENA"].iter().enumerate()
        {
            balances.push(json!({ "asset": asset, "free": format!("{}.5", 1000 * (i + 1)), "locked": "1.25" }));
        }
        let account = json!({
            "canTrade": true, "canWithdraw": true, "canDeposit": true, "updateTime": null,
            "accountType": "SPOT", "balances": balances, "permissions": ["SPOT"],
        });
        let fills: Vec<serde_json::Value> = (0..50usize)
            .map(|i| {
                let buy = i % 3 != 2;
                json!({
                    "symbol": "QRLUSDT", "id": format!("{:032x}", 0xfad2af9e942049b6u64 as u128 * (i as u128 + 1)),
                    "orderId": format!("{:032x}", 0xbb41e566u64 as u128 * (i as u128 + 7)), "orderListId": -1,
                    "price": format!("0.0{}12345", 1 + i % 9), "qty": format!("{}.00000000", 100 + i),
                    "quoteQty": format!("{}.123456", 1 + i), "commission": "0.01000000",
                    "commissionAsset": if buy { "QRL" } else { "USDT" }, "time": now - 86_400_000 + i as i64 * 60_000,
                    "isBuyer": buy, "isMaker": i % 2 == 0, "isBestMatch": true, "isSelfTrade": false, "clientOrderId": null,
                })
            })
            .collect();
        Self {
            account: account.to_string().into_bytes(),
            ticker: serde_json::from_str(include_str!("../../fixtures/mexc/ticker_24hr.json")).unwrap(),
            fills: serde_json::Value::Array(fills).to_string().into_bytes(),
        }
    }
}

#[async_trait::async_trait(?Send)]
impl edgesync_core::http::HttpClient for CronPeers {
    async fn send(
        &self,
        request: edgesync_core::http::HttpRequest,
    ) -> Result<edgesync_core::http::HttpResponse, edgesync_core::http::TransportError> {
        let (address, query) = request.url.split_once('?').unwrap_or((&request.url, ""));
        let body = if address.ends_with("/pipeline") {
            let commands: Vec<serde::de::IgnoredAny> =
                serde_json::from_slice(request.body.as_deref().unwrap()).unwrap();
            format!("[{}]", vec![r#"{"result":"OK"}"#; commands.len()].join(",")).into_bytes()
        } else if address.ends_with("/api/v3/time") {
            br#"{"serverTime":1700000000000}"#.to_vec()
        } else if address.ends_with("/api/v3/account") {
            self.account.clone()
        } else if address.ends_with("/api/v3/myTrades") {
            self.fills.clone()
        } else if address.ends_with("/api/v3/ticker/24hr") {
            let symbol = query.split('&').find_map(|p| p.strip_prefix("symbol=")).unwrap();
            let mut ticker = self.ticker.clone();
            ticker["symbol"] = symbol.into();
            ticker.to_string().into_bytes()
        } else {
            panic!("unexpected call to {address}")
        };
        Ok(edgesync_core::http::HttpResponse { status: 200, headers: Vec::new(), body })
    }
}

/// The cron's own work natively — the same task code the worker runs (fetch, parse, cost,
/// pipelines, JSON) with its peers answered from memory — for 1, 5 and 20 symbols: the
/// cross-check of `make bench`'s isolate CPU per invocation (docs/benchmarks.md). Baseline:
/// parsing the exchange's answers of 5 symbols into `serde_json::Value`, the floor of any
/// implementation.
fn cron(c: &mut Criterion) {
    use edgesync_core::api::flight::Flights;
    use edgesync_core::clock::{FixedClock, ThreadSleep};
    use edgesync_core::config::Config;
    use edgesync_core::store::tiered::{Backing, IsolateCache, Tiered};
    use edgesync_core::store::upstash::UpstashClient;
    use edgesync_core::App;

    let now = 1_700_000_000_000;
    let peers = CronPeers::new(now);
    let mut group = c.benchmark_group("cron");
    group.bench_function("baseline_parse_5_symbols", |b| {
        b.iter(|| {
            let mut values = vec![serde_json::from_slice::<serde_json::Value>(&peers.account).unwrap()];
            for _ in 0..5 {
                values.push(serde_json::from_slice(&peers.fills).unwrap());
                values.push(serde_json::from_str(include_str!("../../fixtures/mexc/ticker_24hr.json")).unwrap());
            }
            values
        })
    });
    for symbols in [1, 5, 20] {
        let list = CRON_SYMBOLS[..symbols].join(",");
        let vars = [
            ("SYMBOLS", list.as_str()),
            ("MEXC_API_KEY", "key"),
            ("MEXC_API_SECRET", "secret"),
            ("MEXC_BASE_URL", "http://mexc.bench"),
            ("UPSTASH_REDIS_REST_URL", "http://redis.bench"),
            ("UPSTASH_REDIS_REST_TOKEN", "token"),
        ];
        let config = Config::from_lookup(|n| vars.iter().find(|(k, _)| *k == n).map(|(_, v)| v.to_string())).unwrap();
        let clock = FixedClock::at(now);
        let redis = UpstashClient::new(&peers, config.redis.clone().unwrap());
        let memory = IsolateCache::new(config.tiers);
        let tiers = Tiered::new(&memory, Backing::redis(&redis), &clock);
        let flights = Flights::default();
        let app = App {
            config: &config,
            store: &tiers,
            http: &peers,
            clock: &clock,
            sleep: &ThreadSleep,
            flights: &flights,
            mexc_clock: &Default::default(),
            waiter: &edgesync_core::single_flight::Unbounded,
            page: &edgesync_core::api::page::PageAssets::NONE,
            health_report: &Default::default(),
        };
        group.bench_function(format!("invocation_{symbols}_symbols"), |b| {
            b.iter(|| {
                let reports = futures_executor::block_on(edgesync_core::sync::run_cron(&app, "*/3 * * * *")).unwrap();
                assert!(reports.iter().all(|r| r.ok), "{reports:?}");
            })
        });
    }
    group.finish();
}

criterion_group!(benches, keys, codec, glob, handler, cron);
criterion_main!(benches);
