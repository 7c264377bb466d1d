//! The storage core against real redis-server through the Upstash-REST gateway: the store
//! conformance suite (the same checks the memory store passes), the TTL table, invalidation
//! confined to the namespace, unreadable values, eviction-risk stats, warming against the MEXC
//! stand-in, and the tiered store riding out a Redis outage.

use std::sync::Arc;
use std::time::Duration;

use edgesync_core::clock::{Backoff, FixedClock, SystemClock, ThreadSleep};
use edgesync_core::config::Config;
use edgesync_core::keys::{Exchange, KeySpace, Segment};
use edgesync_core::records::price::PriceRecord;
use edgesync_core::secret::Secret;
use edgesync_core::store::conformance::{self, Subject};
use edgesync_core::store::invalidate::{clear_all, clear_symbol, delete_pattern, Scope};
use edgesync_core::store::stats;
use edgesync_core::store::tiered::TierConfig;
use edgesync_core::store::tiered::{Backing, IsolateCache, ReadError, Tier, Tiered};
use edgesync_core::store::upstash::{ReadRetries, UpstashClient, UpstashConfig};
use edgesync_core::store::{Command, Store, StoreError};
use edgesync_core::ttl::DataClass;
use edgesync_core::warm::{warm, DEFAULT_CLASSES};
use edgesync_core::App;
use edgesync_e2e::binaries;
use edgesync_e2e::harness::{ExchangeStandin, RedisBackend, MEXC_API_KEY, MEXC_API_SECRET, REDIS_TOKEN};
use edgesync_e2e::native_http::NativeHttp;
use edgesync_e2e::suite::run_suite;
use futures_executor::block_on;
use serde_json::json;

struct Fixture {
    backend: RedisBackend,
    exchange: ExchangeStandin,
}

