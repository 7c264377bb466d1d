//! Builds core's services for one invocation from the worker's `Env`: the config (parsed once
//! per isolate, and again only if the runtime hands over another `Env`), the
//! tiers (the isolate's memory tier in front of Upstash REST over `Fetch`, or the isolate's
//! memory store alone when no Redis is configured), the clock (`Date.now()`, since
//! `SystemTime` panics on wasm), the timer for retry backoff (`Delay`) and the event log
//! (`console.warn`, one JSON line per event).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use edgesync_core::api::flight::Flights;
use edgesync_core::api::health::kept::KeptReport;
use edgesync_core::api::{ApiError, ApiResponse};
use edgesync_core::clock::{Backoff, Clock, Sleep};
use edgesync_core::config::{Config, ConfigError};
use edgesync_core::exchange::clock_offset::ClockOffset;
use edgesync_core::log::EventLog;
use edgesync_core::store::durable::client::Keeps;
use edgesync_core::store::durable::DurableStore;
use edgesync_core::store::memory::MemoryStore;
use edgesync_core::store::tiered::{Backing, IsolateCache, Tiered};
use edgesync_core::store::upstash::{ReadRetries, UpstashClient};
use edgesync_core::App;
use worker::Env;

use crate::durable_transport::ObjectTransport;
use crate::fetch_client::FetchClient;
use crate::waiter::WorkerWaiter;

/// `Date.now()`: the only wall clock on wasm32-unknown-unknown.
pub struct WorkerClock;

impl Clock for WorkerClock {
    fn now_ms(&self) -> i64 {
        worker::Date::now().as_millis() as i64
    }
}

/// Events go to the console as one JSON line each (Workers Logs / `wrangler tail`).
pub(crate) struct ConsoleLog;

impl EventLog for ConsoleLog {
    fn warn(&self, event: &serde_json::Value) {
        worker::console_warn!("{event}");
    }
}

/// Backoff waits on the Workers runtime's timer.
struct WorkerSleep;

#[async_trait(?Send)]
impl Sleep for WorkerSleep {
    async fn sleep(&self, duration: Duration) {
        worker::Delay::from(duration).await;
    }
}

/// The isolate's memory tier. It outlives requests on purpose: that is what lets it answer
/// while Redis is down. Sized by the first request's config (config is fixed per deployment).
fn memory_tier(config: &Config) -> &'static IsolateCache {
    static TIER: OnceLock<IsolateCache> = OnceLock::new();
    TIER.get_or_init(|| IsolateCache::new(config.tiers))
}

/// The isolate's in-flight exchange calls (single-flight of read-through misses).
fn flights() -> &'static Flights {
    static FLIGHTS: OnceLock<Flights> = OnceLock::new();
    FLIGHTS.get_or_init(Flights::default)
}

/// The isolate's health report, kept for the fresh window and forgotten by a cron run.
fn health_report() -> &'static KeptReport {
    static REPORT: OnceLock<KeptReport> = OnceLock::new();
    REPORT.get_or_init(KeptReport::default)
}

/// The isolate's measurement of MEXC's clock offset.
fn mexc_clock() -> &'static ClockOffset {
    static OFFSET: OnceLock<ClockOffset> = OnceLock::new();
    OFFSET.get_or_init(ClockOffset::default)
}

/// The isolate's memory store, the whole store when no Redis is configured.
fn memory_store(config: &Config) -> &'static MemoryStore {
    static STORE: OnceLock<MemoryStore> = OnceLock::new();
    STORE.get_or_init(|| MemoryStore::new(Arc::new(WorkerClock), config.tiers.memory_max_entries))
}

thread_local! {
    /// The config parsed from the `Env` it came from. An isolate is one thread and its `Env`
    /// is one object for its lifetime, so this parses once; another `Env` parses again.
    static CONFIG: RefCell<Option<(worker::wasm_bindgen::JsValue, Rc<Config>)>> = const { RefCell::new(None) };
}

fn config(env: &Env) -> Result<Rc<Config>, ConfigError> {
    let env_value: &worker::wasm_bindgen::JsValue = env.as_ref();
    let known = CONFIG.with(|slot| {
        slot.borrow()
            .as_ref()
            .filter(|(seen, _)| worker::js_sys::Object::is(seen, env_value))
            .map(|(_, config)| config.clone())
    });
    if let Some(config) = known {
        return Ok(config);
    }
    let config = Rc::new(Config::from_lookup(|name| env.var(name).ok().map(|value| value.to_string()))?);
    CONFIG.with(|slot| *slot.borrow_mut() = Some((env_value.clone(), config.clone())));
    Ok(config)
}

pub struct Runtime {
    config: Rc<Config>,
    redis: Option<UpstashClient<FetchClient>>,
    /// The namespace's durable copy, when enabled and bound.
    durable: Option<DurableStore>,
}

impl Runtime {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let config = config(env)?;
        let redis = config.redis.clone().map(|redis| {
            UpstashClient::new(FetchClient, redis).with_read_retries(ReadRetries {
                sleep: Box::new(WorkerSleep),
                retries: 2,
                backoff: Backoff { base: Duration::from_millis(50), cap: Duration::from_millis(400) },
            })
        });
        let durable =
            config.durable.enabled.then(|| ObjectTransport::for_namespace(env, config.keys.namespace())).flatten().map(
                |transport| {
                    let keys = config.keys.clone();
                    let keeps: Keeps =
                        Box::new(move |key| keys.classify(key).is_some_and(|class| class.is_permanent()));
                    DurableStore::new(Box::new(transport), keeps)
                },
            );
        Ok(Self { config, redis, durable })
    }

    /// The tiers for this invocation.
    pub fn tiers(&self) -> Tiered<'_> {
        let memory = memory_tier(&self.config);
        let tiers = match (&self.redis, &self.config.redis, &self.durable) {
            (Some(redis), Some(settings), durable) => {
                let backing = Backing::Redis { redis, durable: durable.as_ref() };
                Tiered::new(memory, backing, &WorkerClock).with_waiter(&WorkerWaiter, settings.timeout)
            }
            (_, _, Some(durable)) => Tiered::new(memory, Backing::Durable(durable), &WorkerClock),
            _ => Tiered::new(memory, Backing::Memory(memory_store(&self.config)), &WorkerClock),
        };
        tiers.with_log(&ConsoleLog)
    }

    pub fn app<'a>(&'a self, tiers: &'a Tiered<'a>) -> App<'a> {
        App {
            config: &self.config,
            store: tiers,
            http: &FetchClient,
            clock: &WorkerClock,
            sleep: &WorkerSleep,
            flights: flights(),
            mexc_clock: mexc_clock(),
            waiter: &WorkerWaiter,
            page: &crate::page::ASSETS,
            health_report: health_report(),
        }
    }
}

/// A misconfigured deployment answers every request with a 500 naming the variable.
pub fn config_error_response(error: &ConfigError) -> ApiResponse {
    ApiError::new(500, "config_error", error.to_string()).into_response()
}
