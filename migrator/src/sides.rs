//! Where a run reads its sources and where their targets live: the same Redis (the usual
//! case, in place or under a new prefix), or another one (`--target-url`: standardizing while
//! moving a bot's data into Upstash or onto a cluster). Reads of sources go to `source`; reads
//! of targets and index sets — to classify, verify or restore — go to `target`.

use edgesync_core::store::Store;

#[derive(Clone, Copy)]
pub struct Sides<'a> {
    pub source: &'a dyn Store,
    pub target: &'a dyn Store,
}

impl<'a> Sides<'a> {
    /// Sources and targets in one Redis.
    pub fn same(store: &'a dyn Store) -> Self {
        Self { source: store, target: store }
    }

    /// Whether targets live in another Redis than their sources.
    pub fn separate(&self) -> bool {
        !std::ptr::addr_eq(self.source as *const dyn Store, self.target as *const dyn Store)
    }

    /// Targets in `target` when there is one, else beside the sources.
    pub fn with_target(source: &'a dyn Store, target: Option<&'a dyn Store>) -> Self {
        Self { source, target: target.unwrap_or(source) }
    }
}
