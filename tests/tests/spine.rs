//! The spine, end to end on real parts: a cron firing makes the worker (in workerd) call the
//! MEXC stand-in and write the price through the Upstash-REST gateway into redis-server; the
//! HTTP route reads it back. Stored values are checked by reading redis-server directly.

use edgesync_e2e::binaries;
use edgesync_e2e::harness::{Stack, StackOptions};
use edgesync_e2e::suite::run_suite;
use serde_json::{json, Value};

const CRON: &str = "*/3 * * * *";
const LATEST: &str = "qrl:v1:price:mexc:QRLUSDT:latest";

fn main() {
    run_suite(
        || Stack::start(StackOptions { binaries: binaries!(), vars: vec![("SYMBOLS".into(), "QRLUSDT".into())] }),
        &[
            (
                "cron_writes_the_permanent_price_and_the_route_reads_it",
                cron_writes_the_permanent_price_and_the_route_reads_it,
            ),
            ("a_new_price_replaces_the_old_one", a_new_price_replaces_the_old_one),
            ("health_reports_the_redis_tier", health_reports_the_redis_tier),
            ("bad_requests_get_json_errors", bad_requests_get_json_errors),
            ("a_price_read_costs_one_redis_request_at_most", a_price_read_costs_one_redis_request_at_most),
        ],
    )
}

fn stored_latest(stack: &Stack) -> Option<Value> {
    let mut redis = stack.backend.redis();
    let raw: Option<String> = redis::cmd("GET").arg(LATEST).query(&mut redis).expect("GET works");
    raw.map(|text| serde_json::from_str(&text).expect("stored price is JSON"))
}

fn cron_writes_the_permanent_price_and_the_route_reads_it(stack: &Stack) {
    let mut redis = stack.backend.redis();
    let _: i64 = redis::cmd("DEL").arg(LATEST).query(&mut redis).unwrap();
    stack.set_ticker("0.012345678901", "98765.4321");

    stack.fire_cron(CRON);

    let stored = stored_latest(stack).unwrap_or_else(|| panic!("no price stored; worker log:\n{}", stack.worker_log()));
    assert_eq!(stored["symbol"], "QRLUSDT");
    // Exact decimals, as strings: not a float's rounding of them.
    assert_eq!(stored["price"], "0.012345678901");
    assert_eq!(stored["volume_24h"], "98765.4321");
    assert!(stored["ts"].as_i64().is_some_and(|ts| ts > 1_700_000_000_000), "ts: {}", stored["ts"]);
    let ttl: i64 = redis::cmd("TTL").arg(LATEST).query(&mut redis).unwrap();
    assert_eq!(ttl, -1, "the latest price must be permanent");

    let answer = stack.get("/v1/price/QRLUSDT");
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let body = answer.json();
    assert_eq!(body["symbol"], "QRLUSDT");
    assert_eq!(body["exchange"], "mexc");
    assert_eq!(body["price"], "0.012345678901");
    assert_eq!(body["volume_24h"], "98765.4321");
    assert_eq!(body["ts"], stored["ts"]);
    // The price task writes the 30 s `cached` copy too; readers prefer it.
    assert_eq!(body["source"], "cached");
    let tier = answer.header("x-edgesync-tier").unwrap_or_default();
    assert!(["l1", "redis"].contains(&tier), "tier {tier:?}");
}

fn a_new_price_replaces_the_old_one(stack: &Stack) {
    stack.set_ticker("0.0200", "1");
    stack.fire_cron(CRON);
    stack.set_ticker("0.0300", "2");
    stack.fire_cron(CRON);
    let stored = stored_latest(stack).expect("price stored");
    assert_eq!(stored["price"], "0.0300");
    assert_eq!(stack.get("/v1/price/QRLUSDT").json()["price"], "0.0300");
}

fn health_reports_the_redis_tier(stack: &Stack) {
    let answer = stack.get("/health");
    assert_eq!(answer.status, 200);
    let body = answer.json();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["store"], "redis");
}

fn bad_requests_get_json_errors(stack: &Stack) {
    let invalid = stack.get("/v1/price/qrl*usdt");
    assert_eq!(invalid.status, 400, "{}", invalid.body);
    assert_eq!(invalid.json()["error"]["code"], "bad_request");
    assert!(invalid.json()["error"]["message"].as_str().unwrap().contains("symbol"));

    let never_synced = stack.get("/v1/price/NOSUCHUSDT");
    assert_eq!(never_synced.status, 404);
    assert_eq!(never_synced.json()["error"]["code"], "not_found");

    let unknown = stack.get("/v2/nothing");
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["error"]["code"], "not_found");
}

/// The steady state: `price:…:cached` has expired and only `latest` is there. With a cold
/// isolate cache a read makes exactly one Redis request (both keys in one pipeline); the next
/// read within the fresh window (`MEMORY_TIER_TTL`, 2 s) makes none; a value another writer
/// puts in Redis is seen once the window has passed.
fn a_price_read_costs_one_redis_request_at_most(stack: &Stack) {
    let latest = "qrl:v1:price:mexc:COLDUSDT:latest";
    let record =
        |price: &str| json!({"symbol": "COLDUSDT", "price": price, "volume_24h": null, "ts": 1_700_000_000_000_i64});
    let mut redis = stack.backend.redis();
    let _: () = redis::cmd("SET").arg(latest).arg(record("1.5").to_string()).query(&mut redis).unwrap();
    let requests = || stack.backend.gateway_stats()["requests"].as_u64().unwrap();

    stack.backend.reset_gateway_stats();
    let first = stack.get("/v1/price/COLDUSDT");
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!((first.json()["price"].as_str(), first.json()["source"].as_str()), (Some("1.5"), Some("latest")));
    assert_eq!(requests(), 1, "cached and latest in one request");
    let second = stack.get("/v1/price/COLDUSDT");
    assert_eq!(second.header("x-edgesync-tier"), Some("l1"));
    assert_eq!(requests(), 1, "within the fresh window: no request (the absent cached key is remembered)");

    // Another isolate's cron writes a new price straight into Redis.
    let _: () = redis::cmd("SET").arg(latest).arg(record("1.75").to_string()).query(&mut redis).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let answer = stack.get("/v1/price/COLDUSDT").json();
        if answer["price"] == "1.75" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the new price was never seen: {answer}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _: () = redis::cmd("DEL").arg(latest).query(&mut redis).unwrap();
}
