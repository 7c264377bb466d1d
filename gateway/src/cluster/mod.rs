//! The gateway in front of a Redis Cluster: found from `--redis-url` (any node), every
//! command routed to the master serving its keys' slot ([`plan`]), each node reached through
//! the gateway's own [`Link`](crate::redis_link::Link)s ([`node_links`]) — so every reply on every node passes through the reply limit
//! — as the token's ACL user, with the URL's password and TLS.
//!
//! - A pipeline is split by master, each share sent at once as one pipeline (with its own
//!   response budget window), and the answers put back in request order; a node that fails
//!   answers its own commands with errors and the others answer normally. When no node
//!   answers at all, the request fails whole (503), as with one Redis that does not answer.
//! - `MOVED` (a failover, resharding) notes the slot's new master, refreshes the topology in
//!   the background and resends; `ASK` resends to the importing node after `ASKING`;
//!   `TRYAGAIN`, `CLUSTERDOWN` and a node that cannot be reached re-read the topology and
//!   retry for [`SETTLE`] — unless no node answers at all (the cluster is down, not failing
//!   over: the answer is the error at once, as on one Redis). A command already sent on a
//!   connection that then broke is not resent (it may have run): its answer is the error; one
//!   written to a connection the node had closed (it restarted) is, on a new connection.
//!   What the replies ask for is done in rounds, each grouped by node and sent at once.
//! - A transaction (`/multi-exec`) runs on the master of its keys' one slot; keys in several
//!   slots are refused before anything is sent, so the shared connection never stays in
//!   `MULTI`.
//! - `EVALSHA` answered `NOSCRIPT` on a master that lacks the script (a replica promoted since
//!   `SCRIPT LOAD`, which the gateway sends to every master) loads the script there and runs
//!   again, when the gateway saw the script's text.
//!
//! [`discovery`] reads the topology from a node; [`redirection`] says what a node's error asks
//! for.
//!
//! The gateway routes by hand rather than through the `redis` crate's `cluster-async`
//! client: that client opens its own connections (the reply limit could not sit under
//! them), refuses a pipeline whose keys span slots, and has no composite `SCAN` cursor.

mod discovery;
mod node_links;
pub mod plan;
mod redirection;
pub mod scan_cursor;

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use edgesync_core::cluster::topology::{Topology, TopologyError};
use lru::LruCache;
use redis::{RedisError, RedisResult, Value};

pub use discovery::other_nodes;
use discovery::read_topology;
use node_links::NodeLinks;
pub use node_links::TokenUser;
pub use redirection::server_error;
use redirection::{is_not_sent, not_sent, redirection, without_redirection};

use crate::command::command;
use crate::keys::{KeyTable, KeyTableError};
use crate::policy::Lane;
use crate::redis_link::{is_broken_pipe, Target, TargetError};
use crate::reply_limit::window_marker;
use crate::shebang::sha1_hex;
use crate::tokens::Access;
pub use plan::PlanError;
use plan::{merge, plan, Part, Plan};

/// How long a command keeps being redirected or retried (`TRYAGAIN`, `CLUSTERDOWN`, a master
/// that cannot be reached during a failover) before its error is the answer.
pub const SETTLE: Duration = Duration::from_secs(10);
/// Rounds of redirections a request follows at most (a loop between two nodes ends here).
const MAX_REDIRECTS: usize = 16;
/// Script texts remembered to load on a master that answers `NOSCRIPT`.
const SCRIPTS_REMEMBERED: usize = 4096;

