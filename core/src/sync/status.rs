//! `P:sync:{task}:status`: a hash describing a task's runs — `last_started`, `last_ok`,
//! `last_error` (with `last_error_code`, MEXC's code when there is one, and `last_error_at`),
//! `duration_ms`, `keys_written`, `runs`, `failures`, `consecutive_failures`. Because the
//! `scheduled` handler cannot fail visibly, this hash (with the error log line) is how a
//! failing task is noticed. Timestamps are ms since the epoch.

use super::SyncError;
use crate::records::status::RunFields;
use crate::store::Command;

pub fn success(key: &str, started: i64, finished: i64, keys_written: usize) -> Vec<Command> {
    vec![
        Command::hset(key, &RunFields::Succeeded { started, finished, keys_written }.fields()),
        Command::new("HINCRBY").arg(key).arg("runs").arg(1),
    ]
}

pub fn failure(key: &str, started: i64, finished: i64, error: &SyncError) -> Vec<Command> {
    let run = RunFields::Failed { started, finished, error: error.to_string(), code: error.code() };
    vec![
        Command::hset(key, &run.fields()),
        Command::new("HINCRBY").arg(key).arg("runs").arg(1),
        Command::new("HINCRBY").arg(key).arg("failures").arg(1),
        Command::new("HINCRBY").arg(key).arg("consecutive_failures").arg(1),
    ]
}

/// After a run whose writes Redis did not acknowledge.
pub fn deferred(key: &str, at: i64) -> Vec<Command> {
    vec![Command::hset(key, &RunFields::deferred(at))]
}

/// After pending writes were replayed to Redis.
pub fn replayed(key: &str, at: i64, keys: u64) -> Vec<Command> {
    vec![Command::hset(key, &RunFields::replayed(at, keys))]
}
