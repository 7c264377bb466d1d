//! A Redis Cluster's shape as one node describes it: which master serves each hash slot, and
//! the masters in a stable order (by the first slot each serves) so a scan can walk them one
//! after the other. Read from `CLUSTER SLOTS`, which every Redis Cluster version answers;
//! replicas are listed there but never used: the migrator and the gateway read and write masters
//! only (the gateway lists every node, replicas too, to give each the same ACL users).

use crate::store::Reply;

use super::slot::SLOTS;

/// A master and the slot ranges it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Master {
    /// `host:port`, as the cluster announces it.
    pub address: String,
    pub ranges: Vec<(u16, u16)>,
    /// Its replicas' `host:port`, as `CLUSTER SLOTS` lists them.
    pub replicas: Vec<String>,
}

impl Master {
    fn first_slot(&self) -> u16 {
        self.ranges.iter().map(|(from, _)| *from).min().unwrap_or(SLOTS)
    }
}

/// Which master serves each slot.
#[derive(Debug, Clone)]
pub struct Topology {
    /// Sorted by the first slot each serves.
    pub masters: Vec<Master>,
    /// Per slot, the index of its master in `masters`.
    owner: Vec<u16>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TopologyError {
    #[error("CLUSTER SLOTS answered something unexpected: {0}")]
    Unexpected(String),
    #[error("cannot read the cluster's topology (CLUSTER SLOTS): {0}")]
    Unreadable(String),
    #[error("the cluster does not serve every slot ({missing} of 16384 have no master, the first {first}): fix the cluster (`redis-cli --cluster check`) and run again")]
    Incomplete { missing: usize, first: u16 },
}

impl Topology {
    /// Reads the answer of `CLUSTER SLOTS`: `[[from, to, [host, port, id…], replica…]…]`.
    pub fn from_cluster_slots(reply: Reply) -> Result<Self, TopologyError> {
        let unexpected = |what: &str| TopologyError::Unexpected(what.to_owned());
        let Reply::Array(ranges) = reply else { return Err(unexpected("not an array")) };
        let mut masters: Vec<Master> = Vec::new();
        for range in ranges {
            let Reply::Array(parts) = range else { return Err(unexpected("a range is not an array")) };
            let mut parts = parts.into_iter();
            let (Some(Reply::Int(from)), Some(Reply::Int(to)), Some(Reply::Array(node))) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(unexpected("a range lacks its slots or its master"));
            };
            let mut node = node.into_iter();
            let (Some(host), Some(Reply::Int(port))) = (node.next(), node.next()) else {
                return Err(unexpected("a master lacks its host or port"));
            };
            let host = host.into_string().map_err(|e| unexpected(&e.to_string()))?;
            let replicas: Vec<String> = parts
                .filter_map(|replica| match replica {
                    Reply::Array(node) => match (node.first(), node.get(1)) {
                        (Some(Reply::Bulk(host)), Some(Reply::Int(port))) => {
                            Some(address_of(&String::from_utf8_lossy(host), *port))
                        }
                        _ => None,
                    },
                    _ => None,
                })
                .collect();
            let slots = |n: i64| u16::try_from(n).ok().filter(|slot| *slot < SLOTS);
            let (Some(from), Some(to)) = (slots(from), slots(to)) else {
                return Err(unexpected("a slot outside 0-16383"));
            };
            let address = address_of(&host, port);
            match masters.iter_mut().find(|m| m.address == address) {
                Some(master) => {
                    master.ranges.push((from, to));
                    for replica in replicas {
                        if !master.replicas.contains(&replica) {
                            master.replicas.push(replica);
                        }
                    }
                }
                None => masters.push(Master { address, ranges: vec![(from, to)], replicas }),
            }
        }
        masters.sort_by_key(Master::first_slot);
        let mut owner = vec![u16::MAX; usize::from(SLOTS)];
        for (index, master) in masters.iter().enumerate() {
            for &(from, to) in &master.ranges {
                owner[usize::from(from)..=usize::from(to)].fill(index as u16);
            }
        }
        let missing = owner.iter().filter(|o| **o == u16::MAX).count();
        if missing > 0 {
            let first = owner.iter().position(|o| *o == u16::MAX).unwrap_or(0) as u16;
            return Err(TopologyError::Incomplete { missing, first });
        }
        Ok(Self { masters, owner })
    }

