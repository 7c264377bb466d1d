//! Configuration, parsed once at the edge into a typed [`Config`]; nothing else in the code
//! reads the environment. Every invalid value is an error naming its variable, so a bad
//! deployment fails loudly at the first request instead of misbehaving quietly.

use std::time::Duration;

pub use crate::env::ConfigError;
use crate::env::{positive_int, whole_number};
use crate::exchange::{validate_symbol, ExchangeConfig, MEXC_BASE_URL};
use crate::keys::{KeyError, KeySpace, Segment, DEFAULT_NAMESPACE};
use crate::market::ReadThroughConfig;
use crate::secret::Secret;
use crate::store::durable::DurableConfig;
use crate::store::tiered::TierConfig;
use crate::store::upstash::UpstashConfig;
use crate::sync::settings::SyncConfig;
use crate::ttl::TtlTable;

#[derive(Debug, Clone)]
pub struct Config {
    pub keys: KeySpace,
    /// `SYMBOLS`: comma-separated, as the exchange spells them (default `QRLUSDT`).
    pub symbols: Vec<Segment>,
    /// `ACCOUNT_ID`: the account segment of account, position and cost keys (default `main`).
    pub account_id: Segment,
    pub exchange: ExchangeConfig,
    /// `UPSTASH_REDIS_REST_URL` + `UPSTASH_REDIS_REST_TOKEN`; `None` runs on memory alone.
    pub redis: Option<UpstashConfig>,
    /// `READ_TOKEN`: bearer token of the private routes; unset disables them.
    pub read_token: Option<Secret>,
    /// `ADMIN_SECRET`: HMAC key of the admin routes; unset disables them.
    pub admin_secret: Option<Secret>,
    /// The `REDIS_CACHE_TTL*` table.
    pub ttl: TtlTable,
    pub tiers: TierConfig,
    /// `HISTORY_LIMIT`: entries kept in each history sorted set (default 1000).
    pub history_limit: usize,
    pub sync: SyncConfig,
    /// `ADMIN_WINDOW_SECONDS` (default 300, at most 3600): how far an admin request's
    /// timestamp may be from now.
    pub admin_window: Duration,
    pub read_through: ReadThroughConfig,
    pub durable: DurableConfig,
}

/// Default bound on one outbound HTTP request (Redis or exchange).
const DEFAULT_HTTP_TIMEOUT_MS: u64 = 5_000;

impl Config {
    /// Parses configuration from a variable lookup (the worker's `Env`, a map in tests).
    /// Empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());

        let namespace = get("REDIS_NAMESPACE").unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
        let keys = KeySpace::new(&namespace).map_err(|e| key_error("REDIS_NAMESPACE", e))?;

