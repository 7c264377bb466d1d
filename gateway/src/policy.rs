//! Which commands a request may run, and how: the command policy.
//!
//! - **Connection state is not shared.** Every request rides one multiplexed connection, so a
//!   command that changes that connection (subscribe mode, `SELECT`, `MULTI`, `CLIENT REPLY
//!   OFF`, `HELLO`, `AUTH`, …) would change what every other client sees. Those are refused
//!   with Upstash's error shape; transactions go through `/multi-exec`, which runs them
//!   atomically in one request. As on Upstash, the connection group is `PING` and `ECHO`.
//! - **Blocking commands do not hold up others.** `BLPOP` and kin run on a dedicated
//!   connection of their own, dropped afterwards, and their wait is bounded by
//!   `--max-block` (a `0`, "forever", means that bound).
//! - **Administrative commands are denied** by default (`FLUSHALL`, `CONFIG SET`, `SHUTDOWN`,
//!   …, see [`DENIED`]); an admin token lifts that, and `--deny`/`--allow` adjust the list.
//! - **A read-only token runs read commands only** (and, as on Upstash, not `SCAN`/`KEYS`;
//!   nor `CLIENT`, which shows and changes other clients).
//!
//! Redis enforces the same rules again, inside scripts too, through a per-token ACL user
//! ([`crate::acl`]); this parser answers first and with Upstash's error shapes.

use std::collections::BTreeSet;
use std::time::Duration;

pub use crate::tokens::Access;

/// Where an admitted command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// The shared multiplexed connection.
    Shared,
    /// A connection of its own, for at most this long.
    Dedicated(Duration),
}

/// Why a command was refused; the text is what the client sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("ERR '{0}' changes the connection's state and is not available over REST ({hint})", hint = connection_state_hint(.0))]
    ConnectionState(String),
    #[error("NOPERM '{0}' is denied by the gateway's command policy")]
    Denied(String),
    #[error("NOPERM this token is read-only: '{0}' is not a read command")]
    ReadOnly(String),
    #[error("ERR '{0}' is not available inside /multi-exec (it blocks or changes the connection)")]
    NotInTransaction(String),
}

/// What to do instead of a connection-state command, for its refusal.
fn connection_state_hint(name: &str) -> &'static str {
    match name {
        "MULTI" | "EXEC" | "DISCARD" | "WATCH" | "UNWATCH" => {
            "send the commands to /multi-exec, which runs them atomically"
        }
        "SUBSCRIBE" | "PSUBSCRIBE" | "SSUBSCRIBE" | "UNSUBSCRIBE" | "PUNSUBSCRIBE" | "SUNSUBSCRIBE" | "MONITOR" => {
            "it streams replies on a connection of its own, which this gateway does not serve"
        }
        "SELECT" | "SWAPDB" => "the database is the one --redis-url names",
        _ => "each request runs on a connection shared with others",
    }
}

impl Refusal {
    /// 403 for permissions, 400 for commands REST cannot carry (as Upstash answers).
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Denied(_) | Refusal::ReadOnly(_) => 403,
            _ => 400,
        }
    }
}

/// Commands that change the connection they run on (or read its replies out of band).
const CONNECTION_STATE: [&str; 23] = [
    "SUBSCRIBE",
    "PSUBSCRIBE",
    "SSUBSCRIBE",
    "UNSUBSCRIBE",
    "PUNSUBSCRIBE",
    "SUNSUBSCRIBE",
    "MONITOR",
    "SELECT",
    "MULTI",
    "EXEC",
    "DISCARD",
    "WATCH",
    "UNWATCH",
    "RESET",
    "QUIT",
    "HELLO",
    "AUTH",
    "READONLY",
    "READWRITE",
    "ASKING",
    "SYNC",
    "PSYNC",
    "REPLCONF",
];

/// `CLIENT` subcommands that change the connection or others'; `CLIENT ID|INFO|LIST|GETNAME`
/// only read.
const CLIENT_CHANGES: [&str; 11] = [
    "REPLY", "KILL", "PAUSE", "UNPAUSE", "NO-EVICT", "NO-TOUCH", "TRACKING", "CACHING", "SETNAME", "SETINFO", "UNBLOCK",
];

const BLOCKING: [&str; 10] =
    ["BLPOP", "BRPOP", "BRPOPLPUSH", "BLMOVE", "BLMPOP", "BZPOPMIN", "BZPOPMAX", "BZMPOP", "WAIT", "WAITAOF"];

