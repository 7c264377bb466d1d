//! The migrator on the seed bots' real data. Legacy keys are written exactly as the bots write
//! them — the same commands, value shapes, Redis types and TTLs as
//! `seungdori/TradingBoost-Strategy` at 6111cb0 (GRID's OKX payload cache, TradingCache,
//! HYPERRSI's position hashes and state keys, GRID's order hashes) and `7Spade/qrl-api` at
//! ef30a0a (`redis_client.py`) — then the migrated data is read the way the bots' *new* code
//! reads it (42d81ac: `TradingCache.get_position`, GRID's Phase-2 `get_all_positions`) and the
//! way edgesync's worker serves it, and rollback must give back the original typed dump.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use edgesync_e2e::binaries;
use edgesync_e2e::harness::{migrator_binary, repo_root, HttpAnswer, Stack, StackOptions};
use edgesync_e2e::suite::run_suite;
use edgesync_e2e::tradingboost::{
    grid_legacy_all_positions, grid_legacy_quantity, grid_phase2_all_positions, py_json, trading_cache_get_position,
    write_legacy, Written,
};
use edgesync_migrator::connect::open;
use edgesync_migrator::dump::{differences, dump, Dump};
use futures_executor::block_on;
use redis::Commands;
use rust_decimal::Decimal;
use serde_json::{json, Value};

const READ_TOKEN: &str = "seed-read-token";
const NAMESPACE: &str = "seedq";

fn main() {
    let vars = [("REDIS_NAMESPACE", NAMESPACE), ("SYMBOLS", "QRLUSDT"), ("READ_TOKEN", READ_TOKEN)];
    let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    run_suite(
        move || Stack::start(StackOptions { binaries: binaries!(), vars }),
        &[
            ("tradingboost_new_readers_see_the_legacy_data", tradingboost_new_readers_see_the_legacy_data),
            ("qrl_api_data_is_served_by_the_worker", qrl_api_data_is_served_by_the_worker),
            ("default_journal_reports_and_resumes", default_journal_reports_and_resumes),
            ("many_sources_to_one_target_are_refused", many_sources_to_one_target_are_refused),
            ("one_apply_per_database", one_apply_per_database),
            ("rule_sets_are_listed_shown_and_validated", rule_sets_are_listed_shown_and_validated),
        ],
    )
}

fn db_url(stack: &Stack, db: u8) -> String {
    format!("{}/{db}", stack.backend.redis_url)
}

fn connection(stack: &Stack, db: u8) -> redis::Connection {
    redis::Client::open(db_url(stack, db)).unwrap().get_connection().unwrap()
}

fn typed_dump(stack: &Stack, db: u8) -> Dump {
    let store = open(&db_url(stack, db), None).unwrap();
    block_on(dump(store.as_ref())).unwrap()
}

