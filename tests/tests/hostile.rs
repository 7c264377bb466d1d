//! Hostile input against the worker in workerd, on real redis-server: planted values that are
//! not edgesync's records, and requests built to destroy data, replay signatures, exhaust
//! memory or spend the exchange account's rate weight. One test per finding. Every planted
//! permanent key is compared afterwards at the byte level (`TYPE`, `DUMP`, `PTTL`): no read
//! or invalidation may change it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use edgesync_e2e::admin::{self, now_secs};
use edgesync_e2e::binaries;
use edgesync_e2e::harness::{HttpAnswer, Stack, StackOptions};
use edgesync_e2e::suite::run_suite;
use redis::Commands;
use serde_json::{json, Value};

const READ_TOKEN: &str = "hostile-read-token";
const ADMIN_SECRET: &str = "hostile-admin-secret";
const ALL: &str = "*/3 * * * *";
/// Short, so the replay test can outwait a nonce's old lifetime.
const ADMIN_WINDOW: i64 = 10;
const MISSES_PER_MINUTE: u64 = 6;

fn main() {
    let window = ADMIN_WINDOW.to_string();
    let misses = MISSES_PER_MINUTE.to_string();
    let vars = [
        ("REDIS_NAMESPACE", "hostile"),
        ("SYMBOLS", "QRLUSDT"),
        ("READ_TOKEN", READ_TOKEN),
        ("ADMIN_SECRET", ADMIN_SECRET),
        ("MEMORY_TIER_TTL", "0"),
        ("ADMIN_WINDOW_SECONDS", window.as_str()),
        ("READ_THROUGH_MISSES_PER_MINUTE", misses.as_str()),
    ];
    let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    run_suite(
        move || {
            let stack = Stack::start(StackOptions { binaries: binaries!(), vars })?;
            stack.exchange.set_response("/api/v3/myTrades", None, &json!([]));
            stack.fire_cron(ALL);
            Ok(stack)
        },
        &[
            ("reads_never_delete_permanent_data", reads_never_delete_permanent_data),
            ("invalidation_keeps_permanent_data_and_nonces", invalidation_keeps_permanent_data_and_nonces),
            ("replay_with_a_future_timestamp_stays_refused", replay_with_a_future_timestamp_stays_refused),
            ("timestamps_far_outside_the_window_are_refused", timestamps_far_outside_the_window_are_refused),
            ("positions_skip_invalid_index_members", positions_skip_invalid_index_members),
            ("a_text_status_counter_is_repaired_once", a_text_status_counter_is_repaired_once),
            ("huge_bodies_are_refused_before_they_are_read", huge_bodies_are_refused_before_they_are_read),
            ("read_through_fetches_only_what_is_configured", read_through_fetches_only_what_is_configured),
            ("history_skips_members_that_do_not_decode", history_skips_members_that_do_not_decode),
            ("cached_values_are_checked_and_untimed_ones_expire", cached_values_are_checked_and_untimed_ones_expire),
            ("errors_are_json_and_echo_little", errors_are_json_and_echo_little),
            // Last: it empties the isolate's miss budget.
            ("read_through_misses_are_budgeted", read_through_misses_are_budgeted),
        ],
    )
}

/// What `redis-cli` would show of a key: its type, its serialized value and its TTL.
#[derive(Debug, PartialEq, Eq)]
struct KeyDump {
    kind: String,
    dump: Option<Vec<u8>>,
    pttl: i64,
}

fn key_dump(redis: &mut impl redis::ConnectionLike, key: &str) -> KeyDump {
    KeyDump {
        kind: redis::cmd("TYPE").arg(key).query(redis).unwrap(),
        dump: redis::cmd("DUMP").arg(key).query(redis).unwrap(),
        pttl: redis::cmd("PTTL").arg(key).query(redis).unwrap(),
    }
}

fn scan(redis: &mut impl redis::ConnectionLike, pattern: &str) -> Vec<String> {
    let mut keys: Vec<String> = redis.scan_match::<_, String>(pattern).unwrap().collect::<Result<_, _>>().unwrap();
    keys.sort();
    keys
}

fn private_get(stack: &Stack, path: &str) -> HttpAnswer {
    stack.request("GET", path, &[("authorization", &format!("Bearer {READ_TOKEN}"))], b"")
}

