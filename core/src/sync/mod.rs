//! The cron tasks that copy exchange data into the store. Each task fetches everything it
//! needs first and only then writes, as one pipelined request, so a failed exchange call
//! never leaves half a sync behind.
//!
//! - [`price`]: the 24 h ticker of each configured symbol → the price keys.
//!
//! Tasks return a [`TaskReport`]; logging it is the edge's job.

pub mod price;

use serde::Serialize;

use crate::App;

/// The sync tasks, by the name used in keys, cron configuration and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Price,
}

impl Task {
    pub fn name(self) -> &'static str {
        match self {
            Task::Price => "price",
        }
    }
}

/// What one task run did: one JSON log line per task per cron invocation.
#[derive(Debug, Clone, Serialize)]
pub struct TaskReport {
    pub task: Task,
    pub ok: bool,
    pub duration_ms: i64,
    pub keys_written: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Why a task wrote nothing (or not everything).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Exchange(#[from] crate::exchange::ExchangeError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Incomplete(String),
}

/// Runs every task of a cron firing and reports each.
pub async fn run_cron(app: &App<'_>, _cron: &str) -> Vec<TaskReport> {
    vec![run_task(app, Task::Price).await]
}

/// Runs one task and times it.
pub async fn run_task(app: &App<'_>, task: Task) -> TaskReport {
    let started = app.clock.now_ms();
    let outcome = match task {
        Task::Price => price::run(app).await,
    };
    let duration_ms = app.clock.now_ms() - started;
    match outcome {
        Ok(keys_written) => TaskReport { task, ok: true, duration_ms, keys_written, error: None },
        Err(error) => TaskReport { task, ok: false, duration_ms, keys_written: 0, error: Some(error.to_string()) },
    }
}
