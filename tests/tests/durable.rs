//! The durable tier end to end: the worker in workerd with its SQLite Durable Object, real
//! redis-server behind the gateway, the MEXC stand-in. Redis is stopped and started empty
//! (it has no persistence) as an outage would leave it; `wrangler dev` is restarted for a
//! fresh isolate with the Durable Object's data kept. Also run by `durable_cluster.rs`, the
//! same assertions on a Redis Cluster behind the gateway (an outage stops every node).

use std::sync::Mutex;

use edgesync_e2e::harness::{Backing, HttpAnswer, Stack, StackOptions};
use edgesync_e2e::suite::run_suite;
use edgesync_e2e::{admin, binaries};
use redis::Commands;
use serde_json::{json, Value};

const READ_TOKEN: &str = "durable-read-token";
const ADMIN_SECRET: &str = "durable-admin-secret";
const ALL: &str = "*/3 * * * *";
const NAMESPACE: &str = "durable";
const LATEST: &str = "durable:v1:price:mexc:QRLUSDT:latest";
const HISTORY: &str = "durable:v1:price:mexc:QRLUSDT:history";

pub fn main() {
    run_suite(
        || {
            let options = StackOptions {
                binaries: binaries!(),
                vars: [
                    ("REDIS_NAMESPACE", NAMESPACE),
                    ("SYMBOLS", "QRLUSDT"),
                    ("READ_TOKEN", READ_TOKEN),
                    ("ADMIN_SECRET", ADMIN_SECRET),
                ]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            };
            let stack = Stack::start_on(options, Backing::of_suite(env!("CARGO_CRATE_NAME")))?;
            stack.exchange.set_response("/api/v3/myTrades", None, &json!([]));
            Ok(Mutex::new(stack))
        },
        &[
            ("an_outage_loses_no_cron_write", an_outage_loses_no_cron_write),
            ("a_fresh_isolate_answers_every_route_from_the_copy", a_fresh_isolate_answers_every_route_from_the_copy),
            ("a_newer_value_in_redis_wins_over_a_replayed_one", a_newer_value_in_redis_wins_over_a_replayed_one),
            ("without_redis_the_copy_is_the_store_and_survives_a_restart", without_redis_the_copy_is_the_store),
        ],
    )
}

fn stack(fixture: &Mutex<Stack>) -> std::sync::MutexGuard<'_, Stack> {
    fixture.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn private_get(stack: &Stack, path: &str) -> HttpAnswer {
    stack.request("GET", path, &[("authorization", &format!("Bearer {READ_TOKEN}"))], b"")
}

/// Redis up and empty, one cron synced at `price`, and nothing left pending.
fn synced(stack: &Stack, price: &str) {
    stack.backend.restart_redis().expect("redis restarts");
    stack.set_ticker(price, "1000");
    stack.fire_cron(ALL);
    let health = stack.get("/health?deep=1").json();
    assert_eq!(
        health["durable"]["pending"],
        0,
        "a healthy cron leaves nothing pending: {health}\n{}",
        stack.worker_log()
    );
    assert_eq!(redis_latest(stack)["price"], price, "{health}");
}

fn redis_latest(stack: &Stack) -> Value {
    let raw: Option<String> = stack.backend.redis().get(LATEST).expect("GET works");
    raw.map(|text| serde_json::from_str(&text).expect("stored price is JSON")).unwrap_or(Value::Null)
}

/// The price history in Redis, oldest first: (score, price).
fn redis_history(stack: &Stack) -> Vec<(i64, String)> {
    let members: Vec<(String, i64)> = stack.backend.redis().zrange_withscores(HISTORY, 0, -1).expect("ZRANGE works");
    members
        .into_iter()
        .map(|(member, score)| {
            let record: Value = serde_json::from_str(&member).expect("history members are JSON");
            (score, record["price"].as_str().unwrap_or_default().to_owned())
        })
        .collect()
}

