//! Builds core's services for one invocation from the worker's `Env`: the parsed config, the
//! store tier (Upstash REST over `Fetch` when configured, else the isolate's memory store)
//! and the clock (`Date.now()`, since `SystemTime` panics on wasm).

use std::sync::{Arc, OnceLock};

use edgesync_core::api::{ApiError, ApiResponse};
use edgesync_core::clock::Clock;
use edgesync_core::config::{Config, ConfigError};
use edgesync_core::store::memory::MemoryStore;
use edgesync_core::store::upstash::UpstashClient;
use edgesync_core::store::Store;
use edgesync_core::App;
use worker::Env;

use crate::fetch_client::FetchClient;

/// `Date.now()`: the only wall clock on wasm32-unknown-unknown.
struct WorkerClock;

impl Clock for WorkerClock {
    fn now_ms(&self) -> i64 {
        worker::Date::now().as_millis() as i64
    }
}

/// The isolate's memory store. It outlives requests on purpose: that is what lets it answer
/// when no Redis is configured (and, later, when Redis is down).
fn memory_store() -> &'static MemoryStore {
    static MEMORY: OnceLock<MemoryStore> = OnceLock::new();
    MEMORY.get_or_init(|| MemoryStore::new(Arc::new(WorkerClock), edgesync_core::store::memory::DEFAULT_MAX_ENTRIES))
}

enum Tier {
    Redis(UpstashClient<FetchClient>),
    Memory(&'static MemoryStore),
}

pub struct Runtime {
    config: Config,
    tier: Tier,
}

impl Runtime {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let config = Config::from_lookup(|name| env.var(name).ok().map(|value| value.to_string()))?;
        let tier = match &config.redis {
            Some(redis) => Tier::Redis(UpstashClient::new(FetchClient, redis.clone())),
            None => Tier::Memory(memory_store()),
        };
        Ok(Self { config, tier })
    }

    pub fn app(&self) -> App<'_> {
        let store: &dyn Store = match &self.tier {
            Tier::Redis(client) => client,
            Tier::Memory(memory) => *memory,
        };
        App { config: &self.config, store, http: &FetchClient, clock: &WorkerClock }
    }
}

/// A misconfigured deployment answers every request with a 500 naming the variable.
pub fn config_error_response(error: &ConfigError) -> ApiResponse {
    ApiError::new(500, "config_error", error.to_string()).into_response()
}
