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
