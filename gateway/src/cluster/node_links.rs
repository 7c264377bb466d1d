//! One token's connections to a cluster's nodes: a [`Link`] per node, made on first use as
//! the token's ACL user at that node's address (the URL's password and TLS kept), each
//! reading its replies through the reply limit as every gateway connection does.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::redis_link::{Link, Provision, Target, TargetError};

/// One token's connections, one per node, made on first use.
pub(super) struct NodeLinks {
    /// The token's user at the `--redis-url` node; other nodes are the same user elsewhere.
    pub(super) user: Target,
    pub(super) provisioner: Option<Arc<dyn Provision>>,
    pub(super) reply_limit: usize,
    pub(super) response_timeout: Option<Duration>,
    pub(super) by_address: RwLock<HashMap<String, Arc<Link>>>,
}

impl NodeLinks {
    /// The link to the node at `address` (`host:port`).
    pub(super) fn at(&self, address: &str) -> Result<Arc<Link>, TargetError> {
        if let Some(link) = self.by_address.read().unwrap_or_else(|p| p.into_inner()).get(address) {
            return Ok(Arc::clone(link));
        }
        let target = self.user.at(address)?;
        let mut links = self.by_address.write().unwrap_or_else(|p| p.into_inner());
        let link = links.entry(address.to_owned()).or_insert_with(|| {
            Arc::new(
                Link::new(target, self.reply_limit, self.response_timeout).provisioned_by(self.provisioner.clone()),
            )
        });
        Ok(Arc::clone(link))
    }
}

/// A token's user, for the links of every node.
pub struct TokenUser {
    pub target: Target,
    pub provisioner: Option<Arc<dyn Provision>>,
}
