//! [`Command`]: one Redis command, built once and read the same way by every store. Its
//! arguments are bytes (binary-safe: a value is whatever bytes it is, never re-encoded);
//! which arguments are keys comes from the command's definition ([`Command::keys`], Redis's
//! own key positions), not from guessing `args[1]`; and what it does to string values is a
//! typed [`Effect`] decided where the command is built, which the tiers mirror into memory
//! without parsing the arguments again.

use std::time::Duration;

/// What a command does to the string values a cache may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Reads only.
    Read,
    /// `SET key value [EX s]` built by [`Command::set`]: the key now holds the value (for
    /// `ttl`, if given).
    Set { ttl: Option<Duration> },
    /// Deletes its keys.
    Delete,
    /// Changes its keys some other way (or conditionally: `SET NX`, `HSET`, scripts).
    Change,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The upper-cased name, then the arguments.
    args: Vec<Vec<u8>>,
    effect: Effect,
}

/// Commands that never change data, which makes them safe to retry.
const READ_ONLY: [&str; 25] = [
    "GET",
    "MGET",
    "STRLEN",
    "EXISTS",
    "TYPE",
    "TTL",
    "PTTL",
    "PEXPIRETIME",
    "HGET",
    "HGETALL",
    "HMGET",
    "HLEN",
    "SMEMBERS",
    "SISMEMBER",
    "SCARD",
    "ZRANGE",
    "ZRANGEBYSCORE",
    "ZREVRANGEBYSCORE",
    "ZCARD",
    "ZSCORE",
    "SCAN",
    "DBSIZE",
    "INFO",
    "PING",
    "CONFIG", // only CONFIG GET is ever sent
];

/// Commands whose every argument is a key.
const ALL_KEYS: [&str; 5] = ["DEL", "UNLINK", "EXISTS", "MGET", "TOUCH"];

/// Commands without keys.
const NO_KEYS: [&str; 6] = ["PING", "SCAN", "INFO", "DBSIZE", "CONFIG", "SCRIPT"];

impl Command {
    /// Starts a command; the name is sent upper-cased. Its effect follows from the name: a
    /// read, a delete, or a change (a `SET` built here may be conditional, so it is a change).
    pub fn new(name: &str) -> Self {
        let name = name.to_ascii_uppercase();
        let effect = match name.as_str() {
            n if READ_ONLY.contains(&n) => Effect::Read,
            "DEL" | "UNLINK" => Effect::Delete,
            _ => Effect::Change,
        };
        // Room for a key and a couple of arguments, the shape of most commands.
        let mut args = Vec::with_capacity(4);
        args.push(name.into_bytes());
        Self { args, effect }
    }

    /// Makes room for `additional` more arguments (a command built in a loop).
    pub fn reserve(&mut self, additional: usize) {
        self.args.reserve(additional);
    }

    /// A text argument (numbers, names, keys).
    pub fn arg(mut self, arg: impl ToString) -> Self {
        self.args.push(arg.to_string().into_bytes());
        self
    }

    /// Appends an argument in place, taking its bytes without a copy: for commands with many
    /// arguments built in a loop.
    pub fn push_arg(&mut self, arg: impl Into<Vec<u8>>) {
        self.args.push(arg.into());
    }

    /// A binary argument, sent as the exact bytes.
    pub fn arg_bytes(mut self, arg: &[u8]) -> Self {
        self.args.push(arg.to_vec());
        self
    }

