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
//! symbol). About half of it is what the runtime spends per subrequest (~0.3–0.4 ms each there,
//! for any worker), which Cloudflare's faster machines do in less: the estimates are an upper
//! bound, and the warning errs on the side of warning. The Durable Object's share of the
//! durable copy is billed to the object's own requests, so the copy adds only what the worker
//! spends sending it the writes.

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
pub const INVOCATION_MS: f64 = 1.0;

/// Each task run alone with the durable copy off, beyond [`INVOCATION_MS`]
/// (docs/benchmarks.md, 2026-12-04, "the isolate's CPU": the line through the 1- and
/// 20-symbol figures). Balance makes two subrequests whatever the symbols; price one per
/// symbol; cost two per symbol (ticker and a page of fills) and stores the page.
pub fn alone(task: Task) -> TaskCost {
    match task {
        Task::Balance => TaskCost { fixed_ms: 0.98, per_symbol_ms: 0.01 },
        Task::Price => TaskCost { fixed_ms: 0.17, per_symbol_ms: 0.28 },
        Task::Cost => TaskCost { fixed_ms: 1.51, per_symbol_ms: 0.79 },
    }
}

/// What the durable copy adds to an invocation on the worker's side: encoding the permanent
/// writes, one subrequest per task to the object and one check for pending writes (the
/// object's own share is not the cron's). The difference between the whole cron with the copy
/// on and off, the object's part taken out by its share of the V8 profile, which is rougher
/// than the rest (two runs differed by a third at one symbol; this is their mean).
pub const DURABLE: TaskCost = TaskCost { fixed_ms: 4.7, per_symbol_ms: 0.63 };

/// The expected isolate CPU of one invocation running `tasks` for `symbols` symbols, ms.
/// Tasks of one invocation share exchange calls, so the sum of their costs alone
/// overestimates a little: the safe side.
pub fn estimate_ms(tasks: &[Task], symbols: usize, durable: bool) -> f64 {
    let tasks_ms: f64 = tasks.iter().map(|task| alone(*task).at(symbols)).sum();
    let copy_ms = if durable { DURABLE.at(symbols) } else { 0.0 };
    INVOCATION_MS + tasks_ms + copy_ms
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
        // The whole cron of the bench (isolate CPU, the durable object's part taken out):
        // 1 / 5 / 20 symbols, copy off and on, plus the no-task invocation. Tasks of one
        // invocation share the account and tickers, so the sum of tasks alone is a little high.
        for (symbols, durable, measured) in
            [(1, false, 2.77), (5, false, 8.19), (20, false, 19.68), (1, true, 8.1), (20, true, 38.24)]
        {
            let estimate = estimate_ms(&Task::ALL, symbols, durable);
            let measured = measured + INVOCATION_MS;
            let ratio = estimate / measured;
            assert!((0.95..1.35).contains(&ratio), "{symbols} symbols, copy {durable}: {estimate} vs {measured}");
        }
    }

    #[test]
    fn the_default_configuration_is_at_the_edge_and_one_task_alone_fits() {
        // The default: one symbol, every task on one expression, the copy on. On the bench's
        // VM it measures at the free plan's budget, so the warning names it; any single task
        // on its own expression fits with room.
        let budgets = check(&schedules(DEFAULT_CRON_TASKS), 1, true);
        assert!((budgets[0].estimated_ms - FREE_PLAN_CPU_MS).abs() < 1.0, "{budgets:?}");
        for task in ["balance", "price", "cost"] {
            let budgets = check(&schedules(&format!("*/3 * * * *={task}")), 1, true);
            assert!(budgets[0].fits_free_plan, "{budgets:?}");
            assert_eq!(warning(&budgets, 1), None);
        }
    }

    #[test]
    fn a_schedule_within_the_budget_has_no_warning() {
        let budgets = check(&schedules("*/3 * * * *=balance"), 1, false);
        assert!(budgets[0].fits_free_plan, "{budgets:?}");
        assert_eq!(warning(&budgets, 1), None);
    }
}