/// Denied by default: `NAME` for the whole command, `NAME SUB` for one subcommand.
pub const DENIED: [&str; 29] = [
    "FLUSHALL",
    "FLUSHDB",
    "CONFIG SET",
    "CONFIG REWRITE",
    "CONFIG RESETSTAT",
    "SCRIPT FLUSH",
    "SCRIPT KILL",
    "FUNCTION LOAD",
    "FUNCTION FLUSH",
    "FUNCTION KILL",
    "FUNCTION DELETE",
    "FUNCTION RESTORE",
    "DEBUG",
    "SHUTDOWN",
    "REPLICAOF",
    "SLAVEOF",
    "SAVE",
    "BGSAVE",
    "BGREWRITEAOF",
    "MIGRATE",
    "MODULE",
    "ACL",
    "FAILOVER",
    "SWAPDB",
    "CLUSTER",
    "LATENCY RESET",
    "SLOWLOG RESET",
    "MEMORY PURGE",
    "MOVE",
];

/// What a read-only token may run.
const READS: [&str; 70] = [
    "GET",
    "MGET",
    "GETRANGE",
    "SUBSTR",
    "STRLEN",
    "LCS",
    "EXISTS",
    "TYPE",
    "TTL",
    "PTTL",
    "EXPIRETIME",
    "PEXPIRETIME",
    "DUMP",
    "OBJECT",
    "RANDOMKEY",
    "TOUCH",
    "HGET",
    "HGETALL",
    "HMGET",
    "HLEN",
    "HKEYS",
    "HVALS",
    "HEXISTS",
    "HSTRLEN",
    "HRANDFIELD",
    "SMEMBERS",
    "SISMEMBER",
    "SMISMEMBER",
    "SCARD",
    "SRANDMEMBER",
    "SINTER",
    "SUNION",
    "SDIFF",
    "SINTERCARD",
    "ZRANGE",
    "ZRANGEBYSCORE",
    "ZREVRANGE",
    "ZREVRANGEBYSCORE",
    "ZRANGEBYLEX",
    "ZREVRANGEBYLEX",
    "ZCARD",
    "ZSCORE",
    "ZMSCORE",
    "ZRANK",
    "ZREVRANK",
    "ZCOUNT",
    "ZLEXCOUNT",
    "ZRANDMEMBER",
    "LRANGE",
    "LLEN",
    "LINDEX",
    "LPOS",
    "XRANGE",
    "XREVRANGE",
    "XLEN",
    "GETBIT",
    "BITCOUNT",
    "BITPOS",
    "GEOPOS",
    "GEODIST",
    "GEOHASH",
    "GEOSEARCH",
    "PFCOUNT",
    "DBSIZE",
    "PING",
    "ECHO",
    "TIME",
    "EVAL_RO",
    "EVALSHA_RO",
    "FCALL_RO",
];

/// The policy a gateway runs with.
#[derive(Debug, Clone)]
pub struct Policy {
    denied: BTreeSet<String>,
    max_block: Duration,
}

fn upper(arg: &[u8]) -> String {
    String::from_utf8_lossy(arg).to_ascii_uppercase()
}

impl Policy {
    /// The default deny-list, plus `deny`, minus `allow` (each `NAME` or `NAME SUB`).
    pub fn new(deny: &[String], allow: &[String], max_block: Duration) -> Self {
        let mut denied: BTreeSet<String> = DENIED.iter().map(|s| s.to_string()).collect();
        denied.extend(deny.iter().map(|s| s.trim().to_ascii_uppercase()));
        for lifted in allow {
            denied.remove(&lifted.trim().to_ascii_uppercase());
        }
        Self { denied, max_block }
    }

    /// The deny-list, each entry `NAME` or `NAME SUB`, upper-case.
    pub fn denied(&self) -> impl Iterator<Item = &str> {
        self.denied.iter().map(String::as_str)
    }

    pub fn max_block(&self) -> Duration {
        self.max_block
    }