        let symbols = get("SYMBOLS")
            .unwrap_or_else(|| "QRLUSDT".to_owned())
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| validate_symbol(s).map_err(|reason| ConfigError::new("SYMBOLS", reason)))
            .collect::<Result<Vec<_>, _>>()?;
        if symbols.is_empty() {
            return Err(ConfigError::new("SYMBOLS", "no symbol given"));
        }

        let account_id = Segment::new("account id", &get("ACCOUNT_ID").unwrap_or_else(|| "main".to_owned()))
            .map_err(|e| key_error("ACCOUNT_ID", e))?;

        let http_timeout = Duration::from_millis(positive_int(&get, "HTTP_TIMEOUT_MS", DEFAULT_HTTP_TIMEOUT_MS)?);

        let base_url = get("MEXC_BASE_URL").unwrap_or_else(|| MEXC_BASE_URL.to_owned());
        if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
            return Err(ConfigError::new("MEXC_BASE_URL", "must be an http(s) URL"));
        }
        let recv_window_ms = positive_int(&get, "MEXC_RECV_WINDOW_MS", 5_000)?;
        if recv_window_ms > 60_000 {
            return Err(ConfigError::new("MEXC_RECV_WINDOW_MS", "MEXC accepts at most 60000"));
        }
        let exchange = ExchangeConfig {
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key: get("MEXC_API_KEY").map(Secret::new),
            api_secret: get("MEXC_API_SECRET").map(Secret::new),
            recv_window_ms,
            timeout: http_timeout,
        };

        let redis = match (get("UPSTASH_REDIS_REST_URL"), get("UPSTASH_REDIS_REST_TOKEN")) {
            (None, None) => None,
            (Some(url), Some(token)) => {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(ConfigError::new("UPSTASH_REDIS_REST_URL", "must be an http(s) URL"));
                }
                Some(UpstashConfig { url, token: Secret::new(token), timeout: http_timeout })
            }
            (Some(_), None) => {
                return Err(ConfigError::new("UPSTASH_REDIS_REST_TOKEN", "missing while the URL is set"))
            }
            (None, Some(_)) => {
                return Err(ConfigError::new("UPSTASH_REDIS_REST_URL", "missing while the token is set"))
            }
        };

        let defaults = TierConfig::default();
        let tiers = TierConfig {
            memory_fresh_for: Duration::from_secs(whole_number(
                &get,
                "MEMORY_TIER_TTL",
                defaults.memory_fresh_for.as_secs(),
            )?),
            memory_max_entries: positive_int(&get, "MEMORY_TIER_MAX_ENTRIES", defaults.memory_max_entries as u64)?
                as usize,
            stale_grace: Duration::from_secs(positive_int(
                &get,
                "STALE_GRACE_SECONDS",
                defaults.stale_grace.as_secs(),
            )?),
        };

        let admin_window = positive_int(&get, "ADMIN_WINDOW_SECONDS", 300)?;
        if admin_window > 3600 {
            return Err(ConfigError::new("ADMIN_WINDOW_SECONDS", "at most 3600 (one hour) is accepted"));
        }
        let mut read_through_symbols = symbols.clone();
        for text in get("READ_THROUGH_SYMBOLS").unwrap_or_default().split(',').map(str::trim).filter(|s| !s.is_empty())
        {
            let symbol = validate_symbol(text).map_err(|reason| ConfigError::new("READ_THROUGH_SYMBOLS", reason))?;
            if !read_through_symbols.contains(&symbol) {
                read_through_symbols.push(symbol);
            }
        }
        let misses_per_minute = positive_int(&get, "READ_THROUGH_MISSES_PER_MINUTE", 120)?;
        let read_through = ReadThroughConfig {
            symbols: read_through_symbols,
            misses_per_minute: u32::try_from(misses_per_minute)
                .map_err(|_| ConfigError::new("READ_THROUGH_MISSES_PER_MINUTE", "too large"))?,
        };

        let durable = DurableConfig {
            enabled: match get("DURABLE_COPY").as_deref() {
                None | Some("on") => true,
                Some("off") => false,
                Some(_) => return Err(ConfigError::new("DURABLE_COPY", "must be `on` or `off`")),
            },
            max_keys: positive_int(&get, "DURABLE_MAX_KEYS", crate::store::durable::copy::DEFAULT_MAX_KEYS)?,
        };

        Ok(Self {
            durable,
            admin_window: Duration::from_secs(admin_window),
            read_through,
            sync: SyncConfig::parse(get, &symbols)?,
            ttl: TtlTable::from_lookup(get)?,
            tiers,
            history_limit: positive_int(&get, "HISTORY_LIMIT", 1000)? as usize,
            keys,
            symbols,
            account_id,
            exchange,
            redis,
            read_token: get("READ_TOKEN").map(Secret::new),
            admin_secret: get("ADMIN_SECRET").map(Secret::new),
        })
    }
}

