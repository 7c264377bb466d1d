//! Configuration, parsed once at the edge into a typed [`Config`]; nothing else in the code
//! reads the environment. Every invalid value is an error naming its variable, so a bad
//! deployment fails loudly at the first request instead of misbehaving quietly.

use std::collections::BTreeMap;
use std::time::Duration;

use rust_decimal::Decimal;

use crate::exchange::{validate_symbol, ExchangeConfig, MEXC_BASE_URL};
use crate::keys::{KeyError, KeySpace, Segment, DEFAULT_NAMESPACE};
use crate::secret::Secret;
use crate::store::upstash::UpstashConfig;
use crate::sync::Task;
use crate::ttl::TtlTable;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {variable}: {reason}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub reason: String,
}

impl ConfigError {
    pub(crate) fn new(variable: &'static str, reason: impl Into<String>) -> Self {
        Self { variable, reason: reason.into() }
    }
}

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
}

/// What anonymous read-through may cost: which symbols it fetches and how many exchange
/// calls one isolate may make for misses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadThroughConfig {
    /// `SYMBOLS` plus `READ_THROUGH_SYMBOLS`: the only symbols the market routes fetch.
    pub symbols: Vec<Segment>,
    /// `READ_THROUGH_MISSES_PER_MINUTE` (default 120): exchange calls per isolate per minute
    /// for cache misses (a token bucket holding one minute's worth); beyond it a miss is a 503.
    pub misses_per_minute: u32,
}

/// What the cron runs and how patiently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncConfig {
    /// `CRON_TASKS`: `cron=task,task;cron=task` (default `*/3 * * * *=balance,price,cost`).
    /// Each expression must also be a trigger in `wrangler.toml`.
    pub schedules: Vec<(String, Vec<Task>)>,
    /// `SYNC_BUDGET_MS` (default 25000): how long one cron invocation may spend, waits included.
    pub budget: Duration,
    /// `MEXC_RETRIES` (default 2): retries of a failed exchange GET (5xx, timeout).
    pub exchange_retries: u32,
    /// `QUOTE_ASSETS`: quote assets, to split `QRLUSDT` into `QRL` + `USDT` (longest suffix wins).
    pub quote_assets: Vec<String>,
    /// `OPENING_COSTS`: `SYMBOL=avg_cost,…`, the average cost of holdings older than the
    /// trade history MEXC keeps (one month). Without one, such holdings are reported as
    /// quantity of unknown cost.
    pub opening_costs: BTreeMap<String, Decimal>,
    /// `MAX_TRADE_PAGES` (default 5): pages of 100 fills read per symbol per run.
    pub max_trade_pages: u32,
}

/// The default schedule: every task every 3 minutes, as the seeds ran.
pub const DEFAULT_CRON_TASKS: &str = "*/3 * * * *=balance,price,cost";
const DEFAULT_QUOTE_ASSETS: &str = "USDT,USDC,USDE,FDUSD,TUSD,BUSD,DAI,USD1,BTC,ETH,EUR,TRY,BRL,MX";

/// Collapses whitespace so `*/3  * * * *` and `*/3 * * * *` are the same schedule.
pub fn normalize_cron(expression: &str) -> String {
    expression.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `QRLUSDT` → (`QRL`, `USDT`): the longest quote asset that is a proper suffix.
pub fn split_symbol<'s>(symbol: &'s str, quote_assets: &[String]) -> Option<(&'s str, &'s str)> {
    quote_assets
        .iter()
        .filter(|quote| symbol.len() > quote.len() && symbol.ends_with(quote.as_str()))
        .max_by_key(|quote| quote.len())
        .map(|quote| symbol.split_at(symbol.len() - quote.len()))
}