    /// The address of the master serving `slot`.
    pub fn master_of(&self, slot: u16) -> &str {
        &self.masters[usize::from(self.owner[usize::from(slot)])].address
    }

    /// Every node `CLUSTER SLOTS` named, once each, masters first, then replicas.
    pub fn nodes(&self) -> Vec<&str> {
        let masters = self.masters.iter().map(|m| m.address.as_str());
        let replicas = self.masters.iter().flat_map(|m| m.replicas.iter().map(String::as_str));
        let mut nodes: Vec<&str> = Vec::new();
        for node in masters.chain(replicas) {
            if !nodes.contains(&node) {
                nodes.push(node);
            }
        }
        nodes
    }

    /// The place of the master at `address` in [`Topology::masters`].
    pub fn master_index(&self, address: &str) -> Option<usize> {
        self.masters.iter().position(|m| m.address == address)
    }

    /// The slot ranges the master at `address` serves, in order.
    pub fn slots_of(&self, address: &str) -> Vec<(u16, u16)> {
        let mut ranges: Vec<(u16, u16)> =
            self.masters.iter().filter(|m| m.address == address).flat_map(|m| m.ranges.iter().copied()).collect();
        ranges.sort_unstable();
        ranges
    }

    /// Notes that `slot` is now served by `address` (a `MOVED` answer), until the next refresh.
    pub fn moved(&mut self, slot: u16, address: &str) {
        let index = match self.masters.iter().position(|m| m.address == address) {
            Some(index) => index,
            None => {
                self.masters.push(Master { address: address.to_owned(), ranges: Vec::new(), replicas: Vec::new() });
                self.masters.len() - 1
            }
        };
        self.owner[usize::from(slot)] = index as u16;
    }
}

/// `host:port`; an IPv6 address is bracketed, so `host:port` splits at the last colon.
fn address_of(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(host: &str, port: i64) -> Reply {
        Reply::Array(vec![Reply::bulk(host), Reply::Int(port), Reply::bulk("id")])
    }

    fn range(from: i64, to: i64, master: Reply) -> Reply {
        Reply::Array(vec![Reply::Int(from), Reply::Int(to), master, node("127.0.0.1", 7999)])
    }

    #[test]
    fn masters_come_in_slot_order_with_every_slot_owned() {
        let reply = Reply::Array(vec![
            range(10923, 16383, node("127.0.0.1", 7003)),
            range(0, 5460, node("127.0.0.1", 7001)),
            range(5461, 10922, node("127.0.0.1", 7002)),
        ]);
        let topology = Topology::from_cluster_slots(reply).unwrap();
        let addresses: Vec<_> = topology.masters.iter().map(|m| m.address.as_str()).collect();
        assert_eq!(addresses, ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"]);
        assert_eq!(topology.master_of(0), "127.0.0.1:7001");
        assert_eq!(topology.master_of(5461), "127.0.0.1:7002");
        assert_eq!(topology.master_of(16383), "127.0.0.1:7003");
        assert_eq!(topology.masters[0].replicas, ["127.0.0.1:7999"]);
        assert_eq!(topology.nodes(), ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003", "127.0.0.1:7999"]);
    }

    #[test]
    fn a_slot_without_a_master_is_refused_with_a_sentence() {
        let reply = Reply::Array(vec![range(0, 5460, node("127.0.0.1", 7001))]);
        let error = Topology::from_cluster_slots(reply).unwrap_err();
        assert_eq!(error, TopologyError::Incomplete { missing: 16384 - 5461, first: 5461 });
        assert!(error.to_string().contains("does not serve every slot"));
    }

    #[test]
    fn a_moved_slot_is_served_by_its_new_master() {
        let reply = Reply::Array(vec![range(0, 16383, node("127.0.0.1", 7001))]);
        let mut topology = Topology::from_cluster_slots(reply).unwrap();
        topology.moved(42, "127.0.0.1:7002");
        assert_eq!(topology.master_of(42), "127.0.0.1:7002");
        assert_eq!(topology.master_of(43), "127.0.0.1:7001");
    }
}
