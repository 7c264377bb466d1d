//! The cron's CPU budget: [`estimate_ms`] says how much CPU one invocation of a set of tasks
//! is expected to take — a linear model per task, `fixed + per_symbol × symbols`, fitted to
//! `make bench`'s measurements (docs/benchmarks.md, "CPU per cron invocation") — and
//! [`check`] compares every `CRON_TASKS` expression with the free plan's 10 ms of CPU per
//! invocation. `/health` reports the estimates and warns about each expression past the
//! budget: Cloudflare cuts such an invocation off ("Exceeded CPU Limit") and the tasks still
//! running are lost. The remedy is splitting: tasks on their own expressions run as separate
//! invocations, each with its own 10 ms.
//!
//! The coefficients are the isolate's CPU as the bench measures it (perf's share of workerd's
//! samples below a V8 entry frame, applied to workerd's CPU time): each task run alone on its
//! own expression, minus an invocation that runs no task, plus that invocation itself, on the
//! 2-core VM of docs/benchmarks.md with MEXC answers of that bench's size (50 fills per
//! symbol), in workerd without `wrangler dev`'s dev-only hops — the means of three runs taken
//! while other builds ran, rounded up where a run read higher: the estimates err high, and the
//! warning on the side of warning. The Durable Object's share of the durable copy is billed to
//! the object's own requests, so the copy adds only what the worker spends sending it the
//! writes.

use serde::Serialize;

use super::task::Task;

/// CPU per invocation on the free plan, ms.
pub const FREE_PLAN_CPU_MS: f64 = 10.0;

/// One task's model, ms: run alone for `n` symbols it takes `fixed + per_symbol × n`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TaskCost {
    pub fixed_ms: f64,
    pub per_symbol_ms: f64,
}

impl TaskCost {
    fn at(self, symbols: usize) -> f64 {
        self.fixed_ms + self.per_symbol_ms * symbols as f64
    }
}

/// An invocation that runs no task: the scheduled event, the runtime set-up, one log line.
pub const INVOCATION_MS: f64 = 0.3;

/// Each task run alone with the durable copy off, beyond [`INVOCATION_MS`]
/// (docs/benchmarks.md, 2026-12-04 evening: the means of three runs at 1, 5 and 20 symbols).
/// Alone, a task makes its own write; balance makes two subrequests whatever the symbols,
/// price one per symbol plus the write, cost two per symbol (ticker and a page of fills, the
/// page stored raw) plus the account and the write.
pub fn alone(task: Task) -> TaskCost {
    match task {
        Task::Balance => TaskCost { fixed_ms: 0.85, per_symbol_ms: 0.02 },
        Task::Price => TaskCost { fixed_ms: 0.6, per_symbol_ms: 0.13 },
        Task::Cost => TaskCost { fixed_ms: 1.35, per_symbol_ms: 0.48 },
    }
}

/// What tasks of one invocation do once for all of them, so the sum of their costs alone
/// counts it too often: the write (one pipeline for the invocation), the account (balance
/// and cost) and each ticker (price and cost). Each is the subrequest and its parsing, from
/// the difference between the tasks alone and together in the same bench.
pub const SHARED_WRITE_MS: f64 = 0.25;
pub const SHARED_ACCOUNT_MS: f64 = 0.2;
pub const SHARED_TICKER_MS: f64 = 0.1;

/// What the durable copy adds to an invocation on the worker's side: encoding the permanent
/// writes and one request to the object (which also says whether writes are pending; the
/// object's own work is billed to its requests, not to the cron). The whole cron with the
/// copy on minus off, the object's part taken out by its share of the V8 profile — the
/// roughest figure of the model (runs differ by a third), rounded up.
pub const DURABLE: TaskCost = TaskCost { fixed_ms: 0.3, per_symbol_ms: 0.32 };

/// The expected isolate CPU of one invocation running `tasks` for `symbols` symbols, ms.
pub fn estimate_ms(tasks: &[Task], symbols: usize, durable: bool) -> f64 {
    let tasks_ms: f64 = tasks.iter().map(|task| alone(*task).at(symbols)).sum();
    let has = |task: Task| tasks.contains(&task);
    let mut shared_ms = SHARED_WRITE_MS * tasks.len().saturating_sub(1) as f64;
    if has(Task::Balance) && has(Task::Cost) {
        shared_ms += SHARED_ACCOUNT_MS;
    }
    if has(Task::Price) && has(Task::Cost) {
        shared_ms += SHARED_TICKER_MS * symbols as f64;
    }
    let copy_ms = if durable { DURABLE.at(symbols) } else { 0.0 };
    INVOCATION_MS + tasks_ms - shared_ms + copy_ms
}

/// One `CRON_TASKS` expression against the budget.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScheduleBudget {
    pub cron: String,
    pub tasks: Vec<Task>,
    pub estimated_ms: f64,
    pub fits_free_plan: bool,
}