fn main() {
    run_suite(
        || {
            let bins = binaries!();
            Ok(Fixture { backend: RedisBackend::start(&bins)?, exchange: ExchangeStandin::start(&bins)? })
        },
        &[
            ("redis_conforms", redis_conforms),
            ("ttl_classes_through_the_gateway", ttl_classes_through_the_gateway),
            ("invalidation_leaves_foreign_keys_intact", invalidation_leaves_foreign_keys_intact),
            (
                "unreadable_values_keep_permanent_data_and_drop_cache",
                unreadable_values_keep_permanent_data_and_drop_cache,
            ),
            ("stats_flag_evictable_permanent_data", stats_flag_evictable_permanent_data),
            ("warming_fills_missing_and_skips_cached", warming_fills_missing_and_skips_cached),
            ("tiered_store_rides_out_a_redis_outage", tiered_store_rides_out_a_redis_outage),
            ("binary_values_survive_every_tier", binary_values_survive_every_tier),
        ],
    )
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

fn config(fixture: &Fixture, vars: &[(&str, &str)]) -> Result<Config, edgesync_core::config::ConfigError> {
    let base = [
        ("UPSTASH_REDIS_REST_URL", fixture.backend.gateway_url.as_str()),
        ("UPSTASH_REDIS_REST_TOKEN", REDIS_TOKEN),
        ("MEXC_BASE_URL", fixture.exchange.url.as_str()),
        ("MEXC_API_KEY", MEXC_API_KEY),
        ("MEXC_API_SECRET", MEXC_API_SECRET),
    ];
    Config::from_lookup(|name| vars.iter().chain(&base).find(|(n, _)| *n == name).map(|(_, v)| v.to_string()))
}

fn redis_get(fixture: &Fixture, key: &str) -> Option<String> {
    redis::cmd("GET").arg(key).query(&mut fixture.backend.redis()).unwrap()
}

fn redis_ttl(fixture: &Fixture, key: &str) -> i64 {
    redis::cmd("TTL").arg(key).query(&mut fixture.backend.redis()).unwrap()
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
        // Redis's clock is real: let 10 ms pass. The suite polls with a bound; this paces it.
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn redis_conforms(fixture: &Fixture) {
    conformance::run_all(&Redis(client(&fixture.backend)));
}

fn ttl_classes_through_the_gateway(fixture: &Fixture) {
    let store = client(&fixture.backend);
    let write_all = |config: &Config| {
        let symbol = Segment::new("symbol", "TTLUSDT").unwrap();
        let keys = &config.keys;
        let cases = [
            (keys.account(Exchange::Mexc, &config.account_id), DataClass::Account),
            (keys.price_latest(Exchange::Mexc, &symbol), DataClass::PriceLatest),
            (keys.price_cached(Exchange::Mexc, &symbol), DataClass::Price),
            (keys.ticker(Exchange::Mexc, &symbol), DataClass::Ticker),
            (keys.ohlcv(Exchange::Mexc, &symbol, &Segment::new("i", "1d").unwrap(), 10), DataClass::Ohlcv),
            (keys.deals(Exchange::Mexc, &symbol, 10), DataClass::Deals),
            (keys.orderbook(Exchange::Mexc, &symbol, 10), DataClass::Orderbook),
            (keys.sync_status("price"), DataClass::SyncStatus),
        ];
        for (key, class) in &cases {
            block_on(store.set(key, b"{}", config.ttl.ttl(*class))).unwrap();
        }
        cases
    };
    let defaults = config(fixture, &[]).unwrap();
    for (key, class) in write_all(&defaults) {
        let ttl = redis_ttl(fixture, &key);
        match defaults.ttl.ttl(class) {
            None => assert_eq!(ttl, -1, "{key} must be permanent"),
            Some(expected) => {
                let expected = expected.as_secs() as i64;
                assert!((expected - 1..=expected).contains(&ttl), "{key}: TTL {ttl}, expected {expected}");
            }
        }
    }
    let overridden = config(fixture, &[("REDIS_CACHE_TTL_TICKER", "42"), ("REDIS_CACHE_TTL_PRICE", "7")]).unwrap();
    write_all(&overridden);
    let symbol = Segment::new("symbol", "TTLUSDT").unwrap();
    assert!((41..=42).contains(&redis_ttl(fixture, &overridden.keys.ticker(Exchange::Mexc, &symbol))));
    assert!((6..=7).contains(&redis_ttl(fixture, &overridden.keys.price_cached(Exchange::Mexc, &symbol))));

    let bad = config(fixture, &[("REDIS_CACHE_TTL_DEALS", "ten")]).unwrap_err();
    assert_eq!(bad.variable, "REDIS_CACHE_TTL_DEALS");
    assert!(bad.to_string().contains("REDIS_CACHE_TTL_DEALS"));
    let permanent = config(fixture, &[("REDIS_CACHE_TTL_ACCOUNT", "120")]).unwrap_err();
    assert_eq!(permanent.variable, "REDIS_CACHE_TTL_ACCOUNT");
}

fn invalidation_leaves_foreign_keys_intact(fixture: &Fixture) {
    let store = client(&fixture.backend);
    let keys = KeySpace::new("inv").unwrap();
    let foreign = [
        "qrl:v1:ticker:mexc:QRLUSDT",
        "inv:v2:ticker:mexc:QRLUSDT",
        "inv:v10:ticker:mexc:QRLUSDT",
        "inv:v1",
        "invx:v1:ticker:mexc:QRLUSDT",
        "ticker:QRLUSDT",
        "QRLUSDT",
    ];
    let ours = ["inv:v1:ticker:mexc:QRLUSDT", "inv:v1:ticker:mexc:BTCUSDT", "inv:v1:price:mexc:QRLUSDT:cached"];
    let mut redis = fixture.backend.redis();
    let plant = |redis: &mut edgesync_e2e::harness::DirectRedis| {
        for key in foreign.iter().chain(&ours) {
            let _: () = redis::cmd("SET").arg(*key).arg("1").query(redis).unwrap();
        }
    };
    plant(&mut redis);
    let symbol = Segment::new("symbol", "QRLUSDT").unwrap();
    assert_eq!(block_on(clear_symbol(&store, &keys, &symbol, Scope::CacheOnly)).unwrap().deleted, 2);
    assert_eq!(redis_get(fixture, "inv:v1:ticker:mexc:BTCUSDT").as_deref(), Some("1"));
    for crafted in ["*", "ticker:*", "*:*", "\\*", "[a-z]*", "*]", "[^x]*", "?*"] {
        plant(&mut redis);
        block_on(delete_pattern(&store, &keys, crafted, Scope::IncludePermanent)).unwrap();
    }
    plant(&mut redis);
    let all = block_on(clear_all(&store, &keys, Scope::CacheOnly)).unwrap();
    assert_eq!(all.deleted, 3);
    for key in foreign {
        assert_eq!(redis_get(fixture, key).as_deref(), Some("1"), "{key} was deleted by an invalidation");
    }
    for key in ours {
        assert_eq!(redis_get(fixture, key), None);
    }
}

fn unreadable_values_keep_permanent_data_and_drop_cache(fixture: &Fixture) {
    let store = client(&fixture.backend);
    let latest = "qrl:v1:price:mexc:CORRUPTUSDT:latest";
    let cached = "qrl:v1:price:mexc:CORRUPTUSDT:cached";
    let broken = r#"{"symbol":"CORRUPTUSDT","price":"#;
    let mut redis = fixture.backend.redis();
    let _: () = redis::cmd("SET").arg(latest).arg(broken).query(&mut redis).unwrap();
    let _: () = redis::cmd("SET").arg(cached).arg(broken).arg("EX").arg(30).query(&mut redis).unwrap();
    let memory = IsolateCache::new(TierConfig::default());
    let tiered = Tiered::new(&memory, Backing::redis(&store), &SystemClock);
    let error = block_on(tiered.read_json::<PriceRecord>(latest, DataClass::PriceLatest)).unwrap_err();
    assert!(matches!(&error, ReadError::Unreadable(u) if u.key == latest), "{error}");
    assert_eq!(redis_get(fixture, latest).as_deref(), Some(broken), "a permanent value is left as it is");
    assert_eq!(redis_ttl(fixture, latest), -1);
    assert_eq!(block_on(tiered.read_json::<PriceRecord>(cached, DataClass::Price)).unwrap(), None);
    assert_eq!(redis_get(fixture, cached), None, "a cache value is discarded");
    let stats = memory.stats();
    assert_eq!((stats.unreadable["price_latest"], stats.discarded["price"]), (1, 1));
}

fn stats_flag_evictable_permanent_data(fixture: &Fixture) {
    let store = client(&fixture.backend);
    let keys = KeySpace::new("statsns").unwrap();
    let mut redis = fixture.backend.redis();
    let set_policy = |redis: &mut edgesync_e2e::harness::DirectRedis, policy: &str| {
        let _: () = redis::cmd("CONFIG").arg("SET").arg("maxmemory-policy").arg(policy).query(redis).unwrap();
    };
    let _: () = redis::cmd("SET").arg("statsns:v1:account:mexc:main").arg("{}").query(&mut redis).unwrap();
    let _: () =
        redis::cmd("SET").arg("statsns:v1:ticker:mexc:QRLUSDT").arg("{}").arg("EX").arg(5).query(&mut redis).unwrap();
    set_policy(&mut redis, "allkeys-lru");
    let risky = block_on(stats::collect(&store, &keys, None)).unwrap();
    set_policy(&mut redis, "volatile-lru");
    let safe = block_on(stats::collect(&store, &keys, None)).unwrap();
    set_policy(&mut redis, "noeviction");
    assert_eq!((risky.namespace_keys, risky.permanent_keys), (2, 1));
    assert_eq!(risky.maxmemory_policy.as_deref(), Some("allkeys-lru"));
    assert!(risky.eviction_risk.as_deref().is_some_and(|r| r.contains("allkeys-lru")), "{risky:?}");
    assert!(risky.total_keys >= 2 && risky.used_memory_bytes.is_some() && risky.evicted_keys.is_some());
    assert_eq!(safe.eviction_risk, None);
}

fn warming_fills_missing_and_skips_cached(fixture: &Fixture) {
    fixture.exchange.reset();
    let config = config(fixture, &[("SYMBOLS", "QRLUSDT,BTCUSDT"), ("REDIS_NAMESPACE", "warm")]).unwrap();
    let store = client(&fixture.backend);
    let memory = IsolateCache::new(config.tiers);
    let tiered = Tiered::new(&memory, Backing::redis(&store), &SystemClock);
    let app = App {
        config: &config,
        store: &tiered,
        http: &NativeHttp::default(),
        clock: &SystemClock,
        sleep: &ThreadSleep,
        flights: &Default::default(),
        mexc_clock: &Default::default(),
        waiter: &edgesync_core::single_flight::Unbounded,
        page: &edgesync_core::api::page::PageAssets::NONE,
        health_report: &Default::default(),
    };
    block_on(clear_all(&store, &config.keys, Scope::IncludePermanent)).unwrap();
    let qrl = Segment::new("symbol", "QRLUSDT").unwrap();
    let cached_ticker = config.keys.ticker(Exchange::Mexc, &qrl);
    block_on(store.set(&cached_ticker, b"{\"cached\":true}", Some(Duration::from_secs(5)))).unwrap();

    let report = block_on(warm(&app, &DEFAULT_CLASSES)).unwrap();
    assert_eq!((report.success, report.failed, report.skipped), (7, 0, 1), "{report:?}");
    assert_eq!(
        redis_get(fixture, &cached_ticker).as_deref(),
        Some("{\"cached\":true}"),
        "cached data is not refetched"
    );
    let btc = Segment::new("symbol", "BTCUSDT").unwrap();
    let ticker = redis_get(fixture, &config.keys.ticker(Exchange::Mexc, &btc)).expect("ticker warmed");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&ticker).unwrap()["symbol"], "BTCUSDT");
    assert!((4..=5).contains(&redis_ttl(fixture, &config.keys.ticker(Exchange::Mexc, &btc))));
    assert_eq!(fixture.exchange.requests()["total"], 7);

    // Everything cached now: a second run fetches nothing.
    let again = block_on(warm(&app, &DEFAULT_CLASSES)).unwrap();
    assert_eq!((again.success, again.failed, again.skipped), (0, 0, 8));

    // A failing endpoint is reported, the rest still warms.
    block_on(clear_all(&store, &config.keys, Scope::IncludePermanent)).unwrap();
    fixture.exchange.inject_fault(&json!({"kind": "server_error", "path": "/api/v3/depth", "times": 10}));
    let partial = block_on(warm(&app, &DEFAULT_CLASSES)).unwrap();
    assert_eq!((partial.success, partial.failed, partial.skipped), (6, 2, 0), "{partial:?}");
    assert!(partial.errors.iter().all(|e| e.contains("orderbook")), "{:?}", partial.errors);
    fixture.exchange.reset();
}

