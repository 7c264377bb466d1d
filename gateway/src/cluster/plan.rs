//! Where one command goes on a cluster, and how its answer is made: a [`Plan`] is the parts
//! sent (each to a master, by its keys' slot or by the command's cluster meaning) and the
//! [`Merge`] of their replies. Pure: the topology and key table are given, nothing is sent.
//!
//! - A command with keys goes to the master of their slot; keys in several slots are refused
//!   with `CROSSSLOT` and the fix (a hash tag), as Redis Cluster itself requires.
//! - `SCAN` walks the masters with a composite cursor ([`super::scan_cursor`]); `DBSIZE` is
//!   the sum over masters, `KEYS` their keys together, `RANDOMKEY` the first master's that
//!   has one; what changes every master's state (`SCRIPT LOAD`, `SCRIPT FLUSH`, `FLUSHDB`,
//!   `FUNCTION …`, `CONFIG SET`) runs on each, answered by the first error or the first
//!   reply; `SCRIPT KILL` / `FUNCTION KILL` by the master that ended one; `SCRIPT EXISTS` is
//!   1 where every master has the script.
//! - `PUBLISH` goes to the `--redis-url` node, where the gateway's subscribers are connected
//!   (the cluster broadcasts it to every node, so subscribers elsewhere get it too, and its
//!   count of receivers is the gateway's own subscribers').
//! - Other keyless commands (`PING`, `INFO`, `CONFIG GET`, `TIME`, a script without keys) go
//!   to one chosen master: the first.

use std::collections::BTreeSet;

use edgesync_core::cluster::slot::slot_of;
use edgesync_core::cluster::topology::Topology;
use redis::{RedisResult, Value};

use super::scan_cursor::{CursorError, ScanCursor};
use crate::keys::KeyTable;

/// One command (or a share of it) sent to one master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub args: Vec<Vec<u8>>,
    pub address: String,
    /// The slot it was sent for: a `MOVED` answer moves this slot.
    pub slot: Option<u16>,
}

/// How a command's answer is made from its parts' replies.
#[derive(Debug, Clone, PartialEq)]
pub enum Merge {
    /// The only part's reply.
    One,
    /// The sum of integer replies (`DBSIZE`).
    Sum,
    /// Arrays one after the other (`KEYS`).
    Concat,
    /// The same command on every master: the first error, else the first reply.
    Same,
    /// The first master that did it (`SCRIPT KILL`: one master runs the script, the others
    /// answer `NOTBUSY`), else the first error.
    AnyDid,
    /// Element-wise: 1 where every master answered 1 (`SCRIPT EXISTS`).
    Every,
    /// The first reply that is not nil (`RANDOMKEY`).
    FirstNotNil,
    /// A whole-cluster `SCAN` step on the master `cursor` names; the addresses of every
    /// master, in order, make the next cursor.
    Scan { cursor: ScanCursor, masters: Vec<String> },
    /// Answered without Redis (a scan past the last master).
    Answer(Value),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub parts: Vec<Part>,
    pub merge: Merge,
}

/// Why a command cannot run on a cluster as sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("CROSSSLOT Keys in request don't hash to the same slot: on this Redis Cluster the keys of one command, one /multi-exec transaction or one script must share a hash slot. Give them a common hash tag — the part of the key in braces decides its slot, so {{user1}}:a and {{user1}}:b are always together")]
    CrossSlot,
    #[error(transparent)]
    Cursor(#[from] CursorError),
}

fn upper(arg: Option<&Vec<u8>>) -> String {
    arg.map(|a| String::from_utf8_lossy(a).to_ascii_uppercase()).unwrap_or_default()
}

/// The one slot of every key in `commands`, `None` when they have none.
pub fn common_slot<'a>(
    commands: impl IntoIterator<Item = &'a Vec<Vec<u8>>>,
    keys: &KeyTable,
) -> Result<Option<u16>, PlanError> {
    let slots: BTreeSet<u16> = commands.into_iter().flat_map(|args| keys.keys(args)).map(slot_of).collect();
    match slots.len() {
        0 => Ok(None),
        1 => Ok(slots.first().copied()),
        _ => Err(PlanError::CrossSlot),
    }
}

/// What runs the same on every master, answered by the first error or the first reply.
fn on_every_master(name: &str, sub: &str) -> bool {
    matches!(
        (name, sub),
        ("SCRIPT", "LOAD" | "FLUSH")
            | ("FUNCTION", "LOAD" | "FLUSH" | "DELETE" | "RESTORE")
            | ("CONFIG", "SET" | "RESETSTAT")
            | ("FLUSHDB" | "FLUSHALL", _)
            | ("MEMORY", "PURGE")
            | ("SLOWLOG" | "LATENCY", "RESET")
    )
}

