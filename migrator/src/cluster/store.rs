//! A Redis Cluster as one [`Store`]: every command goes to the master serving its key's slot, a
//! pipeline is split into one pipeline per master — all sent before any reply is read, so the
//! masters work at once — and its replies put back in order, and what spans the cluster is
//! spread over every master: `SCAN` asks all of them at once, `SCRIPT LOAD` and `DBSIZE` go to
//! all of them, a multi-key `EXISTS`, `DEL` or `UNLINK` is split per key. A `MOVED` answer (a failover, resharding) re-reads the
//! topology and resends; an `ASK` resends to the importing node after `ASKING`; `TRYAGAIN` and
//! `CLUSTERDOWN` are retried for a few seconds before they become the step's error. Steps that
//! must address one node (the move scripts, [`crate::cluster::moves`]) call [`ClusterStore::on_node`].
//!
//! A whole-cluster `SCAN` asks every master at once (each its own `SCAN`, sent before any reply
//! is read) and hands back one page of all their keys; the cursor it returns names the scan's
//! state here — each master's own cursor — so the steps' scanners are unchanged. A master
//! replaced by a failover during the scan is scanned again from its start: keys may then come
//! twice, which every caller already de-duplicates (SCAN's own contract), but none is missed.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use edgesync_core::store::{Command, CommandError, Replies, Reply, Store, StoreError};

use super::slot::slot_of;
use super::topology::{Topology, TopologyError};
use crate::connect::{redacted, NodeOpener, RespStore};

/// How long a command keeps being redirected or retried (`TRYAGAIN`, `CLUSTERDOWN`, a node
/// that stopped answering during a failover) before its error is the step's.
const SETTLE: Duration = Duration::from_secs(20);

/// Where one command (or part of one) goes.
#[derive(Debug, Clone)]
enum Route {
    Slot(u16),
    /// A master by its place (a whole-cluster command, or a scan's current master).
    Master(usize),
    Address(String),
}

/// How the replies of a command's parts make its reply.
enum Gather {
    One(usize),
    /// The sum of integer replies (`EXISTS`, `DEL` split per key, `DBSIZE`).
    Sum(Vec<usize>),
    /// The same command on every master: the first reply, or the first error.
    Same(Vec<usize>),
}

/// How many unfinished whole-cluster scans a store keeps (each step runs one or two at once).
const SCANS_KEPT: usize = 16;

/// A whole-cluster `SCAN` under way.
struct ClusterScan {
    /// Each master's own cursor, by address (`None`: done).
    cursors: BTreeMap<String, Option<u64>>,
    /// The topology when the scan began: slots that changed master since (resharding) are read
    /// again at the end.
    started: Topology,
}

struct Part {
    command: Command,
    route: Route,
}

/// A Redis Cluster behind the [`Store`] interface.
pub struct ClusterStore {
    opener: NodeOpener,
    topology: RefCell<Topology>,
    nodes: RefCell<HashMap<String, RespStore>>,
    /// Whole-cluster scans under way, by the cursor handed out for them.
    scans: RefCell<BTreeMap<u64, ClusterScan>>,
    next_scan: std::cell::Cell<u64>,
}

impl ClusterStore {
    /// The cluster `first` (a connection to `address`) belongs to.
    pub fn discover(opener: NodeOpener, address: String, first: RespStore) -> Result<Self, TopologyError> {
        let topology = slots_of_node(&first)?;
        let mut nodes = HashMap::new();
        nodes.insert(address, first);
        Ok(Self {
            opener,
            topology: RefCell::new(topology),
            nodes: RefCell::new(nodes),
            scans: RefCell::default(),
            next_scan: std::cell::Cell::new(1),
        })
    }

    /// The masters' addresses, in slot order.
    pub fn masters(&self) -> Vec<String> {
        self.topology.borrow().masters.iter().map(|m| m.address.clone()).collect()
    }

    /// The address of the master serving `key`.
    pub fn node_of(&self, key: &str) -> String {
        self.topology.borrow().master_of(slot_of(key.as_bytes())).to_owned()
    }