/// With Redis stopped, three crons at changing prices are deferred to the copy (the status
/// says so); Redis comes back empty; the next cron replays first: every outage entry is in the
/// history exactly once, in order, latest is the last synced price, and the status recovers.
/// A second replay changes nothing.
fn an_outage_loses_no_cron_write(fixture: &Mutex<Stack>) {
    let stack = stack(fixture);
    synced(&stack, "0.0200");
    stack.backend.stop_redis();
    let outage = ["0.0201", "0.0202", "0.0203"];
    for price in outage {
        stack.set_ticker(price, "1000");
        stack.fire_cron(ALL);
    }
    let status = private_get(&stack, "/v1/sync/status");
    assert_eq!(status.status, 200, "{}", status.body);
    assert_eq!(status.json()["price"]["state"], "redis_deferred", "{}", status.body);
    assert_eq!(status.header("x-edgesync-tier"), Some("durable-stale"));
    let health = stack.get("/health?deep=1").json();
    assert_eq!(health["status"], "degraded", "{health}");
    assert!(health["durable"]["pending"].as_u64().unwrap() > 0, "{health}");
    let price = stack.get("/v1/price/QRLUSDT");
    assert_eq!((price.status, price.json()["price"].as_str()), (200, Some("0.0203")), "{}", price.body);

    stack.backend.restart_redis().expect("redis restarts");
    assert_eq!(redis_latest(&stack), Value::Null, "Redis came back without the outage's writes");
    stack.set_ticker("0.0204", "1000");
    stack.fire_cron(ALL); // replays, then syncs
    let history = redis_history(&stack);
    let prices: Vec<&str> = history.iter().map(|(_, price)| price.as_str()).collect();
    for price in outage {
        assert_eq!(prices.iter().filter(|p| **p == price).count(), 1, "{price} once in {history:?}");
    }
    assert!(history.windows(2).all(|pair| pair[0].0 < pair[1].0), "in time order: {history:?}");
    let order: Vec<&str> = prices.iter().copied().filter(|p| outage.contains(p) || *p == "0.0204").collect();
    assert_eq!(order, ["0.0201", "0.0202", "0.0203", "0.0204"]);
    assert_eq!(redis_latest(&stack)["price"], "0.0204", "the last synced price");
    let status = private_get(&stack, "/v1/sync/status").json();
    assert_eq!(status["price"]["state"], "ok", "{status}");
    let (replayed, deferred) =
        (status["price"]["last_replay_at"].as_i64(), status["price"]["last_deferred_at"].as_i64());
    assert!(replayed.is_some_and(|at| at >= deferred.unwrap_or(i64::MAX)), "the replay is recorded: {status}");
    assert!(status["price"]["replayed_keys"].as_i64().is_some_and(|n| n > 0), "{status}");
    let health = stack.get("/health?deep=1").json();
    assert_eq!(health["durable"]["pending"], 0, "{health}");

    let before = redis_history(&stack);
    stack.fire_cron(ALL);
    let after = redis_history(&stack);
    for price in outage {
        assert_eq!(after.iter().filter(|(_, p)| p == price).count(), 1, "still once after another cron");
    }
    assert!(after.len() <= before.len() + 1, "one new entry per cron: {before:?} → {after:?}");
}

const ROUTES: [&str; 7] = [
    "/v1/price/QRLUSDT",
    "/v1/price/QRLUSDT/history",
    "/v1/account",
    "/v1/positions",
    "/v1/cost/QRLUSDT",
    "/v1/raw/ticker_24hr.QRLUSDT/latest",
    "/v1/sync/status",
];

/// What a route's answer says about the data (not how it was served).
fn data_of(path: &str, answer: &HttpAnswer) -> Value {
    let body = answer.json();
    match path {
        "/v1/price/QRLUSDT" => body["price"].clone(),
        "/v1/price/QRLUSDT/history" => body["entries"].clone(),
        "/v1/sync/status" => body["price"]["last_ok"].clone(),
        _ => body,
    }
}

/// Synced with Redis up; Redis stopped; `wrangler dev` restarted (a fresh isolate: nothing in
/// memory): every route answers 200 from the copy, with the same data, `durable-stale` and an
/// `Age`.
fn a_fresh_isolate_answers_every_route_from_the_copy(fixture: &Mutex<Stack>) {
    let mut stack = stack(fixture);
    synced(&stack, "0.0300");
    let before: Vec<(String, Value)> = ROUTES
        .iter()
        .map(|path| {
            let answer = private_get(&stack, path);
            assert_eq!(answer.status, 200, "{path} before the outage: {}", answer.body);
            (path.to_string(), data_of(path, &answer))
        })
        .collect();
    stack.backend.stop_redis();
    stack.restart_worker().expect("wrangler dev restarts");
    for (path, data) in &before {
        let answer = private_get(&stack, path);
        assert_eq!(answer.status, 200, "{path} in a fresh isolate during the outage: {}", answer.body);
        assert_eq!(answer.header("x-edgesync-tier"), Some("durable-stale"), "{path}");
        assert!(answer.header("age").is_some_and(|age| age.parse::<u64>().is_ok()), "{path}: an Age");
        let now = data_of(path, &answer);
        if path.ends_with("/history") {
            // The copy may hold more: Redis restarted empty before this test, the copy did not.
            let entries = now.as_array().expect("entries");
            for entry in data.as_array().expect("entries") {
                assert!(entries.contains(entry), "{path}: {entry} is still answered");
            }
        } else {
            assert_eq!(&now, data, "{path} answers what was synced");
        }
    }
    let never_synced = stack.get("/v1/price/NEVERUSDT");
    assert_eq!(never_synced.status, 503, "data never synced cannot be answered: {}", never_synced.body);
    stack.backend.restart_redis().expect("redis restarts");
}

