//! The store conformance suite: one set of checks, with exact expected replies, that every
//! [`Store`] must pass — the memory store here under `cargo test`, real Redis through the
//! Upstash-REST gateway in the end-to-end crate (feature `conformance`). Because both answer
//! to the same expectations, the memory tier cannot drift from Redis semantics.
//!
//! `EVAL` is not covered: the memory store does not script.

use std::collections::{BTreeMap, BTreeSet};

use futures_executor::block_on;

use super::{Command, Reply, Store, StoreExt};

/// A store under test plus the two things the suite cannot do itself.
pub trait Subject {
    fn store(&self) -> &dyn Store;
    /// A key prefix no other run uses, e.g. `conformance:1234:`.
    fn prefix(&self) -> String;
    /// Lets a little store time pass (memory: advance the clock; Redis: wait a few ms).
    /// The suite polls with a bounded number of ticks, never a fixed sleep.
    fn tick(&self);
}

/// One named check.
pub type Check = (&'static str, fn(&dyn Subject));

/// Every check, by name.
pub const CHECKS: &[Check] = &[
    ("strings_and_ttls", strings_and_ttls),
    ("ttl_expiry", ttl_expiry),
    ("hashes", hashes),
    ("sets", sets),
    ("sorted_set_order_range_and_trim", sorted_set_order_range_and_trim),
    ("scan_with_glob", scan_with_glob),
    ("pipeline_with_a_failing_command_in_the_middle", pipeline_with_a_failing_command_in_the_middle),
    ("transaction_runs_all_in_order", transaction_runs_all_in_order),
    ("keys_types_and_unlink", keys_types_and_unlink),
    ("info_reports_memory_and_policy", info_reports_memory_and_policy),
];

/// Runs every check, naming the failing one.
pub fn run_all(subject: &dyn Subject) {
    for (name, check) in CHECKS {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(subject)));
        if let Err(panic) = outcome {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("conformance check `{name}` failed: {message}");
        }
    }
}

fn run(subject: &dyn Subject, command: Command) -> Reply {
    block_on(subject.store().execute(&command)).unwrap_or_else(|e| panic!("{command:?}: {e}"))
}

fn int(subject: &dyn Subject, command: Command) -> i64 {
    run(subject, command).into_int().unwrap()
}

fn bulk(text: &str) -> Reply {
    Reply::bulk(text.as_bytes().to_vec())
}

fn texts(reply: Reply) -> Vec<String> {
    reply.into_array().unwrap().into_iter().map(|r| r.into_string().unwrap()).collect()
}

fn strings_and_ttls(s: &dyn Subject) {
    let (permanent, expiring) = (format!("{}perm", s.prefix()), format!("{}exp", s.prefix()));
    assert_eq!(run(s, Command::new("SET").arg(&permanent).arg("v1")), bulk("OK"));
    assert_eq!(run(s, Command::new("GET").arg(&permanent)), bulk("v1"));
    assert_eq!(int(s, Command::new("TTL").arg(&permanent)), -1);
    assert_eq!(run(s, Command::new("SET").arg(&expiring).arg("v2").arg("EX").arg(100)), bulk("OK"));
    assert_eq!(int(s, Command::new("TTL").arg(&expiring)), 100);
    let pttl = int(s, Command::new("PTTL").arg(&expiring));
    assert!((99_000..=100_000).contains(&pttl), "PTTL {pttl}");
    // SET without EX clears the TTL; KEEPTTL keeps it.
    run(s, Command::new("SET").arg(&expiring).arg("v3").arg("KEEPTTL"));
    assert!(int(s, Command::new("TTL").arg(&expiring)) > 0);
    run(s, Command::new("SET").arg(&expiring).arg("v4"));
    assert_eq!(int(s, Command::new("TTL").arg(&expiring)), -1);
    assert_eq!(run(s, Command::new("SET").arg(&permanent).arg("x").arg("NX")), Reply::Nil);
    assert_eq!(run(s, Command::new("SET").arg(format!("{}none", s.prefix())).arg("x").arg("XX")), Reply::Nil);
    assert_eq!(run(s, Command::new("GET").arg(format!("{}none", s.prefix()))), Reply::Nil);
    assert_eq!(int(s, Command::new("TTL").arg(format!("{}none", s.prefix()))), -2);
    assert_eq!(int(s, Command::new("INCRBY").arg(format!("{}counter", s.prefix())).arg(5)), 5);
    assert_eq!(int(s, Command::new("INCR").arg(format!("{}counter", s.prefix()))), 6);
    let mget = run(s, Command::new("MGET").arg(&permanent).arg(format!("{}none", s.prefix())));
    assert_eq!(mget, Reply::Array(vec![bulk("v1"), Reply::Nil]));
}