    /// Reads the topology again from any master that answers (after a failover, the old
    /// master may be gone).
    pub fn refresh(&self) -> Result<(), StoreError> {
        let mut last = None;
        for address in self.masters() {
            let topology = self.with_node(&address, read_topology);
            match topology {
                Ok(topology) => {
                    *self.topology.borrow_mut() = topology;
                    return Ok(());
                }
                Err(error) => {
                    self.nodes.borrow_mut().remove(&address);
                    last = Some(error);
                }
            }
        }
        Err(last.unwrap_or_else(|| StoreError::Unavailable("the cluster has no master".into())))
    }

    /// Runs `commands` on the node at `address` as they are, nothing redirected.
    pub async fn on_node(&self, address: &str, commands: &[Command]) -> Result<Replies, StoreError> {
        self.with_node(address, |node| node.run(commands))
    }

    fn with_node<T>(
        &self,
        address: &str,
        run: impl FnOnce(&RespStore) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if !self.nodes.borrow().contains_key(address) {
            let node = self
                .opener
                .open(address)
                .map_err(|e| StoreError::Unavailable(format!("cluster node {address}: {e}")))?;
            self.nodes.borrow_mut().insert(address.to_owned(), node);
        }
        let nodes = self.nodes.borrow();
        let result = run(nodes.get(address).expect("connected above"));
        drop(nodes);
        if matches!(result, Err(StoreError::Unavailable(_))) {
            // A broken connection is opened again next time.
            self.nodes.borrow_mut().remove(address);
        }
        result
    }

    fn address(&self, route: &Route) -> Result<String, StoreError> {
        let topology = self.topology.borrow();
        Ok(match route {
            Route::Slot(slot) => topology.master_of(*slot).to_owned(),
            Route::Master(place) => topology
                .masters
                .get(*place)
                .ok_or_else(|| StoreError::Unavailable(format!("the cluster has no master number {place}")))?
                .address
                .clone(),
            Route::Address(address) => address.clone(),
        })
    }

    /// Splits `commands` into parts for single masters and says how to put replies together.
    fn plan(&self, commands: &[Command]) -> Result<(Vec<Part>, Vec<Gather>), StoreError> {
        let masters = self.topology.borrow().masters.len();
        let mut parts = Vec::new();
        let mut gathers = Vec::with_capacity(commands.len());
        let push = |parts: &mut Vec<Part>, command: Command, route: Route| {
            parts.push(Part { command, route });
            parts.len() - 1
        };
        for command in commands {
            let name = command.name().to_ascii_uppercase();
            let args = command.args();
            let gather = match name.as_str() {
                "SCAN" => {
                    return Err(StoreError::Rejected {
                        status: 400,
                        message: "SCAN on a Redis Cluster is a command of its own, not part of a pipeline".into(),
                    })
                }
                "SCRIPT" | "FLUSHALL" | "FLUSHDB" => {
                    Gather::Same((0..masters).map(|m| push(&mut parts, command.clone(), Route::Master(m))).collect())
                }
                "DBSIZE" => {
                    Gather::Sum((0..masters).map(|m| push(&mut parts, command.clone(), Route::Master(m))).collect())
                }
                "EXISTS" | "DEL" | "UNLINK" | "TOUCH" if args.len() > 1 => Gather::Sum(
                    args.iter()
                        .map(|key| push(&mut parts, Command::new(&name).arg_bytes(key), Route::Slot(slot_of(key))))
                        .collect(),
                ),
                "EVAL" | "EVALSHA" | "FCALL" => {
                    let declared = args.get(1).and_then(|n| std::str::from_utf8(n).ok()?.parse::<usize>().ok());
                    let route = match (declared, args.get(2)) {
                        (Some(n), Some(key)) if n > 0 => Route::Slot(slot_of(key)),
                        _ => Route::Master(0),
                    };
                    Gather::One(push(&mut parts, command.clone(), route))
                }
                "INFO" | "PING" | "TIME" | "CLUSTER" | "CONFIG" | "ECHO" => {
                    Gather::One(push(&mut parts, command.clone(), Route::Master(0)))
                }
                _ => match args.first() {
                    Some(key) => Gather::One(push(&mut parts, command.clone(), Route::Slot(slot_of(key)))),
                    None => Gather::One(push(&mut parts, command.clone(), Route::Master(0))),
                },
            };
            gathers.push(gather);
        }
        Ok((parts, gathers))
    }

