//! edgesync-gateway: the Upstash Redis REST protocol in front of a self-hosted Redis — how a
//! user without Upstash runs the worker against their own Redis. Built to be put on a
//! network: no request can change what another sees ([`policy`]), administrative commands
//! are denied by default and tokens can be read-only, and it listens beyond loopback only
//! with TLS or by saying so ([`listen`]).
//!
//! - [`server`]: the protocol (`/`, `/pipeline`, `/multi-exec`, the path form, base64 and
//!   RESP2 responses), tokens, limits and the counters.
//! - [`policy`]: which commands run, where, for which token.
//! - [`listen`]: loopback, TLS or an explicit plain-text listener.
//! - [`encode`]: Redis values → Upstash response bodies.

pub mod encode;
pub mod listen;
pub mod policy;
pub mod server;
