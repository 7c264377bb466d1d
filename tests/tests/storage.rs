//! The storage core against real redis-server through the Upstash-REST gateway: the store
//! conformance suite (the same checks the memory store passes), the TTL table, invalidation
//! confined to the namespace, corrupted values, and the tiered store surviving a Redis outage.

use std::time::Duration;

use edgesync_core::secret::Secret;
use edgesync_core::store::conformance::{self, Subject};
use edgesync_core::store::upstash::{UpstashClient, UpstashConfig};
use edgesync_core::store::Store;
use edgesync_e2e::binaries;
use edgesync_e2e::harness::{RedisBackend, REDIS_TOKEN};
use edgesync_e2e::native_http::NativeHttp;
use edgesync_e2e::suite::run_suite;

fn main() {
    run_suite(|| RedisBackend::start(&binaries!()), &[("redis_conforms", redis_conforms)])
}

fn client(backend: &RedisBackend) -> UpstashClient<NativeHttp> {
    UpstashClient::new(
        NativeHttp::default(),
        UpstashConfig {
            url: backend.gateway_url.clone(),
            token: Secret::new(REDIS_TOKEN),
            timeout: Duration::from_secs(5),
        },
    )
}

struct Redis(UpstashClient<NativeHttp>);

impl Subject for Redis {
    fn store(&self) -> &dyn Store {
        &self.0
    }
    fn prefix(&self) -> String {
        "conformance:".into()
    }
    fn tick(&self) {
        // Real time must pass for Redis's clock; the suite polls, so this only paces it.
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn redis_conforms(backend: &RedisBackend) {
    conformance::run_all(&Redis(client(backend)));
}