fn tiered_store_rides_out_a_redis_outage(fixture: &Fixture) {
    let clock = Arc::new(FixedClock::at(1_800_000_000_000));
    let memory = IsolateCache::new(TierConfig {
        memory_fresh_for: Duration::from_secs(2),
        memory_max_entries: 1000,
        stale_grace: Duration::from_secs(600),
    });
    let store = client(&fixture.backend).with_read_retries(ReadRetries {
        sleep: Box::new(ThreadSleep),
        retries: 1,
        backoff: Backoff { base: Duration::from_millis(10), cap: Duration::from_millis(50) },
    });
    let tiered = Tiered::new(&memory, Backing::redis(&store), &*clock);
    let key = "qrl:v1:price:mexc:OUTAGEUSDT:latest";
    block_on(tiered.set(key, b"before", None)).unwrap();
    clock.advance_ms(3_000);
    assert_eq!(block_on(tiered.read(key, DataClass::PriceLatest)).unwrap().unwrap().tier, Tier::Redis);

    fixture.backend.stop_redis();
    clock.advance_ms(3_000);
    let stale = block_on(tiered.read(key, DataClass::PriceLatest)).unwrap().expect("L1 answers while Redis is down");
    assert_eq!((stale.tier, stale.value.as_slice(), stale.age_ms), (Tier::MemoryStale, b"before".as_slice(), 3_000));
    let write = block_on(tiered.set(key, b"during", None));
    assert!(matches!(write, Err(StoreError::Unavailable(_))), "the failed write is reported: {write:?}");
    let never_cached = block_on(tiered.read("qrl:v1:price:mexc:NEVERUSDT:latest", DataClass::PriceLatest));
    assert!(never_cached.is_err(), "nothing to serve: the error surfaces");

    fixture.backend.restart_redis().unwrap();
    // The gateway reconnects on its own; poll with a deadline until a write lands.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while block_on(tiered.set(key, b"after", None)).is_err() {
        assert!(std::time::Instant::now() < deadline, "writes never reached Redis again");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(redis_get(fixture, key).as_deref(), Some("after"));
    assert_eq!(redis_ttl(fixture, key), -1);
    clock.advance_ms(3_000);
    let back = block_on(tiered.read(key, DataClass::PriceLatest)).unwrap().unwrap();
    assert_eq!((back.tier, back.value.as_slice()), (Tier::Redis, b"after".as_slice()));
    let _ = block_on(store.execute(&Command::new("PING")));
}

