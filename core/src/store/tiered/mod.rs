//! The tiered store: the isolate's own cache (L1) in front of Redis (L2, the source of
//! truth), with the durable copy last — or, with no Redis configured, in front of the store
//! the worker runs on alone. Three concepts, one file each:
//!
//! - [`cache`]: [`IsolateCache`], what this isolate remembers of each key and its counters
//!   ([`TierStats`]); it outlives requests.
//! - [`read`]: what a read answers: [`Read`] and the [`Tier`] that served it, or
//!   [`ReadError`] ([`Unreadable`] when a value is there but not what its reader needs).
//! - [`policy`]: [`Tiered`], one request's view of the tiers over a [`Backing`]: which tier
//!   answers a read, where a write goes, what a read may never do to permanent data, and
//!   where the durable copy stands in for Redis.

mod cache;
mod policy;
mod read;
#[cfg(test)]
mod tests;

pub use cache::{ClassCounters, IsolateCache, TierConfig, TierStats};
pub use policy::{Backing, Tiered, Written};
pub use read::{Read, ReadError, Tier, Unreadable};