    /// `SET key value`, with `EX seconds` when a TTL is given (rounded up to whole seconds, at
    /// least 1, so a TTL is never silently dropped). The value is sent as its exact bytes.
    pub fn set(key: &str, value: &[u8], ttl: Option<Duration>) -> Self {
        let seconds = ttl.map(|ttl| (ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0)).max(1));
        let command = Self::new("SET").arg(key).arg_bytes(value);
        let command = match seconds {
            Some(seconds) => command.arg("EX").arg(seconds),
            None => command,
        };
        Self { effect: Effect::Set { ttl: seconds.map(Duration::from_secs) }, ..command }
    }

    /// `UNLINK key…`: deletes without blocking Redis on large values.
    pub fn unlink<S: AsRef<str>>(keys: &[S]) -> Self {
        keys.iter().fold(Self::new("UNLINK"), |c, k| c.arg(k.as_ref()))
    }

    /// `HSET key field value…`.
    pub fn hset<F: AsRef<str>, V: AsRef<str>>(key: &str, fields: &[(F, V)]) -> Self {
        fields.iter().fold(Self::new("HSET").arg(key), |c, (f, v)| c.arg(f.as_ref()).arg(v.as_ref()))
    }

    /// `SADD key member…`.
    pub fn sadd<S: AsRef<str>>(key: &str, members: &[S]) -> Self {
        members.iter().fold(Self::new("SADD").arg(key), |c, m| c.arg(m.as_ref()))
    }

    /// `ZADD key score member`.
    pub fn zadd(key: &str, score: i64, member: &str) -> Self {
        Self::new("ZADD").arg(key).arg(score).arg(member)
    }

    /// Keeps the `keep` highest-scored members of a sorted set (the newest, when scores are
    /// timestamps): `ZREMRANGEBYRANK key 0 -(keep+1)`.
    pub fn ztrim_to_newest(key: &str, keep: usize) -> Self {
        Self::new("ZREMRANGEBYRANK").arg(key).arg(0).arg(-(keep as i64) - 1)
    }

    /// `ZRANGE key min max BYSCORE [REV] LIMIT 0 limit WITHSCORES`; bounds are inclusive
    /// integers or `-inf`/`+inf`.
    pub fn zrange_by_score(key: &str, min: Option<i64>, max: Option<i64>, limit: usize, newest_first: bool) -> Self {
        let bound = |b: Option<i64>, open: &str| b.map_or(open.to_owned(), |v| v.to_string());
        let (min, max) = (bound(min, "-inf"), bound(max, "+inf"));
        let command = Self::new("ZRANGE").arg(key);
        let command = if newest_first { command.arg(max).arg(min) } else { command.arg(min).arg(max) };
        let command = command.arg("BYSCORE");
        let command = if newest_first { command.arg("REV") } else { command };
        command.arg("LIMIT").arg(0).arg(limit).arg("WITHSCORES")
    }

    /// `SCAN cursor MATCH pattern COUNT count`.
    pub fn scan(cursor: u64, pattern: &str, count: usize) -> Self {
        Self::new("SCAN").arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(count)
    }

    /// A command from its parts as sent (name first), e.g. received over the durable tier's
    /// wire; `None` when there is no name or it is not ASCII. Its effect follows from the name.
    pub fn from_parts(parts: Vec<Vec<u8>>) -> Option<Self> {
        let mut parts = parts.into_iter();
        let name = parts.next()?;
        let name = std::str::from_utf8(&name).ok().filter(|n| !n.is_empty() && n.is_ascii())?;
        Some(parts.fold(Self::new(name), |command, arg| command.arg_bytes(&arg)))
    }

    /// The upper-cased command name, e.g. `SET`.
    pub fn name(&self) -> &str {
        std::str::from_utf8(&self.args[0]).expect("names are ASCII")
    }

    /// The arguments after the name, as bytes.
    pub fn args(&self) -> &[Vec<u8>] {
        &self.args[1..]
    }

    /// Name and arguments, as sent.
    pub fn parts(&self) -> &[Vec<u8>] {
        &self.args
    }

    /// An argument as text, if it is UTF-8.
    pub fn text(&self, index: usize) -> Option<&str> {
        self.args().get(index).and_then(|a| std::str::from_utf8(a).ok())
    }

    pub fn effect(&self) -> Effect {
        self.effect
    }

    /// The keys this command names, by Redis's key positions: every argument for `DEL`,
    /// `UNLINK`, `EXISTS`, `MGET`; the declared `numkeys` for `EVAL`/`EVALSHA`; none for
    /// `SCAN`, `INFO`, …; otherwise the first argument.
    pub fn keys(&self) -> Vec<&str> {
        fn text(arg: &[u8]) -> Option<&str> {
            std::str::from_utf8(arg).ok()
        }
        let args = self.args();
        match self.name() {
            name if ALL_KEYS.contains(&name) => args.iter().filter_map(|a| text(a)).collect(),
            name if NO_KEYS.contains(&name) => Vec::new(),
            "EVAL" | "EVALSHA" => {
                let count = self.text(1).and_then(|n| n.parse::<usize>().ok()).unwrap_or(0);
                args.iter().skip(2).take(count).filter_map(|a| text(a)).collect()
            }
            _ => args.first().and_then(|a| text(a)).into_iter().collect(),
        }
    }

    /// True for commands that never change data, which makes them safe to retry.
    pub fn is_read_only(&self) -> bool {
        self.effect == Effect::Read
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(command: &Command) -> Vec<String> {
        command.parts().iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect()
    }

    #[test]
    fn set_rounds_ttl_up_and_never_drops_it() {
        assert_eq!(texts(&Command::set("k", b"v", None)), ["SET", "k", "v"]);
        assert_eq!(texts(&Command::set("k", b"v", Some(Duration::from_secs(30)))), ["SET", "k", "v", "EX", "30"]);
        let rounded = Command::set("k", b"v", Some(Duration::from_millis(1500)));
        assert_eq!(texts(&rounded), ["SET", "k", "v", "EX", "2"]);
        assert_eq!(rounded.effect(), Effect::Set { ttl: Some(Duration::from_secs(2)) });
        assert_eq!(texts(&Command::set("k", b"v", Some(Duration::from_millis(1)))), ["SET", "k", "v", "EX", "1"]);
    }

    #[test]
    fn values_keep_their_bytes_and_keys_are_known() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(Command::set("k", &all, None).args()[1], all);
        assert_eq!(Command::unlink(&["a", "b"]).keys(), ["a", "b"]);
        assert_eq!(Command::new("EVALSHA").arg("sha").arg(2).arg("x").arg("y").arg("arg").keys(), ["x", "y"]);
        assert!(Command::scan(0, "*", 10).keys().is_empty());
        assert_eq!(Command::hset("h", &[("f", "v")]).keys(), ["h"]);
        assert_eq!(Command::new("SET").arg("k").arg("v").arg("NX").effect(), Effect::Change, "conditional");
        assert!(Command::new("get").is_read_only() && !Command::new("HINCRBY").is_read_only());
    }
}
