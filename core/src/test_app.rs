//! A whole [`App`] for unit tests: configuration from a list of variables, a fixed clock, the
//! memory store behind the tiers, and whichever HTTP client the test gives (a double standing
//! in for the exchange; the end-to-end suites run against the real runtime and stand-ins).

use std::sync::Arc;

use crate::api::flight::Flights;
use crate::clock::{FixedClock, ThreadSleep};
use crate::config::Config;
use crate::http::HttpClient;
use crate::store::memory::MemoryStore;
use crate::store::tiered::{Backing, IsolateCache, Tiered};
use crate::App;

/// The fixed time of every test app, ms since the epoch.
pub const NOW_MS: i64 = 1_700_000_000_000;

/// An HTTP client for tests that make no exchange call: every call fails.
pub struct NoNetwork;

#[async_trait::async_trait(?Send)]
impl HttpClient for NoNetwork {
    async fn send(
        &self,
        _: crate::http::HttpRequest,
    ) -> Result<crate::http::HttpResponse, crate::http::TransportError> {
        Err(crate::http::TransportError::Failed("no network in this test".into()))
    }
}

/// Builds the app from `vars` and runs `check` with it.
pub fn with_app<R>(vars: &[(&str, &str)], http: &dyn HttpClient, check: impl FnOnce(&App<'_>) -> R) -> R {
    let config = Config::from_lookup(|n| vars.iter().find(|(k, _)| *k == n).map(|(_, v)| v.to_string()))
        .unwrap_or_else(|e| panic!("test configuration: {e}"));
    let clock = Arc::new(FixedClock::at(NOW_MS));
    let store = MemoryStore::new(clock.clone(), 10_000);
    let memory = IsolateCache::new(config.tiers);
    let tiers = Tiered::new(&memory, Backing::Memory(&store), &*clock);
    let flights = Flights::default();
    let app = App {
        config: &config,
        store: &tiers,
        http,
        clock: &*clock,
        sleep: &ThreadSleep,
        flights: &flights,
        mexc_clock: &Default::default(),
        waiter: &crate::single_flight::Unbounded,
        page: &crate::api::page::PageAssets::NONE,
        health_report: &Default::default(),
    };
    check(&app)
}
