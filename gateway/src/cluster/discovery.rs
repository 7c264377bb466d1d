//! What a node says about its cluster: the topology (`CLUSTER SLOTS`, read by core's parser)
//! and the other nodes, each reached with the node's own credentials and TLS.

use std::time::Duration;

use edgesync_core::cluster::topology::Topology;
use edgesync_core::store::Reply;
use redis::Value;

use super::ClusterError;
use crate::redis_link::Target;

/// The topology as `node` describes it.
pub(super) async fn read_topology(node: &Target) -> Result<Topology, ClusterError> {
    let unreachable = |source| ClusterError::Unreachable { node: node.address(), source };
    let mut connection = node.connect(usize::MAX, Some(Duration::from_secs(2))).await.map_err(unreachable)?;
    let slots: Value = redis::cmd("CLUSTER").arg("SLOTS").query_async(&mut connection).await.map_err(unreachable)?;
    Ok(Topology::from_cluster_slots(reply_of(slots))?)
}

/// The nodes of the cluster `node` belongs to, but `node` (masters, then replicas), as its
/// user: where the ACL users are made and checked.
pub async fn other_nodes(node: &Target) -> Result<Vec<Target>, ClusterError> {
    let topology = read_topology(node).await?;
    let own = node.address();
    let others = topology.nodes().into_iter().filter(|address| *address != own);
    Ok(others.map(|address| node.at(address)).collect::<Result<_, _>>()?)
}

/// A driver value as core's [`Reply`] (what the topology parser reads).
fn reply_of(value: Value) -> Reply {
    match value {
        Value::Int(n) => Reply::Int(n),
        Value::BulkString(bytes) => Reply::Bulk(bytes),
        Value::SimpleString(text) => Reply::Bulk(text.into_bytes()),
        Value::Okay => Reply::bulk("OK"),
        Value::Array(items) => Reply::Array(items.into_iter().map(reply_of).collect()),
        _ => Reply::Nil,
    }
}