fn admin(stack: &Stack, path: &str, body: &Value) -> HttpAnswer {
    admin::post(stack, ADMIN_SECRET, path, body)
}

fn assert_error(answer: &HttpAnswer, status: u16, code: &str) -> Value {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert!(answer.header("content-type").is_some_and(|t| t.starts_with("application/json")));
    let body = answer.json();
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    body
}

/// Cache keys of the namespace (the classes invalidation may always remove).
fn is_cache_key(key: &str) -> bool {
    ["hostile:v1:ticker:", "hostile:v1:ohlcv:", "hostile:v1:deals:", "hostile:v1:orderbook:"]
        .iter()
        .any(|prefix| key.starts_with(prefix))
        || key.ends_with(":cached")
}

fn reads_never_delete_permanent_data(stack: &Stack) {
    let mut redis = stack.backend.redis();
    // A qrl-api price record, a hash where a string belongs, text, an OKX-style raw record.
    let legacy_price = r#"{"price":"0.5","volume":"10","timestamp":"2024-01-01T00:00:00"}"#;
    let planted = [
        ("/v1/price/PLANTUSDT", "hostile:v1:price:mexc:PLANTUSDT:latest", false),
        ("/v1/price/WRONGUSDT", "hostile:v1:price:mexc:WRONGUSDT:latest", false),
        ("/v1/account", "hostile:v1:account:mexc:main", true),
        ("/v1/cost/PLANTUSDT", "hostile:v1:cost:mexc:main:PLANTUSDT", true),
        ("/v1/raw/planted/latest", "hostile:v1:raw:mexc:planted:latest", true),
    ];
    let _: () = redis.set(planted[0].1, legacy_price).unwrap();
    let _: () = redis.hset(planted[1].1, "price", "1").unwrap();
    let _: () = redis.set(planted[2].1, "not json at all").unwrap();
    let _: () = redis.set(planted[3].1, "[1,2,3]").unwrap();
    let _: () = redis.set(planted[4].1, r#"{"response":{},"timestamp":1700000000000,"datetime":"x"}"#).unwrap();
    let before: Vec<KeyDump> = planted.iter().map(|(_, key, _)| key_dump(&mut redis, key)).collect();

    for round in 0..2 {
        for (path, key, private) in planted {
            let answer = if private { private_get(stack, path) } else { stack.get(path) };
            let body = assert_error(&answer, 500, "unreadable_value");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(message.contains(key) && message.contains("left as it is"), "round {round}: {message}");
        }
    }
    for ((_, key, _), before) in planted.iter().zip(&before) {
        let after = key_dump(&mut redis, key);
        assert_eq!(&after, before, "{key} changed");
        assert_eq!(after.pttl, -1, "{key} gained a TTL");
    }

    let stats = private_get(stack, "/v1/stats").json();
    let unreadable = &stats["memory_tier"]["unreadable"];
    for (class, at_least) in [("price_latest", 4), ("account", 2), ("cost", 2), ("raw", 2)] {
        assert!(unreadable[class].as_u64().unwrap_or(0) >= at_least, "{class}: {stats}");
    }
    // One JSON log line per key per isolate, however often the key is read.
    stack.wait_for_log("hostile:v1:raw:mexc:planted:latest").unwrap();
    let log = stack.worker_log();
    let lines = |key: &str| log.lines().filter(|l| l.contains("unreadable_value") && l.contains(key)).count();
    assert_eq!(lines(planted[0].1), 1, "{log}");
    assert_eq!(lines(planted[2].1), 1);

    for (_, key, _) in planted {
        let _: () = redis.del(key).unwrap();
    }
    stack.fire_cron(ALL); // the account back
}

fn invalidation_keeps_permanent_data_and_nonces(stack: &Stack) {
    stack.fire_cron(ALL);
    let _ = stack.get("/v1/ticker/QRLUSDT"); // a read-through cache key too
    let mut redis = stack.backend.redis();
    let _: () = redis.set("hostile:v1:migrator:lock", "run-1").unwrap();
    let permanent: Vec<String> = scan(&mut redis, "hostile:v1:*").into_iter().filter(|k| !is_cache_key(k)).collect();
    assert!(permanent.iter().any(|k| k.ends_with(":latest")) && permanent.len() >= 8, "{permanent:?}");
    let before: Vec<KeyDump> = permanent.iter().map(|k| key_dump(&mut redis, k)).collect();
    let nonces_before = scan(&mut redis, "hostile:nonce:*");

    for body in [
        json!({"symbol": "QRLUSDT"}),
        json!({"all": true}),
        json!({"pattern": "*"}),
        json!({"pattern": "nonce:*"}),
        json!({"pattern": "[^]*"}),
    ] {
        let answer = admin(stack, "/v1/admin/invalidate", &body);
        assert_eq!(answer.status, 200, "{body}: {}", answer.body);
        let done = answer.json();
        assert!(done["deleted_by_class"].is_object() && done["kept_permanent"].as_u64().is_some(), "{done}");
    }
    for (key, before) in permanent.iter().zip(&before) {
        assert_eq!(&key_dump(&mut redis, key), before, "{key} was touched by a cache invalidation");
    }
    assert!(scan(&mut redis, "hostile:v1:*").iter().all(|k| !is_cache_key(k)), "cache keys are gone");
    let nonces = scan(&mut redis, "hostile:nonce:*");
    assert!(nonces_before.iter().all(|n| nonces.contains(n)), "a nonce was deleted");
    assert!(nonces.len() >= nonces_before.len() + 5, "each call left its nonce");

    // Asked for by name, permanent data goes, counted per class; nonces and the lock stay.
    let symbol = admin(stack, "/v1/admin/invalidate", &json!({"symbol": "QRLUSDT", "include_permanent": true})).json();
    assert_eq!(symbol["deleted_by_class"]["price_latest"], 1, "{symbol}");
    assert_eq!(symbol["deleted_by_class"]["price_history"], 1, "{symbol}");
    let everything = admin(stack, "/v1/admin/invalidate", &json!({"all": true, "include_permanent": true})).json();
    assert_eq!(everything["deleted_by_class"]["account"], 1, "{everything}");
    assert_eq!(scan(&mut redis, "hostile:v1:*"), ["hostile:v1:migrator:lock"]);
    let nonces_after = scan(&mut redis, "hostile:nonce:*");
    assert!(nonces.iter().all(|n| nonces_after.contains(n)), "a nonce was deleted");

    let _: () = redis.del("hostile:v1:migrator:lock").unwrap();
    stack.fire_cron(ALL);
}

fn replay_with_a_future_timestamp_stays_refused(stack: &Stack) {
    let body = json!({"pattern": "nothing-here:*"}).to_string();
    let path = "/v1/admin/invalidate";
    let first_use = now_secs();
    // As late a timestamp as is accepted, less 5 s: the nonce must outlive a plain window.
    let timestamp = (first_use + ADMIN_WINDOW - 5).to_string();
    let signature = admin::sign(ADMIN_SECRET, &timestamp, path, body.as_bytes());
    let first = admin::post_signed(stack, path, body.as_bytes(), &timestamp, &signature);
    assert_eq!(first.status, 200, "{}", first.body);
    let nonce = format!("hostile:nonce:{signature}");
    let ttl: i64 = stack.backend.redis().ttl(&nonce).unwrap();
    let acceptable_for = first_use + 2 * ADMIN_WINDOW - 5 - now_secs();
    assert!(ttl >= acceptable_for, "the nonce lives {ttl} s but the timestamp is acceptable for {acceptable_for} s");

    // Outwait the window a nonce used to live (measured from the first use), then replay:
    // the timestamp is still acceptable, so only the nonce can refuse it.
    let deadline = Instant::now() + Duration::from_secs(ADMIN_WINDOW as u64 + 5);
    while now_secs() <= first_use + ADMIN_WINDOW {
        assert!(Instant::now() < deadline, "the clock did not advance");
        std::thread::sleep(Duration::from_millis(100));
    }
    let replay = admin::post_signed(stack, path, body.as_bytes(), &timestamp, &signature);
    let error = assert_error(&replay, 401, "unauthorized");
    assert!(error["error"]["message"].as_str().unwrap().contains("already used"), "{error}");
}

/// Correctly signed, but with timestamps whose distance from now overflows an `i64`: the
/// distance is computed with checked arithmetic, so they are 401s, not wrapped into the window.
fn timestamps_far_outside_the_window_are_refused(stack: &Stack) {
    let body = json!({"pattern": "nothing-here:*"}).to_string();
    let path = "/v1/admin/invalidate";
    for timestamp in ["-9223372035058435323", "-9223372036854775808", "9223372036854775807"] {
        let signature = admin::sign(ADMIN_SECRET, timestamp, path, body.as_bytes());
        let answer = admin::post_signed(stack, path, body.as_bytes(), timestamp, &signature);
        let error = assert_error(&answer, 401, "unauthorized");
        assert!(error["error"]["message"].as_str().unwrap().contains("from now"), "{timestamp}: {error}");
    }
}

/// `runs = "text"` in a task's status hash made `HINCRBY` fail, so every run reported failure:
/// the task repairs the counter, logs it once, and writes its data and status.
fn a_text_status_counter_is_repaired_once(stack: &Stack) {
    let mut redis = stack.backend.redis();
    let status = scan(&mut redis, "hostile:*sync:price:status");
    let [status] = status.as_slice() else { panic!("one price status hash: {status:?}") };
    let latest = "hostile:v1:price:mexc:QRLUSDT:latest";
    let _: () = redis.hset(status, "runs", "text").unwrap();
    let _: () = redis.del(latest).unwrap();
    let last_ok_before: i64 = redis.hget(status, "last_ok").unwrap();
    stack.fire_cron(ALL);
    let runs: String = redis.hget(status, "runs").unwrap();
    assert_eq!(runs, "1", "restarted at this run");
    let last_ok: i64 = redis.hget(status, "last_ok").unwrap();
    assert!(last_ok > last_ok_before, "the run's status was written as a success");
    let exists: bool = redis.exists(latest).unwrap();
    assert!(exists, "the run's data was written");
    stack.wait_for_log("status_counter_repaired").unwrap();
    stack.fire_cron(ALL);
    let runs: String = redis.hget(status, "runs").unwrap();
    assert_eq!(runs, "2");
    let repaired = stack.worker_log().lines().filter(|line| line.contains("status_counter_repaired")).count();
    assert_eq!(repaired, 1, "logged once");
}

fn positions_skip_invalid_index_members(stack: &Stack) {
    let mut redis = stack.backend.redis();
    let index = "hostile:v1:position-index:main:mexc";
    let _: () = redis.sadd(index, &["BAD:s*", "AAAUSDT:spot", "no-colon"]).unwrap();
    let _: () = redis.hset("hostile:v1:position:main:mexc:AAAUSDT:spot", "base_free", "7").unwrap();
    let answer = private_get(stack, "/v1/positions");
    assert_eq!(answer.status, 200, "{}", answer.body);
    let body = answer.json();
    let positions = body["positions"].as_array().unwrap();
    let by_symbol = |symbol: &str| positions.iter().find(|p| p["symbol"] == symbol).cloned();
    assert_eq!(by_symbol("AAAUSDT").unwrap()["base_free"], "7", "{body}");
    let qrl = by_symbol("QRLUSDT").expect("the real position is not dropped");
    assert!(qrl["base_free"].is_string() && qrl["side"] == "spot", "{body}");
    assert_eq!(positions.len(), 2, "{body}");
    let skipped: Vec<&str> =
        body["skipped"].as_array().unwrap().iter().map(|s| s["member"].as_str().unwrap()).collect();
    assert_eq!(skipped.len(), 2, "{body}");
    assert!(skipped.contains(&"BAD:s*") && skipped.contains(&"no-colon"), "{body}");
    let _: () = redis.srem(index, &["BAD:s*", "AAAUSDT:spot", "no-colon"]).unwrap();
    let _: () = redis.del("hostile:v1:position:main:mexc:AAAUSDT:spot").unwrap();
}

/// Sends `head` and then as much of `body` as the server takes, and reads the answer.
fn raw_exchange(stack: &Stack, head: &str, body: impl Iterator<Item = Vec<u8>>) -> (u16, String) {
    let address = stack.worker_url.trim_start_matches("http://");
    let mut socket = TcpStream::connect(address).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    socket.write_all(head.as_bytes()).unwrap();
    for chunk in body {
        // The server may answer and close early; that is the point.
        if socket.write_all(&chunk).is_err() {
            break;
        }
    }
    let mut answer = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        match socket.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buffer[..n]);
                if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
                    break;
                }
            }
            Err(error) => panic!("no answer ({error}) after {:?}", String::from_utf8_lossy(&answer)),
        }
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

