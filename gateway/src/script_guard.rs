//! The script bound: a Lua script or function (`EVAL*`, `EVALSHA*`, `FCALL*`) runs inside
//! Redis's single thread, so one that loops freezes Redis for every client, whatever
//! connection it came on. A request with a script that has not answered at `--max-script-ms`
//! makes the gateway send `SCRIPT KILL` (and `FUNCTION KILL` for a function) from a
//! connection of its own — never the request's, whose replies queue behind the script — and
//! the request gets a JSON error.
//!
//! Redis cannot end a script that already wrote (`UNKILLABLE`): only its end or
//! `SHUTDOWN NOSAVE` frees Redis. The gateway then says so to the request, counts it, and
//! `/__gateway/health` and `/__gateway/stats` report Redis busy until it answers again. Only
//! the full and admin tokens can get there (a read-only script cannot write), which is why
//! the full token is an operator credential.
//!
//! Redis only reads other clients once a script has run `busy-reply-threshold` (5 s by
//! default), so a bound below it takes effect at the threshold; the gateway says so at start.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use redis::RedisError;

use crate::redis_link::{Link, Target};

/// Where scripts may run besides the control link's Redis: a cluster's masters.
pub trait Masters: Send + Sync {
    fn master_targets(&self) -> Vec<Target>;
}

/// How long the kill itself may take (it waits for Redis to reach its busy state).
const KILL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the ended script's own reply is waited for after a kill.
const AFTER_KILL: Duration = Duration::from_secs(2);

/// True for the commands that run a script or function.
pub fn runs_script(args: &[Vec<u8>]) -> bool {
    let name = args.first().map(|a| String::from_utf8_lossy(a).to_ascii_uppercase()).unwrap_or_default();
    matches!(name.as_str(), "EVAL" | "EVAL_RO" | "EVALSHA" | "EVALSHA_RO" | "FCALL" | "FCALL_RO")
}

/// A script that outran the bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Overrun {
    #[error("ERR the script ran longer than the gateway's bound of {0:?} (--max-script-ms) and was ended with SCRIPT KILL / FUNCTION KILL; it had written nothing")]
    Ended(Duration),
    #[error("ERR the script ran longer than the gateway's bound of {0:?} (--max-script-ms) after it wrote, so Redis cannot end it (UNKILLABLE): Redis answers every client BUSY until the script ends or an operator runs SHUTDOWN NOSAVE")]
    Unkillable(Duration),
}

/// What the kill commands found.
#[derive(Debug, PartialEq, Eq)]
enum Kill {
    Ended,
    Unkillable,
    /// No script was running: the request is slow for another reason.
    NothingRunning,
    Failed(String),
}

/// Watches requests that run scripts, and ends the ones that outrun the bound.
pub struct ScriptGuard {
    bound: Duration,
    control: Link,
    /// On a cluster, a script runs on its keys' master: the kill goes to every master.
    masters: Option<std::sync::Arc<dyn Masters>>,
    unkillable: AtomicBool,
    ended: AtomicU64,
    unkillable_total: AtomicU64,
}

/// What the guard has seen, for the stats.
#[derive(Debug, Clone, Copy)]
pub struct GuardCounts {
    pub ended: u64,
    pub unkillable: u64,
    pub unkillable_now: bool,
}

impl ScriptGuard {
    /// `control`: a connection no request uses, authenticated as a user that may run
    /// `SCRIPT KILL` and `FUNCTION KILL`.
    pub fn new(bound: Duration, control: Link) -> Self {
        Self {
            bound,
            control,
            masters: None,
            unkillable: AtomicBool::new(false),
            ended: AtomicU64::new(0),
            unkillable_total: AtomicU64::new(0),
        }
    }

    /// Kills scripts on every master of `cluster` too (the control link is one node).
    pub fn on_masters_of(mut self, cluster: Option<std::sync::Arc<dyn Masters>>) -> Self {
        self.masters = cluster;
        self
    }

    pub fn bound(&self) -> Duration {
        self.bound
    }

    pub fn counts(&self) -> GuardCounts {
        GuardCounts {
            ended: self.ended.load(Ordering::SeqCst),
            unkillable: self.unkillable_total.load(Ordering::SeqCst),
            unkillable_now: self.unkillable.load(Ordering::SeqCst),
        }
    }