/// Every byte value, written through the tiers and the Upstash client (alone and inside a
/// pipeline, with a TTL), comes back byte-identical from redis-server itself, through the
/// gateway, and from the isolate cache.
fn binary_values_survive_every_tier(fixture: &Fixture) {
    let all: Vec<u8> = (0..=255).collect();
    let store = client(&fixture.backend);
    let memory = IsolateCache::new(TierConfig::default());
    let tiered = Tiered::new(&memory, Backing::redis(&store), &SystemClock);
    block_on(tiered.set("bin:alone", &all, None)).unwrap();
    let commands = [
        Command::set("bin:text", b"plain", None),
        Command::set("bin:piped", &all, Some(Duration::from_secs(60))),
        Command::new("GET").arg("bin:piped"),
    ];
    let replies = block_on(tiered.pipeline(&commands)).unwrap();
    assert_eq!(replies[2], Ok(edgesync_core::store::Reply::Bulk(all.clone())), "order kept around the binary SET");
    let mut redis = fixture.backend.redis();
    for key in ["bin:alone", "bin:piped"] {
        let stored: Vec<u8> = redis::cmd("GET").arg(key).query(&mut redis).unwrap();
        assert_eq!(stored, all, "{key} in redis-server");
        assert_eq!(block_on(store.get(key)).unwrap(), Some(all.clone()), "{key} through the gateway");
        let read = block_on(tiered.read(key, DataClass::Raw)).unwrap().unwrap();
        assert_eq!((read.value, read.tier), (all.clone(), Tier::L1), "{key} from the isolate cache");
    }
    assert!((55..=60).contains(&redis_ttl(fixture, "bin:piped")));
    let refused = block_on(store.transaction(&[Command::set("bin:tx", &all, None)])).unwrap_err();
    assert!(refused.to_string().contains("not UTF-8"), "{refused}");
    assert_eq!(redis_get(fixture, "bin:tx"), None);
}