fn key_error(variable: &'static str, error: KeyError) -> ConfigError {
    ConfigError::new(variable, error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::settings::{split_symbol, DEFAULT_QUOTE_ASSETS};
    use crate::sync::task::Task;
    use std::collections::HashMap;

    fn parse(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_run_on_memory_with_qrlusdt() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.keys.prefix(), "qrl:v1");
        assert_eq!(config.symbols[0].as_str(), "QRLUSDT");
        assert_eq!(config.account_id.as_str(), "main");
        assert!(config.redis.is_none());
        assert_eq!(config.exchange.base_url, "https://api.mexc.com");
    }

    #[test]
    fn bad_values_name_their_variable() {
        assert_eq!(parse(&[("SYMBOLS", "QRL*")]).unwrap_err().variable, "SYMBOLS");
        assert_eq!(parse(&[("REDIS_NAMESPACE", "a:b")]).unwrap_err().variable, "REDIS_NAMESPACE");
        assert_eq!(parse(&[("UPSTASH_REDIS_REST_URL", "http://x")]).unwrap_err().variable, "UPSTASH_REDIS_REST_TOKEN");
        assert_eq!(parse(&[("MEXC_RECV_WINDOW_MS", "0")]).unwrap_err().variable, "MEXC_RECV_WINDOW_MS");
        assert_eq!(parse(&[("HTTP_TIMEOUT_MS", "soon")]).unwrap_err().variable, "HTTP_TIMEOUT_MS");
        assert_eq!(parse(&[("REDIS_CACHE_TTL_TICKER", "0")]).unwrap_err().variable, "REDIS_CACHE_TTL_TICKER");
        assert_eq!(parse(&[("HISTORY_LIMIT", "0")]).unwrap_err().variable, "HISTORY_LIMIT");
        assert_eq!(parse(&[("MEMORY_TIER_TTL", "x")]).unwrap_err().variable, "MEMORY_TIER_TTL");
        assert_eq!(parse(&[("ADMIN_WINDOW_SECONDS", "7200")]).unwrap_err().variable, "ADMIN_WINDOW_SECONDS");
        assert_eq!(parse(&[("READ_THROUGH_SYMBOLS", "eth")]).unwrap_err().variable, "READ_THROUGH_SYMBOLS");
        let extra = parse(&[("READ_THROUGH_SYMBOLS", "ETHUSDT, QRLUSDT")]).unwrap();
        let served: Vec<&str> = extra.read_through.symbols.iter().map(Segment::as_str).collect();
        assert_eq!(served, ["QRLUSDT", "ETHUSDT"]);
    }

    #[test]
    fn cron_tasks_map_schedules_to_tasks() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.sync.tasks_for("*/3  * * * *"), Some(&[Task::Balance, Task::Price, Task::Cost][..]));
        assert_eq!(config.sync.tasks_for("0 * * * *"), None);
        let custom = parse(&[("CRON_TASKS", "*/3 * * * *=price; 0 */6 * * * = cost, balance")]).unwrap();
        assert_eq!(custom.sync.tasks_for("0 */6 * * *"), Some(&[Task::Cost, Task::Balance][..]));
        for bad in
            ["*/3 * * * *", "*/3 * * *=price", "*/3 * * * *=swap", "*/3 * * * *=", "* * * * *=price;* * * * *=cost"]
        {
            assert_eq!(parse(&[("CRON_TASKS", bad)]).unwrap_err().variable, "CRON_TASKS", "{bad}");
        }
    }

    #[test]
    fn symbols_split_into_base_and_quote() {
        let quotes: Vec<String> = DEFAULT_QUOTE_ASSETS.split(',').map(String::from).collect();
        assert_eq!(split_symbol("QRLUSDT", &quotes), Some(("QRL", "USDT")));
        assert_eq!(split_symbol("ETHBTC", &quotes), Some(("ETH", "BTC")));
        assert_eq!(split_symbol("BTCUSDC", &quotes), Some(("BTC", "USDC")));
        assert_eq!(split_symbol("USDT", &quotes), None);
        assert_eq!(parse(&[("SYMBOLS", "QRLXYZ")]).unwrap_err().variable, "QUOTE_ASSETS");
        let costs = parse(&[("OPENING_COSTS", "QRLUSDT=0.0125, BTCUSDT=30000")]).unwrap();
        assert_eq!(costs.sync.opening_costs["QRLUSDT"].to_string(), "0.0125");
        assert_eq!(parse(&[("OPENING_COSTS", "QRLUSDT")]).unwrap_err().variable, "OPENING_COSTS");
    }

    #[test]
    fn secrets_do_not_leak_through_debug() {
        let config = parse(&[
            ("UPSTASH_REDIS_REST_URL", "http://127.0.0.1:1"),
            ("UPSTASH_REDIS_REST_TOKEN", "tok-secret"),
            ("MEXC_API_SECRET", "mexc-secret"),
        ])
        .unwrap();
        let printed = format!("{config:?}");
        assert!(!printed.contains("tok-secret") && !printed.contains("mexc-secret"));
    }
}