/// A value written straight to Redis during the outage (another writer, a newer time) is not
/// overwritten by the older one the copy replays; the history still gains the outage entry.
fn a_newer_value_in_redis_wins_over_a_replayed_one(fixture: &Mutex<Stack>) {
    let stack = stack(fixture);
    synced(&stack, "0.0400");
    stack.backend.stop_redis();
    stack.set_ticker("0.0401", "1000");
    stack.fire_cron(ALL);
    stack.backend.restart_redis().expect("redis restarts");
    let newer = json!({"symbol": "QRLUSDT", "price": "9.99", "volume_24h": null, "ts": 4_000_000_000_000_i64});
    let _: () = stack.backend.redis().set(LATEST, newer.to_string()).unwrap();
    // The exchange fails this time: the cron replays, and the price task writes no data.
    stack
        .exchange
        .inject_fault(&json!({"kind": "server_error", "path": "/api/v3/ticker/24hr", "status": 500, "times": 20}));
    stack.fire_cron(ALL);
    assert_eq!(redis_latest(&stack), newer, "the newer value stays");
    let prices: Vec<String> = redis_history(&stack).into_iter().map(|(_, price)| price).collect();
    assert_eq!(prices.iter().filter(|p| *p == "0.0401").count(), 1, "{prices:?}");
    let health = stack.get("/health?deep=1").json();
    assert_eq!(health["durable"]["pending"], 0, "kept-newer keys are replayed too: {health}");
    stack.exchange.reset();
}

