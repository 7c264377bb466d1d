//! Which node serves a key in a run whose keys are not all on one Redis: a Redis Cluster
//! (each key on the master of its slot), another Redis as the target (`--target-url`: sources
//! on one, targets and index sets on the other), or both. [`crate::cluster::moves`] sends each
//! step to the [`Node`] this answers.

use edgesync_core::store::{Command, Replies, Store, StoreError};

use super::store::ClusterStore;
use crate::connect::{ConnectError, Connection, Connector};

/// One side of a run: a single Redis (or an Upstash REST endpoint), or a cluster.
pub enum Side {
    One(Box<dyn Store>),
    Cluster(Box<ClusterStore>),
}

impl Side {
    fn store(&self) -> &dyn Store {
        match self {
            Side::One(store) => store.as_ref(),
            Side::Cluster(cluster) => cluster.as_ref(),
        }
    }

    fn address_of(&self, key: &str) -> String {
        match self {
            Side::One(_) => String::new(),
            Side::Cluster(cluster) => cluster.node_of(key),
        }
    }
}

/// A node: the side it is on (sources' or targets') and its address there.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Node {
    target_side: bool,
    address: String,
}

impl std::fmt::Display for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let side = if self.target_side { "target" } else { "source" };
        match self.address.as_str() {
            "" => write!(f, "the {side} Redis"),
            address => write!(f, "{side} node {address}"),
        }
    }
}

/// The sources' side and, with `--target-url`, the targets'.
pub struct Placement {
    source: Side,
    target: Option<Side>,
}

impl Placement {
    pub fn new(source: Side, target: Option<Side>) -> Self {
        Self { source, target }
    }

    /// Opens the sides' own connections; `None` when sources and targets are on one plain
    /// Redis (the move scripts then run there as they are).
    pub fn open(source: &Connector, target: Option<&Connector>) -> Result<Option<Self>, ConnectError> {
        let side = |connector: &Connector| -> Result<Side, ConnectError> {
            Ok(match connector.open_connection()? {
                Connection::Single(store) => Side::One(store),
                Connection::Cluster(cluster) => Side::Cluster(cluster),
            })
        };
        let source = side(source)?;
        let target = target.map(side).transpose()?;
        if target.is_none() && matches!(source, Side::One(_)) {
            return Ok(None);
        }
        Ok(Some(Self { source, target }))
    }

    /// Whether targets live on another Redis than their sources (`--target-url`): a target
    /// named like its source is then another key.
    pub fn separate(&self) -> bool {
        self.target.is_some()
    }

    fn target(&self) -> &Side {
        self.target.as_ref().unwrap_or(&self.source)
    }

    pub fn source_node(&self, key: &str) -> Node {
        Node { target_side: false, address: self.source.address_of(key) }
    }

    /// The node of a target or an index key.
    pub fn target_node(&self, key: &str) -> Node {
        let target_side = self.target.is_some();
        Node { target_side, address: self.target().address_of(key) }
    }

    /// Every side's store, for loading the scripts on each.
    pub fn stores(&self) -> Vec<&dyn Store> {
        std::iter::once(self.source.store()).chain(self.target.as_ref().map(Side::store)).collect()
    }

    /// Runs `commands` on `node` as they are.
    pub async fn call(&self, node: &Node, commands: &[Command]) -> Result<Replies, StoreError> {
        let side = if node.target_side { self.target() } else { &self.source };
        match side {
            Side::One(store) => store.pipeline(commands).await,
            Side::Cluster(cluster) => cluster.on_node(&node.address, commands).await,
        }
    }

    /// Reads the clusters' topologies again.
    pub fn refresh(&self) -> Result<(), StoreError> {
        for side in std::iter::once(&self.source).chain(&self.target) {
            if let Side::Cluster(cluster) = side {
                cluster.refresh()?;
            }
        }
        Ok(())
    }
}
