//! [`Command`]: one Redis command as its argument vector. Arguments are text because the
//! Upstash REST protocol carries them in a JSON array; every value edgesync stores is UTF-8
//! JSON, so nothing is lost.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    args: Vec<String>,
}

impl Command {
    /// Starts a command; the name is sent upper-cased.
    pub fn new(name: &str) -> Self {
        Self { args: vec![name.to_ascii_uppercase()] }
    }

    pub fn arg(mut self, arg: impl ToString) -> Self {
        self.args.push(arg.to_string());
        self
    }

    /// `SET key value`, with `EX seconds` when a TTL is given (rounded up to whole seconds, at
    /// least 1, so a TTL is never silently dropped).
    pub fn set(key: &str, value: &[u8], ttl: Option<Duration>) -> Self {
        let command = Self::new("SET").arg(key).arg(String::from_utf8_lossy(value));
        match ttl {
            Some(ttl) => command.arg("EX").arg((ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0)).max(1)),
            None => command,
        }
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

    /// The upper-cased command name, e.g. `SET`.
    pub fn name(&self) -> &str {
        &self.args[0]
    }

    /// Name and arguments, in order.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// True for commands that never change data, which makes them safe to retry.
    pub fn is_read_only(&self) -> bool {
        matches!(
            self.name(),
            "GET"
                | "MGET"
                | "STRLEN"
                | "EXISTS"
                | "TYPE"
                | "TTL"
                | "PTTL"
                | "HGET"
                | "HGETALL"
                | "HMGET"
                | "HLEN"
                | "SMEMBERS"
                | "SISMEMBER"
                | "SCARD"
                | "ZRANGE"
                | "ZRANGEBYSCORE"
                | "ZREVRANGEBYSCORE"
                | "ZCARD"
                | "ZSCORE"
                | "SCAN"
                | "DBSIZE"
                | "INFO"
                | "PING"
                | "CONFIG" // only CONFIG GET is ever sent
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_rounds_ttl_up_and_never_drops_it() {
        let args = |c: Command| c.args().to_vec();
        assert_eq!(args(Command::set("k", b"v", None)), ["SET", "k", "v"]);
        assert_eq!(args(Command::set("k", b"v", Some(Duration::from_secs(30)))), ["SET", "k", "v", "EX", "30"]);
        assert_eq!(args(Command::set("k", b"v", Some(Duration::from_millis(1500)))), ["SET", "k", "v", "EX", "2"]);
        assert_eq!(args(Command::set("k", b"v", Some(Duration::from_millis(1)))), ["SET", "k", "v", "EX", "1"]);
    }
}
