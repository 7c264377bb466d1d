//! [`Task`]: the sync tasks by name — a leaf, so settings and the route table can name tasks
//! without depending on the tasks' code.

use serde::Serialize;

/// The sync tasks, by the name used in keys, `CRON_TASKS` and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Balance,
    Price,
    Cost,
}

impl Task {
    pub const ALL: [Task; 3] = [Task::Balance, Task::Price, Task::Cost];

    pub fn name(self) -> &'static str {
        match self {
            Task::Balance => "balance",
            Task::Price => "price",
            Task::Cost => "cost",
        }
    }

    pub fn from_name(name: &str) -> Option<Task> {
        Task::ALL.into_iter().find(|t| t.name() == name)
    }
}
