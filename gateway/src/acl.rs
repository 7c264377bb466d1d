//! Redis ACL users, one per token, so that what a token may not do is refused by Redis
//! itself — also inside `EVAL` and `FCALL`, where Redis checks every `redis.call` against the
//! calling user and the gateway's parser cannot see. The full token's user has every command
//! but the policy's deny-list; the read-only token's user has `+@read` (keys readable only)
//! without `KEYS`, `SCAN`, `INFO`, `CLIENT`, `@admin` and `@dangerous`, plus the read-only
//! script commands. A user's password is its token (sent as its SHA-256, `#…`, when
//! provisioning), so a token opens exactly that user.
//!
//! The gateway provisions the users itself (`--acl-users provision`, with the `--redis-url`
//! user as the admin connection) or uses the operator's (`existing`). Either way, before it
//! serves, it logs in as each user and asks Redis with `ACL DRYRUN` whether every command the
//! token may not run is refused and the ones it needs are allowed; a user that allows a
//! denied command stops the start with a sentence naming it. `off` is the explicit opt-out:
//! every token runs as the `--redis-url` user, and only the parser enforces the policy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{RedisError, Value};
use sha2::{Digest, Sha256};

use crate::policy::Policy;
use crate::redis_link::{Provision, Target};
use crate::tokens::{Access, Tokens};

/// How long the start waits for Redis to answer, to set up and verify the users.
const REDIS_WAIT: Duration = Duration::from_secs(15);

/// How the per-token users come to exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AclMode {
    /// The operator created them (README, "ACL users"); the gateway verifies them.
    Existing,
    /// The gateway creates or resets them with the `--redis-url` user, then verifies them.
    Provision,
    /// No per-token users: the policy is enforced by the gateway's parser only (not inside
    /// scripts). An explicit opt-out.
    Off,
}

/// The user names of the tokens that get one.
#[derive(Debug, Clone)]
pub struct AclUsers {
    pub full: String,
    pub read_only: String,
}

impl Default for AclUsers {
    fn default() -> Self {
        Self { full: "edgesync-full".into(), read_only: "edgesync-read-only".into() }
    }
}

/// Why the per-token users cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AclError {
    #[error("cannot reach Redis to set up and verify the ACL users ({0}); the gateway checks them before it serves")]
    Unreachable(RedisError),
    #[error("cannot {action} with the --redis-url user '{admin}' ({source}); it needs the ACL command, or create the users yourself (README, \"ACL users\")")]
    Admin { action: String, admin: String, source: RedisError },
    #[error("Redis refused the rules for the ACL user '{user}': {source}")]
    Rules { user: String, source: RedisError },
    #[error("cannot log in to Redis as the ACL user '{user}' with {flag} as its password ({source}); create the user (README, \"ACL users\") or pass --acl-users provision")]
    Login { user: String, flag: &'static str, source: RedisError },
    #[error("the Redis ACL user '{user}' for {flag} allows {command}, which that token may not run; fix the user (README, \"ACL users\"), pass --acl-users provision, or --allow '{command}' if it is meant")]
    Allows { user: String, flag: &'static str, command: String },
    #[error("the Redis ACL user '{user}' for {flag} may not run {command}, which that token needs: {reason}")]
    Lacks { user: String, flag: &'static str, command: String, reason: String },
}

/// The flag a token is given by, for messages.
pub fn flag(access: Access) -> &'static str {
    match access {
        Access::Full => "--token",
        Access::ReadOnly => "--read-only-token",
        Access::Admin => "--admin-token",
    }
}

/// The password rule for `token`: its SHA-256, so the token itself is never sent as a rule.
pub fn password_rule(token: &str) -> String {
    format!("#{}", hex::encode(Sha256::digest(token.as_bytes())))
}

/// The rules of `access`'s user after `reset on <password>`.
pub fn rules(access: Access, policy: &Policy) -> Vec<String> {
    match access {
        Access::ReadOnly => [
            "%R~*",
            "resetchannels",
            "+@read",
            "-@write",
            "-@admin",
            "-@dangerous",
            "-keys",
            "-scan",
            "-info",
            "-client",
            "+ping",
            "+echo",
            "+time",
            "+eval_ro",
            "+evalsha_ro",
            "+fcall_ro",
        ]
        .iter()
        .map(|rule| rule.to_string())
        .collect(),
        Access::Full | Access::Admin => ["~*", "&*", "+@all"]
            .iter()
            .map(|rule| rule.to_string())
            .chain(policy.denied().map(|entry| format!("-{}", entry.to_ascii_lowercase().replace(' ', "|"))))
            .collect(),
    }
}

/// The whole `ACL SETUSER` line for `user` (the README prints these for operators).
pub fn setuser_line(user: &str, password: &str, access: Access, policy: &Policy) -> String {
    format!("ACL SETUSER {user} reset on {password} {}", rules(access, policy).join(" "))
}

/// Commands `access` must not be able to run, as words (`CONFIG SET`).
fn must_refuse(access: Access, policy: &Policy) -> Vec<String> {
    let mut commands: Vec<String> = policy.denied().map(str::to_owned).collect();
    if access == Access::ReadOnly {
        let writes = [
            "SET",
            "DEL",
            "EVAL",
            "EVALSHA",
            "FCALL",
            "KEYS",
            "SCAN",
            "INFO",
            "CLIENT LIST",
            "CLIENT UNBLOCK",
            "CLIENT KILL",
            "SCRIPT LOAD",
            "FUNCTION LOAD",
            "PUBLISH",
            "FLUSHALL",
            "CONFIG GET",
        ];
        commands.extend(writes.iter().map(|c| c.to_string()));
    }
    commands.sort();
    commands.dedup();
    commands
}

fn must_allow(access: Access) -> &'static [&'static str] {
    match access {
        // ECHO opens a pipeline's response budget window (crate::reply_limit).
        Access::ReadOnly => &["GET", "EVAL_RO", "ECHO"],
        Access::Full | Access::Admin => &["GET", "SET", "EVAL", "FCALL", "ECHO"],
    }
}

