//! The cron tasks that copy exchange data into the store.
//!
//! Every task fetches everything it needs first and only then writes: all its writes — data,
//! raw responses, histories with their trims, and its `P:sync:{task}:status` hash — go out in
//! one pipelined request, which carries the writes of every task of the invocation
//! ([`write_runs`]). When an exchange call fails, nothing of the task's data is written, only
//! its status (last error with MEXC's code, failure counters), so good data is never
//! overwritten by a partial or failed run.
//!
//! - [`balance`]: `/api/v3/account` → the complete account, position hashes and their index.
//! - [`price`]: `/api/v3/ticker/24hr` → latest (permanent) + cached (TTL) price, history, ticker.
//! - [`cost`]: `/api/v3/myTrades` over MEXC's one-month window → average cost and P&L.
//! - [`cost_basis`]: the average-cost arithmetic, pure.
//! - [`cpu_budget`]: the CPU an invocation is expected to take, against the free plan's.
//! - [`raw`]: raw-response records and their capped history.
//! - [`status`]: the per-task status hash.
//! - [`snapshot`]: the invocation's exchange reads, each made once and shared by the tasks.
//! - [`settings`]: what the cron runs and how (parsed from the environment).
//! - [`task`]: the tasks by name.
//!
//! With a durable copy attached, a run whose writes Redis did not acknowledge is *deferred*,
//! not failed: the copy holds them, the status says `redis_deferred`, and the first cron whose
//! write Redis takes again replays what the copy holds pending
//! ([`crate::store::durable::replay`]); the copy's answer to the write says whether any is.
//!
//! Tasks return a [`TaskReport`]; logging it is the edge's job.

pub mod balance;
pub mod cost;
pub mod cost_basis;
pub mod cpu_budget;
pub mod price;
pub mod raw;
pub mod settings;
pub mod snapshot;
pub mod status;
pub mod task;

use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::future::join_all;

use serde::Serialize;
pub use task::Task;

use crate::clock::Backoff;
use crate::exchange::client::RetryPolicy;
use crate::exchange::MexcClient;
use crate::store::{all_ok, Command};
use crate::App;
use snapshot::Snapshot;

/// What one task run did: one JSON log line per task per cron invocation.
#[derive(Debug, Clone, Serialize)]
pub struct TaskReport {
    pub task: Task,
    pub ok: bool,
    pub duration_ms: i64,
    pub keys_written: usize,
    /// Redis did not take the writes; the durable copy holds them for replay.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deferred: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// MEXC's error code, when the exchange sent one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<i64>,
}

/// Why a task wrote no data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Exchange(#[from] crate::exchange::ExchangeError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Incomplete(String),
}

impl SyncError {
    pub fn code(&self) -> Option<i64> {
        match self {
            SyncError::Exchange(error) => error.code(),
            _ => None,
        }
    }
}

/// The exchange client of one cron invocation: retries and waits end at the sync budget; MEXC's
/// clock offset is the isolate's.
pub fn exchange_client<'a>(app: &App<'a>) -> MexcClient<'a> {
    MexcClient::new(app.http, app.clock, &app.config.exchange)
        .with_retries(RetryPolicy {
            sleep: app.sleep,
            retries: app.config.sync.exchange_retries,
            backoff: Backoff { base: Duration::from_millis(200), cap: Duration::from_secs(2) },
            deadline_ms: app.clock.now_ms() + app.config.sync.budget.as_millis() as i64,
        })
        .with_shared_offset(app.mexc_clock)
}

/// Why a cron invocation ran no task.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    #[error("cron `{0}` is not listed in CRON_TASKS; nothing ran")]
    Unmapped(String),
}

/// Runs the tasks `CRON_TASKS` maps `cron` to, concurrently, and reports each; an expression
/// it does not list runs nothing and says so.
pub async fn run_cron(app: &App<'_>, cron: &str) -> Result<Vec<TaskReport>, CronError> {
    let Some(tasks) = app.config.sync.tasks_for(cron) else {
        return Err(CronError::Unmapped(cron.to_owned()));
    };
    let exchange = exchange_client(app);
    let snapshot = Snapshot::new(&exchange);
    let runs = join_all(tasks.iter().map(|task| fetch_task(app, &snapshot, *task))).await;
    Ok(write_runs(app, runs).await)
}

/// Runs one task alone: fetch, then one pipeline with its data and status (or only its status).
pub async fn run_task(app: &App<'_>, snapshot: &Snapshot<'_>, task: Task) -> TaskReport {
    let run = fetch_task(app, snapshot, task).await;
    write_runs(app, vec![run]).await.pop().expect("one report per run")
}

/// What a task fetched and wants written, before anything was.
pub struct TaskRun {
    task: Task,
    started: i64,
    finished: i64,
    outcome: Result<Vec<Command>, SyncError>,
}

/// Fetches everything `task` needs and builds its writes; writes nothing.
pub async fn fetch_task(app: &App<'_>, snapshot: &Snapshot<'_>, task: Task) -> TaskRun {
    let started = app.clock.now_ms();
    let outcome = match task {
        Task::Balance => balance::run(app, snapshot).await,
        Task::Price => price::run(app, snapshot).await,
        Task::Cost => cost::run(app, snapshot).await,
    };
    TaskRun { task, started, finished: app.clock.now_ms(), outcome }
}

