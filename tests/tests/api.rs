//! The HTTP API end to end, through workerd: every route with its documented shape, auth
//! (bearer and signed single-use admin calls), input validation, read-through caching with
//! the exchange call counted at the stand-in, the OHLCV TTL rule, namespace-confined
//! invalidation, and reads during a Redis outage. Also run by `api_cluster.rs`: `api` on one
//! redis-server, `api_cluster` — the same assertions — on a Redis Cluster behind the gateway
//! (an outage there stops every node).

use std::time::{SystemTime, UNIX_EPOCH};

use edgesync_e2e::harness::{Backing, HttpAnswer, Stack, StackOptions};
use edgesync_e2e::suite::run_suite;
use edgesync_e2e::{admin, binaries};
use redis::Commands;
use serde_json::{json, Value};

const READ_TOKEN: &str = "e2e-read-token";
const ADMIN_SECRET: &str = "e2e-admin-secret";
const ALL: &str = "*/3 * * * *";

pub fn main() {
    let vars = [
        ("REDIS_NAMESPACE", "api"),
        ("SYMBOLS", "QRLUSDT,BTCUSDT"),
        ("READ_TOKEN", READ_TOKEN),
        ("ADMIN_SECRET", ADMIN_SECRET),
        // Every read asks Redis, so the tier header shows Redis vs. the memory copy plainly.
        ("MEMORY_TIER_TTL", "0"),
        // ETHUSDT is not synced, only served read-through.
        ("READ_THROUGH_SYMBOLS", "ETHUSDT"),
    ];
    let backing = Backing::of_suite(env!("CARGO_CRATE_NAME"));
    let tests: &[edgesync_e2e::suite::Test<Stack>] = &[
        ("health_and_openapi", health_and_openapi),
        ("price_and_history", price_and_history),
        ("ticker_is_read_through_once", ticker_is_read_through_once),
        ("ohlcv_ttl_ends_at_the_open_candle_close", ohlcv_ttl_ends_at_the_open_candle_close),
        ("deals_and_orderbook", deals_and_orderbook),
        ("private_routes_need_the_token", private_routes_need_the_token),
        ("private_routes_answer_their_shapes", private_routes_answer_their_shapes),
        ("admin_signatures_are_checked_and_single_use", admin_signatures_are_checked_and_single_use),
        ("admin_sync_and_warm", admin_sync_and_warm),
        ("invalidation_stays_inside_the_namespace", invalidation_stays_inside_the_namespace),
        ("bad_input_is_a_400_naming_the_parameter", bad_input_is_a_400_naming_the_parameter),
        ("unknown_routes_and_methods", unknown_routes_and_methods),
        ("concurrent_reads_share_one_redis_request", concurrent_reads_share_one_redis_request),
        ("redis_outage_serves_stale_or_503", redis_outage_serves_stale_or_503),
    ];
    run_suite(
        || {
            let options = StackOptions {
                binaries: binaries!(),
                vars: vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            };
            let stack = Stack::start_on(options, backing)?;
            stack.exchange.set_response("/api/v3/myTrades", None, &json!([]));
            stack.fire_cron(ALL);
            Ok(stack)
        },
        tests,
    )
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

fn private_get(stack: &Stack, path: &str) -> HttpAnswer {
    stack.request("GET", path, &[("authorization", &format!("Bearer {READ_TOKEN}"))], b"")
}

fn admin(stack: &Stack, path_and_query: &str, body: &Value) -> HttpAnswer {
    admin::post(stack, ADMIN_SECRET, path_and_query, body)
}

fn sign(timestamp: &str, path_and_query: &str, body: &[u8]) -> String {
    admin::sign(ADMIN_SECRET, timestamp, path_and_query, body)
}

fn admin_with(stack: &Stack, path_and_query: &str, body: &[u8], timestamp: &str, signature: &str) -> HttpAnswer {
    admin::post_signed(stack, path_and_query, body, timestamp, signature)
}

fn assert_error(answer: &HttpAnswer, status: u16, code: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    let body = answer.json();
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
}

fn health_and_openapi(stack: &Stack) {
    let health = stack.get("/health");
    assert_eq!(health.status, 200);
    let body = health.json();
    assert_eq!((body["status"].as_str(), body["store"].as_str()), (Some("ok"), Some("redis")), "{body}");
    for task in ["balance", "price", "cost"] {
        assert_eq!(body["tasks"][task]["state"], "ok", "{body}");
    }
    let openapi = stack.get("/openapi.json");
    assert_eq!(openapi.status, 200);
    assert_eq!(openapi.json()["openapi"], "3.1.0");
    assert!(openapi.json()["paths"]["/v1/admin/invalidate"]["post"].is_object());
}

fn price_and_history(stack: &Stack) {
    let price = stack.get("/v1/price/QRLUSDT");
    assert_eq!(price.status, 200, "{}", price.body);
    let body = price.json();
    for field in ["symbol", "exchange", "price", "volume_24h", "ts", "ts_iso", "source"] {
        assert!(body.get(field).is_some(), "{field} missing in {body}");
    }
    assert_eq!(price.header("x-edgesync-tier"), Some("redis"));
    assert!(price.header("cache-control").unwrap().starts_with("public, max-age="));
    stack.fire_cron(ALL);
    let history = stack.get("/v1/price/QRLUSDT/history?limit=1");
    assert_eq!(history.status, 200);
    let body = history.json();
    assert_eq!(body["count"], 1);
    assert_eq!(body["entries"][0]["symbol"], "QRLUSDT");
    let all = stack.get(&format!("/v1/price/QRLUSDT/history?from=0&to={}", now_ms())).json();
    assert!(all["count"].as_i64().unwrap() >= 2);
    let ts: Vec<i64> = all["entries"].as_array().unwrap().iter().map(|e| e["ts"].as_i64().unwrap()).collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "oldest first");
    assert_eq!(stack.get("/v1/price/QRLUSDT/history?from=1&to=2").json()["count"], 0);
}