fn huge_bodies_are_refused_before_they_are_read(stack: &Stack) {
    // 100 MB with its length declared. (`wrangler dev`'s local proxy takes the whole body
    // before workerd sees the request; Cloudflare's edge streams it.) The worker answers
    // from the declared length, so workerd never holds the body.
    let rss_before = stack.workerd_rss_kib();
    assert!(rss_before > 0, "workerd not found in the worker's process group");
    let head = "POST /v1/admin/warm HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
                Content-Length: 104857600\r\nConnection: close\r\n\r\n";
    let (status, text) = raw_exchange(stack, head, (0..100).map(|_| vec![b' '; 1024 * 1024]));
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("\"body_too_large\"") && text.contains("Content-Length is 104857600"), "{text}");
    let growth_mib = stack.workerd_rss_kib().saturating_sub(rss_before) / 1024;
    assert!(growth_mib < 32, "workerd grew by {growth_mib} MiB for a refused body");

    // No length (chunked): streamed and refused once it passes the cap.
    let head = "POST /v1/admin/warm HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
                Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    let chunk = |size: usize| format!("{size:x}\r\n{}\r\n", " ".repeat(size)).into_bytes();
    let chunks = (0..16).map(move |_| chunk(32 * 1024)).chain(std::iter::once(b"0\r\n\r\n".to_vec()));
    let (status, text) = raw_exchange(stack, head, chunks);
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("\"body_too_large\"") && text.contains("longer"), "{text}");
}