/// Writes the runs of one invocation as **one** pipeline — each task's data (or nothing, when
/// it failed) and its status — and reports each task by its own commands' replies. One request
/// for the invocation rather than one per task: a subrequest costs the invocation CPU whatever
/// it carries (docs/benchmarks.md), and a pipeline is not atomic either way, so a command that
/// fails fails only its task. With a durable copy the same holds for the copy (one request,
/// which also says whether keys are pending from an outage: they are replayed right after).
/// A task whose data failed while its status was written as a success — a Redis Cluster runs
/// each node's part of the pipeline on its own — gets its status corrected to the failure it
/// was, from what the pipeline read just before the success ([`status::correction`]).
pub async fn write_runs(app: &App<'_>, runs: Vec<TaskRun>) -> Vec<TaskReport> {
    let mut commands = Vec::new();
    let mut on_deferral = Vec::new();
    let mut planned = Vec::with_capacity(runs.len());
    for TaskRun { task, started, finished, outcome } in runs {
        let status_key = app.config.keys.sync_status(task.name());
        let (data, failure) = match outcome {
            Ok(data) => (data, None),
            Err(error) => (Vec::new(), Some(error)),
        };
        let keys_written = data.iter().flat_map(Command::keys).collect::<BTreeSet<&str>>().len();
        let from = commands.len();
        commands.extend(data);
        let data = from..commands.len();
        match &failure {
            None => {
                commands.push(status::before_success(&status_key));
                commands.extend(status::success(&status_key, started, finished, keys_written));
            }
            Some(error) => commands.extend(status::failure(&status_key, started, finished, error)),
        }
        on_deferral.extend(status::deferred(&status_key, finished));
        planned.push(Planned {
            task,
            status_key,
            data,
            all: from..commands.len(),
            started,
            finished,
            keys_written,
            failure,
        });
    }
    let written = app.store.write_noting_deferral(&commands, &on_deferral).await;
    let (deferred, copy_pending) = written.as_ref().map_or((false, 0), |w| (w.deferred, w.copy_pending));
    let replies = match written {
        Ok(written) => Ok(status::repair_counters(app, &commands, written.replies).await),
        Err(error) => Err(error),
    };
    let mut corrections = Vec::new();
    let reports = planned
        .into_iter()
        .map(|Planned { task, status_key, data, all, started, finished, keys_written, failure }| {
            let written = match &replies {
                Ok(replies) => all_ok(&commands[all.clone()], replies[all.clone()].to_vec()).map(drop),
                Err(error) => Err(error.clone()),
            };
            let failure = match (failure, written) {
                (Some(error), _) => Some(error),
                (None, Err(error)) => {
                    let error = SyncError::Store(error);
                    // The data failed where the success was written anyway (another node of a
                    // cluster): the stored status must say what happened.
                    if let Ok(replies) = &replies {
                        let data_failed = replies[data.clone()].iter().any(Result::is_err);
                        let status_written = replies[data.end..all.end].iter().all(Result::is_ok);
                        if let (true, true, Ok(before)) = (data_failed, status_written, &replies[data.end]) {
                            corrections.extend(status::correction(&status_key, started, finished, &error, before));
                        }
                    }
                    Some(error)
                }
                (None, Ok(())) => None,
            };
            TaskReport {
                task,
                ok: failure.is_none(),
                duration_ms: finished - started,
                keys_written: if failure.is_none() { keys_written } else { 0 },
                deferred,
                error_code: failure.as_ref().and_then(SyncError::code),
                error: failure.map(|e| e.to_string()),
            }
        })
        .collect::<Vec<_>>();
    if !corrections.is_empty() {
        let _ = app.store.write(&corrections).await;
    }
    if !deferred && copy_pending > 0 {
        let tasks: Vec<Task> = reports.iter().map(|report| report.task).collect();
        replay_pending(app, &tasks).await;
    }
    // The statuses just changed: this isolate's kept health report is out of date.
    app.health_report.forget();
    reports
}

/// One task's place in the invocation's pipeline: its data commands (`data`), then its status
/// (to the end of `all`; a success's status starts with [`status::before_success`]).
struct Planned {
    task: Task,
    status_key: String,
    data: std::ops::Range<usize>,
    all: std::ops::Range<usize>,
    started: i64,
    finished: i64,
    keys_written: usize,
    failure: Option<SyncError>,
}

/// Writes what the durable copy holds pending to Redis — each key's final state, never over a
/// newer value, so it may follow this cron's own writes — and notes the replay in the statuses
/// of `tasks`. A replay that cannot reach Redis leaves everything pending for the next cron.
pub async fn replay_pending(app: &App<'_>, tasks: &[Task]) -> Option<crate::store::durable::replay::ReplayReport> {
    let now = app.clock.now_ms();
    let report = match app.store.replay_pending().await? {
        Ok(report) => {
            app.store.events().warn(&serde_json::json!({ "event": "durable_replay", "report": report }));
            report
        }
        Err(error) => {
            let event = serde_json::json!({ "event": "durable_replay_failed", "error": error.to_string() });
            app.store.events().warn(&event);
            return None;
        }
    };
    let commands: Vec<Command> = tasks
        .iter()
        .flat_map(|task| status::replayed(&app.config.keys.sync_status(task.name()), now, report.cleared))
        .collect();
    let _ = app.store.write(&commands).await;
    Some(report)
}

/// `Command`s are built with keys from the schema; this is the history trim every writer uses.
pub(crate) fn history_append(key: &str, score: i64, member: &str, limit: usize) -> [Command; 2] {
    [Command::zadd(key, score, member), Command::ztrim_to_newest(key, limit)]
}
