//! edgesync-gateway: the Upstash Redis REST protocol in front of a self-hosted Redis — how a
//! user without Upstash runs the worker against their own Redis. Built to be put on a
//! network: no request can change what another sees ([`policy`]), administrative commands
//! are denied by default and tokens can be read-only, and it listens beyond loopback only
//! with TLS or by saying so ([`listen`]).
//!
//! - [`server`]: the protocol (`/`, `/pipeline`, `/multi-exec`, the path form, base64 and
//!   RESP2 responses), limits, health and the counters.
//! - [`tokens`]: which tokens are accepted, compared in constant time.
//! - [`policy`]: which commands run, where, for which token.
//! - [`acl`]: the Redis ACL user of each token, so Redis enforces the policy inside scripts.
//! - [`script_guard`]: scripts past `--max-script-ms` are ended from a connection of the
//!   gateway's own.
//! - [`subscribe`]: pub/sub as server-sent events, each subscriber on a connection of its own.
//! - [`shebang`]: Upstash's shebang flags Redis does not know, dropped, with the scripts'
//!   hashes mapped.
//! - [`cluster`]: a Redis Cluster behind the gateway: commands routed by their keys' slot,
//!   pipelines split by master, redirections followed, `SCAN` over every master.
//! - [`keys`]: which arguments of a command are keys (from Redis's `COMMAND`).
//! - [`redis_link`]: connections to Redis, reconnecting, each reply read through
//!   [`reply_limit`], which bounds a reply while it is read.
//! - [`listen`]: loopback, TLS or an explicit plain-text listener.
//! - [`encode`]: Redis values → Upstash response bodies.
//! - [`command`]: a request's arguments as the driver sends them.

pub mod acl;
pub mod cluster;
pub mod command;
pub mod encode;
pub mod keys;
pub mod listen;
pub mod policy;
pub mod redis_link;
pub mod reply_limit;
pub mod script_guard;
pub mod server;
pub mod shebang;
pub mod subscribe;
pub mod tokens;
