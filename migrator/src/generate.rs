//! A realistic legacy dataset from a seeded RNG, with its ground truth: what `plan` must
//! count per rule and class. Every built-in rule is represented, with TTLs on a share of the
//! keys, conflicts (a target already holding something else), already-migrated keys,
//! unparseable values (no side, not JSON), wrong types, and keys no rule owns. Used by the
//! end-to-end tests and `make bench-migrator`. (The seed bots' exact shapes, for the
//! `tradingboost` and `qrl-api` sets, are written by the end-to-end suite `seed_data`.)

use std::collections::BTreeMap;

use edgesync_core::store::{Command, Store, StoreError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::scan::Class;

const SYMBOLS: [&str; 6] = ["BTC-USDT-SWAP", "ETH-USDT-SWAP", "QRLUSDT", "SOL-USDT", "XRPUSDT", "DOGE-USDT-SWAP"];
const SIDES: [&str; 2] = ["long", "short"];
const EXCHANGES: [&str; 3] = ["okx", "binance", "bybit"];

#[derive(Debug, Clone, Default, Serialize)]
pub struct Truth {
    /// Expected `plan` counts per rule and class.
    pub counts: BTreeMap<String, BTreeMap<Class, u64>>,
    /// Keys no rule owns.
    pub non_matching: u64,
    /// All keys written.
    pub keys: u64,
}

impl Truth {
    fn expect(&mut self, rule: &str, class: Class) {
        *self.counts.entry(rule.to_owned()).or_default().entry(class).or_default() += 1;
    }
}

/// Writes `count` legacy keys (plus the targets that make conflicts and already-migrated
/// cases) and returns the truth. Target keys are written under `target_prefix`.
pub async fn generate(store: &dyn Store, count: u64, seed: u64, target_prefix: &str) -> Result<Truth, StoreError> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut truth = Truth::default();
    let mut commands = Vec::new();
    for i in 0..count {
        let symbol = SYMBOLS[rng.random_range(0..SYMBOLS.len())];
        let side = SIDES[rng.random_range(0..SIDES.len())];
        let exchange = EXCHANGES[rng.random_range(0..EXCHANGES.len())];
        let qty = format!("{}.{:04}", rng.random_range(0..1000), rng.random_range(0..10_000));
        let position = format!(
            r#"{{"side":"{side}","qty":"{qty}","entry_price":"{}.5","leverage":{}}}"#,
            rng.random_range(1..90_000),
            rng.random_range(1..20)
        );
        let ttl = rng.random_bool(0.3).then(|| rng.random_range(3_600..86_400));
        let roll = rng.random_range(0..100);
        let mut keys: Vec<(String, Vec<Command>)> = Vec::new();
        fn set(keys: &mut Vec<(String, Vec<Command>)>, key: String, value: &str) {
            keys.push((key.clone(), vec![Command::new("SET").arg(key).arg(value)]));
        }
        match roll {
            0..=17 => {
                set(&mut keys, format!("position:{i}:{symbol}"), &position);
                truth.expect("position", Class::Migrate);
            }
            18..=20 => {
                set(&mut keys, format!("position:{i}:{symbol}"), &format!(r#"{{"qty":"{qty}"}}"#));
                truth.expect("position", Class::Unparseable);
            }
            21..=32 => {
                set(&mut keys, format!("user:{i}:position:{symbol}:{side}"), &position);
                truth.expect("user-position", Class::Migrate);
            }
            33..=36 => {
                let key = format!("user:{i}:position:{symbol}:{side}");
                keys.push((key.clone(), vec![Command::hset(&key, &[("qty", qty.as_str()), ("side", side)])]));
                truth.expect("user-position", Class::Migrate);
            }
            37..=38 => {
                // Conflict: the target already holds a different position.
                set(&mut keys, format!("user:{i}:position:{symbol}:{side}"), &position);
                let target = format!("{target_prefix}position:{i}:okx:{symbol}:{side}");
                keys.push((target.clone(), vec![Command::hset(&target, &[("qty", "999")])]));
                truth.expect("user-position", Class::Conflict);
            }
            39..=40 => {
                // Already migrated: the target holds exactly the conversion.
                set(&mut keys, format!("user:{i}:position:{symbol}:{side}"), &format!(r#"{{"qty":"{qty}"}}"#));
                let target = format!("{target_prefix}position:{i}:okx:{symbol}:{side}");
                keys.push((target.clone(), vec![Command::hset(&target, &[("qty", qty.as_str())])]));
                truth.expect("user-position", Class::AlreadyMigrated);
            }
            41..=50 => {
                let key = format!("{exchange}:user:{i}:symbol:{symbol}:order_placed");
                keys.push((key.clone(), vec![Command::hset(&key, &[("12345.5", "true"), ("12400", "false")])]));
                truth.expect("order-placed", Class::Migrate);
            }
            51..=58 => {
                let key = format!("{exchange}:user:{i}:symbol:{symbol}:orders");
                let levels = rng.random_range(1..6);
                let command = (0..levels)
                    .fold(Command::new("ZADD").arg(&key), |c, n| c.arg(1000 + n * 5).arg(format!("order-{i}-{n}")));
                keys.push((key, vec![command]));
                truth.expect("orders", Class::Migrate);
            }
            59..=64 => {
                let key = format!("{exchange}:user:{i}:symbol:{symbol}:order_placed_index");
                keys.push((key.clone(), vec![Command::sadd(&key, &[format!("o{i}a"), format!("o{i}b")])]));
                truth.expect("order-placed-index", Class::Migrate);
            }
            65..=69 => {
                // OKX's positions payload, as GRID caches it: a list, or OKX's REST envelope.
                let n = rng.random_range(0..3) + 1;
                let items: Vec<String> = SYMBOLS[..n]
                    .iter()
                    .map(|s| {
                        format!(
                            r#"{{"instId":"{s}","posSide":"{side}","pos":"{qty}","avgPx":"1.5","mgnMode":"cross"}}"#
                        )
                    })
                    .collect();
                let list = format!("[{}]", items.join(","));
                let value = if roll % 2 == 0 { list } else { format!(r#"{{"code":"0","data":{list},"msg":""}}"#) };
                set(&mut keys, format!("{exchange}:positions:{i}"), &value);
                truth.expect("positions-array", Class::Migrate);
            }
            70..=80 => {
                // qrl-api's keys: the default (generic) set has no rule for them; they are
                // the `qrl-api` set's. Left untouched, and outside the generic families.
                let key = match roll {
                    70..=74 => format!("bot:{symbol}{i}:price:latest"),
                    75..=78 => format!("mexc:raw:endpoint{i}:latest"),
                    _ => format!("mexc:raw:endpoint{i}:history"),
                };
                set(&mut keys, key, &format!(r#"{{"price":"0.0{qty}"}}"#));
                truth.non_matching += 1;
            }
            81 => {
                set(&mut keys, format!("{exchange}:positions:{i}"), "not json");
                truth.expect("positions-array", Class::Unparseable);
            }
            _ => {
                let key = match roll % 4 {
                    0 => format!("session:{i}"),
                    1 => format!("cache:ticker:{symbol}:{i}"),
                    2 => format!("qrl:v1:ticker:mexc:X{i}"),
                    _ => format!("position:{i}:{symbol}:extra:segments"),
                };
                set(&mut keys, key, "untouched");
                truth.non_matching += 1;
            }
        }
        for (key, mut writes) in keys {
            if let Some(ttl) = ttl {
                writes.push(Command::new("EXPIRE").arg(&key).arg(ttl));
            }
            truth.keys += 1;
            commands.extend(writes);
        }
        if commands.len() >= 2000 {
            store.pipeline(&std::mem::take(&mut commands)).await?;
        }
    }
    store.pipeline(&commands).await?;
    Ok(truth)
}
