//! TradingBoost-Strategy's legacy data as its bots write it, and its readers, old and new: the
//! contract the migrator is held to (the seed-data suite on one Redis, the cluster suite on a
//! Redis Cluster). Writers follow the bots at 6111cb0 — GRID's OKX payload cache, TradingCache,
//! HYPERRSI's position hashes and state keys, GRID's order hashes — command for command; the
//! readers are 42d81ac's (`TradingCache.get_position`, GRID's Phase-2 `get_all_positions`) and
//! the legacy ones they replace. Every function takes any `ConnectionLike`: a connection to one
//! Redis, or a cluster-aware client.

use std::collections::BTreeMap;
use std::str::FromStr;

use redis::{Commands, ConnectionLike};
use rust_decimal::Decimal;
use serde_json::{json, Value};

use crate::okx::okx_position;

/// What [`write_legacy`] wrote, for the assertions on what the readers see.
pub struct Written {
    pub hedge: Value,
    pub net: Value,
    /// GRID's users and their cached payloads.
    pub grid: Vec<(String, String)>,
    /// TradingCache's positions: user, symbol, side, value.
    pub cached: Vec<(String, &'static str, &'static str, Value)>,
    pub long: Vec<(&'static str, &'static str)>,
    pub short: Vec<(&'static str, &'static str)>,
    /// HYPERRSI's state keys, which no rule moves.
    pub state_keys: Vec<String>,
}

/// Writes one set of the bots' legacy keys; `tag` goes in front of every user id, so several
/// sets (spread over a cluster's slots) can live side by side. `""` writes users 101, 102, ….
pub fn write_legacy(redis: &mut impl ConnectionLike, tag: &str) -> Written {
    // GRID: the positions payload cached for 300 s, as a list (websocket) and as OKX's REST
    // envelope (`private_get_account_positions`); hedge mode and net mode.
    let hedge = json!([
        okx_position("DOGE-USDT-SWAP", "long", "10", "1.5"),
        okx_position("XRP-USDT-SWAP", "short", "4", "2.4"),
        okx_position("ADA-USDT-SWAP", "long", "0", "0"),
        okx_position("BTC-USDT-SWAP", "long", "1", "95000"),
    ]);
    let net = json!({"code": "0", "data": [
        okx_position("LTC-USDT-SWAP", "net", "-3", "300"),
        okx_position("BNB-USDT-SWAP", "net", "2", "1200"),
        okx_position("TRX-USDT-SWAP", "net", "0", "0"),
    ], "msg": ""});
    let grid = vec![(format!("{tag}101"), py_json(&hedge)), (format!("{tag}102"), py_json(&net))];
    for (user, payload) in &grid {
        let _: () = redis.set_ex(format!("okx:positions:{user}"), payload, 300).unwrap();
    }
    // Another exchange's per-symbol cache (handle_other_exchanges): no rule moves it.
    let _: () = redis.set_ex(format!("binance:positions:{tag}103:BTCUSDT"), "[]", 300).unwrap();
    // TradingCache.set_position at 6111cb0: json.dumps, 300 s.
    let cached = vec![
        (
            format!("{tag}201"),
            "BTC-USDT-SWAP",
            "long",
            json!({"symbol": "BTC-USDT-SWAP", "side": "long", "size": 1.5, "entry_price": 60000.5, "leverage": 10}),
        ),
        (
            format!("{tag}202"),
            "ETH-USDT-SWAP",
            "short",
            json!({"instId": "ETH-USDT-SWAP", "posSide": "short", "pos": "2", "avgPx": "3000.1"}),
        ),
        (
            format!("{tag}203"),
            "SOL-USDT-SWAP",
            "short",
            json!({"instId": "SOL-USDT-SWAP", "posSide": "net", "pos": "-5"}),
        ),
    ];
    for (user, symbol, _, value) in &cached {
        let _: () = redis.set_ex(format!("position:{user}:{symbol}"), py_json(value), 300).unwrap();
    }
    // HYPERRSI: position hashes (tp_sl_calculator's and okx_position_fetcher's mappings) and
    // its own state keys under the same prefix.
    let long = vec![
        ("symbol", "BTC-USDT-SWAP"),
        ("side", "long"),
        ("size", "0.5"),
        ("entry_price", "61000.0"),
        ("leverage", "10.0"),
        ("sl_order_id", "998877"),
        ("sl_price", "59000.0"),
        ("order_id", "998877"),
    ];
    let short = vec![
        ("symbol", "BTC-USDT-SWAP"),
        ("side", "short"),
        ("size", "0.2"),
        ("contracts", "0.2"),
        ("entry_price", "62000.0"),
        ("leverage", "10.0"),
        ("unrealized_pnl", "-1.5"),
        ("margin_mode", "cross"),
        ("dca_count", "1"),
        ("last_update_time", "1735363600"),
        ("last_update_time_kr", "2024-12-28 14:26:40"),
    ];
    let _: () = redis.hset_multiple(format!("user:{tag}301:position:BTC-USDT-SWAP:long"), &long).unwrap();
    let _: () = redis.hset_multiple(format!("user:{tag}301:position:BTC-USDT-SWAP:short"), &short).unwrap();
    let state_keys: Vec<String> = [
        "user:{tag}301:position:BTC-USDT-SWAP:position_state",
        "user:{tag}301:position:BTC-USDT-SWAP:hedging_direction",
        "user:{tag}301:position:BTC-USDT-SWAP:min_sustain_contract_size",
        "user:{tag}301:position:BTC-USDT-SWAP:long:tp_data",
        "user:{tag}301:position:BTC-USDT-SWAP:long:dca_count",
        "user:{tag}301:position:BTC-USDT-SWAP:closing",
        "user:{tag}301:position:BTC-USDT-SWAP:long_dca_levels",
    ]
    .iter()
    .map(|key| key.replace("{tag}", tag))
    .collect();
    let _: () = redis.set(&state_keys[0], "1").unwrap();
    let _: () = redis.set(&state_keys[1], "long").unwrap();
    let _: () = redis.set(&state_keys[2], "0.01").unwrap();
    let _: () =
        redis.set(&state_keys[3], py_json(&json!([{"price": "63000", "size": "0.1", "status": "active"}]))).unwrap();
    let _: () = redis.set(&state_keys[4], "2").unwrap();
    let _: () = redis.set_ex(&state_keys[5], "true", 300).unwrap();
    let _: () = redis.rpush(&state_keys[6], &["60000", "59000"]).unwrap();
    // GRID's upload_order_placed at 6111cb0: {level: int(bool)}.
    let _: () = redis
        .hset_multiple(format!("okx:user:{tag}401:symbol:DOGE-USDT-SWAP:order_placed"), &[("0", 1), ("1", 0)])
        .unwrap();

    Written { hedge, net, grid, cached, long, short, state_keys }
}