/// Creates or resets `user` with `token` as its password and `access`'s rules.
pub async fn provision(
    admin: &mut MultiplexedConnection,
    admin_name: &str,
    user: &str,
    token: &str,
    access: Access,
    policy: &Policy,
) -> Result<(), AclError> {
    let mut command = redis::cmd("ACL");
    command.arg("SETUSER").arg(user).arg("reset").arg("on").arg(password_rule(token));
    for rule in rules(access, policy) {
        command.arg(rule);
    }
    command.query_async::<()>(admin).await.map_err(|source| match source.code() {
        Some("NOPERM") => {
            AclError::Admin { action: format!("create the ACL user '{user}'"), admin: admin_name.to_owned(), source }
        }
        _ => AclError::Rules { user: user.to_owned(), source },
    })
}

/// What `ACL DRYRUN` said about one command.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Allowed,
    Refused(String),
}

/// Asks `ACL DRYRUN` about `command` (words), padding arguments until its arity is met.
async fn dry_run(
    admin: &mut MultiplexedConnection,
    admin_name: &str,
    user: &str,
    command: &str,
) -> Result<Verdict, AclError> {
    let words: Vec<&str> = command.split(' ').collect();
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    const MAX_PADDING: usize = 7;
    for padding in 0..=MAX_PADDING {
        let mut probe = redis::cmd("ACL");
        probe.arg("DRYRUN").arg(user).arg(&words);
        for _ in 0..padding {
            probe.arg("x");
        }
        pipe.add_command(probe);
    }
    let replies: Vec<redis::RedisResult<Value>> = pipe.query_async(admin).await.map_err(|source| AclError::Admin {
        action: "run ACL DRYRUN".into(),
        admin: admin_name.to_owned(),
        source,
    })?;
    for reply in replies {
        match reply {
            Ok(Value::Okay) => return Ok(Verdict::Allowed),
            Ok(Value::BulkString(text)) => return Ok(Verdict::Refused(String::from_utf8_lossy(&text).into_owned())),
            Ok(Value::SimpleString(text)) if text == "OK" => return Ok(Verdict::Allowed),
            Ok(Value::SimpleString(text)) => return Ok(Verdict::Refused(text)),
            Ok(other) => return Ok(Verdict::Refused(format!("{other:?}"))),
            Err(error) if error.to_string().contains("wrong number of arguments") => continue,
            Err(error) if error.code() == Some("NOPERM") => {
                return Err(AclError::Admin {
                    action: "run ACL DRYRUN".into(),
                    admin: admin_name.to_owned(),
                    source: error,
                })
            }
            // An unknown command (or subcommand) cannot run: refused.
            Err(error) => return Ok(Verdict::Refused(error.to_string())),
        }
    }
    Ok(Verdict::Refused(format!("no arity up to {MAX_PADDING} arguments fits")))
}

/// Logs in as `user` with `token`, then checks its rules with `ACL DRYRUN` on `admin`.
pub async fn verify(
    admin: &mut MultiplexedConnection,
    admin_name: &str,
    base: &Target,
    user: &str,
    token: &str,
    access: Access,
    policy: &Policy,
) -> Result<(), AclError> {
    let flag = flag(access);
    let login = async {
        let mut connection =
            base.as_user(user, token).connect(usize::MAX, Some(std::time::Duration::from_secs(2))).await?;
        redis::cmd("PING").query_async::<()>(&mut connection).await
    };
    login.await.map_err(|source| AclError::Login { user: user.to_owned(), flag, source })?;
    for command in must_refuse(access, policy) {
        if dry_run(admin, admin_name, user, &command).await? == Verdict::Allowed {
            return Err(AclError::Allows { user: user.to_owned(), flag, command });
        }
    }
    for command in must_allow(access) {
        if let Verdict::Refused(reason) = dry_run(admin, admin_name, user, command).await? {
            return Err(AclError::Lacks { user: user.to_owned(), flag, command: command.to_string(), reason });
        }
    }
    Ok(())
}

/// Creates `user` again when Redis lost it (a restart without ACL persistence), so a
/// provisioning gateway heals with Redis.
pub struct Provisioner {
    admin: Target,
    user: String,
    token: String,
    access: Access,
    policy: Policy,
}

