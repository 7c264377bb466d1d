//! Which arguments of a command are keys, so a cluster's commands go to the master serving
//! their slot. Redis says it itself: `COMMAND` lists each command's (and subcommand's) first
//! key, last key and step, read once at start from the cluster, so the table matches the
//! Redis behind the gateway. Commands whose keys move with their arguments (`movablekeys`:
//! `EVAL`'s `numkeys`, `XREAD`'s `STREAMS`, `SORT … STORE`) are read by the rules here; one
//! this module does not know routes by the first key `COMMAND` gives it, and Redis itself
//! answers `CROSSSLOT` if its other keys are elsewhere.

use std::collections::HashMap;

use redis::Value;

/// A command's key positions as `COMMAND` gives them (1-based, `last` negative from the end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Positions {
    first: i64,
    last: i64,
    step: i64,
}

/// Key positions of every command Redis knows, `name` or `name|sub`, lower-case.
#[derive(Debug, Default)]
pub struct KeyTable {
    commands: HashMap<String, Positions>,
    /// Commands that have subcommands: their keys are the subcommand's.
    containers: std::collections::HashSet<String>,
}

/// Why `COMMAND`'s answer could not be read.
#[derive(Debug, thiserror::Error)]
#[error("COMMAND answered something unexpected: {0}")]
pub struct KeyTableError(String);

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).to_ascii_lowercase()),
        Value::SimpleString(text) => Some(text.to_ascii_lowercase()),
        _ => None,
    }
}

fn int(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Int(n) => Some(*n),
        _ => None,
    }
}

impl KeyTable {
    /// Reads the reply of `COMMAND` (RESP2): `[[name, arity, flags, first, last, step, …,
    /// subcommands]…]`.
    pub fn from_command_reply(reply: &Value) -> Result<Self, KeyTableError> {
        let Value::Array(entries) = reply else { return Err(KeyTableError("not an array".into())) };
        let mut table = KeyTable::default();
        for entry in entries {
            table.add(entry)?;
        }
        if table.commands.is_empty() {
            return Err(KeyTableError("no commands".into()));
        }
        Ok(table)
    }

    fn add(&mut self, entry: &Value) -> Result<(), KeyTableError> {
        let Value::Array(parts) = entry else { return Err(KeyTableError("an entry is not an array".into())) };
        let name = parts.first().and_then(text).ok_or_else(|| KeyTableError("an entry without a name".into()))?;
        let (Some(first), Some(last), Some(step)) = (int(parts.get(3)), int(parts.get(4)), int(parts.get(5))) else {
            return Err(KeyTableError(format!("{name} lacks its key positions")));
        };
        self.commands.insert(name.clone(), Positions { first, last, step });
        if let Some(Value::Array(subcommands)) = parts.get(9) {
            if !subcommands.is_empty() {
                self.containers.insert(name);
            }
            for subcommand in subcommands {
                self.add(subcommand)?;
            }
        }
        Ok(())
    }

    /// The keys of `args` (`args[0]` is the command's name), in order; none for a keyless or
    /// unknown command.
    pub fn keys<'a>(&self, args: &'a [Vec<u8>]) -> Vec<&'a [u8]> {
        let Some(name) = args.first().map(|a| String::from_utf8_lossy(a).to_ascii_lowercase()) else {
            return Vec::new();
        };
        if let Some(keys) = movable_keys(&name, args) {
            return keys;
        }
        let positions = match args.get(1) {
            Some(sub) if self.containers.contains(&name) => {
                self.commands.get(&format!("{name}|{}", String::from_utf8_lossy(sub).to_ascii_lowercase()))
            }
            _ => self.commands.get(&name),
        };
        let Some(&Positions { first, last, step }) = positions else { return Vec::new() };
        if first <= 0 || step <= 0 {
            return Vec::new();
        }
        let count = args.len() as i64;
        let last = if last < 0 { count + last } else { last.min(count - 1) };
        (first..=last).step_by(step as usize).filter_map(|at| args.get(at as usize).map(Vec::as_slice)).collect()
    }
}

fn upper(arg: &[u8]) -> String {
    String::from_utf8_lossy(arg).to_ascii_uppercase()
}

/// `count` keys from `args[from]`, `count` read at `args[count_at]`.
fn counted(args: &[Vec<u8>], count_at: usize, from: usize) -> Vec<&[u8]> {
    let count = args.get(count_at).and_then(|n| String::from_utf8_lossy(n).parse::<usize>().ok()).unwrap_or(0);
    args.iter().skip(from).take(count).map(Vec::as_slice).collect()
}