/// Every expression of `schedules` for `symbols` symbols, with or without the durable copy.
pub fn check(schedules: &[(String, Vec<Task>)], symbols: usize, durable: bool) -> Vec<ScheduleBudget> {
    schedules
        .iter()
        .map(|(cron, tasks)| {
            let estimated_ms = (estimate_ms(tasks, symbols, durable) * 10.0).round() / 10.0;
            ScheduleBudget {
                cron: cron.clone(),
                tasks: tasks.clone(),
                estimated_ms,
                fits_free_plan: estimated_ms <= FREE_PLAN_CPU_MS,
            }
        })
        .collect()
}

/// The warning for the expressions past the budget, `None` when all fit.
pub fn warning(budgets: &[ScheduleBudget], symbols: usize) -> Option<String> {
    let over: Vec<String> = budgets
        .iter()
        .filter(|b| !b.fits_free_plan)
        .map(|b| {
            let tasks: Vec<&str> = b.tasks.iter().map(|t| t.name()).collect();
            format!("`{}` ({}) ~{} ms", b.cron, tasks.join(", "), b.estimated_ms)
        })
        .collect();
    (!over.is_empty()).then(|| {
        format!(
            "estimated CPU per cron invocation for {symbols} symbol(s) exceeds the free plan's {FREE_PLAN_CPU_MS} ms: {}; \
             such an invocation is cut off. Split CRON_TASKS so each expression runs fewer tasks (e.g. \
             `*/3 * * * *=balance,price;*/5 * * * *=cost`, every expression also in wrangler.toml's crons), \
             sync fewer symbols, or use the Standard plan",
            over.join("; ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::settings::{SyncConfig, DEFAULT_CRON_TASKS};

    fn schedules(spec: &str) -> Vec<(String, Vec<Task>)> {
        SyncConfig::parse(|name| (name == "CRON_TASKS").then(|| spec.to_owned()), &[]).unwrap().schedules
    }

    #[test]
    fn estimates_grow_linearly_with_symbols() {
        let all = Task::ALL;
        let (one, five, twenty) =
            (estimate_ms(&all, 1, false), estimate_ms(&all, 5, false), estimate_ms(&all, 20, false));
        assert!(one < five && five < twenty);
        assert!(((twenty - five) / 15.0 - (five - one) / 4.0).abs() < 1e-9, "one slope");
        assert!(estimate_ms(&all, 5, true) > five, "the copy costs the worker something");
    }

    #[test]
    fn a_schedule_past_the_budget_is_named_with_the_remedy() {
        let budgets = check(&schedules(DEFAULT_CRON_TASKS), 20, true);
        assert!(!budgets[0].fits_free_plan, "{budgets:?}");
        let warning = warning(&budgets, 20).expect("20 symbols on one invocation do not fit");
        assert!(warning.contains("`*/3 * * * *` (balance, price, cost)"), "{warning}");
        assert!(warning.contains("Split CRON_TASKS"), "{warning}");
    }

    #[test]
    fn the_bench_configurations_are_estimated_on_the_safe_side() {
        // The whole cron of the bench (isolate CPU, the durable object's part taken out), the
        // means of three runs of docs/benchmarks.md (2026-12-04 evening): 1 / 5 / 20 symbols,
        // copy off and on, plus the no-task invocation.
        for (symbols, durable, measured) in [
            (1, false, 2.01),
            (5, false, 4.95),
            (20, false, 11.87),
            (1, true, 2.38),
            (5, true, 6.97),
            (20, true, 17.99),
        ] {
            let estimate = estimate_ms(&Task::ALL, symbols, durable);
            let measured = measured + INVOCATION_MS;
            let ratio = estimate / measured;
            assert!((0.95..1.35).contains(&ratio), "{symbols} symbols, copy {durable}: {estimate} vs {measured}");
        }
    }

    #[test]
    fn the_default_configuration_fits_and_ten_symbols_on_one_expression_warn() {
        // The default: one symbol, every task on one expression, the copy on — within the free
        // plan's budget, no warning; five symbols the same way fit too. Ten symbols the same
        // way are past it: the warning names the expression; split, each expression fits.
        let default = check(&schedules(DEFAULT_CRON_TASKS), 1, true);
        assert!(default[0].fits_free_plan && default[0].estimated_ms < 5.0, "{default:?}");
        assert_eq!(warning(&default, 1), None);
        let five = check(&schedules(DEFAULT_CRON_TASKS), 5, true);
        assert_eq!(warning(&five, 5), None, "{five:?}");
        let ten = check(&schedules(DEFAULT_CRON_TASKS), 10, true);
        assert!(warning(&ten, 10).is_some_and(|w| w.contains("`*/3 * * * *` (balance, price, cost)")), "{ten:?}");
        let split = check(&schedules("*/3 * * * *=balance,price;*/5 * * * *=cost"), 10, true);
        assert!(split.iter().all(|b| b.fits_free_plan), "{split:?}");
    }

    #[test]
    fn a_schedule_within_the_budget_has_no_warning() {
        let budgets = check(&schedules("*/3 * * * *=balance"), 1, false);
        assert!(budgets[0].fits_free_plan, "{budgets:?}");
        assert_eq!(warning(&budgets, 1), None);
    }
}