    /// `SCAN cursor [MATCH …] [COUNT …]` over every master at once: each live master's own
    /// `SCAN` is sent before any reply is read, and the keys of all of them make one page. The
    /// cursor handed back names the scan's state here (each master's own cursor), 0 at the end.
    /// A master replaced since its scan began (a failover) is scanned again from its start.
    fn scan(&self, command: &Command) -> Result<Reply, StoreError> {
        let args = command.args();
        let handle: u64 = args
            .first()
            .and_then(|c| std::str::from_utf8(c).ok()?.parse().ok())
            .ok_or_else(|| StoreError::Rejected { status: 400, message: "SCAN needs a numeric cursor".into() })?;
        let current = self.masters();
        let mut scan = if handle == 0 {
            ClusterScan { cursors: BTreeMap::new(), started: self.topology.borrow().clone() }
        } else {
            self.scans.borrow_mut().remove(&handle).ok_or_else(|| StoreError::Rejected {
                status: 400,
                message: format!("SCAN cursor {handle} names no scan under way"),
            })?
        };
        // A master that is no longer one (a failover) leaves its unfinished scan to the master
        // that replaced it, which is new here and scanned from its start.
        scan.cursors.retain(|address, cursor| cursor.is_none() || current.contains(address));
        for address in &current {
            scan.cursors.entry(address.clone()).or_insert(Some(0));
        }
        let mut sent = Vec::new();
        for (address, cursor) in &scan.cursors {
            let Some(cursor) = cursor else { continue };
            let mut node_scan = Command::new("SCAN").arg(cursor);
            for arg in &args[1..] {
                node_scan = node_scan.arg_bytes(arg);
            }
            let sending = self.with_node(address, |node| node.send(std::slice::from_ref(&node_scan)));
            sent.push((address.clone(), sending));
        }
        // Every reply is read before anything is returned: a reply left unread would answer
        // the next command on that connection.
        let mut keys: Vec<String> = Vec::new();
        let mut failed = None;
        let mut lost = Vec::new();
        for (address, sending) in sent {
            let received = sending.and_then(|()| self.with_node(&address, |node| node.receive(1)));
            match received.map(|mut replies| replies.pop()) {
                Ok(Some(Ok(reply))) => match node_page(reply) {
                    Ok((cursor, mut page)) => {
                        scan.cursors.insert(address, (cursor != 0).then_some(cursor));
                        keys.append(&mut page);
                    }
                    Err(error) => failed = failed.or(Some(error)),
                },
                Ok(Some(Err(error))) => failed = failed.or(Some(StoreError::Command { command: "SCAN".into(), error })),
                Ok(None) => failed = failed.or(Some(StoreError::Unavailable("SCAN: no reply".into()))),
                Err(StoreError::Unavailable(_)) => lost.push(address),
                Err(error) => failed = failed.or(Some(error)),
            }
        }
        if let Some(error) = failed {
            return Err(error);
        }
        if !lost.is_empty() {
            // Gone (a failover): the next page asks whichever master replaced it.
            self.refresh()?;
            scan.cursors.retain(|address, _| !lost.contains(address));
        }
        if scan.cursors.values().all(Option::is_none) && lost.is_empty() {
            keys.append(&mut self.resharded_keys(&scan.started, args)?);
            let keys = Reply::Array(keys.into_iter().map(Reply::bulk).collect());
            return Ok(Reply::Array(vec![Reply::bulk("0"), keys]));
        }
        let keys = Reply::Array(keys.into_iter().map(Reply::bulk).collect());
        let handle = self.next_scan.get();
        self.next_scan.set(handle + 1);
        let mut scans = self.scans.borrow_mut();
        // A scan its caller abandoned (an error mid-way) is forgotten once enough newer ones run.
        while scans.len() >= SCANS_KEPT {
            scans.pop_first();
        }
        scans.insert(handle, scan);
        Ok(Reply::Array(vec![Reply::bulk(handle.to_string()), keys]))
    }