    /// Runs `request`; past the bound, ends the script it runs.
    pub async fn watch<T>(&self, request: impl Future<Output = T>) -> Result<T, Overrun> {
        tokio::pin!(request);
        tokio::select! {
            outcome = &mut request => return Ok(outcome),
            _ = tokio::time::sleep(self.bound) => {}
        }
        match self.kill().await {
            Kill::Ended => {
                self.ended.fetch_add(1, Ordering::SeqCst);
                // The script's own reply (an error) follows the kill; the answer is ours.
                let _ = tokio::time::timeout(AFTER_KILL, request).await;
                Err(Overrun::Ended(self.bound))
            }
            Kill::Unkillable => {
                self.unkillable.store(true, Ordering::SeqCst);
                self.unkillable_total.fetch_add(1, Ordering::SeqCst);
                Err(Overrun::Unkillable(self.bound))
            }
            Kill::NothingRunning | Kill::Failed(_) => Ok(request.await),
        }
    }

    async fn kill(&self) -> Kill {
        let Some(masters) = &self.masters else { return self.kill_on(&self.control).await };
        // The script runs on one master, unknown here: the first that ends one answers.
        let mut outcome = Kill::NothingRunning;
        for target in masters.master_targets() {
            let link = Link::new(target, 64 * 1024, None);
            match self.kill_on(&link).await {
                Kill::NothingRunning => {}
                Kill::Failed(reason) => outcome = Kill::Failed(reason),
                found => return found,
            }
        }
        outcome
    }

    async fn kill_on(&self, control: &Link) -> Kill {
        let mut outcome = Kill::NothingRunning;
        for command in [["SCRIPT", "KILL"], ["FUNCTION", "KILL"]] {
            let attempt = async {
                let leased = control.lease().await?;
                let mut connection = leased.connection.clone();
                let reply = redis::cmd(command[0]).arg(command[1]).query_async::<()>(&mut connection).await;
                control.returned(&leased, reply.as_ref().err());
                reply
            };
            let reply: Result<(), RedisError> = match tokio::time::timeout(KILL_TIMEOUT, attempt).await {
                Ok(reply) => reply,
                Err(_) => return Kill::Failed(format!("{} {} did not answer", command[0], command[1])),
            };
            outcome = match reply {
                Ok(()) => return Kill::Ended,
                Err(error) => match error.code() {
                    Some("UNKILLABLE") => return Kill::Unkillable,
                    Some("NOTBUSY") => Kill::NothingRunning,
                    // SCRIPT KILL on a running function answers BUSY: FUNCTION KILL next.
                    Some("BUSY") => Kill::NothingRunning,
                    _ => Kill::Failed(error.to_string()),
                },
            };
        }
        outcome
    }

    /// A sentence for the operator when Redis's `busy-reply-threshold` is above the bound
    /// (scripts then end at the threshold), or `None` (also when Redis does not say).
    pub async fn threshold_note(&self) -> Option<String> {
        let leased = self.control.lease().await.ok()?;
        let mut connection = leased.connection.clone();
        let reply: Vec<String> =
            redis::cmd("CONFIG").arg("GET").arg("busy-reply-threshold").query_async(&mut connection).await.ok()?;
        let threshold = Duration::from_millis(reply.get(1)?.parse().ok()?);
        (threshold > self.bound).then(|| {
            format!(
                "Redis's busy-reply-threshold ({threshold:?}) is above --max-script-ms ({:?}): Redis reads no other client before it, so scripts end at the threshold; lower it with CONFIG SET busy-reply-threshold",
                self.bound
            )
        })
    }

    /// Whether Redis answers now: `Ok(())`, or what it says instead. Clears the
    /// unkillable-script flag once Redis answers.
    pub async fn probe(&self) -> Result<(), String> {
        let attempt = async {
            let leased = self.control.lease().await?;
            let mut connection = leased.connection.clone();
            let reply = redis::cmd("PING").query_async::<()>(&mut connection).await;
            self.control.returned(&leased, reply.as_ref().err());
            reply
        };
        match tokio::time::timeout(Duration::from_secs(2), attempt).await {
            Ok(Ok(())) => {
                self.unkillable.store(false, Ordering::SeqCst);
                Ok(())
            }
            Ok(Err(error)) if error.code() == Some("BUSY") => Err("busy".into()),
            Ok(Err(error)) => Err(format!("unavailable: {error}")),
            Err(_) => Err("unavailable: no answer within 2 s".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_commands_are_recognised_in_any_case() {
        for name in ["eval", "EVAL_RO", "evalsha", "EvalSha_RO", "fcall", "FCALL_RO"] {
            assert!(runs_script(&[name.as_bytes().to_vec()]), "{name}");
        }
        assert!(!runs_script(&[b"SCRIPT".to_vec(), b"LOAD".to_vec()]));
        assert!(!runs_script(&[]));
    }
}