/// Python's `json.dumps` with its default separators, as the bots serialize.
pub fn py_json(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let items: Vec<String> =
                map.iter().map(|(k, v)| format!("{}: {}", Value::from(k.as_str()), py_json(v))).collect();
            format!("{{{}}}", items.join(", "))
        }
        Value::Array(items) => format!("[{}]", items.iter().map(py_json).collect::<Vec<_>>().join(", ")),
        other => other.to_string(),
    }
}

pub fn decimal(value: Option<&Value>) -> Decimal {
    value.and_then(Value::as_str).filter(|s| !s.is_empty()).map_or(Decimal::ZERO, |s| Decimal::from_str(s).unwrap())
}

pub const GRID_EXCLUDED: [&str; 3] = ["BTC-USDT-SWAP", "ETH-USDT-SWAP", "SOL-USDT-SWAP"];

/// GRID's `get_all_positions` (balance_service.py at 42d81ac), legacy branch: the JSON at
/// `{exchange}:positions:{user}`, a list of positions or a dict of them by symbol.
pub fn grid_legacy_all_positions(text: &str) -> BTreeMap<String, Decimal> {
    let mut result = BTreeMap::new();
    let mut take = |symbol: &str, position: &Value| {
        let (pos, notional) = (decimal(position.get("pos")), decimal(position.get("notionalUsd")));
        if !pos.is_zero() && notional < Decimal::from(10_000) && !GRID_EXCLUDED.contains(&symbol) {
            result.insert(symbol.to_owned(), pos);
        }
    };
    match serde_json::from_str::<Value>(text).unwrap() {
        Value::Array(positions) => {
            for position in positions.iter().filter(|p| p.is_object()) {
                take(position["instId"].as_str().unwrap_or_default(), position);
            }
        }
        Value::Object(by_symbol) => {
            for (symbol, position) in by_symbol.iter().filter(|(_, p)| p.is_object()) {
                take(symbol, position);
            }
        }
        _ => {}
    }
    result
}

/// GRID's `process_okx_position_data` (what `handle_okx` reads): a list, or OKX's envelope.
pub fn grid_legacy_quantity(text: &str, symbol: &str) -> Decimal {
    let value: Value = serde_json::from_str(text).unwrap();
    let positions =
        value.as_array().or_else(|| value.get("data").and_then(Value::as_array)).cloned().unwrap_or_default();
    positions.iter().find(|p| p["instId"] == symbol).map_or(Decimal::ZERO, |p| decimal(p.get("pos")))
}

/// GRID's `get_all_positions` at 42d81ac, Phase 2: SMEMBERS the index, HGETALL each hash,
/// long and short summed per symbol.
pub fn grid_phase2_all_positions(
    redis: &mut impl ConnectionLike,
    user: &str,
    exchange: &str,
) -> BTreeMap<String, Decimal> {
    let members: Vec<String> = redis.smembers(format!("positions:index:{user}:{exchange}")).unwrap();
    let mut result = BTreeMap::new();
    for member in members {
        let (symbol, side) = member.split_once(':').unwrap();
        let position: BTreeMap<String, String> =
            redis.hgetall(format!("positions:{user}:{exchange}:{symbol}:{side}")).unwrap();
        if position.is_empty() {
            continue;
        }
        let pos = Decimal::from_str(position.get("pos").map_or("0", String::as_str)).unwrap();
        let notional = Decimal::from_str(position.get("notionalUsd").map_or("0", String::as_str)).unwrap();
        if !pos.is_zero() && notional < Decimal::from(10_000) && !GRID_EXCLUDED.contains(&symbol) {
            *result.entry(symbol.to_owned()).or_insert(Decimal::ZERO) += pos;
        }
    }
    result
}

/// `TradingCache.get_position` (TradingBoost's shared/cache/trading_cache.py at 42d81ac): GET + JSON parse.
pub fn trading_cache_get_position(
    redis: &mut impl ConnectionLike,
    user: &str,
    symbol: &str,
    side: &str,
) -> Option<Value> {
    let text: Option<String> = redis.get(format!("position:{user}:okx:{symbol}:{side}")).unwrap();
    text.map(|t| serde_json::from_str(&t).unwrap())
}