fn ticker_is_read_through_once(stack: &Stack) {
    let _: () = stack.backend.redis().del("api:v1:ticker:mexc:ETHUSDT").unwrap();
    stack.exchange.reset();
    let first = stack.get("/v1/ticker/ETHUSDT");
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.header("x-edgesync-tier"), Some("exchange"));
    assert_eq!(first.json()["symbol"], "ETHUSDT");
    let second = stack.get("/v1/ticker/ETHUSDT");
    assert_eq!(second.header("x-edgesync-tier"), Some("redis"));
    assert_eq!(second.json(), first.json());
    let max_age: u64 = second.header("cache-control").unwrap().trim_start_matches("public, max-age=").parse().unwrap();
    assert!(max_age <= 5);
    assert_eq!(stack.exchange.requests()["counts"]["/api/v3/ticker/24hr"], 1, "the second read made no exchange call");
    let ttl: i64 = stack.backend.redis().ttl("api:v1:ticker:mexc:ETHUSDT").unwrap();
    assert!((1..=5).contains(&ttl));
}

fn ohlcv_ttl_ends_at_the_open_candle_close(stack: &Stack) {
    let now = now_ms();
    let open = now - now % 60_000;
    let close = open + 59_999;
    let rows = json!([
        [open - 60_000, "1.0", "1.2", "0.9", "1.1", "10", open - 1, "11"],
        [open, "1.1", "1.3", "1.0", "1.2", "5", close, "6"]
    ]);
    stack.exchange.set_response("/api/v3/klines", Some("QRLUSDT"), &rows);
    // Limit 2 is fetched and cached on the ladder's step 5, and cut to 2 when answered.
    let _: () = stack.backend.redis().del("api:v1:ohlcv:mexc:QRLUSDT:1m:5").unwrap();
    let answer = stack.get("/v1/ohlcv/QRLUSDT?interval=1m&limit=2");
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json(), rows);
    let ttl: i64 = stack.backend.redis().ttl("api:v1:ohlcv:mexc:QRLUSDT:1m:5").unwrap();
    // From the time before the request: the worker's clock read falls after it, so its TTL can
    // be at most this (a clock read after the answer made the bound a second short under load).
    let seconds_to_close = (close - now) / 1000 + 1;
    assert!(
        ttl >= 1 && ttl <= seconds_to_close,
        "TTL {ttl} s must not pass the candle's close in {seconds_to_close} s"
    );
}