fn ttl_expiry(s: &dyn Subject) {
    let key = format!("{}short", s.prefix());
    run(s, Command::new("SET").arg(&key).arg("soon gone").arg("PX").arg(150));
    assert_eq!(run(s, Command::new("GET").arg(&key)), bulk("soon gone"));
    let mut ticks = 0;
    while run(s, Command::new("GET").arg(&key)) != Reply::Nil {
        ticks += 1;
        assert!(ticks < 500, "the key never expired");
        s.tick();
    }
    assert_eq!(int(s, Command::new("PTTL").arg(&key)), -2);
    assert_eq!(int(s, Command::new("EXISTS").arg(&key)), 0);
}

fn hashes(s: &dyn Subject) {
    let key = format!("{}hash", s.prefix());
    assert_eq!(int(s, Command::hset(&key, &[("base_free", "1.5"), ("quote_free", "20")])), 2);
    assert_eq!(int(s, Command::hset(&key, &[("base_free", "2.5"), ("avg_cost", "0.01")])), 1);
    assert_eq!(run(s, Command::new("HGET").arg(&key).arg("base_free")), bulk("2.5"));
    let all = block_on(s.store().hgetall(&key)).unwrap();
    let expected: BTreeMap<String, String> = [("avg_cost", "0.01"), ("base_free", "2.5"), ("quote_free", "20")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(all, expected);
    assert_eq!(int(s, Command::new("HINCRBY").arg(&key).arg("runs").arg(3)), 3);
    assert_eq!(int(s, Command::new("HLEN").arg(&key)), 4);
    let wrongtype = block_on(s.store().execute(&Command::new("GET").arg(&key))).unwrap_err().to_string();
    assert!(wrongtype.contains("WRONGTYPE"), "{wrongtype}");
    assert_eq!(
        int(s, Command::new("HDEL").arg(&key).arg("base_free").arg("quote_free").arg("avg_cost").arg("runs")),
        4
    );
    assert_eq!(int(s, Command::new("EXISTS").arg(&key)), 0, "an emptied hash is deleted");
    assert!(block_on(s.store().hgetall(&key)).unwrap().is_empty());
}

fn sets(s: &dyn Subject) {
    let key = format!("{}set", s.prefix());
    assert_eq!(int(s, Command::sadd(&key, &["QRLUSDT:long", "BTCUSDT:short", "QRLUSDT:long"])), 2);
    assert_eq!(int(s, Command::new("SISMEMBER").arg(&key).arg("BTCUSDT:short")), 1);
    assert_eq!(int(s, Command::new("SCARD").arg(&key)), 2);
    let members = block_on(s.store().smembers(&key)).unwrap();
    assert_eq!(members, BTreeSet::from(["BTCUSDT:short".to_owned(), "QRLUSDT:long".to_owned()]));
    assert_eq!(int(s, Command::new("SREM").arg(&key).arg("BTCUSDT:short").arg("nope")), 1);
    assert_eq!(int(s, Command::new("SREM").arg(&key).arg("QRLUSDT:long")), 1);
    assert_eq!(int(s, Command::new("EXISTS").arg(&key)), 0, "an emptied set is deleted");
}

fn sorted_set_order_range_and_trim(s: &dyn Subject) {
    let key = format!("{}history", s.prefix());
    // Ties (same score) order by member bytes.
    for (score, member) in [(3000, "c"), (1000, "a"), (2000, "b2"), (2000, "b1"), (4000, "d"), (5000, "e")] {
        assert_eq!(int(s, Command::zadd(&key, score, member)), 1);
    }
    assert_eq!(int(s, Command::zadd(&key, 6000, "a")), 0, "re-scoring is not an addition");
    run(s, Command::zadd(&key, 1000, "a"));
    assert_eq!(texts(run(s, Command::new("ZRANGE").arg(&key).arg(0).arg(-1))), ["a", "b1", "b2", "c", "d", "e"]);
    assert_eq!(
        texts(run(s, Command::new("ZRANGE").arg(&key).arg(-2).arg(-1).arg("WITHSCORES"))),
        ["d", "4000", "e", "5000"]
    );
    let window = block_on(s.store().zrange_by_score(&key, Some(2000), Some(4000), 3, false)).unwrap();
    assert_eq!(window, vec![("b1".into(), 2000), ("b2".into(), 2000), ("c".into(), 3000)]);
    let newest = block_on(s.store().zrange_by_score(&key, None, None, 2, true)).unwrap();
    assert_eq!(newest, vec![("e".into(), 5000), ("d".into(), 4000)]);
    let exclusive =
        run(s, Command::new("ZRANGEBYSCORE").arg(&key).arg("(2000").arg("+inf").arg("LIMIT").arg(1).arg(10));
    assert_eq!(texts(exclusive), ["d", "e"]);
    let reverse = run(s, Command::new("ZREVRANGEBYSCORE").arg(&key).arg(3000).arg("-inf"));
    assert_eq!(texts(reverse), ["c", "b2", "b1", "a"]);
    assert_eq!(run(s, Command::new("ZSCORE").arg(&key).arg("c")), bulk("3000"));
    // Trim to the 4 newest: removes the 2 lowest-scored.
    assert_eq!(int(s, Command::ztrim_to_newest(&key, 4)), 2);
    assert_eq!(texts(run(s, Command::new("ZRANGE").arg(&key).arg(0).arg(-1))), ["b2", "c", "d", "e"]);
    assert_eq!(int(s, Command::ztrim_to_newest(&key, 10)), 0);
    assert_eq!(int(s, Command::new("ZCARD").arg(&key)), 4);
}

fn scan_all(s: &dyn Subject, pattern: &str) -> BTreeSet<String> {
    let mut cursor = 0;
    let mut keys = BTreeSet::new();
    loop {
        let page = block_on(s.store().scan(cursor, pattern, 10)).unwrap();
        keys.extend(page.keys);
        if page.cursor == 0 {
            return keys;
        }
        cursor = page.cursor;
    }
}

fn scan_with_glob(s: &dyn Subject) {
    let p = format!("{}scan:", s.prefix());
    let names =
        ["price:QRLUSDT:latest", "price:QRLUSDT:cached", "price:BTCUSDT:latest", "ticker:QRLUSDT", "pricey", "a*b"];
    for name in names {
        run(s, Command::new("SET").arg(format!("{p}{name}")).arg("1"));
    }
    let set = |items: &[&str]| items.iter().map(|i| format!("{p}{i}")).collect::<BTreeSet<_>>();
    assert_eq!(scan_all(s, &format!("{p}*")), set(&names));
    assert_eq!(
        scan_all(s, &format!("{p}price:*")),
        set(&["price:QRLUSDT:latest", "price:QRLUSDT:cached", "price:BTCUSDT:latest"])
    );
    assert_eq!(
        scan_all(s, &format!("{p}*:QRLUSDT*")),
        set(&["price:QRLUSDT:latest", "price:QRLUSDT:cached", "ticker:QRLUSDT"])
    );
    assert_eq!(scan_all(s, &format!("{p}price:?TCUSDT:*")), set(&["price:BTCUSDT:latest"]));
    assert_eq!(scan_all(s, &format!("{p}price:[QX]RLUSDT:l*")), set(&["price:QRLUSDT:latest"]));
    assert_eq!(scan_all(s, &format!("{p}a\\*b")), set(&["a*b"]));
    assert_eq!(scan_all(s, &format!("{p}nothing*")), BTreeSet::new());
}

fn pipeline_with_a_failing_command_in_the_middle(s: &dyn Subject) {
    let (text, counter) = (format!("{}pipe:text", s.prefix()), format!("{}pipe:n", s.prefix()));
    let replies = block_on(s.store().pipeline(&[
        Command::new("SET").arg(&text).arg("not a number"),
        Command::new("INCR").arg(&text),
        Command::new("INCR").arg(&counter),
        Command::new("GET").arg(&text),
    ]))
    .unwrap();
    assert_eq!(replies.len(), 4);
    assert_eq!(replies[0], Ok(bulk("OK")));
    assert_eq!(replies[1].as_ref().unwrap_err().0, "ERR value is not an integer or out of range");
    assert_eq!(replies[2], Ok(Reply::Int(1)), "commands after a failure still run");
    assert_eq!(replies[3], Ok(bulk("not a number")));
}

fn transaction_runs_all_in_order(s: &dyn Subject) {
    let key = format!("{}tx", s.prefix());
    let replies = block_on(s.store().transaction(&[
        Command::new("INCR").arg(&key),
        Command::new("INCR").arg(&key),
        Command::new("GET").arg(&key),
    ]))
    .unwrap();
    assert_eq!(replies, vec![Ok(Reply::Int(1)), Ok(Reply::Int(2)), Ok(bulk("2"))]);
}

fn keys_types_and_unlink(s: &dyn Subject) {
    let p = s.prefix();
    let (string, hash, set, zset) = (format!("{p}t:s"), format!("{p}t:h"), format!("{p}t:set"), format!("{p}t:z"));
    run(s, Command::new("SET").arg(&string).arg("v"));
    run(s, Command::hset(&hash, &[("f", "v")]));
    run(s, Command::sadd(&set, &["m"]));
    run(s, Command::zadd(&zset, 1, "m"));
    for (key, kind) in [(&string, "string"), (&hash, "hash"), (&set, "set"), (&zset, "zset")] {
        assert_eq!(run(s, Command::new("TYPE").arg(key)), bulk(kind));
    }
    assert_eq!(run(s, Command::new("TYPE").arg(format!("{p}t:none"))), bulk("none"));
    assert_eq!(int(s, Command::new("EXISTS").arg(&string).arg(&hash).arg(format!("{p}t:none"))), 2);
    run(s, Command::new("EXPIRE").arg(&hash).arg(50));
    assert_eq!(int(s, Command::new("TTL").arg(&hash)), 50);
    run(s, Command::new("PERSIST").arg(&hash));
    assert_eq!(int(s, Command::new("TTL").arg(&hash)), -1);
    let doomed = vec![string.clone(), hash.clone(), set.clone(), zset.clone(), format!("{p}t:none")];
    assert_eq!(block_on(s.store().unlink(&doomed)).unwrap(), 4);
    assert_eq!(int(s, Command::new("EXISTS").arg(&string).arg(&hash).arg(&set).arg(&zset)), 0);
}

fn info_reports_memory_and_policy(s: &dyn Subject) {
    let memory = block_on(s.store().info(Some("memory"))).unwrap();
    for field in ["used_memory:", "used_memory_peak:", "maxmemory_policy:"] {
        assert!(memory.contains(field), "INFO memory lacks {field}: {memory}");
    }
    let stats = block_on(s.store().info(Some("stats"))).unwrap();
    assert!(stats.contains("evicted_keys:"), "{stats}");
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::FixedClock;
    use crate::store::memory::MemoryStore;

    struct Memory {
        clock: Arc<FixedClock>,
        store: MemoryStore,
    }

    impl Subject for Memory {
        fn store(&self) -> &dyn Store {
            &self.store
        }
        fn prefix(&self) -> String {
            "conformance:".into()
        }
        fn tick(&self) {
            self.clock.advance_ms(10);
        }
    }

    #[test]
    fn memory_store_conforms() {
        let clock = Arc::new(FixedClock::at(1_700_000_000_000));
        let subject = Memory { clock: clock.clone(), store: MemoryStore::new(clock, 1000) };
        run_all(&subject);
    }
}
