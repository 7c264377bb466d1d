//! Core's HTTP transport over a blocking native client: the migrator's, reused so native
//! tests drive the very `UpstashClient` and `MexcClient` the worker uses, against real servers.

pub use edgesync_migrator::http::NativeHttp;