fn deals_and_orderbook(stack: &Stack) {
    let deals = stack.get("/v1/deals/QRLUSDT?limit=10");
    assert_eq!(deals.status, 200, "{}", deals.body);
    assert!(deals.json().as_array().unwrap()[0].get("price").is_some());
    let book = stack.get("/v1/orderbook/QRLUSDT?limit=10");
    assert_eq!(book.status, 200);
    assert!(book.json()["bids"].is_array() && book.json()["asks"].is_array());
    let ttl: i64 = stack.backend.redis().ttl("api:v1:deals:mexc:QRLUSDT:10").unwrap();
    assert!((1..=10).contains(&ttl));
}

fn private_routes_need_the_token(stack: &Stack) {
    for path in [
        "/v1/account",
        "/v1/positions",
        "/v1/cost/QRLUSDT",
        "/v1/raw/account_info/latest",
        "/v1/raw/account_info/history",
        "/v1/sync/status",
        "/v1/stats",
    ] {
        assert_error(&stack.get(path), 401, "unauthorized");
        assert_error(&stack.request("GET", path, &[("authorization", "Bearer wrong")], b""), 401, "unauthorized");
        assert_eq!(private_get(stack, path).status, 200, "{path}");
    }
}

fn private_routes_answer_their_shapes(stack: &Stack) {
    let account = private_get(stack, "/v1/account");
    assert_eq!(account.header("cache-control"), Some("private, no-store"));
    assert_eq!(account.json()["account"]["accountType"], "SPOT");
    let positions = private_get(stack, "/v1/positions").json();
    assert_eq!(positions["positions"].as_array().unwrap().len(), 2, "{positions}");
    assert!(positions["positions"][0].get("base_free").is_some());
    let cost = private_get(stack, "/v1/cost/QRLUSDT").json();
    assert!(cost.get("avg_cost").is_some() && cost.get("basis").is_none(), "{cost}");
    let raw = private_get(stack, "/v1/raw/ticker_24hr.QRLUSDT/latest").json();
    assert_eq!(raw["endpoint"], "ticker_24hr");
    let raw_history = private_get(stack, "/v1/raw/account_info/history?limit=2").json();
    assert!(raw_history["count"].as_i64().unwrap() >= 1);
    let status = private_get(stack, "/v1/sync/status").json();
    assert_eq!(status["price"]["state"], "ok");
    let stats = private_get(stack, "/v1/stats").json();
    assert!(stats["namespace_keys"].as_i64().unwrap() > 0);
    assert!(stats.get("maxmemory_policy").is_some() && stats.get("memory_tier").is_some());
    assert_error(&private_get(stack, "/v1/cost/NOSYNCUSDT"), 404, "not_found");
    assert_error(&private_get(stack, "/v1/raw/nothing_here/latest"), 404, "not_found");
}

/// Concurrent reads of the same key in one isolate wait for one Redis read instead of each
/// sending their own — with the memory tier off (this suite's), so nothing is cached — and
/// every one answers its own request correctly (workerd cancels a request that only waits on
/// another's work, or that answers with what another request built: neither may happen).
fn concurrent_reads_share_one_redis_request(stack: &Stack) {
    const READERS: usize = 16;
    let latest = "api:v1:price:mexc:BURSTUSDT:latest";
    let record = json!({"symbol": "BURSTUSDT", "price": "0.0421", "volume_24h": null, "ts": now_ms()});
    let _: () = stack.backend.redis().set(latest, record.to_string()).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut rounds = 0;
    loop {
        rounds += 1;
        stack.backend.reset_gateway_stats();
        let answers: Vec<HttpAnswer> = std::thread::scope(|scope| {
            let readers: Vec<_> = (0..READERS).map(|_| scope.spawn(|| stack.get("/v1/price/BURSTUSDT"))).collect();
            readers.into_iter().map(|reader| reader.join().unwrap()).collect()
        });
        for answer in &answers {
            assert_eq!(answer.status, 200, "every reader gets its own answer: {}", answer.body);
            assert_eq!(answer.json()["price"], "0.0421");
        }
        let requests = stack.backend.gateway_stats()["requests"].as_u64().unwrap();
        assert!(requests <= READERS as u64, "never more than one request per read: {requests}");
        if requests < READERS as u64 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{rounds} bursts of {READERS} reads never shared a request");
    }
    let stats = private_get(stack, "/v1/stats").json();
    assert!(stats["memory_tier"]["classes"]["price_latest"]["coalesced"].as_u64().unwrap() > 0, "{stats}");
    let log = stack.worker_log();
    for sign in ["different request", "hung", "Cannot perform I/O"] {
        assert!(!log.contains(sign), "the worker log shows a cross-request problem ({sign}):\n{log}");
    }
    let _: () = stack.backend.redis().del(latest).unwrap();
}