/// No Redis configured (what `make dev` runs without `.dev.vars`): the copy is the store —
/// the cron syncs into it, reads say `durable`, `/health` says so, and a restart of
/// `wrangler dev` finds the data still there, histories trimmed to their bound.
fn without_redis_the_copy_is_the_store(fixture: &Mutex<Stack>) {
    let mut stack = stack(fixture);
    stack.set_worker_vars(&[
        ("UPSTASH_REDIS_REST_URL", ""),
        ("UPSTASH_REDIS_REST_TOKEN", ""),
        ("REDIS_NAMESPACE", "embedded"),
        ("HISTORY_LIMIT", "3"),
    ]);
    stack.restart_worker().expect("wrangler dev restarts without Redis");
    let health = stack.get("/health").json();
    assert_eq!((health["store"].as_str(), health["status"].as_str()), (Some("durable"), Some("ok")), "{health}");
    // A task that never succeeded makes the copy's health degraded, as it does with Redis.
    stack
        .exchange
        .inject_fault(&json!({"kind": "server_error", "path": "/api/v3/ticker/24hr", "status": 500, "times": 20}));
    stack.fire_cron(ALL);
    let health = stack.get("/health?deep=1").json();
    assert_eq!(
        (health["status"].as_str(), health["tasks"]["price"]["state"].as_str()),
        (Some("degraded"), Some("degraded")),
        "{health}"
    );
    stack.exchange.reset();
    stack.exchange.set_response("/api/v3/myTrades", None, &json!([]));
    // Five crons: the copy's histories (members kept as rows of their own) are trimmed to the
    // newest three, in order, as Redis would keep them.
    for price in ["0.0496", "0.0497", "0.0498", "0.0499", "0.0500"] {
        stack.set_ticker(price, "1000");
        stack.fire_cron(ALL);
    }
    let price = stack.get("/v1/price/QRLUSDT");
    assert_eq!((price.status, price.json()["price"].as_str()), (200, Some("0.0500")), "{}", price.body);
    assert_eq!(price.header("x-edgesync-tier"), Some("durable"));
    stack.restart_worker().expect("wrangler dev restarts");
    let price = stack.get("/v1/price/QRLUSDT");
    assert_eq!(
        (price.status, price.json()["price"].as_str()),
        (200, Some("0.0500")),
        "after a restart: {}",
        price.body
    );
    let history = stack.get("/v1/price/QRLUSDT/history");
    assert_eq!(history.header("x-edgesync-tier"), Some("durable"));
    let history = history.json();
    let prices: Vec<&str> =
        history["entries"].as_array().unwrap().iter().filter_map(|entry| entry["price"].as_str()).collect();
    let mut oldest_first = prices.clone();
    oldest_first.sort_unstable();
    assert_eq!(oldest_first, ["0.0498", "0.0499", "0.0500"], "the newest three, after a restart: {history}");
    let raw = private_get(&stack, "/v1/raw/account_info/history").json();
    assert_eq!(raw["entries"].as_array().map(Vec::len), Some(3), "raw responses trimmed alike: {raw}");
    // Private reads on the copy: every data route says so; stats count its keys without
    // Redis's memory figures.
    for path in [
        "/v1/positions",
        "/v1/sync/status",
        "/v1/cost/QRLUSDT",
        "/v1/raw/account_info/history",
        "/v1/account",
        "/v1/raw/account_info/latest",
    ] {
        let answer = private_get(&stack, path);
        assert_eq!(
            (answer.status, answer.header("x-edgesync-tier")),
            (200, Some("durable")),
            "{path}: {}",
            answer.body
        );
    }
    // Read-through market data on the copy: answered (from the exchange or what the copy
    // cached), and saying from where.
    for path in
        ["/v1/ticker/QRLUSDT", "/v1/ohlcv/QRLUSDT?limit=5", "/v1/deals/QRLUSDT?limit=5", "/v1/orderbook/QRLUSDT"]
    {
        for _ in 0..2 {
            let answer = stack.get(path);
            let tier = answer.header("x-edgesync-tier").unwrap_or_default().to_owned();
            assert_eq!(answer.status, 200, "{path}: {}", answer.body);
            assert!(["exchange", "durable", "l1"].contains(&tier.as_str()), "{path}: tier `{tier}`");
        }
    }
    for path in ["/health", "/openapi.json"] {
        assert_eq!(stack.get(path).status, 200, "{path}");
    }
    assert_eq!(private_get(&stack, "/metrics").status, 200, "/metrics");
    let stats = private_get(&stack, "/v1/stats");
    assert_eq!(stats.status, 200, "{}", stats.body);
    let stats = stats.json();
    assert!(stats["namespace_keys"].as_u64().is_some_and(|n| n > 0), "{stats}");
    assert!(stats["used_memory_bytes"].is_null(), "{stats}");
    // The admin routes on the copy alone: a task run now, an invalidation that deletes cache
    // classes (a SCAN of the copy) and leaves permanent data, and a warm-up that refills.
    stack.set_ticker("0.0501", "1000");
    let synced = admin::post(&stack, ADMIN_SECRET, "/v1/admin/sync/price", &json!({}));
    assert_eq!((synced.status, synced.json()["ok"].as_bool()), (200, Some(true)), "{}", synced.body);
    let invalidated = admin::post(&stack, ADMIN_SECRET, "/v1/admin/invalidate", &json!({"all": true}));
    assert_eq!(invalidated.status, 200, "{}", invalidated.body);
    let invalidated = invalidated.json();
    assert!(invalidated["deleted"].as_u64().is_some_and(|n| n > 0), "the market reads cached above: {invalidated}");
    assert!(invalidated["kept_permanent"].as_u64().is_some_and(|n| n > 0), "{invalidated}");
    let warmed = admin::post(&stack, ADMIN_SECRET, "/v1/admin/warm", &json!({"classes": ["ticker"]}));
    assert_eq!(warmed.status, 200, "{}", warmed.body);
    let warmed = warmed.json();
    assert_eq!((warmed["success"].as_u64(), warmed["failed"].as_u64()), (Some(1), Some(0)), "refilled: {warmed}");
    let price = stack.get("/v1/price/QRLUSDT");
    assert_eq!(
        (price.status, price.json()["price"].as_str(), price.json()["source"].as_str()),
        (200, Some("0.0501"), Some("latest")),
        "the permanent latest price stays: {}",
        price.body
    );
    let redis_keys: Vec<String> = stack.backend.keys_matching("embedded:*");
    assert!(redis_keys.is_empty(), "nothing went to Redis: {redis_keys:?}");
}