    /// The keys (matching the scan's `MATCH`) of every slot that changed master since `started`
    /// or is being migrated now: resharding may have carried a key from a master whose scan had
    /// not reached it to one whose scan had passed it. Read by slot (`CLUSTER GETKEYSINSLOT`)
    /// from every master that may hold it; a key may come twice, never not at all.
    fn resharded_keys(&self, started: &Topology, args: &[Vec<u8>]) -> Result<Vec<String>, StoreError> {
        self.refresh()?;
        let mut slots: Vec<(u16, Vec<String>)> = Vec::new();
        {
            let now = self.topology.borrow();
            for slot in 0..super::slot::SLOTS {
                let (before, after) = (started.master_of(slot), now.master_of(slot));
                // A failover hands a master's slots, all of them, to its replica, which holds
                // their keys already: only slots that changed shard are read again.
                if before != after && started.slots_of(before) != now.slots_of(after) {
                    slots.push((slot, vec![after.to_owned()]));
                }
            }
        }
        for address in self.masters() {
            for (slot, other) in self.migrating_slots(&address)? {
                slots.push((slot, vec![address.clone(), other]));
            }
        }
        if slots.is_empty() {
            return Ok(Vec::new());
        }
        let pattern = args
            .iter()
            .position(|arg| arg.eq_ignore_ascii_case(b"MATCH"))
            .and_then(|at| args.get(at + 1))
            .map(|pattern| edgesync_core::glob::Glob::new(&String::from_utf8_lossy(pattern)));
        let mut keys = Vec::new();
        for (slot, holders) in slots {
            for address in holders {
                let count = self.slot_command(&address, Command::new("CLUSTER").arg("COUNTKEYSINSLOT").arg(slot))?;
                let Reply::Int(count) = count else { continue };
                if count == 0 {
                    continue;
                }
                let found =
                    self.slot_command(&address, Command::new("CLUSTER").arg("GETKEYSINSLOT").arg(slot).arg(count))?;
                let found = found.into_texts().map_err(|error| StoreError::UnexpectedReply {
                    command: "CLUSTER GETKEYSINSLOT".into(),
                    detail: error.to_string(),
                })?;
                keys.extend(found.into_iter().filter(|key| pattern.as_ref().is_none_or(|p| p.matches(key.as_bytes()))));
            }
        }
        Ok(keys)
    }

    /// The slots the master at `address` is migrating to, or importing from, another node
    /// (`[slot->-id]`, `[slot-<-id]` in its `CLUSTER NODES` line), with that node's address.
    fn migrating_slots(&self, address: &str) -> Result<Vec<(u16, String)>, StoreError> {
        let nodes = self.slot_command(address, Command::new("CLUSTER").arg("NODES"))?;
        let nodes = nodes.into_string().unwrap_or_default();
        let address_of = |id: &str| {
            nodes.lines().find(|line| line.starts_with(id)).and_then(|line| line.split_whitespace().nth(1)).map(|a| {
                // `host:port@bus`
                a.split('@').next().unwrap_or(a).to_owned()
            })
        };
        let Some(mine) = nodes.lines().find(|line| line.contains("myself")) else { return Ok(Vec::new()) };
        Ok(mine
            .split_whitespace()
            .filter_map(|word| {
                let inner = word.strip_prefix('[')?.strip_suffix(']')?;
                let (slot, other) = inner.split_once("->-").or_else(|| inner.split_once("-<-"))?;
                Some((slot.parse().ok()?, address_of(other)?))
            })
            .collect())
    }

    fn slot_command(&self, address: &str, command: Command) -> Result<Reply, StoreError> {
        let name = format!("{} {}", command.name(), command.text(0).unwrap_or_default());
        match self.with_node(address, |node| node.run(std::slice::from_ref(&command)))?.pop() {
            Some(Ok(reply)) => Ok(reply),
            Some(Err(error)) => Err(StoreError::Command { command: name, error }),
            None => Err(StoreError::Unavailable(format!("{name}: no reply"))),
        }
    }