/// Where `args` goes and how its answer is made; `home` is the `--redis-url` node.
pub fn plan(args: &[Vec<u8>], keys: &KeyTable, topology: &Topology, home: &str) -> Result<Plan, PlanError> {
    let masters: Vec<&str> = topology.masters.iter().map(|m| m.address.as_str()).collect();
    let part = |args: Vec<Vec<u8>>, address: &str, slot| Part { args, address: address.to_owned(), slot };
    if let Some(slot) = common_slot([&args.to_vec()], keys)? {
        return Ok(Plan { parts: vec![part(args.to_vec(), topology.master_of(slot), Some(slot))], merge: Merge::One });
    }
    let everywhere = |merge| Plan { parts: masters.iter().map(|m| part(args.to_vec(), m, None)).collect(), merge };
    let (name, sub) = (upper(args.first()), upper(args.get(1)));
    Ok(match name.as_str() {
        "SCAN" if args.len() >= 2 => {
            let cursor = ScanCursor::parse(&args[1])?;
            let Some(address) = masters.get(cursor.master) else {
                let end = Value::Array(vec![Value::BulkString(b"0".to_vec()), Value::Array(Vec::new())]);
                return Ok(Plan { parts: Vec::new(), merge: Merge::Answer(end) });
            };
            let mut sent = args.to_vec();
            sent[1] = cursor.node_cursor_at(address).to_string().into_bytes();
            Plan {
                parts: vec![part(sent, address, None)],
                merge: Merge::Scan { cursor, masters: masters.iter().map(|m| m.to_string()).collect() },
            }
        }
        "PUBLISH" => Plan { parts: vec![part(args.to_vec(), home, None)], merge: Merge::One },
        "DBSIZE" => everywhere(Merge::Sum),
        "KEYS" => everywhere(Merge::Concat),
        "RANDOMKEY" => everywhere(Merge::FirstNotNil),
        "SCRIPT" if sub == "EXISTS" => everywhere(Merge::Every),
        "SCRIPT" | "FUNCTION" if sub == "KILL" => everywhere(Merge::AnyDid),
        _ if on_every_master(&name, &sub) => everywhere(Merge::Same),
        _ => Plan { parts: vec![part(args.to_vec(), masters[0], None)], merge: Merge::One },
    })
}

fn int_of(value: &Value) -> Option<i64> {
    match value {
        Value::Int(n) => Some(*n),
        _ => None,
    }
}