impl Provisioner {
    /// Creates the user again on `node` (the `--redis-url` node, or another of its cluster).
    pub async fn provision(&self, node: &Target) -> Result<(), AclError> {
        let admin = self.admin.at(&node.address()).unwrap_or_else(|_| self.admin.clone());
        let mut admin = admin.connect(usize::MAX, Some(Duration::from_secs(5))).await.map_err(AclError::Unreachable)?;
        provision(&mut admin, self.admin.user(), &self.user, &self.token, self.access, &self.policy).await
    }
}

/// Where one token's requests run.
pub struct TokenTarget {
    pub target: Target,
    /// Set when the gateway provisions the user: it may do so again.
    pub provisioner: Option<Arc<dyn Provision>>,
}

/// The targets of the full and the read-only token (the admin token uses `base`).
pub struct Prepared {
    pub full: TokenTarget,
    pub read_only: TokenTarget,
}

impl Provision for Provisioner {
    fn provision_again<'a>(&'a self, node: &'a Target) -> futures_util::future::BoxFuture<'a, Result<(), String>> {
        Box::pin(async move { self.provision(node).await.map_err(|error| error.to_string()) })
    }
}

/// Sets up (per `mode`) and verifies the users of the tokens that are set, on `base` and on
/// every other node in `others` (a cluster's: ACL users are each node's own, and a replica
/// may become a master).
pub async fn prepare(
    mode: AclMode,
    base: &Target,
    others: &[Target],
    users: &AclUsers,
    tokens: &Tokens,
    policy: &Policy,
) -> Result<Prepared, AclError> {
    let unchanged = || TokenTarget { target: base.clone(), provisioner: None };
    let mut prepared = Prepared { full: unchanged(), read_only: unchanged() };
    if mode == AclMode::Off {
        return Ok(prepared);
    }
    let roles = [(Access::Full, &tokens.full, &users.full), (Access::ReadOnly, &tokens.read_only, &users.read_only)];
    if roles.iter().all(|(_, token, _)| token.is_none()) {
        return Ok(prepared);
    }
    let admin_name = base.user().to_owned();
    for node in std::iter::once(base).chain(others) {
        let mut admin = connect_waiting(node).await?;
        for (access, token, user) in roles {
            let Some(token) = token else { continue };
            if mode == AclMode::Provision {
                provision(&mut admin, &admin_name, user, token, access, policy).await?;
            }
            verify(&mut admin, &admin_name, node, user, token, access, policy).await?;
        }
    }
    for (access, token, user) in roles {
        let Some(token) = token else { continue };
        let provisioner = Arc::new(Provisioner {
            admin: base.clone(),
            user: user.clone(),
            token: token.clone(),
            access,
            policy: policy.clone(),
        });
        let target = TokenTarget {
            target: base.as_user(user, token),
            provisioner: (mode == AclMode::Provision).then_some(provisioner as Arc<dyn Provision>),
        };
        match access {
            Access::ReadOnly => prepared.read_only = target,
            _ => prepared.full = target,
        }
    }
    Ok(prepared)
}

/// The admin connection, once Redis answers (it may start after the gateway).
async fn connect_waiting(base: &Target) -> Result<MultiplexedConnection, AclError> {
    let started = Instant::now();
    loop {
        match base.connect(usize::MAX, Some(Duration::from_secs(5))).await {
            Ok(connection) => return Ok(connection),
            // A certificate the gateway does not trust stays untrusted: say so at once.
            Err(error) if is_untrusted_certificate(&error) => return Err(AclError::Unreachable(error)),
            Err(error) if started.elapsed() < REDIS_WAIT && (error.is_io_error() || error.is_connection_refusal()) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => return Err(AclError::Unreachable(error)),
        }
    }
}

/// rustls refused Redis's certificate (`invalid peer certificate: …`); the driver keeps the
/// TLS error inside an I/O error, so its text is what says it.
fn is_untrusted_certificate(error: &RedisError) -> bool {
    error.to_string().contains("invalid peer certificate")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_full_user_loses_the_deny_list_and_the_read_only_user_reads() {
        let policy = Policy::new(&["KEYS".into()], &["MOVE".into()], Duration::from_secs(1));
        let full = rules(Access::Full, &policy);
        for rule in ["+@all", "-flushall", "-config|set", "-migrate", "-swapdb", "-function|load", "-keys"] {
            assert!(full.contains(&rule.to_string()), "{rule}: {full:?}");
        }
        assert!(!full.contains(&"-move".to_string()), "--allow lifts it");
        let read = rules(Access::ReadOnly, &policy);
        assert_eq!(read[0], "%R~*", "keys are readable only");
        assert!(read.iter().position(|r| r == "-keys") > read.iter().position(|r| r == "+@read"));
        assert!(must_refuse(Access::ReadOnly, &policy).contains(&"CLIENT UNBLOCK".to_string()));
    }

    #[test]
    fn passwords_are_sent_hashed() {
        let rule = password_rule("token");
        assert_eq!(rule.len(), 65);
        assert!(rule.starts_with('#') && !rule.contains("token"));
    }
}
