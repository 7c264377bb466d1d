//! The in-memory store: a small Redis interpreter over a map, with Redis semantics for the
//! commands edgesync uses. It is the isolate-local tier in the worker and the whole store in
//! `make dev` when no Redis is configured. Expiry follows the injected [`Clock`], so tests
//! drive time explicitly. It is checked against real Redis by the conformance suite.
//!
//! It does not persist anything and is not shared between isolates.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{Command, CommandError, Replies, Reply, Store, StoreError};
use crate::clock::Clock;

struct Entry {
    value: Vec<u8>,
    /// Absolute expiry in ms since the epoch; `None` is permanent.
    expires_at_ms: Option<i64>,
}

pub struct MemoryStore {
    clock: Arc<dyn Clock + Send + Sync>,
    /// `std::sync::Mutex`: held only for the duration of one batch, never across an await.
    entries: Mutex<HashMap<String, Entry>>,
}

impl MemoryStore {
    pub fn new(clock: Arc<dyn Clock + Send + Sync>) -> Self {
        Self { clock, entries: Mutex::new(HashMap::new()) }
    }

    fn run_all(&self, commands: &[Command]) -> Replies {
        let now = self.clock.now_ms();
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        commands.iter().map(|command| apply(&mut entries, now, command)).collect()
    }
}

#[async_trait(?Send)]
impl Store for MemoryStore {
    async fn pipeline(&self, commands: &[Command]) -> Result<Replies, StoreError> {
        Ok(self.run_all(commands))
    }

    /// Atomic for free: one lock covers the whole batch.
    async fn transaction(&self, commands: &[Command]) -> Result<Replies, StoreError> {
        Ok(self.run_all(commands))
    }
}

fn err(text: &str) -> Result<Reply, CommandError> {
    Err(CommandError(text.to_owned()))
}

fn wrong_args(name: &str) -> Result<Reply, CommandError> {
    Err(CommandError(format!("ERR wrong number of arguments for '{}' command", name.to_ascii_lowercase())))
}

fn live<'a>(entries: &'a mut HashMap<String, Entry>, now: i64, key: &str) -> Option<&'a mut Entry> {
    if entries.get(key).is_some_and(|e| e.expires_at_ms.is_some_and(|at| at <= now)) {
        entries.remove(key);
    }
    entries.get_mut(key)
}

fn parse_int(text: &str) -> Result<i64, CommandError> {
    text.parse().map_err(|_| CommandError("ERR value is not an integer or out of range".into()))
}

fn apply(entries: &mut HashMap<String, Entry>, now: i64, command: &Command) -> Result<Reply, CommandError> {
    let name = command.name();
    let args = &command.args()[1..];
    match name {
        "PING" => Ok(Reply::bulk("PONG")),
        "GET" => {
            let [key] = args else { return wrong_args(name) };
            Ok(live(entries, now, key).map_or(Reply::Nil, |e| Reply::Bulk(e.value.clone())))
        }
        "SET" => {
            let [key, value, options @ ..] = args else { return wrong_args(name) };
            let mut expires_at_ms = None;
            let mut options = options.iter();
            while let Some(option) = options.next() {
                let unit_ms = match option.to_ascii_uppercase().as_str() {
                    "EX" => 1000,
                    "PX" => 1,
                    _ => return err("ERR syntax error"),
                };
                let Some(amount) = options.next() else { return err("ERR syntax error") };
                let amount = parse_int(amount)?;
                if amount <= 0 {
                    return err("ERR invalid expire time in 'set' command");
                }
                expires_at_ms = Some(now + amount * unit_ms);
            }
            entries.insert(key.clone(), Entry { value: value.clone().into_bytes(), expires_at_ms });
            Ok(Reply::bulk("OK"))
        }
        "DEL" | "UNLINK" => {
            if args.is_empty() {
                return wrong_args(name);
            }
            let mut removed = 0;
            for key in args {
                if live(entries, now, key).is_some() {
                    entries.remove(key);
                    removed += 1;
                }
            }
            Ok(Reply::Int(removed))
        }
        "EXISTS" => {
            if args.is_empty() {
                return wrong_args(name);
            }
            Ok(Reply::Int(args.iter().filter(|key| live(entries, now, key).is_some()).count() as i64))
        }
        "PTTL" | "TTL" => {
            let [key] = args else { return wrong_args(name) };
            let divisor = if name == "TTL" { 1000 } else { 1 };
            Ok(Reply::Int(match live(entries, now, key) {
                None => -2,
                Some(Entry { expires_at_ms: None, .. }) => -1,
                // Redis rounds TTL to the nearest second.
                Some(Entry { expires_at_ms: Some(at), .. }) => (*at - now + divisor / 2) / divisor,
            }))
        }
        "EXPIRE" | "PEXPIRE" => {
            let [key, amount] = args else { return wrong_args(name) };
            let unit_ms = if name == "EXPIRE" { 1000 } else { 1 };
            let amount = parse_int(amount)?;
            Ok(Reply::Int(match live(entries, now, key) {
                None => 0,
                Some(_) if amount <= 0 => {
                    entries.remove(key);
                    1
                }
                Some(entry) => {
                    entry.expires_at_ms = Some(now + amount * unit_ms);
                    1
                }
            }))
        }
        _ => Err(CommandError(format!("ERR unknown command '{}'", name.to_ascii_lowercase()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use futures_executor::block_on;
    use std::time::Duration;

    #[test]
    fn values_expire_with_the_clock() {
        let clock = Arc::new(FixedClock::at(1_000_000));
        let store = MemoryStore::new(clock.clone());
        block_on(store.set("k", b"v", Some(Duration::from_secs(30)))).unwrap();
        block_on(store.set("p", b"forever", None)).unwrap();
        assert_eq!(block_on(store.execute(&Command::new("TTL").arg("k"))).unwrap(), Reply::Int(30));
        assert_eq!(block_on(store.execute(&Command::new("TTL").arg("p"))).unwrap(), Reply::Int(-1));
        clock.advance_ms(29_999);
        assert_eq!(block_on(store.get("k")).unwrap(), Some(b"v".to_vec()));
        clock.advance_ms(1);
        assert_eq!(block_on(store.get("k")).unwrap(), None);
        assert_eq!(block_on(store.execute(&Command::new("TTL").arg("k"))).unwrap(), Reply::Int(-2));
    }

    #[test]
    fn one_failing_command_does_not_stop_the_pipeline() {
        let store = MemoryStore::new(Arc::new(FixedClock::at(0)));
        let replies = block_on(store.pipeline(&[
            Command::new("SET").arg("a").arg("1"),
            Command::new("SET").arg("a"),
            Command::new("GET").arg("a"),
        ]))
        .unwrap();
        assert_eq!(replies[0], Ok(Reply::bulk("OK")));
        assert!(replies[1].is_err());
        assert_eq!(replies[2], Ok(Reply::bulk("1")));
    }
}