fn read_through_fetches_only_what_is_configured(stack: &Stack) {
    stack.exchange.reset();
    for symbol in ["ZZZZ9", "BTCUSDT", "ETHUSDT"] {
        for route in ["ticker", "ohlcv", "deals", "orderbook"] {
            assert_error(&stack.get(&format!("/v1/{route}/{symbol}")), 404, "symbol_not_served");
        }
    }
    assert_eq!(stack.exchange.requests()["total"], 0, "no exchange call for symbols not served");

    // Odd limits share the step they are fetched at: one call for 50 limits.
    let _: () = stack.backend.redis().del("hostile:v1:deals:mexc:QRLUSDT:1000").unwrap();
    for limit in 901..=950 {
        let answer = stack.get(&format!("/v1/deals/QRLUSDT?limit={limit}"));
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert!(answer.json().as_array().unwrap().len() <= limit);
    }
    assert_eq!(stack.exchange.requests()["counts"]["/api/v3/trades"], 1, "{}", stack.exchange.requests());
    let keys = scan(&mut stack.backend.redis(), "hostile:v1:deals:*");
    assert_eq!(keys, ["hostile:v1:deals:mexc:QRLUSDT:1000"]);
}

fn read_through_misses_are_budgeted(stack: &Stack) {
    let mut redis = stack.backend.redis();
    for key in scan(&mut redis, "hostile:v1:orderbook:*") {
        let _: () = redis.del(key).unwrap();
    }
    stack.exchange.reset();
    // Nine distinct misses, one per limit step; the isolate may pay for six a minute.
    let mut refused = 0;
    for limit in [5, 10, 20, 50, 100, 200, 500, 1000, 5000] {
        let answer = stack.get(&format!("/v1/orderbook/QRLUSDT?limit={limit}"));
        if answer.status == 503 {
            assert_error(&answer, 503, "read_through_budget_exhausted");
            assert!(answer.header("retry-after").is_some_and(|s| s.parse::<u64>().is_ok_and(|s| s >= 1)));
            refused += 1;
        } else {
            assert_eq!(answer.status, 200, "{}", answer.body);
        }
    }
    let calls = stack.exchange.requests()["total"].as_u64().unwrap();
    assert!(calls <= MISSES_PER_MINUTE, "{calls} exchange calls for a budget of {MISSES_PER_MINUTE}");
    assert_eq!(calls + refused, 9, "every miss was either paid for or refused");
    assert!(refused >= 3);
}