impl SyncConfig {
    fn parse(get: impl Fn(&str) -> Option<String> + Copy, symbols: &[Segment]) -> Result<Self, ConfigError> {
        let mut schedules: Vec<(String, Vec<Task>)> = Vec::new();
        let spec = get("CRON_TASKS").unwrap_or_else(|| DEFAULT_CRON_TASKS.to_owned());
        for entry in spec.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            let (cron, tasks) = entry
                .split_once('=')
                .ok_or_else(|| ConfigError::new("CRON_TASKS", format!("`{entry}` is not `cron=task,task`")))?;
            let cron = normalize_cron(cron);
            if cron.split(' ').count() != 5 {
                return Err(ConfigError::new("CRON_TASKS", format!("`{cron}` is not a 5-field cron expression")));
            }
            let tasks = tasks
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|t| {
                    Task::from_name(t).ok_or_else(|| {
                        ConfigError::new("CRON_TASKS", format!("unknown task `{t}` (balance, price, cost)"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            if tasks.is_empty() {
                return Err(ConfigError::new("CRON_TASKS", format!("`{cron}` runs no task")));
            }
            if schedules.iter().any(|(c, _)| *c == cron) {
                return Err(ConfigError::new("CRON_TASKS", format!("`{cron}` is listed twice")));
            }
            schedules.push((cron, tasks));
        }
        let quote_assets: Vec<String> = get("QUOTE_ASSETS")
            .unwrap_or_else(|| DEFAULT_QUOTE_ASSETS.to_owned())
            .split(',')
            .map(|q| q.trim().to_owned())
            .filter(|q| !q.is_empty())
            .collect();
        for symbol in symbols {
            if split_symbol(symbol.as_str(), &quote_assets).is_none() {
                return Err(ConfigError::new(
                    "QUOTE_ASSETS",
                    format!("no quote asset ends {symbol}; add its quote asset to QUOTE_ASSETS"),
                ));
            }
        }
        let mut opening_costs = BTreeMap::new();
        for entry in get("OPENING_COSTS").unwrap_or_default().split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let parsed = entry.split_once('=').and_then(|(symbol, cost)| {
                let cost = crate::codec::parse_decimal(cost.trim()).ok().filter(|c| !c.is_sign_negative())?;
                Some((symbol.trim().to_owned(), cost))
            });
            let (symbol, cost) = parsed
                .ok_or_else(|| ConfigError::new("OPENING_COSTS", format!("`{entry}` is not `SYMBOL=average_cost`")))?;
            opening_costs.insert(symbol, cost);
        }
        Ok(Self {
            schedules,
            budget: Duration::from_millis(positive_int(&get, "SYNC_BUDGET_MS", 25_000)?),
            exchange_retries: match get("MEXC_RETRIES") {
                None => 2,
                Some(text) => text
                    .parse()
                    .map_err(|_| ConfigError::new("MEXC_RETRIES", format!("`{text}` is not a whole number")))?,
            },
            quote_assets,
            opening_costs,
            max_trade_pages: positive_int(&get, "MAX_TRADE_PAGES", 5)? as u32,
        })
    }

    /// The tasks `cron` runs; `None` for an expression `CRON_TASKS` does not list.
    pub fn tasks_for(&self, cron: &str) -> Option<&[Task]> {
        let cron = normalize_cron(cron);
        self.schedules.iter().find(|(c, _)| *c == cron).map(|(_, tasks)| tasks.as_slice())
    }
}

/// How the isolate-local memory tier behaves in front of Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TierConfig {
    /// `MEMORY_TIER_TTL` (seconds, default 2): how long an L1 entry answers as fresh; capped
    /// by the entry's own TTL. Short, because other isolates write Redis too. 0 makes every
    /// read go to Redis (L1 then only serves stale-if-error).
    pub memory_fresh_for: Duration,
    /// `MEMORY_TIER_MAX_ENTRIES` (default 10000): the L1 bound (LRU eviction).
    pub memory_max_entries: usize,
    /// `STALE_GRACE_SECONDS` (default 3600): how old an L1 entry may be and still be served,
    /// flagged stale, while Redis fails.
    pub stale_grace: Duration,
}

impl Default for TierConfig {
    fn default() -> Self {
        Self {
            memory_fresh_for: Duration::from_secs(2),
            memory_max_entries: crate::store::memory::DEFAULT_MAX_ENTRIES,
            stale_grace: Duration::from_secs(3600),
        }
    }
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

        Ok(Self {
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

/// A whole number that may be zero.
fn whole_number(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: u64,
) -> Result<u64, ConfigError> {
    match get(variable) {
        None => Ok(default),
        Some(text) => {
            text.parse::<u64>().map_err(|_| ConfigError::new(variable, format!("`{text}` is not a whole number")))
        }
    }
}

/// A whole number greater than zero.
fn positive_int(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: u64,
) -> Result<u64, ConfigError> {
    match whole_number(get, variable, default)? {
        0 => Err(ConfigError::new(variable, "must be greater than zero")),
        n => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