/// Runs the migrator CLI as an operator would.
fn migrator(args: &[&str], cwd: &Path) -> (Output, Value) {
    let output = Command::new(migrator_binary())
        .args(args)
        .args(["--json", "--no-progress"].iter().filter(|a| args[0] == "apply" || **a == "--json"))
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let report = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    (output, report)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn tradingboost_new_readers_see_the_legacy_data(stack: &Stack) {
    let db = 1;
    let mut redis = connection(stack, db);
    let Written { hedge, net, grid, cached, long, short, state_keys } = write_legacy(&mut redis, "");
    let original = typed_dump(stack, db);
    let legacy_totals: Vec<BTreeMap<String, Decimal>> =
        grid.iter().map(|(_, p)| grid_legacy_all_positions(p)).collect();
    let url = db_url(stack, db);
    let journal = tempfile::tempdir().unwrap();
    let base = ["--rules", "tradingboost", "--url", url.as_str(), "--journal", journal.path().to_str().unwrap()];
    let with = |step: &'static str| [&[step][..], &base[..]].concat();

    let (planned, plan) = migrator(&with("plan"), journal.path());
    assert_eq!(planned.status.code(), Some(0), "{plan} {}", stderr(&planned));
    let counts = |rule: &str, class: &str| plan["rules"][rule][class].as_u64().unwrap_or(0);
    assert_eq!(counts("grid-positions", "migrate"), 2, "{plan}");
    assert_eq!(counts("trading-cache-position", "migrate"), 3, "{plan}");
    assert_eq!(counts("hyperrsi-position", "migrate"), 2, "{plan}");
    assert_eq!(counts("order-placed", "migrate"), 1, "{plan}");
    for class in ["conflict", "unparseable", "wrong_type", "too_large"] {
        assert_eq!(plan["total"][class], 0, "{class}: {plan}");
    }
    assert_eq!(plan["not_owned"]["count"], 1, "{plan}");
    assert_eq!(plan["not_owned"]["samples"], json!(["binance:positions:103:BTCUSDT"]));

    let (applied, report) = migrator(&with("apply"), journal.path());
    assert_eq!(applied.status.code(), Some(0), "{report} {}", stderr(&applied));
    assert_eq!(report["migrated"], 8, "{report}");
    let (verified, check) = migrator(&with("verify"), journal.path());
    assert_eq!(verified.status.code(), Some(0), "{check}");

    // GRID Phase 2 gives each user what the legacy readers gave; every OKX field verbatim.
    let phase2 = grid_phase2_all_positions(&mut redis, "101", "okx");
    assert_eq!(phase2, legacy_totals[0], "hedge mode");
    assert_eq!(phase2.len(), 2, "DOGE and XRP: ADA is flat, BTC excluded by GRID");
    let phase2 = grid_phase2_all_positions(&mut redis, "102", "okx");
    for symbol in ["LTC-USDT-SWAP", "BNB-USDT-SWAP"] {
        assert_eq!(phase2[symbol], grid_legacy_quantity(&grid[1].1, symbol), "{symbol} (envelope)");
    }
    for (user, payload, sides) in [
        ("101", &hedge, ["long", "short", "long", "long"].as_slice()),
        ("102", &net["data"], ["short", "long", "net"].as_slice()),
    ] {
        for (position, side) in payload.as_array().unwrap().iter().zip(sides) {
            let symbol = position["instId"].as_str().unwrap();
            let key = format!("positions:{user}:okx:{symbol}:{side}");
            let stored: BTreeMap<String, String> = redis.hgetall(&key).unwrap();
            let expected: BTreeMap<String, String> = position
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect();
            assert_eq!(stored, expected, "{key}");
            let ttl: i64 = redis.ttl(&key).unwrap();
            assert!((1..=300).contains(&ttl), "{key} expires with the cache it came from: {ttl}");
        }
        let index_ttl: i64 = redis.ttl(format!("positions:index:{user}:okx")).unwrap();
        assert!((1..=300).contains(&index_ttl), "the index expires with its hashes: {index_ttl}");
        let gone: bool = redis.exists(format!("okx:positions:{user}")).unwrap();
        assert!(!gone, "the legacy key is gone");
    }

    // TradingCache.get_position reads what Cache.set wrote, for both legacy sources.
    for (user, symbol, side, value) in &cached {
        assert_eq!(trading_cache_get_position(&mut redis, user, symbol, side).as_ref(), Some(value), "{user} {symbol}");
        let ttl: i64 = redis.ttl(format!("position:{user}:okx:{symbol}:{side}")).unwrap();
        assert!((1..=300).contains(&ttl));
    }
    for (side, fields) in [("long", &long[..]), ("short", &short[..])] {
        let expected: serde_json::Map<String, Value> = fields.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
        let read = trading_cache_get_position(&mut redis, "301", "BTC-USDT-SWAP", side);
        assert_eq!(read, Some(Value::Object(expected)), "HYPERRSI {side}");
    }
    // HYPERRSI's state keys are exactly as they were.
    let after = typed_dump(stack, db);
    for key in &state_keys {
        assert_eq!(after.get(key.as_str()).map(|s| &s.value), original.get(key.as_str()).map(|s| &s.value), "{key}");
    }
    let orders: BTreeMap<String, String> =
        redis.hgetall("orders:okx:user:401:symbol:DOGE-USDT-SWAP:order_placed").unwrap();
    assert_eq!(orders, BTreeMap::from([("0".into(), "1".into()), ("1".into(), "0".into())]));

    let (rolled, undone) = migrator(&with("rollback"), journal.path());
    assert_eq!(rolled.status.code(), Some(0), "{undone}");
    let restored = typed_dump(stack, db);
    let diff = differences(&original, &restored, 1_000, |_| false);
    assert!(diff.is_empty(), "rollback restores type, value and TTL: {diff:?}");
}

fn qrl_api_data_is_served_by_the_worker(stack: &Stack) {
    let mut redis = connection(stack, 0);
    let ts = "2025-12-28T13:33:49.123456";
    let ts_ms = 1_766_928_829_123_i64;
    // redis_client.py at ef30a0a, command for command.
    let price = json!({"price": "0.5123", "volume": "123456.7", "timestamp": ts});
    let _: () = redis.set("bot:QRLUSDT:price:latest", py_json(&price)).unwrap();
    let _: () = redis.set_ex("bot:QRLUSDT:price:cached", py_json(&price), 30).unwrap();
    for (i, p) in ["0.5", "0.51", "0.5123"].iter().enumerate() {
        let _: () = redis.zadd("bot:QRLUSDT:price:history", *p, ts_ms - 60_000 * (2 - i as i64)).unwrap();
    }
    let _: () = redis.expire("bot:QRLUSDT:price:history", 86_400 * 30).unwrap();
    let account: Value =
        serde_json::from_str(&std::fs::read_to_string(repo_root().join("fixtures/mexc/account.json")).unwrap())
            .unwrap();
    let raw = json!({"response": account, "timestamp": ts_ms, "datetime": ts, "metadata": {"source": "scheduler"}});
    let _: () = redis.set("mexc:raw:account_info:latest", py_json(&raw)).unwrap();
    let older = json!({"response": account, "timestamp": ts_ms - 60_000, "datetime": "2025-12-28T13:32:49.123456", "metadata": {}});
    let _: () = redis.zadd("mexc:raw:account_info:history", py_json(&older), ts_ms - 60_000).unwrap();
    let _: () = redis.zadd("mexc:raw:account_info:history", py_json(&raw), ts_ms).unwrap();
    let cost = [
        ("avg_cost", "0.45"),
        ("total_invested", "450.0"),
        ("unrealized_pnl", "62.3"),
        ("realized_pnl", "0"),
        ("updated_at", ts),
    ];
    let _: () = redis.hset_multiple("bot:QRLUSDT:cost", &cost).unwrap();
    let position = [("qrl_balance", "1000.0"), ("usdt_balance", "50.0"), ("avg_cost", "0.45"), ("updated_at", ts)];
    let _: () = redis.hset_multiple("bot:QRLUSDT:position", &position).unwrap();
    // Keys edgesync has no place for: reported by name, left alone.
    let _: () = redis
        .set("bot:QRLUSDT:status", py_json(&json!({"status": "running", "timestamp": ts, "metadata": {}})))
        .unwrap();
    let _: () =
        redis.hset_multiple("bot:QRLUSDT:position:layers", &[("core_qrl", "700.0"), ("last_adjust", ts)]).unwrap();
    let _: () = redis.set("bot:QRLUSDT:last_trade_time", 1_766_928_829).unwrap();
    let _: () = redis.set_ex("market:QRLUSDT:ticker:24hr", py_json(&json!({"data": {}, "cached_at": ts})), 60).unwrap();

    let original = typed_dump(stack, 0);
    let url = db_url(stack, 0);
    let journal = tempfile::tempdir().unwrap();
    let base = [
        "--rules",
        "qrl-api",
        "--namespace",
        NAMESPACE,
        "--url",
        url.as_str(),
        "--journal",
        journal.path().to_str().unwrap(),
    ];
    let with = |step: &'static str| [&[step][..], &base[..]].concat();
    let (applied, report) = migrator(&with("apply"), journal.path());
    assert_eq!(applied.status.code(), Some(0), "{report} {}", stderr(&applied));
    assert_eq!(report["migrated"], 7, "{report}");
    let not_owned: Vec<&str> =
        report["not_owned"]["samples"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert_eq!(
        not_owned,
        [
            "bot:QRLUSDT:last_trade_time",
            "bot:QRLUSDT:position:layers",
            "bot:QRLUSDT:status",
            "market:QRLUSDT:ticker:24hr"
        ],
        "{report}"
    );

    let get = |path: &str| -> HttpAnswer {
        stack.request("GET", path, &[("authorization", &format!("Bearer {READ_TOKEN}"))], b"")
    };
    let answer = get("/v1/price/QRLUSDT");
    assert_eq!(answer.status, 200, "{}", answer.body);
    let body = answer.json();
    assert_eq!(
        (body["price"].as_str(), body["volume_24h"].as_str(), body["ts"].as_i64()),
        (Some("0.5123"), Some("123456.7"), Some(ts_ms)),
        "{body}"
    );
    let history = get("/v1/price/QRLUSDT/history?from=0").json();
    assert_eq!((history["count"].as_u64(), history["skipped"].as_u64()), (Some(3), Some(0)), "{history}");
    let prices: Vec<&str> =
        history["entries"].as_array().unwrap().iter().map(|e| e["price"].as_str().unwrap()).collect();
    assert_eq!(prices, ["0.5", "0.51", "0.5123"]);
    let latest = get("/v1/raw/account_info/latest");
    assert_eq!(latest.status, 200, "{}", latest.body);
    let latest = latest.json();
    assert_eq!(
        (&latest["response"], latest["fetched_at"].as_i64(), latest["endpoint"].as_str()),
        (&account, Some(ts_ms), Some("account_info"))
    );
    assert_eq!(get("/v1/raw/account_info/history?start=0").json()["count"], 2);
    let cost = get("/v1/cost/QRLUSDT");
    assert_eq!(cost.status, 200, "{}", cost.body);
    assert_eq!((cost.json()["avg_cost"].as_str(), cost.json()["invested"].as_str()), (Some("0.45"), Some("450.0")));
    let positions = get("/v1/positions").json();
    let qrl = positions["positions"].as_array().unwrap().iter().find(|p| p["symbol"] == "QRLUSDT").cloned();
    // Converted to edgesync's position record: the balance task's fields, the bot's avg cost.
    let qrl = qrl.expect("the QRLUSDT position");
    for (field, value) in [
        ("base_asset", "QRL"),
        ("quote_asset", "USDT"),
        ("base_free", "1000.0"),
        ("base_locked", "0"),
        ("quote_free", "50.0"),
        ("avg_cost", "0.45"),
    ] {
        assert_eq!(qrl[field], json!(value), "{field}: {positions}");
    }
    assert_eq!(qrl["updated_at"], json!(ts_ms.to_string()), "{positions}");
    assert!(qrl.get("qrl_balance").is_none(), "no bot field left: {positions}");

    // Reading never removed a moved value.
    for key in [
        "price:mexc:QRLUSDT:latest",
        "price:mexc:QRLUSDT:cached",
        "price:mexc:QRLUSDT:history",
        "raw:mexc:account_info:latest",
        "raw:mexc:account_info:history",
        "cost:mexc:main:QRLUSDT",
        "position:main:mexc:QRLUSDT:spot",
        "position-index:main:mexc",
    ] {
        let exists: bool = redis.exists(format!("{NAMESPACE}:v1:{key}")).unwrap();
        assert!(exists, "{key} is gone after the reads");
    }
    let latest_ttl: i64 = redis.ttl(format!("{NAMESPACE}:v1:price:mexc:QRLUSDT:history")).unwrap();
    assert_eq!(latest_ttl, -1, "the history is permanent in edgesync");

    let (rolled, undone) = migrator(&with("rollback"), journal.path());
    assert_eq!(rolled.status.code(), Some(0), "{undone}");
    let diff = differences(&original, &typed_dump(stack, 0), 1_000, |_| false);
    assert!(diff.is_empty(), "rollback restores type, value and TTL: {diff:?}");
}

fn default_journal_reports_and_resumes(stack: &Stack) {
    let mut redis = connection(stack, 6);
    let _: () = redis.set("position:1:BTC-USDT-SWAP", "not json").unwrap();
    let _: () = redis.set("user:2:position:BTC-USDT-SWAP:long", py_json(&json!({"size": "1"}))).unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let url = db_url(stack, 6);
    for run in 0..2 {
        let (applied, report) = migrator(&["apply", "--url", &url], cwd.path());
        assert_eq!(applied.status.code(), Some(1), "run {run}: {report} {}", stderr(&applied));
        assert_eq!(report["unparseable"], 1, "run {run}: {report}");
        assert!(report["problems"][0].as_str().unwrap().starts_with("position:1:BTC-USDT-SWAP"), "{report}");
        assert!(cwd.path().join("migrator-journal").is_dir(), "the default journal is ./migrator-journal");
    }
    let moved: bool = redis.exists("qrl:v1:position:2:okx:BTC-USDT-SWAP:long").unwrap();
    assert!(moved);
}

fn many_sources_to_one_target_are_refused(stack: &Stack) {
    let mut redis = connection(stack, 7);
    let _: () = redis.set("acct:1", "first").unwrap();
    let _: () = redis.set("acct:2", "second").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("accounts.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"accounts\"\nfrom = \"acct:{user}\"\nto = \"account:mexc:main\"\nconversion = \"keep\"\n",
    )
    .unwrap();
    let url = db_url(stack, 7);
    let base = ["--rules", rules.to_str().unwrap(), "--url", url.as_str()];
    let (planned, plan) = migrator(&[&["plan"][..], &base[..]].concat(), dir.path());
    assert_eq!(planned.status.code(), Some(1), "{plan}");
    assert_eq!(plan["total"]["conflict"], 2, "{plan}");
    let samples = plan["rules"]["accounts"]["samples"]["conflict"].to_string();
    assert!(samples.contains("acct:1") && samples.contains("acct:2") && samples.contains("N:1"), "{samples}");
    let (applied, report) = migrator(&[&["apply", "--overwrite"][..], &base[..]].concat(), dir.path());
    assert_eq!(applied.status.code(), Some(1), "{report}");
    assert_eq!(report["conflicts"], 2, "{report}");
    let (first, second): (Option<String>, Option<String>) =
        (redis.get("acct:1").unwrap(), redis.get("acct:2").unwrap());
    assert_eq!((first.as_deref(), second.as_deref()), (Some("first"), Some("second")), "nothing was moved");
    let target: bool = redis.exists("qrl:v1:account:mexc:main").unwrap();
    assert!(!target);

    // Across rules: TradingCache's legacy key and HYPERRSI's hash meet at one standard key.
    let _: () = redis.set("position:9:BTC-USDT-SWAP", py_json(&json!({"side": "long", "size": "1"}))).unwrap();
    let _: () = redis.hset("user:9:position:BTC-USDT-SWAP:long", "size", "2").unwrap();
    let (planned, plan) = migrator(&["plan", "--rules", "tradingboost", "--url", &url], dir.path());
    assert_eq!(planned.status.code(), Some(1), "{plan}");
    assert_eq!(plan["total"]["conflict"], 2, "{plan}");
    assert!(plan.to_string().contains("position:9:okx:BTC-USDT-SWAP:long is also the target of"), "{plan}");
}

fn one_apply_per_database(stack: &Stack) {
    let db = 8;
    let url = db_url(stack, db);
    let store = open(&url, None).unwrap();
    block_on(edgesync_migrator::generate::generate(store.as_ref(), 20_000, 3, "qrl:v1:")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let journal_a = dir.path().join("a");
    let mut first = Command::new(migrator_binary())
        .args(["apply", "--no-progress", "--rate", "2000", "--url", &url, "--journal"])
        .arg(&journal_a)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut redis = connection(stack, db);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let locked: bool = redis.exists(edgesync_migrator::apply::lock_key()).unwrap();
        if locked {
            break;
        }
        assert!(first.try_wait().unwrap().is_none(), "the first apply ended before taking the lock");
        assert!(Instant::now() < deadline, "the first apply never took the lock");
        std::thread::sleep(Duration::from_millis(20));
    }
    let journal_b = dir.path().join("b");
    let (second, _) = migrator(
        &["apply", "--namespace", "other", "--url", &url, "--journal", journal_b.to_str().unwrap()],
        dir.path(),
    );
    first.kill().unwrap();
    first.wait().unwrap();
    let _: () = redis.del(edgesync_migrator::apply::lock_key()).unwrap();
    assert_eq!(second.status.code(), Some(3), "{}", stderr(&second));
    assert!(stderr(&second).contains("another apply holds the lock"), "{}", stderr(&second));
}

fn rule_sets_are_listed_shown_and_validated(stack: &Stack) {
    let dir = tempfile::tempdir().unwrap();
    let (listed, _) = migrator(&["rules", "list"], dir.path());
    let listing = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert_eq!(listed.status.code(), Some(0));
    for name in ["generic", "tradingboost", "qrl-api"] {
        assert!(listing.contains(name), "{listing}");
    }
    let (shown, _) = migrator(&["rules", "show", "tradingboost"], dir.path());
    let text = String::from_utf8_lossy(&shown.stdout).into_owned();
    assert!(text.contains("[set]") && text.contains("grid-positions"), "{text}");
    // What `show` prints is a rules file: copied and used as one, it plans the same.
    let copy = dir.path().join("mine.toml");
    std::fs::write(&copy, &text).unwrap();
    let url = db_url(stack, 9);
    let (planned, plan) = migrator(&["plan", "--rules", copy.to_str().unwrap(), "--url", &url], dir.path());
    assert_eq!(planned.status.code(), Some(0), "{plan} {}", stderr(&planned));
    assert_eq!(plan["set"], "tradingboost");

    let duplicate = dir.path().join("dup.toml");
    let rule = "[[rule]]\nname = \"twice\"\nfrom = \"a:{x}\"\nto = \"b:{x}\"\nconversion = \"keep\"\n";
    std::fs::write(&duplicate, format!("{rule}{rule}")).unwrap();
    let (refused, _) = migrator(&["plan", "--rules", duplicate.to_str().unwrap(), "--url", &url], dir.path());
    assert_eq!(refused.status.code(), Some(2));
    assert!(stderr(&refused).contains("rule `twice` is defined twice"), "{}", stderr(&refused));
    let (unknown, _) = migrator(&["plan", "--rules", "no-such-set", "--url", &url], dir.path());
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr(&unknown).contains("qrl-api"), "names the built-in sets: {}", stderr(&unknown));
}