    /// Decides one command (`args[0]` is its name). `in_transaction`: part of `/multi-exec`.
    pub fn admit(&self, args: &[Vec<u8>], access: Access, in_transaction: bool) -> Result<Lane, Refusal> {
        let name = upper(args.first().map(Vec::as_slice).unwrap_or_default());
        let sub = args.get(1).map(|a| upper(a)).unwrap_or_default();
        if CONNECTION_STATE.contains(&name.as_str()) || (name == "CLIENT" && CLIENT_CHANGES.contains(&sub.as_str())) {
            return Err(Refusal::ConnectionState(name));
        }
        if access == Access::ReadOnly && !READS.contains(&name.as_str()) {
            return Err(Refusal::ReadOnly(name));
        }
        if access != Access::Admin && (self.denied.contains(&name) || self.denied.contains(&format!("{name} {sub}"))) {
            return Err(Refusal::Denied(if self.denied.contains(&name) { name } else { format!("{name} {sub}") }));
        }
        let blocking = BLOCKING.contains(&name.as_str())
            || (matches!(name.as_str(), "XREAD" | "XREADGROUP") && args.iter().any(|a| upper(a) == "BLOCK"));
        match (blocking, in_transaction) {
            (true, true) => Err(Refusal::NotInTransaction(name)),
            // Redis's own timeout argument may say 0 (forever): the connection is dropped at
            // the bound whatever it says.
            (true, false) => Ok(Lane::Dedicated(self.max_block)),
            (false, _) => Ok(Lane::Shared),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<Vec<u8>> {
        text.split(' ').map(|s| s.as_bytes().to_vec()).collect()
    }

    fn policy() -> Policy {
        Policy::new(&[], &[], Duration::from_secs(5))
    }

    #[test]
    fn connection_state_commands_are_refused_for_every_token() {
        for command in ["SUBSCRIBE c", "select 1", "MULTI", "CLIENT REPLY OFF", "client kill 1", "HELLO 3", "QUIT"] {
            for access in [Access::Full, Access::Admin, Access::ReadOnly] {
                assert!(
                    matches!(policy().admit(&args(command), access, false), Err(Refusal::ConnectionState(_))),
                    "{command}"
                );
            }
        }
        assert_eq!(policy().admit(&args("CLIENT ID"), Access::Full, false), Ok(Lane::Shared));
        let said = |command: &str| policy().admit(&args(command), Access::Full, false).unwrap_err().to_string();
        assert!(said("subscribe news").contains("does not serve"), "{}", said("subscribe news"));
        assert!(!said("SUBSCRIBE news").contains("multi-exec"));
        assert!(said("MULTI").contains("/multi-exec"), "{}", said("MULTI"));
    }

    #[test]
    fn admin_commands_are_denied_unless_lifted() {
        let denied = policy().admit(&args("CONFIG SET maxmemory 1"), Access::Full, false);
        assert_eq!(denied, Err(Refusal::Denied("CONFIG SET".into())));
        assert_eq!(denied.unwrap_err().status(), 403);
        assert_eq!(policy().admit(&args("CONFIG GET maxmemory-policy"), Access::Full, false), Ok(Lane::Shared));
        assert!(policy().admit(&args("FLUSHALL"), Access::Full, false).is_err());
        assert_eq!(policy().admit(&args("FLUSHALL"), Access::Admin, false), Ok(Lane::Shared));
        let lifted = Policy::new(&["KEYS".into()], &["flushdb".into()], Duration::from_secs(1));
        assert_eq!(lifted.admit(&args("FLUSHDB"), Access::Full, false), Ok(Lane::Shared));
        assert!(lifted.admit(&args("KEYS *"), Access::Full, false).is_err());
    }

    #[test]
    fn read_only_tokens_read_and_blocking_commands_get_their_own_bounded_connection() {
        assert_eq!(policy().admit(&args("GET k"), Access::ReadOnly, false), Ok(Lane::Shared));
        assert_eq!(policy().admit(&args("SET k v"), Access::ReadOnly, false), Err(Refusal::ReadOnly("SET".into())));
        assert!(policy().admit(&args("SCAN 0"), Access::ReadOnly, false).is_err(), "as on Upstash");
        for command in ["CLIENT LIST", "CLIENT INFO", "KEYS *", "INFO"] {
            assert!(policy().admit(&args(command), Access::ReadOnly, false).is_err(), "{command}");
        }
        assert!(matches!(
            policy().admit(&args("CLIENT UNBLOCK 7"), Access::Full, false),
            Err(Refusal::ConnectionState(_))
        ));
        assert_eq!(
            policy().admit(&args("BLPOP q 0"), Access::Full, false),
            Ok(Lane::Dedicated(Duration::from_secs(5)))
        );
        assert_eq!(
            policy().admit(&args("XREAD BLOCK 0 STREAMS s $"), Access::Full, false),
            Ok(Lane::Dedicated(Duration::from_secs(5)))
        );
        assert!(matches!(policy().admit(&args("BLPOP q 0"), Access::Full, true), Err(Refusal::NotInTransaction(_))));
    }
}
