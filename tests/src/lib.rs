//! edgesync's end-to-end harness: real parts on 127.0.0.1, nothing mocked but the exchange.
//!
//! - [`admin`]: signed admin calls, made as the README tells an operator to.
//! - [`harness`]: [`harness::Stack`] starts redis-server, the gateway, the stand-in and the
//!   worker in workerd, and stops them all when dropped.
//! - [`inspector`]: a V8 inspector session with a worker's isolate: sampling CPU profiles.
//! - [`native_http`]: core's HTTP transport over a blocking native client.
//! - [`perf`]: workerd's CPU as `perf` samples it, inside the isolate and outside it.
//! - [`process`]: child processes in their own process groups, stopped on drop or signal.
//! - [`okx`]: OKX position objects as the seed bots cache them.
//! - [`suite`]: a libtest-compatible runner over one shared fixture.
//! - [`standin`]: the MEXC Spot v3 stand-in with signature checks and fault injection
//!   (binary `mexc-standin`).

pub mod admin;
pub mod cluster;
pub mod harness;
pub mod inspector;
pub mod native_http;
pub mod okx;
pub mod perf;
pub mod process;
pub mod standin;
pub mod suite;
pub mod tradingboost;