fn admin_signatures_are_checked_and_single_use(stack: &Stack) {
    let body = json!({"pattern": "nothing:*"});
    let text = body.to_string();
    let now = (now_ms() / 1000).to_string();
    let signature = sign(&now, "/v1/admin/invalidate", text.as_bytes());
    assert_error(
        &admin_with(stack, "/v1/admin/invalidate", text.as_bytes(), &now, &"0".repeat(64)),
        401,
        "unauthorized",
    );
    let old = (now_ms() / 1000 - 301).to_string();
    assert_error(
        &admin_with(
            stack,
            "/v1/admin/invalidate",
            text.as_bytes(),
            &old,
            &sign(&old, "/v1/admin/invalidate", text.as_bytes()),
        ),
        401,
        "unauthorized",
    );
    assert_error(&admin_with(stack, "/v1/admin/invalidate", b"{\"all\":true}", &now, &signature), 401, "unauthorized");
    let ok = admin_with(stack, "/v1/admin/invalidate", text.as_bytes(), &now, &signature);
    assert_eq!(ok.status, 200, "{}", ok.body);
    let replay = admin_with(stack, "/v1/admin/invalidate", text.as_bytes(), &now, &signature);
    assert_error(&replay, 401, "unauthorized");
    assert!(replay.json()["error"]["message"].as_str().unwrap().contains("already used"));
}

fn admin_sync_and_warm(stack: &Stack) {
    let report = admin(stack, "/v1/admin/sync/price", &json!({}));
    assert_eq!(report.status, 200, "{}", report.body);
    assert_eq!((report.json()["task"].as_str(), report.json()["ok"].as_bool()), (Some("price"), Some(true)));
    assert_error(&admin(stack, "/v1/admin/sync/swap", &json!({})), 400, "bad_request");
    let warm = admin(stack, "/v1/admin/warm", &json!({"classes": ["orderbook"]}));
    assert_eq!(warm.status, 200, "{}", warm.body);
    let body = warm.json();
    assert_eq!(body["success"].as_i64().unwrap() + body["skipped"].as_i64().unwrap(), 2, "{body}");
    assert_eq!(body["failed"], 0);
}