/// Makes a command's answer from its parts' replies (in the plan's order).
pub fn merge(merge: &Merge, mut replies: Vec<RedisResult<Value>>) -> RedisResult<Value> {
    let unexpected = |what: &'static str| redis::RedisError::from((redis::ErrorKind::UnexpectedReturnType, what));
    if let Merge::Answer(value) = merge {
        return Ok(value.clone());
    }
    if *merge == Merge::AnyDid {
        let did = replies.iter().position(|r| r.is_ok()).unwrap_or(0);
        return if replies.is_empty() { Err(unexpected("no reply")) } else { replies.swap_remove(did) };
    }
    if let Some(at) = replies.iter().position(|r| r.is_err()) {
        return replies.swap_remove(at);
    }
    let values: Vec<Value> = replies.into_iter().filter_map(Result::ok).collect();
    match merge {
        Merge::One | Merge::Same => values.into_iter().next().ok_or_else(|| unexpected("no reply")),
        Merge::Sum => values
            .iter()
            .map(int_of)
            .sum::<Option<i64>>()
            .map(Value::Int)
            .ok_or_else(|| unexpected("a master's count is not an integer")),
        Merge::Concat => {
            let mut all = Vec::new();
            for value in values {
                match value {
                    Value::Array(items) => all.extend(items),
                    _ => return Err(unexpected("a master's keys are not an array")),
                }
            }
            Ok(Value::Array(all))
        }
        Merge::Every => {
            let mut every: Option<Vec<Value>> = None;
            for value in values {
                let Value::Array(items) = value else { return Err(unexpected("SCRIPT EXISTS is not an array")) };
                every = Some(match every {
                    None => items,
                    Some(so_far) => so_far
                        .into_iter()
                        .zip(items)
                        .map(|(a, b)| Value::Int(i64::from(int_of(&a) == Some(1) && int_of(&b) == Some(1))))
                        .collect(),
                });
            }
            Ok(Value::Array(every.unwrap_or_default()))
        }
        Merge::FirstNotNil => Ok(values.into_iter().find(|v| *v != Value::Nil).unwrap_or(Value::Nil)),
        Merge::Scan { cursor, masters } => {
            let mut values = values.into_iter();
            let Some(Value::Array(mut page)) = values.next() else { return Err(unexpected("SCAN is not an array")) };
            if page.len() != 2 {
                return Err(unexpected("SCAN is not [cursor, keys]"));
            }
            let keys = page.pop().unwrap_or(Value::Nil);
            let node_cursor = match page.pop() {
                Some(Value::BulkString(text)) => String::from_utf8_lossy(&text).parse::<u64>().ok(),
                _ => None,
            }
            .ok_or_else(|| unexpected("SCAN's cursor is not a number"))?;
            let addresses: Vec<&str> = masters.iter().map(String::as_str).collect();
            let next = cursor.after(node_cursor, &addresses).pack().map_err(|e| {
                redis::RedisError::from((redis::ErrorKind::Client, "the composite cursor", e.to_string()))
            })?;
            Ok(Value::Array(vec![Value::BulkString(next.to_string().into_bytes()), keys]))
        }
        Merge::Answer(_) | Merge::AnyDid => unreachable!("answered above"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::tests::{args, table};
    use edgesync_core::store::Reply;

    fn topology() -> Topology {
        let node = |port: i64| Reply::Array(vec![Reply::bulk("127.0.0.1"), Reply::Int(port), Reply::bulk("id")]);
        let range = |from, to, port| Reply::Array(vec![Reply::Int(from), Reply::Int(to), node(port)]);
        Topology::from_cluster_slots(Reply::Array(vec![
            range(0, 5460, 7001),
            range(5461, 10922, 7002),
            range(10923, 16383, 7003),
        ]))
        .unwrap()
    }

    const HOME: &str = "127.0.0.1:7004";

    #[test]
    fn keyed_commands_go_to_their_slots_master_and_cross_slot_is_refused() {
        let plan = plan(&args("GET a"), &table(), &topology(), HOME).unwrap();
        assert_eq!(plan.parts[0].address, "127.0.0.1:7003", "slot 15495");
        assert_eq!(plan.parts[0].slot, Some(15495));
        let tagged = super::plan(&args("MGET {u}a {u}b"), &table(), &topology(), HOME).unwrap();
        assert_eq!(tagged.parts.len(), 1);
        let error = super::plan(&args("MGET a b"), &table(), &topology(), HOME).unwrap_err();
        assert_eq!(error, PlanError::CrossSlot);
        assert!(error.to_string().starts_with("CROSSSLOT") && error.to_string().contains("{user1}:a"), "{error}");
    }

    #[test]
    fn keyless_commands_go_to_one_master_or_every_master() {
        assert_eq!(plan(&args("PING"), &table(), &topology(), HOME).unwrap().parts[0].address, "127.0.0.1:7001");
        let publish = plan(&args("PUBLISH c m"), &table(), &topology(), HOME).unwrap();
        assert_eq!(publish.parts[0].address, HOME, "where the gateway's subscribers are");
        let dbsize = plan(&args("DBSIZE"), &table(), &topology(), HOME).unwrap();
        assert_eq!((dbsize.parts.len(), &dbsize.merge), (3, &Merge::Sum));
        let load = plan(&args("SCRIPT LOAD x"), &table(), &topology(), HOME).unwrap();
        assert_eq!((load.parts.len(), &load.merge), (3, &Merge::Same));
        let kill = plan(&args("SCRIPT KILL"), &table(), &topology(), HOME).unwrap();
        assert_eq!((kill.parts.len(), &kill.merge), (3, &Merge::AnyDid));
        let notbusy = || Err(crate::cluster::server_error("NOTBUSY No scripts in execution right now."));
        assert_eq!(merge(&Merge::AnyDid, vec![notbusy(), Ok(Value::Okay), notbusy()]).unwrap(), Value::Okay);
        assert!(merge(&Merge::AnyDid, vec![notbusy(), notbusy()]).is_err());
        let sum = merge(&Merge::Sum, vec![Ok(Value::Int(2)), Ok(Value::Int(3)), Ok(Value::Int(4))]);
        assert_eq!(sum.unwrap(), Value::Int(9));
        let every = merge(
            &Merge::Every,
            vec![
                Ok(Value::Array(vec![Value::Int(1), Value::Int(1)])),
                Ok(Value::Array(vec![Value::Int(1), Value::Int(0)])),
            ],
        );
        assert_eq!(every.unwrap(), Value::Array(vec![Value::Int(1), Value::Int(0)]));
    }

    #[test]
    fn a_scan_moves_to_the_next_master_when_one_is_done() {
        let first = plan(&args("SCAN 0 MATCH x*"), &table(), &topology(), HOME).unwrap();
        assert_eq!(first.parts[0].address, "127.0.0.1:7001");
        assert_eq!(first.parts[0].args, args("SCAN 0 MATCH x*"));
        let page =
            Value::Array(vec![Value::BulkString(b"0".to_vec()), Value::Array(vec![Value::BulkString(b"k".to_vec())])]);
        let Value::Array(answer) = merge(&first.merge, vec![Ok(page)]).unwrap() else { panic!() };
        let Value::BulkString(next) = &answer[0] else { panic!() };
        let second = plan(&[b"SCAN".to_vec(), next.clone()], &table(), &topology(), HOME).unwrap();
        assert_eq!(second.parts[0].address, "127.0.0.1:7002");
        assert_eq!(second.parts[0].args[1], b"0");
        assert!(plan(&args("SCAN nope"), &table(), &topology(), HOME).is_err());
    }
}