/// The argument after the word `option` (`STORE dest`), from `args[from]` on.
fn after(args: &[Vec<u8>], from: usize, options: &[&str]) -> Option<usize> {
    (from..args.len().saturating_sub(1)).find(|at| options.contains(&upper(&args[*at]).as_str())).map(|at| at + 1)
}

/// The keys of the `movablekeys` commands Redis 7 has, by their syntax.
fn movable_keys<'a>(name: &str, args: &'a [Vec<u8>]) -> Option<Vec<&'a [u8]>> {
    Some(match name {
        "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro" => counted(args, 2, 3),
        "zunion" | "zinter" | "zdiff" | "zintercard" | "sintercard" | "lmpop" | "zmpop" => counted(args, 1, 2),
        "blmpop" | "bzmpop" => counted(args, 2, 3),
        "zunionstore" | "zinterstore" | "zdiffstore" => {
            let mut keys = vec![args.get(1)?.as_slice()];
            keys.extend(counted(args, 2, 3));
            keys
        }
        "xread" | "xreadgroup" => {
            let streams = (1..args.len()).find(|at| upper(&args[*at]) == "STREAMS")? + 1;
            let rest = &args[streams..];
            rest[..rest.len() / 2].iter().map(Vec::as_slice).collect()
        }
        "sort" | "sort_ro" | "georadius" | "georadiusbymember" => {
            let mut keys = vec![args.get(1)?.as_slice()];
            if let Some(at) = after(args, 2, &["STORE", "STOREDIST"]) {
                keys.push(&args[at]);
            }
            keys
        }
        _ => return None,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `text`'s words as a command's arguments.
    pub(crate) fn args(text: &str) -> Vec<Vec<u8>> {
        text.split(' ').map(|s| s.as_bytes().to_vec()).collect()
    }

    fn entry(name: &str, first: i64, last: i64, step: i64, subcommands: Vec<Value>) -> Value {
        Value::Array(vec![
            Value::BulkString(name.as_bytes().to_vec()),
            Value::Int(-2),
            Value::Array(vec![]),
            Value::Int(first),
            Value::Int(last),
            Value::Int(step),
            Value::Array(vec![]),
            Value::Array(vec![]),
            Value::Array(vec![]),
            Value::Array(subcommands),
        ])
    }

    /// A table as `COMMAND` would give it, for a few commands.
    pub(crate) fn table() -> KeyTable {
        KeyTable::from_command_reply(&Value::Array(vec![
            entry("get", 1, 1, 1, vec![]),
            entry("mget", 1, -1, 1, vec![]),
            entry("mset", 1, -1, 2, vec![]),
            entry("del", 1, -1, 1, vec![]),
            entry("ping", 0, 0, 0, vec![]),
            entry("object", 0, 0, 0, vec![entry("object|encoding", 2, 2, 1, vec![])]),
        ]))
        .unwrap()
    }

    fn keys(command: &str) -> Vec<String> {
        let args = args(command);
        table().keys(&args).into_iter().map(|k| String::from_utf8_lossy(k).into_owned()).collect()
    }

    #[test]
    fn keys_come_from_commands_positions() {
        assert_eq!(keys("GET a"), ["a"]);
        assert_eq!(keys("MSET a 1 b 2"), ["a", "b"]);
        assert_eq!(keys("DEL a b c"), ["a", "b", "c"]);
        assert!(keys("PING").is_empty());
        assert_eq!(keys("OBJECT ENCODING k"), ["k"], "a subcommand's positions");
        assert!(keys("NOSUCH a").is_empty(), "unknown: keyless");
    }

    #[test]
    fn movable_keys_follow_their_syntax() {
        assert_eq!(keys("EVAL s 2 a b x"), ["a", "b"]);
        assert!(keys("EVALSHA h 0 x").is_empty());
        assert_eq!(keys("ZUNIONSTORE d 2 a b WEIGHTS 1 2"), ["d", "a", "b"]);
        assert_eq!(keys("XREAD COUNT 2 STREAMS s1 s2 0 0"), ["s1", "s2"]);
        assert_eq!(keys("SORT l BY w STORE d"), ["l", "d"]);
        assert_eq!(keys("LMPOP 2 a b LEFT"), ["a", "b"]);
        assert!(keys("EVAL s notanumber").is_empty(), "bad input is not a panic");
    }
}