fn invalidation_stays_inside_the_namespace(stack: &Stack) {
    let foreign = ["other:v1:ticker:mexc:QRLUSDT", "api:v2:ticker:mexc:QRLUSDT", "apix:v1:x", "QRLUSDT", "api:v1"];
    let mut redis = stack.backend.redis();
    for key in foreign {
        let _: () = redis.set(key, "keep").unwrap();
    }
    for body in [
        json!({"symbol": "QRLUSDT"}),
        json!({"pattern": "*"}),
        json!({"pattern": "*:*"}),
        json!({"pattern": "\\*"}),
        json!({"pattern": "[a-z]*"}),
        json!({"pattern": "*]"}),
        json!({"pattern": "../../*"}),
        json!({"all": true}),
    ] {
        let answer = admin(stack, "/v1/admin/invalidate", &body);
        assert_eq!(answer.status, 200, "{body}: {}", answer.body);
        assert!(answer.json().get("deleted").is_some());
    }
    for key in foreign {
        let value: Option<String> = redis.get(key).unwrap();
        assert_eq!(value.as_deref(), Some("keep"), "{key} was deleted");
    }
    let scan = || stack.backend.keys_matching("api:v1:*");
    let left = scan();
    let cache = ["api:v1:ticker:", "api:v1:ohlcv:", "api:v1:deals:", "api:v1:orderbook:"];
    assert!(
        left.iter().all(|k| !cache.iter().any(|c| k.starts_with(c)) && !k.ends_with(":cached")),
        "no cache key may remain: {left:?}"
    );
    assert!(left.contains(&"api:v1:account:mexc:main".to_owned()), "permanent data stays: {left:?}");
    let everything = admin(stack, "/v1/admin/invalidate", &json!({"all": true, "include_permanent": true}));
    assert_eq!(everything.json()["deleted"].as_u64(), Some(left.len() as u64), "{}", everything.body);
    assert_eq!(scan(), Vec::<String>::new());
    assert_error(&admin(stack, "/v1/admin/invalidate", &json!({"symbol": "QRLUSDT", "all": true})), 400, "bad_request");
    assert_error(&admin(stack, "/v1/admin/invalidate", &json!({"pattern": "a b"})), 400, "bad_request");
    stack.fire_cron(ALL); // put the data back for the tests after this one
}

fn bad_input_is_a_400_naming_the_parameter(stack: &Stack) {
    for (path, parameter) in [
        ("/v1/price/qrlusdt", "symbol"),
        ("/v1/ticker/QRL*USDT", "symbol"),
        ("/v1/ohlcv/QRLUSDT?interval=2m", "interval"),
        ("/v1/ohlcv/QRLUSDT?limit=0", "limit"),
        ("/v1/deals/QRLUSDT?limit=1001", "limit"),
        ("/v1/orderbook/QRLUSDT?limit=x", "limit"),
        ("/v1/price/QRLUSDT/history?from=10&to=5", "from"),
        ("/v1/price/QRLUSDT/history?to=yesterday", "to"),
    ] {
        let answer = stack.get(path);
        assert_error(&answer, 400, "bad_request");
        assert!(answer.json()["error"]["message"].as_str().unwrap().contains(parameter), "{path}: {}", answer.body);
    }
    assert_error(&private_get(stack, "/v1/raw/acc%20ount/latest"), 400, "bad_request");
    let huge = vec![b'x'; 70 * 1024];
    assert_error(&stack.request("POST", "/v1/admin/warm", &[], &huge), 413, "body_too_large");
}

fn unknown_routes_and_methods(stack: &Stack) {
    assert_error(&stack.get("/v2/price/QRLUSDT"), 404, "not_found");
    let wrong = stack.request("DELETE", "/v1/price/QRLUSDT", &[], b"");
    assert_error(&wrong, 405, "method_not_allowed");
    assert_eq!(wrong.header("allow"), Some("GET"));
    assert_error(&stack.get("/v1/admin/warm"), 405, "method_not_allowed");
}

fn redis_outage_serves_stale_or_503(stack: &Stack) {
    // This isolate has read QRLUSDT's price, so its memory tier holds a copy.
    assert_eq!(stack.get("/v1/price/QRLUSDT").header("x-edgesync-tier"), Some("redis"));
    stack.backend.stop_redis();
    let stale = stack.get("/v1/price/QRLUSDT");
    assert_eq!(stale.status, 200, "{}", stale.body);
    assert_eq!(stale.header("x-edgesync-tier"), Some("memory-stale"));
    assert!(stale.header("age").is_some());
    let none = stack.get("/v1/price/NEVERREADUSDT");
    assert_error(&none, 503, "store_unavailable");
    assert_eq!(stack.get("/health?deep=1").json()["status"], "degraded");

    stack.backend.restart_redis().unwrap();
    // Redis restarts empty (no persistence): sync again, polling until the gateway reconnects.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        stack.fire_cron(ALL);
        let answer = stack.get("/v1/price/QRLUSDT");
        if answer.header("x-edgesync-tier") == Some("redis") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never back on the redis tier: {}", answer.body);
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