fn history_skips_members_that_do_not_decode(stack: &Stack) {
    let mut redis = stack.backend.redis();
    let price_history = "hostile:v1:price:mexc:QRLUSDT:history";
    let raw_history = "hostile:v1:raw:mexc:account_info:history";
    let good: u64 = redis.zcard(price_history).unwrap();
    assert!(good >= 1);
    for key in [price_history, raw_history] {
        let _: () = redis.zadd(key, "x", 1.5).unwrap();
        let _: () = redis.zadd(key, "not json", 1000).unwrap();
    }
    let before = [key_dump(&mut redis, price_history), key_dump(&mut redis, raw_history)];

    let prices = stack.get("/v1/price/QRLUSDT/history?from=0&limit=1000");
    assert_eq!(prices.status, 200, "{}", prices.body);
    let body = prices.json();
    assert_eq!((body["skipped"].as_u64(), body["count"].as_u64()), (Some(2), Some(good)), "{body}");
    assert!(body["entries"].as_array().unwrap().iter().all(|e| e["symbol"] == "QRLUSDT"));
    let raw = private_get(stack, "/v1/raw/account_info/history?start=0&limit=1000");
    assert_eq!(raw.status, 200, "{}", raw.body);
    assert_eq!(raw.json()["skipped"], 2, "{}", raw.body);

    assert_eq!([key_dump(&mut redis, price_history), key_dump(&mut redis, raw_history)], before);
    let stats = private_get(stack, "/v1/stats").json();
    assert!(stats["memory_tier"]["unreadable"]["price_history"].as_u64().unwrap_or(0) >= 2, "{stats}");
    for key in [price_history, raw_history] {
        let _: () = redis.zrem(key, &["x", "not json"]).unwrap();
    }
}