    /// Sends every part to its master, following redirects until each has its final reply.
    fn run_parts(&self, parts: &[Part]) -> Result<Vec<Result<Reply, CommandError>>, StoreError> {
        let mut replies: Vec<Option<Result<Reply, CommandError>>> = vec![None; parts.len()];
        let mut routes: Vec<Route> = parts.iter().map(|p| p.route.clone()).collect();
        let mut asking: Vec<bool> = vec![false; parts.len()];
        let started = Instant::now();
        let mut round = 0u32;
        loop {
            let waiting: Vec<usize> = (0..parts.len()).filter(|i| replies[*i].is_none()).collect();
            if waiting.is_empty() {
                break;
            }
            let mut by_node: HashMap<String, Vec<usize>> = HashMap::new();
            for &i in &waiting {
                by_node.entry(self.address(&routes[i])?).or_default().push(i);
            }
            let mut refresh = false;
            let mut failure = None;
            // Every master gets its part before any reply is read, so they work at once.
            let mut sent = Vec::with_capacity(by_node.len());
            for (address, indexes) in by_node {
                let mut commands = Vec::with_capacity(indexes.len());
                let mut places = Vec::with_capacity(indexes.len());
                for &i in &indexes {
                    if asking[i] {
                        commands.push(Command::new("ASKING"));
                    }
                    places.push(commands.len());
                    commands.push(parts[i].command.clone());
                }
                let sending = self.with_node(&address, |node| node.send(&commands));
                sent.push((address, indexes, places, commands.len(), sending));
            }
            for (address, indexes, places, count, sending) in sent {
                let received = sending.and_then(|()| self.with_node(&address, |node| node.receive(count)));
                let node_replies = match received {
                    Ok(node_replies) => node_replies,
                    Err(error @ StoreError::Unavailable(_)) => {
                        // The node stopped answering (a failover in progress): its parts wait
                        // for the next round, on whichever master then serves their slots.
                        refresh = true;
                        failure = Some(error);
                        continue;
                    }
                    Err(error) => return Err(error),
                };
                let mut node_replies: Vec<Option<Result<Reply, CommandError>>> =
                    node_replies.into_iter().map(Some).collect();
                for (&i, &place) in indexes.iter().zip(&places) {
                    let reply = node_replies
                        .get_mut(place)
                        .and_then(Option::take)
                        .unwrap_or_else(|| Err(CommandError(format!("no reply from {address}"))));
                    asking[i] = false;
                    match &reply {
                        Err(CommandError(text)) if text.starts_with("MOVED ") => {
                            if let Some((slot, to)) = redirect(text) {
                                self.topology.borrow_mut().moved(slot, &to);
                                routes[i] = route_after_move(&parts[i].route, to);
                            }
                            refresh = true;
                        }
                        Err(CommandError(text)) if text.starts_with("ASK ") => {
                            if let Some((_, to)) = redirect(text) {
                                routes[i] = Route::Address(to);
                                asking[i] = true;
                            }
                        }
                        Err(CommandError(text)) if text.starts_with("TRYAGAIN") || text.starts_with("CLUSTERDOWN") => {
                            refresh = true;
                            if started.elapsed() > SETTLE {
                                replies[i] = Some(reply);
                            }
                        }
                        _ => replies[i] = Some(reply),
                    }
                }
            }
            if started.elapsed() > SETTLE {
                if let Some(error) = failure {
                    return Err(error);
                }
                for reply in replies.iter_mut().filter(|r| r.is_none()) {
                    *reply = Some(Err(CommandError("the cluster kept redirecting this command".into())));
                }
            }
            if refresh {
                round += 1;
                // Back off: a failover takes the cluster a few hundred milliseconds.
                if round > 1 {
                    std::thread::sleep(Duration::from_millis(50 * u64::from(round.min(10))));
                }
                if self.refresh().is_ok() {
                    for (i, part) in parts.iter().enumerate() {
                        if replies[i].is_none() && !asking[i] {
                            routes[i] = part.route.clone();
                        }
                    }
                }
            }
        }
        Ok(replies.into_iter().map(|r| r.expect("every part answered")).collect())
    }

