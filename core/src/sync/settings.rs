//! The sync subsystem's settings: which cron runs which tasks, how long an invocation may
//! spend, retries, how symbols split into base and quote, opening costs, pages of fills.
//! Parsed from the environment here; `config` only assembles them.

use std::collections::BTreeMap;
use std::time::Duration;

use rust_decimal::Decimal;

use super::task::Task;
use crate::env::{positive_int, ConfigError};
use crate::keys::Segment;

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
pub const DEFAULT_QUOTE_ASSETS: &str = "USDT,USDC,USDE,FDUSD,TUSD,BUSD,DAI,USD1,BTC,ETH,EUR,TRY,BRL,MX";

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
    pub fn parse(get: impl Fn(&str) -> Option<String> + Copy, symbols: &[Segment]) -> Result<Self, ConfigError> {
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
