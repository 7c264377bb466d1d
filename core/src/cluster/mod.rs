//! Redis Cluster's addressing, pure and shared by the tools that speak to a cluster (the
//! migrator, the gateway): [`slot`] says which of the 16384 hash slots a key is in;
//! [`topology`] which master serves a slot, read from `CLUSTER SLOTS`. Connections, redirects
//! and retries are the users' own: core has no I/O.

pub mod slot;
pub mod topology;