    fn gather(&self, gathers: Vec<Gather>, mut replies: Vec<Result<Reply, CommandError>>) -> Replies {
        let mut take = |i: usize| std::mem::replace(&mut replies[i], Ok(Reply::Nil));
        gathers
            .into_iter()
            .map(|gather| match gather {
                Gather::One(i) => take(i),
                Gather::Sum(parts) => parts
                    .into_iter()
                    .try_fold(0i64, |sum, i| match take(i)? {
                        Reply::Int(n) => Ok(sum + n),
                        other => Err(CommandError(format!("expected a number, got {other:?}"))),
                    })
                    .map(Reply::Int),
                Gather::Same(parts) => {
                    // Every master's reply, the first one kept: any error is the command's.
                    let replies: Result<Vec<Reply>, CommandError> = parts.into_iter().map(&mut take).collect();
                    replies.map(|replies| replies.into_iter().next().unwrap_or(Reply::Nil))
                }
            })
            .collect()
    }
}

/// A redirect's slot and address: `MOVED 3999 127.0.0.1:6381`.
fn redirect(text: &str) -> Option<(u16, String)> {
    let mut words = text.split_whitespace().skip(1);
    let slot = words.next()?.parse().ok()?;
    Some((slot, words.next()?.to_owned()))
}

fn route_after_move(route: &Route, to: String) -> Route {
    match route {
        Route::Slot(slot) => Route::Slot(*slot),
        _ => Route::Address(to),
    }
}

/// One master's `SCAN` reply: its cursor and keys.
fn node_page(reply: Reply) -> Result<(u64, Vec<String>), StoreError> {
    let unexpected = |detail: String| StoreError::UnexpectedReply { command: "SCAN".into(), detail };
    let Reply::Array(parts) = reply else { return Err(unexpected("not an array".into())) };
    let mut parts = parts.into_iter();
    let (Some(cursor), Some(keys), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(unexpected("expected [cursor, keys]".into()));
    };
    let cursor = cursor.into_string().map_err(|e| unexpected(e.to_string()))?;
    let cursor = cursor.parse().map_err(|_| unexpected(format!("cursor {cursor:?}")))?;
    Ok((cursor, keys.into_texts().map_err(|e| unexpected(e.to_string()))?))
}

/// The topology as the node says it is (`CLUSTER SLOTS`).
fn slots_of_node(node: &RespStore) -> Result<Topology, TopologyError> {
    let unreadable = |why: String| TopologyError::Unreadable(why);
    let mut replies = node.run(&[Command::new("CLUSTER").arg("SLOTS")]).map_err(|e| unreadable(e.to_string()))?;
    let reply = replies.pop().ok_or_else(|| unreadable("no reply".into()))?.map_err(|error| unreadable(error.0))?;
    Topology::from_cluster_slots(reply)
}

fn read_topology(node: &RespStore) -> Result<Topology, StoreError> {
    slots_of_node(node).map_err(|e| StoreError::Unavailable(e.to_string()))
}

impl std::fmt::Debug for ClusterStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterStore")
            .field("masters", &self.masters())
            .field("seed", &redacted(self.opener.url()))
            .finish()
    }
}

#[async_trait(?Send)]
impl Store for ClusterStore {
    async fn pipeline(&self, commands: &[Command]) -> Result<Replies, StoreError> {
        if commands.is_empty() {
            return Ok(Vec::new());
        }
        if let [command] = commands {
            if command.name().eq_ignore_ascii_case("SCAN") {
                return Ok(vec![self.scan(command).map_err(|error| match error {
                    StoreError::Command { error, .. } => error,
                    other => CommandError(other.to_string()),
                })]);
            }
        }
        let (parts, gathers) = self.plan(commands)?;
        let replies = self.run_parts(&parts)?;
        Ok(self.gather(gathers, replies))
    }

    async fn transaction(&self, commands: &[Command]) -> Result<Replies, StoreError> {
        let (parts, _) = self.plan(commands)?;
        let mut addresses = parts.iter().map(|p| self.address(&p.route));
        let Some(first) = addresses.next().transpose()? else { return Ok(Vec::new()) };
        for address in addresses {
            if address? != first {
                return Err(StoreError::Rejected {
                    status: 400,
                    message: "a transaction on a Redis Cluster must keep to one node".into(),
                });
            }
        }
        self.with_node(&first, |node| node.run_atomic(commands))
    }
}