fn cached_values_are_checked_and_untimed_ones_expire(stack: &Stack) {
    let mut redis = stack.backend.redis();
    let ticker = "hostile:v1:ticker:mexc:QRLUSDT";
    let _: () = redis.set_ex(ticker, "<script>alert(1)</script>", 5).unwrap();
    let answer = stack.get("/v1/ticker/QRLUSDT");
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.header("x-edgesync-tier"), Some("exchange"), "the planted value was not served");
    assert_eq!(answer.json()["symbol"], "QRLUSDT");
    assert_eq!(answer.header("x-content-type-options"), Some("nosniff"));
    let stored: String = redis.get(ticker).unwrap();
    assert_eq!(serde_json::from_str::<Value>(&stored).unwrap()["symbol"], "QRLUSDT");

    let book = "hostile:v1:orderbook:mexc:QRLUSDT:20";
    let _: () = redis.set(book, r#"{"bids":[["1","1"]],"asks":[],"planted":true}"#).unwrap();
    let answer = stack.get("/v1/orderbook/QRLUSDT");
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.json().get("planted").is_none(), "a cache value without TTL is expired: {}", answer.body);
    let ttl: i64 = redis.ttl(book).unwrap();
    assert!((1..=5).contains(&ttl), "rewritten with its class TTL, not {ttl}");
}

fn errors_are_json_and_echo_little(stack: &Stack) {
    let long = "Z".repeat(7_000);
    for path in [format!("/v1/price/{long}"), format!("/v1/ticker/{long}"), format!("/{long}")] {
        let answer = stack.get(&path);
        let status = answer.status;
        assert!(status == 400 || status == 404, "{status}");
        let body = answer.json();
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.chars().count() <= 200, "{} characters echoed", message.len());
    }
    let answer = stack.get(&format!("/v1/price/{}", "Z".repeat(20_000)));
    assert_error(&answer, 414, "uri_too_long");
    let answer = stack.get(&format!("/v1/ohlcv/QRLUSDT?interval={}", "9".repeat(5_000))).json();
    assert!(answer["error"]["message"].as_str().unwrap().len() < 300, "{answer}");

    let lowercase = stack.request("GET", "/v1/sync/status", &[("authorization", &format!("bearer {READ_TOKEN}"))], b"");
    assert_eq!(lowercase.status, 200, "the auth scheme is case-insensitive: {}", lowercase.body);
    let wrong_scheme =
        stack.request("GET", "/v1/sync/status", &[("authorization", &format!("Basic {READ_TOKEN}"))], b"");
    assert_error(&wrong_scheme, 401, "unauthorized");
    for method in ["PUT", "PATCH", "OPTIONS", "TRACE"] {
        assert_error(&stack.request(method, "/v1/price/QRLUSDT", &[], b""), 405, "method_not_allowed");
    }
}