/// Why the gateway cannot serve a cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Topology(#[from] TopologyError),
    #[error("cannot read the cluster's topology from {node} (CLUSTER SLOTS): {source}")]
    Unreachable { node: String, source: RedisError },
    #[error("cannot read the commands' key positions (COMMAND) from {node}: {source}")]
    Commands { node: String, source: RedisError },
    #[error(transparent)]
    KeyTable(#[from] KeyTableError),
    #[error(transparent)]
    Node(#[from] TargetError),
}

/// A Redis Cluster behind the gateway.
pub struct Cluster {
    /// The `--redis-url` node and user: reads the topology.
    admin: Target,
    topology: RwLock<Arc<Topology>>,
    /// One refresh at a time; when the last one finished, and whether any node answered it.
    refreshed: tokio::sync::Mutex<(Instant, bool)>,
    keys: KeyTable,
    full: NodeLinks,
    read_only: NodeLinks,
    administrator: NodeLinks,
    /// Script texts by the SHA-1 Redis knows them by, to load where one is missing.
    scripts: Mutex<LruCache<String, Vec<u8>>>,
    /// Redirections followed, for `/__gateway/stats`.
    moved: AtomicU64,
    asked: AtomicU64,
}

/// What the cluster routing has seen, for the stats.
#[derive(Debug, Clone, Copy)]
pub struct RoutingCounts {
    pub masters: usize,
    pub moved: u64,
    pub asked: u64,
}

impl crate::script_guard::Masters for Cluster {
    /// The masters as the `--redis-url` user (who may run `SCRIPT KILL`).
    fn master_targets(&self) -> Vec<Target> {
        self.topology().masters.iter().filter_map(|m| self.admin.at(&m.address).ok()).collect()
    }
}

/// A part still waiting for its answer, and where it goes next.
struct Pending {
    /// (command, part) in the request's plans.
    at: (usize, usize),
    address: String,
    /// Sent after `ASKING` (an `ASK` redirection).
    asking: bool,
    /// Its script was loaded on `address` already (after a `NOSCRIPT`).
    loaded: bool,
}

/// What to do after a reply.
enum Next {
    Done,
    Moved { slot: u16, address: String },
    Ask(String),
    Wait,
    Load(Vec<u8>),
}

impl Cluster {
    /// The cluster `admin` (the `--redis-url` node) belongs to, with each token's user.
    pub async fn discover(
        admin: Target,
        users: [TokenUser; 2],
        reply_limit: usize,
        response_timeout: Option<Duration>,
    ) -> Result<Self, ClusterError> {
        let topology = read_topology(&admin).await?;
        let commands = async {
            let mut connection = admin.connect(usize::MAX, Some(Duration::from_secs(5))).await?;
            redis::cmd("COMMAND").query_async::<Value>(&mut connection).await
        };
        let commands = commands.await.map_err(|source| ClusterError::Commands { node: admin.address(), source })?;
        let keys = KeyTable::from_command_reply(&commands)?;
        let [full, read_only] = users;
        let links = |user: TokenUser| NodeLinks {
            user: user.target,
            provisioner: user.provisioner,
            reply_limit,
            response_timeout,
            by_address: RwLock::new(HashMap::new()),
        };
        Ok(Self {
            administrator: links(TokenUser { target: admin.clone(), provisioner: None }),
            full: links(full),
            read_only: links(read_only),
            admin,
            topology: RwLock::new(Arc::new(topology)),
            refreshed: tokio::sync::Mutex::new((Instant::now(), true)),
            keys,
            scripts: Mutex::new(LruCache::new(NonZeroUsize::new(SCRIPTS_REMEMBERED).expect("a positive bound"))),
            moved: AtomicU64::new(0),
            asked: AtomicU64::new(0),
        })
    }

    /// Masters now, and the redirections followed so far.
    pub fn counts(&self) -> RoutingCounts {
        RoutingCounts {
            masters: self.topology().masters.len(),
            moved: self.moved.load(Ordering::Relaxed),
            asked: self.asked.load(Ordering::Relaxed),
        }
    }

    /// The topology now.
    pub fn topology(&self) -> Arc<Topology> {
        Arc::clone(&self.topology.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Every node's target (masters, then replicas) as the `--redis-url` user.
    pub fn node_targets(&self) -> Result<Vec<Target>, TargetError> {
        self.topology().nodes().into_iter().map(|address| self.admin.at(address)).collect()
    }

    /// Leaves every node connection of `access` to the requests already on it (one runs a
    /// script Redis cannot end); the next request connects again.
    pub fn abandon(&self, access: Access) {
        for link in self.links(access).by_address.read().unwrap_or_else(|p| p.into_inner()).values() {
            link.abandon();
        }
    }

    fn links(&self, access: Access) -> &NodeLinks {
        match access {
            Access::Full => &self.full,
            Access::ReadOnly => &self.read_only,
            Access::Admin => &self.administrator,
        }
    }

    /// Reads the topology again from any node that answers (the `--redis-url` node first),
    /// unless another request just did; whether any node answered.
    async fn refresh(&self) -> bool {
        let asked = Instant::now();
        let mut refreshed = self.refreshed.lock().await;
        if refreshed.0 >= asked {
            return refreshed.1; // another request refreshed it while this one waited
        }
        let mut candidates = vec![self.admin.clone()];
        candidates.extend(self.node_targets().unwrap_or_default());
        let mut answered = false;
        for node in candidates {
            if let Ok(Ok(topology)) = tokio::time::timeout(Duration::from_secs(2), read_topology(&node)).await {
                *self.topology.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(topology);
                answered = true;
                break;
            }
        }
        *refreshed = (Instant::now(), answered);
        answered
    }

    /// Notes that `slot` moved to `address` now; the whole topology is read again soon after.
    fn note_moved(self: &Arc<Self>, slot: u16, address: &str) {
        {
            let mut topology = self.topology.write().unwrap_or_else(|p| p.into_inner());
            if topology.master_of(slot) != address {
                let mut changed = (**topology).clone();
                changed.moved(slot, address);
                *topology = Arc::new(changed);
            }
        }
        let cluster = Arc::clone(self);
        tokio::spawn(async move {
            cluster.refresh().await;
        });
    }

    /// Remembers the texts of scripts sent, by the hash Redis will know them by.
    fn remember_scripts(&self, commands: &[Vec<Vec<u8>>]) {
        for args in commands {
            let name = args.first().map(|a| String::from_utf8_lossy(a).to_ascii_uppercase()).unwrap_or_default();
            let sub = args.get(1).map(|a| String::from_utf8_lossy(a).to_ascii_uppercase()).unwrap_or_default();
            let script = match (name.as_str(), sub.as_str()) {
                ("EVAL" | "EVAL_RO", _) => args.get(1),
                ("SCRIPT", "LOAD") => args.get(2),
                _ => None,
            };
            if let Some(script) = script {
                self.scripts.lock().unwrap_or_else(|p| p.into_inner()).put(sha1_hex(script), script.clone());
            }
        }
    }

    /// Runs `commands` on the cluster: a transaction when `atomic`, else a pipeline. Answers
    /// one result per command, in order, or the error of the whole request.
    pub async fn run(
        self: &Arc<Self>,
        commands: &[Vec<Vec<u8>>],
        atomic: bool,
        lane: Lane,
        access: Access,
    ) -> RedisResult<Vec<RedisResult<Value>>> {
        self.remember_scripts(commands);
        if atomic {
            return self.transaction(commands, lane, access).await;
        }
        let topology = self.topology();
        let home = self.admin.address();
        let plans: Vec<Result<Plan, PlanError>> =
            commands.iter().map(|args| plan(args, &self.keys, &topology, &home)).collect();
        let parts: Vec<(usize, usize)> = plans
            .iter()
            .enumerate()
            .flat_map(|(command, planned)| {
                let count = planned.as_ref().map_or(0, |p| p.parts.len());
                (0..count).map(move |index| (command, index))
            })
            .collect();
        let mut replies: Vec<Vec<Option<RedisResult<Value>>>> = plans
            .iter()
            .map(|p| p.as_ref().map(|p| p.parts.iter().map(|_| None).collect()).unwrap_or_default())
            .collect();
        let answered = self.settle(&plans, parts, lane, access).await;
        for ((command, index), reply) in answered {
            replies[command][index] = Some(reply);
        }
        let mut results = Vec::with_capacity(commands.len());
        for (planned, replies) in plans.into_iter().zip(replies) {
            match planned {
                Ok(planned) => {
                    let replies = replies
                        .into_iter()
                        .map(|reply| reply.unwrap_or_else(|| Err(server_error("ERR no reply from Redis"))))
                        .collect();
                    results.push(merge(&planned.merge, replies));
                }
                Err(refused) => results.push(Err(server_error(&refused.to_string()))),
            }
        }
        // No node answered any of them: Redis is unavailable, as one Redis that does not
        // answer is (503), rather than a pipeline of errors.
        if results.iter().all(|r| r.as_ref().is_err_and(|e| e.code().is_none())) {
            if let Some(Err(error)) = results.into_iter().next() {
                return Err(error);
            }
            return Ok(Vec::new());
        }
        Ok(results)
    }

    /// Sends `commands` to the node at `address` as one pipeline; one result per command (the
    /// node's failure as each one's error).
    async fn send(
        &self,
        address: &str,
        commands: Vec<&[Vec<u8>]>,
        asking: bool,
        lane: Lane,
        access: Access,
    ) -> Vec<RedisResult<Value>> {
        let count = commands.len();
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        // The replies of a node's share count against one response budget.
        let windowed = count > 1;
        if windowed {
            pipe.cmd("ECHO").arg(window_marker(count));
        }
        if asking {
            pipe.cmd("ASKING");
        }
        for args in &commands {
            pipe.add_command(command(args));
        }
        let skipped = usize::from(windowed) + usize::from(asking);
        match self.query(address, pipe, lane, access).await {
            Ok(mut replies) => {
                let replies: Vec<_> = replies.drain(skipped.min(replies.len())..).collect();
                if replies.len() == count {
                    replies
                } else {
                    (0..count).map(|_| Err(server_error("ERR the node answered fewer replies than commands"))).collect()
                }
            }
            Err(error) => (0..count).map(|_| Err(error.clone())).collect(),
        }
    }

    /// Runs `pipe` on the token's link to `address` (or, for a blocking command, a connection
    /// of its own, bounded) in a task of its own. A connection that could not be made is an
    /// error of kind `ClusterConnectionNotFound`-like: [`Next::Wait`] resends it.
    async fn query(
        &self,
        address: &str,
        pipe: redis::Pipeline,
        lane: Lane,
        access: Access,
    ) -> RedisResult<Vec<RedisResult<Value>>> {
        let link = self.links(access).at(address).map_err(|e| {
            RedisError::from((redis::ErrorKind::InvalidClientConfig, "a node's address", e.to_string()))
        })?;
        match lane {
            Lane::Shared => {
                let leased = link.lease().await.map_err(not_sent)?;
                let mut connection = leased.connection.clone();
                let task =
                    tokio::spawn(async move { pipe.query_async::<Vec<RedisResult<Value>>>(&mut connection).await });
                let outcome = task
                    .await
                    .map_err(|_| RedisError::from((redis::ErrorKind::Io, "the Redis driver failed on this request")))?;
                link.returned(&leased, outcome.as_ref().err());
                // A connection the node closed (it restarted) is found broken when the
                // pipeline is written to it: nothing reached the node, so it may be resent
                // on a new connection.
                outcome.map_err(|error| if is_broken_pipe(&error) { not_sent(error) } else { error })
            }
            Lane::Dedicated(bound) => {
                let run = async move {
                    let mut connection = link.dedicated().await.map_err(not_sent)?;
                    pipe.query_async::<Vec<RedisResult<Value>>>(&mut connection).await
                };
                let task = tokio::spawn(async move {
                    match tokio::time::timeout(bound, run).await {
                        Ok(outcome) => outcome,
                        Err(_) => Err(RedisError::from((redis::ErrorKind::Io, "blocked longer than --max-block"))),
                    }
                });
                task.await
                    .map_err(|_| RedisError::from((redis::ErrorKind::Io, "the Redis driver failed on this request")))?
            }
        }
    }

    /// What `reply` asks for: done, or a redirection, a wait, a script to load.
    fn next(&self, part: &Part, reply: &RedisResult<Value>) -> Next {
        let Err(error) = reply else { return Next::Done };
        if is_not_sent(error) {
            return Next::Wait;
        }
        match (error.code(), redirection(error)) {
            (Some("MOVED"), Some((address, slot))) => Next::Moved { slot, address },
            (Some("ASK"), Some((address, _))) => Next::Ask(address),
            (Some("TRYAGAIN" | "CLUSTERDOWN" | "MASTERDOWN" | "LOADING"), _) => Next::Wait,
            (Some("NOSCRIPT"), _) => {
                let hash = part.args.get(1).map(|h| String::from_utf8_lossy(h).to_ascii_lowercase());
                match hash.and_then(|h| self.scripts.lock().unwrap_or_else(|p| p.into_inner()).get(&h).cloned()) {
                    Some(script) => Next::Load(script),
                    None => Next::Done,
                }
            }
            _ => Next::Done,
        }
    }

    /// Sends every part (`(command, part)` of `plans`) and follows what the replies ask for,
    /// round after round: each round groups the parts still waiting by node and sends each
    /// group as one pipeline, all at once — the first round is the request split by master;
    /// later ones are what `MOVED`, `ASK`, a wait or a missing script sent elsewhere. Stops
    /// after [`MAX_REDIRECTS`] rounds of redirections or when [`SETTLE`] passed; a part's
    /// answer is its last reply, a redirection never passed on raw.
    async fn settle(
        self: &Arc<Self>,
        plans: &[Result<Plan, PlanError>],
        parts: Vec<(usize, usize)>,
        lane: Lane,
        access: Access,
    ) -> Vec<((usize, usize), RedisResult<Value>)> {
        let part_of = |(command, index): (usize, usize)| -> Option<&Part> {
            plans[command].as_ref().ok().and_then(|p| p.parts.get(index))
        };
        let deadline = Instant::now() + SETTLE;
        let mut answered = Vec::with_capacity(parts.len());
        let mut pending: Vec<Pending> = parts
            .into_iter()
            .filter_map(|at| {
                part_of(at).map(|part| Pending { at, address: part.address.clone(), asking: false, loaded: false })
            })
            .collect();
        // Rounds that followed a redirection, and rounds that waited.
        let (mut redirected, mut waited) = (0, 0u64);
        while !pending.is_empty() {
            // The parts of this round by (node, ASKING), in request order within each.
            let mut groups: Vec<((String, bool), Vec<usize>)> = Vec::new();
            for (member, waiting) in pending.iter().enumerate() {
                let key = (waiting.address.clone(), waiting.asking);
                match groups.iter_mut().find(|(group, _)| *group == key) {
                    Some((_, members)) => members.push(member),
                    None => groups.push((key, vec![member])),
                }
            }
            let sends = groups.iter().map(|((address, asking), members)| {
                let args: Vec<&[Vec<u8>]> =
                    members.iter().filter_map(|m| part_of(pending[*m].at)).map(|p| p.args.as_slice()).collect();
                self.send(address, args, *asking, lane, access)
            });
            let outcomes = futures_util::future::join_all(sends).await;
            let last_round = redirected + 1 >= MAX_REDIRECTS || Instant::now() > deadline;
            let mut next_round = Vec::new();
            let (mut waits, mut redirects) = (false, false);
            for ((_, members), outcome) in groups.iter().zip(outcomes) {
                for (member, reply) in members.iter().zip(outcome) {
                    let waiting = &pending[*member];
                    let Some(part) = part_of(waiting.at) else { continue };
                    let next = if last_round { Next::Done } else { self.next(part, &reply) };
                    let again = |address: String, asking: bool, loaded: bool| Pending {
                        at: waiting.at,
                        address,
                        asking,
                        loaded: waiting.loaded || loaded,
                    };
                    match next {
                        Next::Done => answered.push((waiting.at, without_redirection(reply))),
                        Next::Moved { slot, address } => {
                            redirects = true;
                            self.moved.fetch_add(1, Ordering::Relaxed);
                            self.note_moved(slot, &address);
                            next_round.push((again(address, false, false), reply, false));
                        }
                        Next::Ask(address) => {
                            redirects = true;
                            self.asked.fetch_add(1, Ordering::Relaxed);
                            next_round.push((again(address, true, false), reply, false));
                        }
                        Next::Wait => {
                            waits = true;
                            next_round.push((again(waiting.address.clone(), false, false), reply, true));
                        }
                        Next::Load(script) if !waiting.loaded => {
                            let load = vec![b"SCRIPT".to_vec(), b"LOAD".to_vec(), script];
                            self.send(&waiting.address, vec![load.as_slice()], false, lane, access).await;
                            next_round.push((again(waiting.address.clone(), false, true), reply, false));
                        }
                        Next::Load(_) => answered.push((waiting.at, reply)),
                    }
                }
            }
            redirected += usize::from(redirects);
            if waits {
                waited += 1;
                tokio::time::sleep(Duration::from_millis(50 * waited.min(8))).await;
                // Past the deadline, or no node answers (the cluster is down, not failing
                // over): the last replies are the answers.
                if Instant::now() > deadline || !self.refresh().await {
                    let last =
                        next_round.into_iter().map(|(waiting, reply, _)| (waiting.at, without_redirection(reply)));
                    answered.extend(last);
                    break;
                }
                // A part that waited goes to its slot's master as the cluster now says.
                let topology = self.topology();
                for (waiting, _, after_wait) in &mut next_round {
                    if let (true, Some(slot)) = (*after_wait, part_of(waiting.at).and_then(|part| part.slot)) {
                        waiting.address = topology.master_of(slot).to_owned();
                    }
                }
            }
            pending = next_round.into_iter().map(|(waiting, _, _)| waiting).collect();
        }
        answered
    }

    /// A `/multi-exec` transaction on the master of its keys' one slot.
    async fn transaction(
        self: &Arc<Self>,
        commands: &[Vec<Vec<u8>>],
        lane: Lane,
        access: Access,
    ) -> RedisResult<Vec<RedisResult<Value>>> {
        let slot = plan::common_slot(commands, &self.keys).map_err(|refused| server_error(&refused.to_string()))?;
        let deadline = Instant::now() + SETTLE;
        let mut redirected: Option<String> = None;
        for attempt in 0..MAX_REDIRECTS {
            let address = match (&redirected, slot) {
                (Some(address), _) => address.clone(),
                (None, Some(slot)) => self.topology().master_of(slot).to_owned(),
                (None, None) => self.topology().masters[0].address.clone(),
            };
            let mut pipe = redis::pipe();
            pipe.atomic().ignore_errors();
            for args in commands {
                pipe.add_command(command(args));
            }
            let outcome = self.query(&address, pipe, lane, access).await;
            let Err(error) = &outcome else { return outcome };
            // Redirections and waits come as the queued commands' errors (EXECABORT): nothing
            // ran, so the transaction is sent again.
            let mut causes = vec![(error.code().map(str::to_owned), redirection(error).map(|(address, _)| address))];
            if let Some(queued) = error.clone().into_server_errors() {
                causes.extend(queued.iter().map(|(_, e)| {
                    let to = e.details().and_then(|d| d.split(' ').nth(1)).map(str::to_owned);
                    (Some(e.code().to_owned()), to)
                }));
            }
            let moved =
                causes.iter().find(|(code, _)| matches!(code.as_deref(), Some("MOVED"))).and_then(|c| c.1.clone());
            let waits = is_not_sent(error)
                || causes.iter().any(|(code, _)| {
                    matches!(code.as_deref(), Some("ASK" | "TRYAGAIN" | "CLUSTERDOWN" | "MASTERDOWN" | "LOADING"))
                });
            if let (Some(to), Some(slot)) = (&moved, slot) {
                self.moved.fetch_add(1, Ordering::Relaxed);
                self.note_moved(slot, to);
                redirected = Some(to.clone());
            } else if waits && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50 * (attempt as u64 + 1).min(8))).await;
                if !self.refresh().await {
                    return outcome; // no node answers: the cluster is down
                }
                redirected = None;
            } else {
                return outcome;
            }
        }
        Err(server_error("TRYAGAIN the cluster kept redirecting this transaction; retry"))
    }
}
