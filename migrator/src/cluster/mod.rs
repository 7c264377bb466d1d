//! Redis Cluster: the migrator finds a cluster from the URL of any of its nodes and works on
//! every master. [`slot`] says which hash slot a key is in; [`topology`] which master serves a
//! slot; [`store`] puts the whole cluster behind the `Store` interface the steps use (reads,
//! scans and single-key writes routed by slot); [`moves`] moves and restores journaled entries
//! node by node — atomically where an entry's keys share a node, by the journaled cross-node
//! protocol where they do not (docs/design.md, "Redis Cluster").

pub mod moves;
pub mod placement;
pub mod store;

// Key → slot and slot → master are core's (the gateway routes by them too).
pub use edgesync_core::cluster::{slot, topology};

pub use store::ClusterStore;
